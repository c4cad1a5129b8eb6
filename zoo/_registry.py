"""Model registry: one name per architecture, with the paper's facts attached.

Every family module registers thin builders with :func:`register_model`::

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

The model contract, shared by every registered builder:

* keyword-only ``num_classes`` and ``in_chans`` (and ``dropout`` where the
  paper has dropout);
* ``forward(x)`` returns one logits tensor ``(B, num_classes)``;
* models with auxiliary heads (GoogLeNet) also expose
  ``forward_train(x) -> (logits, [aux_logits, ...])``; the training module
  calls it only while training, and inference never computes the extra heads;
* ``forward_features`` / ``forward_head`` where the split is natural;
* the loss never lives in the model.

:func:`create_model` checks the shared keywords before building: ``num_classes``
and ``in_chans`` are ints >= 1, ``small_input`` a bool, ``dropout`` /
``attn_dropout`` / ``aux_dropout`` / ``drop_path_rate`` numbers in [0, 1); a
keyword the builder does not take is named with the ones it accepts.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import logging
import numbers
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import torch.nn as nn

__all__ = [
    "Paper",
    "ModelInfo",
    "register_model",
    "create_model",
    "list_models",
    "model_info",
    "UnknownModelError",
    "ModelArgumentError",
    "ModelArgumentTypeError",
]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., nn.Module])


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


class UnknownModelError(KeyError):
    """Raised for a model name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0])


class ModelArgumentError(ValueError):
    """Raised by :func:`create_model` for a keyword with a value out of its range (``num_classes=0``)."""


class ModelArgumentTypeError(TypeError):
    """Raised by :func:`create_model` / :func:`list_models` for an argument of the wrong type
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
        )
        return fn

    return decorator


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


def _unknown(name: str) -> UnknownModelError:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
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


#: keywords that are probabilities: a number in [0, 1).
_RATE_KEYWORDS = ("dropout", "attn_dropout", "aux_dropout", "drop_path_rate")


def _example(info: ModelInfo, key: str, fallback: Any) -> str:
    """``zoo.create_model(name, key=<the builder's default, else fallback>)`` for a message."""
    p = inspect.signature(info.builder).parameters.get(key)
    good = p.default if p is not None and p.default is not inspect.Parameter.empty else fallback
    return f"zoo.create_model({info.name!r}, {key}={good!r})"


def _check_count(info: ModelInfo, key: str, value: Any) -> int:
    """Returns ``value`` as an int, or raises unless it is an integer >= 1 (not a bool)."""
    example = _example(info, key, info.num_classes if key == "num_classes" else info.input_size[0])
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ModelArgumentTypeError(
            f"{key} must be an int >= 1, got {value!r} ({type(value).__name__}) for model {info.name!r}; "
            f"e.g. {example}"
        )
    if value < 1:
        raise ModelArgumentError(
            f"{key} must be an int >= 1, got {value!r} for model {info.name!r}; e.g. {example}"
        )
    return int(value)


def _check_flag(info: ModelInfo, key: str, value: Any) -> bool:
    """Returns ``value``, or raises unless it is strictly a bool."""
    if not isinstance(value, bool):
        raise ModelArgumentTypeError(
            f"{key} must be True or False, got {value!r} ({type(value).__name__}) for model {info.name!r}; "
            f"e.g. zoo.create_model({info.name!r}, {key}=True)"
        )
    return value


def _check_rate(info: ModelInfo, key: str, value: Any) -> float:
    """Returns ``value``, or raises unless it is a real number in [0, 1)."""
    example = _example(info, key, 0.1)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ModelArgumentTypeError(
            f"{key} must be a number in [0, 1), got {value!r} ({type(value).__name__}) for model "
            f"{info.name!r}; e.g. {example}"
        )
    if not 0.0 <= float(value) < 1.0:  # also refuses nan
        raise ModelArgumentError(
            f"{key} must be a number in [0, 1) (a drop probability), got {value!r} for model {info.name!r}; "
            f"e.g. {example}"
        )
    return value


def _accepted_keywords(info: ModelInfo) -> list[str]:
    """The keywords ``info.builder`` takes: its own, and, when it forwards ``**kwargs`` to the model class
    named by its return annotation, that class's constructor keywords."""
    params = inspect.signature(info.builder).parameters
    names = {p.name for p in params.values() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        try:
            cls = typing.get_type_hints(info.builder).get("return")
        except Exception:  # an annotation that does not resolve: own keywords only
            cls = None
        if isinstance(cls, type):
            init = inspect.signature(cls.__init__).parameters
            names |= {p.name for p in init.values()
                      if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return sorted(names)


def _takes_keyword(info: ModelInfo, key: str) -> bool:
    """Whether ``key`` is a named parameter of the builder (``**kwargs`` alone does not count)."""
    p = inspect.signature(info.builder).parameters.get(key)
    return p is not None and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)


_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")


def _check_kwargs(info: ModelInfo, kwargs: dict[str, Any]) -> None:
    """Validates the keywords shared by the builders (see :func:`create_model`), in place."""
    for key in ("num_classes", "in_chans"):
        if key in kwargs:
            kwargs[key] = _check_count(info, key, kwargs[key])
    if "small_input" in kwargs:
        _check_flag(info, "small_input", kwargs["small_input"])
    for key in _RATE_KEYWORDS:
        if key in kwargs:
            _check_rate(info, key, kwargs[key])


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    weights: str | None = None,
    check_input_size: bool = True,
    **kwargs: Any,
) -> nn.Module:
    """Builds a registered model.

    Args:
        name: registered name (see :func:`list_models`).
        num_classes: output classes; the builder's default when ``None``.
        in_chans: input channels; the builder's default when ``None``.
        weights: ``"torchvision"`` loads torchvision's pretrained weights where
            the architecture matches one of torchvision's (needs the internet
            or torchvision's cache); ``None`` for random init.
        check_input_size: install the input-size check that names the layer
            where the spatial size drops below 1 (see :mod:`zoo.ops.shape`).
        **kwargs: architecture options of the builder (``stem``, ``head``, ...).

    Returns:
        The model, in training mode.

    Raises:
        UnknownModelError: for an unknown name, with close matches.
        ModelArgumentTypeError: for a ``name`` that is not a str, a ``num_classes`` / ``in_chans``
            that is not an int, a ``small_input`` that is not a bool, a dropout rate that is not a
            number, or a keyword the model does not take.
        ModelArgumentError: for ``num_classes`` / ``in_chans`` < 1, or a ``dropout`` /
            ``attn_dropout`` / ``aux_dropout`` / ``drop_path_rate`` outside [0, 1).
    """
    if not isinstance(name, str):
        raise ModelArgumentTypeError(
            f"name must be a str (a registered model name), got {name!r} ({type(name).__name__}); "
            f"e.g. zoo.create_model(\"resnet18\"); zoo.list_models() lists the names"
        )
    info = model_info(name)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    _check_kwargs(info, kwargs)
    if weights is not None:  # the options that make the model match torchvision's pretrained one
        from zoo.interop import torchvision_builder_kwargs

        kwargs = {**torchvision_builder_kwargs(name), **kwargs}
    try:
        model = info.builder(**kwargs)
    except TypeError as err:
        m = _UNEXPECTED.search(str(err))
        key = m.group(1) if m else None
        if key is None or key not in kwargs or _takes_keyword(info, key):
            raise
        raise ModelArgumentTypeError(
            f"model {name!r} does not take the keyword {key}={kwargs[key]!r}. "
            f"Accepted keywords: {', '.join(_accepted_keywords(info))}. "
            f"Build it without {key}, e.g. zoo.create_model({name!r}, num_classes={info.num_classes})"
        ) from err
    if weights is not None:
        from zoo.interop import load_torchvision_weights

        load_torchvision_weights(model, name, weights)
    if check_input_size:
        from zoo.ops.shape import install_size_checks

        install_size_checks(model, model_name=name)
    return model
