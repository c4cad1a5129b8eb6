"""Datamodules over torchvision's file loaders: MNIST, Fashion-MNIST, KMNIST, CIFAR-10/100, SVHN.

torchvision reads the files (IDX, CIFAR pickle batches, SVHN ``.mat``) in the
layouts it downloads to; the whole split is then taken as one uint8 tensor and
served by :class:`~zoo.data.base.InMemoryDataModule` (no per-sample PIL).

Where the files are looked for, under ``root``:

==============  ===============================================================
mnist           ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``
fashion_mnist   ``FashionMNIST/raw/`` (same four files)
kmnist          ``KMNIST/raw/`` (same four files)
cifar10         ``cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}``
cifar100        ``cifar-100-python/{train,test,meta}``
svhn            ``SVHN/{train,test}_32x32.mat`` (or directly in ``root``,
                where ``torchvision.datasets.SVHN`` itself puts them)
==============  ===============================================================

28x28 datasets at ``image_size=32`` are zero-padded by 2 px on each side, as
LeCun et al. 1998 (Sec. III.A) pad MNIST for LeNet-5 (``resize_mode="resize"``
rescales instead).

Checksums: torchvision verifies the md5 of every CIFAR and SVHN file against
the official release. ``verify_checksums=False`` loads files in the same
format whose bytes differ (re-packed copies, and the small real-format files
the test suite writes); MNIST-style files have no checksum once extracted, so
their IDX headers are checked instead (magic number, image size, file length
against the header, as many labels as images, labels in 0..9): a damaged file
raises :class:`~zoo.data.base.DatasetNotFoundError` naming it and what is wrong.
"""

from __future__ import annotations

import logging
import math
import os
import struct
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torchvision import datasets as tvd

from zoo.data.base import DatasetNotFoundError, InMemoryDataModule
from zoo.data.registry import register_datamodule

__all__ = [
    "TorchvisionDataModule",
    "MNISTDataModule",
    "FashionMNISTDataModule",
    "KMNISTDataModule",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "SVHNDataModule",
]

log = logging.getLogger(__name__)


def _without_md5(entries: list[list[Any]]) -> list[list[Any]]:
    return [[name, None] for name, _ in entries]


class _CIFAR10Unverified(tvd.CIFAR10):
    """CIFAR-10 reader that checks the files exist but not their md5 (``verify_checksums=False``)."""

    train_list = _without_md5(tvd.CIFAR10.train_list)
    test_list = _without_md5(tvd.CIFAR10.test_list)
    meta = {**tvd.CIFAR10.meta, "md5": None}


class _CIFAR100Unverified(tvd.CIFAR100):
    """CIFAR-100 reader that checks the files exist but not their md5 (``verify_checksums=False``)."""

    train_list = _without_md5(tvd.CIFAR100.train_list)
    test_list = _without_md5(tvd.CIFAR100.test_list)
    meta = {**tvd.CIFAR100.meta, "md5": None}


class _SVHNUnverified(tvd.SVHN):
    """SVHN reader that checks the files exist but not their md5 (``verify_checksums=False``)."""

    split_list = {k: [url, name, None] for k, (url, name, _) in tvd.SVHN.split_list.items()}


class TorchvisionDataModule(InMemoryDataModule):
    """Shared download / error handling of the torchvision-backed datamodules.

    Subclasses name the folder and files (:meth:`folder`, :meth:`expected_files`)
    and open one split with torchvision (:meth:`_open`).
    """

    #: human-readable dataset name for messages.
    TITLE: ClassVar[str] = ""
    #: whether torchvision checks md5 sums of the files.
    HAS_CHECKSUMS: ClassVar[bool] = False

    def folder(self) -> Path:
        """The folder the files are expected in."""
        raise NotImplementedError

    def expected_files(self) -> list[str]:
        """Names of the files expected in :meth:`folder`."""
        raise NotImplementedError

    def _open(self, train: bool, download: bool) -> Any:
        """Opens one split with torchvision."""
        raise NotImplementedError

    def _error(self, missing: list[str], **kwargs: Any) -> DatasetNotFoundError:
        return DatasetNotFoundError(
            self.TITLE, self.folder(), self.expected_files(), missing,
            subdir=os.path.relpath(self.folder(), self.root), **kwargs,
        )

    def missing_files(self) -> list[str]:
        """The expected files not present in :meth:`folder`."""
        folder = self.folder()
        return [f for f in self.expected_files() if not (folder / f).is_file()]

    def _ensure_files(self) -> None:
        missing = self.missing_files()
        if not missing:
            return
        if not self.download:
            raise self._error(missing)
        try:
            for train in (True, False):
                self._open(train, download=True)
        except Exception as err:  # network, checksum or extraction failure
            raise self._error(self.missing_files(), download_error=err) from err

    def _load_split(self, train: bool) -> Any:
        try:
            return self._open(train, download=False)
        except RuntimeError as err:
            missing = self.missing_files()
            detail = None
            if not missing:
                detail = f"the files are there but torchvision rejected them: {err}"
                if self.HAS_CHECKSUMS:
                    detail += (
                        " (their md5 differs from the official release; set data.verify_checksums=false "
                        "to load files in the same format anyway)"
                    )
            raise self._error(missing, download=self.download, detail=detail) from err


#: IDX magic numbers: 0x0000 + type 0x08 (unsigned byte) + number of dimensions.
_IDX_LABELS = (2049, 1)  # 0x00000801: (N,) labels
_IDX_IMAGES = (2051, 3)  # 0x00000803: (N, rows, cols) images


class _DamagedFile(ValueError):
    """What is wrong with one IDX file (the message names the file)."""


def _read_idx_header(path: Path, magic: int, ndim: int) -> tuple[int, ...]:
    """Checks an IDX file's magic number and its length against the header; returns the dimensions.

    Args:
        path: the IDX file.
        magic: its expected magic number (2049 for labels, 2051 for images).
        ndim: its number of dimensions (1 for labels, 3 for images).

    Returns:
        The dimensions the header states, e.g. ``(60000, 28, 28)``.

    Raises:
        _DamagedFile: if the magic number is wrong or the length differs from the header's.
    """
    size = path.stat().st_size
    header = 4 * (1 + ndim)
    with open(path, "rb") as f:
        head = f.read(header)
    kind = "label (IDX1)" if ndim == 1 else "image (IDX3)"
    if len(head) < 4:
        raise _DamagedFile(f"{path.name} has {size} bytes, too short for the 4-byte magic number of an IDX file")
    got = struct.unpack(">I", head[:4])[0]
    if got != magic:
        hint = " (it looks gzip-compressed: extract it with gunzip)" if head[:2] == b"\x1f\x8b" else ""
        raise _DamagedFile(
            f"{path.name} starts with magic number {got} (0x{got:08x}), but an MNIST {kind} file starts "
            f"with {magic} (0x{magic:08x}){hint}"
        )
    if len(head) < header:
        raise _DamagedFile(f"{path.name} has {size} bytes, shorter than its {header}-byte IDX header (truncated)")
    dims = struct.unpack(f">{ndim}I", head[4:])
    expected = header + math.prod(dims)
    if size != expected:
        what = "truncated" if size < expected else f"{size - expected} bytes too many"
        raise _DamagedFile(
            f"{path.name} has {size} bytes, but its header promises {' x '.join(map(str, dims))} values "
            f"({expected} bytes with the header): {what}"
        )
    return dims


class _MNISTLike(TorchvisionDataModule):
    """MNIST-format (IDX) datasets: 28x28 grey images, 10 classes, 60,000 + 10,000."""

    TV_CLASS: ClassVar[type[tvd.MNIST]] = tvd.MNIST
    NUM_CLASSES = 10
    IN_CHANS = 1
    NATIVE_SIZE = 28

    def __init__(self, root: str | os.PathLike | None = None, download: bool = False, batch_size: int = 128,
                 num_workers: int = 0, *, image_size: int | None = 32, val_size: int | float = 5000,
                 **kwargs: Any) -> None:
        super().__init__(root, download, batch_size, num_workers, image_size=image_size, val_size=val_size,
                         **kwargs)

    def folder(self) -> Path:
        return self.root / self.TV_CLASS.__name__ / "raw"

    def expected_files(self) -> list[str]:
        return [os.path.splitext(name)[0] for name, _ in self.TV_CLASS.resources]

    def _open(self, train: bool, download: bool) -> tvd.MNIST:
        return self.TV_CLASS(str(self.root), train=train, download=download)

    def _check_idx_files(self, train: bool) -> None:
        """Checks the split's two IDX files (those present) before torchvision reads them.

        Raises:
            DatasetNotFoundError: naming the damaged file and what is wrong with it.
        """
        prefix = "train" if train else "t10k"
        images_path = self.folder() / f"{prefix}-images-idx3-ubyte"
        labels_path = self.folder() / f"{prefix}-labels-idx1-ubyte"
        try:
            n_images = n_labels = None
            if images_path.is_file():
                n_images, rows, cols = _read_idx_header(images_path, *_IDX_IMAGES)
                if (rows, cols) != (self.NATIVE_SIZE, self.NATIVE_SIZE):
                    raise _DamagedFile(
                        f"{images_path.name} holds {rows}x{cols} images, but {self.TITLE} images are "
                        f"{self.NATIVE_SIZE}x{self.NATIVE_SIZE}"
                    )
            if labels_path.is_file():
                (n_labels,) = _read_idx_header(labels_path, *_IDX_LABELS)
                labels = np.fromfile(labels_path, dtype=np.uint8, offset=8)
                bad = np.flatnonzero(labels >= self.NUM_CLASSES)
                if len(bad):
                    raise _DamagedFile(
                        f"{labels_path.name} holds label {int(labels[bad[0]])} at position {int(bad[0])} "
                        f"({len(bad)} of its {len(labels)} labels are outside 0..{self.NUM_CLASSES - 1})"
                    )
            if n_images is not None and n_labels is not None and n_images != n_labels:
                raise _DamagedFile(
                    f"{labels_path.name} holds {n_labels} labels but {images_path.name} holds {n_images} "
                    "images; the two files of a split must have one label per image"
                )
        except _DamagedFile as err:
            raise self._error([], detail=f"damaged file: {err}") from None

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_idx_files(train)
        try:
            ds = self._load_split(train)
        except (AssertionError, IndexError, KeyError, TypeError, ValueError) as err:  # a format not caught above
            raise self._error(
                [], detail=f"torchvision could not read the IDX files in {self.folder()}: "
                           f"{type(err).__name__}: {err}"
            ) from err
        self.classes = list(ds.classes)
        return ds.data.unsqueeze(1).contiguous(), ds.targets.to(torch.int64)  # (N, 1, 28, 28)


@register_datamodule("mnist")
class MNISTDataModule(_MNISTLike):
    """MNIST (LeCun et al. 1998): 60,000 training (55,000 train / 5,000 val) and 10,000 test digits.

    Defaults to 32x32 by zero padding, the input LeNet-5 was designed for.
    Arguments as :class:`~zoo.data.base.ImageDataModule` plus ``resize_mode``.
    """

    name = "mnist"
    TITLE = "MNIST"
    STATS_KEY = "mnist"


@register_datamodule("fashion_mnist")
class FashionMNISTDataModule(_MNISTLike):
    """Fashion-MNIST (Xiao et al. 2017, arXiv:1708.07747): 10 clothing classes in MNIST's format."""

    name = "fashion_mnist"
    TITLE = "Fashion-MNIST"
    STATS_KEY = "fashion_mnist"
    TV_CLASS = tvd.FashionMNIST


@register_datamodule("kmnist")
class KMNISTDataModule(_MNISTLike):
    """Kuzushiji-MNIST (Clanuwat et al. 2018, arXiv:1812.01718): 10 cursive Japanese characters."""

    name = "kmnist"
    TITLE = "KMNIST"
    STATS_KEY = "kmnist"
    TV_CLASS = tvd.KMNIST


class _CIFARBase(TorchvisionDataModule):
    """CIFAR pickle batches: 32x32 RGB, 50,000 training and 10,000 test images."""

    HAS_CHECKSUMS = True
    IN_CHANS = 3
    NATIVE_SIZE = 32
    TV_CLASS: ClassVar[type[tvd.CIFAR10]] = tvd.CIFAR10
    TV_UNVERIFIED: ClassVar[type[tvd.CIFAR10]] = _CIFAR10Unverified

    def __init__(self, root: str | os.PathLike | None = None, download: bool = False, batch_size: int = 128,
                 num_workers: int = 0, *, verify_checksums: bool = True, val_size: int | float = 5000,
                 **kwargs: Any) -> None:
        super().__init__(root, download, batch_size, num_workers, val_size=val_size, **kwargs)
        self.verify_checksums = bool(verify_checksums)

    def folder(self) -> Path:
        return self.root / self.TV_CLASS.base_folder

    def expected_files(self) -> list[str]:
        cls = self.TV_CLASS
        return [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]

    def _open(self, train: bool, download: bool) -> tvd.CIFAR10:
        cls = self.TV_CLASS if self.verify_checksums else self.TV_UNVERIFIED
        return cls(str(self.root), train=train, download=download)

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        ds = self._load_split(train)
        self.classes = list(ds.classes)
        images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))  # (N, 3, 32, 32)
        return images, torch.as_tensor(ds.targets, dtype=torch.int64)


@register_datamodule("cifar10")
class CIFAR10DataModule(_CIFARBase):
    """CIFAR-10 (Krizhevsky 2009): 45,000 train / 5,000 val (He et al. 2015's split sizes) / 10,000 test.

    Args:
        verify_checksums: check torchvision's md5 of each file (see module doc).
        **kwargs: see :class:`~zoo.data.base.ImageDataModule`.
    """

    name = "cifar10"
    TITLE = "CIFAR-10"
    STATS_KEY = "cifar10"
    NUM_CLASSES = 10


@register_datamodule("cifar100")
class CIFAR100DataModule(_CIFARBase):
    """CIFAR-100 (Krizhevsky 2009), the 100 fine labels: 45,000 / 5,000 / 10,000.

    Args:
        verify_checksums: check torchvision's md5 of each file (see module doc).
        **kwargs: see :class:`~zoo.data.base.ImageDataModule`.
    """

    name = "cifar100"
    TITLE = "CIFAR-100"
    STATS_KEY = "cifar100"
    NUM_CLASSES = 100
    TV_CLASS = tvd.CIFAR100
    TV_UNVERIFIED = _CIFAR100Unverified


@register_datamodule("svhn")
class SVHNDataModule(TorchvisionDataModule):
    """SVHN cropped digits (Netzer et al. 2011): 73,257 training and 26,032 test 32x32 RGB images.

    Labels are 0-9 (torchvision maps the file's label 10 to digit 0).

    Args:
        use_extra: add the 531,131 "extra" images to the training set.
        verify_checksums: check torchvision's md5 of each file (see module doc).
        **kwargs: see :class:`~zoo.data.base.ImageDataModule`.
    """

    name = "svhn"
    TITLE = "SVHN"
    STATS_KEY = "svhn"
    HAS_CHECKSUMS = True
    NUM_CLASSES = 10
    IN_CHANS = 3
    NATIVE_SIZE = 32

    def __init__(self, root: str | os.PathLike | None = None, download: bool = False, batch_size: int = 128,
                 num_workers: int = 0, *, use_extra: bool = False, verify_checksums: bool = True,
                 val_size: int | float = 5000, **kwargs: Any) -> None:
        super().__init__(root, download, batch_size, num_workers, val_size=val_size, **kwargs)
        self.use_extra = bool(use_extra)
        self.verify_checksums = bool(verify_checksums)

    def _splits(self, train: bool) -> list[str]:
        return (["train", "extra"] if self.use_extra else ["train"]) if train else ["test"]

    def folder(self) -> Path:
        own = self.root / "SVHN"
        if not (own / "train_32x32.mat").is_file() and (self.root / "train_32x32.mat").is_file():
            return self.root  # torchvision's own layout: the .mat files directly in root
        return own

    def expected_files(self) -> list[str]:
        return [tvd.SVHN.split_list[s][1] for s in self._splits(True) + self._splits(False)]

    def _open(self, train: bool, download: bool) -> list[tvd.SVHN]:
        cls = tvd.SVHN if self.verify_checksums else _SVHNUnverified
        return [cls(str(self.folder()), split=s, download=download) for s in self._splits(train)]

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        parts = self._load_split(train)
        self.classes = [str(i) for i in range(10)]
        images = torch.from_numpy(np.concatenate([p.data for p in parts]))  # (N, 3, 32, 32)
        targets = torch.from_numpy(np.concatenate([p.labels for p in parts]).astype(np.int64))
        return images, targets
