"""GoogLeNet / Inception v1 (Szegedy et al. 2014, Table 1) and torchvision's BN variant."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import zoo
from zoo.layers.norm import LocalResponseNorm
from zoo.models.googlenet import GOOGLENET_TABLE1, Inception


def _meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return zoo.create_model(name, **kwargs)


def test_parameter_count_without_aux_heads():
    n = zoo.count_params(_meta("googlenet", aux_logits=False))
    assert abs(n - 6_998_552) <= 0.005 * 6_998_552
    assert n == 6_998_552
    # Each auxiliary head: 1x1 conv 128, FC 2048 -> 1024, FC 1024 -> 1000.
    assert zoo.count_params(_meta("googlenet")) == n + (512 + 528 + 2) * 128 + 2 * (2048 * 1024 + 1024 + 1024 * 1000 + 1000)
    assert zoo.model_info("googlenet").params == zoo.count_params(_meta("googlenet"))


def test_bn_variant_counts_equal_torchvisions():
    with torch.device("meta"):
        tv = torchvision.models.googlenet(aux_logits=False, init_weights=True)
        tv_aux = torchvision.models.googlenet(aux_logits=True, init_weights=True)
    assert zoo.count_params(_meta("googlenet_bn", aux_logits=False)) == zoo.count_params(tv) == 6_624_904
    assert zoo.count_params(_meta("googlenet_bn")) == zoo.count_params(tv_aux)


def test_table1_widths_and_map_sizes():
    m = _meta("googlenet")
    outs, sizes = {}, {}
    x = m.stem(torch.empty(1, 3, 224, 224, device="meta"))
    assert x.shape == (1, 192, 28, 28)
    for name, block in m.blocks.items():
        x = block(x)
        if isinstance(block, Inception):
            outs[name], sizes[name] = x.shape[1], x.shape[-1]
    assert outs == {"inception3a": 256, "inception3b": 480, "inception4a": 512, "inception4b": 512,
                    "inception4c": 512, "inception4d": 528, "inception4e": 832, "inception5a": 832,
                    "inception5b": 1024}
    assert [sizes[k] for k in ("inception3b", "inception4e", "inception5b")] == [28, 14, 7]
    assert len([s for s in GOOGLENET_TABLE1 if not isinstance(s, str)]) == 9


def test_paper_variant_has_true_5x5_lrn_and_no_bn():
    m = _meta("googlenet")
    b3 = m.blocks["inception3a"].branch3[1].conv
    assert b3.kernel_size == (5, 5) and b3.padding == (2, 2)
    assert not any(isinstance(l, nn.BatchNorm2d) for l in m.modules())
    assert [n for n, l in m.stem.named_children() if isinstance(l, LocalResponseNorm)] == ["lrn1", "lrn2"]
    assert list(m.stem.named_children())[1][0] == "pool1" and list(m.stem.named_children())[2][0] == "lrn1"
    assert m.dropout.p == 0.4
    aux = m.aux1
    assert isinstance(aux.pool[0], nn.AvgPool2d) and aux.pool[0].kernel_size == 5 and aux.pool[0].stride == 3
    assert aux.conv.conv.out_channels == 128 and aux.fc1.in_features == 2048 and aux.fc1.out_features == 1024
    assert aux.dropout.p == 0.7 and aux.fc2.out_features == 1000


def test_bn_variant_is_torchvisions():
    m = _meta("googlenet_bn")
    assert m.blocks["inception3a"].branch3[1].conv.kernel_size == (3, 3)  # torchvision's "5x5" branch
    assert not any(isinstance(l, LocalResponseNorm) for l in m.modules())
    assert all(l.eps == 1e-3 for l in m.modules() if isinstance(l, nn.BatchNorm2d))
    assert m.blocks["maxpool4"].kernel_size == 2 and m.dropout.p == 0.2


def test_forward_never_runs_aux_heads_and_forward_train_returns_them():
    torch.manual_seed(0)
    m = zoo.create_model("googlenet", num_classes=5, small_input=True)
    calls = []
    for head in (m.aux1, m.aux2):
        head.register_forward_hook(lambda mod, i, o: calls.append(o.shape))
    x = torch.randn(2, 3, 32, 32)
    m.train()
    with torch.no_grad():
        assert m(x).shape == (2, 5)
        assert calls == []
        logits, aux = m.forward_train(x)
    assert logits.shape == (2, 5) and [a.shape for a in aux] == [(2, 5), (2, 5)] and len(calls) == 2
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(m(x), m.forward_head(m.forward_features(x)))
        assert len(calls) == 2


def test_aux_logits_false_removes_the_heads():
    m = zoo.create_model("googlenet", num_classes=5, small_input=True, aux_logits=False)
    assert m.aux1 is None and m.aux2 is None
    assert not any(n.startswith("aux") for n, _ in m.named_parameters())
    with torch.no_grad():
        logits, aux = m.forward_train(torch.randn(1, 3, 32, 32))
    assert logits.shape == (1, 5) and aux == []


def test_small_input_layout():
    m = _meta("googlenet", num_classes=10, small_input=True)
    x = m.stem(torch.empty(1, 3, 32, 32, device="meta"))
    assert x.shape == (1, 192, 16, 16)
    assert m.aux1.fc1.in_features == 128 * 2 * 2  # 4a map 8x8 -> avg 5x5/3 -> 2x2
    for name in ("googlenet", "googlenet_bn"):
        mm = _meta(name, num_classes=10, in_chans=1, small_input=True)
        logits, aux = mm.forward_train(torch.empty(2, 1, 28, 28, device="meta"))
        assert logits.shape == (2, 10) and len(aux) == 2


def test_transform_input_matches_torchvision_formula():
    m = zoo.create_model("googlenet_bn", aux_logits=False, transform_input=True, small_input=True, num_classes=3)
    x = torch.randn(2, 3, 8, 8)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    expected = (x * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1) - 0.5) / 0.5  # back to [0,1], then to [-1,1]
    torch.testing.assert_close(m._transform_input(x), expected)
    assert "input_scale" not in m.state_dict()
    with pytest.raises(ValueError, match="RGB"):
        zoo.create_model("googlenet_bn", in_chans=1, transform_input=True)


def test_init_of_the_paper_variant():
    torch.manual_seed(0)
    m = zoo.create_model("googlenet", num_classes=10, small_input=True)
    conv = m.blocks["inception4a"].branch1.conv  # 1x1, fan_in 480
    bound = (3 / 480) ** 0.5
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert float(conv.bias.detach().unique()) == pytest.approx(0.2)
    assert float(m.fc.bias.detach().abs().max()) == 0.0


@pytest.mark.parametrize("name", ["googlenet", "googlenet_bn"])
def test_trains_a_few_steps_at_32px_with_aux_losses(name):
    torch.manual_seed(0)
    m = zoo.create_model(name, num_classes=10, small_input=True, dropout=0.0, aux_dropout=0.0)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(3):
        logits, aux = m.forward_train(x)
        loss = F.cross_entropy(logits, y) + 0.3 * sum(F.cross_entropy(a, y) for a in aux)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0], losses
