"""2-D convolution and transposed convolution with hand-derived backward passes.

Notation, for one group and one spatial axis (the other axis works alike):
input ``x`` (B, C, H, W), weight ``W`` (O, C, kh, kw), stride ``s``, padding ``p``,
dilation ``d``, output / upstream gradient ``g = dL/dy`` (B, O, Ho, Wo), and
``x_pad`` the zero-padded input. The forward pass is the cross-correlation

    y[b, o, u, v] = bias[o] + sum_{c, i, j} W[o, c, i, j] * x_pad[b, c, u*s + i*d, v*s + j*d]

computed as im2col followed by one matrix multiply (:func:`zoo.ops.im2col`):
``y = W.reshape(O, C*kh*kw) @ im2col(x)``, batched over groups.

Differentiating the sum above term by term gives the three classic results,
each of them a convolution again:

* **bias:** ``dL/dbias[o] = sum_{b, u, v} g[b, o, u, v]``.
* **weight:** ``dL/dW[o, c, i, j] = sum_{b, u, v} g[b, o, u, v] * x_pad[b, c, u*s + i*d, v*s + j*d]``,
  the correlation of the padded input with the upstream gradient used as the
  kernel. The roles of stride and dilation swap: the gradient "kernel" is
  dilated by ``s`` and slides with step ``d``; the batch is summed like input
  channels. In im2col form it is one matrix product, ``g @ im2col(x)^T``.
* **input:** ``dL/dx_pad[b, c, t] = sum_{o, i, u: t = u*s + i*d} g[b, o, u] * W[o, c, i]``.
  Insert ``s - 1`` zeros between neighbouring entries of ``g`` (undoing the
  stride), zero-pad it by ``d*(k-1)`` on each side (a "full" convolution), and
  correlate it with the kernel rotated by 180° (``W[o, c, k-1-i]``) with
  input and output channels swapped, at stride 1 and dilation ``d``; then crop
  the forward padding ``p`` off again. This reuses the forward routine.

The transposed convolution is defined as exactly that input gradient:
``conv_transpose2d(x, W) = d/dz <conv2d(z, W), x>``. Its own backward pass is
therefore a plain convolution for the input and the weight-gradient formula
with the roles of input and upstream gradient exchanged.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from zoo.ops.im2col import Pads, expand_padding, im2col, pair, sliding_windows
from zoo.ops.shape import conv_output_size, conv_transpose_output_size

__all__ = ["conv2d", "conv_transpose2d", "Conv2dFunction", "ConvTranspose2dFunction"]

Pair = tuple[int, int]


# --------------------------------------------------------------------------------------
# The three computations, shared by both autograd Functions.
# --------------------------------------------------------------------------------------
def _conv_forward(x: torch.Tensor, weight: torch.Tensor, stride: Pair, pads: Pads, dilation: Pair,
                  groups: int) -> torch.Tensor:
    """Convolution as im2col followed by one (group-batched) matrix multiply.

    Args:
        x: ``(B, C, H, W)``.
        weight: ``(O, C/groups, kh, kw)``.
        stride, pads, dilation, groups: convolution hyper-parameters (pads: top, bottom, left, right).

    Returns:
        ``(B, O, Ho, Wo)`` without bias.
    """
    b, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    ho = conv_output_size(h + pads[0] + pads[1], kh, stride[0], 0, dilation[0])
    wo = conv_output_size(w + pads[2] + pads[3], kw, stride[1], 0, dilation[1])
    cols = im2col(x, (kh, kw), stride, pads, dilation)  # (B, C*kh*kw, Ho*Wo)
    cols = cols.reshape(b, groups, cg * kh * kw, ho * wo)  # (B, G, C/G*kh*kw, L)
    wmat = weight.reshape(groups, o // groups, cg * kh * kw)  # (G, O/G, C/G*kh*kw)
    out = torch.matmul(wmat, cols)  # (B, G, O/G, L): one matmul, batched over B and G
    return out.reshape(b, o, ho, wo)


def _conv_input_grad(grad_out: torch.Tensor, weight: torch.Tensor, input_hw: Sequence[int],
                     stride: Pair, pads: Pads, dilation: Pair, groups: int) -> torch.Tensor:
    """``dL/dx``: full convolution of the stride-dilated, zero-padded gradient with the rotated kernel.

    Args:
        grad_out: ``g = dL/dy``, ``(B, O, Ho, Wo)``.
        weight: ``(O, C/groups, kh, kw)``.
        input_hw: ``(H, W)`` of the forward input (several sizes share one ``Ho``).
        stride, pads, dilation, groups: the forward hyper-parameters.

    Returns:
        ``(B, C, H, W)``.
    """
    b, o, ho, wo = grad_out.shape
    _, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    h, w = (int(v) for v in input_hw)
    hp, wp = h + pads[0] + pads[1], w + pads[2] + pads[3]  # padded input size

    # 1. Undo the stride: put s-1 zeros between neighbouring gradient entries.
    g = grad_out
    if sh > 1 or sw > 1:
        g = grad_out.new_zeros(b, o, (ho - 1) * sh + 1, (wo - 1) * sw + 1)
        g[:, :, ::sh, ::sw] = grad_out
    # 2. Full padding: the dilated kernel extent minus one on each side, plus the
    #    bottom/right rows and columns of x_pad that no forward window reached.
    fh, fw = dh * (kh - 1), dw * (kw - 1)
    extra_h = hp - (fh + (ho - 1) * sh + 1)
    extra_w = wp - (fw + (wo - 1) * sw + 1)
    g = F.pad(g, (fw, fw + extra_w, fh, fh + extra_h))  # (B, O, hp + fh, wp + fw)
    # 3. Rotate the kernel by 180° and swap its input and output channels, per group.
    rotated = (weight.flip(-2, -1)
               .reshape(groups, o // groups, cg, kh, kw)
               .transpose(1, 2)
               .reshape(groups * cg, o // groups, kh, kw))  # (C, O/G, kh, kw)
    # 4. Stride-1 convolution with the forward dilation: the gradient of the padded input.
    grad_pad = _conv_forward(g, rotated, (1, 1), (0, 0, 0, 0), dilation, groups)  # (B, C, hp, wp)
    # 5. The padding was not an input: crop it off.
    return grad_pad[:, :, pads[0]:pads[0] + h, pads[2]:pads[2] + w]


def _conv_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel_hw: Pair, stride: Pair,
                      pads: Pads, dilation: Pair, groups: int) -> torch.Tensor:
    """``dL/dW``: correlation of the padded input with the upstream gradient, as ``g @ im2col(x)^T``.

    Args:
        x: forward input ``(B, C, H, W)``.
        grad_out: ``g = dL/dy``, ``(B, O, Ho, Wo)``.
        kernel_hw: ``(kh, kw)``.
        stride, pads, dilation, groups: the forward hyper-parameters.

    Returns:
        ``(O, C/groups, kh, kw)``.
    """
    b, c = x.shape[:2]
    o, ho, wo = grad_out.shape[1:]
    kh, kw = kernel_hw
    k = c // groups * kh * kw
    # im2col(x)^T with the batch folded into the rows: one copy of the strided window view.
    windows = sliding_windows(x, kernel_hw, stride, pads, dilation)  # (B, C, kh, kw, Ho, Wo)
    windows = windows.unflatten(1, (groups, c // groups))  # (B, G, C/G, kh, kw, Ho, Wo)
    cols_t = windows.permute(1, 0, 5, 6, 2, 3, 4).reshape(groups, b * ho * wo, k)  # (G, B*L, C/G*kh*kw)
    g = grad_out.reshape(b, groups, o // groups, ho * wo).permute(1, 2, 0, 3)
    g = g.reshape(groups, o // groups, b * ho * wo)  # (G, O/G, B*L)
    grad_w = torch.matmul(g, cols_t)  # (G, O/G, C/G*kh*kw): sums over batch and positions at once
    return grad_w.reshape(o, c // groups, kh, kw)


# --------------------------------------------------------------------------------------
# autograd Functions
# --------------------------------------------------------------------------------------
class Conv2dFunction(torch.autograd.Function):
    """Convolution: im2col + matmul forward, hand-derived backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: Pair, pads: Pads, dilation: Pair, groups: int) -> torch.Tensor:
        """``y = W * x + bias`` (cross-correlation), see the module docstring."""
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, pads, dilation, groups)
        ctx.has_bias = bias is not None
        out = _conv_forward(x, weight, stride, pads, dilation, groups)  # (B, O, Ho, Wo)
        if bias is not None:
            out = out + bias.reshape(1, -1, 1, 1)
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """Hand-derived gradients; ``g = dL/dy``, ``x_pad`` the zero-padded input::

            dL/dbias[o]      = sum_{b,u,v} g[b,o,u,v]
            dL/dW[o,c,i,j]   = sum_{b,u,v} g[b,o,u,v] * x_pad[b, c, u*s_h + i*d_h, v*s_w + j*d_w]
                             = (x_pad  correlated with  g dilated by s, at step d)[c, o, i, j]
                             = g @ im2col(x)^T                       (per group)
            dL/dx_pad[b,c,t,r] = sum_{o,i,j,u,v: t = u*s_h + i*d_h, r = v*s_w + j*d_w}
                                     g[b,o,u,v] * W[o,c,i,j]
                             = full convolution of  g with s-1 zeros inserted and d(k-1) zeros
                               padded around  with  W rotated 180° (channels swapped),
                               stride 1, dilation d
            dL/dx            = dL/dx_pad with the padding p cropped off
        """
        x, weight = ctx.saved_tensors
        stride, pads, dilation, groups = ctx.conf
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _conv_input_grad(grad_out, weight, x.shape[-2:], stride, pads, dilation, groups)
        if ctx.needs_input_grad[1]:
            grad_w = _conv_weight_grad(x, grad_out, tuple(weight.shape[-2:]), stride, pads, dilation,
                                       groups)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=(0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None, None


class ConvTranspose2dFunction(torch.autograd.Function):
    """Transposed convolution, defined as the input gradient of :class:`Conv2dFunction`."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: Pair, pads: Pads, dilation: Pair, groups: int,
                out_hw: Pair) -> torch.Tensor:
        """``y = dL/dz`` of ``L = <conv2d(z, W), x>``, i.e. conv2d's input gradient with ``g = x``."""
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, pads, dilation, groups)
        ctx.has_bias = bias is not None
        out = _conv_input_grad(x, weight, out_hw, stride, pads, dilation, groups)  # (B, C_out, H', W')
        if bias is not None:
            out = out + bias.reshape(1, -1, 1, 1)
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """The adjoint of an input gradient is the forward convolution again::

            dL/dx    = conv2d(g, W)  (stride, padding, dilation, groups of the transposed conv)
            dL/dW    = conv2d's weight gradient with input g and upstream gradient x:
                       sum_{b,u,v} x[b,o,u,v] * g_pad[b, c, u*s_h + i*d_h, v*s_w + j*d_w]
            dL/dbias = sum_{b,u,v} g[b,:,u,v]
        """
        x, weight = ctx.saved_tensors
        stride, pads, dilation, groups = ctx.conf
        h, w = x.shape[-2:]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            # With output_padding >= stride the convolution of g has more rows than x;
            # those rows belong to outputs the transposed conv never had.
            grad_x = _conv_forward(grad_out, weight, stride, pads, dilation, groups)[..., :h, :w]
        if ctx.needs_input_grad[1]:
            ho = conv_output_size(grad_out.shape[-2] + pads[0] + pads[1], weight.shape[-2], stride[0], 0,
                                  dilation[0])
            wo = conv_output_size(grad_out.shape[-1] + pads[2] + pads[3], weight.shape[-1], stride[1], 0,
                                  dilation[1])
            upstream = F.pad(x, (0, wo - w, 0, ho - h))  # zero rows carry no gradient
            grad_w = _conv_weight_grad(grad_out, upstream, tuple(weight.shape[-2:]), stride, pads, dilation,
                                       groups)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=(0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None, None, None


# --------------------------------------------------------------------------------------
# Functional API, signatures as in torch.nn.functional
# --------------------------------------------------------------------------------------
def _same_padding(kernel: Pair, dilation: Pair) -> Pads:
    """PyTorch's ``padding="same"``: total ``d(k-1)``, the odd extra pixel on the bottom/right."""
    th, tw = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
    return (th // 2, th - th // 2, tw // 2, tw - tw // 2)


def _check_channels(x: torch.Tensor, weight: torch.Tensor, groups: int, transposed: bool) -> None:
    if x.dim() != 4 or weight.dim() != 4:
        raise ValueError(f"expected a 4-D input and weight, got {tuple(x.shape)} and {tuple(weight.shape)}")
    if groups < 1:
        raise ValueError(f"groups must be positive, got {groups}")
    if transposed:  # weight (C_in, C_out/G, kh, kw)
        if weight.shape[0] != x.shape[1] or x.shape[1] % groups:
            raise ValueError(f"transposed convolution weight {tuple(weight.shape)} expects "
                             f"{weight.shape[0]} input channels divisible by groups={groups}, "
                             f"got input {tuple(x.shape)}")
    else:  # weight (C_out, C_in/G, kh, kw)
        if weight.shape[1] * groups != x.shape[1] or weight.shape[0] % groups:
            raise ValueError(f"weight {tuple(weight.shape)} with groups={groups} expects "
                             f"{weight.shape[1] * groups} input channels and out channels divisible "
                             f"by {groups}, got input {tuple(x.shape)}")


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride: int | Sequence[int] = 1, padding: int | Sequence[int] | str = 0,
           dilation: int | Sequence[int] = 1, groups: int = 1) -> torch.Tensor:
    """2-D convolution (cross-correlation) through :class:`Conv2dFunction`; same contract as ``F.conv2d``.

    Args:
        x: ``(B, C, H, W)`` or unbatched ``(C, H, W)``.
        weight: ``(O, C/groups, kh, kw)``.
        bias: ``(O,)`` or None.
        stride: ``s`` or ``(s_h, s_w)``.
        padding: ``p``, ``(p_h, p_w)``, ``(top, bottom, left, right)``, ``"valid"`` or ``"same"``.
        dilation: ``d`` or ``(d_h, d_w)``.
        groups: number of channel groups.

    Returns:
        ``(B, O, Ho, Wo)`` with ``Ho = conv_output_size(H, kh, s_h, p_h, d_h)``.
    """
    unbatched = x.dim() == 3
    if unbatched:
        x = x.unsqueeze(0)
    _check_channels(x, weight, groups, transposed=False)
    s, d = pair(stride, "stride"), pair(dilation, "dilation")
    kernel = (int(weight.shape[-2]), int(weight.shape[-1]))
    if isinstance(padding, str):
        if padding == "valid":
            pads: Pads = (0, 0, 0, 0)
        elif padding == "same":
            if s != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            pads = _same_padding(kernel, d)
        else:
            raise ValueError(f"padding must be 'valid', 'same' or numbers, got {padding!r}")
    else:
        pads = expand_padding(padding)
    ho = conv_output_size(x.shape[-2] + pads[0] + pads[1], kernel[0], s[0], 0, d[0])
    wo = conv_output_size(x.shape[-1] + pads[2] + pads[3], kernel[1], s[1], 0, d[1])
    if ho < 1 or wo < 1:
        raise ValueError(f"input {tuple(x.shape[-2:])} is too small for kernel {kernel} with "
                         f"padding {pads}, dilation {d}: output would be {ho}x{wo}")
    out = Conv2dFunction.apply(x, weight, bias, s, pads, d, groups)
    return out.squeeze(0) if unbatched else out


def conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                     output_padding: int | Sequence[int] = 0, groups: int = 1,
                     dilation: int | Sequence[int] = 1) -> torch.Tensor:
    """Transposed convolution, computed as the input gradient of :func:`conv2d`; contract of ``F.conv_transpose2d``.

    ``conv_transpose2d(x, W, stride=s, padding=p, dilation=d, groups=G)`` is
    the gradient of ``<conv2d(z, W, stride=s, padding=p, dilation=d, groups=G), x>``
    with respect to ``z`` (plus ``bias``), where ``z`` has the output size
    ``conv_transpose_output_size(H, kh, s, p, d, output_padding)``.

    Args:
        x: ``(B, C_in, H, W)`` or unbatched ``(C_in, H, W)``.
        weight: ``(C_in, C_out/groups, kh, kw)`` (the weight of the convolution it transposes).
        bias: ``(C_out,)`` or None.
        stride, padding, dilation, groups: those of the convolution it transposes.
        output_padding: extra rows/columns on the bottom/right, ``< max(stride, dilation)``.

    Returns:
        ``(B, C_out, H', W')``.
    """
    unbatched = x.dim() == 3
    if unbatched:
        x = x.unsqueeze(0)
    _check_channels(x, weight, groups, transposed=True)
    s, p, d = pair(stride, "stride"), pair(padding, "padding"), pair(dilation, "dilation")
    op = pair(output_padding, "output_padding")
    for axis in range(2):
        if not 0 <= op[axis] < max(s[axis], d[axis]):
            raise ValueError(f"output_padding {op} must be smaller than stride {s} or dilation {d}")
    kernel = (int(weight.shape[-2]), int(weight.shape[-1]))
    out_hw = tuple(conv_transpose_output_size(int(x.shape[-2 + a]), kernel[a], s[a], p[a], d[a], op[a])
                   for a in range(2))
    if min(out_hw) < 1:
        raise ValueError(f"transposed convolution of {tuple(x.shape[-2:])} with kernel {kernel}, "
                         f"padding {p} has output size {out_hw}")
    out = ConvTranspose2dFunction.apply(x, weight, bias, s, (p[0], p[0], p[1], p[1]), d, groups, out_hw)
    return out.squeeze(0) if unbatched else out
