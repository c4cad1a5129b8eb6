"""Output-size arithmetic of convolutions and pools, and the "input too small" error.

For one spatial dimension of size ``n``, a convolution or pool with kernel ``f``,
stride ``s``, padding ``p`` and dilation ``d`` produces

    out = floor((n + 2p - d(f - 1) - 1) / s) + 1

(pools with ``ceil_mode=True`` round up instead, and drop a last window that
would start in the right padding), and a transposed convolution produces

    out = (n - 1)s - 2p + d(f - 1) + output_padding + 1.

:class:`InputTooSmallError` is raised by the opt-in input-size diagnosis,
:func:`zoo.check_input` (:mod:`zoo.diagnostics`), and by layers that check their
own input. This module imports no other zoo module.
"""

from __future__ import annotations

__all__ = [
    "conv_output_size",
    "conv_transpose_output_size",
    "InputTooSmallError",
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
            PyTorch, a last window must start inside the input or the left
            padding, so one that would start in the right padding is dropped.

    Returns:
        ``floor((n + 2p - d(f-1) - 1)/s) + 1``, or with ``ceil_mode`` the same
        rounded up (may be < 1 for too-small inputs).
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
