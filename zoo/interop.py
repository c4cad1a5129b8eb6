"""Loading torchvision checkpoints into zoo models.

A family module declares which of its models share an architecture with a
torchvision model, and how torchvision's state-dict keys map onto its own::

    register_torchvision("resnet18", "resnet18", remap=_resnet_keys)

:func:`from_torchvision` then builds the zoo model and loads a torchvision
``state_dict`` into it (strictly: every tensor must find its place), and
``create_model(name, weights="torchvision")`` fetches torchvision's own
pretrained weights (the URL of its weights API) with :func:`load_checkpoint`:
the file in torch's hub cache (``torch.hub.get_dir()/checkpoints``) is used only
if its sha256 starts with the hash prefix in its name (``resnet18-f37072fd.pth``),
a missing one is downloaded and checked the same way, and the file is read with
``torch.load(..., weights_only=True)``, which refuses any pickled object that
is not tensors and plain containers, so a planted file cannot run code.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

import torch
import torch.nn as nn

__all__ = ["register_torchvision", "from_torchvision", "load_torchvision_weights", "torchvision_pairs",
           "torchvision_builder_kwargs", "load_checkpoint", "WeightsFileError"]

log = logging.getLogger(__name__)

StateDict = Mapping[str, torch.Tensor]

#: ``name-<hex>.ext``: the hex digits are the first digits of the file's sha256 (torch.hub's convention).
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")


class WeightsFileError(RuntimeError):
    """A weights file in torch's hub cache that fails its hash check or is not a plain tensor file."""
Remap = Callable[[StateDict], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class _Pair:
    zoo_name: str
    tv_name: str
    remap: Remap | None
    builder_kwargs: dict[str, Any]


_PAIRS: dict[str, _Pair] = {}


def register_torchvision(zoo_name: str, tv_name: str, remap: Remap | None = None,
                         **builder_kwargs: Any) -> None:
    """Declares that zoo model ``zoo_name`` has torchvision's ``tv_name`` architecture.

    Args:
        zoo_name: registered zoo model name.
        tv_name: name accepted by ``torchvision.models.get_model``.
        remap: maps a torchvision state dict to this model's keys (identity if ``None``).
        **builder_kwargs: options the zoo builder needs to match torchvision exactly.

    Raises:
        ValueError: if ``zoo_name`` already has a torchvision pair.
    """
    if zoo_name in _PAIRS:
        raise ValueError(f"{zoo_name!r} already has a torchvision pair ({_PAIRS[zoo_name].tv_name})")
    _PAIRS[zoo_name] = _Pair(zoo_name, tv_name, remap, dict(builder_kwargs))


def torchvision_pairs() -> dict[str, str]:
    """Returns ``{zoo name: torchvision name}`` for every model that can load torchvision weights."""
    return {k: v.tv_name for k, v in sorted(_PAIRS.items())}


def torchvision_builder_kwargs(name: str) -> dict[str, Any]:
    """Returns the builder options zoo model ``name`` needs to match its torchvision pair."""
    return dict(_pair(name).builder_kwargs)


def _pair(name: str) -> _Pair:
    if name not in _PAIRS:
        raise KeyError(
            f"{name!r} has no torchvision counterpart. Models that load torchvision weights: "
            f"{', '.join(sorted(_PAIRS)) or '(none)'}"
        )
    return _PAIRS[name]


def _load(model: nn.Module, pair: _Pair, state_dict: StateDict) -> nn.Module:
    sd = pair.remap(state_dict) if pair.remap else dict(state_dict)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"torchvision {pair.tv_name} weights do not fit zoo {pair.zoo_name}: "
            f"missing keys {list(missing)[:8]}, unexpected keys {list(unexpected)[:8]}"
        )
    return model


def from_torchvision(name: str, state_dict: StateDict, **kwargs: Any) -> nn.Module:
    """Builds zoo model ``name`` and loads a torchvision ``state_dict`` into it.

    The number of classes is read from the state dict's last 2-D weight unless
    given in ``kwargs``.

    Args:
        name: zoo model name with a torchvision pair (see :func:`torchvision_pairs`).
        state_dict: ``torchvision.models.<tv_name>().state_dict()``, or a checkpoint of it.
        **kwargs: further builder options.

    Returns:
        The zoo model with torchvision's weights, in training mode.
    """
    from zoo._registry import create_model

    pair = _pair(name)
    if "num_classes" not in kwargs:
        last = [v for v in state_dict.values() if v.dim() == 2]
        if last:
            kwargs["num_classes"] = int(last[-1].shape[0])
    model = create_model(name, **{**pair.builder_kwargs, **kwargs})
    return _load(model, pair, state_dict)


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


def load_torchvision_weights(model: nn.Module, name: str, weights: str) -> nn.Module:
    """Loads torchvision's pretrained weights into ``model``, verified and weights-only (see :func:`load_checkpoint`).

    Args:
        model: a freshly built zoo model ``name`` (1,000 classes, default options).
        name: its registered name.
        weights: ``"torchvision"`` for torchvision's default weights of the pair,
            or the name of one of its weight enums (e.g. ``"IMAGENET1K_V1"``).

    Returns:
        ``model`` with the weights loaded.

    Raises:
        RuntimeError: if the weights cannot be fetched (no internet and no cached copy).
        WeightsFileError: if the cached file fails its hash check or is not a plain tensor file.
    """
    import torchvision

    pair = _pair(name)
    enum = torchvision.models.get_model_weights(pair.tv_name)
    w = enum.DEFAULT if weights in ("torchvision", "DEFAULT") else enum[weights]
    try:
        sd = load_checkpoint(w.url)
    except WeightsFileError:
        raise
    except Exception as e:  # URLError, HTTPError, socket errors, a download failing its hash check, ...
        raise RuntimeError(
            f"could not fetch torchvision weights {w} for {name}: {type(e).__name__}: {e}. "
            f"This needs the internet, or the file {w.url.rsplit('/', 1)[-1]} in torch's hub cache "
            f"({torch.hub.get_dir()}/checkpoints). Offline, load a local file with "
            f"zoo.from_torchvision({name!r}, torch.load(path, weights_only=True))."
        ) from e
    return _load(model, pair, sd)
