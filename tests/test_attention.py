"""Attention, positional encodings and encoder blocks, checked against the formulas and torch.nn."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.layers.attention import (
    AdditiveAttention,
    MultiHeadAttention,
    attention_weights,
    masked_softmax,
    scaled_dot_product_attention,
)
from zoo.layers.transformer import (
    EncoderBlock,
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
    TransformerEncoder,
    resample_grid_positions,
    sinusoidal_table,
)


# ----------------------------------------------------------------------------- positional encodings

@pytest.mark.parametrize("dim", [16, 7])
def test_sinusoidal_table_follows_the_formula(dim):
    n = 60
    pe = sinusoidal_table(n, dim)
    assert pe.shape == (n, dim) and pe.dtype == torch.float32
    ref = torch.empty(n, dim, dtype=torch.float64)
    for pos in range(n):
        for c in range(dim):
            i = c // 2
            angle = pos / 10000 ** (2 * i / dim)
            ref[pos, c] = math.sin(angle) if c % 2 == 0 else math.cos(angle)
    torch.testing.assert_close(pe.double(), ref, atol=1e-6, rtol=0)
    # position 0 is (0, 1, 0, 1, ...); the last pair of a large-d table varies slowest
    assert torch.equal(pe[0, 0::2], torch.zeros_like(pe[0, 0::2]))
    assert torch.equal(pe[0, 1::2], torch.ones_like(pe[0, 1::2]))


def test_sinusoidal_shift_is_a_rotation():
    """PE(pos + k) is a fixed linear (rotation) map of PE(pos), the property §3.5 of Vaswani et al. cites."""
    d, k = 8, 5
    pe = sinusoidal_table(40, d).double()
    for i in range(d // 2):
        w = 1.0 / 10000 ** (2 * i / d)
        rot = torch.tensor([[math.cos(k * w), -math.sin(k * w)], [math.sin(k * w), math.cos(k * w)]],
                           dtype=torch.float64)
        pair = pe[:, 2 * i: 2 * i + 2]  # (N, 2) = (sin, cos)
        torch.testing.assert_close(pair[:-k] @ rot, pair[k:], atol=1e-6, rtol=0)


def test_positional_encoding_modules_add_to_tokens():
    x = torch.randn(2, 10, 12)
    sin = SinusoidalPositionalEncoding(12, max_len=20)
    torch.testing.assert_close(sin(x), x + sinusoidal_table(10, 12)[None])
    assert "pe" not in sin.state_dict()  # fixed, recomputed rather than stored
    learned = LearnedPositionalEncoding(10, 12)
    assert learned.pe.requires_grad and learned.pe.shape == (1, 10, 12)
    assert 0.015 < learned.pe.std().item() < 0.025  # N(0, 0.02²)
    torch.testing.assert_close(learned(x), x + learned.pe)
    with pytest.raises(ValueError, match="longer"):
        learned(torch.randn(1, 11, 12))


def test_resample_grid_positions_keeps_class_token_and_layout():
    d = 6
    rows = torch.arange(4.0)[:, None, None].expand(4, 5, d)  # value = row index, constant along rows
    pe = torch.cat([torch.full((1, d), -7.0), rows.reshape(20, d)])[None]  # (1, 1 + 4*5, D)
    out = resample_grid_positions(pe, (4, 5), (8, 3))
    assert out.shape == (1, 1 + 24, d)
    assert torch.equal(out[:, 0], pe[:, 0])  # class token untouched
    grid = out[0, 1:].reshape(8, 3, d)
    torch.testing.assert_close(grid, grid[:, :1].expand(8, 3, d))  # still constant along each row
    assert (grid[1:, 0, 0] >= grid[:-1, 0, 0] - 1e-6).all()  # and increasing down the columns
    assert resample_grid_positions(pe, (4, 5), (4, 5)) is pe


# ----------------------------------------------------------------------------- scaled dot-product

def _qkv(b=2, h=3, nq=5, nk=7, d=8, dv=6):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(b, h, nq, d, generator=g), torch.randn(b, h, nk, d, generator=g),
            torch.randn(b, h, nk, dv, generator=g))


def test_math_path_is_the_formula():
    q, k, v = _qkv()
    ref = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, impl="math"), ref)
    w = attention_weights(q, k)
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "causal", "bool+causal", "empty_row"])
def test_math_and_fused_paths_agree(mask_kind):
    q, k, v = _qkv(nq=6, nk=6)
    mask, causal = None, False
    if mask_kind in ("bool", "bool+causal", "empty_row"):
        mask = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(1)) > 0.3
        mask[..., 0] = True  # at least one key per row
        if mask_kind == "empty_row":
            mask[1, 0, 2] = False  # query 2 of sample 1 may see no key at all
    if mask_kind == "float":
        mask = torch.randn(6, 6)
    causal = "causal" in mask_kind
    fused = scaled_dot_product_attention(q, k, v, mask, is_causal=causal, impl="fused")
    math_ = scaled_dot_product_attention(q, k, v, mask, is_causal=causal, impl="math")
    torch.testing.assert_close(math_, fused, atol=1e-5, rtol=1e-5)
    if mask_kind == "empty_row":
        assert torch.equal(math_[1, :, 2], torch.zeros_like(math_[1, :, 2]))
    if mask_kind == "bool":  # masked keys get exactly zero weight
        w = attention_weights(q, k, mask)
        assert torch.equal(w.masked_select(~mask.expand_as(w)), torch.zeros(int((~mask.expand_as(w)).sum())))


def test_masked_softmax_rows():
    s = torch.randn(3, 4)
    keep = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    w = masked_softmax(s, keep)
    torch.testing.assert_close(w[0, :2], torch.softmax(s[0, :2], 0))
    assert torch.equal(w[0, 2:], torch.zeros(2)) and torch.equal(w[1], torch.zeros(4))
    torch.testing.assert_close(w[2], torch.softmax(s[2], 0))


def test_fused_attention_macs_are_counted_on_cpu():
    mha = MultiHeadAttention(32, 4)
    macs_cpu = zoo.count_macs(mha, (10, 32))
    macs_math = zoo.count_macs(MultiHeadAttention(32, 4, impl="math"), (10, 32))
    expected = 4 * 10 * 32 * 32 + 2 * 10 * 10 * 32  # four projections + QKᵀ and (weights)V
    assert macs_cpu == macs_math == expected


# ----------------------------------------------------------------------------- multi-head attention

def _pair(d=16, h=4, **kw):
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(d, h, batch_first=True, **kw).eval()
    with torch.no_grad():  # non-zero biases, so the bias mapping is tested too
        ref.in_proj_bias.normal_()
        ref.out_proj.bias.normal_()
    return ref


@pytest.mark.parametrize("impl", ["fused", "math"])
@pytest.mark.parametrize("padding", [False, True])
def test_multihead_equals_torch(impl, padding):
    ref = _pair()
    mha = MultiHeadAttention(16, 4, impl=impl).eval()
    mha.load_torch_state_dict(ref.state_dict())
    q, kv = torch.randn(3, 5, 16), torch.randn(3, 9, 16)
    kpm = None
    if padding:
        kpm = torch.zeros(3, 9, dtype=torch.bool)
        kpm[0, 6:] = True
        kpm[2, 1:] = True
    with torch.no_grad():
        for query, key in ((q, q[:, :5]), (q, kv)):  # self- and cross-attention
            mask = None if kpm is None else kpm[:, : key.shape[1]]
            expected, expected_w = ref(query, key, key, key_padding_mask=mask, need_weights=True)
            out, w = mha(query, key, key, key_padding_mask=mask, need_weights=True)
            torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(w.mean(1), expected_w, atol=1e-5, rtol=1e-5)  # torch averages heads
            torch.testing.assert_close(mha(query, key, key, key_padding_mask=mask), expected,
                                       atol=1e-5, rtol=1e-5)


def test_multihead_equals_torch_with_attn_mask_and_kdim():
    ref = _pair(kdim=10, vdim=12)
    mha = MultiHeadAttention(16, 4, kdim=10, vdim=12).eval()
    mha.load_torch_state_dict(ref.state_dict())
    q, k, v = torch.randn(2, 5, 16), torch.randn(2, 7, 10), torch.randn(2, 7, 12)
    am = torch.rand(5, 7) > 0.6
    am[:, 0] = False
    kpm = torch.zeros(2, 7, dtype=torch.bool)
    kpm[1, 4:] = True
    with torch.no_grad():
        expected = ref(q, k, v, attn_mask=am, key_padding_mask=kpm, need_weights=False)[0]
        torch.testing.assert_close(mha(q, k, v, attn_mask=am, key_padding_mask=kpm), expected,
                                   atol=1e-5, rtol=1e-5)
        fmask = torch.randn(5, 7)  # float masks are added to the logits
        fkpm = torch.zeros(2, 7).masked_fill(kpm, float("-inf"))
        expected = ref(q, k, v, attn_mask=fmask, key_padding_mask=fkpm, need_weights=False)[0]
        torch.testing.assert_close(mha(q, k, v, attn_mask=fmask, key_padding_mask=fkpm), expected,
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(mha(q, k, v, attn_mask=fmask, key_padding_mask=kpm), expected,
                                   atol=1e-5, rtol=1e-5)  # mixed bool / float masks


def test_multihead_padding_is_ignored():
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 6, 16)
    kpm = torch.zeros(2, 6, dtype=torch.bool)
    kpm[:, 4:] = True
    y = x.clone()
    y[:, 4:] = torch.randn(2, 2, 16) * 100  # change only the padded tokens
    with torch.no_grad():
        a = mha(x, key_padding_mask=kpm)
        b = mha(y, key_padding_mask=kpm)
    torch.testing.assert_close(a[:, :4], b[:, :4])


def test_multihead_rejects_bad_options():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="score"):
        MultiHeadAttention(8, 2, score="cosine")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- additive attention

def _additive(h=2, d=4, a=5):
    torch.manual_seed(0)
    add = AdditiveAttention(h, d, a)
    with torch.no_grad():
        for p in add.parameters():
            p.normal_()
    return add


def test_additive_scores_are_the_formula():
    add = _additive()
    q, k = torch.randn(2, 2, 3, 4), torch.randn(2, 2, 6, 4)
    s = add.scores(q, k)
    assert s.shape == (2, 2, 3, 6)
    b, h, i, j = 1, 1, 2, 4
    expected = add.v[h] @ torch.tanh(q[b, h, i] @ add.w_q[h] + k[b, h, j] @ add.w_k[h])
    torch.testing.assert_close(s[b, h, i, j], expected)


def test_additive_attention_masks_and_shapes():
    add = _additive()
    q, k, v = torch.randn(2, 2, 3, 4), torch.randn(2, 2, 6, 4), torch.randn(2, 2, 6, 7)
    keep = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    keep[0, ..., 3:] = False
    w = add.weights(q, k, keep)
    assert w.shape == (2, 2, 3, 6)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 3))
    assert torch.equal(w[0, ..., 3:], torch.zeros(2, 3, 3))
    out = add(q, k, v, keep)
    assert out.shape == (2, 2, 3, 7)
    v2 = v.clone()
    v2[0, :, 3:] = 1e3  # masked values do not leak
    torch.testing.assert_close(add(q, k, v2, keep)[0], out[0])


def test_additive_inside_multihead():
    mha = MultiHeadAttention(16, 4, score="additive", additive_dim=8).eval()
    assert mha.additive is not None and mha.additive.w_q.shape == (4, 4, 8)
    with torch.no_grad():
        mha.additive.v.normal_()
        mha.additive.w_q.normal_()
    x = torch.randn(2, 5, 16)
    kpm = torch.tensor([[False] * 5, [False, False, True, True, True]])
    out, w = mha(x, key_padding_mask=kpm, need_weights=True)
    assert out.shape == (2, 5, 16) and w.shape == (2, 4, 5, 5)
    assert torch.equal(w[1, ..., 2:], torch.zeros(4, 5, 3))
    # Bahdanau's init (v = 0) starts from uniform attention
    fresh = MultiHeadAttention(16, 4, score="additive")
    _, w0 = fresh(x, need_weights=True)
    torch.testing.assert_close(w0, torch.full_like(w0, 1 / 5))
    # and it trains: every parameter gets a gradient
    mha.train()
    mha(x, key_padding_mask=kpm).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mha.parameters())


# ----------------------------------------------------------------------------- encoder blocks

def _torch_layer(block: EncoderBlock, d: int, h: int, mlp: int, act: str, norm_first: bool):
    ref = nn.TransformerEncoderLayer(d, h, mlp, dropout=0.0, activation=act, batch_first=True,
                                     norm_first=norm_first, layer_norm_eps=1e-6).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.3)
    sd = ref.state_dict()
    ours = MultiHeadAttention.torch_state_dict_to_zoo(sd, "self_attn.")
    ours = {k.replace("self_attn.", "attn.").replace("linear1.", "mlp.fc1.").replace("linear2.", "mlp.fc2."): v
            for k, v in ours.items()}
    block.load_state_dict(ours)
    return ref


@pytest.mark.parametrize("norm_first,act", [(True, "gelu"), (False, "relu"), (True, "relu"), (False, "gelu")])
def test_encoder_block_equals_torch_layer(norm_first, act):
    d, h, mlp = 16, 4, 32
    block = EncoderBlock(d, h, mlp, activation=act, norm_first=norm_first).eval()
    ref = _torch_layer(block, d, h, mlp, act, norm_first)
    x = torch.randn(2, 6, d)
    kpm = torch.zeros(2, 6, dtype=torch.bool)
    kpm[1, 4:] = True
    with torch.no_grad():
        torch.testing.assert_close(block(x), ref(x), atol=1e-5, rtol=1e-5)
        out, expected = block(x, key_padding_mask=kpm), ref(x, src_key_padding_mask=kpm)
        torch.testing.assert_close(out[0], expected[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[1, :4], expected[1, :4], atol=1e-5, rtol=1e-5)


def test_pre_and_post_norm_outputs():
    torch.manual_seed(0)
    x = 3 + 5 * torch.randn(2, 6, 16)
    post = EncoderBlock(16, 4, 32, norm_first=False).eval()
    pre = EncoderBlock(16, 4, 32, norm_first=True).eval()
    pre.load_state_dict(post.state_dict())
    with torch.no_grad():
        yp, yq = post(x), pre(x)
    # post-norm ends in a LayerNorm (unit affine at init): every token has mean 0, std 1
    torch.testing.assert_close(yp.mean(-1), torch.zeros(2, 6), atol=1e-5, rtol=0)
    torch.testing.assert_close(yp.std(-1, unbiased=False), torch.ones(2, 6), atol=1e-3, rtol=0)
    # pre-norm keeps the residual stream: the input's offset and scale survive
    assert yq.mean().item() > 2 and yq.std().item() > 3
    # with both sub-layers' output projections zeroed, a pre-norm block is the identity
    # (x + 0 + 0), a post-norm block still normalises (LN(LN(x + 0) + 0))
    with torch.no_grad():
        for blk in (pre, post):
            for lin in (blk.attn.out_proj, blk.mlp.fc2):
                lin.weight.zero_()
                lin.bias.zero_()
        torch.testing.assert_close(pre(x), x)
        torch.testing.assert_close(post(x), nn.functional.layer_norm(x, (16,), eps=1e-6), atol=1e-5, rtol=1e-5)


def test_dropout_placement_and_eval():
    torch.manual_seed(0)
    block = EncoderBlock(16, 4, 32, dropout=0.5)
    n_drop = sum(isinstance(m, nn.Dropout) for m in block.modules())
    assert n_drop == 3  # after attention, inside the MLP, after the MLP
    x = torch.randn(2, 6, 16)
    assert not torch.allclose(block(x), block(x))
    block.eval()
    no_drop = EncoderBlock(16, 4, 32, dropout=0.0).eval()
    no_drop.load_state_dict(block.state_dict())
    torch.testing.assert_close(block(x), no_drop(x))


@pytest.mark.parametrize("norm_first", [True, False])
def test_transformer_encoder_stack(norm_first):
    torch.manual_seed(0)
    d, h, mlp, depth = 16, 4, 32, 3
    enc = TransformerEncoder(depth, d, h, mlp, norm_first=norm_first, activation="relu").eval()
    assert len(enc.blocks) == depth
    assert isinstance(enc.norm, nn.LayerNorm) == norm_first  # final LN only for pre-norm stacks
    x = torch.randn(2, 5, d)
    y = x
    with torch.no_grad():
        for blk in enc.blocks:
            y = blk(y)
        torch.testing.assert_close(enc(x), enc.norm(y))
    # the same stack in torch.nn
    layer = nn.TransformerEncoderLayer(d, h, mlp, dropout=0.0, activation="relu", batch_first=True,
                                       norm_first=norm_first, layer_norm_eps=1e-6)
    ref = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(d, eps=1e-6) if norm_first else None,
                                enable_nested_tensor=False).eval()
    sd = {}
    for i in range(depth):
        blk = MultiHeadAttention.torch_state_dict_to_zoo(ref.layers[i].state_dict(), "self_attn.")
        for k, v in blk.items():
            k = k.replace("self_attn.", "attn.").replace("linear1.", "mlp.fc1.").replace("linear2.", "mlp.fc2.")
            sd[f"blocks.{i}.{k}"] = v
    if norm_first:
        sd.update({f"norm.{k}": v for k, v in ref.norm.state_dict().items()})
    enc.load_state_dict(sd)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), ref(x), atol=1e-5, rtol=1e-5)
