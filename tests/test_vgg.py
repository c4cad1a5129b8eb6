"""VGG configurations A-E (Simonyan & Zisserman 2014, Table 1) and their BN versions."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import zoo
from zoo.layers.norm import LocalResponseNorm
from zoo.models.vgg import VGG_CFGS

PAPER_COUNTS = {
    "vgg11": 132_863_336,
    "vgg11_lrn": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16_1x1": 133_638_952,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
}


def _meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return zoo.create_model(name, **kwargs)


@pytest.mark.parametrize("name", sorted(PAPER_COUNTS))
def test_parameter_counts_are_the_papers(name):
    assert zoo.count_params(_meta(name)) == PAPER_COUNTS[name]


@pytest.mark.parametrize("name", ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"])
def test_bn_counts_equal_torchvisions(name):
    with torch.device("meta"):
        tv = getattr(torchvision.models, name)()
    assert zoo.count_params(_meta(name)) == zoo.count_params(tv)
    bns = [m for m in _meta(name).features if isinstance(m, nn.BatchNorm2d)]
    convs = [m for m in _meta(name).features if isinstance(m, nn.Conv2d)]
    assert len(bns) == len(convs)


@pytest.mark.parametrize("name, config, depth, n1x1", [
    ("vgg11", "A", 11, 0), ("vgg11_lrn", "A-LRN", 11, 0), ("vgg13", "B", 13, 0),
    ("vgg16_1x1", "C", 16, 3), ("vgg16", "D", 16, 0), ("vgg19", "E", 19, 0),
])
def test_weight_layers_follow_table1(name, config, depth, n1x1):
    m = _meta(name)
    convs = [l for l in m.features if isinstance(l, nn.Conv2d)]
    fcs = [l for l in m.classifier if isinstance(l, nn.Linear)]
    assert len(convs) + len(fcs) == depth
    assert sum(c.kernel_size == (1, 1) for c in convs) == n1x1
    assert [c.out_channels for c in convs] == [int(t.split("-")[1]) for b in VGG_CFGS[config] for t in b if t != "LRN"]
    assert sum(isinstance(l, nn.MaxPool2d) for l in m.features) == 5
    assert sum(isinstance(l, LocalResponseNorm) for l in m.features) == (1 if config == "A-LRN" else 0)
    assert m.forward_features(torch.empty(1, 3, 224, 224, device="meta")).shape == (1, 512, 7, 7)
    assert [f.out_features for f in fcs] == [4096, 4096, 1000]
    assert [l.p for l in m.classifier if isinstance(l, nn.Dropout)] == [0.5, 0.5]


def test_lrn_sits_after_the_first_conv_of_a_lrn():
    m = _meta("vgg11_lrn")
    assert [type(l).__name__ for l in m.features][:4] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    lrn = m.features[2]
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 2.0)


def test_small_input_drops_the_fifth_pool_and_sizes_fc6():
    m = _meta("vgg16_bn", num_classes=10, small_input=True)
    assert sum(isinstance(l, nn.MaxPool2d) for l in m.features) == 4
    assert m.classifier[0].in_features == 512 * 2 * 2
    assert m(torch.empty(2, 3, 32, 32, device="meta")).shape == (2, 10)
    m28 = _meta("vgg11_bn", num_classes=10, in_chans=1, small_input=True, image_size=28)
    assert m28.classifier[0].in_features == 512  # 28 -> 14 -> 7 -> 3 -> 1
    assert m28(torch.empty(2, 1, 28, 28, device="meta")).shape == (2, 10)
    # The faithful layout: five pools take a 28-px image to zero, with a clear message.
    with pytest.raises(zoo.InputTooSmallError, match="features"):
        zoo.check_input(_meta("vgg11_bn", num_classes=10, in_chans=1), (1, 28, 28))


def test_gap_head_cost():
    full, gap = _meta("vgg16"), _meta("vgg16", head="gap")
    convs = sum(p.numel() for p in full.features.parameters())
    assert zoo.count_params(full) - convs == 123_642_856  # fc6 + fc7 + fc8
    assert full.classifier[0].weight.numel() == 25088 * 4096
    assert zoo.count_params(gap) - convs == 512 * 1000 + 1000
    assert gap(torch.empty(1, 3, 100, 140, device="meta")).shape == (1, 1000)


def test_init_is_glorot_with_zero_bias():
    torch.manual_seed(0)
    m = zoo.create_model("vgg11", num_classes=10, small_input=True)
    conv = m.features[3]  # conv3-128: fan_in 576, fan_out 1152
    bound = (6 / (576 + 1152)) ** 0.5
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert all(float(l.bias.detach().abs().max()) == 0.0 for l in m.modules() if isinstance(l, (nn.Conv2d, nn.Linear)))


@pytest.mark.parametrize("name", ["vgg11", "vgg11_bn"])
def test_trains_a_few_steps_at_32px(name):
    torch.manual_seed(0)
    m = zoo.create_model(name, num_classes=10, small_input=True, dropout=0.0)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(3):
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0], losses


def test_shared_head_and_lrn_constants():
    """VGG and AlexNet share one classifier head (zoo.layers.head) and one set of LRN constants."""
    from zoo.layers.head import PooledClassifierNet
    from zoo.layers.norm import ALEXNET_LRN

    m, a = _meta("vgg11_lrn"), _meta("alexnet")
    assert isinstance(m, PooledClassifierNet) and isinstance(a, PooledClassifierNet)
    lrn = m.features[2]
    assert {"size": lrn.size, "alpha": lrn.alpha, "beta": lrn.beta, "k": lrn.k} == ALEXNET_LRN
    assert [type(l).__name__ for l in m.classifier] == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout",
                                                        "Linear"]
    assert m.num_features == 4096 and m.get_classifier() is m.classifier[6]
    assert _meta("vgg11", head="gap").num_features == 512
