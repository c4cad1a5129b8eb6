"""Trained models out of training runs: a run folder, a checkpoint or a weights file becomes a plain model.

    model = zoo.load_checkpoint("outputs/train/runs/lenet5-mnist/2026-11-30_16-00-00_000000")
    model = zoo.load_checkpoint("run/checkpoints/last.ckpt")
    model = zoo.load_checkpoint("run/checkpoints/model.safetensors")

The model is built from the run's own record (its name and the keywords it was built with, stored in
every checkpoint and in the weights' sidecar), loaded with the trained weights, and returned in eval
mode. Checkpoints are read with ``torch.load(..., weights_only=True)``: tensors and plain containers
only, so a planted pickle cannot run code.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

__all__ = ["CheckpointError", "load_checkpoint", "load_checkpoint_file", "export_weights", "model_from_checkpoint",
           "tested_state_dict"]

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """Raised for a checkpoint file that is missing, truncated, unsafe, foreign, or cannot be written."""


def load_checkpoint_file(path: Any, map_location: Any = "cpu") -> dict[str, Any]:
    """Loads a Lightning checkpoint, weights only, with a clear error for a missing or unreadable file.

    Args:
        path: the ``.ckpt`` file (a local path; a name such as ``http...`` is a file name, not a URL).
        map_location: as for ``torch.load``.

    Returns:
        The checkpoint dictionary.

    Raises:
        CheckpointError: if the file is missing, unreadable, holds anything but tensors and plain
            containers (it would need ``weights_only=False``, which could run code), or lacks ``state_dict``.
    """
    p = Path(os.fspath(path)).expanduser()
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist; pass ckpt_path=<file> or ckpt_path=last")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:
        text = str(e)
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        reason = (text.strip().splitlines() or [""])[0][:200]
        if unsafe:
            raise CheckpointError(
                f"checkpoint {p} holds objects other than tensors and plain containers (it names "
                f"{unsafe.group(1)}). It was not written by this project, and loading it fully could run code, "
                f"so it is refused. Use a checkpoint written by this project's training (checkpoints/last.ckpt "
                f"or best-*.ckpt)."
            ) from e
        detail = re.search(r"WeightsUnpickler error: (.+)", text.replace("\n\n", " "))
        if detail:
            reason = detail.group(1).split("Check the documentation")[0].strip()[:200]
        raise CheckpointError(
            f"checkpoint {p} ({p.stat().st_size} bytes) is unreadable ({type(e).__name__}: {reason}). "
            f"It is truncated or not a checkpoint written by this project. Resume from another file in "
            f"{p.parent} (best-*.ckpt or last.ckpt), or start afresh without ckpt_path."
        ) from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{p} is a readable file but not a Lightning checkpoint (no 'state_dict' key)")
    return ckpt


def _run_checkpoint(run_dir: Path) -> Path:
    """The checkpoint whose weights a run tested: its best one when it tested on the best, else ``last.ckpt``."""
    ckpts = run_dir / "checkpoints"
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        results = {}
    best = results.get("best_checkpoint")
    if results.get("tested_on") == "best" and best and (ckpts / Path(best).name).is_file():
        return ckpts / Path(best).name
    if (ckpts / "last.ckpt").is_file():
        return ckpts / "last.ckpt"
    found = sorted(ckpts.glob("best-*.ckpt"))
    if found:
        return found[-1]
    raise CheckpointError(f"run folder {run_dir} has no checkpoints/model.safetensors, best-*.ckpt or last.ckpt; "
                          f"pass a run folder of train.py or a checkpoint file")


def tested_state_dict(state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The weights a run's validation and test ran on, out of a training module's ``state_dict``.

    Those of the exponential moving average (``ema.module.*``) when the run kept one, else the model's
    (``model.*``).

    Returns:
        ``(the network's state dict, the prefix it was found under)``.
    """
    for prefix in ("ema.module.", "model."):
        state = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if state:
            return state, prefix
    return {}, "model."


def model_from_checkpoint(ckpt: Mapping[str, Any], path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """The network of a loaded checkpoint with the weights its test ran on (see :func:`tested_state_dict`).

    Args:
        ckpt: the checkpoint dictionary (``zoo.trained.load_checkpoint_file``).
        path: its file, for messages.

    Returns:
        ``(model in eval mode, the checkpoint's "zoo" record)``.

    Raises:
        zoo.CheckpointError: for a checkpoint without a record of its model, or weights that do not fit it.
    """
    from zoo import create_model


    meta = ckpt.get("zoo")
    if not isinstance(meta, dict) or "model" not in meta:
        raise CheckpointError(f"checkpoint {path} has no record of its model (no 'zoo' entry): it was not written "
                              f"by this project's train.py, so the model to build is unknown")
    state, prefix = tested_state_dict(ckpt["state_dict"])
    kwargs = {k: v for k, v in dict(meta.get("model_kwargs") or {}).items() if k != "name"}
    model = create_model(meta["model"], **kwargs)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path}: its weights ({prefix}*) do not fit model {meta['model']!r} built "
                              f"with {kwargs}: {str(e).splitlines()[0]}") from e
    return model.eval(), meta


def _model_from_checkpoint(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    return model_from_checkpoint(load_checkpoint_file(path), path)


def load_checkpoint(path_or_run_dir: str | os.PathLike) -> nn.Module:
    """Returns the trained model of a run folder, a ``.ckpt`` checkpoint or a ``.safetensors`` weights file.

    Args:
        path_or_run_dir: a run folder of ``train.py`` (its ``checkpoints/model.safetensors``, else the
            checkpoint it tested), a checkpoint file, or a weights file with its sidecar.

    Returns:
        The plain model (no training module around it), with the trained weights, in eval mode.

    Raises:
        CheckpointError: for a missing, unreadable, unsafe or foreign checkpoint.
        zoo.weights.WeightsError: for a weights file without its sidecar, or altered.
    """
    p = Path(os.fspath(path_or_run_dir)).expanduser()
    if p.is_dir():
        weights = p / "checkpoints" / "model.safetensors"
        p = weights if weights.is_file() else _run_checkpoint(p)
    if p.suffix == ".safetensors":
        from zoo import create_model
        from zoo.weights import resolve_weights

        if not p.is_file():
            raise CheckpointError(f"weights file {p} does not exist")
        meta = json.loads(p.with_suffix(".json").read_text()) if p.with_suffix(".json").is_file() else {}
        name = meta.get("model")
        if not name:
            resolve_weights("?", p)  # raises, naming the missing or foreign sidecar
        model = create_model(name, weights=str(p))
    else:
        model, _ = _model_from_checkpoint(p)
    log.info("loaded %s", p)
    return model.eval()


def export_weights(run_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                   classes: list[str] | None = None) -> Path:
    """Writes the tested weights of a run folder as ``model.safetensors`` with its sidecar.

    Args:
        run_dir: a run folder of ``train.py`` with its checkpoints.
        out: the ``.safetensors`` file to write (default ``<run_dir>/checkpoints/model.safetensors``).
        classes: the class names, where the run's checkpoints do not record them.

    Returns:
        The file written.
    """
    from zoo.weights import save_weights

    run_dir = Path(run_dir)
    ckpt_path = _run_checkpoint(run_dir)
    model, meta = _model_from_checkpoint(ckpt_path)
    data = meta.get("data") or {}
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        results = {}
    metrics = {k: results.get(k) for k in ("test/acc", "test/loss", "test/acc5", "val/acc_best") if k in results}
    return save_weights(
        model, out or run_dir / "checkpoints" / "model.safetensors", name=meta["model"],
        kwargs={k: v for k, v in dict(meta.get("model_kwargs") or {}).items() if k != "name"},
        classes=data.get("classes") or classes,
        input_size=[data["in_chans"], data["image_size"], data["image_size"]] if "in_chans" in data else None,
        mean=data.get("mean") or None, std=data.get("std") or None, metrics=metrics,
        source=f"{run_dir.parent.name}/{run_dir.name}: {results.get('command', '')} ({ckpt_path.name})")
