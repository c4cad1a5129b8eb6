"""Vision Transformer (ViT).

Paper: Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words: Transformers for
Image Recognition at Scale", arXiv:2010.11929. The encoder is the Transformer's
(Vaswani et al. 2017, arXiv:1706.03762) in its pre-norm form; see
:mod:`zoo.layers.transformer` and :mod:`zoo.layers.attention`.

The image ``(B, C, H, W)`` is cut into ``P x P`` patches, each patch linearly
embedded (a ``P x P`` convolution of stride ``P``), a learned class token
prepended and a position embedding added (eq. 1–4 of the paper)::

    z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos     (B, N+1, D),  N = HW / P²
    z'_l = MSA(LN(z_{l-1})) + z_{l-1}                  (B, N+1, D),  l = 1..L
    z_l  = MLP(LN(z'_l)) + z'_l                        (B, N+1, D)
    y    = LN(z_L^0)                                   (B, D)        the class token
    logits = y W_head + b                              (B, num_classes)

Variants (Table 1 of the paper; torchvision's ``vit_b_16``, ``vit_b_32``,
``vit_l_16`` have the same architecture and load with ``zoo.from_torchvision``):

=========  =====  ====  =====  =====  ====  =============  ===============
name       patch  D     depth  heads  MLP   params (1000)  MACs (224 px)
=========  =====  ====  =====  =====  ====  =============  ===============
vit_b_16   16     768   12     12     3072  86,567,656     17,563,828,224
vit_b_32   32     768   12     12     3072  88,224,232     4,409,186,304
vit_l_16   16     1024  24     16     4096  304,326,632    61,554,712,576
=========  =====  ====  =====  =====  ====  =============  ===============

Layer table of ``vit_b_16`` at its default input 3x224x224::

    patch embedding   conv 16x16 / 16, 768      (B, 768, 14, 14) -> (B, 196, 768)
    class token       concat                    (B, 197, 768)
    + E_pos, dropout  learned, 197 x 768        (B, 197, 768)
    encoder x 12      LN-MSA(12 heads)-add,     (B, 197, 768)
                      LN-MLP(3072, GELU)-add
    LayerNorm, [CLS]                            (B, 768)
    head              linear                    (B, 1000)

Small ViTs for 28/32-px images (default input 3x32x32, 10 classes; MNIST's
1x28x28 is built with ``in_chans=1, image_size=28``). Same architecture with
4x4 patches, so a 32-px image gives an 8x8 grid (65 tokens) and a 28-px one a
7x7 grid (50 tokens). These are this zoo's sizes, narrower and shallower than
timm's/DeiT's ``tiny``/``small`` (12 layers of width 192/384), so that they
train on a CPU:

================  =====  ===  =====  =====  ===  ===========  =============
name              patch  D    depth  heads  MLP  params (10)  MACs (32 px)
================  =====  ===  =====  =====  ===  ===========  =============
vit_tiny_patch4   4      64   4      4      128  142,026      10,880,128
vit_small_patch4  4      192  8      6      384  2,400,586    166,925,184
================  =====  ===  =====  =====  ===  ===========  =============

At 1x28x28 (``in_chans=1, image_size=28``) ``vit_tiny_patch4`` has 139,018
parameters and 7,884,416 MACs. MACs count the patch embedding, the q/k/v/out
projections, Q Kᵀ, (weights) V, the MLPs and the head.

Deviations from the paper, all named:

* Head: a single linear layer, the paper's fine-tuning head (and
  torchvision's default). The paper pre-trains with one extra tanh hidden
  layer ("pre-logits"), which is not built here.
* Position embedding for another input size: the paper interpolates the
  learned embedding in 2-D when fine-tuning at a higher resolution (§3.2);
  here this happens for any input whose patch grid differs from the one the
  model was built for (bicubic, ``align_corners=False``; class token's
  embedding kept), and :meth:`VisionTransformer.set_image_size` makes it
  permanent.
* ``pos_embed="sinusoidal"``: the fixed 1-D encoding of Vaswani et al. over
  the token index (class token at 0) instead of learned vectors; not in the
  ViT paper (App. D.4 compares 1-D, 2-D and relative position embeddings).
* ``pool="mean"``: no class token, the head reads the mean of the patch tokens
  (the paper's "GAP" variant, App. D.3). Default ``"cls"``.
* ``attn_dropout``: dropout on the attention weights, not in the paper, default 0.
* LayerNorm epsilon 1e-6, as the reference implementation (and torchvision).
* ``small_input=True`` on ``vit_b_16``/``vit_b_32``/``vit_l_16`` replaces the
  patch size by 4 and the default image size by 32 (widths and depths kept),
  giving an 8x8 patch grid on 32-px images instead of 2x2 or 1x1.
  ``vit_tiny_patch4`` and ``vit_small_patch4`` have a single layout, built for
  28/32-px images: they take ``small_input=True`` (the default) only.

Interface: ``forward_features`` returns the encoded tokens ``(B, P + N, D)``,
``forward_head(x, pre_logits=True)`` the pooled ``(B, D)`` input of the head (the class
token, or the token mean), ``num_features`` is ``D``, ``get_classifier()`` is ``head``
and ``reset_classifier(k)`` attaches a new zero-initialised ``D x k`` head, as the paper
does for fine-tuning (§3.2). ``dropout`` is the paper's (App. B.1); there is no dropout
between the pooled token and the head.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

import torch
import torch.nn as nn
from torch import Tensor

from zoo._registry import Paper, register_model
from zoo.interop import register_torchvision
from zoo.layers.attention import Impl, Score
from zoo.layers.head import new_classifier
from zoo.layers.transformer import (
    Activation,
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
    TransformerEncoder,
    resample_grid,
)
from zoo.models._common import SMALL_IMAGE_SIZE, check_small_input, default_image_size, require_layout
from zoo.ops.shape import conv_output_size

__all__ = ["VisionTransformer", "PatchSizeError", "vit_b_16", "vit_b_32", "vit_l_16", "vit_tiny_patch4",
           "vit_small_patch4"]

PAPER = Paper(
    title="An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
    authors="Dosovitskiy et al.",
    year=2020,
    arxiv="2010.11929",
)

class PatchSizeError(ValueError):
    """An image side (or ``image_size``) that is not a multiple of the patch size."""


def _nearest_multiples(n: int, p: int) -> list[int]:
    """The multiples of ``p`` either side of ``n`` (``[28, 32]`` for 30 and 4; ``[p]`` below ``p``)."""
    below, above = n // p * p, (n // p + 1) * p
    return [below, above] if below >= p else [above]


PosEmbed = Literal["learned", "sinusoidal"]
Pool = Literal["cls", "mean"]


class VisionTransformer(nn.Module):
    """ViT: patch embedding, class token, position embedding, Transformer encoder, LN, linear head.

    Args:
        image_size: side of the (square) image the position table is built for, a multiple of
            ``patch_size``; other sizes work through interpolation of the table. Inputs must have
            a height and width that are multiples of ``patch_size`` too (else :class:`PatchSizeError`).
        patch_size: ``P``; the patch embedding is a ``P x P`` convolution of stride ``P``.
        dim: model width ``D``.
        depth: number of encoder blocks ``L``.
        num_heads: attention heads.
        mlp_dim: MLP hidden width.
        num_classes: classes of the linear head.
        in_chans: image channels ``C``.
        dropout: dropout after adding the position embedding and after every
            dense layer except q/k/v (paper, App. B.1).
        attn_dropout: dropout on the attention weights.
        pos_embed: ``"learned"`` (paper) or ``"sinusoidal"``.
        pool: ``"cls"`` (class token, paper) or ``"mean"`` (no class token, mean of patch tokens).
        activation: MLP activation, ``"gelu"`` (paper) or ``"relu"``.
        norm_first: pre-norm blocks (paper); ``False`` for post-norm (then no extra final LayerNorm).
        norm_eps: LayerNorm epsilon.
        score: ``"dot"`` (paper) or ``"additive"`` attention scores.
        impl: ``"fused"`` or ``"math"`` dot-product attention.
        interpolation: ``"bicubic"`` or ``"bilinear"`` resampling of the position table.
    """

    def __init__(self, *, image_size: int = 224, patch_size: int = 16, dim: int = 768, depth: int = 12,
                 num_heads: int = 12, mlp_dim: int = 3072, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.0, attn_dropout: float = 0.0, pos_embed: PosEmbed = "learned",
                 pool: Pool = "cls", activation: Activation = "gelu", norm_first: bool = True,
                 norm_eps: float = 1e-6, score: Score = "dot", impl: Impl = "fused",
                 interpolation: str = "bicubic") -> None:
        super().__init__()
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        if pos_embed not in ("learned", "sinusoidal"):
            raise ValueError(f"pos_embed must be 'learned' or 'sinusoidal', got {pos_embed!r}")
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
            raise ValueError(f"patch_size must be an int >= 1, got {patch_size!r}; e.g. patch_size=16")
        self._check_image_size(image_size, patch_size)
        self.patch_size = patch_size
        self.dim = dim
        self.pool = pool
        self.interpolation = interpolation
        self.num_prefix = 1 if pool == "cls" else 0
        self.grid = self._grid(image_size, image_size)

        self.patch_embed = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        num_positions = self.num_prefix + self.grid[0] * self.grid[1]
        self.pos_embed: LearnedPositionalEncoding | SinusoidalPositionalEncoding = (
            LearnedPositionalEncoding(num_positions, dim) if pos_embed == "learned"
            else SinusoidalPositionalEncoding(dim, max_len=num_positions))
        self.pos_drop = nn.Dropout(dropout)
        self.encoder = TransformerEncoder(depth, dim, num_heads, mlp_dim, dropout=dropout,
                                          attn_dropout=attn_dropout, activation=activation,
                                          norm_first=norm_first, norm_eps=norm_eps, score=score,
                                          impl=impl)  # final LN for pre-norm (eq. 4)
        self.num_classes = num_classes
        self.num_features = dim
        self.head = nn.Linear(dim, num_classes)
        self._init_weights()

    @staticmethod
    def _check_image_size(image_size: Any, patch_size: int) -> None:
        """Raises :class:`PatchSizeError` unless ``image_size`` is a positive int multiple of ``patch_size``."""
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise PatchSizeError(
                f"image_size must be an int, a multiple of patch_size={patch_size}, got {image_size!r}; "
                f"e.g. image_size={patch_size * max(1, 32 // patch_size)}"
            )
        if image_size % patch_size:
            good = " or ".join(f"image_size={n}" for n in _nearest_multiples(image_size, patch_size))
            raise PatchSizeError(
                f"image_size={image_size} is not a multiple of patch_size={patch_size}: the patch embedding "
                f"would drop the last {image_size % patch_size} pixel rows and columns. Use a multiple of "
                f"{patch_size}, e.g. {good}"
            )

    def _check_input(self, x: Tensor) -> None:
        """Raises :class:`PatchSizeError` for an image whose height or width is not a multiple of the patch.

        Sides smaller than one patch are left to the patch embedding (and its input-size check).
        """
        p = self.patch_size
        h, w = x.shape[-2], x.shape[-1]
        if h < p or w < p or (h % p == 0 and w % p == 0):
            return
        sides = [f"{side} {n} -> {' or '.join(map(str, _nearest_multiples(n, p)))}"
                 for side, n in (("height", h), ("width", w)) if n % p]
        raise PatchSizeError(
            f"input {h}x{w} is not a multiple of the patch size {p} in height and width "
            f"(input {tuple(x.shape)}): the {p}x{p} patch embedding would silently drop the pixels left "
            f"over. Nearest valid sizes: {'; '.join(sides)}. Resize, crop or pad the images, e.g. to "
            f"{h // p * p if h >= p else p}x{w // p * p if w >= p else p}, or build with a patch_size "
            f"that divides {h}x{w}."
        )

    def _grid(self, h: int, w: int) -> tuple[int, int]:
        p = self.patch_size
        return conv_output_size(h, p, p), conv_output_size(w, p, p)

    def _init_weights(self) -> None:
        """The ViT reference implementation's scheme (google-research/vision_transformer, also torchvision):
        patch embedding LeCun-normal (truncated, std √(1/fan_in)), class token 0, learned positions
        N(0, 0.02²), all other dense layers Glorot-uniform with MLP biases N(0, 1e-6²) and other biases 0,
        head weights and bias 0."""
        fan_in = self.patch_embed.in_channels * self.patch_size ** 2
        nn.init.trunc_normal_(self.patch_embed.weight, std=math.sqrt(1.0 / fan_in))
        nn.init.zeros_(self.patch_embed.bias)
        for name, m in self.encoder.named_modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if ".mlp." in f".{name}.":
                    nn.init.normal_(m.bias, std=1e-6)
                else:
                    nn.init.zeros_(m.bias)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def positions(self, grid: tuple[int, int]) -> Tensor:
        """The position table for a patch grid, ``(1, P + h·w, D)`` (``P`` = 1 with a class token)."""
        return resample_grid(self.pos_embed.table, self.grid[0], self.grid[1], grid[0], grid[1],
                             self.num_prefix, self.interpolation)

    @torch.no_grad()
    def set_image_size(self, image_size: int | tuple[int, int]) -> None:
        """Resamples the position table to a new input size for good (e.g. before fine-tuning at it)."""
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        self._check_image_size(h, self.patch_size)
        self._check_image_size(w, self.patch_size)
        grid = self._grid(h, w)
        table = self.positions(grid)
        if isinstance(self.pos_embed, LearnedPositionalEncoding):
            self.pos_embed.pe = nn.Parameter(table.clone())
        else:
            self.pos_embed.pe = table.clone()
            self.pos_embed.max_len = table.shape[1]
        self.grid = grid

    def forward_features(self, x: Tensor) -> Tensor:
        """Image ``(B, C, H, W)`` -> encoded tokens ``(B, P + N, D)`` (final LayerNorm applied).

        Raises:
            PatchSizeError: if ``H`` or ``W`` is not a multiple of the patch size (under
                ``torch.jit.script``, a shorter error with the same cause).
        """
        if torch.jit.is_scripting():
            p, h, w = self.patch_size, x.shape[-2], x.shape[-1]
            if h >= p and w >= p and (h % p != 0 or w % p != 0):
                raise ValueError("input height and width must be multiples of the patch size")
        else:
            self._check_input(x)  # the detailed PatchSizeError
        x = self.patch_embed(x)  # (B, D, h, w)
        grid = (x.shape[-2], x.shape[-1])
        x = x.flatten(2).transpose(1, 2)  # (B, N, D), patches in row-major order
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + N, D)
        x = self.pos_drop(x + self.positions(grid))  # (B, P + N, D)
        return self.encoder(x)  # (B, P + N, D)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pools the tokens (class token, or mean) and applies the head.

        Args:
            x: tokens ``(B, P + N, D)``.
            pre_logits: return the pooled ``(B, D)`` instead of the logits.

        Returns:
            Logits ``(B, num_classes)``, or the pooled features.
        """
        y = x[:, 0] if self.pool == "cls" else x.mean(dim=1)  # (B, D)
        return y if pre_logits else self.head(y)

    def get_classifier(self) -> nn.Module:
        """Returns the linear head."""
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Attaches a new zero-initialised ``D x num_classes`` head (the paper's fine-tuning head, §3.2).

        Args:
            num_classes: new number of classes; 0 installs ``nn.Identity`` (``forward`` then
                returns the pooled ``(B, D)``).
        """
        self.head = new_classifier(self, self.num_features, num_classes)
        if isinstance(self.head, nn.Linear):
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        """Image ``(B, C, H, W)`` -> logits ``(B, num_classes)``.

        Raises:
            PatchSizeError: if ``H`` or ``W`` is not a multiple of the patch size (e.g. 30 px with
                4-px patches; 28 or 32 work).
        """
        return self.forward_head(self.forward_features(x))


def _torchvision_keys(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Maps torchvision's ``VisionTransformer`` state-dict keys onto :class:`VisionTransformer`'s."""
    fixed = [
        ("class_token", "cls_token"),
        ("conv_proj.", "patch_embed."),
        ("encoder.pos_embedding", "pos_embed.pe"),
        ("encoder.ln.", "encoder.norm."),
        ("heads.head.", "head."),
    ]
    block = [
        (".ln_1.", ".norm1."),
        (".ln_2.", ".norm2."),
        (".self_attention.out_proj.", ".attn.out_proj."),
        (".mlp.0.", ".mlp.fc1."), (".mlp.linear_1.", ".mlp.fc1."),
        (".mlp.3.", ".mlp.fc2."), (".mlp.linear_2.", ".mlp.fc2."),
    ]
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        m = re.match(r"encoder\.layers\.encoder_layer_(\d+)(\..*)", key)
        if m:
            rest = m.group(2)
            if rest.startswith(".self_attention.in_proj_"):
                q, k, v = value.chunk(3, dim=0)
                kind = rest.rsplit("_", 1)[-1]  # weight / bias
                for name, t in zip("qkv", (q, k, v)):
                    out[f"encoder.blocks.{m.group(1)}.attn.{name}_proj.{kind}"] = t
                continue
            for old, new in block:
                rest = rest.replace(old, new)
            out[f"encoder.blocks.{m.group(1)}{rest}"] = value
            continue
        for old, new in fixed:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def _vit(patch_size: int, dim: int, depth: int, num_heads: int, mlp_dim: int, *, num_classes: int,
         in_chans: int, dropout: float, attn_dropout: float, image_size: int | None, small_input: bool,
         default_size: int, **kwargs: Any) -> VisionTransformer:
    if small_input:
        patch_size = 4
    image_size = default_image_size(small_input, image_size, default_size)
    return VisionTransformer(image_size=image_size, patch_size=patch_size, dim=dim,
                             depth=depth, num_heads=num_heads, mlp_dim=mlp_dim, num_classes=num_classes,
                             in_chans=in_chans, dropout=dropout, attn_dropout=attn_dropout, **kwargs)


_NOTES_IMAGENET = ("ViT-{}; {}-px patches, 224-px default input, learned positions, class token. "
                   "small_input=True: 4-px patches, 32-px default input.")


@register_model(paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=86_567_656,
                macs=17_563_828_224, notes=_NOTES_IMAGENET.format("B/16", 16))
def vit_b_16(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.0, attn_dropout: float = 0.0,
             image_size: int | None = None, small_input: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-B/16: patch 16, D 768, 12 layers, 12 heads, MLP 3072.

    Args:
        num_classes: classes of the head.
        in_chans: image channels.
        dropout: dropout rate (paper: 0.1 when training from scratch on ImageNet, App. B.1).
        attn_dropout: attention-weight dropout (not in the paper).
        image_size: input side the position table is built for (224, or 32 with ``small_input``).
        small_input: 4-px patches and a 32-px default input (see the module docstring).
        **kwargs: further :class:`VisionTransformer` options (``pos_embed``, ``pool``, ...).
    """
    check_small_input("vit_b_16", small_input)
    return _vit(16, 768, 12, 12, 3072, num_classes=num_classes, in_chans=in_chans, dropout=dropout,
                attn_dropout=attn_dropout, image_size=image_size, small_input=small_input,
                default_size=224, **kwargs)


@register_model(paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=88_224_232,
                macs=4_409_186_304, notes=_NOTES_IMAGENET.format("B/32", 32))
def vit_b_32(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.0, attn_dropout: float = 0.0,
             image_size: int | None = None, small_input: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-B/32: patch 32, D 768, 12 layers, 12 heads, MLP 3072. Args as :func:`vit_b_16`."""
    check_small_input("vit_b_32", small_input)
    return _vit(32, 768, 12, 12, 3072, num_classes=num_classes, in_chans=in_chans, dropout=dropout,
                attn_dropout=attn_dropout, image_size=image_size, small_input=small_input,
                default_size=224, **kwargs)


@register_model(paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=304_326_632,
                macs=61_554_712_576,
                paper_results={"imagenet/top1_jft300m_pretrain": 87.76,
                               "cifar10/top1_jft300m_pretrain": 99.42},
                notes=_NOTES_IMAGENET.format("L/16", 16) + " Paper results: pre-trained on JFT-300M (Table 2).")
def vit_l_16(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.0, attn_dropout: float = 0.0,
             image_size: int | None = None, small_input: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-L/16: patch 16, D 1024, 24 layers, 16 heads, MLP 4096. Args as :func:`vit_b_16`."""
    check_small_input("vit_l_16", small_input)
    return _vit(16, 1024, 24, 16, 4096, num_classes=num_classes, in_chans=in_chans, dropout=dropout,
                attn_dropout=attn_dropout, image_size=image_size, small_input=small_input,
                default_size=224, **kwargs)


@register_model(paper=PAPER, input_size=(3, 32, 32), num_classes=10, params=142_026, macs=10_880_128,
                notes="Small ViT for 28/32-px data: 4-px patches, D 64, 4 layers, 4 heads, MLP 128.")
def vit_tiny_patch4(*, num_classes: int = 10, in_chans: int = 3, small_input: bool = True, dropout: float = 0.0,
                    attn_dropout: float = 0.0, image_size: int | None = None, pos_embed: PosEmbed = "learned",
                    **kwargs: Any) -> VisionTransformer:
    """Small ViT: patch 4, D 64, 4 layers, 4 heads, MLP 128.

    Args:
        num_classes: classes of the head.
        in_chans: image channels (1 for MNIST).
        small_input: must be ``True``: the network is built for 28/32-px images only.
        dropout: dropout rate.
        attn_dropout: attention-weight dropout.
        image_size: input side the position table is built for (default 32; 28 for MNIST).
        pos_embed: ``"learned"`` or ``"sinusoidal"``.
        **kwargs: further :class:`VisionTransformer` options.

    Raises:
        ValueError: for ``small_input=False``.
    """
    require_layout("vit_tiny_patch4", small_input, layout="4-px patches for 28/32-px images")
    image_size = default_image_size(small_input, image_size, SMALL_IMAGE_SIZE)
    return VisionTransformer(image_size=image_size, patch_size=4, dim=64, depth=4, num_heads=4, mlp_dim=128,
                             num_classes=num_classes, in_chans=in_chans, dropout=dropout,
                             attn_dropout=attn_dropout, pos_embed=pos_embed, **kwargs)


@register_model(paper=PAPER, input_size=(3, 32, 32), num_classes=10, params=2_400_586, macs=166_925_184,
                notes="Small ViT for 28/32-px data: 4-px patches, D 192, 8 layers, 6 heads, MLP 384.")
def vit_small_patch4(*, num_classes: int = 10, in_chans: int = 3, small_input: bool = True,
                     dropout: float = 0.0, attn_dropout: float = 0.0, image_size: int | None = None,
                     pos_embed: PosEmbed = "learned", **kwargs: Any) -> VisionTransformer:
    """Small ViT: patch 4, D 192, 8 layers, 6 heads, MLP 384. Args as :func:`vit_tiny_patch4`."""
    require_layout("vit_small_patch4", small_input, layout="4-px patches for 28/32-px images")
    image_size = default_image_size(small_input, image_size, SMALL_IMAGE_SIZE)
    return VisionTransformer(image_size=image_size, patch_size=4, dim=192, depth=8, num_heads=6, mlp_dim=384,
                             num_classes=num_classes, in_chans=in_chans, dropout=dropout,
                             attn_dropout=attn_dropout, pos_embed=pos_embed, **kwargs)


for _zoo, _tv in (("vit_b_16", "vit_b_16"), ("vit_b_32", "vit_b_32"), ("vit_l_16", "vit_l_16")):
    register_torchvision(_zoo, _tv, remap=_torchvision_keys)
