"""2-D max and average pooling with hand-written backward passes.

Both pools gather every channel's pooling windows as in im2col
(:func:`zoo.ops.im2col.sliding_windows`), one row of ``k_h*k_w`` entries per
window and channel; the forward pass reduces each row (max or mean). The
backward pass builds a gradient for every window entry and adds the windows
back onto the image as col2im does (:func:`zoo.ops.im2col.add_windows`), summing
where windows overlap:

* **max pooling** routes each output's gradient to the arg-max of its window,
  recorded in the forward pass; every other entry gets zero. When the stride
  equals the kernel (windows tile the image) this is the gradient upsampled by
  nearest-neighbour and multiplied by the 0/1 arg-max mask.
* **average pooling** spreads each output's gradient evenly, ``g / (k_h*k_w)``,
  over its window (padding counts as entries, as in PyTorch's default
  ``count_include_pad=True``).

Ties in a max-pool window go to the first maximum in row-major order, as in
PyTorch.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from zoo.ops.im2col import Pads, add_windows, pair, sliding_windows
from zoo.ops.shape import conv_output_size

__all__ = ["max_pool2d", "avg_pool2d", "MaxPool2dFunction", "AvgPool2dFunction"]

Pair = tuple[int, int]


def _windows(x: torch.Tensor, kernel: Pair, stride: Pair, pads: Pads, pad_value: float) -> torch.Tensor:
    """Every pooling window, flattened and last: ``(B, C, Ho, Wo, kh*kw)`` (one copy)."""
    windows = sliding_windows(x, kernel, stride, pads, pad_value=pad_value)  # (B, C, kh, kw, Ho, Wo) view
    b, c, kh, kw, ho, wo = windows.shape
    return windows.permute(0, 1, 4, 5, 2, 3).reshape(b, c, ho, wo, kh * kw)


def _fold(grad_windows: torch.Tensor, input_hw: Sequence[int], kernel: Pair, stride: Pair,
          pads: Pads) -> torch.Tensor:
    """Adds ``(B, C, Ho, Wo, kh*kw)`` window gradients back onto the ``(B, C, H, W)`` input (col2im)."""
    b, c, ho, wo, _ = grad_windows.shape
    windows = grad_windows.reshape(b, c, ho, wo, *kernel).permute(0, 1, 4, 5, 2, 3)  # (B, C, kh, kw, Ho, Wo)
    return add_windows(windows, input_hw, stride, pads)


class MaxPool2dFunction(torch.autograd.Function):
    """Max pooling; backward routes the gradient through the recorded arg-max mask."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kernel: Pair, stride: Pair, pads: Pads) -> torch.Tensor:
        """``y[b, c, u, v] = max over the window (u, v)``; remembers where the max was."""
        windows = _windows(x, kernel, stride, pads, pad_value=float("-inf"))  # (B, C, Ho, Wo, kh*kw)
        argmax = windows.argmax(dim=-1, keepdim=True)  # (B, C, Ho, Wo, 1): the first maximum on ties
        ctx.save_for_backward(argmax)
        ctx.conf = (tuple(x.shape[-2:]), kernel, stride, pads)
        return windows.gather(-1, argmax).squeeze(-1)  # (B, C, Ho, Wo)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """Mask routing::

            dL/dx[b,c,t,r] = sum over windows (u,v) whose arg-max is (t,r) of g[b,c,u,v]

        i.e. each window's gradient goes to its arg-max entry, the rest get zero,
        and col2im adds the windows back onto the image.
        """
        (argmax,) = ctx.saved_tensors
        input_hw, kernel, stride, pads = ctx.conf
        grad_windows = grad_out.new_zeros(*grad_out.shape, kernel[0] * kernel[1])  # (B, C, Ho, Wo, kh*kw)
        grad_windows = grad_windows.scatter(-1, argmax, grad_out.unsqueeze(-1))  # one-hot arg-max mask times g
        return _fold(grad_windows, input_hw, kernel, stride, pads), None, None, None


class AvgPool2dFunction(torch.autograd.Function):
    """Average pooling; backward spreads the gradient evenly over each window."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kernel: Pair, stride: Pair, pads: Pads) -> torch.Tensor:
        """``y[b, c, u, v] = mean over the (zero-padded) window (u, v)``."""
        ctx.conf = (tuple(x.shape[-2:]), kernel, stride, pads)
        return _windows(x, kernel, stride, pads, pad_value=0.0).mean(dim=-1)  # (B, C, Ho, Wo)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """Even spread::

            dL/dx[b,c,t,r] = sum over windows (u,v) containing (t,r) of g[b,c,u,v] / (kh*kw)
        """
        input_hw, kernel, stride, pads = ctx.conf
        area = kernel[0] * kernel[1]
        share = (grad_out / area).unsqueeze(-1)  # (B, C, Ho, Wo, 1)
        grad_windows = share.expand(*grad_out.shape, area)  # the same share for every entry of the window
        return _fold(grad_windows, input_hw, kernel, stride, pads), None, None, None


def _pool_args(x: torch.Tensor, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None,
               padding: int | Sequence[int]) -> tuple[Pair, Pair, Pads]:
    if x.dim() != 4:
        raise ValueError(f"expected a 4-D input (B, C, H, W), got {tuple(x.shape)}")
    k = pair(kernel_size, "kernel_size")
    s = k if stride is None else pair(stride, "stride")
    p = pair(padding, "padding")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2 or min(p) < 0:
        raise ValueError(f"padding {p} must be between 0 and half the kernel {k}")
    ho = conv_output_size(x.shape[-2], k[0], s[0], p[0])
    wo = conv_output_size(x.shape[-1], k[1], s[1], p[1])
    if ho < 1 or wo < 1:
        raise ValueError(f"input {tuple(x.shape[-2:])} is too small for a {k} pool with "
                         f"padding {p}: output would be {ho}x{wo}")
    return k, s, (p[0], p[0], p[1], p[1])


def max_pool2d(x: torch.Tensor, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
               padding: int | Sequence[int] = 0) -> torch.Tensor:
    """Max pooling through :class:`MaxPool2dFunction`; same result as ``F.max_pool2d``.

    Args:
        x: ``(B, C, H, W)``.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: defaults to ``kernel_size``.
        padding: implicit ``-inf`` padding, at most half the kernel.

    Returns:
        ``(B, C, Ho, Wo)``.
    """
    k, s, pads = _pool_args(x, kernel_size, stride, padding)
    return MaxPool2dFunction.apply(x, k, s, pads)


def avg_pool2d(x: torch.Tensor, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
               padding: int | Sequence[int] = 0) -> torch.Tensor:
    """Average pooling through :class:`AvgPool2dFunction`; same result as ``F.avg_pool2d``.

    Args:
        x: ``(B, C, H, W)``.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: defaults to ``kernel_size``.
        padding: implicit zero padding (counted in the average), at most half the kernel.

    Returns:
        ``(B, C, Ho, Wo)``.
    """
    k, s, pads = _pool_args(x, kernel_size, stride, padding)
    return AvgPool2dFunction.apply(x, k, s, pads)
