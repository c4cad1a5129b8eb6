"""Classifying image files with a trained model: ``zoo predict <run | .ckpt | .safetensors> <images or folders>``.

Each image is decoded with ``torchvision.io.decode_image`` (PNG, JPEG, GIF, WebP) as grey or RGB to match
the model's input channels (a colour image into a grey model is converted, and the reverse), brought to the
model's input size the way the run's evaluation brought its data there, normalised with the run's mean and
std, and scored; the top-k classes come back with their softmax probabilities.

Bringing an image to the input size (:class:`Preprocess`):

* in-memory datasets (digits, MNIST, CIFAR, SVHN, small image folders) held their images at the dataset's
  native size and brought them to ``image_size`` with ``resize_mode``: ``pad`` (zero padding, centred:
  MNIST's 28 px to LeNet-5's 32) or ``resize`` (bilinear, antialiased). An image of another size is first
  resized to the native size (when the run's record names the dataset), then padded or resized the same way;
  without a record of the dataset, an image that fits is padded and a larger one resized (the default
  ``resize_mode="pad"``). An image already at the input size is taken as it is;
* streamed image folders: shorter side to ``resize_size``, centre crop of ``image_size``, as their
  evaluation transform does (the ten-crop test, where a run used it, is not repeated here).

What the model needs (input size, mean, std, class names, the dataset's native size and resize mode) comes
from the checkpoint's record (``checkpoint["zoo"]``), or from a weights file's sidecar and, where the weights
sit in a run folder, that run's ``results.json``. Shipped weights (``zoo.list_weights()``, e.g.
``lenet5.mnist``) are named by their dataset.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["IMAGE_SUFFIXES", "PredictError", "Predictor", "Preprocess", "find_images", "load_predictor",
           "read_image", "resolve_source"]

log = logging.getLogger(__name__)

#: the files a folder is searched for (torchvision.io.decode_image decodes them).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


class PredictError(ValueError):
    """Bad input to prediction: a missing path, a folder without images, an image that cannot be decoded, a
    model that does not take images, or a checkpoint of another model than the one asked for."""


# ---------------------------------------------------------------------------------------------- images


def find_images(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The image files named by ``paths``: files as given, folders searched recursively (sorted) for
    files ending in one of :data:`IMAGE_SUFFIXES`.

    Raises:
        PredictError: for a path that does not exist, or a folder with no image file.
    """
    out: list[Path] = []
    for item in paths:
        p = Path(os.fspath(item)).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise PredictError(f"folder {p} holds no image files ({', '.join(IMAGE_SUFFIXES)}); pass images or "
                                   f"folders of images, e.g. zoo predict lenet5.mnist digits/")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise PredictError(f"image {item}: no such file or folder; e.g. zoo predict lenet5.mnist digit.png")
    return out


def read_image(path: str | os.PathLike, channels: int) -> torch.Tensor:
    """Decodes an image file into uint8 ``(channels, H, W)``: grey for 1 channel, RGB for 3.

    Raises:
        PredictError: naming the file when it cannot be read or decoded.
    """
    from torchvision.io import ImageReadMode, decode_image

    if channels not in (1, 3):
        raise PredictError(f"the model takes {channels}-channel input; images decode as grey (1) or RGB (3)")
    try:
        data = torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)
    except OSError as e:
        raise PredictError(f"image {path} cannot be read: {e.strerror or e}") from e
    if data.numel() == 0:
        raise PredictError(f"image {path} cannot be decoded: the file is empty")
    try:
        image = decode_image(data, mode=ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB)
    except (RuntimeError, ValueError) as e:
        reason = (str(e).strip().splitlines() or [""])[0]
        reason = re.sub(r"^.*?\.(?:cpp|h):\d+,?\s*", "", reason)[:200]  # torchvision's source location
        raise PredictError(f"image {path} cannot be decoded as PNG, JPEG, GIF or WebP ({reason}); pass an image "
                           f"file, e.g. digit.png") from e
    if image.dim() == 4:  # an animated GIF: its first frame
        image = image[0]
    if image.dtype != torch.uint8:  # 16-bit PNG
        from torchvision.transforms.v2.functional import to_dtype

        image = to_dtype(image, torch.uint8, scale=True)
    return image


# ---------------------------------------------------------------------------------------------- preprocessing


def _resize(image: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """uint8 ``(C, H, W)`` to ``(C, h, w)``: bilinear, antialiased, rounded, as the in-memory datasets resize."""
    x = F.interpolate(image[None].float(), size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8)[0]


@dataclass(frozen=True)
class Preprocess:
    """Brings a decoded image to the model's input, as the run's evaluation transform did.

    Args:
        in_chans: channels the model takes (1 or 3).
        image_size: side of the square input.
        mean: per-channel normalisation mean (``[0, 1]`` scale).
        std: per-channel normalisation std.
        resize_mode: ``"pad"``, ``"resize"`` (in-memory datasets) or ``"crop"`` (streamed image folders:
            shorter side to ``resize_size``, centre crop).
        native_size: the side of the dataset's own images, when known (MNIST: 28).
        resize_size: the shorter side before the centre crop (``"crop"`` only).
        interpolation: the resampling of ``"crop"``'s resize (``"bilinear"``, ``"bicubic"``, ...).
    """

    in_chans: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_mode: str = "pad"
    native_size: int | None = None
    resize_size: int | None = None
    interpolation: str = "bilinear"

    def fit(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 ``(C, H, W)`` of any size to uint8 ``(C, image_size, image_size)``."""
        size = self.image_size
        if self.resize_mode == "crop":
            from torchvision.transforms import v2
            from torchvision.transforms.v2 import functional as TF

            side = int(self.resize_size or round(size * 256 / 224))
            image = TF.resize(image, [side], interpolation=v2.InterpolationMode(self.interpolation), antialias=True)
            return TF.center_crop(image, [size, size])
        h, w = image.shape[-2:]
        native = self.native_size
        if native is not None and (h, w) != (native, native) and (h, w) != (size, size):
            image = _resize(image, native, native)  # the dataset's own size first
            h, w = native, native
        if (h, w) == (size, size):
            return image.contiguous()
        if self.resize_mode == "pad" and h <= size and w <= size:
            top, left = (size - h) // 2, (size - w) // 2
            return F.pad(image, (left, size - w - left, top, size - h - top))
        return _resize(image, size, size)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 ``(C, H, W)`` to the normalised float32 ``(C, image_size, image_size)`` the model takes."""
        x = self.fit(image).to(torch.float32).div_(255.0)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)
        inv_std = 1.0 / torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)
        return (x - mean) * inv_std


# ---------------------------------------------------------------------------------------------- the model


@dataclass
class Predictor:
    """A trained model with its preprocessing and class names.

    Attributes:
        model: the network, in eval mode.
        name: its registered name.
        preprocess: decoded image -> model input.
        classes: the class names, in output order.
        source: the file the weights came from.
    """

    model: nn.Module
    name: str
    preprocess: Preprocess
    classes: list[str]
    source: Path
    details: dict[str, Any] = field(default_factory=dict)

    @torch.no_grad()
    def predict(self, files: Sequence[str | os.PathLike], topk: int = 5, batch_size: int = 64) -> list[dict[str, Any]]:
        """Top-k classes of each image file.

        Returns:
            One entry per file, in order: ``{"file": str, "top": [{"class": name, "index": i, "prob": p}, ...]}``.

        Raises:
            PredictError: naming a file that cannot be decoded (before any image is scored).
        """
        inputs = [self.preprocess(read_image(f, self.preprocess.in_chans)) for f in files]
        k = max(1, min(int(topk), len(self.classes)))
        out: list[dict[str, Any]] = []
        for start in range(0, len(inputs), batch_size):
            x = torch.stack(inputs[start:start + batch_size])  # (B, C, S, S)
            probs = torch.softmax(self.model(x).float(), dim=1)  # (B, K)
            p, idx = probs.topk(k, dim=1)
            for j in range(x.shape[0]):
                out.append({"file": str(files[start + j]),
                            "top": [{"class": self.classes[int(i)], "index": int(i), "prob": float(q)}
                                    for q, i in zip(p[j].tolist(), idx[j].tolist())]})
        return out


def _dataset_facts(data_cfg: Mapping[str, Any] | None, data_name: str | None) -> dict[str, Any]:
    """``resize_mode``, ``native_size``, ``resize_size`` and ``interpolation`` of a run's data config, or of a
    registered dataset by name; what cannot be found is left out."""
    out: dict[str, Any] = {}
    cls = None
    target = str((data_cfg or {}).get("_target_") or "")
    try:  # the class says its native size and default resize mode (needs the train extra)
        if target:
            import importlib

            module, _, attr = target.rpartition(".")
            cls = getattr(importlib.import_module(module), attr)
        elif data_name:
            from zoo.data.registry import get_datamodule_class

            cls = get_datamodule_class(data_name)
    except Exception as e:  # the train extra is not installed, or an unknown name: the defaults apply
        log.info("no datamodule class for %s (%s): padding images that fit, resizing the others",
                 target or data_name, e)
    cfg = dict(data_cfg or {})
    folder = target.rpartition(".")[2] == "ImageFolderDataModule" or (
        cls is not None and cls.__name__ == "ImageFolderDataModule")
    streamed = folder and not cfg.get("in_memory")
    if streamed:
        out["resize_mode"] = "crop"
        out["resize_size"] = cfg.get("resize_size")
        out["interpolation"] = cfg.get("interpolation") or "bilinear"
        return out
    mode = cfg.get("resize_mode")
    if mode is None and cls is not None:
        import inspect

        for klass in cls.__mro__:
            param = inspect.signature(klass.__init__).parameters.get("resize_mode") if "__init__" in vars(klass) else None
            if param is not None and param.default is not inspect.Parameter.empty:
                mode = param.default
                break
        if folder and cfg.get("in_memory"):
            mode = "resize"  # built as InMemoryImageFolderDataModule, which resizes by default
    if mode is not None:
        out["resize_mode"] = str(mode)
    native = getattr(cls, "NATIVE_SIZE", None) if cls is not None else None
    if native is not None:
        out["native_size"] = int(native)
    return out


def _run_results(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return {}


def resolve_source(source: str | os.PathLike) -> Path:
    """The path of a model source: an existing path as given, or the file of shipped weights (``"lenet5.mnist"``).

    Raises:
        PredictError: naming the source, close shipped names and an example, when it is neither.
    """
    from zoo.weights import SHIPPED_DIR, list_weights

    p = Path(os.fspath(source)).expanduser()
    if p.exists():
        return p
    shipped = list_weights()
    if str(source) in shipped:
        model, tag = str(source).split(".", 1)
        return SHIPPED_DIR / f"{model}-{tag}.safetensors"
    from zoo._registry import did_you_mean

    raise PredictError(f"model {source}: no such run folder, checkpoint or weights file, and no shipped weights of "
                       f"that name.{did_you_mean(source, shipped, n=3)} Shipped: {', '.join(shipped)}; e.g. zoo predict "
                       f"lenet5.mnist digit.png, or zoo predict outputs/train/runs/<model>-<data>/<time> digit.png")


def load_predictor(source: str | os.PathLike, model: str | None = None) -> Predictor:
    """A :class:`Predictor` from a run folder, a ``.ckpt`` checkpoint, a ``.safetensors`` weights file (with its
    sidecar) or the name of shipped weights (``"lenet5.mnist"``, see ``zoo.list_weights()``).

    Args:
        source: where the trained model is.
        model: when given, the registered model name it must be.

    Raises:
        PredictError: bad input (see :class:`PredictError`).
        zoo.CheckpointError: an unreadable or foreign checkpoint.
        zoo.WeightsError: a weights file without its sidecar, or altered.
    """
    from zoo.evaluate import model_from_checkpoint
    from zoo.trained import _run_checkpoint, load_checkpoint_file

    p = resolve_source(source)
    run_dir: Path | None = None
    if p.is_dir():
        run_dir = p
        weights = p / "checkpoints" / "model.safetensors"
        p = weights if weights.is_file() else _run_checkpoint(p)
    if p.suffix == ".safetensors":
        from zoo import create_model
        from zoo.weights import SHIPPED_DIR, resolve_weights

        side = p.with_suffix(".json")
        meta = json.loads(side.read_text()) if side.is_file() else {}
        name = meta.get("model")
        if not name:
            resolve_weights("?", p)  # raises, naming the missing or foreign sidecar
        if model is not None and name != model:
            raise PredictError(f"--model {model}: weights {p} are of model {name!r}; drop --model or pass --model {name}")
        net = create_model(name, weights=str(p)).eval()
        input_size = meta.get("input_size")
        facts = {"in_chans": input_size[0], "image_size": input_size[-1]} if input_size else {}
        facts.update(mean=meta.get("mean"), std=meta.get("std"), classes=meta.get("classes"))
        if run_dir is None and p.parent.name == "checkpoints" and (p.parent.parent / "results.json").is_file():
            run_dir = p.parent.parent
        data_cfg = (_run_results(run_dir).get("config") or {}).get("data") if run_dir is not None else None
        data_name = None
        if data_cfg is None and p.resolve().parent == SHIPPED_DIR.resolve():
            data_name = p.stem.rpartition("-")[2]  # shipped weights are named <model>-<dataset>
    else:
        ckpt = load_checkpoint_file(p)
        net, meta = model_from_checkpoint(ckpt, p)
        del ckpt
        name = meta["model"]
        if model is not None and name != model:
            raise PredictError(f"--model {model}: checkpoint {p} holds model {name!r}; drop --model or pass --model {name}")
        facts = dict(meta.get("data") or {})
        data_cfg = (meta.get("config") or {}).get("data")
        data_name = facts.get("name")
    return _predictor(net, name, p, facts, data_cfg, data_name)


def _predictor(net: nn.Module, name: str, path: Path, facts: Mapping[str, Any], data_cfg: Mapping[str, Any] | None,
               data_name: str | None) -> Predictor:
    from zoo._registry import model_info

    info_size = tuple(model_info(name).input_size)
    in_chans = int(facts.get("in_chans") or getattr(net, "in_chans", 0) or info_size[0])
    image_size = facts.get("image_size")
    if image_size is None:
        if len(info_size) != 3:
            raise PredictError(f"model {name} takes sequences {info_size}, not images")
        image_size = info_size[-1]
    mean = tuple(float(m) for m in (facts.get("mean") or ()))
    std = tuple(float(s) for s in (facts.get("std") or ()))
    if len(mean) != in_chans or len(std) != in_chans:
        log.warning("%s records no normalisation for %d channels: using mean 0.5, std 0.5", path, in_chans)
        mean, std = (0.5,) * in_chans, (0.5,) * in_chans
    kw = _dataset_facts(data_cfg, data_name)
    pre = Preprocess(in_chans=in_chans, image_size=int(image_size), mean=mean, std=std, **kw)
    num_classes = int(getattr(net, "num_classes", 0) or len(facts.get("classes") or ()))
    classes = [str(c) for c in (facts.get("classes") or [])]
    if len(classes) != num_classes:
        classes = [str(i) for i in range(num_classes)]
    log.info("model %s from %s: input %dx%dx%d, %s", name, path, in_chans, image_size, image_size, kw or "pad/resize")
    return Predictor(net, name, pre, classes, path, details={"data": data_name or (data_cfg or {}).get("_target_"), **kw})
