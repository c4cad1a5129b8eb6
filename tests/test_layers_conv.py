"""Convolution variants of zoo.layers.conv: costs, output sizes, receptive fields, shuffles, gates, causality."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from zoo.layers.conv import (
    ChannelShuffle,
    ConvBNAct,
    DepthwiseSeparableConv2d,
    DilatedConv2d,
    GatedConv1d,
    GatedConv2d,
    GatedResidualBlock1d,
    GatedResidualBlock2d,
    TransposedConvBNAct,
    channel_shuffle,
    grouped_conv2d,
    receptive_field,
)
from zoo.ops import conv_output_size, conv_transpose_output_size


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- depthwise-separable


@pytest.mark.parametrize("m,n,k,stride,norm", [(32, 64, 3, 1, True), (16, 48, 5, 2, False), (8, 128, 3, 2, True)])
def test_depthwise_separable_costs_1_over_n_plus_1_over_k2(m, n, k, stride, norm):
    """Howard et al. 2017, Eq. 5: separable / standard multiply-adds = 1/N + 1/k^2, exactly."""
    sep = DepthwiseSeparableConv2d(m, n, k, stride=stride, norm=norm)
    std = nn.Conv2d(m, n, k, stride=stride, padding=k // 2, bias=False)
    size = (m, 16, 16)
    ratio = Fraction(zoo.count_macs(sep, size), zoo.count_macs(std, size))
    assert ratio == Fraction(1, n) + Fraction(1, k * k)
    # and the weights shrink by the same factor (the BN/bias terms aside)
    weights = sum(mod.weight.numel() for mod in sep.modules() if isinstance(mod, nn.Conv2d))
    assert Fraction(weights, std.weight.numel()) == Fraction(1, n) + Fraction(1, k * k)


def test_depthwise_separable_structure_and_output_size():
    sep = DepthwiseSeparableConv2d(6, 10, 3, stride=2)
    assert sep.depthwise.conv.groups == 6 and sep.depthwise.conv.weight.shape == (6, 1, 3, 3)
    assert sep.pointwise.conv.weight.shape == (10, 6, 1, 1)
    assert isinstance(sep.depthwise.bn, nn.BatchNorm2d) and isinstance(sep.pointwise.act, nn.ReLU)
    for n in (7, 8, 15):
        y = sep(torch.randn(2, 6, n, n))
        assert y.shape == (2, 10, sep.output_size(n), sep.output_size(n))
        assert sep.output_size(n) == conv_output_size(n, 3, 2, 1) == -(-n // 2)


def test_depthwise_conv_filters_each_channel_alone():
    sep = DepthwiseSeparableConv2d(4, 4, 3, norm=False)
    x = torch.randn(1, 4, 6, 6, requires_grad=True)
    sep.depthwise(x)[:, 2].sum().backward()
    per_channel = x.grad.abs().sum((0, 2, 3))
    assert per_channel[2] > 0 and torch.count_nonzero(per_channel) == 1


# ----------------------------------------------------------------------------- grouped conv


def test_grouped_conv_weights_and_macs_are_one_over_g():
    dense = grouped_conv2d(12, 24, 3, groups=1)
    for g in (2, 3, 4, 6, 12):
        conv = grouped_conv2d(12, 24, 3, groups=g)
        assert conv.weight.numel() == 3 * 3 * 12 * 24 // g
        assert zoo.count_macs(conv, (12, 8, 8)) * g == zoo.count_macs(dense, (12, 8, 8))


def test_grouped_conv_is_block_diagonal():
    g, cin, cout = 3, 6, 9
    conv = grouped_conv2d(cin, cout, 3, groups=g)
    x = torch.randn(1, cin, 5, 5, requires_grad=True)
    for j in range(g):
        x.grad = None
        conv(x)[:, j * cout // g:(j + 1) * cout // g].sum().backward()
        seen = x.grad.abs().sum((0, 2, 3)) > 0
        expected = torch.zeros(cin, dtype=torch.bool)
        expected[j * cin // g:(j + 1) * cin // g] = True
        assert torch.equal(seen, expected)


def test_grouped_conv_rejects_indivisible_channels():
    with pytest.raises(ValueError, match="divisible by the number of groups"):
        grouped_conv2d(10, 12, 1, groups=3)
    with pytest.raises(ValueError, match="groups=4"):
        ConvBNAct(8, 6, 1, groups=4)


# ----------------------------------------------------------------------------- channel shuffle


@pytest.mark.parametrize("c,g", [(12, 3), (16, 4), (24, 2), (18, 3)])
def test_channel_shuffle_is_the_g_by_c_over_g_transpose_and_a_permutation(c, g):
    x = torch.arange(c, dtype=torch.float32).view(1, c, 1, 1).expand(2, c, 3, 3)
    y = channel_shuffle(x, g)
    src = y[0, :, 0, 0].long()
    assert torch.equal(src.sort().values, torch.arange(c))  # a permutation
    n = c // g
    for i in range(g):
        for j in range(n):
            assert src[j * g + i] == i * n + j
    # the inverse is the shuffle with C/g groups
    assert torch.equal(channel_shuffle(y, n), x)
    assert torch.equal(ChannelShuffle(g)(x), y)


@pytest.mark.parametrize("c,g", [(12, 3), (16, 4), (18, 3), (64, 8)])
def test_channel_shuffle_sends_every_group_into_every_group(c, g):
    n = c // g
    src = channel_shuffle(torch.arange(c).view(1, c), g)[0]
    for out_group in range(g):
        groups_seen = set((src[out_group * n:(out_group + 1) * n] // n).tolist())
        assert groups_seen == set(range(g))


def test_shuffle_between_grouped_convs_mixes_groups():
    """Two stacked group convs see one input group each; a shuffle between them lets every output see all."""
    torch.manual_seed(0)
    g, c = 3, 9
    first, second = grouped_conv2d(c, c, 1, groups=g), grouped_conv2d(c, c, 1, groups=g)
    for shuffle, expect_all in ((False, False), (True, True)):
        x = torch.randn(1, c, 4, 4, requires_grad=True)
        h = first(x)
        if shuffle:
            h = channel_shuffle(h, g)
        second(h)[:, :c // g].sum().backward()  # output group 0
        seen_groups = (x.grad.abs().sum((0, 2, 3)) > 0).view(g, c // g).any(1)
        assert bool(seen_groups.all()) == expect_all
        if not shuffle:
            assert seen_groups.tolist() == [True, False, False]


def test_channel_shuffle_is_one_node_of_an_fx_trace():
    """The shape check would stop torch.fx; the function is a leaf of the trace instead."""
    traced = torch.fx.symbolic_trace(ChannelShuffle(3))
    assert [n.target for n in traced.graph.nodes if n.op == "call_function"] == [channel_shuffle]
    x = torch.randn(2, 12, 3, 3)
    assert torch.equal(traced(x), channel_shuffle(x, 3))


def test_channel_shuffle_rejects_indivisible_channels():
    with pytest.raises(ValueError, match="divisible"):
        channel_shuffle(torch.zeros(1, 10, 2, 2), 3)


# ----------------------------------------------------------------------------- dilated conv


@pytest.mark.parametrize("k,d", [(3, 1), (3, 2), (3, 4), (5, 3)])
def test_dilated_conv_receptive_field_is_d_k_minus_1_plus_1(k, d):
    conv = DilatedConv2d(1, 1, k, dilation=d, bias=False)
    nn.init.constant_(conv.weight, 1.0)
    n = 2 * d * (k - 1) + 5
    x = torch.zeros(1, 1, n, n, requires_grad=True)
    conv(x)[0, 0, n // 2, n // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    assert conv.receptive_field == d * (k - 1) + 1 == int(rows.max() - rows.min()) + 1
    assert torch.count_nonzero(x.grad) == k * k  # k^2 taps, spaced d apart
    assert torch.all(torch.diff(rows) == d)


@pytest.mark.parametrize("k,d,s,p", [(3, 2, 1, None), (3, 2, 2, None), (5, 3, 1, 0), (3, 4, 2, 1)])
def test_dilated_conv_output_size(k, d, s, p):
    conv = DilatedConv2d(2, 3, k, dilation=d, stride=s, padding=p)
    for n in (13, 16, 21):
        out = conv(torch.randn(1, 2, n, n)).shape[-1]
        assert out == conv.output_size(n) == conv_output_size(n, k, s, conv.padding[0], d)
        if p is None and s == 1:
            assert out == n  # the default padding keeps the size


def test_receptive_field_of_a_stack_matches_the_gradient_support():
    layers = [(3, 1, 1), (3, 1, 2), (3, 1, 4), (3, 2, 1), (3, 1, 2)]
    assert receptive_field(layers) == 1 + 2 + 4 + 8 + 2 + 2 * 2 * 2  # later layers count at stride 2
    net = nn.Sequential(*[nn.Conv1d(1, 1, k, stride=s, dilation=d, bias=False) for k, s, d in layers])
    for m in net:
        nn.init.constant_(m.weight, 1.0)
    x = torch.zeros(1, 1, 64, requires_grad=True)
    net(x)[0, 0, 3].backward()
    support = torch.nonzero(x.grad[0, 0]).flatten()
    assert int(support.max() - support.min()) + 1 == receptive_field(layers)


# ----------------------------------------------------------------------------- transposed conv


@pytest.mark.parametrize("k,s,p,op", [(4, 2, 1, 0), (3, 2, 1, 1), (2, 2, 0, 0), (5, 3, 2, 2)])
def test_transposed_conv_output_size(k, s, p, op):
    up = TransposedConvBNAct(4, 2, k, stride=s, padding=p, output_padding=op)
    for n in (1, 5, 8):
        out = up(torch.randn(2, 4, n, n)).shape[-1]
        assert out == up.output_size(n) == conv_transpose_output_size(n, k, s, p, 1, op)
        if (k, p, op) in ((4, 1, 0), (3, 1, 1), (2, 0, 0)) and s == 2:
            assert out == 2 * n


def test_transposed_conv_is_the_adjoint_of_the_strided_conv():
    """<conv(x), y> == <conv_transpose(y), x> for the same weight: the transpose in its name."""
    g = _gen(3)
    w = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)  # conv: 3 -> 5 channels
    x = torch.randn(2, 3, 16, 16, generator=g, dtype=torch.float64)
    y = torch.randn(2, 5, 8, 8, generator=g, dtype=torch.float64)
    up = TransposedConvBNAct(5, 3, 4, stride=2, padding=1).double()
    with torch.no_grad():
        up.conv.weight.copy_(w)
    lhs = (F.conv2d(x, w, stride=2, padding=1) * y).sum()
    rhs = (up.conv(y) * x).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-10)


# ----------------------------------------------------------------------------- gated convs (GLU)


def test_gated_conv2d_computes_linear_times_sigmoid_gate():
    torch.manual_seed(0)
    gc = GatedConv2d(3, 4, 3)
    x = torch.randn(2, 3, 7, 7)
    b, c = gc.conv.bias[:4], gc.conv.bias[4:]
    expected = (F.conv2d(x, gc.linear_weight, b, padding=1)
                * torch.sigmoid(F.conv2d(x, gc.gate_weight, c, padding=1)))
    assert torch.allclose(gc(x), expected, atol=1e-6)
    assert gc(x).shape == (2, 4, 7, 7)
    strided = GatedConv2d(3, 4, 3, stride=2)
    assert strided(x).shape[-1] == strided.output_size(7) == conv_output_size(7, 3, 2, 1) == 4


def test_gated_conv1d_computes_linear_times_sigmoid_gate():
    torch.manual_seed(0)
    gc = GatedConv1d(3, 5, 3, dilation=2, causal=True)
    x = torch.randn(2, 3, 11)
    xp = F.pad(x, (4, 0))
    expected = (F.conv1d(xp, gc.linear_weight, gc.conv.bias[:5], dilation=2)
                * torch.sigmoid(F.conv1d(xp, gc.gate_weight, gc.conv.bias[5:], dilation=2)))
    assert torch.allclose(gc(x), expected, atol=1e-6)


@pytest.mark.parametrize("k,d", [(2, 1), (3, 1), (3, 4), (5, 2)])
def test_causal_gated_conv1d_keeps_length_and_never_looks_ahead(k, d):
    torch.manual_seed(0)
    gc = GatedConv1d(2, 3, k, dilation=d, causal=True)
    n, t0 = 20, 9
    x = torch.randn(1, 2, n)
    x2 = x.clone()
    x2[..., t0] += 1.0  # change one future input
    y, y2 = gc(x), gc(x2)
    assert y.shape == (1, 3, n) and gc.output_size(n) == n
    assert torch.equal(y[..., :t0], y2[..., :t0])  # nothing before t0 moves
    assert not torch.allclose(y[..., t0], y2[..., t0])  # but step t0 itself sees it
    changed = (y - y2).abs().sum(1)[0] > 0
    assert int(torch.nonzero(changed).max()) == t0 + d * (k - 1)  # and the last step that sees it


def test_non_causal_gated_conv1d_does_look_ahead():
    torch.manual_seed(0)
    gc = GatedConv1d(2, 3, 3, causal=False)
    x = torch.randn(1, 2, 10)
    x2 = x.clone()
    x2[..., 5] += 1.0
    assert not torch.allclose(gc(x)[..., 4], gc(x2)[..., 4])
    with pytest.raises(ValueError, match="causal"):
        GatedConv1d(2, 3, 3, causal=True, padding=1)


def test_gated_residual_blocks_keep_the_shape_and_add_the_input():
    torch.manual_seed(0)
    for block, x in ((GatedResidualBlock2d(6, 3, dilation=2), torch.randn(2, 6, 9, 9)),
                     (GatedResidualBlock1d(6, 3, dilation=4, causal=True), torch.randn(2, 6, 17)),
                     (GatedResidualBlock1d(6, 5, causal=False, norm="batch"), torch.randn(2, 6, 17))):
        y = block(x)
        assert y.shape == x.shape
        assert not torch.allclose(y, x)
        with torch.no_grad():  # W = 0, b = 0 makes every gated unit output 0: the block is the identity
            for _, gated in block.layers:
                gated.conv.weight[: gated.out_channels].zero_()
                gated.conv.bias[: gated.out_channels].zero_()
        assert torch.equal(block(x), x)


def test_causal_residual_block_receptive_field():
    block = GatedResidualBlock1d(3, 3, dilation=2, causal=True, num_layers=2)
    assert block.receptive_field == 1 + 2 * 2 * 2
    x = torch.randn(1, 3, 30, requires_grad=True)
    block(x)[0, :, 25].sum().backward()
    support = torch.nonzero(x.grad[0].abs().sum(0)).flatten()
    assert int(support.max()) == 25 and int(support.min()) == 25 - (block.receptive_field - 1)


def test_conv_bn_act_output_size_and_parts():
    layer = ConvBNAct(3, 8, 3, stride=2, act_layer=None)
    assert not hasattr(layer, "act") and layer.conv.bias is None
    assert layer(torch.randn(1, 3, 15, 15)).shape == (1, 8, 8, 8) and layer.output_size(15) == 8
