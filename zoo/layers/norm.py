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
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["LocalResponseNorm", "local_response_norm"]


def local_response_norm(x: torch.Tensor, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 2.0) -> torch.Tensor:
    """Local response normalisation across channels, with the paper's ``alpha``.

    Args:
        x: activations ``(B, C, ...)``.
        size: ``n``, the number of adjacent channels summed over (odd, centred on the channel).
        alpha: the paper's ``alpha`` (multiplies the plain sum of squares).
        beta: exponent.
        k: additive constant.

    Returns:
        Tensor of the same shape as ``x``.
    """
    # torch's kernel averages the squares over a zero-padded window of `size` channels.
    return F.local_response_norm(x, size, alpha=alpha * size, beta=beta, k=k)


class LocalResponseNorm(nn.Module):
    """Local response normalisation as written in Krizhevsky et al. (2012), Section 3.3.

    ``b_i = a_i / (k + alpha * sum_{|j - i| <= n//2} a_j^2) ** beta`` over channels.

    Args:
        size: ``n``; must be odd so that the window is centred on the channel.
        alpha: the paper's ``alpha`` (NOT divided by ``n``; see the module docstring).
        beta: exponent.
        k: additive constant.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> None:
        super().__init__()
        if size < 1 or size % 2 == 0:
            raise ValueError(f"LRN size must be a positive odd number (a window centred on the channel), got {size}")
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``(B, C, H, W)``. Returns: the normalised tensor, same shape."""
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k} (paper convention)"
