"""torch.hub entrypoints: every registered model of zoo, by its registered name.

From a checkout (no network)::

    import torch
    model = torch.hub.load("/path/to/zoo", "resnet18", source="local", num_classes=10)

or from GitHub with ``torch.hub.load("<owner>/<repo>", "resnet18", num_classes=10)``.
Every keyword goes to :func:`zoo.create_model`: ``num_classes``, ``in_chans``,
``weights`` (``"torchvision"`` or a ``.safetensors`` file) and the model's own
options (``small_input``, ``stem``, ...). ``torch.hub.help(..., "resnet18")``
shows the model's paper, default input and size.

The entrypoints are generated from :func:`zoo.list_models` when this file is
imported, so a newly registered model is listed without editing it. torch.hub
puts the checkout at the front of ``sys.path`` while it imports this file,
which makes ``import zoo`` load the checkout's package; the folder of this
file is added as well when it is imported some other way.
"""

from __future__ import annotations

import os as _os
import sys as _sys
from typing import Any as _Any, Callable as _Callable

_HERE = _os.path.dirname(_os.path.abspath(__file__))
if _HERE not in _sys.path:
    _sys.path.insert(0, _HERE)

import torch.nn as _nn  # noqa: E402

import zoo as _zoo  # noqa: E402

#: Packages torch.hub checks before calling an entrypoint.
dependencies = ["torch", "torchvision"]


def _docstring(name: str) -> str:
    """The entrypoint's docstring, from the model's registry entry."""
    info = _zoo.model_info(name)
    shape = "x".join(str(n) for n in info.input_size)
    lines = [
        f"{name}: {info.notes}" if info.notes else name,
        "",
        f"Paper: {info.paper.cite()}.",
        f"Default input {shape}, {info.num_classes} classes: {info.params:,} parameters, "
        f"{info.macs:,} multiply-accumulates.",
        "",
        "Args:",
        "    **kwargs: passed to zoo.create_model: num_classes, in_chans, weights",
        "        (\"torchvision\" or a .safetensors file) and the model's own options.",
        "",
        "Returns:",
        "    The model (an nn.Module, in training mode).",
    ]
    return "\n".join(lines)


def _entrypoint(name: str) -> _Callable[..., _nn.Module]:
    """A function ``name(**kwargs) -> nn.Module`` that builds the registered model ``name``."""

    def entrypoint(**kwargs: _Any) -> _nn.Module:
        return _zoo.create_model(name, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = _docstring(name)
    return entrypoint


for _name in _zoo.list_models():
    if _name.startswith("_") or _name == "dependencies":  # torch.hub would hide or misread it
        raise ValueError(f"model name {_name!r} cannot be a torch.hub entrypoint")
    globals()[_name] = _entrypoint(_name)
del _name
