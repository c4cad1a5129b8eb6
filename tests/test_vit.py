"""Vision Transformer: the paper's sizes, torchvision equality, position interpolation, small ViTs."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision

import zoo
from zoo.layers.transformer import LearnedPositionalEncoding, resample_grid_positions, sinusoidal_table
from zoo.models.vit import VisionTransformer, vit_b_16, vit_tiny_patch4


def test_vit_b_16_is_table_1_base():
    with torch.device("meta"):
        m = zoo.create_model("vit_b_16")
    assert zoo.count_params(m) == 86_567_656
    assert m.patch_embed.kernel_size == (16, 16) and m.patch_embed.stride == (16, 16)
    assert len(m.encoder.blocks) == 12
    blk = m.encoder.blocks[0]
    assert blk.attn.num_heads == 12 and blk.attn.embed_dim == 768
    assert blk.mlp.fc1.out_features == 3072 and isinstance(blk.mlp.act, nn.GELU)
    assert m.pos_embed.pe.shape == (1, 197, 768)  # 14x14 patches + class token
    assert m.cls_token.shape == (1, 1, 768)


def _randomise_small_tensors(model: nn.Module) -> None:
    """Non-trivial LayerNorm / bias / token / position / head values (big matrices keep their init)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() <= 1 or "pos_embedding" in name or "class_token" in name or "heads" in name:
                is_ln_weight = ".ln" in name and name.endswith("weight")
                p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if is_ln_weight else 0.0))


def test_vit_b_16_matches_torchvision():
    torch.manual_seed(0)
    tv = torchvision.models.vit_b_16()
    _randomise_small_tensors(tv)
    tv.eval()
    ours = zoo.from_torchvision("vit_b_16", tv.state_dict()).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = tv(x)
        out = ours(x)
    assert expected.abs().max() > 1e-2  # a non-trivial output
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["vit_b_32", "vit_l_16"])
def test_torchvision_keys_fit_exactly(name):
    """Every torchvision tensor finds a place of the same shape (strict load, on the meta device)."""
    with torch.device("meta"):
        tv = getattr(torchvision.models, name)()
        sd = tv.state_dict()
        ours = zoo.from_torchvision(name, sd)
        assert zoo.count_params(ours) == sum(v.numel() for v in sd.values())
        assert zoo.count_params(ours) == zoo.model_info(name).params
        other = torchvision.models.vit_b_16() if name != "vit_b_16" else torchvision.models.vit_l_16()
        with pytest.raises(RuntimeError):  # another architecture's weights are refused
            zoo.from_torchvision(name, other.state_dict())


def test_torchvision_mapping_small_numeric():
    """The same remapping, numerically, on a small torchvision ViT with a 4-px patch (b_16's code path)."""
    torch.manual_seed(0)
    tv = torchvision.models.VisionTransformer(image_size=32, patch_size=4, num_layers=2, num_heads=4,
                                              hidden_dim=32, mlp_dim=64, num_classes=5)
    _randomise_small_tensors(tv)
    tv.eval()
    ours = VisionTransformer(image_size=32, patch_size=4, dim=32, depth=2, num_heads=4, mlp_dim=64, num_classes=5)
    from zoo.models.vit import _torchvision_keys

    ours.load_state_dict(_torchvision_keys(tv.state_dict()))
    ours.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), atol=1e-5, rtol=1e-5)


def test_position_embedding_is_interpolated_for_other_sizes():
    torch.manual_seed(0)
    m = vit_tiny_patch4(num_classes=5).eval()  # built for 32 px: 8x8 grid + class token
    nn.init.normal_(m.head.weight)
    assert m.pos_embed.pe.shape == (1, 65, 64)
    table = m.positions((12, 12))
    assert table.shape == (1, 145, 64)
    assert torch.equal(table[:, 0], m.pos_embed.pe[:, 0])  # class token's embedding kept
    torch.testing.assert_close(table, resample_grid_positions(m.pos_embed.pe, (8, 8), (12, 12), mode="bicubic"))
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        out = m(x)
        assert out.shape == (2, 5)
        # the same as a model whose table was resampled for good
        m2 = vit_tiny_patch4(num_classes=5).eval()
        m2.load_state_dict(m.state_dict())
        m2.set_image_size(48)
        assert m2.pos_embed.pe.shape == (1, 145, 64) and isinstance(m2.pos_embed.pe, nn.Parameter)
        torch.testing.assert_close(m2(x), out)
        # the table matters: a different one changes the logits
        m2.pos_embed.pe.zero_()
        assert not torch.allclose(m2(x), out)
        # MNIST's 28 px: a 7x7 grid
        assert m(torch.randn(1, 3, 28, 28)).shape == (1, 5)


def test_sinusoidal_positions_are_a_config_choice():
    learned = vit_tiny_patch4()
    sin = vit_tiny_patch4(pos_embed="sinusoidal")
    assert isinstance(learned.pos_embed, LearnedPositionalEncoding)
    assert zoo.count_params(learned) - zoo.count_params(sin) == 65 * 64
    assert not any("pos_embed" in k for k in sin.state_dict())
    torch.testing.assert_close(sin.pos_embed.table, sinusoidal_table(65, 64)[None])
    with torch.no_grad():
        assert sin(torch.randn(2, 3, 40, 40)).shape == (2, 10)  # resampled to a 10x10 grid too


def test_small_input_layout_of_imagenet_vits():
    with torch.device("meta"):
        m = vit_b_16(small_input=True, num_classes=10)
        assert m.patch_embed.kernel_size == (4, 4) and m.pos_embed.pe.shape == (1, 65, 768)
        assert m(torch.empty(2, 3, 32, 32)).shape == (2, 10)
        mnist = vit_b_16(small_input=True, in_chans=1, image_size=28)
        assert mnist.pos_embed.pe.shape == (1, 50, 768)


def test_mean_pool_has_no_class_token():
    cls, mean = vit_tiny_patch4(), vit_tiny_patch4(pool="mean")
    assert mean.cls_token is None and mean.pos_embed.pe.shape == (1, 64, 64)
    assert zoo.count_params(cls) - zoo.count_params(mean) == 64 + 64  # token + its position
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = mean.forward_features(x)
        assert feats.shape == (2, 64, 64)
        torch.testing.assert_close(mean.forward_head(feats), mean.head(feats.mean(1)))


def test_math_attention_and_post_norm_options():
    torch.manual_seed(0)
    fused = vit_tiny_patch4().eval()
    nn.init.normal_(fused.head.weight)
    math_ = vit_tiny_patch4(impl="math").eval()
    math_.load_state_dict(fused.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(math_(x), fused(x), atol=1e-5, rtol=1e-5)
    post = vit_tiny_patch4(norm_first=False, activation="relu", score="additive")
    assert isinstance(post.encoder.norm, nn.Identity)  # post-norm blocks already end in LayerNorm
    assert post(x).shape == (2, 10)


def test_input_too_small_names_the_patch_embedding():
    m = zoo.create_model("vit_tiny_patch4")
    with pytest.raises(zoo.InputTooSmallError, match="patch_embed"):
        zoo.check_input(m, (3, 3, 3))


def test_small_vit_learns():
    """A few AdamW steps on 16 fixed 1x28x28 images drive the training loss down."""
    torch.manual_seed(0)
    m = zoo.create_model("vit_tiny_patch4", in_chans=1, image_size=28, num_classes=4)
    x, y = torch.randn(16, 1, 28, 28), torch.arange(16) % 4
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(torch.log(torch.tensor(4.0)).item(), abs=1e-4)  # zero-init head
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("name", ["vit_tiny_patch4", "vit_small_patch4"])
def test_small_vits_have_a_single_layout(name):
    with torch.device("meta"):
        assert zoo.create_model(name, small_input=True).patch_size == 4
        with pytest.raises(ValueError, match=rf"'{name}'.*accepts only small_input=True.*got small_input=False"):
            zoo.create_model(name, small_input=False)


def test_reset_classifier_attaches_a_zero_initialised_head():
    """Sec. 3.2: fine-tuning replaces the head by a zero-initialised D x K layer."""
    torch.manual_seed(0)
    m = zoo.create_model("vit_tiny_patch4").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        cls = m.forward_head(m.forward_features(x), pre_logits=True)
        torch.testing.assert_close(cls, m.forward_features(x)[:, 0])
        m.reset_classifier(0)
        torch.testing.assert_close(m(x), cls)
        m.reset_classifier(5)
        assert m.get_classifier() is m.head and m.head.weight.shape == (5, 64)
        assert not m.head.weight.any() and not m.head.bias.any() and m(x).shape == (2, 5)
