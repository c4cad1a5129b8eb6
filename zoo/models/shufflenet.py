"""ShuffleNet v1 and v2.

**v1**: Zhang et al. 2017, "ShuffleNet: An Extremely Efficient Convolutional Neural
Network for Mobile Devices", arXiv:1707.01083. The ImageNet network of Table 1 with
``g`` = 1, 2, 3, 4, 8 groups at 1x (``shufflenet_v1_g{g}``) and scale factors ``s``
of Sec. 4.1 (``shufflenet_v1_g3_x0_25``, ``_x0_5``, ``_x1_5``, ``_x2_0``); the other
``(g, s)`` of Table 2 are ``ShuffleNetV1(groups=g, width_mult=s)`` (g=8 below 1x also
needs ``stem_channels=16``: the stride-2 branch of stage 2 makes ``C_2 - C_stem``
channels, which ``g`` must divide).

* Stem: 3x3/2 convolution with 24 channels, then 3x3/2 max pool.
* Stages 2-4 of 4 / 8 / 4 units; the first unit of each has stride 2. Output
  channels per stage from Table 1 (g=3: 240 / 480 / 960), times ``s``.
* Unit (Fig. 2b/c): 1x1 group conv to a bottleneck of a quarter of the unit's
  output channels, BN, ReLU, channel shuffle, 3x3 depthwise conv (stride 1 or 2),
  BN (no ReLU), 1x1 group conv, BN; then the shortcut is added (stride 1), or the
  3x3/2 average-pooled input is concatenated (stride 2, the branch producing
  ``out - in`` channels), and a ReLU follows.
* The first pointwise layer of stage 2 is an ordinary (ungrouped) convolution:
  its input has only 24 channels (Sec. 3.3).

Deviations and notes (v1):

* Where the first 1x1 convolution is ungrouped (the first unit of stage 2), the
  channel shuffle after it is left out: the layer already mixes all channels, so a
  shuffle would only permute its filters.
* The paper gives the stem width (24) only at 1x. The scaled networks use 12
  (0.25x, 0.5x), 24 (1.5x) and 48 (2x) channels: the widths that reproduce the
  paper's complexity figures at 224 px (13.3 / 37.6 / 292.4 / 524.0 M multiply-adds
  against 13 / 38 / 292 / 524 M).
* The bottleneck is a quarter of the unit's output rounded to a multiple of ``g``;
  this is exact for every 1x width of Table 1 and for the registered scales.
* Classifier: global average pool and one fully connected layer; no dropout in the
  paper (``dropout``, default 0, adds dropout before the fully connected layer).
* Multiply-adds at 224 px: 143.1 / 140.8 / 137.5 / 134.3 / 138.4 M for g = 1/2/3/4/8
  (Table 1's complexity column: 143 / 140 / 137 / 133 / 137 M).

**v2**: Ma et al. 2018, "ShuffleNet V2: Practical Guidelines for Efficient CNN
Architecture Design", arXiv:1807.11164. The network of Table 5 at 0.5x, 1x, 1.5x
and 2x (``shufflenet_v2_x0_5`` ... ``_x2_0``), with the unit of Fig. 3c/d:

* Stride 1: channel split into two halves; one half passes unchanged, the other
  goes through 1x1 conv-BN-ReLU, 3x3 depthwise conv-BN, 1x1 conv-BN-ReLU; the
  halves are concatenated and shuffled with 2 groups.
* Stride 2: no split; both branches see the whole input (the left one a 3x3/2
  depthwise conv-BN and a 1x1 conv-BN-ReLU), so the channels double.
* After stage 4, a 1x1 conv to 1024 channels (2048 at 2x), global average pool, fc.
* Multiply-adds at 224 px: 40.5 / 144.9 / 295.8 / 583.3 M for 0.5x / 1x / 1.5x / 2x
  (Table 5: 41 / 146 / 299 / 591 M; the paper's counts are about 1% higher throughout).

The v2 models have torchvision's ``shufflenet_v2_x*`` architecture exactly; their
weights load with ``zoo.from_torchvision`` / ``create_model(..., weights="torchvision")``.

Small inputs (both versions): ``small_input=True`` gives the stem convolution
stride 1 and drops the stem max pool, so the network downsamples 8x instead of 32x
(32 px -> 4x4 before the pool). Nothing else changes.

Interface (both versions; :class:`zoo.layers.head.GlobalPoolClassifierNet`):
``forward_features`` returns the last map (v2: after conv5), ``forward_head(x,
pre_logits=True)`` the pooled ``(B, num_features)`` input of ``fc``, ``get_classifier()`` is
``fc`` and ``reset_classifier(k)`` replaces it. Neither paper uses dropout; ``dropout``
(default 0) adds it before ``fc``. ``feature_info`` has one entry per reduction, the last
module at each: the stem at 2, the max pool at 4, stages 2-4 at 8, 16, 32 (v2: conv5 in
place of stage 4 at 32); with ``small_input`` the stem at 1 and stages 2-4 (v2: conv5) at
2, 4, 8.

Layer table (v1, g=3, 1x, 224 px)::

    layer                  output        units  stride
    conv 3x3               112x112x24    -      2
    max pool 3x3            56x56x24     -      2
    stage 2                 28x28x240    1+3    2, 1
    stage 3                 14x14x480    1+7    2, 1
    stage 4                  7x7x960     1+3    2, 1
    global pool, fc         1000

Layer table (v2, 1x, 224 px)::

    layer                  output        units  stride
    conv 3x3               112x112x24    -      2
    max pool 3x3            56x56x24     -      2
    stage 2                 28x28x116    1+3    2, 1
    stage 3                 14x14x232    1+7    2, 1
    stage 4                  7x7x464     1+3    2, 1
    conv 1x1                 7x7x1024    -      1
    global pool, fc         1000
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

from zoo._registry import Paper, register_model
from zoo.features import feature_info_from_taps
from zoo.interop import register_torchvision
from zoo.layers.conv import ConvBNAct, channel_shuffle
from zoo.layers.head import GlobalPoolClassifierNet
from zoo.layers.init import kaiming_fan_out_init
from zoo.models._common import check_small_input

# channel_shuffle is a leaf of torch.fx traces (see zoo.layers.conv); registered for this module's name too.
torch.fx.wrap("channel_shuffle")

__all__ = [
    "ShuffleV1Unit",
    "ShuffleNetV1",
    "ShuffleV2Unit",
    "ShuffleNetV2",
]

PAPER_V1 = Paper(
    title="ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices",
    authors="Zhang et al.",
    year=2017,
    arxiv="1707.01083",
)
PAPER_V2 = Paper(
    title="ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
    authors="Ma et al.",
    year=2018,
    arxiv="1807.11164",
)

# Table 1 of the v1 paper: output channels of stages 2-4 at 1x, per number of groups.
V1_STAGE_CHANNELS: dict[int, tuple[int, int, int]] = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}

# Stem width per scale factor. The paper does not list it for the scaled networks; these widths
# reproduce its complexity figures at 224 px (0.25x: 13 M, 0.5x: 38 M, 1.5x: 292 M, 2x: 524 M).
V1_STEM_CHANNELS: dict[float, int] = {0.25: 12, 0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}

# Table 5 of the v2 paper: output channels of stages 2-4 and of conv5, per scale.
V2_CHANNELS: dict[str, tuple[tuple[int, int, int], int]] = {
    "0.5": ((48, 96, 192), 1024),
    "1.0": ((116, 232, 464), 1024),
    "1.5": ((176, 352, 704), 1024),
    "2.0": ((244, 488, 976), 2048),
}


class ShuffleV1Unit(nn.Module):
    """The ShuffleNet v1 unit (Fig. 2b for stride 1, Fig. 2c for stride 2).

    Args:
        in_channels: input channels.
        out_channels: output channels of the unit (for stride 2, including the
            ``in_channels`` of the pooled shortcut that is concatenated).
        groups: groups of the 1x1 group convolutions.
        stride: 1 (residual add) or 2 (concatenate the 3x3/2 average-pooled input).
        group_first: group the first 1x1 convolution (False only at the start of stage 2).
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int, stride: int = 1,
                 group_first: bool = True) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if stride == 1 and in_channels != out_channels:
            raise ValueError("a stride-1 unit adds its input, so in_channels must equal out_channels")
        self.stride = stride
        # a quarter of the output, rounded to a multiple of the groups (exact for Table 1's 1x widths)
        mid = groups * max(1, round(out_channels / 4 / groups))
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        g1 = groups if group_first else 1
        self.reduce = ConvBNAct(in_channels, mid, 1, groups=g1)
        self.shuffle_groups = g1
        self.depthwise = ConvBNAct(mid, mid, 3, stride=stride, groups=mid, act_layer=None)
        self.expand = ConvBNAct(mid, branch_out, 1, groups=groups, act_layer=None)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.reduce(x)  # (B, C_in, H, W) -> (B, mid, H, W)
        if self.shuffle_groups > 1:
            h = channel_shuffle(h, self.shuffle_groups)
        h = self.expand(self.depthwise(h))  # (B, mid, H/s, W/s) -> (B, branch_out, H/s, W/s)
        if self.stride == 2:
            out = torch.cat([self.shortcut(x), h], dim=1)  # (B, C_out, H/2, W/2)
        else:
            out = x + h
        return F.relu(out)


def _stem_taps(stem_channels: int, small_input: bool) -> tuple[list[tuple[str, int, int]], int]:
    """The ``feature_info`` taps of the stem (conv, then max pool unless ``small_input``) and its reduction."""
    if small_input:
        return [("stem", stem_channels, 1)], 1
    return [("stem", stem_channels, 2), ("maxpool", stem_channels, 4)], 4


class _ShuffleNet(GlobalPoolClassifierNet):
    """What both versions share: the initialisation and a new classifier's initialisation."""

    def _init_weights(self) -> None:
        """See :func:`zoo.layers.init.kaiming_fan_out_init` (He et al. 2015, arXiv:1502.01852):
        He-normal (fan-out) convolutions, unit BatchNorm, N(0, 0.01) classifier with zero bias."""
        kaiming_fan_out_init(self)

    def _init_classifier(self, layer: nn.Linear) -> None:
        """A new ``fc``: N(0, 0.01) weights and zero bias, as :meth:`_init_weights`."""
        nn.init.normal_(layer.weight, 0.0, 0.01)
        nn.init.zeros_(layer.bias)


class ShuffleNetV1(_ShuffleNet):
    """ShuffleNet v1 (Table 1), built from stage channel counts and unit counts.

    Args:
        groups: groups ``g`` of the pointwise group convolutions.
        width_mult: scale factor ``s`` of the stage channels (Sec. 4.1).
        stage_channels: output channels of stages 2-4 at 1x; default from Table 1 for ``groups``.
        stage_units: units per stage.
        stem_channels: channels of the stem convolution; ``None`` for :data:`V1_STEM_CHANNELS`
            of ``width_mult`` (24 at 1x).
        num_classes: classifier outputs.
        in_chans: input image channels.
        small_input: stride-1 stem without max pool, for 28/32-px images.
        dropout: dropout before the classifier (0: none, as in the paper).
    """

    def __init__(self, groups: int = 3, width_mult: float = 1.0, stage_channels: Sequence[int] | None = None,
                 stage_units: Sequence[int] = (4, 8, 4), stem_channels: int | None = None, *,
                 num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if stem_channels is None:
            stem_channels = V1_STEM_CHANNELS.get(width_mult, 24)
        if stage_channels is None:
            if groups not in V1_STAGE_CHANNELS:
                raise ValueError(f"Table 1 has groups {sorted(V1_STAGE_CHANNELS)}; got {groups} "
                                 f"(pass stage_channels for other settings)")
            stage_channels = V1_STAGE_CHANNELS[groups]
        widths = [int(c * width_mult) for c in stage_channels]
        self.stem = ConvBNAct(in_chans, stem_channels, 3, stride=1 if small_input else 2)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        stages: list[nn.Module] = []
        c = stem_channels
        taps, reduction = _stem_taps(stem_channels, small_input)  # for feature_info
        for i, (out, units) in enumerate(zip(widths, stage_units)):
            blocks = [ShuffleV1Unit(c, out, groups, stride=2, group_first=i > 0)]
            blocks += [ShuffleV1Unit(out, out, groups) for _ in range(units - 1)]
            stages.append(nn.Sequential(*blocks))
            c, reduction = out, reduction * 2
            taps.append((f"stages.{i}", c, reduction))
        self.stages = nn.Sequential(*stages)
        self.feature_info = feature_info_from_taps(taps)
        self.num_classes = num_classes
        self.num_features = c
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(c, num_classes)
        self._init_weights()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` image -> ``(B, C_4, H/32, W/32)`` feature map."""
        return self.stages(self.maxpool(self.stem(x)))


class ShuffleV2Unit(nn.Module):
    """The ShuffleNet v2 unit (Fig. 3c for stride 1, Fig. 3d for stride 2).

    Args:
        in_channels: input channels.
        out_channels: output channels (each branch produces half).
        stride: 1 (channel split, one half passes through) or 2 (both branches see the input).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if out_channels % 2:
            raise ValueError(f"out_channels must be even, got {out_channels}")
        half = out_channels // 2
        if stride == 1 and in_channels != out_channels:
            raise ValueError("a stride-1 unit splits and re-concatenates, so in_channels must equal out_channels")
        self.stride = stride
        main_in = in_channels if stride == 2 else half
        self.shortcut = nn.Sequential(
            ConvBNAct(in_channels, in_channels, 3, stride=2, groups=in_channels, act_layer=None),
            ConvBNAct(in_channels, half, 1),
        ) if stride == 2 else nn.Identity()
        self.main = nn.Sequential(
            ConvBNAct(main_in, half, 1),
            ConvBNAct(half, half, 3, stride=stride, groups=half, act_layer=None),
            ConvBNAct(half, half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            left, right = x.chunk(2, dim=1)  # channel split: (B, C/2, H, W) each
        else:
            left, right = x, x
        out = torch.cat([self.shortcut(left), self.main(right)], dim=1)  # (B, C_out, H/s, W/s)
        return channel_shuffle(out, 2)


class ShuffleNetV2(_ShuffleNet):
    """ShuffleNet v2 (Table 5), built from stage channel counts and unit counts.

    Args:
        stage_channels: output channels of stages 2-4.
        head_channels: output channels of the final 1x1 convolution (conv5).
        stage_units: units per stage.
        stem_channels: channels of the stem convolution.
        num_classes: classifier outputs.
        in_chans: input image channels.
        small_input: stride-1 stem without max pool, for 28/32-px images.
        dropout: dropout before the classifier (0: none, as in the paper).
    """

    def __init__(self, stage_channels: Sequence[int] = (116, 232, 464), head_channels: int = 1024,
                 stage_units: Sequence[int] = (4, 8, 4), stem_channels: int = 24, *, num_classes: int = 1000,
                 in_chans: int = 3, small_input: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.stem = ConvBNAct(in_chans, stem_channels, 3, stride=1 if small_input else 2)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        stages: list[nn.Module] = []
        c = stem_channels
        taps, reduction = _stem_taps(stem_channels, small_input)  # for feature_info
        for i, (out, units) in enumerate(zip(stage_channels, stage_units)):
            stages.append(nn.Sequential(ShuffleV2Unit(c, out, 2),
                                        *[ShuffleV2Unit(out, out, 1) for _ in range(units - 1)]))
            c, reduction = out, reduction * 2
            taps.append((f"stages.{i}", c, reduction))
        self.stages = nn.Sequential(*stages)
        self.conv5 = ConvBNAct(c, head_channels, 1)
        taps.append(("conv5", head_channels, reduction))
        self.feature_info = feature_info_from_taps(taps)
        self.num_classes = num_classes
        self.num_features = head_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(head_channels, num_classes)
        self._init_weights()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` image -> ``(B, head_channels, H/32, W/32)`` feature map."""
        return self.conv5(self.stages(self.maxpool(self.stem(x))))


# ---------------------------------------------------------------------------------------------
# torchvision interop: torchvision's ShuffleNetV2 keeps conv and BN as indices of nn.Sequential.

_TV_BRANCH2 = {"0": "main.0.conv", "1": "main.0.bn", "3": "main.1.conv", "4": "main.1.bn",
               "5": "main.2.conv", "6": "main.2.bn"}
_TV_BRANCH1 = {"0": "shortcut.0.conv", "1": "shortcut.0.bn", "2": "shortcut.1.conv", "3": "shortcut.1.bn"}
_TV_TOP = {"conv1.0": "stem.conv", "conv1.1": "stem.bn", "conv5.0": "conv5.conv", "conv5.1": "conv5.bn"}


def _tv_key(key: str) -> str:
    m = re.fullmatch(r"stage(\d)\.(\d+)\.branch([12])\.(\d+)\.(\w+)", key)
    if m:
        stage, unit, branch, idx, leaf = m.groups()
        table = _TV_BRANCH1 if branch == "1" else _TV_BRANCH2
        return f"stages.{int(stage) - 2}.{unit}.{table[idx]}.{leaf}"
    head, _, leaf = key.rpartition(".")
    return f"{_TV_TOP[head]}.{leaf}" if head in _TV_TOP else key


def _tv_remap(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Maps torchvision ``ShuffleNetV2`` state-dict keys onto :class:`ShuffleNetV2`'s."""
    return {_tv_key(k): v for k, v in state_dict.items()}


# ---------------------------------------------------------------------------------------------
# Registered builders.

_V1_NOTE = "ShuffleNet {s}x (g={g}), Table 1; bottleneck = out/4, ungrouped first 1x1 of stage 2"


def _v1(name: str, groups: int, width_mult: float, num_classes: int, in_chans: int, small_input: bool,
        **kwargs: Any) -> ShuffleNetV1:
    check_small_input(name, small_input)
    return ShuffleNetV1(groups=groups, width_mult=width_mult, num_classes=num_classes, in_chans=in_chans,
                        small_input=small_input, **kwargs)


@register_model(paper=PAPER_V1, input_size=(3, 224, 224), num_classes=1000, params=1_531_936, macs=143_078_976,
                paper_results={"imagenet/top1_err": 33.6, "imagenet/mflops": 143},
                notes=_V1_NOTE.format(s=1, g=1))
def shufflenet_v1_g1(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                     dropout: float = 0.0, **kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet v1 1x, g=1.

    Args:
        num_classes: classifier outputs.
        in_chans: input channels.
        small_input: stride-1 stem without max pool, for 28/32-px inputs.
        dropout: dropout before the classifier (0: none, as in the paper).
        **kwargs: further :class:`ShuffleNetV1` options.

    Returns:
        The model.
    """
    return _v1("shufflenet_v1_g1", 1, 1.0, num_classes, in_chans, small_input, dropout=dropout,
               **kwargs)


@register_model(paper=PAPER_V1, input_size=(3, 224, 224), num_classes=1000, params=1_733_848, macs=140_836_512,
                paper_results={"imagenet/top1_err": 32.7, "imagenet/mflops": 140},
                notes=_V1_NOTE.format(s=1, g=2))
def shufflenet_v1_g2(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                     dropout: float = 0.0, **kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet v1 1x, g=2. Args as :func:`shufflenet_v1_g1`."""
    return _v1("shufflenet_v1_g2", 2, 1.0, num_classes, in_chans, small_input, dropout=dropout,
               **kwargs)


@register_model(paper=PAPER_V1, input_size=(3, 224, 224), num_classes=1000, params=1_865_728, macs=137_460_672,
                paper_results={"imagenet/top1_err": 32.6, "imagenet/mflops": 137},
                notes=_V1_NOTE.format(s=1, g=3))
def shufflenet_v1_g3(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                     dropout: float = 0.0, **kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet v1 1x, g=3 (the paper's default). Args as :func:`shufflenet_v1_g1`."""
    return _v1("shufflenet_v1_g3", 3, 1.0, num_classes, in_chans, small_input, dropout=dropout,
               **kwargs)


@register_model(paper=PAPER_V1, input_size=(3, 224, 224), num_classes=1000, params=1_968_344, macs=134_339_776,
                paper_results={"imagenet/top1_err": 32.8, "imagenet/mflops": 133},
                notes=_V1_NOTE.format(s=1, g=4))
def shufflenet_v1_g4(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                     dropout: float = 0.0, **kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet v1 1x, g=4. Args as :func:`shufflenet_v1_g1`."""
    return _v1("shufflenet_v1_g4", 4, 1.0, num_classes, in_chans, small_input, dropout=dropout,
               **kwargs)


@register_model(paper=PAPER_V1, input_size=(3, 224, 224), num_classes=1000, params=2_434_768, macs=138_365_952,
                paper_results={"imagenet/top1_err": 32.4, "imagenet/mflops": 137},
                notes=_V1_NOTE.format(s=1, g=8))
def shufflenet_v1_g8(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                     dropout: float = 0.0, **kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet v1 1x, g=8. Args as :func:`shufflenet_v1_g1`."""
    return _v1("shufflenet_v1_g8", 8, 1.0, num_classes, in_chans, small_input, dropout=dropout,
               **kwargs)


@register_model(paper=PAPER_V1, input_size=(3, 224, 224), num_classes=1000, params=718_324, macs=37_589_856,
                paper_results={"imagenet/top1_err": 43.2, "imagenet/mflops": 38},
                notes=_V1_NOTE.format(s=0.5, g=3))
def shufflenet_v1_g3_x0_5(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                          dropout: float = 0.0, **kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet v1 0.5x, g=3 (Table 2). Args as :func:`shufflenet_v1_g1`."""
    return _v1("shufflenet_v1_g3_x0_5", 3, 0.5, num_classes, in_chans, small_input, dropout=dropout,
               **kwargs)


@register_model(paper=PAPER_V1, input_size=(3, 224, 224), num_classes=1000, params=306_124, macs=13_300_656,
                paper_results={"imagenet/top1_err": 55.0, "imagenet/mflops": 13},
                notes=_V1_NOTE.format(s=0.25, g=3))
def shufflenet_v1_g3_x0_25(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                           dropout: float = 0.0, **kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet v1 0.25x, g=3 (Table 2). Args as :func:`shufflenet_v1_g1`."""
    return _v1("shufflenet_v1_g3_x0_25", 3, 0.25, num_classes, in_chans, small_input, dropout=dropout,
               **kwargs)


@register_model(paper=PAPER_V1, input_size=(3, 224, 224), num_classes=1000, params=3_442_168, macs=292_443_552,
                paper_results={"imagenet/mflops": 292},
                notes=_V1_NOTE.format(s=1.5, g=3))
def shufflenet_v1_g3_x1_5(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                          dropout: float = 0.0, **kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet v1 1.5x, g=3. Args as :func:`shufflenet_v1_g1`."""
    return _v1("shufflenet_v1_g3_x1_5", 3, 1.5, num_classes, in_chans, small_input, dropout=dropout,
               **kwargs)


@register_model(paper=PAPER_V1, input_size=(3, 224, 224), num_classes=1000, params=5_450_776, macs=524_045_184,
                paper_results={"imagenet/mflops": 524},
                notes=_V1_NOTE.format(s=2, g=3))
def shufflenet_v1_g3_x2_0(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                          dropout: float = 0.0, **kwargs: Any) -> ShuffleNetV1:
    """ShuffleNet v1 2x, g=3. Args as :func:`shufflenet_v1_g1`."""
    return _v1("shufflenet_v1_g3_x2_0", 3, 2.0, num_classes, in_chans, small_input, dropout=dropout,
               **kwargs)


def _v2(name: str, scale: str, num_classes: int, in_chans: int, small_input: bool,
        **kwargs: Any) -> ShuffleNetV2:
    check_small_input(name, small_input)
    stages, head = V2_CHANNELS[scale]
    return ShuffleNetV2(stage_channels=stages, head_channels=head, num_classes=num_classes,
                        in_chans=in_chans, small_input=small_input, **kwargs)


_V2_NOTE = "ShuffleNet v2 {s}x (Table 5); torchvision shufflenet_v2_x{t} architecture"


@register_model(paper=PAPER_V2, input_size=(3, 224, 224), num_classes=1000, params=1_366_792, macs=40_476_448,
                paper_results={"imagenet/top1_err": 39.7, "imagenet/mflops": 41},
                notes=_V2_NOTE.format(s=0.5, t="0_5"))
def shufflenet_v2_x0_5(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                       dropout: float = 0.0, **kwargs: Any) -> ShuffleNetV2:
    """ShuffleNet v2 0.5x.

    Args:
        num_classes: classifier outputs.
        in_chans: input channels.
        small_input: stride-1 stem without max pool, for 28/32-px inputs.
        dropout: dropout before the classifier (0: none, as in the paper).
        **kwargs: further :class:`ShuffleNetV2` options.

    Returns:
        The model.
    """
    return _v2("shufflenet_v2_x0_5", "0.5", num_classes, in_chans, small_input, dropout=dropout,
               **kwargs)


@register_model(paper=PAPER_V2, input_size=(3, 224, 224), num_classes=1000, params=2_278_604, macs=144_907_992,
                paper_results={"imagenet/top1_err": 30.6, "imagenet/mflops": 146},
                notes=_V2_NOTE.format(s=1, t="1_0"))
def shufflenet_v2_x1_0(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                       dropout: float = 0.0, **kwargs: Any) -> ShuffleNetV2:
    """ShuffleNet v2 1x. Args as :func:`shufflenet_v2_x0_5`."""
    return _v2("shufflenet_v2_x1_0", "1.0", num_classes, in_chans, small_input, dropout=dropout,
               **kwargs)


@register_model(paper=PAPER_V2, input_size=(3, 224, 224), num_classes=1000, params=3_503_624, macs=295_759_392,
                paper_results={"imagenet/top1_err": 27.4, "imagenet/mflops": 299},
                notes=_V2_NOTE.format(s=1.5, t="1_5"))
def shufflenet_v2_x1_5(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                       dropout: float = 0.0, **kwargs: Any) -> ShuffleNetV2:
    """ShuffleNet v2 1.5x. Args as :func:`shufflenet_v2_x0_5`."""
    return _v2("shufflenet_v2_x1_5", "1.5", num_classes, in_chans, small_input, dropout=dropout,
               **kwargs)


@register_model(paper=PAPER_V2, input_size=(3, 224, 224), num_classes=1000, params=7_393_996, macs=583_253_464,
                paper_results={"imagenet/top1_err": 25.1, "imagenet/mflops": 591},
                notes=_V2_NOTE.format(s=2, t="2_0"))
def shufflenet_v2_x2_0(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                       dropout: float = 0.0, **kwargs: Any) -> ShuffleNetV2:
    """ShuffleNet v2 2x. Args as :func:`shufflenet_v2_x0_5`."""
    return _v2("shufflenet_v2_x2_0", "2.0", num_classes, in_chans, small_input, dropout=dropout,
               **kwargs)


for _s in ("0_5", "1_0", "1_5", "2_0"):
    register_torchvision(f"shufflenet_v2_x{_s}", f"shufflenet_v2_x{_s}", remap=_tv_remap)
