"""MobileNet v1 against Howard et al. 2017: Table 1 layers, parameter and multiply-add counts, small inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.layers.conv import ConvBNAct, DepthwiseSeparableConv2d
from zoo.models.mobilenet import MOBILENET_V1_CFG, MobileNetV1


def _meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return zoo.create_model(name, **kwargs)


@pytest.mark.parametrize("name,params,macs_m", [
    ("mobilenet_v1", 4_231_976, 569),
    ("mobilenet_v1_x0_5", 1_331_592, 149),
])
def test_params_and_macs_match_the_paper(name, params, macs_m):
    model = _meta(name)
    assert zoo.count_params(model) == params
    assert zoo.count_macs(model, (3, 224, 224), device="meta") == pytest.approx(macs_m * 1e6, rel=0.02)


@pytest.mark.parametrize("name,params_m,macs_m", [("mobilenet_v1_x0_75", 2.6, 325), ("mobilenet_v1_x0_25", 0.5, 41)])
def test_other_widths_match_table_6(name, params_m, macs_m):
    model = _meta(name)
    assert zoo.count_params(model) == pytest.approx(params_m * 1e6, rel=0.06)  # Table 6 rounds to 0.1 M
    assert zoo.count_macs(model, (3, 224, 224), device="meta") == pytest.approx(macs_m * 1e6, rel=0.02)


@pytest.mark.parametrize("size,macs_m", [(160, 290), (192, 418), (128, 186)])
def test_resolution_multiplier_is_the_input_size(size, macs_m):
    """Table 7: 1.0 MobileNet at 192 / 160 / 128 px costs 418 / 290 / 186 M multiply-adds."""
    model = _meta("mobilenet_v1")
    assert zoo.count_macs(model, (3, size, size), device="meta") == pytest.approx(macs_m * 1e6, rel=0.02)


def test_table_1_layers_with_the_last_depthwise_stride_fixed_to_1():
    model = _meta("mobilenet_v1")
    assert model.stem.conv.stride == (2, 2) and model.stem.conv.out_channels == 32
    layers = list(model.features)
    assert len(layers) == 13 and all(isinstance(m, DepthwiseSeparableConv2d) for m in layers)
    strides = [m.depthwise.conv.stride[0] for m in layers]
    assert strides == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]  # Table 1's last "s2" is a typo: 1
    outs = [m.pointwise.conv.out_channels for m in layers]
    assert outs == [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    for m in layers:
        assert m.depthwise.conv.groups == m.depthwise.conv.in_channels  # depthwise
        assert m.pointwise.conv.kernel_size == (1, 1)
    with torch.device("meta"):
        assert model.forward_features(torch.zeros(1, 3, 224, 224)).shape == (1, 1024, 7, 7)


def test_bn_and_relu_after_every_conv():
    model = _meta("mobilenet_v1_x0_25")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    blocks = [m for m in model.modules() if isinstance(m, ConvBNAct)]
    assert len(convs) == len(blocks) == 1 + 2 * 13
    for b in blocks:
        assert isinstance(b.bn, nn.BatchNorm2d) and isinstance(b.act, nn.ReLU) and b.conv.bias is None


def test_width_multiplier_scales_every_layer():
    for alpha, last in ((0.75, 768), (0.5, 512), (0.25, 256)):
        model = MobileNetV1(width_mult=alpha, num_classes=10)
        assert model.stem.conv.out_channels == int(32 * alpha)
        assert model.num_features == last and model.fc.in_features == last


def test_small_input_downsamples_8x_and_learns():
    torch.manual_seed(0)
    model = zoo.create_model("mobilenet_v1_x0_25", num_classes=10, small_input=True)
    assert model.stem.conv.stride == (1, 1) and model.features[1].depthwise.conv.stride == (1, 1)
    x = torch.randn(8, 3, 32, 32)
    assert model.forward_features(x).shape == (8, 256, 4, 4)
    assert model.forward_features(torch.randn(2, 3, 28, 28)).shape[-1] == 4
    y = torch.arange(8) % 10
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]



def test_default_layout_leaves_a_32px_image_1x1():
    """Why small_input exists: the ImageNet layout divides by 32, so a 32-px image ends as one pixel."""
    model = zoo.create_model("mobilenet_v1_x0_25", num_classes=10)
    assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 256, 1, 1)


def test_dropout_option_and_keyword_only_class():
    model = _meta("mobilenet_v1_x0_25", dropout=0.2)
    assert isinstance(model.drop, nn.Dropout) and model.drop.p == 0.2
    assert isinstance(_meta("mobilenet_v1_x0_25").drop, nn.Identity)  # the paper names no dropout
    with pytest.raises(TypeError):
        MobileNetV1(MOBILENET_V1_CFG, 32, 1.0, 10)  # num_classes is keyword-only
