"""im2col and its adjoint col2im.

For a kernel of size ``kh x kw``, stride ``s``, zero padding ``p`` and dilation
``d``, im2col copies every receptive field of the (padded) input into one
column::

    cols[b, (c, i, j), (u, v)] = x_pad[b, c, u*s_h + i*d_h, v*s_w + j*d_w]

so ``cols`` has shape ``(B, C*kh*kw, Ho*Wo)`` with ``Ho, Wo`` given by
:func:`zoo.ops.conv_output_size`. The row order ``(c, i, j)`` and column order
``(u, v)`` are those of :func:`torch.nn.functional.unfold`, so a weight
``(O, C, kh, kw)`` flattened to ``(O, C*kh*kw)`` turns a convolution into one
matrix multiply ``W @ cols``.

The source index ``(c, u*s_h + i*d_h, v*s_w + j*d_w)`` is linear in
``(c, i, j, u, v)``, so all receptive fields together are one strided *view* of
the padded input, ``(B, C, kh, kw, Ho, Wo)`` (:func:`sliding_windows`); im2col
copies that view into columns, and other layouts (pooling wants the window
last) are a permutation of the same view.

col2im is the adjoint (transpose) of this linear map: it adds every column entry
back to the input position it was copied from, so overlapping windows sum. It
is what every backward pass through im2col needs, and it equals
:func:`torch.nn.functional.fold`. It loops over the ``kh*kw`` kernel offsets
``(i, j)``, not over the ``Ho*Wo`` output positions: for a fixed offset the
entries ``x_pad[:, :, i*d_h + u*s_h, j*d_w + v*s_w]`` over all ``(u, v)`` form one
strided slice of the padded image (:func:`add_windows`).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from zoo.ops.shape import conv_output_size

__all__ = ["im2col", "col2im", "sliding_windows", "add_windows", "expand_padding", "pair", "Pads"]

# Zero padding per spatial side: (top, bottom, left, right).
Pads = tuple[int, int, int, int]


def pair(v: int | Sequence[int], name: str = "value") -> tuple[int, int]:
    """Returns ``(v, v)`` for an int and ``tuple(v)`` for a pair.

    Raises:
        ValueError: if ``v`` is a sequence whose length is not 2.
    """
    if isinstance(v, int):
        return (v, v)
    t = tuple(int(u) for u in v)
    if len(t) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return t  # type: ignore[return-value]


def expand_padding(padding: int | Sequence[int]) -> Pads:
    """Normalises ``p``, ``(p_h, p_w)`` or ``(top, bottom, left, right)`` to the 4-tuple.

    Raises:
        ValueError: for negative padding or a sequence of another length.
    """
    if isinstance(padding, int):
        t: tuple[int, ...] = (padding,) * 4
    else:
        t = tuple(int(v) for v in padding)
        if len(t) == 2:
            t = (t[0], t[0], t[1], t[1])
        elif len(t) != 4:
            raise ValueError(f"padding must be an int, a pair or (top, bottom, left, right), got {padding!r}")
    if min(t) < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return t  # type: ignore[return-value]


def _output_hw(h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int], pads: Pads,
               dilation: tuple[int, int]) -> tuple[int, int]:
    ho = conv_output_size(h + pads[0] + pads[1], kernel[0], stride[0], 0, dilation[0])
    wo = conv_output_size(w + pads[2] + pads[3], kernel[1], stride[1], 0, dilation[1])
    if ho < 1 or wo < 1:
        raise ValueError(f"input {h}x{w} with padding {pads} is smaller than the {kernel[0]}x{kernel[1]} "
                         f"kernel at dilation {dilation}: the output would be {ho}x{wo}")
    return ho, wo


def sliding_windows(x: torch.Tensor, kernel_size: int | Sequence[int], stride: int | Sequence[int] = 1,
                    padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
                    pad_value: float = 0.0) -> torch.Tensor:
    """Every receptive field of ``x`` as a strided view (no copy beyond the padding).

    Args:
        x: input ``(B, C, H, W)``.
        kernel_size: ``kh`` or ``(kh, kw)``.
        stride: ``s`` or ``(s_h, s_w)``.
        padding: ``p``, ``(p_h, p_w)`` (both sides alike) or ``(top, bottom, left, right)``.
        dilation: ``d`` or ``(d_h, d_w)``.
        pad_value: value of the padding (0 for convolution, ``-inf`` for max pooling).

    Returns:
        ``(B, C, kh, kw, Ho, Wo)`` with ``[b, c, i, j, u, v] = x_pad[b, c, u*s_h + i*d_h, v*s_w + j*d_w]``.
    """
    (kh, kw), s, d = pair(kernel_size, "kernel_size"), pair(stride, "stride"), pair(dilation, "dilation")
    pads = expand_padding(padding)
    b, c, h, w = x.shape
    ho, wo = _output_hw(h, w, (kh, kw), s, pads, d)
    # F.pad takes (left, right, top, bottom).
    xp = F.pad(x, (pads[2], pads[3], pads[0], pads[1]), value=pad_value) if any(pads) else x
    sb, sc, sh, sw = xp.stride()
    return xp.as_strided((b, c, kh, kw, ho, wo),
                         (sb, sc, sh * d[0], sw * d[1], sh * s[0], sw * s[1]),
                         xp.storage_offset())


def add_windows(windows: torch.Tensor, input_size: Sequence[int], stride: int | Sequence[int] = 1,
                padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1) -> torch.Tensor:
    """Adds every window entry back onto the image position it was read from: the adjoint of :func:`sliding_windows`.

    Args:
        windows: ``(B, C, kh, kw, Ho, Wo)``, any strides.
        input_size: ``(H, W)`` of the image (before padding).
        stride, padding, dilation: as given to :func:`sliding_windows`.

    Returns:
        ``(B, C, H, W)``: the sum over all windows covering each pixel; padding dropped.
    """
    s, d = pair(stride, "stride"), pair(dilation, "dilation")
    pads = expand_padding(padding)
    b, c, kh, kw, ho, wo = windows.shape
    h, w = (int(v) for v in input_size)
    if _output_hw(h, w, (kh, kw), s, pads, d) != (ho, wo):
        raise ValueError(f"windows of shape {tuple(windows.shape)} do not fit a {h}x{w} input with "
                         f"stride {s}, padding {pads}, dilation {d}")
    out = windows.new_zeros(b, c, h + pads[0] + pads[1], w + pads[2] + pads[3])  # the padded image
    for i in range(kh):
        for j in range(kw):
            top, left = i * d[0], j * d[1]  # where offset (i, j) of window (0, 0) sits
            rows = slice(top, top + s[0] * (ho - 1) + 1, s[0])
            cols = slice(left, left + s[1] * (wo - 1) + 1, s[1])
            out[:, :, rows, cols] += windows[:, :, i, j]  # (B, C, Ho, Wo): offset (i, j) of every window
    return out[:, :, pads[0]:pads[0] + h, pads[2]:pads[2] + w]  # the padding was not an input


def im2col(x: torch.Tensor, kernel_size: int | Sequence[int], stride: int | Sequence[int] = 1,
           padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
           pad_value: float = 0.0) -> torch.Tensor:
    """Unfolds every receptive field of ``x`` into a column.

    Args:
        x: input ``(B, C, H, W)``.
        kernel_size, stride, padding, dilation, pad_value: as for :func:`sliding_windows`.

    Returns:
        ``(B, C*kh*kw, Ho*Wo)``; equal to ``F.unfold`` for symmetric zero padding.
    """
    windows = sliding_windows(x, kernel_size, stride, padding, dilation, pad_value)  # (B, C, kh, kw, Ho, Wo)
    b, c, kh, kw, ho, wo = windows.shape
    return windows.reshape(b, c * kh * kw, ho * wo)  # the copy happens here


def col2im(cols: torch.Tensor, input_size: Sequence[int], kernel_size: int | Sequence[int],
           stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
           dilation: int | Sequence[int] = 1) -> torch.Tensor:
    """Adds columns back onto the image they came from: the adjoint of :func:`im2col`.

    ``<im2col(x), cols> == <x, col2im(cols)>`` for every ``x`` and ``cols``.

    Args:
        cols: ``(B, C*kh*kw, Ho*Wo)``.
        input_size: ``(H, W)`` of the image (before padding).
        kernel_size, stride, padding, dilation: as given to :func:`im2col`.

    Returns:
        ``(B, C, H, W)``; equal to ``F.fold`` for symmetric padding.
    """
    kh, kw = pair(kernel_size, "kernel_size")
    s, d, pads = pair(stride, "stride"), pair(dilation, "dilation"), expand_padding(padding)
    h, w = (int(v) for v in input_size)
    ho, wo = _output_hw(h, w, (kh, kw), s, pads, d)
    b, rows, length = cols.shape
    if rows % (kh * kw) or length != ho * wo:
        raise ValueError(f"cols of shape {tuple(cols.shape)} do not match a {kh}x{kw} kernel "
                         f"over a {h}x{w} input (expected (B, C*{kh * kw}, {ho * wo}))")
    windows = cols.reshape(b, rows // (kh * kw), kh, kw, ho, wo)
    return add_windows(windows, (h, w), s, pads, d)
