"""VGG: configurations A, A-LRN, B, C, D and E.

Paper: Simonyan & Zisserman (2014), "Very Deep Convolutional Networks for Large-Scale
Image Recognition", arXiv:1409.1556 (ICLR 2015).

The six networks of Table 1 are written below as data, one column of the table per
configuration and one list per block; every block ends with a 2x2/2 max-pool.
``conv3-64`` is a 3x3 convolution with 64 filters (stride 1, padding 1), ``conv1-256``
a 1x1 one, ``LRN`` the local response normalisation of Krizhevsky et al. (2012)
(k=2, n=5, alpha=1e-4, beta=0.75). ReLU follows every convolution. The classifier is
FC-4096, FC-4096, FC-classes, with dropout 0.5 after the two hidden FC layers.

Layer table of configuration D (``vgg16``) at 224x224:

    block   layers                       output         params
    1       conv3-64  x2, maxpool        64x112x112     38,720
    2       conv3-128 x2, maxpool        128x56x56      221,440
    3       conv3-256 x3, maxpool        256x28x28      1,475,328
    4       conv3-512 x3, maxpool        512x14x14      5,899,776
    5       conv3-512 x3, maxpool        512x7x7        7,079,424
    fc6     25088 -> 4096                               102,764,544
    fc7     4096 -> 4096                                16,781,312
    fc8     4096 -> 1000                                4,097,000
    total                                               138,357,544

Parameter counts at 1,000 classes: A 132,863,336; A-LRN 132,863,336 (LRN has no
parameters); B 133,047,848; C 133,638,952; D 138,357,544; E 143,667,240.

Registered names: ``vgg11`` (A), ``vgg11_lrn`` (A-LRN), ``vgg13`` (B), ``vgg16_1x1``
(C), ``vgg16`` (D), ``vgg19`` (E), and ``vgg11_bn``, ``vgg13_bn``, ``vgg16_bn``,
``vgg19_bn``.

Deviations from the paper:

* The ``_bn`` networks add batch normalisation (Ioffe & Szegedy, 2015) after every
  convolution, before its ReLU. They are not in the paper (BN came later); they are
  torchvision's ``vgg*_bn`` and load its weights.
* Initialisation: the paper trained A from N(0, 1e-2) and initialised the deeper nets
  from it, then notes (Section 3.1) that Glorot & Bengio (2010) initialisation works
  without that pre-training; that is what ``_init_weights`` does.
* The classifier sees an adaptive average pool to the design grid (7x7 at 224 px),
  as in torchvision; the identity at the design size. The paper instead converts the
  FC layers to convolutions at test time ("dense" evaluation) for other sizes.
* The data pipeline (scale jittering S in [256, 512], 10-crop testing) lives in
  :mod:`zoo.data.transforms` (recipes ``vgg_scale_jitter`` and ``ten_crop``), not in
  the model; see ``configs/experiment/vgg16_imagenet.yaml``.

Options:

* ``small_input=True`` (28/32-px images): the fifth max-pool is dropped, so the last
  block runs at 2x2 (32 px) instead of 1x1, and a 28-px input (28 -> 14 -> 7 -> 3 -> 1)
  never reaches a zero-size map; fc6 is sized from the actual feature map at
  ``image_size`` (default 32: 512x2x2 = 2,048 inputs instead of 25,088). Convolutions
  are unchanged.
* ``head="gap"``: global average pooling and one linear layer (after dropout) replace
  the three FC layers. The FC stack costs 123,642,856 parameters at 1,000 classes and
  224 px (fc6 alone has 25088x4096 = 102,760,448 weights); the GAP head costs
  513,000 (512x1000 + 1000), and it accepts any input size.
* ``dropout``: the probability of the dropout after fc6 and fc7 (paper: 0.5), or of the
  one before the GAP head's linear layer.

Interface (:class:`zoo.layers.head.PooledClassifierNet`, shared with AlexNet):
``forward_features`` returns the block-5 map, ``forward_head(x, pre_logits=True)`` the
input of fc8 (``num_features`` = ``fc_width``, 4,096; 512 with the GAP head),
``get_classifier()`` is fc8 and ``reset_classifier(k)`` replaces it. ``feature_info`` has
one entry per reduction: the last ReLU (or LRN) of blocks 1-5 at 1, 2, 4, 8, 16 and the
fifth max-pool at 32 (without it under ``small_input``).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch.nn as nn

from zoo._registry import Paper, register_model
from zoo.features import feature_info_from_taps
from zoo.interop import register_torchvision
from zoo.layers.head import PooledClassifierNet, fc_classifier, gap_classifier
from zoo.layers.norm import ALEXNET_LRN, LocalResponseNorm
from zoo.models._common import check_small_input, default_image_size
from zoo.ops.shape import conv_output_size

__all__ = ["VGG", "VGG_CFGS", "vgg11", "vgg11_lrn", "vgg13", "vgg16_1x1", "vgg16", "vgg19",
           "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]

log = logging.getLogger(__name__)

PAPER = Paper(
    title="Very Deep Convolutional Networks for Large-Scale Image Recognition",
    authors="Simonyan & Zisserman",
    year=2014,
    arxiv="1409.1556",
)

_512x2 = ["conv3-512", "conv3-512"]
_512x3 = ["conv3-512", "conv3-512", "conv3-512"]
_512x4 = ["conv3-512", "conv3-512", "conv3-512", "conv3-512"]

# Table 1 of the paper: one list per block; each block is followed by a 2x2/2 max-pool.
VGG_CFGS: dict[str, list[list[str]]] = {
    "A": [
        ["conv3-64"],
        ["conv3-128"],
        ["conv3-256", "conv3-256"],
        _512x2,
        _512x2,
    ],
    "A-LRN": [
        ["conv3-64", "LRN"],
        ["conv3-128"],
        ["conv3-256", "conv3-256"],
        _512x2,
        _512x2,
    ],
    "B": [
        ["conv3-64", "conv3-64"],
        ["conv3-128", "conv3-128"],
        ["conv3-256", "conv3-256"],
        _512x2,
        _512x2,
    ],
    "C": [
        ["conv3-64", "conv3-64"],
        ["conv3-128", "conv3-128"],
        ["conv3-256", "conv3-256", "conv1-256"],
        ["conv3-512", "conv3-512", "conv1-512"],
        ["conv3-512", "conv3-512", "conv1-512"],
    ],
    "D": [
        ["conv3-64", "conv3-64"],
        ["conv3-128", "conv3-128"],
        ["conv3-256", "conv3-256", "conv3-256"],
        _512x3,
        _512x3,
    ],
    "E": [
        ["conv3-64", "conv3-64"],
        ["conv3-128", "conv3-128"],
        ["conv3-256", "conv3-256", "conv3-256", "conv3-256"],
        _512x4,
        _512x4,
    ],
}

def _parse(token: str) -> tuple[int, int]:
    """``"conv3-256"`` -> ``(3, 256)``."""
    kind, width = token.split("-")
    if not kind.startswith("conv"):
        raise ValueError(f"unknown VGG layer {token!r}")
    return int(kind[4:]), int(width)


class VGG(PooledClassifierNet):
    """A VGG network built from a Table-1 column.

    ``features`` holds conv/[BN]/ReLU/[LRN]/max-pool in order, ``avgpool`` pools to the
    design grid, ``classifier`` is ``fc6, ReLU, Dropout, fc7, ReLU, Dropout, fc8``
    (:func:`zoo.layers.head.fc_classifier`): the module layout of torchvision's VGG, so its
    weights load unchanged.

    Args:
        cfg: list of blocks, each a list of ``"convK-C"`` / ``"LRN"`` tokens.
        num_classes: output classes.
        in_chans: input channels.
        batch_norm: batch normalisation after every convolution.
        dropout: dropout after fc6 and fc7 (or before the GAP head's linear layer).
        fc_width: width of fc6 and fc7.
        head: ``"fc"`` (fc6-fc8) or ``"gap"`` (global average pool + one linear layer).
        image_size: input side the FC head is sized for.
        small_input: drop the fifth max-pool (see module docstring).
    """

    def __init__(self, cfg: Sequence[Sequence[str]], *, num_classes: int = 1000, in_chans: int = 3,
                 batch_norm: bool = False, dropout: float = 0.5, fc_width: int = 4096, head: str = "fc",
                 image_size: int = 224, small_input: bool = False) -> None:
        super().__init__()
        if head not in ("fc", "gap"):
            raise ValueError(f"head must be 'fc' or 'gap', got {head!r}")
        self.head = head
        self.num_classes = num_classes

        layers: list[nn.Module] = []
        taps: list[tuple[str, int, int]] = []  # (module, channels, reduction), for feature_info
        c, n, reduction = in_chans, image_size, 1
        for i, block in enumerate(cfg):
            for token in block:
                if token == "LRN":
                    layers.append(LocalResponseNorm(**ALEXNET_LRN))
                    continue
                k, width = _parse(token)
                layers.append(nn.Conv2d(c, width, kernel_size=k, padding=k // 2))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU(inplace=True))
                c = width
            taps.append((f"features.{len(layers) - 1}", c, reduction))
            if small_input and i == len(cfg) - 1:
                continue  # no fifth pool for 28/32-px inputs
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            n, reduction = conv_output_size(n, 2, 2), reduction * 2
            taps.append((f"features.{len(layers) - 1}", c, reduction))
        self.features = nn.Sequential(*layers)
        self.feature_info = feature_info_from_taps(taps)
        if n < 1:
            raise ValueError(f"image_size={image_size} is too small for this layout (feature map {n}); "
                             f"use small_input=True for 28/32-px images")
        self.feature_grid = n

        if head == "fc":
            self.avgpool = nn.AdaptiveAvgPool2d((n, n))
            self.classifier = fc_classifier(c * n * n, num_classes, hidden=fc_width, dropout=dropout)
            self.num_features = fc_width
        else:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = gap_classifier(c, num_classes, dropout)
            self.num_features = c
        self._init_weights()

    def _init_weights(self) -> None:
        """Glorot & Bengio (2010) uniform weights and zero biases, which Section 3.1 of the
        paper reports trains the deep configurations without pre-training; BN starts at
        the identity (scale 1, shift 0)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _init_classifier(self, layer: nn.Linear) -> None:
        """A new final layer: Glorot & Bengio (2010) uniform weights, zero bias, as :meth:`_init_weights`."""
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)


# The registered name of each (configuration, batch norm) pair, for messages.
_NAMES = {("A", False): "vgg11", ("A-LRN", False): "vgg11_lrn", ("B", False): "vgg13", ("C", False): "vgg16_1x1",
          ("D", False): "vgg16", ("E", False): "vgg19", ("A", True): "vgg11_bn", ("A-LRN", True): "vgg11_lrn_bn",
          ("B", True): "vgg13_bn", ("C", True): "vgg16_1x1_bn", ("D", True): "vgg16_bn", ("E", True): "vgg19_bn"}


def _vgg(config: str, batch_norm: bool, num_classes: int, in_chans: int, dropout: float,
         small_input: bool, head: str, image_size: int | None, **kwargs: Any) -> VGG:
    """Builds a Table-1 configuration; every registered ``vgg*`` builder takes these options.

    Args:
        config: key of :data:`VGG_CFGS` (``"A"``, ``"A-LRN"``, ``"B"``, ``"C"``, ``"D"``, ``"E"``).
        batch_norm: batch norm after every conv (torchvision's ``_bn`` variants; not in the paper).
        num_classes: output classes.
        in_chans: input channels.
        dropout: dropout after fc6 and fc7 (paper: 0.5).
        small_input: drop the fifth max-pool for 28/32-px inputs; fc6 sized from the real map.
        head: ``"fc"`` (paper) or ``"gap"``.
        image_size: input side the FC head is sized for (224, or 32 with ``small_input``).
        **kwargs: further :class:`VGG` options (``fc_width``).

    Returns:
        The model.
    """
    check_small_input(_NAMES[config, batch_norm], small_input)
    return VGG(VGG_CFGS[config], num_classes=num_classes, in_chans=in_chans, batch_norm=batch_norm,
               dropout=dropout, small_input=small_input, head=head,
               image_size=default_image_size(small_input, image_size, 224), **kwargs)


# Table 3 of the paper (single test scale, ILSVRC-2012 val): training scale S=256 tested at
# Q=256, and, for C/D/E, scale jittering S in [256, 512] tested at Q=384.
@register_model(
    paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=132_863_336, macs=7_609_090_048,
    paper_results={"imagenet_val/top1_err": 29.6, "imagenet_val/top5_err": 10.4},
    notes="configuration A (11 weight layers)",
)
def vgg11(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False,
          head: str = "fc", image_size: int | None = None, **kwargs: Any) -> VGG:
    """VGG configuration A (11 weight layers), 132,863,336 parameters.

    Options: see :func:`_vgg`.
    """
    return _vgg("A", False, num_classes, in_chans, dropout, small_input, head, image_size, **kwargs)


@register_model(
    paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=132_863_336, macs=7_609_090_048,
    paper_results={"imagenet_val/top1_err": 29.7, "imagenet_val/top5_err": 10.5},
    notes="configuration A-LRN: A with LRN after the first layer",
)
def vgg11_lrn(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False,
              head: str = "fc", image_size: int | None = None, **kwargs: Any) -> VGG:
    """VGG configuration A-LRN (A with local response normalisation after conv1), 132,863,336 parameters.

    Options: see :func:`_vgg`.
    """
    return _vgg("A-LRN", False, num_classes, in_chans, dropout, small_input, head, image_size, **kwargs)


@register_model(
    paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=133_047_848, macs=11_308_466_176,
    paper_results={"imagenet_val/top1_err": 28.7, "imagenet_val/top5_err": 9.9},
    notes="configuration B (13 weight layers)",
)
def vgg13(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False,
          head: str = "fc", image_size: int | None = None, **kwargs: Any) -> VGG:
    """VGG configuration B (13 weight layers), 133,047,848 parameters.

    Options: see :func:`_vgg`.
    """
    return _vgg("B", False, num_classes, in_chans, dropout, small_input, head, image_size, **kwargs)


@register_model(
    paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=133_638_952, macs=11_770_888_192,
    paper_results={"imagenet_val/top1_err": 28.1, "imagenet_val/top5_err": 9.4,
                   "imagenet_val/top1_err_jitter": 27.3, "imagenet_val/top5_err_jitter": 8.8},
    notes="configuration C (16 weight layers, three of them 1x1)",
)
def vgg16_1x1(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False,
              head: str = "fc", image_size: int | None = None, **kwargs: Any) -> VGG:
    """VGG configuration C (16 weight layers, with 1x1 convolutions in blocks 3-5), 133,638,952 parameters.

    Options: see :func:`_vgg`.
    """
    return _vgg("C", False, num_classes, in_chans, dropout, small_input, head, image_size, **kwargs)


@register_model(
    paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=138_357_544, macs=15_470_264_320,
    paper_results={"imagenet_val/top1_err": 27.0, "imagenet_val/top5_err": 8.8,
                   "imagenet_val/top1_err_jitter": 25.6, "imagenet_val/top5_err_jitter": 8.1},
    notes="configuration D (16 weight layers)",
)
def vgg16(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False,
          head: str = "fc", image_size: int | None = None, **kwargs: Any) -> VGG:
    """VGG configuration D (16 weight layers), 138,357,544 parameters.

    Options: see :func:`_vgg`.
    """
    return _vgg("D", False, num_classes, in_chans, dropout, small_input, head, image_size, **kwargs)


@register_model(
    paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=143_667_240, macs=19_632_062_464,
    paper_results={"imagenet_val/top1_err": 27.3, "imagenet_val/top5_err": 9.0,
                   "imagenet_val/top1_err_jitter": 25.5, "imagenet_val/top5_err_jitter": 8.0},
    notes="configuration E (19 weight layers)",
)
def vgg19(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False,
          head: str = "fc", image_size: int | None = None, **kwargs: Any) -> VGG:
    """VGG configuration E (19 weight layers), 143,667,240 parameters.

    Options: see :func:`_vgg`.
    """
    return _vgg("E", False, num_classes, in_chans, dropout, small_input, head, image_size, **kwargs)


@register_model(
    paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=132_868_840, macs=7_609_090_048,
    notes="configuration A with batch norm after every conv (torchvision's vgg11_bn; not in the paper)",
)
def vgg11_bn(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False,
             head: str = "fc", image_size: int | None = None, **kwargs: Any) -> VGG:
    """VGG A with batch normalisation (torchvision's ``vgg11_bn``).

    Options: see :func:`_vgg`.
    """
    return _vgg("A", True, num_classes, in_chans, dropout, small_input, head, image_size, **kwargs)


@register_model(
    paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=133_053_736, macs=11_308_466_176,
    notes="configuration B with batch norm after every conv (torchvision's vgg13_bn; not in the paper)",
)
def vgg13_bn(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False,
             head: str = "fc", image_size: int | None = None, **kwargs: Any) -> VGG:
    """VGG B with batch normalisation (torchvision's ``vgg13_bn``).

    Options: see :func:`_vgg`.
    """
    return _vgg("B", True, num_classes, in_chans, dropout, small_input, head, image_size, **kwargs)


@register_model(
    paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=138_365_992, macs=15_470_264_320,
    notes="configuration D with batch norm after every conv (torchvision's vgg16_bn; not in the paper)",
)
def vgg16_bn(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False,
             head: str = "fc", image_size: int | None = None, **kwargs: Any) -> VGG:
    """VGG D with batch normalisation (torchvision's ``vgg16_bn``).

    Options: see :func:`_vgg`.
    """
    return _vgg("D", True, num_classes, in_chans, dropout, small_input, head, image_size, **kwargs)


@register_model(
    paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=143_678_248, macs=19_632_062_464,
    notes="configuration E with batch norm after every conv (torchvision's vgg19_bn; not in the paper)",
)
def vgg19_bn(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, small_input: bool = False,
             head: str = "fc", image_size: int | None = None, **kwargs: Any) -> VGG:
    """VGG E with batch normalisation (torchvision's ``vgg19_bn``).

    Options: see :func:`_vgg`.
    """
    return _vgg("E", True, num_classes, in_chans, dropout, small_input, head, image_size, **kwargs)


# Same module layout as torchvision's VGG: identical state-dict keys.
for _name in ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"):
    register_torchvision(_name, _name, remap=None)
