"""MobileNet v1.

Howard et al. 2017, "MobileNets: Efficient Convolutional Neural Networks for Mobile
Vision Applications", arXiv:1704.04861. This is the ImageNet network of Table 1 with
the width multiplier ``alpha`` of Sec. 3.3 (``mobilenet_v1`` is 1.0, and
``mobilenet_v1_x0_75``, ``_x0_5``, ``_x0_25``); the resolution multiplier ``rho``
is simply the input size (160 px costs 290 M multiply-adds for 1.0, Table 7).
Every convolution is followed by BatchNorm and ReLU (Fig. 3); the body is 13
depthwise-separable layers (:class:`zoo.layers.conv.DepthwiseSeparableConv2d`).

Deviations and notes:

* Table 1 prints the last depthwise layer, ``Conv dw / s2`` on a 7x7x1024 input,
  with stride 2. That is a typo: its input and output are both 7x7 and the average
  pool that follows is 7x7, so it is stride 1 here (as in every reference release).
* The width multiplier scales every layer's channels, including the 32-channel
  stem, to ``int(alpha * c)``; for the four multipliers here these are exact.
* The paper names no dropout; the classifier is global average pooling and one
  fully connected layer (the softmax lives in the loss). ``dropout`` (default 0) adds
  dropout on the pooled features, before the fully connected layer.
* ``small_input=True`` (28/32-px images): the stem convolution and the first
  stride-2 depthwise layer (64 -> 128 channels) get stride 1, so the network
  downsamples 8x instead of 32x (32 px -> 4x4, 28 px -> 4x4 final map). Every
  other layer and every channel count is unchanged.

Interface: ``forward_features`` returns the last map, ``forward_head(x, pre_logits=True)``
the pooled ``(B, num_features)`` input of ``fc``, ``get_classifier()`` is ``fc`` and
``reset_classifier(k)`` replaces it. ``feature_info`` has one entry per reduction, the last
layer at each: the first separable layer at 2, then layers 3, 5, 11 and 13 at 4, 8, 16 and 32
(with ``small_input``: layers 3, 5, 11, 13 at 1, 2, 4, 8).

At 224 px and 1,000 classes: 4,231,976 parameters and 568.7 M multiply-adds for 1.0
(paper: 4.2 M, 569 M), 1,331,592 and 149.5 M for 0.5 (paper: 1.3 M, 149 M).

Layer table (1.0, 224 px; ``dw`` = depthwise 3x3, ``pw`` = pointwise 1x1)::

    layer            stride  output
    conv 3x3         2       112x112x32
    dw / pw          1       112x112x64
    dw / pw          2        56x56x128
    dw / pw          1        56x56x128
    dw / pw          2        28x28x256
    dw / pw          1        28x28x256
    dw / pw          2        14x14x512
    5 x dw / pw      1        14x14x512
    dw / pw          2         7x7x1024
    dw / pw          1         7x7x1024   (Table 1 prints s2: typo)
    avg pool 7x7     -         1x1x1024
    fc               -        1000
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from zoo._registry import Paper, register_model
from zoo.features import feature_info_from_taps
from zoo.layers.conv import ConvBNAct, DepthwiseSeparableConv2d
from zoo.layers.head import GlobalPoolClassifierNet
from zoo.layers.init import kaiming_fan_out_init
from zoo.models._common import check_small_input

__all__ = ["MobileNetV1", "mobilenet_v1", "mobilenet_v1_x0_75", "mobilenet_v1_x0_5", "mobilenet_v1_x0_25"]

PAPER = Paper(
    title="MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
    authors="Howard et al.",
    year=2017,
    arxiv="1704.04861",
)

# Table 1 after the stem: (output channels, stride of the depthwise conv) per separable layer.
MOBILENET_V1_CFG: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2), (128, 1),
    (256, 2), (256, 1),
    (512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),  # the last one: stride 1 (Table 1's "s2" is a typo)
)


class MobileNetV1(GlobalPoolClassifierNet):
    """MobileNet v1: a 3x3 stem and a stack of depthwise-separable layers.

    Args:
        cfg: ``(out_channels, stride)`` per depthwise-separable layer, at width 1.0.
        stem_channels: output channels of the stem convolution, at width 1.0.
        width_mult: the width multiplier ``alpha``; every channel count becomes ``int(alpha * c)``.
        num_classes: classifier outputs.
        in_chans: input image channels.
        small_input: stride 1 in the stem and the first stride-2 layer, for 28/32-px images.
        dropout: dropout before the classifier (0: none, as in the paper).
    """

    def __init__(self, cfg: Sequence[tuple[int, int]] = MOBILENET_V1_CFG, stem_channels: int = 32,
                 width_mult: float = 1.0, *, num_classes: int = 1000, in_chans: int = 3,
                 small_input: bool = False, dropout: float = 0.0) -> None:
        super().__init__()

        def width(c: int) -> int:
            return max(1, int(c * width_mult))

        c = width(stem_channels)
        reduction = 1 if small_input else 2
        self.stem = ConvBNAct(in_chans, c, 3, stride=reduction)
        taps = [("stem", c, reduction)]  # (module, channels, reduction), for feature_info
        layers: list[nn.Module] = []
        first_stride2 = True
        for out, stride in cfg:
            if small_input and stride == 2 and first_stride2:
                stride, first_stride2 = 1, False
            layers.append(DepthwiseSeparableConv2d(c, width(out), 3, stride=stride))
            c, reduction = width(out), reduction * stride
            taps.append((f"features.{len(layers) - 1}", c, reduction))
        self.features = nn.Sequential(*layers)
        self.feature_info = feature_info_from_taps(taps)
        self.num_classes = num_classes
        self.num_features = c
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(c, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """See :func:`zoo.layers.init.kaiming_fan_out_init` (He et al. 2015, arXiv:1502.01852)."""
        kaiming_fan_out_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` image -> ``(B, 1024 alpha, H/32, W/32)`` feature map."""
        return self.features(self.stem(x))

    def _init_classifier(self, layer: nn.Linear) -> None:
        """A new ``fc``: N(0, 0.01) weights and zero bias, as :meth:`_init_weights`."""
        nn.init.normal_(layer.weight, 0.0, 0.01)
        nn.init.zeros_(layer.bias)


def _mobilenet_v1(name: str, width_mult: float, num_classes: int, in_chans: int, small_input: bool,
                  **kwargs: Any) -> MobileNetV1:
    check_small_input(name, small_input)
    return MobileNetV1(width_mult=width_mult, num_classes=num_classes, in_chans=in_chans, small_input=small_input,
                       **kwargs)


@register_model(paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=4_231_976, macs=568_740_352,
                paper_results={"imagenet/top1_err": 29.4, "imagenet/mflops": 569, "imagenet/params_M": 4.2,
                               "imagenet_160px/top1_err": 32.8, "imagenet_160px/mflops": 290},
                notes="1.0 MobileNet-224 (Table 1); BN+ReLU after every conv")
def mobilenet_v1(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                 dropout: float = 0.0, **kwargs: Any) -> MobileNetV1:
    """MobileNet v1, width 1.0 (Table 1).

    Args:
        num_classes: classifier outputs.
        in_chans: input channels.
        small_input: stride-1 stem and first stride-2 layer, for 28/32-px inputs.
        dropout: dropout before the classifier (0: none, as in the paper).
        **kwargs: further :class:`MobileNetV1` options.

    Returns:
        The model.
    """
    return _mobilenet_v1("mobilenet_v1", 1.0, num_classes, in_chans, small_input, dropout=dropout, **kwargs)


@register_model(paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=2_585_560, macs=325_400_448,
                paper_results={"imagenet/top1_err": 31.6, "imagenet/mflops": 325, "imagenet/params_M": 2.6},
                notes="0.75 MobileNet-224 (width multiplier, Table 6)")
def mobilenet_v1_x0_75(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                       dropout: float = 0.0, **kwargs: Any) -> MobileNetV1:
    """MobileNet v1, width 0.75 (Table 6). Args as :func:`mobilenet_v1`."""
    return _mobilenet_v1("mobilenet_v1_x0_75", 0.75, num_classes, in_chans, small_input, dropout=dropout, **kwargs)


@register_model(paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=1_331_592, macs=149_497_088,
                paper_results={"imagenet/top1_err": 36.3, "imagenet/mflops": 149, "imagenet/params_M": 1.3},
                notes="0.5 MobileNet-224 (width multiplier, Table 6)")
def mobilenet_v1_x0_5(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                      dropout: float = 0.0, **kwargs: Any) -> MobileNetV1:
    """MobileNet v1, width 0.5 (Table 6). Args as :func:`mobilenet_v1`."""
    return _mobilenet_v1("mobilenet_v1_x0_5", 0.5, num_classes, in_chans, small_input, dropout=dropout, **kwargs)


@register_model(paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=470_072, macs=41_030_272,
                paper_results={"imagenet/top1_err": 49.4, "imagenet/mflops": 41, "imagenet/params_M": 0.5},
                notes="0.25 MobileNet-224 (width multiplier, Table 6)")
def mobilenet_v1_x0_25(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                       dropout: float = 0.0, **kwargs: Any) -> MobileNetV1:
    """MobileNet v1, width 0.25 (Table 6). Args as :func:`mobilenet_v1`."""
    return _mobilenet_v1("mobilenet_v1_x0_25", 0.25, num_classes, in_chans, small_input, dropout=dropout, **kwargs)
