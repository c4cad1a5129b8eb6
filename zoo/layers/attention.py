"""Attention: scaled dot-product, additive (Bahdanau) and multi-head.

Scaled dot-product attention (Vaswani et al. 2017, "Attention Is All You Need",
arXiv:1706.03762, eq. 1). For queries ``Q`` (Nq x d_k), keys ``K`` (Nk x d_k)
and values ``V`` (Nk x d_v)::

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V

Row ``i`` of the softmax is a distribution over the keys; the output for query
``i`` is the corresponding average of the value rows. Dividing by √d_k keeps
the logits at unit variance when the entries of ``q`` and ``k`` are.

Additive attention (Bahdanau et al. 2014, "Neural Machine Translation by
Jointly Learning to Align and Translate", arXiv:1409.0473, eq. 6 and App. A.1.2)
scores a query against a key with a one-hidden-layer network instead of a dot
product::

    score(q, k) = vᵀ tanh(W_q q + W_k k)

and then uses the same softmax-weighted average of the values.

Multi-head attention (Vaswani et al. 2017, §3.2.2) runs ``h`` attentions on
learned projections of width ``d_k = d_v = D / h`` and mixes their
concatenation::

    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O
    head_j = Attention(Q W_j^Q, K W_j^K, V W_j^V)

Masks. :func:`scaled_dot_product_attention` follows
``torch.nn.functional.scaled_dot_product_attention``: a boolean mask is
``True`` where a query MAY attend to a key; a float mask is added to the
logits. :class:`MultiHeadAttention` follows ``torch.nn.MultiheadAttention``:
``key_padding_mask`` and a boolean ``attn_mask`` are ``True`` where attention
is NOT allowed. A query row whose keys are all masked attends to nothing and
gets a zero output, on both the math and the fused path.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "scaled_dot_product_attention",
    "attention_weights",
    "masked_softmax",
    "AdditiveAttention",
    "MultiHeadAttention",
]

Impl = Literal["fused", "math"]
Score = Literal["dot", "additive"]


def masked_softmax(scores: Tensor, mask: Tensor | None = None) -> Tensor:
    """Softmax over the last (key) axis with an optional mask.

    Args:
        scores: logits ``(..., Nq, Nk)``.
        mask: broadcastable to ``scores``; boolean ``True`` = may attend, or a
            float mask added to the logits.

    Returns:
        Weights ``(..., Nq, Nk)``; each row sums to 1, or is all 0 when every
        key of the row is masked out.
    """
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        # A row of -inf gives 0/0; such a query attends to nothing.
        weights = weights.masked_fill(torch.isneginf(scores).all(dim=-1, keepdim=True), 0.0)
    return weights


def attention_weights(q: Tensor, k: Tensor, mask: Tensor | None = None, is_causal: bool = False,
                      scale: float | None = None) -> Tensor:
    """The attention distribution softmax(Q Kᵀ · scale) of the math path.

    Args:
        q: queries ``(..., Nq, d_k)``.
        k: keys ``(..., Nk, d_k)``.
        mask: see :func:`masked_softmax`.
        is_causal: also forbid query ``i`` to see keys ``j > i``.
        scale: logit scale; ``1/√d_k`` when ``None``.

    Returns:
        Weights ``(..., Nq, Nk)``.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., Nq, Nk)
    if is_causal:
        mask = _with_causal(mask, q.shape[-2], k.shape[-2], q.device)
    return masked_softmax(scores, mask)


def _with_causal(mask: Tensor | None, nq: int, nk: int, device: torch.device) -> Tensor:
    """Adds the causal constraint (query ``i`` sees keys ``j <= i``) to a bool-keep or float mask."""
    keep = torch.ones(nq, nk, dtype=torch.bool, device=device).tril()  # (Nq, Nk)
    if mask is None:
        return keep
    if mask.dtype == torch.bool:
        return mask & keep
    return mask.masked_fill(~keep, float("-inf"))


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None, impl: str = "fused") -> Tensor:
    """softmax(Q Kᵀ / √d_k) V, by the readable math path or PyTorch's fused kernel.

    Shapes (any leading batch/head dims ``...``, e.g. ``(B, H)``)::

        q: (..., Nq, d_k)   k: (..., Nk, d_k)   v: (..., Nk, d_v)
        Q Kᵀ / √d_k     -> (..., Nq, Nk)   logits
        softmax(·)      -> (..., Nq, Nk)   rows sum to 1 over the keys
        · V             -> (..., Nq, d_v)

    Args:
        q, k, v: queries, keys and values.
        mask: boolean ``True`` = may attend, or float added to the logits;
            broadcastable to ``(..., Nq, Nk)``.
        dropout_p: dropout on the attention weights (pass 0 in eval mode).
        is_causal: forbid query ``i`` to see keys ``j > i``.
        scale: logit scale, ``1/√d_k`` when ``None``.
        impl: ``"fused"`` (``F.scaled_dot_product_attention``, the default) or
            ``"math"`` (the formula above, written out).

    Returns:
        Output ``(..., Nq, d_v)``.
    """
    if impl == "fused":
        if is_causal and mask is not None:  # the kernel takes one or the other
            mask, is_causal = _with_causal(mask, q.shape[-2], k.shape[-2], q.device), False
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p,
                                              is_causal=is_causal, scale=scale)
    if impl != "math":
        if not torch.jit.is_scripting():
            _fail_impl(impl)
        raise ValueError("impl must be 'fused' or 'math'")
    weights = attention_weights(q, k, mask, is_causal=is_causal, scale=scale)  # (..., Nq, Nk)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v  # (..., Nq, d_v)


def _fail_impl(impl: str) -> None:
    """Raises the ValueError of :func:`scaled_dot_product_attention` for an unknown ``impl``."""
    raise ValueError(f"impl must be 'fused' or 'math', got {impl!r}")


def _merge_masks(key_padding_mask: Tensor | None, attn_mask: Tensor | None) -> Tensor | None:
    """See :meth:`MultiHeadAttention._mask`."""
    masks: list[Tensor] = []
    if key_padding_mask is not None:
        masks.append(key_padding_mask[:, None, None, :])  # (B, 1, 1, Nk)
    if attn_mask is not None:
        masks.append(attn_mask)  # (Nq, Nk) or (B, H, Nq, Nk)
    if len(masks) == 0:
        return None
    dtype = torch.bool  # the first non-boolean mask's dtype, if any
    for m in masks:
        if dtype == torch.bool and m.dtype != torch.bool:
            dtype = m.dtype
    if dtype == torch.bool:
        keep = ~masks[0]
        for i in range(1, len(masks)):
            keep = keep & ~masks[i]
        return keep
    total: Tensor | None = None
    for m in masks:
        if m.dtype == torch.bool:
            m = torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill(m, float("-inf"))
        total = m + 0.0 if total is None else total + m  # 0.0 + m + ...
    return total


class AdditiveAttention(nn.Module):
    """Additive (Bahdanau) attention, with separate parameters for each head.

    For one head with query ``q`` and key ``k`` of width ``d_h``::

        score(q, k) = vᵀ tanh(W_q q + W_k k)     W_q, W_k: (d_a, d_h),  v: (d_a,)
        weights     = softmax_k(score)           (B, H, Nq, Nk)
        output      = weights · V                (B, H, Nq, d_h)

    No scaling is needed: the tanh already bounds the hidden units. The hidden
    tensor is ``(B, H, Nq, Nk, d_a)``, so memory grows with ``Nq · Nk · d_a``.

    Args:
        num_heads: ``H``.
        head_dim: ``d_h``, width of each head's queries and keys.
        hidden_dim: ``d_a``, width of the scoring network (default ``d_h``).
    """

    def __init__(self, num_heads: int, head_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden_dim = hidden_dim or head_dim
        self.w_q = nn.Parameter(torch.empty(num_heads, head_dim, hidden_dim))
        self.w_k = nn.Parameter(torch.empty(num_heads, head_dim, hidden_dim))
        self.v = nn.Parameter(torch.empty(num_heads, hidden_dim))
        self._init_weights()

    def _init_weights(self) -> None:
        """Bahdanau et al. 2014, App. B.2: W_a, U_a ~ N(0, 0.001²) and v_a = 0 (uniform attention at start)."""
        nn.init.normal_(self.w_q, std=1e-3)
        nn.init.normal_(self.w_k, std=1e-3)
        nn.init.zeros_(self.v)

    def scores(self, q: Tensor, k: Tensor) -> Tensor:
        """Returns vᵀ tanh(W_q q + W_k k) for every query/key pair, ``(B, H, Nq, Nk)``."""
        qa = torch.einsum("bhqd,hda->bhqa", q, self.w_q)  # (B, H, Nq, d_a)
        ka = torch.einsum("bhkd,hda->bhka", k, self.w_k)  # (B, H, Nk, d_a)
        hidden = torch.tanh(qa.unsqueeze(3) + ka.unsqueeze(2))  # (B, H, Nq, Nk, d_a)
        return torch.einsum("bhqka,ha->bhqk", hidden, self.v)  # (B, H, Nq, Nk)

    def weights(self, q: Tensor, k: Tensor, mask: Tensor | None = None) -> Tensor:
        """The attention distribution ``(B, H, Nq, Nk)``; ``mask`` as in :func:`masked_softmax`."""
        return masked_softmax(self.scores(q, k), mask)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                dropout_p: float = 0.0) -> Tensor:
        """Attends ``q`` (B, H, Nq, d_h) over ``k`` (B, H, Nk, d_h) / ``v`` (B, H, Nk, d_v).

        Returns:
            ``(B, H, Nq, d_v)``.
        """
        w = self.weights(q, k, mask)
        if dropout_p > 0.0:
            w = F.dropout(w, p=dropout_p)
        return w @ v


class MultiHeadAttention(nn.Module):
    """Multi-head attention: project, split into heads, attend, merge, project.

    With ``x_q`` (B, Nq, D) and ``x_k``, ``x_v`` (B, Nk, D_k / D_v)::

        Q = x_q W^Q, K = x_k W^K, V = x_v W^V          (B, N, D)
        split heads: (B, N, D) -> (B, H, N, d_h)      d_h = D / H
        O_j = Attention(Q_j, K_j, V_j)                (B, H, Nq, d_h)
        merge heads: (B, H, Nq, d_h) -> (B, Nq, D)
        output = O W^O                                (B, Nq, D)

    ``Attention`` is scaled dot-product (``score="dot"``, Vaswani et al. 2017)
    or additive (``score="additive"``, Bahdanau et al. 2014). Inputs are
    batch-first. Given the same weights (see :meth:`load_torch_state_dict`),
    the dot-product version computes what ``torch.nn.MultiheadAttention``
    (``batch_first=True``) computes.

    Args:
        embed_dim: model width ``D``.
        num_heads: ``H``; must divide ``D``.
        dropout: dropout on the attention weights (training only).
        bias: biases in the four projections.
        kdim, vdim: widths of the key / value inputs (default ``D``).
        score: ``"dot"`` or ``"additive"``.
        impl: ``"fused"`` (default) or ``"math"`` for the dot-product path.
        additive_dim: hidden width ``d_a`` of the additive scorer (default ``d_h``).
    """

    def __init__(self, embed_dim: int, num_heads: int, *, dropout: float = 0.0, bias: bool = True,
                 kdim: int | None = None, vdim: int | None = None, score: Score = "dot",
                 impl: Impl = "fused", additive_dim: int | None = None) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        if score not in ("dot", "additive"):
            raise ValueError(f"score must be 'dot' or 'additive', got {score!r}")
        if impl not in ("fused", "math"):
            raise ValueError(f"impl must be 'fused' or 'math', got {impl!r}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.score = score
        self.impl = impl
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(kdim or embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(vdim or embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.additive = (AdditiveAttention(num_heads, self.head_dim, additive_dim)
                         if score == "additive" else None)
        self._init_weights()

    def _init_weights(self) -> None:
        """Glorot-uniform projections and zero biases, as ``torch.nn.MultiheadAttention`` does
        (Glorot & Bengio 2010); the paper does not specify an initialisation."""
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(lin.weight)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def _split(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, N, d_h)

    def _merge(self, x: Tensor) -> Tensor:
        b, _, n, _ = x.shape
        return x.transpose(1, 2).reshape(b, n, self.embed_dim)  # (B, N, D)

    @staticmethod
    def _mask(key_padding_mask: Tensor | None, attn_mask: Tensor | None) -> Tensor | None:
        """Turns torch.nn.MultiheadAttention-style masks into one mask for (B, H, Nq, Nk).

        Returns a boolean keep-mask (``True`` = may attend) when both masks are
        boolean, else a float mask to add to the logits.
        """
        return _merge_masks(key_padding_mask, attn_mask)

    def forward(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None,
                key_padding_mask: Tensor | None = None, attn_mask: Tensor | None = None,
                is_causal: bool = False, need_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Multi-head attention of ``query`` over ``key``/``value`` (self-attention when omitted).

        Args:
            query: ``(B, Nq, D)``.
            key: ``(B, Nk, D_k)``; defaults to ``query``.
            value: ``(B, Nk, D_v)``; defaults to ``key``.
            key_padding_mask: ``(B, Nk)``, ``True`` for keys to ignore (padding),
                or a float mask added to the logits.
            attn_mask: ``(Nq, Nk)`` or ``(B, H, Nq, Nk)``, boolean ``True`` where
                attention is not allowed, or a float mask added to the logits.
            is_causal: forbid query ``i`` to attend to keys ``j > i``.
            need_weights: also return the attention weights (computed by the math path).

        Returns:
            Output ``(B, Nq, D)``, and with ``need_weights`` the weights
            ``(B, H, Nq, Nk)`` per head.
        """
        out, weights = self.attend(query, key, value, key_padding_mask, attn_mask, is_causal, need_weights)
        if need_weights and weights is not None:
            return out, weights
        return out

    def attend(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None,
               key_padding_mask: Tensor | None = None, attn_mask: Tensor | None = None,
               is_causal: bool = False, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """:meth:`forward` with one return type: ``(output, weights or None)``.

        ``weights`` is ``None`` unless ``need_weights`` or the additive score computed them.
        """
        key = query if key is None else key
        value = key if value is None else value
        q = self._split(self.q_proj(query))  # (B, H, Nq, d_h)
        k = self._split(self.k_proj(key))  # (B, H, Nk, d_h)
        v = self._split(self.v_proj(value))  # (B, H, Nk, d_h)
        mask = _merge_masks(key_padding_mask, attn_mask)
        p = self.dropout if self.training else 0.0

        weights: Tensor | None = None
        if self.additive is not None:
            if is_causal:
                mask = _with_causal(mask, q.shape[-2], k.shape[-2], q.device)
            weights = self.additive.weights(q, k, mask)  # (B, H, Nq, Nk)
        elif need_weights:
            weights = attention_weights(q, k, mask, is_causal=is_causal)  # (B, H, Nq, Nk)
        if weights is None:
            o = scaled_dot_product_attention(q, k, v, mask, dropout_p=p, is_causal=is_causal,
                                             impl=self.impl)  # (B, H, Nq, d_h)
        else:
            o = F.dropout(weights, p=p) @ v if p > 0.0 else weights @ v  # (B, H, Nq, d_h)
        out = self.out_proj(self._merge(o))  # (B, Nq, D)
        return out, weights

    @staticmethod
    def torch_state_dict_to_zoo(sd: dict[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
        """Maps a ``torch.nn.MultiheadAttention`` state dict onto this module's keys.

        ``in_proj_weight`` (3D, D) stacks W^Q, W^K, W^V; it is split into
        ``q_proj``/``k_proj``/``v_proj``. Keys outside ``prefix`` are kept as they are.

        Args:
            sd: a state dict containing ``{prefix}in_proj_weight`` etc.
            prefix: the attention module's prefix in ``sd`` (e.g. ``"layers.0.self_attention."``).

        Returns:
            A new dict with ``{prefix}q_proj.weight``, ... in place of the packed tensors.
        """
        out = {k: v for k, v in sd.items()
               if not (k.startswith(prefix) and k[len(prefix):] in ("in_proj_weight", "in_proj_bias"))}
        if prefix + "in_proj_weight" in sd:
            for name, w in zip("qkv", sd[prefix + "in_proj_weight"].chunk(3, dim=0)):
                out[f"{prefix}{name}_proj.weight"] = w
        else:  # kdim/vdim differ from embed_dim: separate projection weights
            for name in "qkv":
                out[f"{prefix}{name}_proj.weight"] = out.pop(f"{prefix}{name}_proj_weight")
        if prefix + "in_proj_bias" in sd:
            for name, b in zip("qkv", sd[prefix + "in_proj_bias"].chunk(3, dim=0)):
                out[f"{prefix}{name}_proj.bias"] = b
        return out

    def load_torch_state_dict(self, sd: dict[str, Tensor]) -> None:
        """Loads the weights of a ``torch.nn.MultiheadAttention`` with the same sizes (strict)."""
        self.load_state_dict(self.torch_state_dict_to_zoo(dict(sd)))


def cpu_sdpa_flop_formulas() -> dict:
    """FLOP formulas for PyTorch's fused CPU attention kernel, for ``FlopCounterMode(custom_mapping=...)``.

    Without them, MACs of the fused path counted on the CPU miss the two matrix
    products Q Kᵀ and (weights) V; on the meta device, or by the math path,
    they are counted. Same formula as torch's for the GPU kernels. Nothing is
    registered globally: :func:`zoo.profiling.count_macs` passes them to its
    counter. Kernels that torch already counts itself are left out.

    Returns:
        ``{aten op: formula}``; each formula takes the operands' shapes (``get_raw`` is not set).
    """
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten
    fwd = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    bwd = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    formulas = {}
    if fwd is not None and fwd not in fc.flop_registry:
        def _fwd(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return fc.sdpa_flop_count(query_shape, key_shape, value_shape)

        formulas[fwd] = _fwd
    if bwd is not None and bwd not in fc.flop_registry:
        def _bwd(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                 **kwargs) -> int:
            return fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)

        formulas[bwd] = _bwd
    return formulas
