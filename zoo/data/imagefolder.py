"""ImageNet-style folder trees, streamed from disk.

Layout under ``root``::

    train/<class>/<image>     training images; the validation split is carved from them
    val/<class>/<image>       held-out images, used as the TEST set (``test_dir``)

This is how ImageNet's ILSVRC-2012 is usually arranged; its official
validation images are what the papers report their results on, so they are
the test set here, and model selection uses ``val_size`` images carved from
the training folder (or a separate folder given as ``val_dir``). Classes are
the sub-folder names in sorted order (``torchvision.datasets.ImageFolder``).

Images are decoded to uint8 tensors with ``torchvision.io.decode_image``
(JPEG, PNG, GIF, WebP; other formats through Pillow) and go through the
tensor recipes of :mod:`zoo.data.transforms`: training ``augment``
(``random_resized_crop`` by default), evaluation = shorter side to
``resize_size`` (``image_size * 256 / 224``) and centre crop, or
``test_crop="ten_crop"`` for the ten-crop test.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import datasets as tvd
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2

from zoo.data.base import DatasetNotFoundError, ImageDataModule, split_indices
from zoo.data.registry import register_datamodule
from zoo.data.transforms import EVAL_CROPS, TransformSpec, lookup_recipe, build_eval_transform

__all__ = ["ImageFolderDataModule", "read_image"]

log = logging.getLogger(__name__)


def read_image(path: str, channels: int = 3) -> torch.Tensor:
    """Decodes an image file to a uint8 tensor ``(channels, H, W)``.

    Args:
        path: image file.
        channels: 3 for RGB, 1 for grey.

    Returns:
        uint8 tensor ``(C, H, W)``.
    """
    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    with open(path, "rb") as f:
        data = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
    try:
        return decode_image(data, mode=mode)
    except RuntimeError:  # a format torchvision.io cannot decode (BMP, TIFF, ...)
        from PIL import Image
        from torchvision.transforms.v2.functional import pil_to_tensor

        with Image.open(path) as img:
            return pil_to_tensor(img.convert("RGB" if channels == 3 else "L"))


class _Split(Dataset):
    """A subset of an ``ImageFolder`` scan with its own transform."""

    def __init__(self, folder: tvd.ImageFolder, indices: np.ndarray | None, transform: Callable) -> None:
        self.folder = folder
        self.indices = np.arange(len(folder.samples)) if indices is None else indices
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, target = self.folder.samples[int(self.indices[index])]
        return self.transform(self.folder.loader(path)), target


@register_datamodule("imagefolder")
class ImageFolderDataModule(ImageDataModule):
    """Any ImageNet-style tree ``root/train/<class>/...``, ``root/val/<class>/...``.

    Args:
        root: the folder holding ``train_dir`` and ``test_dir``.
        download: must stay False: there is nothing to download.
        batch_size: training batch size.
        num_workers: decoding worker processes.
        image_size: side of the network input (default 224).
        resize_size: shorter side before the centre crop at evaluation
            (default ``round(image_size * 256 / 224)``, i.e. 256 at 224).
        train_dir: training sub-folder.
        test_dir: sub-folder used as the test set (ImageNet's ``val``).
        val_dir: optional sub-folder for validation; if ``None`` (default),
            ``val_size`` images are carved from the training folder.
        val_size: validation images carved from training (count or fraction; default 1 %).
        augment: training recipe (default ``random_resized_crop``).
        test_crop: ``"center"`` or ``"ten_crop"`` for the test set
            (validation always uses the centre crop).
        interpolation: resampling for resizes (``"bilinear"``, ``"bicubic"``, ...).
        mean: per-channel normalisation mean (default ImageNet's).
        std: per-channel normalisation std (default ImageNet's).
        num_classes: expected class count; checked against the folder at setup.
        in_chans: 3 (RGB, default) or 1 (images decoded as grey).
        in_memory: decode the whole tree once into a uint8 tensor cache and train from memory
            (:class:`~zoo.data.image_tree.InMemoryImageFolderDataModule` is built instead; for
            trees of small images).
        **kwargs: see :class:`~zoo.data.base.ImageDataModule`.
    """

    name = "imagefolder"
    NUM_CLASSES = None
    IN_CHANS = 3
    NATIVE_SIZE = None
    STATS_KEY = "imagenet"

    def __new__(cls, *args: Any, in_memory: bool = False, **kwargs: Any) -> Any:
        # in_memory=True: the tree is decoded once into a uint8 tensor cache and trained from memory
        # (zoo.data.image_tree.InMemoryImageFolderDataModule, built here with the same keywords).
        if not isinstance(in_memory, bool):
            raise ValueError(f"data.in_memory={in_memory!r}: true or false; e.g. data.in_memory=true")
        if in_memory and cls is ImageFolderDataModule:
            from zoo.data.image_tree import InMemoryImageFolderDataModule

            for key in ("resize_size", "test_crop", "interpolation"):
                if kwargs.pop(key, None) not in (None, "center", "bilinear"):
                    raise ValueError(f"data.{key} applies to images streamed from disk; with data.in_memory=true "
                                     f"every image is used whole at data.image_size: drop data.{key}")
            return InMemoryImageFolderDataModule(*args, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        download: bool = False,
        batch_size: int = 256,
        num_workers: int = 4,
        *,
        in_memory: bool = False,
        image_size: int | None = 224,
        resize_size: int | None = None,
        train_dir: str = "train",
        test_dir: str = "val",
        val_dir: str | None = None,
        val_size: int | float = 0.01,
        augment: str = "random_resized_crop",
        test_crop: str = "center",
        interpolation: str = "bilinear",
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        in_chans: int | None = None,
        small_input: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if in_chans is not None and in_chans not in (1, 3):
            raise ValueError(f"imagefolder decodes RGB (in_chans=3) or grey (in_chans=1), got in_chans={in_chans}")
        self.IN_CHANS = in_chans or 3  # instance override: the folder has no fixed channel count
        super().__init__(root, download, batch_size, num_workers, image_size=image_size, val_size=val_size,
                         augment=augment, in_chans=in_chans, small_input=small_input, **kwargs)
        self.resize_size = int(resize_size or round(self.image_size * 256 / 224))
        if self.resize_size < self.image_size:
            raise ValueError(f"resize_size={self.resize_size} must be >= image_size={self.image_size}")
        self.train_dir, self.test_dir, self.val_dir = train_dir, test_dir, val_dir
        lookup_recipe(EVAL_CROPS, test_crop, "evaluation crop")
        self.test_crop = test_crop
        self.interpolation = v2.InterpolationMode(interpolation)
        default_mean, default_std = super()._stats()
        self._mean = tuple(mean) if mean is not None else default_mean
        self._std = tuple(std) if std is not None else default_std
        if self.in_chans == 1 and mean is None:  # grey: ImageNet's statistics averaged over R, G, B
            self._mean, self._std = (0.449,), (0.226,)
        if len(self._mean) != self.in_chans or len(self._std) != self.in_chans:
            raise ValueError(f"mean/std need {self.in_chans} values, got {self._mean}, {self._std}")

    def _stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self._mean, self._std

    def transform_spec(self) -> TransformSpec:
        return TransformSpec(
            image_size=self.image_size, mean=self.mean, std=self.std, resize_size=self.resize_size,
            interpolation=self.interpolation, options=self.augment_kwargs,
        )

    def _scan(self, sub: str) -> tvd.ImageFolder:
        folder = self.root / sub
        layout = [f"{d}/<class>/<images>" for d in (self.train_dir, self.test_dir, self.val_dir) if d]
        if not folder.is_dir():
            raise DatasetNotFoundError(
                "imagefolder", self.root, layout, [f"{sub}/"], downloadable=False,
                detail=f"no folder {folder}",
            )
        try:
            return tvd.ImageFolder(str(folder), loader=functools.partial(read_image, channels=self.in_chans))
        except FileNotFoundError as err:  # no class folders, or no images in them
            raise DatasetNotFoundError(
                "imagefolder", self.root, layout, [f"{sub}/<class>/<images>"], downloadable=False, detail=str(err),
            ) from err

    def _check_classes(self, folder: tvd.ImageFolder, sub: str) -> None:
        if self.classes is None:
            self.classes = list(folder.classes)
            if self._num_classes is not None and self._num_classes != len(self.classes):
                raise ValueError(
                    f"imagefolder: {self.root / sub} has {len(self.classes)} class folders, but "
                    f"num_classes={self._num_classes} was requested (data.num_classes in the config)"
                )
            self._num_classes = len(self.classes)
        elif list(folder.classes) != self.classes:
            extra = sorted(set(folder.classes) ^ set(self.classes))
            raise ValueError(
                f"imagefolder: the classes of {self.root / sub} differ from those of {self.root / self.train_dir}: "
                f"{', '.join(extra[:10])}"
            )

    def prepare_data(self) -> None:
        if self.download:
            log.warning("imagefolder: download=True ignored, there is nothing to download")

    def setup(self, stage: str | None = None) -> None:
        """Scans the folders a stage needs (``fit``/``validate``: train (+val); ``test``: test)."""
        eval_tf = build_eval_transform("center", self.transform_spec())
        if stage in (None, "fit", "validate") and self.val_set is None:
            train = self._scan(self.train_dir)
            self._check_classes(train, self.train_dir)
            if self.val_dir:
                val = self._scan(self.val_dir)
                self._check_classes(val, self.val_dir)
                self.train_set = _Split(train, None, self.train_transform())
                self.val_set = _Split(val, None, eval_tf)
            else:
                train_idx, val_idx = split_indices(len(train.samples), self.val_size, self.split_seed)
                self.train_set = _Split(train, train_idx, self.train_transform())
                self.val_set = _Split(train, val_idx, eval_tf)
            log.info("imagefolder: %d train / %d val images, %d classes",
                     len(self.train_set), len(self.val_set), self.num_classes)
        if stage in (None, "test") and self.test_set is None:
            test = self._scan(self.test_dir)
            self._check_classes(test, self.test_dir)
            self.test_set = _Split(test, None, build_eval_transform(self.test_crop, self.transform_spec()))
