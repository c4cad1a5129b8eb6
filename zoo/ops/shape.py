"""Output-size arithmetic of convolutions and pools, and the "input too small" check.

For one spatial dimension of size ``n``, a convolution or pool with kernel ``f``,
stride ``s``, padding ``p`` and dilation ``d`` produces

    out = floor((n + 2p - d(f - 1) - 1) / s) + 1

and a transposed convolution produces

    out = (n - 1)s - 2p + d(f - 1) + output_padding + 1.

:func:`install_size_checks` hooks every convolution and pooling layer of a
model so that an input too small for the network fails with the layer's
qualified name and this arithmetic, instead of a bare shape error deep inside
a kernel.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn as nn

__all__ = [
    "conv_output_size",
    "conv_transpose_output_size",
    "InputTooSmallError",
    "install_size_checks",
]


def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """Returns the output length of a convolution or pool along one dimension.

    Args:
        n: input length.
        kernel: kernel size ``f``.
        stride: stride ``s``.
        padding: zero padding ``p`` on each side.
        dilation: dilation ``d``.
        ceil_mode: round up instead of down (pooling's ``ceil_mode``); as in
            PyTorch, a last window that would start in the right padding is dropped.

    Returns:
        ``floor((n + 2p - d(f-1) - 1)/s) + 1`` (may be < 1 for too-small inputs).
    """
    span = n + 2 * padding - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= n + padding:
            out -= 1
        return out
    return span // stride + 1


def conv_transpose_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0,
                               dilation: int = 1, output_padding: int = 0) -> int:
    """Returns the output length of a transposed convolution along one dimension.

    Returns:
        ``(n-1)s - 2p + d(f-1) + output_padding + 1``.
    """
    return (n - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


class InputTooSmallError(ValueError):
    """Raised when an input's spatial size drops below 1 inside a network."""


def _tup(v: Any, k: int) -> tuple[int, ...]:
    if isinstance(v, (tuple, list)):
        return tuple(int(x) for x in v)
    return (int(v),) * k


_CHECKED = (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)


def _spatial_dims(module: nn.Module) -> int:
    for k in (3, 2, 1):
        if type(module).__name__.endswith(f"{k}d"):
            return k
    return int(getattr(module, "spatial_dims", 2))


def _layer_check(qualname: str, model_name: str, module: nn.Module, x: torch.Tensor,
                 default_input: Sequence[int] | None) -> None:
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
    transposed = bool(getattr(module, "transposed", False))
    ceil = bool(getattr(module, "ceil_mode", False))
    axes = ("height", "width") if k == 2 else (("length",) if k == 1 else ("depth", "height", "width"))
    for i, n in enumerate(sizes):
        if transposed:
            continue  # a transposed convolution only grows its input
        out = conv_output_size(n, f[i], s[i], p[i], d[i], ceil_mode=ceil)
        if out < 1 or n + 2 * p[i] < d[i] * (f[i] - 1) + 1:
            arithmetic = (f"({n} + 2*{p[i]} - {d[i]}*({f[i]}-1) - 1)/{s[i]} + 1 = "
                          f"{(n + 2 * p[i] - d[i] * (f[i] - 1) - 1) / s[i] + 1:g}")
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
    """Picklable forward pre-hook running :func:`_layer_check` for one layer."""

    def __init__(self, qualname: str, model_name: str, default_input: Sequence[int] | None) -> None:
        self.qualname = qualname
        self.model_name = model_name
        self.default_input = default_input

    def __call__(self, module: nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor):
            _layer_check(self.qualname, self.model_name, module, args[0], self.default_input)


def install_size_checks(model: nn.Module, model_name: str | None = None) -> nn.Module:
    """Adds forward pre-hooks that raise :class:`InputTooSmallError` with the layer and arithmetic.

    Args:
        model: any module; every ``Conv*``/``MaxPool*``/``AvgPool*`` inside it is
            checked, and so is any module that sets ``checks_input_size = True``
            and has ``kernel_size``/``stride``/``padding`` attributes.
        model_name: name used in the message (defaults to the class name).

    Returns:
        The same model (hooks are installed in place; calling twice is a no-op).
    """
    if getattr(model, "_zoo_size_checks", False):
        return model
    name = model_name or type(model).__name__
    default_input = None
    try:
        from zoo._registry import model_info

        default_input = model_info(name).input_size if model_name else None
    except KeyError:
        pass
    for qualname, module in model.named_modules():
        if isinstance(module, _CHECKED) or getattr(module, "checks_input_size", False):
            module.register_forward_pre_hook(_SizeCheck(qualname, name, default_input))
    model._zoo_size_checks = True  # type: ignore[attr-defined]
    return model
