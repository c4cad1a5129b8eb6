"""torchvision pairs and the safe checkpoint loader.

A family module declares which of its models share an architecture with a
torchvision model, and how torchvision's state-dict keys map onto its own::

    register_torchvision("resnet18", "resnet18", remap=_resnet_keys)

The pair is kept in the model's metadata (:attr:`zoo.ModelInfo.torchvision`);
this module reads it (:func:`torchvision_pairs`, :func:`torchvision_pair`),
loads a torchvision ``state_dict`` into a built model strictly
(:func:`load_torchvision_state_dict`: every tensor must find its place), and
fetches published checkpoints with :func:`load_checkpoint`: the file in torch's
hub cache (``torch.hub.get_dir()/checkpoints``) is used only if its sha256
starts with the hash prefix in its name (``resnet18-f37072fd.pth``), a missing
one is downloaded and checked the same way, and the file is read with
``torch.load(..., weights_only=True)``, which refuses any pickled object that
is not tensors and plain containers, so a planted file cannot run code.

Building models lives in :mod:`zoo.factory` (``zoo.from_torchvision`` and
``zoo.create_model(name, weights="torchvision")``), which uses this module;
this module imports only the metadata (:mod:`zoo._registry`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

import torch
import torch.nn as nn

from zoo._registry import _REGISTRY, ModelArgumentError, TorchvisionPair, register_torchvision

__all__ = ["register_torchvision", "torchvision_pairs", "torchvision_pair", "torchvision_builder_kwargs",
           "load_torchvision_state_dict", "fetch_torchvision_state_dict", "load_checkpoint",
           "WeightsFileError"]

log = logging.getLogger(__name__)

StateDict = Mapping[str, torch.Tensor]

#: ``name-<hex>.ext``: the hex digits are the first digits of the file's sha256 (torch.hub's convention).
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")


class WeightsFileError(RuntimeError):
    """A weights file in torch's hub cache that fails its hash check or is not a plain tensor file."""


def _paired() -> dict[str, TorchvisionPair]:
    return {k: v.torchvision for k, v in sorted(_REGISTRY.items()) if v.torchvision is not None}


def torchvision_pairs() -> dict[str, str]:
    """Returns ``{zoo name: torchvision name}`` for every model that can load torchvision weights."""
    return {k: v.name for k, v in _paired().items()}


def torchvision_pair(name: str) -> TorchvisionPair:
    """Returns the torchvision pair of zoo model ``name``.

    Raises:
        KeyError: if ``name`` has no torchvision counterpart (the message lists those that have one).
    """
    info = _REGISTRY.get(name)
    if info is None or info.torchvision is None:
        raise KeyError(
            f"{name!r} has no torchvision counterpart. Models that load torchvision weights: "
            f"{', '.join(_paired()) or '(none)'}"
        )
    return info.torchvision


def torchvision_builder_kwargs(name: str) -> dict[str, Any]:
    """Returns the builder options zoo model ``name`` needs to match its torchvision pair."""
    return dict(torchvision_pair(name).builder_kwargs)


def load_torchvision_state_dict(model: nn.Module, name: str, state_dict: StateDict) -> nn.Module:
    """Loads a torchvision ``state_dict`` into zoo model ``name``, strictly, after the pair's key map.

    Returns:
        ``model``.

    Raises:
        KeyError: if ``name`` has no torchvision counterpart.
        RuntimeError: if a tensor finds no place, or a place no tensor.
    """
    pair = torchvision_pair(name)
    sd = pair.remap(state_dict) if pair.remap else dict(state_dict)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"torchvision {pair.name} weights do not fit zoo {name}: "
            f"missing keys {list(missing)[:8]}, unexpected keys {list(unexpected)[:8]}"
        )
    return model


def _hash_prefix(filename: str) -> str | None:
    """The sha256 prefix embedded in a checkpoint's name (``resnet18-f37072fd.pth`` -> ``f37072fd``).

    Returns:
        The hex digits (at least 8), or ``None`` if the name carries none.
    """
    m = _HASH_IN_NAME.search(filename)
    return m.group(1) if m else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verify_hash(path: Path, hash_prefix: str) -> None:
    """Raises :class:`WeightsFileError` unless the sha256 of ``path`` starts with ``hash_prefix``."""
    digest = _sha256(path)
    if not digest.startswith(hash_prefix):
        raise WeightsFileError(
            f"cached weights file {path} fails its hash check: its name promises a sha256 starting with "
            f"{hash_prefix!r}, but the file's sha256 is {digest}. It is not the published file (damaged, "
            f"or replaced) and was not loaded. Delete it (rm {path}) and run again to download it afresh, "
            f"or load a file you trust with zoo.from_torchvision(name, torch.load(path, weights_only=True))."
        )


def _unpickler_reason(err: BaseException) -> str:
    """The reason of torch's weights-only refusal, e.g. ``Unsupported global: GLOBAL io.open ...``.

    torch words the refusal as advice to retry with ``weights_only=False``; only the reason is kept.
    """
    inner = err.__context__ if isinstance(err.__context__, Exception) else None
    text = str(inner) if inner is not None and str(inner).strip() else ""
    if not text:
        lines = [line.strip() for line in str(err).splitlines()]
        for i, line in enumerate(lines):
            if "WeightsUnpickler error:" in line:
                rest = [line.split("WeightsUnpickler error:", 1)[1].strip()] + lines[i + 1:]
                text = next((part for part in rest if part), "")
                break
    return text.strip().split(". ")[0] if text.strip() else type(err).__name__


def _load_weights_only(path: Path) -> dict[str, Any]:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with clear errors naming the file.

    Raises:
        WeightsFileError: if the file holds objects other than tensors and plain containers,
            or cannot be read as a torch checkpoint.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _unpickler_reason(e)
        if "Unsupported global" in reason or "Unsupported class" in reason:
            raise WeightsFileError(
                f"weights file {path} holds objects other than tensors and plain containers, so it was "
                f"refused (it is loaded with torch.load(..., weights_only=True), which never runs code "
                f"from the file). A published torchvision checkpoint holds only tensors: delete the file "
                f"(rm {path}) and run again to download it afresh. Refused because: {reason}"
            ) from e
        raise WeightsFileError(
            f"weights file {path} could not be read as a torch checkpoint (damaged, or not a checkpoint: "
            f"{reason}). Delete it (rm {path}) and run again to download it afresh."
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise WeightsFileError(
            f"weights file {path} could not be read as a torch checkpoint ({type(e).__name__}: {reason}). "
            f"Delete it (rm {path}) and run again to download it afresh."
        ) from e
    if not isinstance(obj, Mapping):
        raise WeightsFileError(
            f"weights file {path} holds a {type(obj).__name__}, not a state dict "
            f"({{parameter name: tensor}}); delete it (rm {path}) and run again to download it afresh."
        )
    return dict(obj)


def load_checkpoint(url: str, *, hash_prefix: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Returns the state dict published at ``url``, from torch's hub cache or downloaded into it.

    The file is ``torch.hub.get_dir()/checkpoints/<basename of url>``. If absent it is downloaded
    with ``torch.hub.download_url_to_file``, which checks the sha256 before putting it in place; if
    present, its sha256 must start with ``hash_prefix``. Either way it is read with
    ``torch.load(..., map_location="cpu", weights_only=True)``.

    Args:
        url: the checkpoint's URL, e.g. ``https://download.pytorch.org/models/resnet18-f37072fd.pth``.
        hash_prefix: expected start of the file's sha256; read from the file name when ``None``
            (``resnet18-f37072fd.pth`` -> ``f37072fd``). A name without one is loaded unverified
            (still weights-only), with a warning.
        progress: show a download progress bar.

    Returns:
        The state dict.

    Raises:
        ValueError: if ``hash_prefix`` is not at least 8 lower-case hex digits.
        WeightsFileError: if the cached file fails its hash check or is not a plain tensor file.
        OSError: if the download fails (``urllib.error.URLError`` and socket errors).
        RuntimeError: if a downloaded file fails its hash check.
    """
    if hash_prefix is not None and not re.fullmatch(r"[0-9a-f]{8,}", hash_prefix):
        raise ValueError(
            f"hash_prefix must be at least 8 lower-case hex digits of the file's sha256, got {hash_prefix!r}; "
            f"e.g. load_checkpoint(url, hash_prefix=\"f37072fd\")"
        )
    filename = os.path.basename(urlparse(url).path)
    prefix = hash_prefix if hash_prefix is not None else _hash_prefix(filename)
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if prefix is None:
        log.warning("%s has no sha256 prefix in its name; it is loaded weights-only but not verified", filename)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s to %s", url, path)
        torch.hub.download_url_to_file(url, str(path), hash_prefix=prefix, progress=progress)
    elif prefix is not None:
        _verify_hash(path, prefix)
    return _load_weights_only(path)


def fetch_torchvision_state_dict(name: str, weights: str = "torchvision") -> dict[str, Any]:
    """Returns torchvision's pretrained state dict of zoo model ``name``'s pair, verified and weights-only.

    Args:
        name: zoo model name with a torchvision pair.
        weights: ``"torchvision"`` (or ``"DEFAULT"``) for torchvision's default weights of the pair,
            or the name of one of its weight enums (e.g. ``"IMAGENET1K_V1"``).

    Returns:
        The state dict, in torchvision's keys.

    Raises:
        KeyError: if ``name`` has no torchvision counterpart.
        ModelArgumentError: if ``weights`` names none of the pair's weights.
        RuntimeError: if the weights cannot be fetched (no internet and no cached copy).
        WeightsFileError: if the cached file fails its hash check or is not a plain tensor file.
    """
    import torchvision

    pair = torchvision_pair(name)
    enum = torchvision.models.get_model_weights(pair.name)
    if weights in ("torchvision", "DEFAULT"):
        w = enum.DEFAULT
    elif weights in enum.__members__:
        w = enum[weights]
    else:
        raise ModelArgumentError(
            f"weights={weights!r}: torchvision's {pair.name} has the weights "
            f"{', '.join(enum.__members__)}; use weights=\"torchvision\" for its default ({enum.DEFAULT.name})"
        )
    try:
        return load_checkpoint(w.url)
    except WeightsFileError:
        raise
    except Exception as e:  # URLError, HTTPError, socket errors, a download failing its hash check, ...
        raise RuntimeError(
            f"could not fetch torchvision weights {w} for {name}: {type(e).__name__}: {e}. "
            f"This needs the internet, or the file {w.url.rsplit('/', 1)[-1]} in torch's hub cache "
            f"({torch.hub.get_dir()}/checkpoints). Offline, load a local file with "
            f"zoo.from_torchvision({name!r}, torch.load(path, weights_only=True))."
        ) from e
