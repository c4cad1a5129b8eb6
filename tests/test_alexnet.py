"""AlexNet (Krizhevsky et al. 2012) and torchvision's variant; the paper's LRN."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from zoo.layers.norm import LocalResponseNorm
from zoo.models.alexnet import ALEXNET_CFG, AlexNet


def _meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return zoo.create_model(name, **kwargs)


def _fcs(m: nn.Module) -> list[nn.Linear]:
    """fc6, fc7, fc8 (or the GAP head's linear layer), in order."""
    return [l for l in m.classifier if isinstance(l, nn.Linear)]


def _lrn_by_formula(a: torch.Tensor, k: float, n: int, alpha: float, beta: float) -> torch.Tensor:
    """b_i = a_i / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a_j^2)^beta, written out channel by channel."""
    num_ch = a.shape[1]
    out = torch.empty_like(a)
    for i in range(num_ch):
        lo, hi = max(0, i - n // 2), min(num_ch - 1, i + n // 2)
        s = (a[:, lo:hi + 1] ** 2).sum(dim=1)
        out[:, i] = a[:, i] / (k + alpha * s) ** beta
    return out


def test_lrn_matches_the_papers_formula():
    torch.manual_seed(0)
    # Large activities so that alpha * sum(a^2) is comparable to k and the window matters.
    a = torch.randn(2, 7, 3, 3, dtype=torch.float64) * 40
    expected = _lrn_by_formula(a, k=2.0, n=5, alpha=1e-4, beta=0.75)
    got = LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)(a)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    # torch's own module with the paper's alpha averages instead of summing: a different function.
    torch_lrn = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(a)
    assert (torch_lrn - expected).abs().max() > 1e-3
    with pytest.raises(ValueError, match="odd"):
        LocalResponseNorm(size=4)


def test_alexnet_parameter_count_is_the_papers():
    assert zoo.count_params(_meta("alexnet")) == 60_965_224
    assert zoo.count_params(_meta("alexnet_tv")) == 61_100_840
    assert zoo.model_info("alexnet").input_size == (3, 227, 227)


def test_alexnet_layers_towers_and_lrn_placement():
    m = _meta("alexnet")
    convs = [l for l in m.features if isinstance(l, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0], c.groups) for c in convs] == [
        (96, 11, 4, 0, 1), (256, 5, 1, 2, 2), (384, 3, 1, 1, 1), (384, 3, 1, 1, 2), (256, 3, 1, 1, 2)]
    assert convs[1].weight.shape == (256, 48, 5, 5)  # each tower sees only its own 48 maps
    kinds = [type(l).__name__ for l in m.features]
    assert kinds[:8] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d",
                         "Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    assert kinds.count("LocalResponseNorm") == 2
    lrn = m.features[2]
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 2.0)
    assert [l.groups for l in m.features if isinstance(l, LocalResponseNorm)] == [2, 2]  # one per tower
    pools = [l for l in m.features if isinstance(l, nn.MaxPool2d)]
    assert len(pools) == 3 and all(p.kernel_size == 3 and p.stride == 2 for p in pools)  # overlapping
    drops = [l.p for l in m.classifier if isinstance(l, nn.Dropout)]
    assert drops == [0.5, 0.5]
    assert [l.out_features for l in m.classifier if isinstance(l, nn.Linear)] == [4096, 4096, 1000]


def test_why_227_and_not_224():
    """conv1 (11x11/4, no padding) gives the paper's 55x55 maps only from 227 px; 224 gives 54."""
    m = _meta("alexnet")
    conv1 = m.features[0]
    assert conv1(torch.empty(1, 3, 227, 227, device="meta")).shape[-1] == 55
    assert conv1(torch.empty(1, 3, 224, 224, device="meta")).shape[-1] == 54
    assert m.forward_features(torch.empty(1, 3, 227, 227, device="meta")).shape == (1, 256, 6, 6)
    assert _fcs(m)[0].in_features == 9216


def test_alexnet_init_follows_the_paper():
    torch.manual_seed(0)
    m = zoo.create_model("alexnet", head="gap")  # the conv stack, cheaply
    convs = [l for l in m.features if isinstance(l, nn.Conv2d)]
    assert [float(c.bias.detach().unique()) for c in convs] == [0.0, 1.0, 0.0, 1.0, 1.0]
    w = torch.cat([c.weight.flatten() for c in convs])
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.01) < 5e-4
    fc = AlexNet([ALEXNET_CFG[0]], num_classes=10, fc_width=64, image_size=227)
    assert [float(l.bias.detach().unique()) for l in fc.classifier if isinstance(l, nn.Linear)] == [1.0, 1.0, 0.0]


def test_small_input_layout():
    m = zoo.create_model("alexnet", num_classes=10, in_chans=1, small_input=True)
    conv1 = m.features[0]
    assert (conv1.kernel_size, conv1.stride, conv1.padding) == ((3, 3), (1, 1), (1, 1))
    assert _fcs(m)[0].in_features == 256 * 3 * 3  # 32 -> 15 -> 7 -> 3
    m.eval()
    with torch.no_grad():
        assert m(torch.randn(2, 1, 32, 32)).shape == (2, 10)
        assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    m28 = _meta("alexnet", num_classes=10, in_chans=1, small_input=True, image_size=28)
    assert _fcs(m28)[0].in_features == 256 * 2 * 2  # 28 -> 13 -> 6 -> 2
    # The faithful layout rejects a 32-px image with the layer and the arithmetic.
    with pytest.raises(zoo.InputTooSmallError, match="features"):
        zoo.check_input(_meta("alexnet", num_classes=10), (3, 32, 32))


def test_gap_head_cost_and_any_size():
    full, gap = _meta("alexnet"), _meta("alexnet", head="gap")
    convs = sum(p.numel() for p in full.features.parameters())
    assert zoo.count_params(full) - convs == 58_631_144  # fc6 + fc7 + fc8
    assert zoo.count_params(gap) - convs == 256 * 1000 + 1000
    assert gap(torch.empty(1, 3, 300, 260, device="meta")).shape == (1, 1000)


def test_macs_metadata_counts_convs_and_fcs():
    # conv1 alone: 96 * 3 * 11 * 11 * 55 * 55 multiply-adds; the total is in the registry.
    m = _meta("alexnet")
    assert zoo.count_macs(nn.Sequential(m.features[0]), (3, 227, 227), device="meta") == 96 * 363 * 55 * 55
    assert zoo.count_macs(m, (3, 227, 227), device="meta") == zoo.model_info("alexnet").macs


@pytest.mark.parametrize("name", ["alexnet", "alexnet_tv"])
def test_trains_a_few_steps_at_32px(name):
    torch.manual_seed(0)
    m = zoo.create_model(name, num_classes=10, small_input=True, dropout=0.0)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    opt = torch.optim.SGD(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0], losses


def test_small_input_defaults_to_kaiming_init_and_paper_init_stays_available():
    torch.manual_seed(0)
    small = zoo.create_model("alexnet", num_classes=10, small_input=True, head="gap")
    assert small.init == "kaiming"
    convs = [l for l in small.features if isinstance(l, nn.Conv2d)]
    assert all(float(c.bias.detach().abs().max()) == 0.0 for c in convs)
    fan_in = convs[2].weight[0].numel()  # conv3: 256 * 3 * 3
    assert abs(convs[2].weight.std().item() - (2 / fan_in) ** 0.5) < 0.05 * (2 / fan_in) ** 0.5
    fc = _fcs(small)[0]
    assert abs(fc.weight.std().item() - 0.01) < 1e-3 and float(fc.bias.detach().abs().max()) == 0.0
    forced = zoo.create_model("alexnet", num_classes=10, small_input=True, head="gap", init="paper")
    assert [float(c.bias.detach().unique()) for c in forced.features if isinstance(c, nn.Conv2d)] == \
        [0.0, 1.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="init"):
        zoo.create_model("alexnet", init="xavier")


# ----------------------------------------------------------------------------- Sec. 4.2 and 3.5


def test_dropout_follows_fc6_and_fc7_in_the_paper_network():
    """Sec. 4.2: dropout sets the outputs of fc6 and fc7 to zero; torchvision's order drops their inputs."""
    kinds = [type(l).__name__ for l in _meta("alexnet").classifier]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    tv = [type(l).__name__ for l in _meta("alexnet_tv").classifier]
    assert tv == ["Dropout", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Linear"]
    # Both keep torchvision's state-dict keys: fc6, fc7, fc8 at classifier.1, .4, .6.
    for name in ("alexnet", "alexnet_tv"):
        keys = [k for k in _meta(name).state_dict() if k.startswith("classifier.")]
        assert keys == [f"classifier.{i}.{p}" for i in (1, 4, 6) for p in ("weight", "bias")], keys


def test_dropout_zeroes_fc7_outputs_in_training():
    torch.manual_seed(0)
    m = zoo.create_model("alexnet", num_classes=10, small_input=True, fc_width=64, dropout=0.5)
    feats = m.forward_features(torch.randn(4, 3, 32, 32)).detach()
    m.eval()
    kept = m.forward_head(feats, pre_logits=True)  # (4, 64): fc7's ReLU outputs
    m.train()
    dropped = m.forward_head(feats, pre_logits=True)
    assert ((dropped == 0) & (kept != 0)).any()
    assert m.get_classifier() is _fcs(m)[-1]


def test_lrn_normalises_each_tower_on_its_own():
    """Perturbing tower 2's maps before an LRN leaves tower 1's normalised maps unchanged."""
    torch.manual_seed(0)
    m = zoo.create_model("alexnet", head="gap").eval()
    for idx, half in ((2, 48), (6, 128)):  # lrn1 after conv1 (96 maps), lrn2 after conv2 (256 maps)
        lrn = m.features[idx]
        assert isinstance(lrn, LocalResponseNorm) and lrn.groups == 2
        a = torch.randn(2, 2 * half, 5, 5, dtype=torch.float64) * 40
        b = a.clone()
        b[:, half:] = torch.randn(2, half, 5, 5, dtype=torch.float64) * 40
        out_a, out_b = lrn(a), lrn(b)
        torch.testing.assert_close(out_a[:, :half], out_b[:, :half], rtol=0, atol=0)
        assert not torch.allclose(out_a[:, half:], out_b[:, half:])
        # Reference: F.local_response_norm per half, with the paper's alpha (torch divides it by n).
        ref = torch.cat([F.local_response_norm(t, 5, alpha=1e-4 * 5, beta=0.75, k=2.0) for t in a.split(half, 1)], 1)
        torch.testing.assert_close(out_a, ref, rtol=1e-12, atol=1e-12)
        # Across all channels the border maps of the towers would see each other: a different function.
        whole = F.local_response_norm(a, 5, alpha=1e-4 * 5, beta=0.75, k=2.0)
        assert not torch.allclose(whole[:, half - 2:half + 2], out_a[:, half - 2:half + 2])


def test_grouped_lrn_matches_the_formula_per_group():
    torch.manual_seed(0)
    a = torch.randn(2, 12, 3, 3, dtype=torch.float64) * 40
    got = LocalResponseNorm(5, 1e-4, 0.75, 2.0, groups=3)(a)
    expected = torch.cat([_lrn_by_formula(t, k=2.0, n=5, alpha=1e-4, beta=0.75) for t in a.split(4, 1)], 1)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="divisible"):
        LocalResponseNorm(groups=5)(a)


def test_alexnet_tv_has_no_lrn_and_single_tower():
    m = _meta("alexnet_tv")
    assert not any(isinstance(l, LocalResponseNorm) for l in m.modules())
    assert all(c.groups == 1 for c in m.features if isinstance(c, nn.Conv2d))
