"""Building models: :func:`create_model`, :func:`from_torchvision` and weight loading.

:func:`create_model` checks the shared keywords before building: ``num_classes``
and ``in_chans`` are ints >= 1, ``small_input`` a bool, ``dropout`` /
``attn_dropout`` / ``aux_dropout`` / ``drop_path_rate`` numbers in [0, 1); a
keyword the builder does not take is named with the ones it accepts. The model
it returns is a plain module: no hooks, nothing installed on it. The input-size
diagnosis is opt-in, with :func:`zoo.check_input` (:mod:`zoo.diagnostics`).

Weights: ``weights="torchvision"`` loads torchvision's pretrained weights of the
model's torchvision pair, fetched and verified by :mod:`zoo.interop`;
``weights="<file>.safetensors"`` loads a weights file written by :func:`zoo.save_weights`, and
``weights="<tag>"`` the weights shipped with the package (``zoo.create_model("lenet5", weights="mnist")``),
both checked against the SHA-256 in their sidecar (:mod:`zoo.weights`).

Data and calls flow one way: :mod:`zoo._registry` (metadata) <- :mod:`zoo.models`
<- this module <- :mod:`zoo.diagnostics`, the training pipeline and the package.
"""

from __future__ import annotations

import inspect
import logging
import numbers
import os
import re
import typing
import weakref
from typing import Any, Sequence

import torch.nn as nn

import zoo.models  # noqa: F401  (registers every family; see zoo/models/__init__.py)
from zoo import interop
from zoo._registry import (
    ModelArgumentError,
    ModelArgumentTypeError,
    ModelInfo,
    model_info,
)

__all__ = ["create_model", "from_torchvision", "registered_name"]

log = logging.getLogger(__name__)

#: The registered name of each model built here, for messages (see :func:`registered_name`).
_NAMES: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()

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


def registered_name(model: nn.Module) -> str | None:
    """Returns the registered name ``model`` was built under by :func:`create_model`, else ``None``.

    Nothing is stored on the model itself; a copy of it (``copy.deepcopy``, a reloaded pickle) has no name.
    """
    try:
        return _NAMES.get(model)
    except TypeError:  # not weak-referenceable
        return None


def _build(info: ModelInfo, kwargs: dict[str, Any]) -> nn.Module:
    """Calls ``info.builder(**kwargs)``; a keyword the builder does not take is named with the accepted ones."""
    try:
        return info.builder(**kwargs)
    except TypeError as err:
        m = _UNEXPECTED.search(str(err))
        key = m.group(1) if m else None
        if key is None or key not in kwargs or _takes_keyword(info, key):
            raise
        raise ModelArgumentTypeError(
            f"model {info.name!r} does not take the keyword {key}={kwargs[key]!r}. "
            f"Accepted keywords: {', '.join(_accepted_keywords(info))}. "
            f"Build it without {key}, e.g. zoo.create_model({info.name!r}, num_classes={info.num_classes})"
        ) from err


def _weights_file(weights: str | os.PathLike[str]) -> str | None:
    """The path of a weights file named by ``weights``, or ``None`` for a torchvision weights name."""
    text = os.fspath(weights)
    if isinstance(weights, os.PathLike) or os.sep in text or os.path.splitext(text)[1]:
        return text
    return None  # torchvision's names ("torchvision", "DEFAULT", "IMAGENET1K_V1") have no extension


def _shipped_tag(name: str, weights: str | os.PathLike[str]) -> bool:
    """Whether ``weights`` is the tag of weights shipped with the package for ``name`` (e.g. ``"mnist"``)."""
    from zoo.weights import SHIPPED_DIR

    text = os.fspath(weights)
    return os.sep not in text and not os.path.splitext(text)[1] and \
        (SHIPPED_DIR / f"{name}-{text}.safetensors").is_file()


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    weights: str | os.PathLike[str] | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Builds a registered model.

    Args:
        name: registered name (see :func:`zoo.list_models`).
        num_classes: output classes; the builder's default when ``None``.
        in_chans: input channels; the builder's default when ``None``.
        weights: ``"torchvision"`` loads torchvision's pretrained weights where
            the architecture matches one of torchvision's (needs the internet
            or torchvision's cache; the name of one of torchvision's weight enums,
            e.g. ``"IMAGENET1K_V1"``, picks other weights); a path to a
            ``.safetensors`` file loads that file; ``None`` for random init.
        features_only: return the feature extractor of the model
            (``zoo.features.features_only``) instead of the classifier.
        out_indices: which feature stages the extractor returns (its default when ``None``).
        **kwargs: architecture options of the builder (``stem``, ``head``, ...).

    Returns:
        The model, in training mode, without hooks.

    Raises:
        UnknownModelError: for an unknown name, with close matches.
        ModelArgumentTypeError: for a ``name`` that is not a str, a ``num_classes`` / ``in_chans``
            that is not an int, a ``small_input`` that is not a bool, a dropout rate that is not a
            number, a ``weights`` that is not a str or path, or a keyword the model does not take.
        ModelArgumentError: for ``num_classes`` / ``in_chans`` < 1, a ``dropout`` /
            ``attn_dropout`` / ``aux_dropout`` / ``drop_path_rate`` outside [0, 1), or a weights
            file that is not a ``.safetensors`` file.
        KeyError: for ``weights="torchvision"`` on a model without a torchvision counterpart.
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
    _check_flag(info, "features_only", features_only)
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise ModelArgumentTypeError(
            f"weights must be None, \"torchvision\" or the path of a .safetensors file, got {weights!r} "
            f"({type(weights).__name__}) for model {name!r}; e.g. zoo.create_model({name!r}, weights=\"torchvision\")"
        )
    path = _weights_file(weights) if weights is not None else None
    if weights is not None and path is None and _shipped_tag(name, weights):
        path = os.fspath(weights)
    if path is not None and not path.endswith(".safetensors") and not _shipped_tag(name, path):
        raise ModelArgumentError(
            f"weights={path!r}: only .safetensors weights files are loaded by zoo.create_model; "
            f"for a torch checkpoint of torchvision weights use "
            f"zoo.from_torchvision({name!r}, torch.load(path, weights_only=True))"
        )
    tv_name = str(weights) in ("torchvision", "DEFAULT") or bool(re.fullmatch(r"[A-Z0-9_]+", str(weights)))
    if weights is not None and path is None and info.torchvision is None and not tv_name:
        from zoo.weights import resolve_weights

        resolve_weights(name, weights)  # neither shipped nor a torchvision twin: raises, naming what there is
    if weights is not None and path is None:  # the options that make the model match torchvision's
        kwargs = {**interop.torchvision_builder_kwargs(name), **kwargs}
    wf = None
    if path is not None:  # a weights file (or a shipped tag): built with the keywords in its sidecar
        from zoo.weights import resolve_weights

        wf = resolve_weights(name, path)
        kwargs = {**{k: v for k, v in wf.kwargs.items() if k != "name"}, **kwargs}
    model = _build(info, kwargs)
    if wf is not None:
        from zoo.weights import load_into

        model = load_into(model, wf)
    elif weights is not None:
        state_dict = interop.fetch_torchvision_state_dict(name, str(weights))
        model = interop.load_torchvision_state_dict(model, name, state_dict)
    _NAMES[model] = name
    if features_only:
        from zoo.features import features_only as _wrap

        model = _wrap(model, out_indices)
        _NAMES[model] = name
    return model


def from_torchvision(name: str, state_dict: interop.StateDict, **kwargs: Any) -> nn.Module:
    """Builds zoo model ``name`` and loads a torchvision ``state_dict`` into it.

    The number of classes is read from the state dict's last 2-D weight unless
    given in ``kwargs``.

    Args:
        name: zoo model name with a torchvision pair (see :func:`zoo.torchvision_pairs`).
        state_dict: ``torchvision.models.<tv_name>().state_dict()``, or a checkpoint of it.
        **kwargs: further builder options.

    Returns:
        The zoo model with torchvision's weights, in training mode.

    Raises:
        KeyError: if ``name`` has no torchvision counterpart.
        RuntimeError: if the state dict does not fit the model key for key.
    """
    pair = interop.torchvision_pair(name)
    if "num_classes" not in kwargs:
        last = [v for v in state_dict.values() if v.dim() == 2]
        if last:
            kwargs["num_classes"] = int(last[-1].shape[0])
    model = create_model(name, **{**pair.builder_kwargs, **kwargs})
    return interop.load_torchvision_state_dict(model, name, state_dict)
