"""Model registry: one name per architecture, with the paper's facts attached.

This module holds metadata only and imports no other zoo module: family modules
import it to register their builders, and :mod:`zoo.factory` reads it to build
models. Every family module registers thin builders with :func:`register_model`::

    @register_model(paper=LENET_PAPER, input_size=(1, 32, 32), num_classes=10,
                    params=60_000, macs=341_000)
    def lenet5(*, num_classes: int = 10, in_chans: int = 1, **kwargs) -> LeNet5:
        ...

``params`` and ``macs`` are the figures at ``num_classes`` and ``input_size``;
``tests/test_registry.py`` rebuilds every model and recomputes both, so no
number kept here can drift from the code. MACs are multiply-accumulates of
convolutions and matrix products as counted by ``torch.utils.flop_counter``
(FLOPs / 2); element-wise work (activations, normalisation, pooling) is not
counted, as in the papers' tables.

A model with the architecture of a torchvision model carries a
:class:`TorchvisionPair` in its :attr:`ModelInfo.torchvision`: torchvision's
name, the state-dict key map and the builder options that make the two match.
It is given to :func:`register_model` (``torchvision=``) or attached afterwards
with :func:`register_torchvision`.

The model contract, shared by every registered builder:

* keyword-only ``num_classes`` and ``in_chans`` (and ``dropout`` where the
  paper has dropout);
* ``forward(x)`` returns one logits tensor ``(B, num_classes)``;
* models with auxiliary heads (GoogLeNet) also expose
  ``forward_train(x) -> (logits, [aux_logits, ...])``; the training module
  calls it only while training, and inference never computes the extra heads;
* ``forward_features`` / ``forward_head`` where the split is natural;
* the loss never lives in the model.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

import torch
import torch.nn as nn

__all__ = [
    "Paper",
    "TorchvisionPair",
    "ModelInfo",
    "register_model",
    "register_torchvision",
    "list_models",
    "model_info",
    "UnknownModelError",
    "ModelArgumentError",
    "ModelArgumentTypeError",
]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., nn.Module])

#: Maps a torchvision state dict onto a zoo model's keys.
Remap = Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Paper:
    """Bibliographic facts of the paper a model reproduces.

    Args:
        title: the paper's title.
        authors: first author et al., as usually cited.
        year: year of publication.
        arxiv: arXiv identifier, if the paper has one.
        venue: journal or conference, for papers without an arXiv id.
    """

    title: str
    authors: str
    year: int
    arxiv: str | None = None
    venue: str | None = None

    def cite(self) -> str:
        """Returns a one-line citation, e.g. ``He et al. 2015, "Deep ...", arXiv:1512.03385``."""
        where = f"arXiv:{self.arxiv}" if self.arxiv else (self.venue or "")
        return f'{self.authors} {self.year}, "{self.title}"' + (f", {where}" if where else "")


@dataclass(frozen=True)
class TorchvisionPair:
    """The torchvision model with the same architecture as a zoo model.

    Args:
        name: name accepted by ``torchvision.models.get_model`` (e.g. ``"resnet18"``).
        remap: maps a torchvision state dict to the zoo model's keys (identity if ``None``).
        builder_kwargs: options the zoo builder needs to match torchvision's pretrained
            model exactly (e.g. ``{"transform_input": True}``).
    """

    name: str
    remap: Remap | None = None
    builder_kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of one registered model.

    Args:
        name: the registered name.
        builder: the function that builds it.
        paper: the paper it reproduces.
        input_size: default input ``(C, H, W)`` (or ``(C, L)`` for sequences).
        num_classes: number of classes the reference figures are given for.
        params: trainable parameter count at ``num_classes`` / ``input_size``.
        macs: multiply-accumulates of one forward pass at ``input_size``.
        family: the module (family) that defines it.
        paper_results: figures reported by the paper for this exact network,
            e.g. ``{"cifar10/top1_err": 8.75}``, for the report to compare against.
        notes: one line on which variant this is.
        torchvision: the torchvision model of the same architecture, if any.
    """

    name: str
    builder: Callable[..., nn.Module]
    paper: Paper
    input_size: tuple[int, ...]
    num_classes: int
    params: int
    macs: int
    family: str
    paper_results: dict[str, float] = field(default_factory=dict)
    notes: str = ""
    torchvision: TorchvisionPair | None = None


class UnknownModelError(KeyError):
    """Raised for a model name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0])


class ModelArgumentError(ValueError):
    """Raised by ``zoo.create_model`` for a keyword with a value out of its range (``num_classes=0``)."""


class ModelArgumentTypeError(TypeError):
    """Raised by ``zoo.create_model`` / :func:`list_models` for an argument of the wrong type
    (``num_classes="x"``, ``small_input="no"``) or a keyword the model does not take."""


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str | None = None,
    *,
    paper: Paper,
    input_size: tuple[int, ...],
    num_classes: int,
    params: int,
    macs: int,
    paper_results: dict[str, float] | None = None,
    notes: str = "",
    torchvision: TorchvisionPair | None = None,
) -> Callable[[F], F]:
    """Registers a model builder under ``name`` (default: the function's name).

    Args:
        name: registered name; defaults to the decorated function's ``__name__``.
        paper: the paper reproduced.
        input_size: default input ``(C, H, W)``.
        num_classes: class count at which ``params`` / ``macs`` are stated.
        params: trainable parameters at that setting (tested).
        macs: multiply-accumulates per image at ``input_size`` (tested).
        paper_results: the paper's reported figures for this network.
        notes: short description of the variant.
        torchvision: the torchvision model of the same architecture, if any.

    Returns:
        A decorator that records the builder and returns it unchanged.

    Raises:
        ValueError: if the name is already registered.
    """

    def decorator(fn: F) -> F:
        key = name or fn.__name__
        if key in _REGISTRY:
            other = _REGISTRY[key].builder
            raise ValueError(
                f"model name {key!r} is already registered by "
                f"{other.__module__}.{other.__qualname__}; pick another name"
            )
        _REGISTRY[key] = ModelInfo(
            name=key,
            builder=fn,
            paper=paper,
            input_size=tuple(input_size),
            num_classes=num_classes,
            params=params,
            macs=macs,
            family=fn.__module__.rsplit(".", 1)[-1],
            paper_results=dict(paper_results or {}),
            notes=notes,
            torchvision=torchvision,
        )
        return fn

    return decorator


def register_torchvision(zoo_name: str, tv_name: str, remap: Remap | None = None,
                         **builder_kwargs: Any) -> None:
    """Declares that the registered model ``zoo_name`` has torchvision's ``tv_name`` architecture.

    Sets :attr:`ModelInfo.torchvision` of ``zoo_name``; for models registered
    with ``register_model(..., torchvision=...)`` it is not needed.

    Args:
        zoo_name: registered zoo model name.
        tv_name: name accepted by ``torchvision.models.get_model``.
        remap: maps a torchvision state dict to this model's keys (identity if ``None``).
        **builder_kwargs: options the zoo builder needs to match torchvision exactly.

    Raises:
        UnknownModelError: if ``zoo_name`` is not registered (yet).
        ValueError: if ``zoo_name`` already has a torchvision pair.
    """
    info = model_info(zoo_name)
    if info.torchvision is not None:
        raise ValueError(f"{zoo_name!r} already has a torchvision pair ({info.torchvision.name})")
    pair = TorchvisionPair(name=tv_name, remap=remap, builder_kwargs=dict(builder_kwargs))
    _REGISTRY[zoo_name] = dataclasses.replace(info, torchvision=pair)


def list_models(pattern: str | None = None) -> list[str]:
    """Returns the sorted registered names, optionally filtered by an fnmatch pattern.

    Args:
        pattern: shell-style pattern such as ``"resnet*"``; ``None`` lists all.

    Returns:
        Sorted list of model names.

    Raises:
        ModelArgumentTypeError: if ``pattern`` is neither a str nor ``None``.
    """
    if pattern is not None and not isinstance(pattern, str):
        raise ModelArgumentTypeError(
            f"pattern must be a str (an fnmatch pattern) or None, got {pattern!r} "
            f"({type(pattern).__name__}); e.g. zoo.list_models(\"resnet*\"), or zoo.list_models() for all"
        )
    names = sorted(_REGISTRY)
    if pattern is None:
        return names
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def did_you_mean(name: object, names: Any, n: int = 5, cutoff: float = 0.6) -> str:
    """``" Did you mean: a, b?"`` naming the entries of ``names`` close to ``name``, or ``""`` (for every
    name registry of the project: models, datasets, augmentation recipes)."""
    close = difflib.get_close_matches(str(name), list(names), n=n, cutoff=cutoff)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def _unknown(name: str) -> UnknownModelError:
    hint = did_you_mean(name, _REGISTRY)
    return UnknownModelError(
        f"unknown model {name!r}.{hint} Registered models: {', '.join(list_models())}. "
        f"Use zoo.list_models('pattern*') to search."
    )


def model_info(name: str) -> ModelInfo:
    """Returns the metadata of a registered model.

    Raises:
        UnknownModelError: if ``name`` is not registered (the message suggests close names).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise _unknown(name) from None
