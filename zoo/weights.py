"""Trained weights as plain files: safetensors plus a JSON sidecar, checked by SHA-256 on every load.

A weights file ``<name>.safetensors`` holds the model's ``state_dict`` (safetensors stores tensors
only, so loading it can never run code). Its sidecar ``<name>.json`` holds what is needed to use it
in another project::

    {"format": "zoo-weights/1", "model": "lenet5", "kwargs": {"num_classes": 10, "in_chans": 1},
     "classes": ["0", ..., "9"], "input_size": [1, 32, 32], "mean": [...], "std": [...],
     "metrics": {"test/acc": 0.9894, ...}, "source": "...", "sha256": "<hex digest of the .safetensors file>"}

:func:`save_weights` writes both; :func:`read_weights` checks the digest and returns the state dict
and the sidecar; ``zoo.create_model(name, weights=<file>)`` builds the model from the sidecar's
keywords and loads the weights. Weights shipped with the package are named by a tag,
``zoo.create_model("lenet5", weights="mnist")`` (see :data:`SHIPPED`, :func:`list_weights`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from zoo._atomic import atomic_write

__all__ = [
    "WeightsError",
    "WeightsFile",
    "SHIPPED_DIR",
    "list_weights",
    "read_weights",
    "resolve_weights",
    "save_weights",
    "sha256_file",
]

log = logging.getLogger(__name__)

FORMAT = "zoo-weights/1"

#: the folder of the weights shipped with the package (``<model>-<tag>.safetensors`` + ``.json``).
SHIPPED_DIR = Path(__file__).resolve().parent / "pretrained"


class WeightsError(ValueError):
    """A weights file that is missing, altered, of another model, or that does not fit the model."""


@dataclass(frozen=True)
class WeightsFile:
    """A weights file and its sidecar.

    Attributes:
        path: the ``.safetensors`` file.
        meta: the sidecar's contents.
    """

    path: Path
    meta: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.meta.get("model"))

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.meta.get("kwargs") or {})


def sha256_file(path: str | os.PathLike) -> str:
    """The hex SHA-256 digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sidecar_path(path: str | os.PathLike) -> Path:
    """``model.safetensors`` -> ``model.json``."""
    return Path(path).with_suffix(".json")


def save_weights(model: nn.Module, path: str | os.PathLike, *, name: str, kwargs: Mapping[str, Any] | None = None,
                 classes: Sequence[str] | None = None, input_size: Sequence[int] | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 metrics: Mapping[str, Any] | None = None, source: str | None = None) -> Path:
    """Writes ``model``'s weights as safetensors and its sidecar JSON beside it (both atomically).

    Args:
        model: the trained model (its ``state_dict`` is written, on the CPU).
        path: the ``.safetensors`` file to write.
        name: the registered model name.
        kwargs: the ``create_model`` keywords it was built with (``num_classes``, ``in_chans``, ...).
        classes: the class names, in output order.
        input_size: ``(C, H, W)`` it was trained at.
        mean: per-channel normalisation mean of its inputs.
        std: per-channel normalisation std.
        metrics: the figures it reached (``{"test/acc": ...}``).
        source: where it comes from (a run folder, a command).

    Returns:
        The path of the ``.safetensors`` file.
    """
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"save_weights: path={str(path)!r} must end in .safetensors, e.g. model.safetensors")
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(path, lambda f: f.write(save(state, metadata={"format": FORMAT, "model": name})))
    meta = {"format": FORMAT, "model": name, "kwargs": dict(kwargs or {}),
            "classes": list(classes) if classes is not None else None,
            "input_size": list(input_size) if input_size is not None else None,
            "mean": list(mean) if mean is not None else None, "std": list(std) if std is not None else None,
            "metrics": dict(metrics or {}), "source": source, "sha256": sha256_file(path)}
    text = json.dumps(meta, indent=2, default=str) + "\n"
    atomic_write(sidecar_path(path), lambda f: f.write(text), "w")
    log.info("wrote %s (%s tensors) and %s", path, len(state), sidecar_path(path).name)
    return path


def list_weights(name: str | None = None) -> list[str]:
    """The shipped weights, as ``"<model>.<tag>"`` (e.g. ``"lenet5.mnist"``), optionally of one model."""
    out = []
    for f in sorted(SHIPPED_DIR.glob("*.safetensors")):
        model, _, tag = f.stem.rpartition("-")
        if name is None or model == name:
            out.append(f"{model}.{tag}")
    return out


def resolve_weights(name: str, weights: str | os.PathLike) -> WeightsFile:
    """Finds the weights ``weights`` names for model ``name``: a shipped tag (``"mnist"``) or a file.

    Raises:
        WeightsError: for an unknown tag (naming the shipped ones), a missing file or sidecar.
    """
    p = Path(os.fspath(weights)).expanduser()
    if p.suffix != ".safetensors" and os.sep not in str(weights):
        shipped = SHIPPED_DIR / f"{name}-{weights}.safetensors"
        if not shipped.is_file():
            have = [w.split(".", 1)[1] for w in list_weights(name)] or ["none"]
            raise WeightsError(
                f"weights={str(weights)!r}: model {name!r} has no shipped weights {str(weights)!r}; its shipped "
                f"weights: {', '.join(have)}. Pass one of them (e.g. zoo.create_model(\"lenet5\", weights=\"mnist\")), "
                f"a .safetensors file written by zoo.save_weights, or weights=\"torchvision\" for the torchvision "
                f"twins.")
        p = shipped
    if not p.is_file():
        raise WeightsError(f"weights={str(weights)!r}: no such file {p}; pass a .safetensors file written by "
                           f"zoo.save_weights (e.g. weights=\"outputs/.../checkpoints/model.safetensors\")")
    side = sidecar_path(p)
    if not side.is_file():
        raise WeightsError(f"weights file {p} has no sidecar {side.name} beside it: it holds the model's name, "
                           f"keywords and SHA-256. Write weights with zoo.save_weights, which writes both.")
    try:
        meta = json.loads(side.read_text())
    except ValueError as e:
        raise WeightsError(f"sidecar {side} is not valid JSON ({e}); write it again with zoo.save_weights") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise WeightsError(f"sidecar {side} is not a zoo weights sidecar (format {FORMAT!r} expected)")
    if meta.get("model") != name:
        raise WeightsError(f"weights {p} are of model {meta.get('model')!r}, not {name!r}: use "
                           f"zoo.create_model({meta.get('model')!r}, weights={str(weights)!r})")
    return WeightsFile(p, meta)


def read_weights(wf: WeightsFile) -> dict[str, torch.Tensor]:
    """Checks the file's SHA-256 against its sidecar and returns its state dict (safetensors: tensors only).

    Raises:
        WeightsError: if the digest differs (the file was altered or truncated).
    """
    from safetensors.torch import load_file

    digest = sha256_file(wf.path)
    if digest != wf.meta.get("sha256"):
        raise WeightsError(f"weights file {wf.path} has SHA-256 {digest}, but its sidecar records "
                           f"{wf.meta.get('sha256')}: the file was altered or truncated. Get an intact copy.")
    try:
        return load_file(str(wf.path))
    except Exception as e:
        raise WeightsError(f"weights file {wf.path} is not a readable safetensors file ({e})") from e


def load_into(model: nn.Module, wf: WeightsFile) -> nn.Module:
    """Loads checked weights into ``model`` (strict), naming the mismatched keys if they do not fit."""
    state = read_weights(wf)
    missing, unexpected = [], []
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        detail = "; ".join([*(f"missing {k}" for k in missing[:3]), *(f"unexpected {k}" for k in unexpected[:3]),
                            *wrong[:3]])
        raise WeightsError(f"weights {wf.path} do not fit the model as built ({detail}); build it with the "
                           f"sidecar's keywords {wf.kwargs}")
    model.load_state_dict(state, strict=True)
    return model
