"""Gated-conv (GLU) networks: shapes, the TCN's causality and receptive field, and that both learn."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.layers.conv import GatedConv2d, GatedResidualBlock1d, GatedResidualBlock2d
from zoo.models.gated import GatedTCN


@pytest.mark.parametrize("size,blocks", [(28, 3), (32, 4), (16, 3), (64, 5)])
def test_tcn_dilations_double_until_the_receptive_field_covers_every_row(size, blocks):
    model = zoo.create_model("gated_tcn", num_classes=10, image_size=size)
    assert model.dilations == [2 ** i for i in range(blocks)]
    assert [b.layers[0][1].dilation for b in model.blocks] == model.dilations
    assert all(b.layers[0][1].causal for b in model.blocks)
    assert model.receptive_field >= size
    fewer = GatedTCN._field(3, 2, blocks - 1)  # one block less would not reach the first row
    assert fewer < size


@pytest.mark.parametrize("size", [28, 32])
def test_tcn_last_step_sees_every_row(size):
    torch.manual_seed(0)
    model = zoo.create_model("gated_tcn", num_classes=10, image_size=size).eval()
    x = torch.randn(2, 1, size, size, requires_grad=True)
    model(x)[:, 3].sum().backward()
    per_row = x.grad.abs().sum((0, 1, 3))  # (H,)
    assert bool((per_row > 0).all()), per_row


def test_tcn_is_causal_over_rows():
    """Features at step t do not move when rows after t change; the logits come from the last step."""
    torch.manual_seed(0)
    model = zoo.create_model("gated_tcn", num_classes=10, image_size=28)
    model.train()  # LayerNorm per step: causal in training mode too
    x = torch.randn(2, 1, 28, 28)
    x2 = x.clone()
    x2[:, :, 15:] = torch.randn(2, 1, 13, 28)
    f, f2 = model.forward_features(x), model.forward_features(x2)
    assert f.shape == (2, 64, 28)
    assert torch.equal(f[..., :15], f2[..., :15])
    assert not torch.allclose(f[..., 15], f2[..., 15])
    assert torch.equal(model.forward_head(f), model.fc(model.norm(f[:, :, -1])))


def test_tcn_reads_rows_as_steps_with_channels_times_width_features():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)  # (B, C, H, W)
    seq = GatedTCN.to_sequence(x)
    assert seq.shape == (2, 15, 4)
    assert torch.equal(seq[1, :, 2], x[1, :, 2, :].reshape(-1))  # step 2 = row 2 of every channel
    model = zoo.create_model("gated_tcn", num_classes=4, in_chans=3, image_size=(4, 5))
    assert model(x).shape == (2, 4)
    with pytest.raises(ValueError, match="image_size"):
        model(torch.randn(2, 3, 4, 6))


def test_gated_cnn_layout_and_shapes():
    model = zoo.create_model("gated_cnn", num_classes=10)
    assert isinstance(model.stem[0], GatedConv2d) and model.stem[0].conv.stride == (1, 1)
    blocks = [m for m in model.modules() if isinstance(m, GatedResidualBlock2d)]
    assert len(blocks) == 2
    assert model.forward_features(torch.randn(2, 1, 28, 28)).shape == (2, 32, 7, 7)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    big = zoo.create_model("gated_cnn", num_classes=5, in_chans=3, small_input=False)
    assert big.forward_features(torch.randn(2, 3, 64, 64)).shape == (2, 32, 4, 4)  # 64 / 4 / 2 / 2


def test_gated_cnn_takes_the_architecture_as_data():
    model = zoo.create_model("gated_cnn", num_classes=3, widths=[8, 12, 16, 24], depths=[1, 0, 2, 1])
    assert model.forward_features(torch.randn(2, 1, 32, 32)).shape == (2, 24, 4, 4)
    assert sum(isinstance(m, GatedResidualBlock2d) for m in model.modules()) == 4
    with pytest.raises(ValueError, match="one entry per stage"):
        zoo.create_model("gated_cnn", widths=[8, 16], depths=[1])


def test_gated_tcn_blocks_are_gated_residual_1d():
    model = zoo.create_model("gated_tcn", num_classes=10)
    assert all(isinstance(b, GatedResidualBlock1d) for b in model.blocks)


@pytest.mark.parametrize("name", ["gated_cnn", "gated_tcn"])
def test_learns_a_small_batch(name):
    """Both nets fit 16 class-coded images in 20 steps."""
    torch.manual_seed(0)
    model = zoo.create_model(name, num_classes=4, image_size=28) if name == "gated_tcn" else \
        zoo.create_model(name, num_classes=4)
    y = torch.arange(16) % 4
    x = 0.1 * torch.randn(16, 1, 28, 28)
    for i in range(16):  # class c: a bright bar at rows 3 + 6c (the TCN must remember it to the last row)
        x[i, 0, 3 + 6 * int(y[i]), 4:24] = 2.0
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(20):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    assert bool((logits.argmax(1) == y).all())  # (train mode: BN running stats still lag after 20 steps)


def test_layouts_and_keywords():
    """gated_cnn: the 28/32-px layout is its default (the registered one), False the large-image stem;
    gated_tcn has a single layout."""
    assert zoo.create_model("gated_cnn").stem[0].conv.stride == (1, 1)
    assert zoo.create_model("gated_cnn", small_input=False).stem[0].conv.stride == (2, 2)
    assert zoo.create_model("gated_tcn", small_input=True).num_features == 64
    with pytest.raises(ValueError, match=r"'gated_tcn'.*accepts only small_input=True.*got small_input=False"):
        zoo.create_model("gated_tcn", small_input=False)
    with pytest.raises(TypeError):
        GatedTCN(28, 28, 64, 3, 2, None, 10)  # num_classes is keyword-only


def test_gated_tcn_head_reads_the_last_step_and_resets():
    torch.manual_seed(0)
    model = zoo.create_model("gated_tcn", num_classes=10).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        last = model.forward_head(model.forward_features(x), pre_logits=True)
        assert last.shape == (2, 64)
        torch.testing.assert_close(model.fc(last), model(x))
        model.reset_classifier(4)
        assert model(x).shape == (2, 4) and model.num_classes == 4 and model.fc.bias.abs().max() == 0
