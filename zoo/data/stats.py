"""Normalisation statistics and colour constants, in one place.

All means and standard deviations are per channel, on the ``[0, 1]`` pixel
scale, over every pixel of the *training* set at the dataset's native
resolution (population standard deviation, i.e. over pixels, not the standard
deviation of per-image means that some code bases quote for CIFAR).

* MNIST: recomputed from the 60,000 training images (0.130660 / 0.308108).
* Fashion-MNIST, KMNIST, CIFAR-10, CIFAR-100, SVHN: the widely published
  training-set figures (the same definition as above).
* cifar10_jpeg (CIFAR-10 re-encoded as JPEG at quality 75): computed from its
  50,000 training images (``tests/test_image_tree.py`` recomputes it when the tree is present).
* ImageNet: the constants torchvision's pretrained models were trained with.
* digits: computed here from the fixed 1,257-image training split of
  :class:`~zoo.data.DigitsDataModule` at 32x32 (``tests/test_data.py``
  recomputes it).

Zero padding (MNIST 28 -> 32, as LeNet-5 does) adds background pixels, which
changes the statistics exactly as :func:`padded_stats` computes, so a padded
dataset is still normalised to mean 0 / std 1.

:func:`channel_stats` recomputes the figures from a uint8 image tensor.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "DATASET_STATS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGENET_PCA_EIGVAL",
    "IMAGENET_PCA_EIGVEC",
    "channel_stats",
    "padded_stats",
]

Stats = tuple[tuple[float, ...], tuple[float, ...]]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Principal components of ImageNet's RGB pixel covariance (pixels on the [0, 1]
# scale), used by AlexNet's "PCA lighting" augmentation (Krizhevsky et al. 2012,
# Sec. 4.1: add [p1, p2, p3] [a1 l1, a2 l2, a3 l3]^T with a_i ~ N(0, 0.1)).
# The paper does not print them; these are the figures computed over the
# ImageNet training set that fb.resnet.torch published and that later
# reproductions reuse. Column j of the eigenvector matrix pairs with eigenvalue j;
# rows are R, G, B.
IMAGENET_PCA_EIGVAL: tuple[float, float, float] = (0.2175, 0.0188, 0.0045)
IMAGENET_PCA_EIGVEC: tuple[tuple[float, float, float], ...] = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)

# name -> ((mean per channel), (std per channel)) at native resolution.
DATASET_STATS: dict[str, Stats] = {
    "digits": ((0.305320,), (0.323462,)),
    "mnist": ((0.130660,), (0.308108,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "kmnist": ((0.1918,), (0.3483,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    # CIFAR-10 as JPEG files (quality 75), over its 50,000 training images: this copy's own figures.
    "cifar10_jpeg": ((0.491250, 0.482090, 0.446521), (0.245232, 0.242782, 0.260629)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
}


def padded_stats(stats: Stats, native: int, padded: int) -> Stats:
    """Statistics after zero-padding ``native x native`` images to ``padded x padded``.

    The padding adds ``padded**2 - native**2`` zero pixels per image, so with
    ``f = native**2 / padded**2``: ``mean' = f * mean`` and
    ``E[x^2]' = f * (std**2 + mean**2)``.

    Args:
        stats: ``(mean, std)`` per channel at the native size.
        native: native side length.
        padded: side length after padding (``>= native``).

    Returns:
        ``(mean, std)`` per channel of the padded images.
    """
    f = native**2 / padded**2
    means, stds = [], []
    for m, s in zip(*stats):
        m2 = f * m
        second = f * (s * s + m * m)
        means.append(m2)
        stds.append(math.sqrt(second - m2 * m2))
    return tuple(means), tuple(stds)


def channel_stats(images: torch.Tensor) -> Stats:
    """Per-channel mean and (population) std of uint8 images on the ``[0, 1]`` scale.

    Args:
        images: ``(N, C, H, W)`` uint8 tensor.

    Returns:
        ``(mean, std)`` tuples with one entry per channel.
    """
    x = images.to(torch.float64).div_(255.0).transpose(0, 1).reshape(images.shape[1], -1)  # (C, N*H*W)
    mean = x.mean(dim=1)
    std = x.std(dim=1, unbiased=False)
    return tuple(mean.tolist()), tuple(std.tolist())
