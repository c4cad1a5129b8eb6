"""LeNet-5 (LeCun et al. 1998) and lenet5_modern: structure, parameter counts, RBF head, training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
import zoo.ops
from zoo.models.lenet import (
    EuclideanRBF,
    ScaledTanh,
    TableConv2d,
    TrainableSubsampling,
    digit_prototypes,
    lenet5,
    lenet5_modern,
    random_prototypes,
)

# Table I of the paper, transcribed as printed: row = S2 map, column = C3 map (A-F = 10-15).
TABLE_I = """
    0 1 2 3 4 5 6 7 8 9 A B C D E F
 0  X . . . X X X . . X X X X . X X
 1  X X . . . X X X . . X X X X . X
 2  X X X . . . X X X . . X . X X X
 3  . X X X . . X X X X . . X . X X
 4  . . X X X . . X X X X . X X . X
 5  . . . X X X . . X X X X . X X X
"""


def _table_i() -> torch.Tensor:
    """(6 S2 maps, 16 C3 maps) boolean matrix from TABLE_I."""
    rows = [line.split()[1:] for line in TABLE_I.strip().splitlines()[1:]]
    return torch.tensor([[c == "X" for c in row] for row in rows])


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- lenet5 structure


def test_lenet5_parameter_counts_per_layer():
    m = lenet5()
    f = m.features
    counts = {
        "C1": _count(f.c1), "S2": _count(f.s2), "C3": _count(f.c3), "S4": _count(f.s4),
        "C5": _count(f.c5), "F6": _count(m.f6), "output": _count(m.output),
    }
    assert counts == {"C1": 156, "S2": 12, "C3": 1516, "S4": 32, "C5": 48120, "F6": 10164, "output": 0}
    assert zoo.count_params(m) == 60_000 == 156 + 12 + 1516 + 32 + 48120 + 10164
    # C3 holds one 5x5 kernel per Table I connection: 6x3 + 9x4 + 1x6 = 60 kernels, 16 biases.
    groups = f.c3.groups
    assert tuple(groups["in3"].weight.shape) == (6, 3, 5, 5)
    assert tuple(groups["in4"].weight.shape) == (9, 4, 5, 5)
    assert tuple(groups["in6"].weight.shape) == (1, 6, 5, 5)
    assert (_count(groups["in3"]), _count(groups["in4"]), _count(groups["in6"])) == (456, 909, 151)
    assert all(p.numel() < 16 * 6 * 25 for p in f.c3.parameters())  # no dense 16x6 weight
    # The prototypes are a buffer: saved with the model, never trained.
    assert "output.prototypes" in m.state_dict()
    assert all("prototypes" not in n for n, _ in m.named_parameters())


def test_lenet5_parameter_counts_do_not_depend_on_class_count():
    assert zoo.count_params(lenet5(num_classes=7)) == 60_000
    assert zoo.count_params(lenet5(in_chans=3)) == 60_000 + 2 * 6 * 25


def test_lenet5_shapes_and_feature_head_split():
    m = lenet5().eval()
    x = torch.randn(2, 1, 32, 32)
    feats = m.forward_features(x)
    assert feats.shape == (2, 120, 1, 1)
    assert m.forward_head(feats, pre_logits=True).shape == (2, 84)
    logits = m.forward_head(feats)
    assert logits.shape == (2, 10)
    torch.testing.assert_close(logits, m(x))
    sizes = {"c1": (6, 28), "s2": (6, 14), "c3": (16, 10), "s4": (16, 5), "c5": (120, 1)}
    h = x
    for name, layer in m.features.named_children():
        h = layer(h)
        if name in sizes:
            maps, size = sizes[name]
            assert h.shape == (2, maps, size, size), name


def test_c3_connectivity_follows_table_i():
    """Perturbing one S2 map changes exactly the C3 maps Table I connects it to."""
    torch.manual_seed(0)
    c3 = lenet5().features.c3
    assert isinstance(c3, TableConv2d)
    expected = _table_i()
    assert expected.sum().item() == 60
    x = torch.randn(1, 6, 14, 14)
    base = c3(x)
    assert base.shape == (1, 16, 10, 10)
    for j in range(6):
        x2 = x.clone()
        x2[:, j] += torch.randn(14, 14)
        changed = (c3(x2) - base).abs().amax(dim=(0, 2, 3)) > 1e-6
        assert torch.equal(changed, expected[j]), f"S2 map {j}: {changed.int().tolist()}"
    assert torch.equal(c3.connection_matrix(), expected.T)


def _lenet5_1998(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """LeNet-5's forward written out plainly from the paper: every C3 map the sum of one 5x5
    convolution per Table I connection, f(a) = 1.7159 tanh(2a/3), S layers as coefficient x
    block sum + bias, and minus the RBF penalties. Reads the weights of ``m``."""
    def f(a: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(2.0 / 3.0 * a)

    def s(layer: TrainableSubsampling, a: torch.Tensor) -> torch.Tensor:
        blocks = a.unfold(2, 2, 2).unfold(3, 2, 2).sum(dim=(-1, -2))
        return blocks * layer.weight[None, :, None, None] + layer.bias[None, :, None, None]

    feats = m.features
    a = s(feats.s2, f(F.conv2d(x, feats.c1.weight, feats.c1.bias)))  # (B, 6, 14, 14), before f
    a = f(a)
    c3 = feats.c3
    kernels = {}  # (map, input) -> (5, 5) weight, and map -> bias, from the per-fan-in groups
    bias = {}
    for conv in c3.groups.values():
        fan_in = conv.in_channels // conv.out_channels
        maps = [o for o, inputs in enumerate(c3.table) if len(inputs) == fan_in]
        for j, o in enumerate(maps):
            bias[o] = conv.bias[j]
            for k, i in enumerate(c3.table[o]):
                kernels[o, i] = conv.weight[j, k]
    maps = []
    for o, inputs in enumerate(c3.table):
        acc = sum(F.conv2d(a[:, i:i + 1], kernels[o, i][None, None]) for i in inputs)
        maps.append(acc + bias[o])
    a = f(s(feats.s4, f(torch.cat(maps, dim=1))))  # (B, 16, 5, 5)
    a = f(F.conv2d(a, feats.c5.weight, feats.c5.bias)).flatten(1)  # (B, 120)
    a = f(F.linear(a, m.f6.weight, m.f6.bias))  # (B, 84)
    return -(a[:, None, :] - m.output.prototypes[None]).pow(2).sum(-1)  # (B, 10)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-6), (torch.float32, 1e-5)])
def test_lenet5_equals_the_plain_1998_network_outputs_and_gradients(dtype, tol):
    """The fast layers (C3 as one per-input convolution, f through the sigmoid) compute the
    1998 network: outputs and every gradient equal the plain per-connection, tanh forward.
    float64 within 1e-6 absolute (the float summation order aside, they are the same sums);
    float32, where rounding differs, within 1e-5 of the largest value or 1."""
    torch.manual_seed(0)
    m = lenet5().to(dtype)
    x = torch.randn(8, 1, 32, 32, dtype=dtype, requires_grad=True)
    target = torch.randint(0, 10, (8,))
    outs, grads = [], []
    for forward in (m, lambda v: _lenet5_1998(m, v)):
        m.zero_grad()
        x.grad = None
        y = forward(x)
        F.cross_entropy(y, target).backward()
        outs.append(y.detach())
        grads.append([x.grad.clone()] + [p.grad.clone() for p in m.parameters()])
    names = ["input"] + [n for n, _ in m.named_parameters()]

    def close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
        scale = 1.0 if dtype == torch.float64 else max(1.0, b.abs().max().item())
        err = (a - b).abs().max().item()
        assert err <= tol * scale, f"{what}: max difference {err:.3g} > {tol * scale:.3g}"

    close(outs[0], outs[1], "logits")
    for name, g, ref in zip(names, *grads):
        assert ref.abs().max() > 0, name  # every gradient is exercised
        close(g, ref, name)


def test_c3_fast_path_equals_one_grouped_convolution_per_fan_in():
    torch.manual_seed(0)
    c3 = lenet5().features.c3.double()
    assert c3.per_input  # Table I: every S2 map feeds 10 C3 maps
    x = torch.randn(4, 6, 14, 14, dtype=torch.float64, requires_grad=True)
    fast, grouped = c3(x), c3._grouped_forward(x)
    torch.testing.assert_close(fast, grouped, rtol=0, atol=1e-12)
    g_fast = torch.autograd.grad(fast.square().sum(), [x, *c3.parameters()])
    g_grouped = torch.autograd.grad(grouped.square().sum(), [x, *c3.parameters()])
    for a, b in zip(g_fast, g_grouped):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    assert sum(p.numel() for p in c3.parameters()) == 1516  # the real connections only


def test_trainable_subsampling_is_coefficient_times_block_sum_plus_bias():
    torch.manual_seed(0)
    s = TrainableSubsampling(3)
    x = torch.randn(2, 3, 6, 6)
    blocks = x.unfold(2, 2, 2).unfold(3, 2, 2).sum(dim=(-1, -2))  # (2, 3, 3, 3)
    expected = blocks * s.weight[None, :, None, None] + s.bias[None, :, None, None]
    torch.testing.assert_close(s(x), expected)


def test_scaled_tanh_constants():
    f = ScaledTanh()
    assert f(torch.tensor(1.0)).item() == pytest.approx(1.7159 * math.tanh(2.0 / 3.0), rel=1e-6)
    assert f(torch.tensor(1.0)).item() == pytest.approx(1.0, abs=1e-4)  # f(+-1) = +-1
    assert f(torch.tensor(-1.0)).item() == pytest.approx(-1.0, abs=1e-4)
    assert f(torch.tensor(50.0)).item() == pytest.approx(1.7159, rel=1e-6)  # amplitude A
    m = lenet5()
    assert sum(isinstance(a, ScaledTanh) for a in m.modules()) == 6  # after C1, S2, C3, S4, C5, F6


def test_rbf_logits_are_minus_squared_euclidean_distance():
    torch.manual_seed(0)
    m = lenet5().eval()
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        f6 = m.forward_head(m.forward_features(x), pre_logits=True)  # (4, 84)
        w = m.output.prototypes  # (10, 84)
        # ||x - w||^2 expanded, independently of the model's broadcast difference.
        y = (f6 * f6).sum(1, keepdim=True) - 2 * f6 @ w.T + (w * w).sum(1)[None, :]
        torch.testing.assert_close(m(x), -y, atol=1e-4, rtol=1e-5)
        assert (m(x) <= 0).all()


def test_digit_prototypes_are_distinct_pm1_7x12_bitmaps():
    p = lenet5().output.prototypes
    assert p.shape == (10, 84)
    assert torch.equal(p, digit_prototypes())
    assert set(p.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(r) for r in p.tolist()}) == 10
    hamming = ((p[:, None, :] != p[None, :, :]).sum(-1) + 100 * torch.eye(10, dtype=torch.long)).min()
    assert hamming >= 8  # well separated codes
    bitmaps = p.view(10, 12, 7)  # 12 rows of 7 pixels each
    # Read as 12x7, the digits 0 and 8 are left-right symmetric and 7 has a full top bar.
    for d in (0, 8):
        assert torch.equal(bitmaps[d], bitmaps[d].flip(-1)), d
    assert (bitmaps[7][1] == 1).all()
    assert not torch.equal(bitmaps[1], bitmaps[1].flip(-1))


def test_other_class_counts_get_a_fixed_random_pm1_code():
    p7 = lenet5(num_classes=7).output.prototypes
    assert p7.shape == (7, 84)
    assert set(p7.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(r) for r in p7.tolist()}) == 7
    assert torch.equal(p7, lenet5(num_classes=7).output.prototypes)  # deterministic
    assert torch.equal(random_prototypes(20)[:7], p7)  # a prefix of the longer code
    assert lenet5(num_classes=7)(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    assert abs(p7.mean().item()) < 0.2  # about as many +1 as -1


def test_lenet5_init_follows_the_paper():
    """U(-2.4/F, 2.4/F) with F the fan-in of the unit (75/100/150 in C3)."""
    torch.manual_seed(0)
    m = lenet5()
    f = m.features
    cases = [
        (f.c1, 25), (f.c3.groups["in3"], 75), (f.c3.groups["in4"], 100), (f.c3.groups["in6"], 150),
        (f.c5, 400), (m.f6, 120), (f.s2, 4), (f.s4, 4),
    ]
    for layer, fan_in in cases:
        bound = 2.4 / fan_in
        for p in layer.parameters():
            assert p.abs().max() <= bound + 1e-7
        if layer.weight.numel() >= 150:  # large enough to fill the range
            assert layer.weight.abs().max() > 0.9 * bound
            assert layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.15)


def test_lenet5_needs_32x32_and_28x28_names_c5():
    m = zoo.create_model("lenet5")
    with pytest.raises(zoo.InputTooSmallError) as err:
        zoo.check_input(m, (1, 28, 28))  # 28 -> 24 -> 12 -> 8 -> 4, and C5's 5x5 kernel does not fit
    msg = str(err.value)
    assert "'features.c5'" in msg
    assert "(4 + 2*0 - 1*(5-1) - 1)/1 + 1 = 0" in msg
    with pytest.raises(ValueError, match=r"C5 must be 1x1.*2x2"):
        m(torch.zeros(1, 1, 36, 36))


def test_lenet5_is_a_32px_network_its_only_layout():
    for name in ("lenet5", "lenet5_modern"):
        assert zoo.create_model(name, small_input=True).num_features == 84
        with pytest.raises(ValueError, match=rf"'{name}'.*small_input=True.*small_input=False"):
            zoo.create_model(name, small_input=False)
        with pytest.raises(TypeError, match="small_input"):
            zoo.model_info(name).builder(small_input="yes")


def test_lenet5_dropout_sits_before_the_rbf_layer():
    m = lenet5(dropout=0.5)
    assert isinstance(m.dropout, nn.Dropout) and m.dropout.p == 0.5
    assert isinstance(lenet5().dropout, nn.Identity)  # the paper has none
    feats = m.forward_features(torch.randn(4, 1, 32, 32)).detach()
    m.eval()
    f6 = m.forward_head(feats, pre_logits=True)
    m.train()
    dropped = m.forward_head(feats, pre_logits=True)
    kept = dropped != 0
    assert not kept.all()
    torch.testing.assert_close(dropped[kept], 2 * f6[kept])


def test_reset_classifier_replaces_the_rbf_by_a_linear_layer():
    """The RBF prototypes are the ten digit bitmaps: another class count gets a trainable Linear(84, k)."""
    torch.manual_seed(0)
    m = lenet5().eval()
    x = torch.randn(3, 1, 32, 32)
    assert m.get_classifier() is m.output and isinstance(m.output, EuclideanRBF)
    f6 = m.forward_head(m.forward_features(x), pre_logits=True)
    m.reset_classifier(7)
    assert isinstance(m.get_classifier(), nn.Linear) and m.output.weight.shape == (7, 84)
    assert m.num_classes == 7 and m.output.weight.abs().max() <= 2.4 / 84  # the paper's U(-2.4/F, 2.4/F)
    torch.testing.assert_close(m(x), m.output(f6))  # plain logits, not minus a penalty
    m.reset_classifier(0)
    assert isinstance(m.get_classifier(), nn.Identity)
    torch.testing.assert_close(m(x), f6)  # (3, 84): F6
    m.reset_classifier(10)  # the paper's head again: the digit bitmaps
    assert isinstance(m.output, EuclideanRBF) and torch.equal(m.output.prototypes, digit_prototypes())
    assert "output.prototypes" in m.state_dict() and m.num_classes == 10
    assert (m(x) <= 0).all()  # minus the penalties again
    seven = lenet5(num_classes=7)  # built for 7 classes: the seeded random code, kept until reset
    assert isinstance(seven.output, EuclideanRBF)
    seven.reset_classifier(10)
    assert torch.equal(seven.output.prototypes, digit_prototypes())
    modern = lenet5_modern()
    modern.reset_classifier(10)
    assert isinstance(modern.output, nn.Linear) and modern.output.bias.abs().max() == 0  # He init, zero bias


def test_unknown_options_raise():
    for builder in (lenet5, lenet5_modern):
        with pytest.raises(ValueError, match=r"conv_impl.*native, reference"):
            builder(conv_impl="cuda")
    with pytest.raises(ValueError, match="unknown activation"):
        lenet5_modern(activation="swishy")


# ----------------------------------------------------------------------------- lenet5_modern


@pytest.mark.parametrize("activation, extra", [
    ("relu", 0), ("leaky_relu", 0), ("prelu", 6 + 16 + 120 + 84), ("sigmoid", 0), ("tanh", 0),
])
def test_lenet5_modern_activations(activation, extra):
    torch.manual_seed(0)
    m = zoo.create_model("lenet5_modern", activation=activation)
    f = m.features
    assert (_count(f.c1), _count(f.c3), _count(f.c5), _count(m.f6), _count(m.output)) == (
        156, 2416, 48120, 10164, 850)
    assert zoo.count_params(m) == 61_706 + extra
    assert isinstance(f.s2, nn.MaxPool2d) and isinstance(f.c3, nn.Conv2d) and f.c3.groups == 1
    assert isinstance(m.output, nn.Linear)
    expected_type = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "prelu": nn.PReLU,
                     "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[activation]
    assert sum(isinstance(a, expected_type) for a in m.modules()) == 4  # after C1, C3, C5, F6
    x = torch.randn(2, 1, 32, 32)
    out = m(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_lenet5_modern_dropout():
    m = lenet5_modern(dropout=0.5)
    assert isinstance(m.dropout, nn.Dropout) and m.dropout.p == 0.5
    x = torch.randn(4, 1, 32, 32)
    m.eval()
    torch.testing.assert_close(m(x), m(x))
    m.train()
    torch.manual_seed(0)
    a = m(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, m(x))
    assert isinstance(lenet5_modern().dropout, nn.Identity)


# ----------------------------------------------------------------------------- conv_impl


def test_conv_impls_share_parameters():
    for builder in (lenet5, lenet5_modern):
        native, ref = builder(), builder(conv_impl="reference")
        assert native.state_dict().keys() == ref.state_dict().keys()
        ref.load_state_dict(native.state_dict())
        convs = [mod for mod in ref.modules() if hasattr(mod, "conv_impl") and not isinstance(mod, type(ref))]
        assert convs and all(mod.conv_impl == "reference" for mod in convs)


_HAS_REF = all(hasattr(zoo.ops, op) for op in ("conv2d", "max_pool2d", "avg_pool2d"))


@pytest.mark.skipif(not _HAS_REF, reason="zoo.ops.conv2d / max_pool2d / avg_pool2d are not available")
@pytest.mark.parametrize("builder", [lenet5, lenet5_modern])
def test_reference_path_equals_native(builder):
    torch.manual_seed(0)
    native = builder()
    ref = builder(conv_impl="reference")
    ref.load_state_dict(native.state_dict())
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(ref(x), native(x), atol=1e-4, rtol=1e-4)
    ref(x).sum().backward()
    native(x).sum().backward()
    for (name, p), q in zip(native.named_parameters(), ref.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-4, rtol=1e-3, msg=name)


# ----------------------------------------------------------------------------- training


def test_lenet5_learns_sklearn_digits():
    """100 Adam steps on 512 real digits (8x8 -> 32x32): loss falls, held-out accuracy >> 10%."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    x = x * 1.275 - 0.1  # the paper's scaling: background -0.1, ink 1.175
    y = torch.tensor(digits.target)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(y), generator=gen)
    train, held_out = perm[:512], perm[512:812]

    model = zoo.create_model("lenet5")
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def evaluate(idx: torch.Tensor) -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            out = model(x[idx])
        model.train()
        return F.cross_entropy(out, y[idx]).item(), (out.argmax(1) == y[idx]).float().mean().item()

    loss0, _ = evaluate(train)
    protos = model.output.prototypes.clone()
    for _ in range(100):
        b = train[torch.randint(0, len(train), (32,), generator=gen)]
        loss = F.cross_entropy(model(x[b]), y[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss1, train_acc = evaluate(train)
    _, test_acc = evaluate(held_out)
    assert loss1 < 0.4 * loss0, (loss0, loss1)
    assert train_acc > 0.8 and test_acc > 0.7, (train_acc, test_acc)
    assert torch.equal(model.output.prototypes, protos)  # fixed, not learned
