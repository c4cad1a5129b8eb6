"""Shared fixtures: small datasets written in the real on-disk formats, and real MNIST when present.

Each ``<name>_root`` fixture returns a data root that torchvision's own loaders
read exactly as they read the downloaded files (MNIST IDX files, CIFAR python
pickle batches, SVHN ``.mat``), with ``FIXTURE_TRAIN`` training and
``FIXTURE_TEST`` test images. Use them with ``download=False`` and a small
``val_size`` (``FIXTURE_VAL``); CIFAR and SVHN also need
``verify_checksums=False``, since torchvision checks the md5 of the official
files. Through Hydra: ``data.root=<root> data.val_size=16
data.verify_checksums=false``.

The images are not noise: each class draws a bright square at its own place
on a dim noisy background, so a model can learn them in a few steps.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# One intra-op thread per test process (override with ZOO_TEST_THREADS=n). The suite
# is many small tensor operations; on a busy 2-core machine, two OpenMP threads
# waiting on each other made them up to 100x slower (a digits epoch: 2.3 s vs
# 0.013 s), and under pytest-xdist each worker already has its own core.
torch.set_num_threads(int(os.environ.get("ZOO_TEST_THREADS", "1")))

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "", None}


class NetworkBlocked(OSError):
    """Raised when a test tries to reach another machine."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach the internet: resolving or connecting to any host but this machine raises
    :class:`NetworkBlocked`, so a download a test triggers by mistake fails at once instead of going out."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def _host(address):
        return address[0] if isinstance(address, tuple) else address

    def connect(sock, address):
        if sock.family != getattr(socket, "AF_UNIX", None) and _host(address) not in _LOCAL_HOSTS:
            raise NetworkBlocked(f"tests must not reach the network (connect to {address!r})")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in _LOCAL_HOSTS:
            raise NetworkBlocked(f"tests must not reach the network (lookup of {host!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


FIXTURE_TRAIN = 64
FIXTURE_TEST = 32
FIXTURE_VAL = 16

_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def class_images(labels: np.ndarray, size: int, channels: int, seed: int) -> np.ndarray:
    """uint8 images ``(N, size, size, channels)``: dim noise plus a bright square placed by the label.

    Args:
        labels: ``(N,)`` class indices.
        size: image side.
        channels: 1 or 3 (RGB squares also get a class colour).
        seed: noise seed.
    """
    rng = np.random.RandomState(seed)
    n = len(labels)
    images = rng.randint(0, 40, size=(n, size, size, channels)).astype(np.uint8)
    side = max(2, size // 5)
    for i, label in enumerate(labels):
        cell = int(label) % 16
        y = 1 + (cell // 4) * (size - side - 2) // 3
        x = 1 + (cell % 4) * (size - side - 2) // 3
        colour = [255] * channels if channels == 1 else [255, 60 + 40 * (int(label) % 5), 255 - 20 * (int(label) % 10)]
        images[i, y:y + side, x:x + side] = np.array(colour, dtype=np.uint8)
    return images


def _labels(n: int, num_classes: int, seed: int) -> np.ndarray:
    labels = np.arange(n) % num_classes  # every class present when n >= num_classes
    return np.random.RandomState(seed).permutation(labels).astype(np.uint8 if num_classes <= 256 else np.int64)


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """Writes uint8 images ``(N, H, W)`` as an IDX3 file (magic 2051, big-endian dims)."""
    n, h, w = images.shape
    path.write_bytes(struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """Writes uint8 labels ``(N,)`` as an IDX1 file (magic 2049)."""
    path.write_bytes(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = FIXTURE_TRAIN, n_test: int = FIXTURE_TEST) -> Path:
    """Writes an MNIST-format dataset under ``root/folder/raw`` (uncompressed, as torchvision extracts it)."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        labels = _labels(n, 10, seed)
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", class_images(labels, 28, 1, seed)[..., 0])
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def _cifar_batch(labels: np.ndarray, seed: int, key: str) -> dict:
    images = class_images(labels, 32, 3, seed)  # (N, 32, 32, 3)
    data = images.transpose(0, 3, 1, 2).reshape(len(labels), 3072)  # rows: R plane, G plane, B plane
    batch = {"batch_label": f"fixture batch {seed}", key: [int(v) for v in labels], "data": data,
             "filenames": [f"img_{seed}_{i}.png" for i in range(len(labels))]}
    if key == "fine_labels":
        batch["coarse_labels"] = [int(v) // 5 for v in labels]
    return batch


def _dump(obj: dict, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root: Path, n_train: int = FIXTURE_TRAIN, n_test: int = FIXTURE_TEST) -> Path:
    """Writes ``root/cifar-10-batches-py`` with data_batch_1..5, test_batch and batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    labels = _labels(n_train, 10, 3).astype(np.int64)
    for i, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        _dump(_cifar_batch(labels[part], 10 + i, "labels"), folder / f"data_batch_{i}")
    _dump(_cifar_batch(_labels(n_test, 10, 4).astype(np.int64), 20, "labels"), folder / "test_batch")
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _dump({"label_names": names, "num_cases_per_batch": 10000, "num_vis": 3072}, folder / "batches.meta")
    return root


def write_cifar100(root: Path, n_train: int = FIXTURE_TRAIN, n_test: int = FIXTURE_TEST) -> Path:
    """Writes ``root/cifar-100-python`` with train, test and meta."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    _dump(_cifar_batch(_labels(n_train, 100, 5).astype(np.int64), 30, "fine_labels"), folder / "train")
    _dump(_cifar_batch(_labels(n_test, 100, 6).astype(np.int64), 31, "fine_labels"), folder / "test")
    _dump({"fine_label_names": [f"class_{i:02d}" for i in range(100)],
           "coarse_label_names": [f"super_{i:02d}" for i in range(20)]}, folder / "meta")
    return root


def write_svhn(root: Path, n_train: int = FIXTURE_TRAIN, n_test: int = FIXTURE_TEST) -> Path:
    """Writes ``root/SVHN/{train,test}_32x32.mat``: X (32, 32, 3, N) uint8, y (N, 1) with 10 for digit 0."""
    from scipy.io import savemat

    folder = root / "SVHN"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 7), ("test", n_test, 8)):
        labels = _labels(n, 10, seed)
        images = class_images(labels, 32, 3, seed)  # (N, 32, 32, 3)
        y = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]
        savemat(folder / f"{split}_32x32.mat", {"X": images.transpose(1, 2, 3, 0), "y": y})
    return root


def write_imagefolder(root: Path, classes: tuple[str, ...] = ("cat", "dog", "fish"), n_train: int = 8,
                      n_test: int = 3) -> Path:
    """Writes ``root/{train,val}/<class>/*.{png,jpg}`` with images of varied sizes (about 40-60 px)."""
    from torchvision.io import write_jpeg, write_png

    rng = np.random.RandomState(9)
    for split, n in (("train", n_train), ("val", n_test)):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = int(rng.randint(40, 61)), int(rng.randint(40, 61))
                img = class_images(np.array([c]), max(h, w), 3, seed=100 * c + i)[0][:h, :w]  # (H, W, 3)
                tensor = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))  # (3, H, W)
                if i % 2:
                    write_jpeg(tensor, str(folder / f"{i:03d}.jpg"), quality=95)
                else:
                    write_png(tensor, str(folder / f"{i:03d}.png"))
    return root


def write_jpeg_tree(root: Path, classes: tuple[str, ...] = ("airplane", "automobile", "bird"), n: int = 6,
                    size: int = 32, quality: int = 75, seed: int = 0) -> Path:
    """Writes ``root/<class>/NNNN.jpg``: ``n`` JPEG images of ``size x size`` per class (class squares)."""
    from torchvision.io import encode_jpeg

    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        images = class_images(np.full(n, c), size, 3, seed=seed + 31 * c)  # (n, H, W, 3)
        for i, img in enumerate(images):
            data = encode_jpeg(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), quality=quality)
            (folder / f"{i:04d}.jpg").write_bytes(data.numpy().tobytes())
    return root


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def find_real_cifar10_jpeg() -> Path | None:
    """The data root holding the JPEG copy of CIFAR-10 (``cifar10-jpeg/{train,test}/<class>``), if present."""
    for cand in (os.environ.get("ZOO_DATA"), PROJECT_ROOT.parent / "shared" / "data"):
        tree = Path(cand) / "cifar10-jpeg" if cand else None
        if tree is not None and all((tree / split / c).is_dir() for split in ("train", "test") for c in CIFAR10_CLASSES):
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def cifar10_jpeg_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data root with a small ``cifar10-jpeg/{train,test}/<class>/NNNN.jpg`` tree: the first 100 training and
    20 test images of every class copied from the real JPEG copy of CIFAR-10 when it is on this machine,
    else generated JPEG images of the same layout."""
    import shutil

    root = tmp_path_factory.mktemp("cifar10_jpeg")
    real = find_real_cifar10_jpeg()
    for split, n in (("train", 100), ("test", 20)):
        if real is None:
            write_jpeg_tree(root / "cifar10-jpeg" / split, CIFAR10_CLASSES, n, seed=0 if split == "train" else 7)
            continue
        for c in CIFAR10_CLASSES:
            src, dst = real / "cifar10-jpeg" / split / c, root / "cifar10-jpeg" / split / c
            dst.mkdir(parents=True)
            for f in sorted(src.iterdir())[:n]:
                shutil.copyfile(f, dst / f.name)
    return root


@pytest.fixture(scope="session")
def real_cifar10_jpeg_root() -> Path:
    """Data root of the whole JPEG copy of CIFAR-10 (skips the test when it is not on this machine)."""
    root = find_real_cifar10_jpeg()
    if root is None:
        pytest.skip("the JPEG copy of CIFAR-10 not found in $ZOO_DATA or ../shared/data (cifar10-jpeg/)")
    return root


@pytest.fixture(autouse=True)
def rank_zero_restored():
    """Lightning records the process's rank in a global (``rank_zero_only.rank``) when a trainer of a
    data-parallel strategy is built; a test that builds one as rank 1 would silence every later rank-zero
    write of its worker (the CSV logger's metrics). The rank is put back after each test."""
    from lightning_fabric.utilities import rank_zero as fabric_rank_zero
    from pytorch_lightning.utilities import rank_zero as pl_rank_zero

    functions = {id(f): f for f in (fabric_rank_zero.rank_zero_only, pl_rank_zero.rank_zero_only)}.values()
    saved = [(f, getattr(f, "rank", 0)) for f in functions]
    yield
    for f, rank in saved:
        f.rank = rank


@pytest.fixture(autouse=True)
def zoo_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Decoded-image caches go to a folder of this test session ($ZOO_CACHE), never to ~/.cache/zoo."""
    folder = tmp_path_factory.getbasetemp() / "zoo-cache"
    monkeypatch.setenv("ZOO_CACHE", str(folder))
    return folder


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data root with a small MNIST in the real IDX layout (``MNIST/raw/*-ubyte``)."""
    return write_mnist(tmp_path_factory.mktemp("mnist"), "MNIST")


@pytest.fixture(scope="session")
def fashion_mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data root with a small Fashion-MNIST in the real IDX layout (``FashionMNIST/raw``)."""
    return write_mnist(tmp_path_factory.mktemp("fashion_mnist"), "FashionMNIST")


@pytest.fixture(scope="session")
def kmnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data root with a small KMNIST in the real IDX layout (``KMNIST/raw``)."""
    return write_mnist(tmp_path_factory.mktemp("kmnist"), "KMNIST")


@pytest.fixture(scope="session")
def cifar10_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data root with a small CIFAR-10 in the real pickle layout (``cifar-10-batches-py``)."""
    return write_cifar10(tmp_path_factory.mktemp("cifar10"))


@pytest.fixture(scope="session")
def cifar100_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data root with a small CIFAR-100 in the real pickle layout (``cifar-100-python``)."""
    return write_cifar100(tmp_path_factory.mktemp("cifar100"))


@pytest.fixture(scope="session")
def svhn_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data root with a small SVHN in the real ``.mat`` format (``SVHN/{train,test}_32x32.mat``)."""
    return write_svhn(tmp_path_factory.mktemp("svhn"))


@pytest.fixture(scope="session")
def imagefolder_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ImageNet-style tree: ``train/`` (3 classes x 8 images), ``val/`` (3 x 3), PNG and JPEG."""
    return write_imagefolder(tmp_path_factory.mktemp("imagefolder"))


def find_real_mnist() -> Path | None:
    """The data root holding real MNIST: ``$ZOO_DATA`` or ``<project>/../shared/data``, if ``MNIST/raw`` is complete."""
    candidates = [os.environ.get("ZOO_DATA"), PROJECT_ROOT.parent / "shared" / "data"]
    for cand in candidates:
        if cand and all((Path(cand) / "MNIST" / "raw" / f).is_file() for f in _MNIST_FILES):
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def real_mnist_root() -> Path:
    """Data root of the real MNIST (skips the test when it is not on this machine)."""
    root = find_real_mnist()
    if root is None:
        pytest.skip("real MNIST not found in $ZOO_DATA or ../shared/data (MNIST/raw)")
    return root
