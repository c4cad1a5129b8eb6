"""Folder trees of small images held in memory: ``data=imagefolder`` with ``in_memory: true``, and
``data=cifar10_jpeg``.

The tree is decoded once into a uint8 tensor cache (:mod:`zoo.data.cache`, in ``$ZOO_CACHE`` or
``~/.cache/zoo``); training then runs on the in-memory path of :class:`~zoo.data.base.InMemoryDataModule`:
batches are one tensor index, the batched recipes (``pad_crop_flip``, ``flip``, ``none``) augment a
whole batch at once, on the device the model trains on, and the loader resumes exactly mid-epoch.

CIFAR-10 as JPEG files (``<root>/cifar10-jpeg/{train,test}/<class>/NNNN.jpg``) is a public
re-encoding of CIFAR-10 at JPEG quality 75: lossy, so its pixels, its statistics and the accuracies
measured on it differ from the original's. Results on it are labelled ``cifar10-jpeg``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from zoo.data.base import DatasetNotFoundError, InMemoryDataModule, TensorImageDataset, split_indices
from zoo.data.cache import ImageTreeError, load_tree
from zoo.data.registry import register_datamodule

__all__ = ["InMemoryImageFolderDataModule", "CIFAR10JPEGDataModule"]

log = logging.getLogger(__name__)


class InMemoryImageFolderDataModule(InMemoryDataModule):
    """An ImageFolder tree of small images (``root/train/<class>/...``, ``root/val/<class>/...``), decoded
    once into memory and trained at tensor speed.

    ``data=imagefolder data.in_memory=true`` builds this class. Every image must have one size,
    unless ``image_size`` is given: each image is then resized once, as it is decoded, to
    ``image_size x image_size``. Images of one size that differs from ``image_size`` are brought to
    it by ``resize_mode``.

    Args:
        root: the folder holding ``train_dir`` and ``test_dir``.
        download: must stay False: there is nothing to download.
        batch_size: training batch size.
        num_workers: unused (batches are tensor indexing); kept for the config's sake.
        image_size: side of the network input; ``None``: the images' own size.
        train_dir: training sub-folder.
        test_dir: sub-folder used as the test set.
        val_dir: optional validation sub-folder; if ``None``, ``val_size`` images are carved from
            the training folder with ``split_seed``.
        val_size: validation images carved from training (count or fraction).
        augment: training recipe; the batched ones (``pad_crop_flip``, ``flip``, ``none``) run on
            whole batches on the training device, the others per image on the host.
        mean: per-channel normalisation mean; ``None``: computed from the training images.
        std: per-channel normalisation std; ``None``: computed from the training images.
        in_chans: 3 (RGB, default) or 1 (decoded as grey).
        resize_mode: ``"resize"`` (default) or ``"pad"``, when the images' size is not ``image_size``.
        cache: keep the decoded tensors in the cache folder (``$ZOO_CACHE``, else ``~/.cache/zoo``).
        **kwargs: see :class:`~zoo.data.base.InMemoryDataModule`.
    """

    name = "imagefolder"
    NUM_CLASSES: int | None = None
    IN_CHANS = 3
    NATIVE_SIZE: int | None = None
    STATS_KEY = ""
    #: prefix of the cache files' names.
    CACHE_NAME = "imagefolder"

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        download: bool = False,
        batch_size: int = 128,
        num_workers: int = 0,
        *,
        image_size: int | None = None,
        train_dir: str = "train",
        test_dir: str = "val",
        val_dir: str | None = None,
        val_size: int | float = 0.1,
        augment: str = "pad_crop_flip",
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        in_chans: int | None = None,
        resize_mode: str = "resize",
        cache: bool = True,
        small_input: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if in_chans is not None and in_chans not in (1, 3):
            raise ValueError(f"data.in_chans={in_chans!r}: an image folder is decoded as RGB (3) or grey (1); "
                             "e.g. data.in_chans=3")
        if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                       or image_size < 1):
            raise ValueError(f"data.image_size={image_size!r}: a positive integer or null (the images' own "
                             "size) is needed; e.g. data.image_size=32")
        if self.NATIVE_SIZE is None:
            self.IN_CHANS = in_chans or 3  # instance override: the folder has no fixed channel count
        self._requested_size = image_size
        self._requested_small = small_input
        super().__init__(root, download, batch_size, num_workers, image_size=image_size or self.NATIVE_SIZE or 32,
                         val_size=val_size, augment=augment, in_chans=in_chans, small_input=small_input,
                         resize_mode=resize_mode, **kwargs)
        self.train_dir, self.test_dir, self.val_dir = train_dir, test_dir, val_dir
        self.cache = bool(cache)
        for key, value in (("mean", mean), ("std", std)):
            if value is not None and len(value) != self.in_chans:
                raise ValueError(f"data.{key}={list(value)}: {self.in_chans} values are needed, one per channel")
        self._mean = tuple(float(v) for v in mean) if mean is not None else None
        self._std = tuple(float(v) for v in std) if std is not None else None
        self._native: int | None = self.NATIVE_SIZE
        self._loaded: dict[bool, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- the tree ----------------------------------------------------------------

    @property
    def folder(self) -> Path:
        """The folder holding ``train_dir`` and ``test_dir``."""
        return self.root

    def _layout(self) -> list[str]:
        return [f"{d}/<class>/<images>" for d in (self.train_dir, self.test_dir, self.val_dir) if d]

    def _ensure_files(self) -> None:
        missing = [f"{d}/" for d in (self.train_dir, self.test_dir, self.val_dir) if d and not (self.folder / d).is_dir()]
        if missing:
            raise DatasetNotFoundError(self.name, self.folder, self._layout(), missing, downloadable=False,
                                       detail=f"no folder {self.folder / missing[0].rstrip('/')}")

    def prepare_data(self) -> None:
        if self.download:
            log.warning("%s: download=True ignored, there is nothing to download", self.name)
        self._ensure_files()

    def _read(self, sub: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Decodes (or loads from the cache) ``folder/sub`` and checks its classes."""
        try:
            images, targets, classes = load_tree(self.folder / sub, channels=self.in_chans,
                                                 image_size=self._requested_size, cache=self.cache,
                                                 name=f"{self.CACHE_NAME}-{sub.replace('/', '_')}")
        except FileNotFoundError as err:
            raise DatasetNotFoundError(self.name, self.folder, self._layout(), [f"{sub}/<class>/<images>"],
                                       downloadable=False, detail=str(err)) from err
        except ImageTreeError as err:
            raise ImageTreeError(f"{self.name}: {err}") from err
        self._check_classes(classes, sub)
        side = int(images.shape[-1])
        if images.shape[-2] != side and self._requested_size is None:
            raise ImageTreeError(
                f"{self.name}: the images of {self.folder / sub} are {images.shape[-1]}x{images.shape[-2]} px, "
                f"not square; set data.image_size to resize them once as they are decoded, e.g. "
                f"data.image_size={max(images.shape[-2:])}")
        if self._native is None:
            self._native = side
            if self._requested_size is None:  # the network sees the images' own size
                self._image_size = side
                if self._requested_small is None:
                    self._small_input = side <= 32
        return images, targets

    def _check_classes(self, classes: list[str], sub: str) -> None:
        if self.classes is None:
            self.classes = list(classes)
            if self._num_classes is not None and self._num_classes != len(classes):
                raise ValueError(
                    f"{self.name}: {self.folder / sub} has {len(classes)} class folders, but "
                    f"data.num_classes={self._num_classes} was requested; e.g. data.num_classes={len(classes)}")
            self._num_classes = len(classes)
        elif list(classes) != self.classes:
            extra = sorted(set(classes) ^ set(self.classes))
            raise ValueError(f"{self.name}: the classes of {self.folder / sub} differ from those of "
                             f"{self.folder / self.train_dir}: {', '.join(extra[:10])}")

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if train not in self._loaded:
            self._loaded[train] = self._read(self.train_dir if train else self.test_dir)
        return self._loaded[train]

    def _to_size(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != self.image_size and self.resize_mode == "pad" and images.shape[-1] > self.image_size:
            raise ValueError(f"{self.name}: resize_mode='pad' cannot bring {images.shape[-1]} px images to "
                             f"image_size={self.image_size}; use data.resize_mode=resize")
        return super()._to_size(images)

    # -- statistics ----------------------------------------------------------------

    def _stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self._mean is None or self._std is None:
            from zoo.data.stats import channel_stats

            images, _ = self._load(True)
            mean, std = channel_stats(images)  # the whole training folder, at its own size
            self._mean = self._mean or tuple(round(m, 6) for m in mean)
            self._std = self._std or tuple(round(s, 6) for s in std)
            log.info("%s: normalisation statistics of %s: mean %s, std %s (set data.mean and data.std to fix them)",
                     self.name, self.folder / self.train_dir, self._mean, self._std)
        return self._mean, self._std

    # -- splits ----------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """As :meth:`InMemoryDataModule.setup`; with ``val_dir`` the validation images are that folder's."""
        if self.val_dir is None or stage not in (None, "fit", "validate") or self.val_set is not None:
            super().setup(stage)
            return
        device = self.resolve_device()
        self._ensure_files()
        images, targets = self._load(True)
        v_images, v_targets = self._read(self.val_dir)
        self.train_set = TensorImageDataset(self._to_size(images), targets, self.train_transform(),
                                            self.batch_train_transform())
        self.val_set = TensorImageDataset(self._normalised(self._to_size(v_images)), v_targets)
        log.info("%s: %d train / %d val images at %s", self.name, len(targets), len(v_targets), self.input_size)
        if stage is None:
            super().setup("test")
        self._place(device)


@register_datamodule("cifar10_jpeg")
class CIFAR10JPEGDataModule(InMemoryImageFolderDataModule):
    """CIFAR-10 as JPEG files: ``<root>/cifar10-jpeg/{train,test}/<class>/NNNN.jpg``, 50,000 + 10,000
    32x32 RGB images, decoded once into the cache.

    The split is CIFAR-10's: 45,000 training and 5,000 validation images carved from ``train/`` with
    the fixed ``split_seed``, and the 10,000 ``test/`` images. The normalisation statistics are this
    copy's (:data:`zoo.data.stats.DATASET_STATS` ``["cifar10_jpeg"]``, over the 50,000 training
    images), not the original's: JPEG at quality 75 shifts them slightly.

    Args:
        root: the folder that holds ``cifar10-jpeg/`` (e.g. ``../shared/data``).
        **kwargs: see :class:`InMemoryImageFolderDataModule`.
    """

    name = "cifar10_jpeg"
    NUM_CLASSES = 10
    IN_CHANS = 3
    NATIVE_SIZE = 32
    STATS_KEY = "cifar10_jpeg"
    CACHE_NAME = "cifar10-jpeg"
    #: the tree's folder under ``root``.
    SUBDIR = "cifar10-jpeg"
    #: images per split, checked when loaded.
    COUNTS = {True: 50_000, False: 10_000}

    def __init__(self, root: str | os.PathLike | None = None, download: bool = False, batch_size: int = 128,
                 num_workers: int = 0, *, image_size: int | None = 32, val_size: int | float = 5000,
                 augment: str = "pad_crop_flip", resize_mode: str = "pad", **kwargs: Any) -> None:
        for key in ("train_dir", "test_dir", "val_dir", "mean", "std"):
            if kwargs.get(key) is not None:
                raise ValueError(f"data.{key} is fixed for cifar10_jpeg (its tree and statistics); drop "
                                 f"data.{key}, or use data=imagefolder data.in_memory=true for another tree")
        kwargs.update(train_dir="train", test_dir="test", val_dir=None)
        super().__init__(root, download, batch_size, num_workers, image_size=image_size, val_size=val_size,
                         augment=augment, resize_mode=resize_mode, **kwargs)
        self._requested_size = None  # the files are 32x32; other sizes are reached by resize_mode
        self._image_size = int(image_size or 32)
        if self._requested_small is None:
            self._small_input = self._image_size <= 32

    @property
    def folder(self) -> Path:
        return self.root / self.SUBDIR

    def _ensure_files(self) -> None:
        missing = [f"{d}/" for d in ("train", "test") if not (self.folder / d).is_dir()]
        if missing:
            raise DatasetNotFoundError(
                self.name, self.folder, ["train/<class>/NNNN.jpg", "test/<class>/NNNN.jpg"], missing,
                downloadable=False, subdir=self.SUBDIR,
                detail="the JPEG copy of CIFAR-10 is not downloaded by the project: point data.root at the folder "
                       "that holds cifar10-jpeg/, e.g. data.root=../shared/data")

    def _stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        from zoo.data.stats import DATASET_STATS, padded_stats

        stats = DATASET_STATS[self.STATS_KEY]
        if self.resize_mode == "pad" and self.image_size > 32:
            return padded_stats(stats, 32, self.image_size)
        return stats

    def _read(self, sub: str) -> tuple[torch.Tensor, torch.Tensor]:
        images, targets = super()._read(sub)
        expected = self.COUNTS[sub == "train"]
        if len(images) != expected or tuple(images.shape[1:]) != (3, 32, 32):
            log.warning("%s: %s holds %d images of %s; CIFAR-10 has %d of (3, 32, 32) there", self.name,
                        self.folder / sub, len(images), tuple(images.shape[1:]), expected)
        return images, targets
