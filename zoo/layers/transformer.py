"""The Transformer encoder: positional encodings, encoder blocks and the block stack.

Positional encodings (Vaswani et al. 2017, "Attention Is All You Need",
arXiv:1706.03762, §3.5). Self-attention is permutation-equivariant, so token
order enters through a vector added to each token:

* sinusoidal, for position ``pos`` and channel pair ``i``::

      PE(pos, 2i)   = sin(pos / 10000^(2i/d))
      PE(pos, 2i+1) = cos(pos / 10000^(2i/d))

  wavelengths form a geometric progression from 2π to 10000·2π, and
  ``PE(pos + k)`` is a linear function of ``PE(pos)``;
* learned: one free ``d``-vector per position (ViT, Dosovitskiy et al. 2020,
  initialised N(0, 0.02²)).

Encoder block (Vaswani et al. 2017, §3.1; pre-norm as in ViT, Dosovitskiy et
al. 2020, eq. 2–3), for tokens ``x`` of shape ``(B, N, D)``::

    pre-norm (default):  x = x + Drop(MSA(LN(x)))        post-norm (original):  x = LN(x + Drop(MSA(x)))
                         x = x + Drop(MLP(LN(x)))                               x = LN(x + Drop(MLP(x)))

    MLP(x) = W_2 Drop(act(W_1 x + b_1)) + b_2,   W_1: (D -> D_mlp), W_2: (D_mlp -> D), act = GELU or ReLU

Dropout follows the papers: Vaswani et al. (§5.4) drop each sub-layer's output
before the residual sum (``Drop`` above); ViT (App. B.1) drops after every
dense layer except the q/k/v projections, which adds the dropout inside the
MLP. Both use the same rate here. Attention-weight dropout is in neither paper
and is a separate option (``attn_dropout``, default 0).

A pre-norm stack ends with a final LayerNorm (the residual stream is never
normalised otherwise); a post-norm stack already ends in one.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from zoo.layers.attention import Impl, MultiHeadAttention, Score

__all__ = [
    "sinusoidal_table",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEncoding",
    "resample_grid_positions",
    "resample_grid",
    "MLP",
    "EncoderBlock",
    "TransformerEncoder",
]

Activation = Literal["gelu", "relu"]


def sinusoidal_table(num_positions: int, dim: int, base: float = 10000.0,
                     device: torch.device | str | None = None) -> Tensor:
    """The sinusoidal encoding of positions ``0 .. num_positions-1``.

    ``PE[pos, 2i] = sin(pos / base^(2i/d))``, ``PE[pos, 2i+1] = cos(pos / base^(2i/d))``.

    Args:
        num_positions: number of positions ``N``.
        dim: encoding width ``d`` (an odd ``d`` ends with a sine column).
        base: the 10000 of the formula.
        device: where to build the table.

    Returns:
        ``(N, d)`` float32 table (computed in float64).
    """
    pos = torch.arange(num_positions, dtype=torch.float64, device=device)[:, None]  # (N, 1)
    two_i = torch.arange(0, dim, 2, dtype=torch.float64, device=device)  # 2i = 0, 2, 4, ...
    angle = pos / base ** (two_i / dim)  # (N, ceil(d/2))
    pe = torch.zeros(num_positions, dim, dtype=torch.float64, device=device)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : dim // 2])
    return pe.float()


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal encoding: ``x + PE[:N]`` for ``x`` of shape ``(B, N, D)``.

    Args:
        dim: model width ``D``.
        max_len: longest sequence supported.
        base: the 10000 of the formula.
    """

    def __init__(self, dim: int, max_len: int = 5000, base: float = 10000.0) -> None:
        super().__init__()
        self.dim = dim
        self.max_len = max_len
        # Deterministic, so not part of the state dict.
        self.register_buffer("pe", sinusoidal_table(max_len, dim, base)[None], persistent=False)  # (1, L, D)

    @property
    def table(self) -> Tensor:
        """The encoding of every position, ``(1, max_len, D)``."""
        return self.pe

    def forward(self, x: Tensor) -> Tensor:
        """Returns ``x + PE[:N]``; ``x``: ``(B, N, D)``."""
        n = x.shape[1]
        if n > self.max_len:
            raise ValueError(f"sequence of {n} tokens is longer than max_len={self.max_len}")
        return x + self.pe[:, :n]


class LearnedPositionalEncoding(nn.Module):
    """Adds a learned vector per position: ``x + E[:N]`` for ``x`` of shape ``(B, N, D)``.

    Args:
        num_positions: number of positions (for ViT: patches + class token).
        dim: model width ``D``.
        init_std: standard deviation of the normal initialisation.
    """

    def __init__(self, num_positions: int, dim: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.init_std = init_std
        self.pe = nn.Parameter(torch.empty(1, num_positions, dim))  # (1, L, D)
        self._init_weights()

    def _init_weights(self) -> None:
        """N(0, 0.02²), as the ViT reference implementation (Dosovitskiy et al. 2020)."""
        nn.init.normal_(self.pe, std=self.init_std)

    @property
    def table(self) -> Tensor:
        """The embedding of every position, ``(1, L, D)``."""
        return self.pe

    def forward(self, x: Tensor) -> Tensor:
        """Returns ``x + E[:N]``; ``x``: ``(B, N, D)``."""
        n = x.shape[1]
        if n > self.pe.shape[1]:
            raise ValueError(f"sequence of {n} tokens is longer than the {self.pe.shape[1]} learned positions")
        return x + self.pe[:, :n]


def resample_grid_positions(pe: Tensor, old_grid: Sequence[int], new_grid: Sequence[int],
                            num_prefix: int = 1, mode: str = "bicubic") -> Tensor:
    """Resamples position vectors laid out on a 2-D patch grid to another grid size.

    As for fine-tuning ViT at a higher resolution (Dosovitskiy et al. 2020,
    §3.2): the patch positions are viewed as an image of ``D`` channels and
    interpolated; the ``num_prefix`` leading tokens (the class token) keep theirs::

        pe: (1, P + h·w, D) -> grid (1, D, h, w) -> interpolate (1, D, h', w') -> (1, P + h'·w', D)

    Args:
        pe: the table, prefix tokens first, then the grid in row-major order.
        old_grid: ``(h, w)`` the table was made for.
        new_grid: ``(h', w')`` wanted.
        num_prefix: tokens before the grid (1 for a class token).
        mode: ``"bicubic"`` or ``"bilinear"`` (``align_corners=False``).

    Returns:
        ``(1, P + h'·w', D)``; ``pe`` itself when the grids are equal.
    """
    (h, w), (h2, w2) = tuple(old_grid), tuple(new_grid)
    return resample_grid(pe, h, w, h2, w2, num_prefix, mode)


def resample_grid(pe: Tensor, h: int, w: int, h2: int, w2: int, num_prefix: int = 1,
                  mode: str = "bicubic") -> Tensor:
    """:func:`resample_grid_positions` from grid ``(h, w)`` to ``(h2, w2)``, given as ints."""
    if h == h2 and w == w2:
        return pe
    prefix, grid = pe[:, :num_prefix], pe[:, num_prefix:]
    if grid.shape[1] != h * w:
        raise ValueError(f"table has {grid.shape[1]} grid positions, not {h}x{w}")
    d = pe.shape[-1]
    grid = grid.reshape(1, h, w, d).permute(0, 3, 1, 2)  # (1, D, h, w)
    grid = F.interpolate(grid, size=(h2, w2), mode=mode, align_corners=False)  # (1, D, h', w')
    grid = grid.permute(0, 2, 3, 1).reshape(1, h2 * w2, d)  # (1, h'w', D)
    return torch.cat([prefix, grid], dim=1)


def _activation(name: Activation) -> nn.Module:
    if name == "gelu":
        return nn.GELU()
    if name == "relu":
        return nn.ReLU()
    raise ValueError(f"activation must be 'gelu' or 'relu', got {name!r}")


class MLP(nn.Module):
    """Position-wise feed-forward network: ``W_2 Drop(act(W_1 x + b_1)) + b_2``.

    ``(B, N, D) -> fc1 -> (B, N, D_mlp) -> act, dropout -> fc2 -> (B, N, D)``.
    The dropout on the output belongs to the enclosing block.

    Args:
        dim: ``D``.
        hidden_dim: ``D_mlp`` (4·D in both papers).
        activation: ``"gelu"`` (ViT) or ``"relu"`` (Vaswani et al.).
        dropout: dropout after the activation.
    """

    def __init__(self, dim: int, hidden_dim: int, activation: Activation = "gelu",
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = _activation(activation)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, N, D) -> (B, N, D)``."""
        return self.fc2(self.drop(self.act(self.fc1(x))))


class EncoderBlock(nn.Module):
    """One Transformer encoder layer: self-attention and an MLP, each with a residual and LayerNorm.

    Pre-norm (default, ViT)::

        x = x + Drop(MSA(LN_1(x)))     (B, N, D)
        x = x + Drop(MLP(LN_2(x)))     (B, N, D)

    Post-norm (``norm_first=False``, Vaswani et al. 2017)::

        x = LN_1(x + Drop(MSA(x)))
        x = LN_2(x + Drop(MLP(x)))

    Args:
        dim: model width ``D``.
        num_heads: attention heads ``H``.
        mlp_dim: MLP hidden width.
        dropout: residual dropout and MLP hidden dropout (see the module docstring).
        attn_dropout: dropout on the attention weights.
        activation: ``"gelu"`` or ``"relu"``.
        norm_first: pre-norm (``True``) or post-norm.
        norm_eps: LayerNorm epsilon (1e-6 in ViT, 1e-5 in PyTorch's layers).
        score: ``"dot"`` or ``"additive"`` attention.
        impl: ``"fused"`` or ``"math"`` dot-product attention.
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, *, dropout: float = 0.0,
                 attn_dropout: float = 0.0, activation: Activation = "gelu", norm_first: bool = True,
                 norm_eps: float = 1e-6, score: Score = "dot", impl: Impl = "fused") -> None:
        super().__init__()
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = MultiHeadAttention(dim, num_heads, dropout=attn_dropout, score=score, impl=impl)
        self.drop1 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MLP(dim, mlp_dim, activation=activation, dropout=dropout)
        self.drop2 = nn.Dropout(dropout)

    def _sa(self, x: Tensor, key_padding_mask: Tensor | None, attn_mask: Tensor | None) -> Tensor:
        out = self.attn(x, key_padding_mask=key_padding_mask, attn_mask=attn_mask)
        if not isinstance(out, Tensor):  # (output, weights): not returned without need_weights
            out = out[0]
        return self.drop1(out)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None,
                attn_mask: Tensor | None = None) -> Tensor:
        """``(B, N, D) -> (B, N, D)``; masks as in :class:`MultiHeadAttention` (``True`` = ignore)."""
        if self.norm_first:
            x = x + self._sa(self.norm1(x), key_padding_mask, attn_mask)  # (B, N, D)
            x = x + self.drop2(self.mlp(self.norm2(x)))  # (B, N, D)
        else:
            x = self.norm1(x + self._sa(x, key_padding_mask, attn_mask))
            x = self.norm2(x + self.drop2(self.mlp(x)))
        return x


class TransformerEncoder(nn.Module):
    """A stack of ``depth`` :class:`EncoderBlock` s, plus a final LayerNorm for pre-norm stacks.

    ``(B, N, D) -> block_1 -> ... -> block_depth -> LN -> (B, N, D)``.
    Positional information is added by the caller, before the stack.

    Args:
        depth: number of blocks ``L``.
        dim, num_heads, mlp_dim: as in :class:`EncoderBlock`.
        final_norm: end with a LayerNorm; default: when ``norm_first``.
        **block_kwargs: further :class:`EncoderBlock` options (``dropout``,
            ``attn_dropout``, ``activation``, ``norm_first``, ``norm_eps``, ``score``, ``impl``).
    """

    def __init__(self, depth: int, dim: int, num_heads: int, mlp_dim: int, *,
                 final_norm: bool | None = None, **block_kwargs) -> None:
        super().__init__()
        norm_first = block_kwargs.get("norm_first", True)
        self.blocks = nn.ModuleList(EncoderBlock(dim, num_heads, mlp_dim, **block_kwargs) for _ in range(depth))
        final_norm = norm_first if final_norm is None else final_norm
        self.norm = nn.LayerNorm(dim, eps=block_kwargs.get("norm_eps", 1e-6)) if final_norm else nn.Identity()

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None,
                attn_mask: Tensor | None = None) -> Tensor:
        """``(B, N, D) -> (B, N, D)``."""
        for block in self.blocks:
            x = block(x, key_padding_mask=key_padding_mask, attn_mask=attn_mask)
        return self.norm(x)
