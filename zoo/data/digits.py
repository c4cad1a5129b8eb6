"""The bundled digits: scikit-learn's copy of the UCI optical recognition of handwritten digits.

1,797 real handwritten digits (Alpaydin & Kaynak 1998, UCI ML repository):
32x32 binary bitmaps reduced to 8x8 by counting the set pixels in each 4x4
block, so each value is 0..16. They ship with scikit-learn
(``sklearn.datasets.load_digits``), so this dataset needs no download and no
files: it is the default of ``train.py``.

Preparation: values are scaled to uint8 (``round(v * 255 / 16)``) and brought
to ``image_size`` (32 by default) by bilinear resampling, giving back the
bitmaps' original 32x32 extent.

The split is fixed, independent of the run seed: a permutation of the 1,797
images drawn from ``numpy.random.RandomState(split_seed)`` (``split_seed=0``)
sets aside the first ``test_size`` (360) as the test set; the validation set,
``val_size`` (180) of the remaining 1,437, is carved from them the same way as
for every other dataset (:func:`zoo.data.base.split_indices`), leaving 1,257
training images. Split sizes 1,257 / 180 / 360 (70 / 10 / 20 %).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np
import torch

from zoo.data.base import InMemoryDataModule, _count
from zoo.data.registry import register_datamodule

__all__ = ["DigitsDataModule", "load_digits_uint8"]


@functools.lru_cache(maxsize=1)
def load_digits_uint8() -> tuple[torch.Tensor, torch.Tensor]:
    """Returns all 1,797 digits as ``(images uint8 (N, 1, 8, 8), labels int64 (N,))`` (cached; do not modify)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8), 0..255
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(bunch.target.astype(np.int64))


@register_datamodule("digits")
class DigitsDataModule(InMemoryDataModule):
    """scikit-learn's 1,797 UCI handwritten digits, 8x8 brought to 32x32, fixed 1,257 / 180 / 360 split.

    Args:
        root: accepted for a uniform interface; the data ships with scikit-learn.
        download: accepted for a uniform interface; nothing is downloaded.
        batch_size: training batch size.
        num_workers: dataloader workers (0 is right for 1,797 tiny images).
        image_size: side of the input (default 32).
        val_size: validation images carved from the non-test images (default 180).
        test_size: test images set aside first (default 360).
        split_seed: seed of both carves (default 0).
        resize_mode: ``"resize"`` (default; bilinear) or ``"pad"``.
        **kwargs: see :class:`~zoo.data.base.ImageDataModule`.
    """

    name = "digits"
    NUM_CLASSES = 10
    IN_CHANS = 1
    NATIVE_SIZE = 8
    STATS_KEY = "digits"
    TOTAL = 1797

    def __init__(self, root: str | os.PathLike | None = None, download: bool = False, batch_size: int = 64,
                 num_workers: int = 0, *, image_size: int | None = 32, val_size: int | float = 180,
                 test_size: int | float = 360, resize_mode: str = "resize", **kwargs: Any) -> None:
        super().__init__(root, download, batch_size, num_workers, image_size=image_size, val_size=val_size,
                         resize_mode=resize_mode, **kwargs)
        self.test_size = test_size
        _count(test_size, self.TOTAL, "test_size")
        self.classes = [str(i) for i in range(10)]

    def _stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        # Computed at 32x32 (bilinear) on the training split; see zoo.data.stats.
        from zoo.data.stats import DATASET_STATS

        return DATASET_STATS["digits"]

    def _pools(self) -> dict[str, np.ndarray]:
        """Indices into the 1,797 digits of the test set and of the rest (train + val)."""
        k = _count(self.test_size, self.TOTAL, "test_size")
        perm = np.random.RandomState(self.split_seed).permutation(self.TOTAL)
        return {"test": np.sort(perm[:k]), "rest": np.sort(perm[k:])}

    def split_indices(self) -> dict[str, np.ndarray]:
        """Indices into ``sklearn.datasets.load_digits()`` of the train, val and test images.

        Computed without loading images; identical to what :meth:`setup` uses.
        """
        from zoo.data.base import split_indices

        pools = self._pools()
        train_pos, val_pos = split_indices(len(pools["rest"]), self.val_size, self.split_seed)
        return {"train": pools["rest"][train_pos], "val": pools["rest"][val_pos], "test": pools["test"]}

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = load_digits_uint8()
        if len(labels) != self.TOTAL:
            raise RuntimeError(f"expected {self.TOTAL} digits from scikit-learn, got {len(labels)}")
        idx = torch.from_numpy(self._pools()["rest" if train else "test"])
        return images[idx], labels[idx]
