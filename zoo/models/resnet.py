"""ResNet: the ImageNet networks (18/34/50/101/152) and the CIFAR networks (20 ... 1202).

Paper: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition",
arXiv:1512.03385 (CVPR 2016). ImageNet networks: Table 1 (Sec. 3.4, 4.1);
CIFAR-10 networks: Sec. 4.2, Table 6.

Variants
--------
* ``resnet18``/``resnet34``: :class:`BasicBlock` (two 3x3 convs) stacked
  [2, 2, 2, 2] / [3, 4, 6, 3] times in four stages of 64/128/256/512 filters.
* ``resnet50``/``resnet101``/``resnet152``: :class:`Bottleneck` (1x1 reduce,
  3x3, 1x1 expand x4) stacked [3, 4, 6, 3] / [3, 4, 23, 3] / [3, 8, 36, 3] times.
* ``resnet20``/``32``/``44``/``56``/``110``/``1202``: the CIFAR networks,
  6n+2 weighted layers for n = 3, 5, 7, 9, 18, 200: a 3x3 conv of 16 filters,
  three stages of n basic blocks with 16/32/64 filters at 32/16/8 px, global
  average pooling and a fully connected layer. Shortcuts are option A
  (parameter-free), as in the paper's Table 6.

Both families are the same :class:`ResNet` class; only the data (block type,
stage depths, widths, stem, shortcut option) differs.

Options and what they change
----------------------------
* ``shortcut``: how a block's input reaches its output.
  ``"A"`` identity, and where the shape changes, subsample by the stride and
  append zero channels (no parameters); ``"B"`` identity where the shape is
  unchanged, a 1x1 projection conv + norm where it changes (default for the
  ImageNet networks, as in the paper's ResNet-50/101/152 and torchvision);
  ``"C"`` a projection on every shortcut.
* ``stride_in_1x1`` (bottlenecks only): where a stage's stride 2 goes.
  The default ``False`` puts it in the 3x3 conv, the layout torchvision ships
  (often called ResNet "v1.5"): it subsamples after a 3x3 window has seen every
  input pixel instead of dropping three of four positions in a 1x1 conv, costs
  about 6% more MACs (4.09 G vs 3.86 G for ResNet-50) and is commonly reported
  to be about 0.5 % more accurate on ImageNet; it is also the layout whose
  pretrained weights exist in torchvision, so ``weights="torchvision"`` and
  :func:`zoo.from_torchvision` reproduce torchvision's outputs exactly.
  ``True`` is the paper's placement (stride in the first 1x1 conv).
* ``zero_init_residual``: initialise the last norm layer of every residual
  branch to zero, so each block starts as the identity (Goyal et al. 2017,
  arXiv:1706.02677, Sec. 5.1). Off by default, as in the paper.
* ``norm``: ``"bn"`` (batch norm after every conv, the paper's choice, default)
  or ``"gn"``: GroupNorm with 32 groups (Wu & He 2018, arXiv:1803.08494) for
  small-batch training; a layer with C < 32 channels or C not divisible by 32
  uses gcd(32, C) groups (e.g. 16 groups for the CIFAR networks' 16 filters).
* ``small_input`` (ImageNet networks): replace the 7x7 stride-2 stem conv and
  the 3x3 stride-2 max-pool by one 3x3 stride-1 conv of 64 filters, so a 32x32
  input keeps 32/16/8/4 px in the four stages instead of shrinking to 1 px.
  Nothing else changes (same stages, same head); the conv count stays the same
  and the parameter count drops by 3*64*(49-9) = 7,680 for 3 input channels.
  Equivalent to ``stem="cifar"``. The CIFAR networks have a single layout, built
  for 32-px images: they take ``small_input=True`` (the default) and refuse
  ``small_input=False`` with a ValueError.
* ``dropout`` (default 0, the paper has none): dropout on the pooled features,
  before the fc layer.

Deviations from the paper
-------------------------
* Bottleneck stride in the 3x3 conv by default (see ``stride_in_1x1``); the
  paper's placement is one option away. Default MACs are therefore those of
  the v1.5 layout.
* ResNet-18 and the ResNet-34 of Table 2 use option-A shortcuts in the paper;
  the default here is B for every ImageNet network (Table 3's ResNet-34 B),
  matching torchvision. Option A is one argument away.
* Option A appends the zero channels after the input channels; the paper only
  says the extra dimensions are zero-padded.
* Batch norm at test time uses running averages; the paper's released models
  use means/variances averaged over a large training batch after training.
* The fc layer keeps PyTorch's default initialisation; the paper does not
  specify it. Convolutions follow the paper's ref. [13] (see ``_init_weights``).
* Not from the paper: ``norm="gn"``, ``zero_init_residual``, ``small_input``,
  ``dropout``.
* CIFAR inputs: the paper subtracts the per-pixel mean; input normalisation is
  left to the data module.

Layer table, ResNet-50 at 3x224x224 (stride in the 3x3)
--------------------------------------------------------
======  ==================================  =======  ==========
stage   layers                              output   channels
======  ==================================  =======  ==========
stem    7x7 conv /2, BN, ReLU               112x112  64
        3x3 max-pool /2                     56x56    64
conv2   [1x1 64, 3x3 64, 1x1 256] x3        56x56    256
conv3   [1x1 128, 3x3 128 /2, 1x1 512] x4   28x28    512
conv4   [1x1 256, 3x3 256 /2, 1x1 1024] x6  14x14    1024
conv5   [1x1 512, 3x3 512 /2, 1x1 2048] x3  7x7      2048
head    global average pool, fc 1000        1x1      1000
======  ==================================  =======  ==========

ResNet-18/34 use [3x3, 3x3] blocks of 64/128/256/512 filters in the same
stages (stride 2 in the first 3x3 of conv3..conv5). ResNet-50 has 25.6 M
parameters and 4.09 G MACs, ResNet-18 11.7 M and 1.81 G. With
``stride_in_1x1=True`` the bottleneck networks cost 3.86 / 7.57 / 11.28 G MACs
(ResNet-50/101/152), Table 1's 3.8 / 7.6 / 11.3 x 10^9 "FLOPs" (multiply-adds).

Layer table, ResNet-20 at 3x32x32 (n = 3)
------------------------------------------
======  =============================  ======  ========
stage   layers                         output  channels
======  =============================  ======  ========
stem    3x3 conv, BN, ReLU             32x32   16
1       [3x3 16, 3x3 16] x n           32x32   16
2       [3x3 32 /2, 3x3 32] x n        16x16   32
3       [3x3 64 /2, 3x3 64] x n        8x8     64
head    global average pool, fc 10     1x1     10
======  =============================  ======  ========

Interface and features
----------------------
``forward_features`` returns the last stage's map, ``forward_head(x, pre_logits=True)``
the pooled ``(B, num_features)`` input of ``fc``, ``get_classifier()`` is ``fc`` and
``reset_classifier(k)`` replaces it (PyTorch's default init, as ``fc``'s). ``feature_info``
has one entry per reduction: ``stem.act`` (2) and ``stages.0`` to ``stages.3`` (4, 8, 16,
32) for the ImageNet layout; with the stride-1 stem ``stages.0`` to ``stages.3`` at 1, 2,
4, 8, and for the CIFAR networks ``stages.0`` to ``stages.2`` at 1, 2, 4.
"""

from __future__ import annotations

import logging
import math
import re
from collections import OrderedDict
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo._registry import Paper, register_model
from zoo.features import feature_info_from_taps
from zoo.interop import register_torchvision
from zoo.layers.head import GlobalPoolClassifierNet
from zoo.layers.init import kaiming_fan_out_init
from zoo.models._common import check_small_input, require_layout

__all__ = ["BasicBlock", "Bottleneck", "ZeroPadShortcut", "ResNet"]

log = logging.getLogger(__name__)

PAPER = Paper(
    title="Deep Residual Learning for Image Recognition",
    authors="He et al.",
    year=2015,
    arxiv="1512.03385",
)

_SHORTCUTS = ("A", "B", "C")
_NORMS = ("bn", "gn")
_STEMS = ("imagenet", "cifar")


def _norm(kind: str, channels: int) -> nn.Module:
    """Returns the normalisation layer for ``channels`` feature maps.

    Args:
        kind: ``"bn"`` (BatchNorm2d) or ``"gn"`` (GroupNorm, 32 groups or
            gcd(32, channels) when 32 does not divide ``channels``).
        channels: number of channels.
    """
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    raise ValueError(f"norm must be one of {_NORMS}, got {kind!r}")


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut: identity, subsampled by ``stride``, with zero channels appended.

    Has no parameters. For stride 2 it keeps every other row and column
    (the positions a 1x1 stride-2 conv would see), then pads the channel
    dimension from ``in_ch`` to ``out_ch`` with zeros.

    Args:
        in_ch: input channels.
        out_ch: output channels (>= ``in_ch``).
        stride: spatial subsampling factor.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        if out_ch < in_ch:
            raise ValueError(f"option-A shortcut cannot reduce channels ({in_ch} -> {out_ch})")
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]  # (B, in_ch, ceil(H/s), ceil(W/s))
        if self.out_ch > self.in_ch:
            x = F.pad(x, (0, 0, 0, 0, 0, self.out_ch - self.in_ch))  # (B, out_ch, H', W')
        return x

    def extra_repr(self) -> str:
        return f"{self.in_ch}, {self.out_ch}, stride={self.stride}"


def _shortcut(option: str, in_ch: int, out_ch: int, stride: int, norm: str) -> nn.Module:
    """Builds the shortcut of one block for shortcut option A, B or C."""
    if option not in _SHORTCUTS:
        raise ValueError(f"shortcut must be one of {_SHORTCUTS}, got {option!r}")
    same_shape = in_ch == out_ch and stride == 1
    if option == "C" or (option == "B" and not same_shape):
        return nn.Sequential(OrderedDict(
            conv=_conv1x1(in_ch, out_ch, stride),
            norm=_norm(norm, out_ch),
        ))
    if same_shape:
        return nn.Identity()
    return ZeroPadShortcut(in_ch, out_ch, stride)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a shortcut: ``relu(norm(conv(relu(norm(conv(x))))) + shortcut(x))``.

    Args:
        in_ch: input channels.
        width: filters of both 3x3 convs (the block outputs ``width`` channels).
        stride: stride of the first 3x3 conv (and of the shortcut).
        shortcut: ``"A"``, ``"B"`` or ``"C"`` (see the module docstring).
        norm: ``"bn"`` or ``"gn"``.
        stride_in_1x1: unused (basic blocks have no 1x1 conv); accepted so that
            both block types share one constructor signature.
    """

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1, *, shortcut: str = "B",
                 norm: str = "bn", stride_in_1x1: bool = False) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = _conv3x3(in_ch, width, stride)
        self.norm1 = _norm(norm, width)
        self.conv2 = _conv3x3(width, out_ch)
        self.norm2 = _norm(norm, out_ch)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(shortcut, in_ch, out_ch, stride, norm)

    __jit_unused_properties__ = ["last_norm"]  # Python-side helper, left out of TorchScript

    @property
    def last_norm(self) -> nn.Module:
        """The norm layer that ends the residual branch (zeroed by ``zero_init_residual``)."""
        return self.norm2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm1(self.conv1(x)))  # (B, width, H/s, W/s)
        out = self.norm2(self.conv2(out))  # (B, width, H/s, W/s)
        out += self.shortcut(x)  # in place, as torchvision: no extra (B, C, H, W) buffer per block
        return self.act(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), with a shortcut.

    Args:
        in_ch: input channels.
        width: filters of the 1x1 reduce and the 3x3 conv; the block outputs
            ``4 * width`` channels.
        stride: the stage's stride, applied in the 3x3 conv (default) or in
            the first 1x1 conv (``stride_in_1x1=True``, the paper's placement).
        shortcut: ``"A"``, ``"B"`` or ``"C"``.
        norm: ``"bn"`` or ``"gn"``.
        stride_in_1x1: put the stride in the first 1x1 conv instead of the 3x3.
    """

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, *, shortcut: str = "B",
                 norm: str = "bn", stride_in_1x1: bool = False) -> None:
        super().__init__()
        out_ch = width * self.expansion
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = _conv1x1(in_ch, width, s1)
        self.norm1 = _norm(norm, width)
        self.conv2 = _conv3x3(width, width, s3)
        self.norm2 = _norm(norm, width)
        self.conv3 = _conv1x1(width, out_ch)
        self.norm3 = _norm(norm, out_ch)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(shortcut, in_ch, out_ch, stride, norm)

    __jit_unused_properties__ = ["last_norm"]  # Python-side helper, left out of TorchScript

    @property
    def last_norm(self) -> nn.Module:
        """The norm layer that ends the residual branch (zeroed by ``zero_init_residual``)."""
        return self.norm3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm1(self.conv1(x)))  # (B, width, ., .)
        out = self.act(self.norm2(self.conv2(out)))  # (B, width, H/s, W/s)
        out = self.norm3(self.conv3(out))  # (B, 4*width, H/s, W/s)
        out += self.shortcut(x)  # in place, as torchvision (see BasicBlock.forward)
        return self.act(out)


_BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(GlobalPoolClassifierNet):
    """A residual network described by data: block type, stage depths and widths, stem.

    Stage ``i`` stacks ``depths[i]`` blocks of width ``widths[i]``; every stage
    after the first halves the resolution in its first block. The head (global average
    pooling, dropout, ``fc``) and its methods are :class:`zoo.layers.head.GlobalPoolClassifierNet`'s;
    a new ``fc`` keeps PyTorch's default initialisation, as the first one.

    Args:
        block: ``"basic"`` or ``"bottleneck"`` (or the block class).
        depths: blocks per stage, e.g. ``(3, 4, 6, 3)``.
        widths: block width per stage, e.g. ``(64, 128, 256, 512)``.
        num_classes: outputs of the final fc layer.
        in_chans: input image channels.
        stem: ``"imagenet"`` (7x7 stride-2 conv, 3x3 stride-2 max-pool) or
            ``"cifar"`` (3x3 stride-1 conv, no pooling).
        stem_width: filters of the stem conv.
        shortcut: ``"A"``, ``"B"`` or ``"C"``.
        stride_in_1x1: bottlenecks put the stride in the first 1x1 conv.
        zero_init_residual: zero the last norm layer of every residual branch.
        norm: ``"bn"`` or ``"gn"``.
        dropout: dropout before the fc layer (0: none).
    """

    def __init__(
        self,
        block: str | type[BasicBlock] | type[Bottleneck],
        depths: Sequence[int],
        widths: Sequence[int],
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        stem: str = "imagenet",
        stem_width: int = 64,
        shortcut: str = "B",
        stride_in_1x1: bool = False,
        zero_init_residual: bool = False,
        norm: str = "bn",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        block_cls = _BLOCKS[block] if isinstance(block, str) else block
        if len(depths) != len(widths):
            raise ValueError(f"depths {tuple(depths)} and widths {tuple(widths)} differ in length")
        if stem not in _STEMS:
            raise ValueError(f"stem must be one of {_STEMS}, got {stem!r}")
        if shortcut not in _SHORTCUTS:
            raise ValueError(f"shortcut must be one of {_SHORTCUTS}, got {shortcut!r}")
        self.depths, self.widths = tuple(depths), tuple(widths)
        self.num_classes = num_classes

        if stem == "imagenet":
            self.stem = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(in_chans, stem_width, kernel_size=7, stride=2, padding=3, bias=False),
                norm=_norm(norm, stem_width),
                act=nn.ReLU(inplace=True),
                pool=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            ))
        else:
            self.stem = nn.Sequential(OrderedDict(
                conv=_conv3x3(in_chans, stem_width),
                norm=_norm(norm, stem_width),
                act=nn.ReLU(inplace=True),
            ))

        reduction = 2 if stem == "imagenet" else 1
        taps = [("stem.act", stem_width, reduction)]  # (module, channels, reduction), for feature_info
        if stem == "imagenet":
            reduction *= 2
            taps.append(("stem.pool", stem_width, reduction))

        stages: list[nn.Module] = []
        in_ch = stem_width
        for i, (depth, width) in enumerate(zip(depths, widths)):
            blocks = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block_cls(in_ch, width, stride, shortcut=shortcut, norm=norm,
                                        stride_in_1x1=stride_in_1x1))
                in_ch = width * block_cls.expansion
            stages.append(nn.Sequential(*blocks))
            reduction *= 2 if i > 0 else 1
            taps.append((f"stages.{i}", in_ch, reduction))
        self.stages = nn.Sequential(*stages)
        self.feature_info = feature_info_from_taps(taps)
        self.num_features = in_ch
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_ch, num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool = False) -> None:
        """Initialises the weights.

        Convolutions: zero-mean Gaussian with std sqrt(2 / (k*k*c_out)), the
        "MSRA"/Kaiming initialisation of He et al. 2015, "Delving Deep into
        Rectifiers", arXiv:1502.01852, Sec. 2.2 (the backward-propagation form,
        n = k^2 d), which the ResNet paper adopts as its ref. [13]
        (:func:`zoo.layers.init.kaiming_fan_out_init`).
        Norm layers: weight 1, bias 0. With ``zero_init_residual`` the last
        norm of every residual branch gets weight 0 (Goyal et al. 2017,
        arXiv:1706.02677). The fc layer keeps PyTorch's default.
        On the meta device (shapes only, e.g. for counting) there is nothing to initialise.
        """
        if self.fc.weight.is_meta:
            return
        kaiming_fan_out_init(self, linear_std=None)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_norm.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the last stage's feature map ``(B, num_features, h, w)``."""
        x = self.stem(x)  # (B, stem_width, H/4, W/4) imagenet stem; (B, stem_width, H, W) cifar stem
        return self.stages(x)  # (B, num_features, h, w)



# --------------------------------------------------------------------------- ImageNet networks

_IMAGENET_WIDTHS = (64, 128, 256, 512)


def _imagenet_resnet(name: str, block: str, depths: Sequence[int], *, num_classes: int, in_chans: int,
                     small_input: bool, **kwargs: Any) -> ResNet:
    check_small_input(name, small_input)
    if "stem" in kwargs and small_input and kwargs["stem"] != "cifar":
        raise ValueError(f"small_input=True selects stem='cifar'; got stem={kwargs['stem']!r}")
    kwargs.setdefault("stem", "cifar" if small_input else "imagenet")
    return ResNet(block, depths, _IMAGENET_WIDTHS, num_classes=num_classes, in_chans=in_chans, **kwargs)


_IMAGENET_NOTE = ("ImageNet layout of Table 1, option-B shortcuts{v15}; small_input=True: "
                  "3x3 stride-1 stem, no max-pool")
_V15 = ", stride in the bottleneck's 3x3 (v1.5, torchvision)"


@register_model(paper=PAPER, input_size=(3, 224, 224), num_classes=1000,
                params=11_689_512, macs=1_814_073_344,
                paper_results={"imagenet/top1_err_10crop": 27.88},
                notes=_IMAGENET_NOTE.format(v15="") + "; paper result is Table 2 (option-A shortcuts)")
def resnet18(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
             dropout: float = 0.0, **kwargs: Any) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2].

    Args:
        num_classes: output classes.
        in_chans: input channels.
        small_input: 3x3 stride-1 stem without max-pool, for 28-32 px inputs.
        dropout: dropout before the fc layer (0: none, as in the paper).
        **kwargs: further :class:`ResNet` options (``shortcut``, ``norm``, ...).
    """
    return _imagenet_resnet("resnet18", "basic", (2, 2, 2, 2), num_classes=num_classes,
                            in_chans=in_chans, small_input=small_input, dropout=dropout, **kwargs)


@register_model(paper=PAPER, input_size=(3, 224, 224), num_classes=1000,
                params=21_797_672, macs=3_663_761_408,
                paper_results={"imagenet/top1_err_10crop": 24.52, "imagenet/top5_err_10crop": 7.46},
                notes=_IMAGENET_NOTE.format(v15="") + "; paper result is Table 3, ResNet-34 B")
def resnet34(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
             dropout: float = 0.0, **kwargs: Any) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3]. Args as :func:`resnet18`."""
    return _imagenet_resnet("resnet34", "basic", (3, 4, 6, 3), num_classes=num_classes,
                            in_chans=in_chans, small_input=small_input, dropout=dropout, **kwargs)


@register_model(paper=PAPER, input_size=(3, 224, 224), num_classes=1000,
                params=25_557_032, macs=4_089_184_256,
                paper_results={"imagenet/top1_err_10crop": 22.85, "imagenet/top5_err_10crop": 6.71},
                notes=_IMAGENET_NOTE.format(v15=_V15) + "; paper result is Table 3 (stride in the 1x1)")
def resnet50(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
             dropout: float = 0.0, **kwargs: Any) -> ResNet:
    """ResNet-50: bottleneck blocks [3, 4, 6, 3]. Args as :func:`resnet18`, plus ``stride_in_1x1``."""
    return _imagenet_resnet("resnet50", "bottleneck", (3, 4, 6, 3), num_classes=num_classes,
                            in_chans=in_chans, small_input=small_input, dropout=dropout, **kwargs)


@register_model(paper=PAPER, input_size=(3, 224, 224), num_classes=1000,
                params=44_549_160, macs=7_801_405_440,
                paper_results={"imagenet/top1_err_10crop": 21.75, "imagenet/top5_err_10crop": 6.05},
                notes=_IMAGENET_NOTE.format(v15=_V15) + "; paper result is Table 3 (stride in the 1x1)")
def resnet101(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
              dropout: float = 0.0, **kwargs: Any) -> ResNet:
    """ResNet-101: bottleneck blocks [3, 4, 23, 3]. Args as :func:`resnet50`."""
    return _imagenet_resnet("resnet101", "bottleneck", (3, 4, 23, 3), num_classes=num_classes,
                            in_chans=in_chans, small_input=small_input, dropout=dropout, **kwargs)


@register_model(paper=PAPER, input_size=(3, 224, 224), num_classes=1000,
                params=60_192_808, macs=11_513_626_624,
                paper_results={"imagenet/top1_err_10crop": 21.43, "imagenet/top5_err_10crop": 5.71},
                notes=_IMAGENET_NOTE.format(v15=_V15) + "; paper result is Table 3 (stride in the 1x1)")
def resnet152(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
              dropout: float = 0.0, **kwargs: Any) -> ResNet:
    """ResNet-152: bottleneck blocks [3, 8, 36, 3]. Args as :func:`resnet50`."""
    return _imagenet_resnet("resnet152", "bottleneck", (3, 8, 36, 3), num_classes=num_classes,
                            in_chans=in_chans, small_input=small_input, dropout=dropout, **kwargs)


# --------------------------------------------------------------------------- CIFAR networks

def _cifar_resnet(n: int, *, num_classes: int, in_chans: int, small_input: bool, **kwargs: Any) -> ResNet:
    require_layout(f"resnet{6 * n + 2}", small_input,
                   layout="the CIFAR network of Sec. 4.2, for 32-px images; resnet18-152 are the ImageNet ones")
    kwargs.setdefault("shortcut", "A")
    return ResNet("basic", (n, n, n), (16, 32, 64), num_classes=num_classes, in_chans=in_chans,
                  stem="cifar", stem_width=16, **kwargs)


_CIFAR_NOTE = "CIFAR-10 network of Sec. 4.2, 6n+2 layers with n={n}, option-A shortcuts"


@register_model(paper=PAPER, input_size=(3, 32, 32), num_classes=10,
                params=269_722, macs=40_551_040,
                paper_results={"cifar10/top1_err": 8.75}, notes=_CIFAR_NOTE.format(n=3))
def resnet20(*, num_classes: int = 10, in_chans: int = 3, small_input: bool = True, dropout: float = 0.0,
             **kwargs: Any) -> ResNet:
    """ResNet-20 for CIFAR (n = 3).

    Args:
        num_classes: output classes.
        in_chans: input channels.
        small_input: must be ``True``: the CIFAR networks are built for 32-px images only.
        dropout: dropout before the fc layer (0: none, as in the paper).
        **kwargs: further :class:`ResNet` options (``shortcut``, ``norm``, ...).

    Raises:
        ValueError: for ``small_input=False``.
    """
    return _cifar_resnet(3, num_classes=num_classes, in_chans=in_chans, small_input=small_input,
                         dropout=dropout, **kwargs)


@register_model(paper=PAPER, input_size=(3, 32, 32), num_classes=10,
                params=464_154, macs=68_862_592,
                paper_results={"cifar10/top1_err": 7.51}, notes=_CIFAR_NOTE.format(n=5))
def resnet32(*, num_classes: int = 10, in_chans: int = 3, small_input: bool = True, dropout: float = 0.0,
             **kwargs: Any) -> ResNet:
    """ResNet-32 for CIFAR (n = 5). Args as :func:`resnet20`."""
    return _cifar_resnet(5, num_classes=num_classes, in_chans=in_chans, small_input=small_input,
                         dropout=dropout, **kwargs)


@register_model(paper=PAPER, input_size=(3, 32, 32), num_classes=10,
                params=658_586, macs=97_174_144,
                paper_results={"cifar10/top1_err": 7.17}, notes=_CIFAR_NOTE.format(n=7))
def resnet44(*, num_classes: int = 10, in_chans: int = 3, small_input: bool = True, dropout: float = 0.0,
             **kwargs: Any) -> ResNet:
    """ResNet-44 for CIFAR (n = 7). Args as :func:`resnet20`."""
    return _cifar_resnet(7, num_classes=num_classes, in_chans=in_chans, small_input=small_input,
                         dropout=dropout, **kwargs)


@register_model(paper=PAPER, input_size=(3, 32, 32), num_classes=10,
                params=853_018, macs=125_485_696,
                paper_results={"cifar10/top1_err": 6.97}, notes=_CIFAR_NOTE.format(n=9))
def resnet56(*, num_classes: int = 10, in_chans: int = 3, small_input: bool = True, dropout: float = 0.0,
             **kwargs: Any) -> ResNet:
    """ResNet-56 for CIFAR (n = 9). Args as :func:`resnet20`."""
    return _cifar_resnet(9, num_classes=num_classes, in_chans=in_chans, small_input=small_input,
                         dropout=dropout, **kwargs)


@register_model(paper=PAPER, input_size=(3, 32, 32), num_classes=10,
                params=1_727_962, macs=252_887_680,
                paper_results={"cifar10/top1_err": 6.43}, notes=_CIFAR_NOTE.format(n=18))
def resnet110(*, num_classes: int = 10, in_chans: int = 3, small_input: bool = True, dropout: float = 0.0,
              **kwargs: Any) -> ResNet:
    """ResNet-110 for CIFAR (n = 18). Args as :func:`resnet20`."""
    return _cifar_resnet(18, num_classes=num_classes, in_chans=in_chans, small_input=small_input,
                         dropout=dropout, **kwargs)


@register_model(paper=PAPER, input_size=(3, 32, 32), num_classes=10,
                params=19_421_274, macs=2_829_238_912,
                paper_results={"cifar10/top1_err": 7.93}, notes=_CIFAR_NOTE.format(n=200))
def resnet1202(*, num_classes: int = 10, in_chans: int = 3, small_input: bool = True, dropout: float = 0.0,
               **kwargs: Any) -> ResNet:
    """ResNet-1202 for CIFAR (n = 200). Args as :func:`resnet20`."""
    return _cifar_resnet(200, num_classes=num_classes, in_chans=in_chans, small_input=small_input,
                         dropout=dropout, **kwargs)


# --------------------------------------------------------------------------- torchvision interop

_TV_KEY_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^conv1\."), "stem.conv."),
    (re.compile(r"^bn1\."), "stem.norm."),
    (re.compile(r"^layer(\d+)\.(\d+)\.downsample\.0\."), r"stages.{s}.\2.shortcut.conv."),
    (re.compile(r"^layer(\d+)\.(\d+)\.downsample\.1\."), r"stages.{s}.\2.shortcut.norm."),
    (re.compile(r"^layer(\d+)\.(\d+)\.conv(\d)\."), r"stages.{s}.\2.conv\3."),
    (re.compile(r"^layer(\d+)\.(\d+)\.bn(\d)\."), r"stages.{s}.\2.norm\3."),
)


def _tv_key(key: str) -> str:
    """Maps one torchvision ResNet key (``layer2.0.bn1.weight``) to this module's (``stages.1.0.norm1.weight``)."""
    for pattern, repl in _TV_KEY_RULES:
        m = pattern.match(key)
        if m:
            stage = str(int(m.group(1)) - 1) if m.groups() else ""
            return pattern.sub(repl.replace("{s}", stage), key, count=1)
    return key  # fc.weight, fc.bias


def _from_torchvision_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Renames a torchvision ResNet state dict to :class:`ResNet`'s keys."""
    return {_tv_key(k): v for k, v in state_dict.items()}


for _name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
    register_torchvision(_name, _name, remap=_from_torchvision_keys)
