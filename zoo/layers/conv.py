"""Convolution variants: grouped, depthwise-separable, dilated, transposed and gated (GLU).

Every block that changes the spatial size documents its output size with
:func:`zoo.ops.conv_output_size` (or :func:`zoo.ops.conv_transpose_output_size`)
and exposes it as ``block.output_size(n)`` for one spatial dimension of size ``n``:

    out = floor((n + 2p - d(k - 1) - 1) / s) + 1

Blocks and the papers they come from:

* :class:`ConvBNAct` -- convolution, batch norm, activation; the unit every
  efficient network here is built from.
* :func:`grouped_conv2d` -- a convolution whose ``C_in`` and ``C_out`` channels
  are split into ``g`` independent groups (Krizhevsky et al. 2012; Xie et al.
  2016, arXiv:1611.05431): ``k^2 C_in C_out / g`` weights instead of ``k^2 C_in C_out``.
* :func:`channel_shuffle` / :class:`ChannelShuffle` -- the (g, C/g) transpose that
  lets grouped convolutions exchange information (Zhang et al. 2017, ShuffleNet,
  arXiv:1707.01083, Sec. 3.1).
* :class:`DepthwiseSeparableConv2d` -- a depthwise ``k x k`` convolution (one filter
  per channel) followed by a pointwise ``1 x 1`` (Howard et al. 2017, MobileNets,
  arXiv:1704.04861, Sec. 3.1). Relative to a standard convolution with ``M`` input
  and ``N`` output channels it costs ``1/N + 1/k^2`` of the multiply-adds.
* :class:`DilatedConv2d` and :func:`receptive_field` -- atrous convolution with
  "same" padding (Yu & Koltun 2015, arXiv:1511.07122).
* :class:`TransposedConvBNAct` -- the adjoint of a strided convolution, used to
  upsample (Dumoulin & Visin 2016, arXiv:1603.07285).
* :class:`GatedConv1d` / :class:`GatedConv2d` -- gated linear units
  ``h = (X*W + b) * sigmoid(X*V + c)`` (Dauphin et al. 2017, "Language Modeling with
  Gated Convolutional Networks", arXiv:1612.08083, Eq. 1), with optional causal
  left padding of ``(k - 1) d`` in 1-D, and :class:`GatedResidualBlock1d` /
  :class:`GatedResidualBlock2d`, their shape-preserving residual form (ibid., Fig. 1).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

from zoo.ops.shape import conv_output_size, conv_transpose_output_size

__all__ = [
    "same_padding",
    "receptive_field",
    "grouped_conv2d",
    "ConvBNAct",
    "channel_shuffle",
    "ChannelShuffle",
    "DepthwiseSeparableConv2d",
    "DilatedConv2d",
    "TransposedConvBNAct",
    "GatedConv1d",
    "GatedConv2d",
    "GatedResidualBlock1d",
    "GatedResidualBlock2d",
]


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Returns the symmetric zero padding that keeps the size at stride 1 (odd effective kernels).

    Args:
        kernel_size: kernel size ``k``.
        dilation: dilation ``d``.

    Returns:
        ``d (k - 1) // 2``; with it, ``conv_output_size(n, k, 1, p, d) == n`` whenever
        ``d (k - 1)`` is even, and ``ceil(n / s)`` at stride ``s``.
    """
    return dilation * (kernel_size - 1) // 2


def receptive_field(layers: Iterable[tuple[int, int, int]]) -> int:
    """Returns the receptive field, in input positions, of a stack of convolutions along one axis.

    Each layer widens the field by ``d (k - 1)`` times the product of the strides below it:
    ``r = 1 + sum_i d_i (k_i - 1) prod_{j < i} s_j``.

    Args:
        layers: ``(kernel_size, stride, dilation)`` per layer, from input to output.

    Returns:
        How many consecutive input positions one output position sees.
    """
    r, jump = 1, 1
    for k, s, d in layers:
        r += d * (k - 1) * jump
        jump *= s
    return r


def _check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise ValueError(
            f"a grouped convolution needs both channel counts divisible by the number of groups; "
            f"got in_channels={in_channels}, out_channels={out_channels}, groups={groups}"
        )


def grouped_conv2d(in_channels: int, out_channels: int, kernel_size: int = 1, groups: int = 1,
                   stride: int = 1, padding: int | None = None, dilation: int = 1,
                   bias: bool = False) -> nn.Conv2d:
    """Builds a grouped 2-D convolution: ``groups`` independent convolutions side by side.

    Input channels ``[i C_in/g, (i+1) C_in/g)`` feed only output channels
    ``[i C_out/g, (i+1) C_out/g)``, so weights and multiply-adds are ``1/g`` of a
    dense convolution's. ``groups == in_channels`` gives a depthwise convolution.

    Args:
        in_channels: ``C_in`` (divisible by ``groups``).
        out_channels: ``C_out`` (divisible by ``groups``).
        kernel_size: square kernel ``k``.
        groups: number of groups ``g``.
        stride: stride ``s``.
        padding: zero padding; ``None`` for :func:`same_padding`.
        dilation: dilation ``d``.
        bias: add a bias (off when a norm layer follows).

    Returns:
        An ``nn.Conv2d``; its output size is ``conv_output_size(n, k, s, p, d)``.

    Raises:
        ValueError: if a channel count is not divisible by ``groups``.
    """
    _check_groups(in_channels, out_channels, groups)
    if padding is None:
        padding = same_padding(kernel_size, dilation)
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                     dilation=dilation, groups=groups, bias=bias)


class ConvBNAct(nn.Sequential):
    """Convolution (no bias) -> BatchNorm -> activation, as ``conv``, ``bn``, ``act`` children.

    Output size: ``conv_output_size(n, kernel_size, stride, padding, dilation)``
    (with the default padding, ``ceil(n / stride)`` for odd kernels).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        stride: stride.
        groups: convolution groups (``in_channels`` for depthwise).
        dilation: dilation.
        padding: zero padding; ``None`` for :func:`same_padding`.
        act_layer: activation class, or ``None`` for a linear (norm-only) output.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 groups: int = 1, dilation: int = 1, padding: int | None = None,
                 act_layer: type[nn.Module] | None = nn.ReLU) -> None:
        super().__init__()
        self.conv = grouped_conv2d(in_channels, out_channels, kernel_size, groups, stride,
                                   padding, dilation, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        if act_layer is not None:
            self.act = act_layer(inplace=True) if act_layer in (nn.ReLU, nn.ReLU6) else act_layer()

    def output_size(self, n: int) -> int:
        """Returns the output length along one spatial dimension of input length ``n``."""
        c = self.conv
        return conv_output_size(n, c.kernel_size[0], c.stride[0], c.padding[0], c.dilation[0])


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Shuffles channels so that every group of a grouped convolution feeds every group of the next.

    The ``C`` channels are viewed as a ``(g, C/g)`` matrix, transposed to
    ``(C/g, g)`` and flattened back (ShuffleNet, Sec. 3.1): output channel
    ``j * g + i`` is input channel ``i * C/g + j``. Each run of ``C/g`` consecutive
    output channels therefore holds ``C/g^2`` channels from every input group
    (when ``g^2`` divides ``C``), and the map is a permutation.

    Args:
        x: ``(B, C, *spatial)`` with ``C`` divisible by ``groups``.
        groups: ``g``.

    Returns:
        Tensor of the same shape with permuted channels.

    Raises:
        ValueError: if ``C`` is not divisible by ``groups``.
    """
    c = x.shape[1]
    if c % groups:
        raise ValueError(f"channel shuffle needs channels divisible by groups; got C={c}, groups={groups}")
    # (B, g, C/g, *) -> (B, C/g, g, *) -> (B, C, *)
    return x.unflatten(1, (groups, c // groups)).transpose(1, 2).flatten(1, 2)


# A leaf of torch.fx traces (its divisibility check reads the shape), so that the networks using
# it can be traced, e.g. by zoo.features.features_only.
torch.fx.wrap("channel_shuffle")


class ChannelShuffle(nn.Module):
    """Module form of :func:`channel_shuffle`.

    Args:
        groups: number of groups ``g`` of the preceding grouped convolution.
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class DepthwiseSeparableConv2d(nn.Module):
    """Depthwise ``k x k`` convolution then pointwise ``1 x 1`` (MobileNets, Fig. 2 and 3).

    With ``M`` input channels, ``N`` output channels and a ``D_F x D_F`` output map,
    a standard convolution costs ``k^2 M N D_F^2`` multiply-adds; this block costs
    ``k^2 M D_F^2 + M N D_F^2``, a ratio of ``1/N + 1/k^2`` (Howard et al. 2017, Eq. 5).
    With ``norm=True`` each of the two convolutions is followed by BatchNorm and
    ReLU, the MobileNet v1 layer (Fig. 3); with ``norm=False`` they are two plain
    biased convolutions, a linear factorisation of one ``k x k`` convolution.

    Output size: ``conv_output_size(n, k, stride, d (k - 1) // 2, d)`` (the depthwise
    convolution carries the stride; the pointwise one keeps the size).

    Args:
        in_channels: ``M``.
        out_channels: ``N``.
        kernel_size: ``k`` of the depthwise convolution.
        stride: stride of the depthwise convolution.
        dilation: dilation of the depthwise convolution.
        norm: BatchNorm + ReLU after each convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, norm: bool = True) -> None:
        super().__init__()
        self.depthwise: nn.Module
        self.pointwise: nn.Module
        if norm:
            self.depthwise = ConvBNAct(in_channels, in_channels, kernel_size, stride,
                                       groups=in_channels, dilation=dilation)
            self.pointwise = ConvBNAct(in_channels, out_channels, 1)
        else:
            self.depthwise = grouped_conv2d(in_channels, in_channels, kernel_size, in_channels,
                                            stride, dilation=dilation, bias=True)
            self.pointwise = nn.Conv2d(in_channels, out_channels, 1)
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation

    def output_size(self, n: int) -> int:
        """Returns the output length along one spatial dimension of input length ``n``."""
        return conv_output_size(n, self.kernel_size, self.stride,
                                same_padding(self.kernel_size, self.dilation), self.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))  # (B, M, H, W) -> (B, M, H', W') -> (B, N, H', W')


class DilatedConv2d(nn.Conv2d):
    """A 2-D convolution with dilation ``d`` and, by default, size-keeping padding ``d (k - 1) / 2``.

    A ``k x k`` kernel with dilation ``d`` samples the input every ``d`` pixels and
    so spans ``d (k - 1) + 1`` pixels with ``k^2`` weights; stacking dilations
    ``1, 2, 4, ...`` grows the receptive field exponentially with depth
    (Yu & Koltun 2015).

    Output size: ``conv_output_size(n, k, s, p, d)``; with the default padding and
    stride 1 (odd ``k``) it is ``n``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size ``k``.
        dilation: dilation ``d``.
        stride: stride ``s``.
        padding: zero padding; ``None`` for :func:`same_padding`.
        groups: convolution groups.
        bias: add a bias.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 2,
                 stride: int = 1, padding: int | None = None, groups: int = 1, bias: bool = True) -> None:
        _check_groups(in_channels, out_channels, groups)
        if padding is None:
            padding = same_padding(kernel_size, dilation)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)

    __jit_unused_properties__ = ["receptive_field"]  # Python-side helper, left out of TorchScript

    @property
    def receptive_field(self) -> int:
        """Input pixels spanned by one output pixel along each axis: ``d (k - 1) + 1``."""
        return receptive_field([(self.kernel_size[0], self.stride[0], self.dilation[0])])

    def output_size(self, n: int) -> int:
        """Returns the output length along one spatial dimension of input length ``n``."""
        return conv_output_size(n, self.kernel_size[0], self.stride[0], self.padding[0], self.dilation[0])


class TransposedConvBNAct(nn.Sequential):
    """Transposed convolution (no bias) -> BatchNorm -> activation, for learned upsampling.

    A transposed convolution is the adjoint (gradient) of the convolution with the
    same weight, kernel, stride and padding: it maps that convolution's output
    size back to its input size. Output size, from
    :func:`zoo.ops.conv_transpose_output_size`:

        out = (n - 1) s - 2p + d (k - 1) + output_padding + 1

    so ``kernel_size=4, stride=2, padding=1`` (or ``3, 2, 1, output_padding=1``)
    doubles the size exactly.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel ``k``.
        stride: stride ``s`` (the upsampling factor).
        padding: ``p``.
        output_padding: extra rows/columns added on one side (``< s``), to pick
            among the input sizes a strided convolution maps to the same output size.
        dilation: ``d``.
        act_layer: activation class, or ``None``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 4, stride: int = 2,
                 padding: int = 1, output_padding: int = 0, dilation: int = 1,
                 act_layer: type[nn.Module] | None = nn.ReLU) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=stride,
                                       padding=padding, output_padding=output_padding,
                                       dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        if act_layer is not None:
            self.act = act_layer(inplace=True) if act_layer in (nn.ReLU, nn.ReLU6) else act_layer()

    def output_size(self, n: int) -> int:
        """Returns the output length along one spatial dimension of input length ``n``."""
        c = self.conv
        return conv_transpose_output_size(n, c.kernel_size[0], c.stride[0], c.padding[0],
                                          c.dilation[0], c.output_padding[0])


class _GatedConvNd(nn.Module):
    """Shared body of :class:`GatedConv1d` and :class:`GatedConv2d`.

    One convolution produces ``2 C_out`` channels: the first half is ``A = X*W + b``,
    the second ``B = X*V + c``; the output is ``A * sigmoid(B)`` (``F.glu``). Keeping
    both in one convolution is the same function as two separate ones and runs as one kernel.
    Subclasses build ``self.conv`` (``nn.Conv1d`` / ``nn.Conv2d`` with ``2 C_out`` filters).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(self.conv(self._pad(x)), dim=1)  # (B, 2C_out, *) -> (B, C_out, *)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @property
    def linear_weight(self) -> torch.Tensor:
        """``W``: the weight of the linear path."""
        return self.conv.weight[: self.out_channels]

    @property
    def gate_weight(self) -> torch.Tensor:
        """``V``: the weight of the gate path."""
        return self.conv.weight[self.out_channels:]


class GatedConv1d(_GatedConvNd):
    """1-D gated linear unit convolution ``h = (X*W + b) * sigmoid(X*V + c)`` (Dauphin et al. 2017, Eq. 1).

    With ``causal=True`` the input is left-padded with ``(k - 1) d`` zeros and not
    padded on the right, so output step ``t`` sees only input steps ``<= t`` (the
    paper's "shifting the convolutional inputs to prevent the kernels from seeing
    future context", Sec. 2; the same padding as WaveNet's causal convolutions,
    van den Oord et al. 2016, arXiv:1609.03499).

    Output length: ``conv_output_size(n + (k-1)d, k, s, 0, d) = floor((n - 1)/s) + 1``
    when causal, else ``conv_output_size(n, k, s, padding, d)``.

    Args:
        in_channels: input channels.
        out_channels: output channels (the convolution holds twice as many filters).
        kernel_size: kernel ``k``.
        stride: stride ``s``.
        dilation: dilation ``d``.
        causal: left-pad ``(k - 1) d`` instead of padding both sides.
        padding: symmetric padding when not causal; ``None`` for :func:`same_padding`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, causal: bool = False, padding: int | None = None) -> None:
        super().__init__()
        if causal and padding not in (None, 0):
            raise ValueError("a causal gated convolution pads (k-1)*d on the left only; leave padding=None")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation, self.causal = kernel_size, stride, dilation, causal
        self.left_pad = dilation * (kernel_size - 1) if causal else 0
        p = 0 if causal else (same_padding(kernel_size, dilation) if padding is None else padding)
        self.conv = nn.Conv1d(in_channels, 2 * out_channels, kernel_size, stride=stride, padding=p,
                              dilation=dilation)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (self.left_pad, 0)) if self.left_pad else x  # (B, C, L) -> (B, C, L + (k-1)d)

    def output_size(self, n: int) -> int:
        """Returns the output length for input length ``n``."""
        c = self.conv
        return conv_output_size(n + self.left_pad, self.kernel_size, self.stride, c.padding[0], self.dilation)


class GatedConv2d(_GatedConvNd):
    """2-D gated linear unit convolution ``h = (X*W + b) * sigmoid(X*V + c)`` (Dauphin et al. 2017, Eq. 1).

    Output size: ``conv_output_size(n, k, s, padding, d)``; with the default padding
    and stride 1 (odd ``k``) the size is kept.

    Args:
        in_channels: input channels.
        out_channels: output channels (the convolution holds twice as many filters).
        kernel_size: square kernel ``k``.
        stride: stride ``s``.
        dilation: dilation ``d``.
        padding: zero padding; ``None`` for :func:`same_padding`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, padding: int | None = None) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        p = same_padding(kernel_size, dilation) if padding is None else padding
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride=stride, padding=p,
                              dilation=dilation)

    def output_size(self, n: int) -> int:
        """Returns the output length along one spatial dimension of input length ``n``."""
        c = self.conv
        return conv_output_size(n, c.kernel_size[0], c.stride[0], c.padding[0], c.dilation[0])


class _ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of each position of a ``(B, C, *)`` tensor.

    It normalises every time step on its own, so it keeps a causal network causal
    (BatchNorm's training statistics would mix time steps).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.movedim(1, -1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.movedim(-1, 1)  # nn.LayerNorm.forward on (B, *, C), back to (B, C, *)


def _norm(kind: str | None, channels: int, dims: int) -> nn.Module:
    if kind is None or kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm1d(channels) if dims == 1 else nn.BatchNorm2d(channels)
    if kind == "layer":
        return _ChannelLayerNorm(channels)
    raise ValueError(f"norm must be 'batch', 'layer' or None, got {kind!r}")


class _GatedResidualBlock(nn.Module):
    """``y = x + G_n(N_n(... G_1(N_1(x))))``: gated convolutions in a pre-norm residual block.

    Dauphin et al. 2017 (Sec. 2, Fig. 1) wrap stacks of gated convolutions in
    residual blocks whose output is added to their input; here each gated
    convolution is preceded by an optional normalisation (pre-activation order,
    He et al. 2016, arXiv:1603.05027) and the block keeps channels and size.
    Subclasses build ``self.layers`` (an ``nn.ModuleList`` of ``[norm, gated]`` pairs) and ``self.drop``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for pair in self.layers:
            h = pair[1](pair[0](h))  # gated(norm(h))
        return x + self.drop(h)


class GatedResidualBlock1d(_GatedResidualBlock):
    """Residual block of 1-D gated convolutions that keeps ``(B, C, L)``.

    Args:
        channels: ``C``.
        kernel_size: kernel of every gated convolution.
        dilation: dilation of every gated convolution.
        causal: causal convolutions (the block's output at step ``t`` depends only on steps ``<= t``).
        num_layers: gated convolutions in the block.
        norm: ``"layer"`` (per-step LayerNorm over channels, causal-safe), ``"batch"`` or ``None``.
        dropout: dropout on the residual branch.
    """

    def __init__(self, channels: int, kernel_size: int = 3, dilation: int = 1, causal: bool = False,
                 num_layers: int = 2, norm: str | None = "layer", dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([_norm(norm, channels, 1),
                           GatedConv1d(channels, channels, kernel_size, dilation=dilation, causal=causal)])
            for _ in range(num_layers)
        )
        self.drop = nn.Dropout(dropout)
        self.kernel_size, self.dilation, self.num_layers = kernel_size, dilation, num_layers

    __jit_unused_properties__ = ["receptive_field"]  # Python-side helper, left out of TorchScript

    @property
    def receptive_field(self) -> int:
        """Input steps seen by one output step: ``1 + num_layers d (k - 1)``."""
        return receptive_field([(self.kernel_size, 1, self.dilation)] * self.num_layers)


class GatedResidualBlock2d(_GatedResidualBlock):
    """Residual block of 2-D gated convolutions that keeps ``(B, C, H, W)``.

    Args:
        channels: ``C``.
        kernel_size: kernel of every gated convolution (odd, so the size is kept).
        dilation: dilation of every gated convolution.
        num_layers: gated convolutions in the block.
        norm: ``"batch"``, ``"layer"`` or ``None``.
        dropout: dropout on the residual branch.
    """

    def __init__(self, channels: int, kernel_size: int = 3, dilation: int = 1, num_layers: int = 2,
                 norm: str | None = "batch", dropout: float = 0.0) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"GatedResidualBlock2d keeps the size only for odd kernels, got {kernel_size}")
        self.layers = nn.ModuleList(
            nn.ModuleList([_norm(norm, channels, 2),
                           GatedConv2d(channels, channels, kernel_size, dilation=dilation)])
            for _ in range(num_layers)
        )
        self.drop = nn.Dropout(dropout)

