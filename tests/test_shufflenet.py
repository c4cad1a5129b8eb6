"""ShuffleNet v1 (Zhang et al. 2017) and v2 (Ma et al. 2018): tables, units, costs and torchvision equality."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import zoo
from zoo.models.shufflenet import ShuffleNetV1, ShuffleV1Unit, ShuffleV2Unit

V2 = ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]


def _meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return zoo.create_model(name, **kwargs)


# ----------------------------------------------------------------------------- v1


@pytest.mark.parametrize("g,mflops", [(1, 143), (2, 140), (3, 137), (4, 133), (8, 137)])
def test_v1_complexity_matches_table_1(g, mflops):
    model = _meta(f"shufflenet_v1_g{g}")
    assert zoo.count_macs(model, (3, 224, 224), device="meta") == pytest.approx(mflops * 1e6, rel=0.06)


@pytest.mark.parametrize("name,mflops", [("shufflenet_v1_g3_x0_25", 13), ("shufflenet_v1_g3_x0_5", 38),
                                         ("shufflenet_v1_g3_x1_5", 292), ("shufflenet_v1_g3_x2_0", 524)])
def test_v1_scaled_complexity_matches_the_paper(name, mflops):
    model = _meta(name)
    assert zoo.count_macs(model, (3, 224, 224), device="meta") == pytest.approx(mflops * 1e6, rel=0.06)


@pytest.mark.parametrize("g,channels", [(1, (144, 288, 576)), (2, (200, 400, 800)), (3, (240, 480, 960)),
                                        (4, (272, 544, 1088)), (8, (384, 768, 1536))])
def test_v1_stages_follow_table_1(g, channels):
    model = _meta(f"shufflenet_v1_g{g}")
    assert model.stem.conv.stride == (2, 2) and model.stem.conv.out_channels == 24
    assert isinstance(model.maxpool, nn.MaxPool2d)
    assert [len(s) for s in model.stages] == [4, 8, 4]
    for stage, out in zip(model.stages, channels):
        first, rest = stage[0], list(stage)[1:]
        assert first.stride == 2 and all(u.stride == 1 for u in rest)
        for unit in stage:
            assert unit.reduce.conv.out_channels == out // 4  # bottleneck: a quarter of the output
            assert unit.expand.conv.groups == g
            assert unit.depthwise.conv.groups == out // 4 and not hasattr(unit.depthwise, "act")  # no ReLU
        assert rest[-1].expand.conv.out_channels == out
        assert first.expand.conv.out_channels + first.reduce.conv.in_channels == out  # + pooled shortcut
    # the first pointwise layer of stage 2 is not grouped; every other one is
    assert model.stages[0][0].reduce.conv.groups == 1
    assert all(u.reduce.conv.groups == g for s in model.stages for u in s if u is not model.stages[0][0])
    with torch.device("meta"):
        assert model.forward_features(torch.zeros(1, 3, 224, 224)).shape == (1, channels[-1], 7, 7)


def test_v1_stride_2_unit_concatenates_the_average_pooled_input():
    torch.manual_seed(0)
    unit = ShuffleV1Unit(12, 36, groups=3, stride=2).eval()
    x = torch.randn(2, 12, 9, 9)
    y = unit(x)
    assert y.shape == (2, 36, 5, 5)
    assert torch.allclose(y[:, :12], F.relu(F.avg_pool2d(x, 3, 2, 1)), atol=1e-6)


def test_v1_unit_shuffles_so_every_output_group_sees_every_input_group():
    """Group convs alone would keep group 0 of the output blind to input groups 1 and 2."""
    torch.manual_seed(0)
    g, c = 3, 36  # bottleneck 9 = g^2: each shuffled group holds one channel of every group
    unit = ShuffleV1Unit(c, c, groups=g).eval()
    x = torch.randn(1, c, 5, 5, requires_grad=True)
    unit(x)[:, : c // g].sum().backward()
    seen = (x.grad.abs().sum((0, 2, 3)) > 0).view(g, c // g)
    assert seen[1:].any(1).all()  # groups 1 and 2 reach output group 0 (the residual only adds group 0)
    unit.shuffle_groups = 1  # the same unit with the shuffle taken out
    x.grad = None
    unit(x)[:, : c // g].sum().backward()
    seen = (x.grad.abs().sum((0, 2, 3)) > 0).view(g, c // g)
    assert not seen[1:].any()


def test_v1_small_input_and_learning():
    torch.manual_seed(0)
    model = zoo.create_model("shufflenet_v1_g3_x0_25", num_classes=10, small_input=True)
    assert model.stem.conv.stride == (1, 1) and isinstance(model.maxpool, nn.Identity)
    x = torch.randn(8, 3, 32, 32)
    assert model.forward_features(x).shape == (8, 240, 4, 4)
    y = torch.arange(8) % 10
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    first = None
    for _ in range(8):
        loss = F.cross_entropy(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_v1_groups_without_a_table_row_need_channels():
    with pytest.raises(ValueError, match="Table 1"):
        ShuffleNetV1(groups=6)
    with pytest.raises(ValueError, match="divisible"):  # 200 - 24 stem channels is not a multiple of 6
        ShuffleNetV1(groups=6, stage_channels=(200, 400, 800))
    model = ShuffleNetV1(groups=6, stage_channels=(240, 480, 960), width_mult=0.5, num_classes=3)
    assert model.stages[1][0].expand.conv.groups == 6
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)


# ----------------------------------------------------------------------------- v2


def test_v2_stride_1_unit_splits_and_passes_one_half_through():
    torch.manual_seed(0)
    unit = ShuffleV2Unit(16, 16, stride=1).eval()
    x = torch.randn(2, 16, 6, 6)
    y = unit(x)
    assert y.shape == x.shape
    # concat(left half, branch(right half)) then shuffle with 2 groups: the untouched half lands on even channels
    assert torch.equal(y[:, 0::2], x[:, :8])
    x2 = x.clone()
    x2[:, :8] += 1.0  # the left half never enters the branch
    assert torch.equal(unit(x2)[:, 1::2], y[:, 1::2])


def test_v2_stride_2_unit_doubles_channels_from_both_branches():
    unit = ShuffleV2Unit(24, 48, stride=2)
    assert unit(torch.randn(2, 24, 8, 8)).shape == (2, 48, 4, 4)
    assert unit.shortcut[0].conv.groups == 24 and unit.main[1].conv.groups == 24


@pytest.mark.parametrize("name,mflops", zip(V2, [41, 146, 299, 591]))
def test_v2_complexity_matches_table_5(name, mflops):
    model = _meta(name)
    assert zoo.count_macs(model, (3, 224, 224), device="meta") == pytest.approx(mflops * 1e6, rel=0.02)


@torch.no_grad()
def _tv(tv_name: str, seed: int = 0) -> nn.Module:
    """torchvision model with random weights, non-trivial BN statistics and O(1) logits."""
    g = torch.Generator().manual_seed(seed)
    model = torchvision.models.get_model(tv_name, weights=None)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.uniform_(-0.2, 0.2, generator=g)
            m.running_mean.uniform_(-0.5, 0.5, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
        elif isinstance(m, nn.Linear):
            m.weight.normal_(0, 1 / m.in_features ** 0.5, generator=g)
    return model.eval()


@pytest.mark.parametrize("name", V2)
def test_v2_loads_torchvision_and_gives_the_same_logits(name):
    assert zoo.torchvision_pairs()[name] == name
    tv = _tv(name)
    ours = zoo.from_torchvision(name, tv.state_dict()).eval()
    assert zoo.count_params(ours) == zoo.count_params(tv) == zoo.model_info(name).params
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = tv(x), ours(x)
    assert expected.std() > 0.1
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_v2_same_logits_at_224():
    tv = _tv("shufflenet_v2_x0_5", seed=2)
    ours = zoo.from_torchvision("shufflenet_v2_x0_5", tv.state_dict(), num_classes=1000).eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), atol=1e-4, rtol=0)


def test_v2_torchvision_remap_is_strict():
    tv = torchvision.models.get_model("shufflenet_v2_x0_5", weights=None, num_classes=5)
    sd = tv.state_dict()
    sd.pop("stage3.2.branch2.5.weight")
    with pytest.raises(RuntimeError, match="missing keys"):
        zoo.from_torchvision("shufflenet_v2_x0_5", sd)


def test_v2_small_input():
    model = zoo.create_model("shufflenet_v2_x0_5", num_classes=10, small_input=True)
    assert model.stem.conv.stride == (1, 1) and isinstance(model.maxpool, nn.Identity)
    assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 1024, 4, 4)
    assert model(torch.randn(2, 3, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("name", ["shufflenet_v1_g3", "shufflenet_v2_x1_0"])
def test_dropout_option(name):
    model = _meta(name, dropout=0.2)
    assert isinstance(model.drop, nn.Dropout) and model.drop.p == 0.2
    assert isinstance(_meta(name).drop, nn.Identity)  # neither paper uses dropout
    assert model.get_classifier() is model.fc
