"""Loading torchvision checkpoints into zoo models.

A family module declares which of its models share an architecture with a
torchvision model, and how torchvision's state-dict keys map onto its own::

    register_torchvision("resnet18", "resnet18", remap=_resnet_keys)

:func:`from_torchvision` then builds the zoo model and loads a torchvision
``state_dict`` into it (strictly: every tensor must find its place), and
``create_model(name, weights="torchvision")`` fetches torchvision's own
pretrained weights through its weights API.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn

__all__ = ["register_torchvision", "from_torchvision", "load_torchvision_weights", "torchvision_pairs",
           "torchvision_builder_kwargs"]

log = logging.getLogger(__name__)

StateDict = Mapping[str, torch.Tensor]
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


def load_torchvision_weights(model: nn.Module, name: str, weights: str) -> nn.Module:
    """Loads torchvision's pretrained weights into ``model`` through torchvision's weights API.

    Args:
        model: a freshly built zoo model ``name`` (1,000 classes, default options).
        name: its registered name.
        weights: ``"torchvision"`` for torchvision's default weights of the pair,
            or the name of one of its weight enums (e.g. ``"IMAGENET1K_V1"``).

    Returns:
        ``model`` with the weights loaded.

    Raises:
        RuntimeError: if the weights cannot be fetched (no internet and no cached copy).
    """
    import torchvision

    pair = _pair(name)
    enum = torchvision.models.get_model_weights(pair.tv_name)
    w = enum.DEFAULT if weights in ("torchvision", "DEFAULT") else enum[weights]
    try:
        sd = w.get_state_dict(progress=False)
    except Exception as e:  # URLError, HTTPError, socket errors, ...
        raise RuntimeError(
            f"could not fetch torchvision weights {w} for {name}: {type(e).__name__}: {e}. "
            f"This needs the internet, or the file {w.url.rsplit('/', 1)[-1]} in torch's hub cache "
            f"({torch.hub.get_dir()}/checkpoints). Offline, load a local file with "
            f"zoo.from_torchvision({name!r}, torch.load(path))."
        ) from e
    return _load(model, pair, sd)
