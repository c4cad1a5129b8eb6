"""Opt-in diagnostics: the input-size check that names the layer where an input becomes too small.

Models built by ``zoo.create_model`` carry no hooks. :func:`check_input` runs one
zero batch through a model with a forward pre-hook on every convolution and
pooling layer; an input too small for the network fails with
:class:`~zoo.ops.shape.InputTooSmallError` naming the layer's qualified name and
the output-size arithmetic ``(n + 2p - d(f-1) - 1)/s + 1``, instead of a bare
shape error deep inside a kernel. The hooks are removed before it returns, also
when it raises::

    model = zoo.create_model("lenet5")
    zoo.check_input(model, (1, 28, 28))  # InputTooSmallError: ... at layer 'features.c5' ...

:func:`add_size_checks` installs the same hooks for as long as the caller keeps them.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch
import torch.nn as nn
from torch.utils.hooks import RemovableHandle

from zoo._registry import UnknownModelError, model_info
from zoo.factory import registered_name
from zoo.ops.shape import InputTooSmallError, conv_output_size

__all__ = ["check_input", "add_size_checks", "InputTooSmallError"]

log = logging.getLogger(__name__)

_CHECKED = (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)


def _tup(v: Any, k: int) -> tuple[int, ...]:
    if isinstance(v, (tuple, list)):
        return tuple(int(x) for x in v)
    return (int(v),) * k


def _spatial_dims(module: nn.Module) -> int:
    for k in (3, 2, 1):
        if type(module).__name__.endswith(f"{k}d"):
            return k
    return int(getattr(module, "spatial_dims", 2))


def _layer_check(qualname: str, model_name: str, module: nn.Module, x: torch.Tensor,
                 default_input: Sequence[int] | None) -> None:
    """Raises :class:`InputTooSmallError` if ``module`` would turn ``x`` into an output smaller than 1."""
    if getattr(module, "transposed", False):
        return  # a transposed convolution only grows its input
    k = _spatial_dims(module)
    if x.dim() < k + 1:
        return
    sizes = tuple(x.shape[-k:])
    f = _tup(module.kernel_size, k)
    s = _tup(module.stride if module.stride is not None else module.kernel_size, k)
    padding = getattr(module, "padding", 0)
    if isinstance(padding, str):  # "same" / "valid" convolutions
        if padding == "same":
            return
        padding = 0
    p = _tup(padding, k)
    d = _tup(getattr(module, "dilation", 1), k)
    ceil = bool(getattr(module, "ceil_mode", False))
    axes = ("height", "width") if k == 2 else (("length",) if k == 1 else ("depth", "height", "width"))
    for i, n in enumerate(sizes):
        out = conv_output_size(n, f[i], s[i], p[i], d[i], ceil_mode=ceil)
        if out >= 1:
            continue
        value = (n + 2 * p[i] - d[i] * (f[i] - 1) - 1) / s[i] + 1
        arithmetic = f"({n} + 2*{p[i]} - {d[i]}*({f[i]}-1) - 1)/{s[i]} + 1 = {value:g}"
        if ceil:
            arithmetic += f", rounded up (ceil_mode) to {out}"
        expect = ("x".join(str(v) for v in default_input)) if default_input else "see zoo.model_info"
        raise InputTooSmallError(
            f"input too small for {model_name}: at layer '{qualname}' ({type(module).__name__}, "
            f"kernel {f[i]}, stride {s[i]}, padding {p[i]}, dilation {d[i]}) the {axes[i]} "
            f"of {n} becomes (n + 2p - d(f-1) - 1)/s + 1 = {arithmetic} < 1. "
            f"The input was {tuple(x.shape[1:])}; this network expects {expect} by default. "
            f"Resize the data up (e.g. data.image_size=...) or use the model's small-input "
            f"option (e.g. stem='cifar')."
        )


class _SizeCheck:
    """Forward pre-hook running :func:`_layer_check` for one layer."""

    def __init__(self, qualname: str, model_name: str, default_input: Sequence[int] | None) -> None:
        self.qualname = qualname
        self.model_name = model_name
        self.default_input = default_input

    def __call__(self, module: nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor):
            _layer_check(self.qualname, self.model_name, module, args[0], self.default_input)


def _name_of(model: nn.Module, name: str | None) -> str:
    return name or registered_name(model) or type(model).__name__


def add_size_checks(model: nn.Module, name: str | None = None) -> list[RemovableHandle]:
    """Adds forward pre-hooks that raise :class:`InputTooSmallError` with the layer and arithmetic.

    Every ``Conv*``/``MaxPool*``/``AvgPool*`` inside ``model`` is checked, and so is
    any module that sets ``checks_input_size = True`` and has ``kernel_size``/
    ``stride``/``padding`` attributes.

    Args:
        model: any module.
        name: the model's name in the message; by default its registered name when it
            was built by ``zoo.create_model``, else its class name.

    Returns:
        The hooks' handles; ``handle.remove()`` each to take them off again.
    """
    name = _name_of(model, name)
    try:
        default_input: Sequence[int] | None = model_info(name).input_size
    except UnknownModelError:
        default_input = None
    handles = []
    for qualname, module in model.named_modules():
        if isinstance(module, _CHECKED) or getattr(module, "checks_input_size", False):
            handles.append(module.register_forward_pre_hook(_SizeCheck(qualname, name, default_input)))
    return handles


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    first = next(iter(model.parameters()), None)
    return (first.device if first is not None else torch.device("cpu")), torch.get_default_dtype()


@torch.no_grad()
def check_input(model: nn.Module, input_size: Sequence[int], *, name: str | None = None) -> None:
    """Runs one zero batch of ``input_size`` through ``model`` with the input-size check on.

    The model runs in eval mode under ``torch.no_grad()`` on the device and dtype of its
    parameters (``"meta"`` works and costs no compute); each module's training mode is
    restored and every hook removed afterwards, also when it raises.

    Args:
        model: any module, e.g. one from ``zoo.create_model``.
        input_size: ``(C, H, W)`` (or ``(C, L)``) without the batch dimension.
        name: the model's name in the message (see :func:`add_size_checks`).

    Raises:
        InputTooSmallError: naming the layer where the size drops below 1 and the arithmetic.
        ValueError, RuntimeError: whatever else the model raises for this input.
    """
    size = tuple(int(s) for s in input_size)
    device, dtype = _device_dtype(model)
    modes = [(m, m.training) for m in model.modules()]
    handles = add_size_checks(model, name)
    try:
        model.eval()
        model(torch.zeros(1, *size, device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
