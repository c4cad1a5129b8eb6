"""AlexNet.

Paper: Krizhevsky, Sutskever & Hinton (2012), "ImageNet Classification with Deep
Convolutional Neural Networks", NIPS 25 (no arXiv id). ``alexnet_tv`` is the
single-tower variant of Krizhevsky (2014), "One weird trick for parallelizing
convolutional neural networks", arXiv:1404.5997, as shipped by torchvision.

``alexnet`` is the network of Section 3 / Figure 2 of the 2012 paper. The two GPU
towers are written as grouped convolutions: conv2, conv4 and conv5 only see the
kernel maps of their own tower (``groups=2``); conv3 and the FC layers connect
across towers. Layer table at the default 227x227 input (1,000 classes):

    layer   kernel/stride, pad, groups   output        params
    conv1   11x11/4, 0                   96x55x55      34,944
    lrn1    k=2, n=5, a=1e-4, b=0.75,    96x55x55
            per tower (2 x 48 maps)
    pool1   max 3x3/2                    96x27x27
    conv2   5x5/1, 2, groups 2           256x27x27     307,456
    lrn2    per tower (2 x 128 maps)     256x27x27
    pool2   max 3x3/2                    256x13x13
    conv3   3x3/1, 1                     384x13x13     885,120
    conv4   3x3/1, 1, groups 2           384x13x13     663,936
    conv5   3x3/1, 1, groups 2           256x13x13     442,624
    pool5   max 3x3/2                    256x6x6
    fc6     9216 -> 4096, dropout 0.5                  37,752,832
    fc7     4096 -> 4096, dropout 0.5                  16,781,312
    fc8     4096 -> 1000                               4,097,000
    total                                              60,965,224

ReLU follows every conv and the hidden FC layers; LRN follows the ReLU of conv1 and
conv2 (Section 3.3, see :mod:`zoo.layers.norm`); pools overlap (3x3, stride 2,
Section 3.4). As in the paper:

* Dropout 0.5 sets to zero the *outputs* of fc6 and fc7 (Section 4.2: "We use dropout
  in the first two fully-connected layers"): ``fc6, ReLU, Dropout, fc7, ReLU, Dropout,
  fc8`` (see :mod:`zoo.layers.head`). The state-dict keys are torchvision's
  (``classifier.1`` / ``.4`` / ``.6`` for fc6 / fc7 / fc8).
* Each tower normalises its own kernel maps: the towers communicate only at conv3 and
  the FC layers (Section 3.5), so LRN sums over adjacent maps of the same tower
  (``LocalResponseNorm(groups=2)``: channels 0-47 and 48-95 after conv1, 0-127 and
  128-255 after conv2).

Why 227 and not 224: the paper states 224x224x3 inputs, but conv1 (11x11, stride 4,
no padding) must produce the 55x55 maps of Figure 2, and
``(n - 11) / 4 + 1 = 55`` needs ``n = 227``; 224 gives 54.25, i.e. 54 (a ragged
last column). 227 is also the crop of the BVLC Caffe reference model. Only at 227
does pool5 give the 6x6x256 = 9,216 inputs that fc6's 37.75 M weights assume.

Deviations from the paper:

* Single-device grouped convolutions replace the two-GPU split (same function and
  parameter count); per-tower LRN is a grouped LRN (same function).
* fc6's input passes through an adaptive average pool to the design grid (6x6 at
  227 px), as torchvision does; it is the identity at the design size and only lets
  other input sizes run.
* The data pipeline (256-px resize, random crops with flips, PCA lighting noise,
  10-crop testing) lives in :mod:`zoo.data.transforms` (recipes ``alexnet`` and
  ``ten_crop``), not in the model; see ``configs/experiment/alexnet_imagenet.yaml``.

``alexnet_tv`` (torchvision's ``alexnet``) has 64/192/384/256/256 filters, conv1
padded by 2, no LRN and no groups, and torchvision's classifier order, which drops
the *inputs* of fc6 and fc7 (``Dropout, fc6, ReLU, Dropout, fc7, ReLU, fc8``):
61,100,840 parameters at 224 px. It is initialised as ``alexnet`` (torchvision keeps
PyTorch's default layer initialisation).

Features: ``feature_info`` lists, for every reduction of the input, the last module
that runs at it (``alexnet`` at 227 px: lrn1 at 4, lrn2 at 8, conv5's ReLU at 16, pool5
at 32; 55, 27, 13 and 6 px, the maps of Figure 2); :func:`zoo.features.features_only`
returns them.

Options:

* ``small_input=True`` (28/32-px images): conv1 becomes 3x3, stride 1, padding 1
  (same number of filters) instead of 11x11/4, which would leave a 32-px image 6 px
  wide before the first pool. fc6 is sized from the feature map the network actually
  produces at ``image_size`` (default 32: 256x3x3 = 2,304 inputs; 28 px gives
  256x2x2). The initialisation defaults to ``init="kaiming"`` (see below); layers,
  LRN, groups, pools and dropout are unchanged.
* ``init``: ``"paper"`` (default for the ImageNet layout) or ``"kaiming"`` (default
  with ``small_input``: He et al. 2015 fan-in normal convolutions, the paper's
  N(0, 0.01) FC weights, all biases 0). The paper's fixed N(0, 0.01) is calibrated
  for 11x11x3 filters on mean-subtracted 0-255 pixels: conv1 outputs then have a
  standard deviation near 10, enough to stand out against conv2's bias of 1. A 3x3
  conv1 on unit-variance inputs gives 0.03-0.05, so the input is lost under the biases
  (the logits then differ by ~1e-4 between inputs) and the network does not train.
  To train the ImageNet layout with the paper's init, feed it 0-255-scale inputs
  (``configs/experiment/alexnet_imagenet.yaml`` sets the normalisation std to 1/255).
* ``head="gap"``: global average pooling and one linear layer (after dropout)
  replace fc6-fc8. At 1,000 classes and 227 px the FC stack costs 58,631,144
  parameters, the GAP head 257,000 (256x1000 + 1000); the GAP head accepts any
  input size.
* ``dropout``: the probability of both dropout layers (paper: 0.5), or of the one before
  the GAP head's linear layer.

Interface (:class:`zoo.layers.head.PooledClassifierNet`): ``forward_features`` returns the
pool5 map, ``forward_head(x, pre_logits=True)`` the input of fc8 (``num_features`` =
``fc_width``, 4,096; 256 with the GAP head), ``get_classifier()`` is fc8 and
``reset_classifier(k)`` replaces it.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple, Sequence

import torch.nn as nn

from zoo._registry import Paper, register_model
from zoo.features import feature_info_from_taps
from zoo.interop import register_torchvision
from zoo.layers.head import PooledClassifierNet, fc_classifier, gap_classifier
from zoo.layers.norm import ALEXNET_LRN, LocalResponseNorm
from zoo.models._common import check_small_input, default_image_size
from zoo.ops.shape import conv_output_size

__all__ = ["AlexNet", "ConvSpec", "ALEXNET_CFG", "ALEXNET_TV_CFG", "alexnet", "alexnet_tv"]

log = logging.getLogger(__name__)

PAPER = Paper(
    title="ImageNet Classification with Deep Convolutional Neural Networks",
    authors="Krizhevsky et al.",
    year=2012,
    venue="NIPS 25 (2012)",
)
PAPER_TV = Paper(
    title="One weird trick for parallelizing convolutional neural networks",
    authors="Krizhevsky",
    year=2014,
    arxiv="1404.5997",
)


class ConvSpec(NamedTuple):
    """One convolutional layer of the feature extractor.

    Args:
        out: number of filters.
        kernel: square kernel size.
        stride: stride.
        padding: zero padding.
        groups: 2 for the layers that only connect within a GPU tower.
        lrn: local response normalisation after the ReLU.
        pool: overlapping 3x3/2 max-pool after (the LRN and) the ReLU.
        bias_one: the paper initialises this layer's biases to 1 (else 0).
        lrn_groups: the LRN normalises each of this many channel groups on its own
            (2: each GPU tower its own maps, Section 3.5).
    """

    out: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    lrn: bool = False
    pool: bool = False
    bias_one: bool = False
    lrn_groups: int = 1


# Section 3.5 / Figure 2 of the 2012 paper: two towers, LRN within each.
ALEXNET_CFG: tuple[ConvSpec, ...] = (
    ConvSpec(96, 11, stride=4, padding=0, lrn=True, pool=True, lrn_groups=2),
    ConvSpec(256, 5, padding=2, groups=2, lrn=True, pool=True, bias_one=True, lrn_groups=2),
    ConvSpec(384, 3, padding=1),
    ConvSpec(384, 3, padding=1, groups=2, bias_one=True),
    ConvSpec(256, 3, padding=1, groups=2, pool=True, bias_one=True),
)
# torchvision's alexnet (the "one weird trick" single-tower network).
ALEXNET_TV_CFG: tuple[ConvSpec, ...] = (
    ConvSpec(64, 11, stride=4, padding=2, pool=True),
    ConvSpec(192, 5, padding=2, pool=True, bias_one=True),
    ConvSpec(384, 3, padding=1),
    ConvSpec(256, 3, padding=1, bias_one=True),
    ConvSpec(256, 3, padding=1, pool=True, bias_one=True),
)
# The small-input stem: conv1 at stride 1 with a 3x3 kernel.
_SMALL_CONV1 = {"kernel": 3, "stride": 1, "padding": 1}
# torchvision's key layout of the classifier: fc6, fc7, fc8 at classifier.1 / .4 / .6.
_FC_KEYS = ("1", "4", "6")


class AlexNet(PooledClassifierNet):
    """AlexNet-style network built from a list of :class:`ConvSpec`.

    ``features`` holds conv/ReLU/LRN/pool in order, ``avgpool`` pools to the design
    grid, ``classifier`` is fc6-fc8 with ReLU and dropout (:func:`zoo.layers.head.fc_classifier`;
    torchvision's state-dict keys in either dropout order, so its weights load unchanged).

    Args:
        cfg: the conv layers.
        num_classes: output classes.
        in_chans: input channels.
        dropout: dropout of fc6 and fc7 (or before the GAP head's linear layer).
        dropout_first: ``False`` drops the outputs of fc6 and fc7 (the paper, Section 4.2);
            ``True`` their inputs (torchvision).
        fc_width: width of fc6 and fc7.
        head: ``"fc"`` (fc6-fc8) or ``"gap"`` (global average pool + one linear layer).
        image_size: input side the FC head is sized for.
        small_input: replace conv1 by a 3x3/1 convolution (see module docstring).
        init: ``"paper"`` or ``"kaiming"`` (see :meth:`_init_weights`); ``None`` picks
            ``"paper"``, or ``"kaiming"`` with ``small_input``.
    """

    def __init__(self, cfg: Sequence[ConvSpec], *, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.5, dropout_first: bool = False, fc_width: int = 4096, head: str = "fc",
                 image_size: int = 227, small_input: bool = False, init: str | None = None) -> None:
        super().__init__()
        if head not in ("fc", "gap"):
            raise ValueError(f"head must be 'fc' or 'gap', got {head!r}")
        init = init or ("kaiming" if small_input else "paper")
        if init not in ("paper", "kaiming"):
            raise ValueError(f"init must be 'paper' or 'kaiming', got {init!r}")
        self.init = init
        cfg = list(cfg)
        if small_input:
            cfg[0] = cfg[0]._replace(**_SMALL_CONV1)
        self.cfg = tuple(cfg)
        self.head = head
        self.num_classes = num_classes

        layers: list[nn.Module] = []
        taps: list[tuple[str, int, int]] = []  # (module, channels, reduction), for feature_info
        c, n, reduction = in_chans, image_size, 1
        for spec in cfg:
            layers += [nn.Conv2d(c, spec.out, spec.kernel, spec.stride, spec.padding, groups=spec.groups),
                       nn.ReLU(inplace=True)]
            n = conv_output_size(n, spec.kernel, spec.stride, spec.padding)
            c, reduction = spec.out, reduction * spec.stride
            if spec.lrn:
                layers.append(LocalResponseNorm(**ALEXNET_LRN, groups=spec.lrn_groups))
            taps.append((f"features.{len(layers) - 1}", c, reduction))
            if spec.pool:
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
                n = conv_output_size(n, 3, 2)
                reduction *= 2
                taps.append((f"features.{len(layers) - 1}", c, reduction))
        self.features = nn.Sequential(*layers)
        self.feature_info = feature_info_from_taps(taps)
        if n < 1:
            raise ValueError(f"image_size={image_size} is too small for this layout (feature map {n}); "
                             f"use small_input=True for 28/32-px images")
        self.feature_grid = n  # side of the last feature map at `image_size`

        if head == "fc":
            self.avgpool = nn.AdaptiveAvgPool2d((n, n))
            self.classifier = fc_classifier(c * n * n, num_classes, hidden=fc_width, dropout=dropout,
                                            dropout_first=dropout_first,
                                            linear_keys=None if dropout_first else _FC_KEYS)
            self.num_features = fc_width
        else:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = gap_classifier(c, num_classes, dropout)
            self.num_features = c
        self._init_weights()

    def _init_weights(self) -> None:
        """``init="paper"``: Section 5 of the 2012 paper, weights ~ N(0, 0.01); biases 1 in conv2,
        conv4, conv5 and the hidden FC layers (to give the ReLUs positive inputs early on), 0 elsewhere.
        ``init="kaiming"``: convolutions He et al. (2015, arXiv:1502.01852) fan-in normal, FC
        weights the paper's N(0, 0.01), all biases 0."""
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        linears = [m for m in self.classifier if isinstance(m, nn.Linear)]
        if self.init == "kaiming":
            for m in convs:
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            for m in linears:
                self._init_classifier(m)
            return
        for m, spec in zip(convs, self.cfg):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.constant_(m.bias, 1.0 if spec.bias_one else 0.0)
        for i, m in enumerate(linears):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.constant_(m.bias, 1.0 if i < len(linears) - 1 else 0.0)

    def _init_classifier(self, layer: nn.Linear) -> None:
        """The output layer of both inits: weights N(0, 0.01), bias 0 (Section 5)."""
        nn.init.normal_(layer.weight, 0.0, 0.01)
        nn.init.zeros_(layer.bias)


def _build(name: str, cfg: Sequence[ConvSpec], default_size: int, num_classes: int, in_chans: int,
           dropout: float, small_input: bool, head: str, image_size: int | None,
           **kwargs: Any) -> AlexNet:
    check_small_input(name, small_input)
    return AlexNet(cfg, num_classes=num_classes, in_chans=in_chans, dropout=dropout, head=head,
                   image_size=default_image_size(small_input, image_size, default_size),
                   small_input=small_input, **kwargs)


@register_model(
    paper=PAPER, input_size=(3, 227, 227), num_classes=1000, params=60_965_224, macs=724_406_816,
    paper_results={"imagenet_val/top1_err": 40.7, "imagenet_val/top5_err": 18.2},
    notes="2012 two-tower AlexNet as grouped convs, per-tower LRN, dropout after fc6/fc7, 227-px input "
          "(Table 2: 1 CNN)",
)
def alexnet(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
            small_input: bool = False, head: str = "fc", image_size: int | None = None,
            **kwargs: Any) -> AlexNet:
    """AlexNet as published (2012), 60,965,224 parameters at 1,000 classes.

    Args:
        num_classes: output classes.
        in_chans: input channels.
        dropout: dropout on the outputs of fc6 and fc7 (paper: 0.5).
        small_input: 3x3/1 conv1 for 28/32-px inputs; fc6 sized from the real feature map.
        head: ``"fc"`` (paper) or ``"gap"``.
        image_size: input side the FC head is sized for (227, or 32 with ``small_input``).
        **kwargs: further :class:`AlexNet` options (``fc_width``, ``init``).

    Returns:
        The model.
    """
    return _build("alexnet", ALEXNET_CFG, 227, num_classes, in_chans, dropout, small_input, head,
                  image_size, **kwargs)


@register_model(
    paper=PAPER_TV, input_size=(3, 224, 224), num_classes=1000, params=61_100_840, macs=714_188_480,
    notes="torchvision's single-tower AlexNet (64-192-384-256-256, no LRN, no groups)",
)
def alexnet_tv(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
               small_input: bool = False, head: str = "fc", image_size: int | None = None,
               **kwargs: Any) -> AlexNet:
    """torchvision's AlexNet ("one weird trick" variant), 61,100,840 parameters at 1,000 classes.

    Args:
        num_classes: output classes.
        in_chans: input channels.
        dropout: dropout on the inputs of fc6 and fc7 (torchvision's order).
        small_input: 3x3/1 conv1 for 28/32-px inputs; fc6 sized from the real feature map.
        head: ``"fc"`` or ``"gap"``.
        image_size: input side the FC head is sized for (224, or 32 with ``small_input``).
        **kwargs: further :class:`AlexNet` options.

    Returns:
        The model; its state dict has torchvision's keys.
    """
    kwargs.setdefault("dropout_first", True)
    return _build("alexnet_tv", ALEXNET_TV_CFG, 224, num_classes, in_chans, dropout, small_input, head,
                  image_size, **kwargs)


# Same module layout as torchvision.models.AlexNet: the state dicts match key for key.
register_torchvision("alexnet_tv", "alexnet", remap=None)
