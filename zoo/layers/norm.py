"""Normalisation layers of the paper era.

Local response normalisation (LRN) is defined by Krizhevsky, Sutskever & Hinton (2012),
"ImageNet Classification with Deep Convolutional Neural Networks", Section 3.3:

    b^i_{x,y} = a^i_{x,y} / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} (a^j_{x,y})^2)^beta

where ``a^i_{x,y}`` is the activity of channel ``i`` at position ``(x, y)``, ``N`` the
number of channels and the sum runs over ``n`` adjacent channels (clipped at the
edges). AlexNet uses ``k=2, n=5, alpha=1e-4, beta=0.75``; VGG's A-LRN reuses those.

``torch.nn.LocalResponseNorm(size, alpha, beta, k)`` computes
``k + alpha / size * sum(...)`` instead, i.e. its ``alpha`` is the paper's ``alpha * n``
(Caffe's ``LRN`` layer uses the same per-window-average convention). The
:class:`LocalResponseNorm` here takes the paper's ``alpha`` and converts it.

The constants of Section 3.3 live in one place, :data:`ALEXNET_LRN`; AlexNet and
VGG's A-LRN both use them.

Channel groups: in AlexNet each GPU tower normalises only its own kernel maps (Section 3.5:
the towers communicate only in certain layers, conv3 and the fully connected ones), so the
sum runs over the adjacent maps of the same tower. ``groups=g`` splits the ``N`` channels
into ``g`` contiguous groups of ``N / g`` and normalises each on its own, the window clipped
at the group's edges; ``groups=1`` is the formula above over all channels.
"""

from __future__ import annotations

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ALEXNET_LRN", "LocalResponseNorm", "local_response_norm"]

#: Krizhevsky et al. (2012), Section 3.3: ``k=2, n=5, alpha=1e-4, beta=0.75`` (the paper's alpha).
ALEXNET_LRN: dict[str, float] = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}


def local_response_norm(x: torch.Tensor, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 2.0, groups: int = 1) -> torch.Tensor:
    """Local response normalisation across channels, with the paper's ``alpha``.

    Args:
        x: activations ``(B, C, ...)``.
        size: ``n``, the number of adjacent channels summed over (odd, centred on the channel).
        alpha: the paper's ``alpha`` (multiplies the plain sum of squares).
        beta: exponent.
        k: additive constant.
        groups: normalise each of ``groups`` contiguous channel groups on its own
            (AlexNet's towers: 2); ``C`` must be divisible by it.

    Returns:
        Tensor of the same shape as ``x``.

    Raises:
        ValueError: if ``C`` is not divisible by ``groups``.
    """
    # torch's kernel averages the squares over a zero-padded window of `size` channels.
    if groups == 1:
        return F.local_response_norm(x, size, alpha=alpha * size, beta=beta, k=k)
    b, c = x.shape[0], x.shape[1]
    if c % groups:
        raise ValueError(f"LRN with groups={groups} needs channels divisible by it, got {c} channels")
    per_group = x.reshape([b * groups, c // groups] + list(x.shape[2:]))  # (B*g, C/g, ...): one group per row
    out = F.local_response_norm(per_group, size, alpha=alpha * size, beta=beta, k=k)
    return out.reshape(x.shape)


# A leaf of torch.fx traces (the group split reads the shape), so that AlexNet can be traced,
# e.g. by zoo.features.features_only.
torch.fx.wrap("local_response_norm")


class LocalResponseNorm(nn.Module):
    """Local response normalisation as written in Krizhevsky et al. (2012), Section 3.3.

    ``b_i = a_i / (k + alpha * sum_{|j - i| <= n//2} a_j^2) ** beta`` over channels.

    Args:
        size: ``n``; must be odd so that the window is centred on the channel.
        alpha: the paper's ``alpha`` (NOT divided by ``n``; see the module docstring).
        beta: exponent.
        k: additive constant.
        groups: contiguous channel groups normalised separately (2 for AlexNet's towers).
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0,
                 groups: int = 1) -> None:
        super().__init__()
        if size < 1 or size % 2 == 0:
            raise ValueError(f"LRN size must be a positive odd number (a window centred on the channel), got {size}")
        if groups < 1:
            raise ValueError(f"LRN groups must be >= 1, got {groups}")
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``(B, C, H, W)``. Returns: the normalised tensor, same shape."""
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k, self.groups)

    def extra_repr(self) -> str:
        groups = f", groups={self.groups}" if self.groups != 1 else ""
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}{groups} (paper convention)"
