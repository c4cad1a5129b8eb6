"""A folder tree of small images, decoded once into a uint8 tensor cache.

``<folder>/<class>/<image>`` (torchvision's ``ImageFolder`` layout, in its order: classes and
files sorted by name, sub-folders walked in sorted order) is decoded into one ``(N, C, H, W)``
uint8 tensor and its ``(N,)`` int64 labels. JPEG files are decoded in batches with
``torchvision.io.decode_jpeg``; PNG, GIF and WebP with ``decode_image``; other formats through
Pillow.

The result is written to a cache file, atomically, in :func:`cache_dir` (``$ZOO_CACHE``, else
``~/.cache/zoo``), named by a fingerprint of the tree: the relative paths and sizes of its files
and the decoding settings. A tree whose file list or sizes change has another fingerprint and is
decoded again. The cache is a convenience, never the source of truth: a file that cannot be read,
whose recorded fingerprint or shapes disagree, or whose pixels fail their SHA-256 is logged and
rebuilt from the images.

The images must share one size, unless ``image_size`` is given: then each image is resized once
(bilinear, antialiased) to ``image_size x image_size`` as it is decoded, and the fingerprint
includes that size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torchvision.io import ImageReadMode, decode_image, decode_jpeg
from torchvision.transforms.v2.functional import resize

from zoo._atomic import atomic_write

__all__ = ["IMAGE_EXTENSIONS", "TreeListing", "ImageTreeError", "cache_dir", "scan_tree", "load_tree"]

log = logging.getLogger(__name__)

#: file extensions read as images (lower case), as torchvision's ``ImageFolder``.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
#: version of the cache file's layout; a file of another version is rebuilt.
CACHE_VERSION = "1"
_JPEG = (".jpg", ".jpeg")
_DECODE_CHUNK = 4096  # files read and decoded per batch


class ImageTreeError(ValueError):
    """A folder tree cannot be made into one image tensor (no images, an unreadable image, mixed sizes)."""


def cache_dir() -> Path:
    """The cache folder: ``$ZOO_CACHE``, else ``~/.cache/zoo``."""
    env = os.environ.get("ZOO_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "zoo"


@dataclass(frozen=True)
class TreeListing:
    """The images of a folder tree, in ``ImageFolder``'s order.

    Attributes:
        root: the folder.
        classes: the class folder names, sorted.
        files: the image paths relative to ``root`` (``class/.../name``), in order.
        targets: the class index of each file.
        sizes: the size of each file in bytes.
    """

    root: Path
    classes: tuple[str, ...]
    files: tuple[str, ...]
    targets: tuple[int, ...]
    sizes: tuple[int, ...]

    def fingerprint(self, channels: int, image_size: int | None) -> str:
        """SHA-256 of the file list, the file sizes and the decoding settings.

        Args:
            channels: 3 (RGB) or 1 (grey).
            image_size: the side every image is resized to, or ``None`` (native size).

        Returns:
            64 hex digits.
        """
        h = hashlib.sha256(f"zoo-image-tree v{CACHE_VERSION} channels={channels} size={image_size}\n".encode())
        h.update("\n".join(self.classes).encode() + b"\n\n")
        for rel, size in zip(self.files, self.sizes):
            h.update(f"{rel}\t{size}\n".encode())
        return h.hexdigest()


def scan_tree(folder: str | os.PathLike) -> TreeListing:
    """Lists the images of ``folder/<class>/...`` as ``torchvision.datasets.ImageFolder`` does.

    Args:
        folder: the tree's root.

    Returns:
        The listing.

    Raises:
        ImageTreeError: if the folder has no class folders or no images.
    """
    root = Path(folder)
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not classes:
        raise ImageTreeError(f"{root} has no class folders: expected {root}/<class>/<images>")
    files: list[str] = []
    targets: list[int] = []
    sizes: list[int] = []
    for index, name in enumerate(classes):
        for dirpath, _, fnames in sorted(os.walk(root / name, followlinks=True)):
            rel_dir = os.path.relpath(dirpath, root)
            for fname in sorted(fnames):
                if fname.lower().endswith(IMAGE_EXTENSIONS):
                    files.append(f"{rel_dir}/{fname}")
                    targets.append(index)
                    sizes.append(os.stat(os.path.join(dirpath, fname)).st_size)
    if not files:
        raise ImageTreeError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}/<class>/")
    return TreeListing(root, tuple(classes), tuple(files), tuple(targets), tuple(sizes))


def _decode_other(path: Path, data: torch.Tensor, mode: ImageReadMode) -> torch.Tensor:
    """Decodes a PNG, GIF or WebP file with ``torchvision.io``, other formats (BMP, TIFF, ...) with Pillow."""
    try:
        return decode_image(data, mode=mode)
    except RuntimeError:  # a format torchvision.io cannot decode (BMP, TIFF, ...)
        from PIL import Image
        from torchvision.transforms.v2.functional import pil_to_tensor

        with Image.open(path) as img:
            return pil_to_tensor(img.convert("RGB" if mode.name == "RGB" else "L"))


def _decode(listing: TreeListing, channels: int, image_size: int | None) -> torch.Tensor:
    """Decodes every image of ``listing`` into ``(N, C, H, W)`` uint8."""
    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    out: torch.Tensor | None = None
    first: tuple[str, tuple[int, ...]] | None = None
    for start in range(0, len(listing.files), _DECODE_CHUNK):
        rels = listing.files[start:start + _DECODE_CHUNK]
        paths = [listing.root / rel for rel in rels]
        datas = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in paths]
        images: list[torch.Tensor | None] = [None] * len(rels)
        jpeg = [i for i, p in enumerate(paths) if p.suffix.lower() in _JPEG]
        if jpeg:
            try:
                decoded = decode_jpeg([datas[i] for i in jpeg], mode=mode)
            except RuntimeError:  # one bad file fails the batch: decode one by one to name it
                decoded = []
                for i in jpeg:
                    try:
                        decoded.append(decode_jpeg(datas[i], mode=mode))
                    except RuntimeError as err:
                        raise ImageTreeError(f"{paths[i]}: cannot be decoded as JPEG ({err}); remove or "
                                             "replace the file") from err
            for i, img in zip(jpeg, decoded):
                images[i] = img
        for i, p in enumerate(paths):
            if images[i] is None:
                try:
                    images[i] = _decode_other(p, datas[i], mode)
                except Exception as err:  # noqa: BLE001 - any decoder failure names the file
                    raise ImageTreeError(f"{p}: cannot be decoded as an image ({err}); remove or replace "
                                         "the file") from err
        for i, img in enumerate(images):
            assert img is not None
            if image_size is not None and tuple(img.shape[-2:]) != (image_size, image_size):
                img = resize(img, [image_size, image_size], antialias=True)
                images[i] = img
            shape = tuple(img.shape)
            if first is None:
                first = (rels[i], shape)
                out = torch.empty((len(listing.files), *shape), dtype=torch.uint8)
            elif shape != first[1]:
                raise ImageTreeError(
                    f"{listing.root}: the images differ in size: {first[0]} is {_hw(first[1])} but {rels[i]} "
                    f"is {_hw(shape)}. An in-memory tensor needs one size: set data.image_size to resize every "
                    f"image once as it is decoded, e.g. data.image_size={first[1][-1]}")
            assert out is not None
            out[start + i] = img
    assert out is not None
    return out


def _hw(shape: Sequence[int]) -> str:
    return f"{shape[-1]}x{shape[-2]} px"


def _pixels_sha256(images: torch.Tensor) -> str:
    return hashlib.sha256(memoryview(images.contiguous().view(-1).numpy())).hexdigest()


def _cache_file(name: str, key: str) -> Path:
    return cache_dir() / f"{name}-{key[:24]}.safetensors"


def _read_cache(path: Path, key: str, listing: TreeListing) -> torch.Tensor:
    """The images of a cache file; raises ``ValueError`` (or an I/O error) when it is not a good copy."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("version") != CACHE_VERSION or meta.get("fingerprint") != key:
            raise ValueError("it was made from another file list (stale)")
        images = f.get_tensor("images")
    n = len(listing.files)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[0] != n:
        raise ValueError(f"it holds {images.dtype} {tuple(images.shape)}, expected {n} uint8 images")
    if _pixels_sha256(images) != meta.get("sha256"):
        raise ValueError("its pixels fail their checksum (corrupt)")
    return images


def load_tree(folder: str | os.PathLike, *, channels: int = 3, image_size: int | None = None,
              cache: bool = True, name: str = "tree") -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Decodes ``folder/<class>/<images>`` into tensors, through the cache.

    Args:
        folder: the tree's root.
        channels: 3 (decoded as RGB) or 1 (grey).
        image_size: resize every image to this square side as it is decoded; ``None`` keeps the
            native size, which every image must share (a cache made at the native size serves any
            ``image_size`` when the images share one size).
        cache: read and write the cache file (``False``: decode every time).
        name: prefix of the cache file's name (e.g. ``"cifar10-jpeg-train"``).

    Returns:
        ``(images (N, C, H, W) uint8, targets (N,) int64, classes)``.

    Raises:
        ImageTreeError: no images, an image that cannot be decoded, or mixed sizes without ``image_size``.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    listing = scan_tree(folder)
    targets = torch.tensor(listing.targets, dtype=torch.int64)
    classes = list(listing.classes)
    keys = [listing.fingerprint(channels, None)]
    if image_size is not None:
        keys.append(listing.fingerprint(channels, image_size))
    if cache:
        for key in keys:
            path = _cache_file(name, key)
            if not path.is_file():
                continue
            t0 = time.perf_counter()
            try:
                images = _read_cache(path, key, listing)
            except Exception as err:  # noqa: BLE001 - any unreadable cache is rebuilt
                log.warning("%s: the cache %s is not usable (%s: %s); decoding the images again",
                            listing.root, path, type(err).__name__, err)
                path.unlink(missing_ok=True)
                continue
            log.info("%s: %d images %s loaded from the cache %s in %.2f s", listing.root, len(images),
                     tuple(images.shape[1:]), path, time.perf_counter() - t0)
            return images, targets, classes
    t0 = time.perf_counter()
    try:
        images = _decode(listing, channels, None)
        key = keys[0]
    except ImageTreeError as err:
        if image_size is None or "differ in size" not in str(err):
            raise
        images = _decode(listing, channels, image_size)
        key = keys[1]
    seconds = time.perf_counter() - t0
    log.info("%s: %d images decoded in %.1f s", listing.root, len(images), seconds)
    if cache:
        path = _cache_file(name, key)
        meta = {"version": CACHE_VERSION, "fingerprint": key, "root": str(listing.root.resolve()),
                "classes": json.dumps(classes), "count": str(len(images)), "sha256": _pixels_sha256(images),
                "decode_seconds": f"{seconds:.2f}"}
        try:
            from safetensors.torch import save

            blob = save({"images": images, "targets": targets}, metadata=meta)
            atomic_write(path, lambda f: f.write(blob))
            log.info("%s: cache written to %s (%.0f MB)", listing.root, path, len(blob) / 1e6)
            _remove_superseded(name, path, meta["root"])
        except OSError as err:  # a read-only or full cache folder costs a decode next time, nothing more
            log.warning("%s: could not write the cache %s (%s); set $ZOO_CACHE to a writable folder",
                        listing.root, path, err)
    return images, targets, classes


def _remove_superseded(name: str, keep: Path, root: str) -> None:
    """Deletes the other cache files of ``name`` made from the same folder (an older file list)."""
    from safetensors import safe_open

    for other in keep.parent.glob(f"{name}-*.safetensors"):
        if other == keep:
            continue
        try:
            with safe_open(str(other), framework="pt") as f:
                same = (f.metadata() or {}).get("root") == root
        except Exception:  # noqa: BLE001 - an unreadable file of ours is removed too
            same = True
        if same:
            other.unlink(missing_ok=True)
            log.info("removed the superseded cache %s", other)

