"""GoogLeNet (Inception v1).

Paper: Szegedy et al. (2014), "Going Deeper with Convolutions", arXiv:1409.4842 (CVPR 2015).

``googlenet`` is the network of Table 1 and Figure 3 of the paper; ``googlenet_bn``
is torchvision's ``googlenet``, a batch-normalised variant (see below).

Layer table of ``googlenet`` at 224x224 (Table 1; ``#3x3r``/``#5x5r`` are the 1x1
reductions before the 3x3/5x5 convolutions, ``pool`` the 1x1 projection after the
3x3/1 max-pool branch):

    layer        kernel/stride  output      #1x1 #3x3r #3x3 #5x5r #5x5 pool  params
    conv1        7x7/2          64x112x112                                     9,472
    maxpool1     3x3/2          64x56x56
    lrn1                        64x56x56
    conv2        1x1/1          64x56x56                                       4,160
    conv3        3x3/1          192x56x56                                      110,784
    lrn2                        192x56x56
    maxpool2     3x3/2          192x28x28
    inception3a                 256x28x28   64   96    128  16    32   32      163,696
    inception3b                 480x28x28   128  128   192  32    96   64      388,736
    maxpool3     3x3/2          480x14x14
    inception4a                 512x14x14   192  96    208  16    48   64      376,176
    inception4b                 512x14x14   160  112   224  24    64   64      449,160
    inception4c                 512x14x14   128  128   256  24    64   64      510,104
    inception4d                 528x14x14   112  144   288  32    64   64      605,376
    inception4e                 832x14x14   256  160   320  32    128  128     868,352
    maxpool4     3x3/2          832x7x7
    inception5a                 832x7x7     256  160   320  32    128  128     1,043,456
    inception5b                 1024x7x7    384  192   384  48    128  128     1,444,080
    avgpool      7x7 (global)   1024x1x1
    dropout 0.4, fc             1000                                           1,025,000
    total (without the auxiliary heads)                                        6,998,552

Each convolution is followed by a ReLU. The two auxiliary classifiers (Section 5) sit
on the outputs of 4a (512x14x14) and 4d (528x14x14): average pool 5x5/3 (-> 4x4),
1x1 convolution with 128 filters + ReLU, FC-1024 + ReLU, dropout 0.7, FC-classes;
3,188,840 and 3,190,888 parameters at 1,000 classes, so ``googlenet`` with its heads
has 13,378,280.

Versus the paper's "about 6.8M": the params column of Table 1 sums to 6,797.7 K. It
counts weights only (the 8,280 biases are left out), and most of its rows are below
what the table's own widths give: weights per row here vs the column, in K,

    conv1 9.4 vs 2.7      conv2+3 114.7 vs 112   3a 163.3 vs 159   3b 388.1 vs 380
    4a 375.6 vs 364       4b 448.5 vs 437        4c 509.4 vs 463   4d 604.7 vs 580
    4e 867.3 vs 840       5a 1,042.4 vs 1,072    5b 1,442.8 vs 1,388   fc 1,024 vs 1,000

(the fc row is rounded to 1 M). Built from the widths, as here, the network has
6,990,272 weights + 8,280 biases = 6,998,552 parameters, 3% above the column's sum.

Deviations from the paper:

* LRN constants: the paper does not give them. These are those of the BVLC Caffe
  reference GoogLeNet (local_size 5, alpha 1e-4, beta 0.75, k 1), whose alpha is
  divided by the window size, i.e. alpha = 2e-5 in the paper formula of
  :mod:`zoo.layers.norm`.
* Max-pools round up (``ceil_mode``, Caffe's rounding); this reproduces the map sizes
  of Table 1 (112 -> 56 -> 28 -> 14 -> 7).
* Initialisation: the paper (trained with DistBelief) states none; ``_init_weights``
  follows the BVLC Caffe reference model.
* The final 7x7 average pool is global average pooling (identical at 224 px). The
  auxiliary heads add an adaptive average pool to their design grid (4x4 at 224 px)
  after the 5x5/3 pool, the identity at the design size.
* Heads and losses: ``forward(x)`` returns the main logits only and never evaluates
  the auxiliary heads; ``forward_train(x)`` returns ``(logits, [aux_4a, aux_4d])``.
  The training module weighs the auxiliary losses by 0.3 (Section 5). There is no
  loss in the model.

``googlenet_bn`` is torchvision's ``googlenet``. Its differences from the paper are
torchvision's, kept here so that its weights load unchanged:

* batch normalisation (eps 1e-3) after every convolution, which has no bias; no LRN;
* the "5x5" branch uses a 3x3 convolution, which torchvision documents in its source
  as a known deviation kept for its pretrained weights (pytorch/vision issue #906);
* the max-pool after 4e is 2x2/2; the auxiliary heads pool adaptively to 4x4;
* main dropout 0.2;
* ``transform_input``: torchvision's pretrained weights expect inputs normalised to
  [-1, 1]; with ``transform_input=True`` the model maps ImageNet-normalised inputs to
  that (torchvision sets it when loading those weights, and so does
  ``create_model("googlenet_bn", weights="torchvision")``).
6,624,904 parameters without auxiliary heads, 13,004,888 with them.

Options:

* ``aux_logits=False`` removes the auxiliary heads (and their parameters).
* ``small_input=True`` (28/32-px images): conv1 becomes 3x3/1 (from 7x7/2) and the
  stem's second max-pool is dropped, so a 32-px image reaches inception 3 at 16x16,
  4 at 8x8 and 5 at 4x4 (224 px: 28, 14, 7). The auxiliary heads' FC-1024 is sized from
  the map they actually see at ``image_size`` (``googlenet``: 128x2x2 at 32 px).
* ``dropout``: dropout before the classifier (paper: 0.4; torchvision's variant: 0.2).

Interface: ``forward_features`` returns the inception-5b map, ``forward_head(x,
pre_logits=True)`` the pooled, dropped-out ``(B, 1024)`` input of ``fc`` (``num_features``),
``get_classifier()`` is ``fc``; ``reset_classifier(k)`` replaces ``fc`` and the auxiliary
heads' last layers. ``feature_info`` has one entry per reduction: conv1 at 2, the stem's
last layer at 4, inception 3b at 8, 4e at 16 and 5b at 32 (with ``small_input``: conv1 at
1, 3b at 2, 4e at 4, 5b at 8).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Mapping, NamedTuple, Sequence, Union

import torch
import torch.nn as nn

from zoo._registry import Paper, register_model
from zoo.features import feature_info_from_taps
from zoo.interop import register_torchvision
from zoo.layers.head import new_classifier
from zoo.layers.norm import LocalResponseNorm
from zoo.models._common import check_small_input, default_image_size
from zoo.ops.shape import conv_output_size

__all__ = ["GoogLeNet", "Inception", "InceptionAux", "InceptionSpec", "GOOGLENET_TABLE1",
           "googlenet", "googlenet_bn"]

log = logging.getLogger(__name__)

PAPER = Paper(
    title="Going Deeper with Convolutions",
    authors="Szegedy et al.",
    year=2014,
    arxiv="1409.4842",
)


class InceptionSpec(NamedTuple):
    """One row of Table 1: the widths of an Inception module's four branches."""

    name: str
    n1x1: int
    n3x3red: int
    n3x3: int
    n5x5red: int
    n5x5: int
    pool_proj: int


# Table 1 of the paper; the strings are the 3x3/2 max-pools between the stages.
GOOGLENET_TABLE1: tuple[Union[InceptionSpec, str], ...] = (
    InceptionSpec("3a", 64, 96, 128, 16, 32, 32),
    InceptionSpec("3b", 128, 128, 192, 32, 96, 64),
    "maxpool3",
    InceptionSpec("4a", 192, 96, 208, 16, 48, 64),
    InceptionSpec("4b", 160, 112, 224, 24, 64, 64),
    InceptionSpec("4c", 128, 128, 256, 24, 64, 64),
    InceptionSpec("4d", 112, 144, 288, 32, 64, 64),
    InceptionSpec("4e", 256, 160, 320, 32, 128, 128),
    "maxpool4",
    InceptionSpec("5a", 256, 160, 320, 32, 128, 128),
    InceptionSpec("5b", 384, 192, 384, 48, 128, 128),
)
AUX_TAPS = ("inception4a", "inception4d")  # Section 5: heads on the outputs of 4a and 4d
# BVLC Caffe reference values in the paper's LRN formula (Caffe's alpha 1e-4 / window 5).
_LRN = {"size": 5, "alpha": 1e-4 / 5, "beta": 0.75, "k": 1.0}
# ImageNet channel statistics that ``transform_input`` undoes (torchvision's convention).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class ConvBlock(nn.Module):
    """Convolution, optional batch norm, ReLU.

    Args:
        in_chans: input channels.
        out_chans: output channels.
        kernel_size: square kernel.
        stride: stride.
        padding: zero padding.
        batch_norm: add BN (then the convolution has no bias).
        bn_eps: BN epsilon.
    """

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 batch_norm: bool = False, bn_eps: float = 1e-3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding, bias=not batch_norm)
        self.bn = nn.BatchNorm2d(out_chans, eps=bn_eps) if batch_norm else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``(B, C_in, H, W)``. Returns: ``(B, C_out, H', W')``."""
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


class Inception(nn.Module):
    """Inception module (Figure 2b): 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max-pool -> 1x1, concatenated.

    Args:
        in_chans: input channels.
        spec: branch widths.
        kernel5: kernel of the third branch (5 in the paper, 3 in torchvision's variant).
        batch_norm: BN after every convolution.
        bn_eps: BN epsilon.
    """

    def __init__(self, in_chans: int, spec: InceptionSpec, kernel5: int = 5, batch_norm: bool = False,
                 bn_eps: float = 1e-3) -> None:
        super().__init__()
        conv = dict(batch_norm=batch_norm, bn_eps=bn_eps)
        self.branch1 = ConvBlock(in_chans, spec.n1x1, 1, **conv)
        self.branch2 = nn.Sequential(ConvBlock(in_chans, spec.n3x3red, 1, **conv),
                                     ConvBlock(spec.n3x3red, spec.n3x3, 3, padding=1, **conv))
        self.branch3 = nn.Sequential(ConvBlock(in_chans, spec.n5x5red, 1, **conv),
                                     ConvBlock(spec.n5x5red, spec.n5x5, kernel5, padding=kernel5 // 2, **conv))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     ConvBlock(in_chans, spec.pool_proj, 1, **conv))
        self.out_chans = spec.n1x1 + spec.n3x3 + spec.n5x5 + spec.pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``(B, C_in, H, W)``. Returns: ``(B, out_chans, H, W)``."""
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class InceptionAux(nn.Module):
    """Auxiliary classifier (Section 5): pool, 1x1 conv 128 + ReLU, FC-1024 + ReLU, dropout, FC.

    Args:
        in_chans: channels of the tapped map.
        num_classes: output classes.
        pool: ``"avg5s3"`` (paper: average pool 5x5/3, then adaptively to ``grid``) or
            ``"adaptive"`` (torchvision: adaptive average pool to ``grid``).
        grid: side of the pooled map the FC-1024 layer is sized for.
        dropout: dropout before the last FC (paper: 0.7).
        batch_norm: BN after the 1x1 convolution.
        bn_eps: BN epsilon.
    """

    def __init__(self, in_chans: int, num_classes: int, pool: str = "avg5s3", grid: int = 4,
                 dropout: float = 0.7, batch_norm: bool = False, bn_eps: float = 1e-3) -> None:
        super().__init__()
        if pool == "avg5s3":
            self.pool = nn.Sequential(nn.AvgPool2d(5, stride=3), nn.AdaptiveAvgPool2d(grid))
        elif pool == "adaptive":
            self.pool = nn.AdaptiveAvgPool2d(grid)
        else:
            raise ValueError(f"aux pool must be 'avg5s3' or 'adaptive', got {pool!r}")
        self.conv = ConvBlock(in_chans, 128, 1, batch_norm=batch_norm, bn_eps=bn_eps)
        self.fc1 = nn.Linear(128 * grid * grid, 1024)
        self.act = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``(B, C, 14, 14)`` at 224 px. Returns: logits ``(B, num_classes)``."""
        x = self.pool(x)  # (B, C, 4, 4)
        x = self.conv(x)  # (B, 128, 4, 4)
        x = torch.flatten(x, 1)  # (B, 2048)
        x = self.act(self.fc1(x))  # (B, 1024)
        return self.fc2(self.dropout(x))


class GoogLeNet(nn.Module):
    """Inception v1 built from a Table-1 list of :class:`InceptionSpec` and pools.

    Args:
        blocks: Inception specs and max-pool names after the stem.
        num_classes: output classes.
        in_chans: input channels.
        aux_logits: build the two auxiliary classifiers (used by :meth:`forward_train` only).
        batch_norm: BN after every convolution (torchvision's variant).
        lrn: LRN in the stem (paper).
        kernel5: kernel of the "5x5" branch.
        last_pool_kernel: kernel of the max-pool after 4e (3 in the paper, 2 in torchvision).
        aux_pool: ``"avg5s3"`` (paper) or ``"adaptive"`` (torchvision).
        dropout: dropout before the classifier (paper: 0.4).
        aux_dropout: dropout in the auxiliary heads (paper: 0.7).
        bn_eps: BN epsilon.
        transform_input: map ImageNet-normalised inputs to [-1, 1] first (torchvision's weights).
        small_input: 3x3/1 conv1 and no second stem pool, for 28/32-px inputs.
        image_size: input side the auxiliary heads are sized for.
    """

    def __init__(self, blocks: Sequence[Union[InceptionSpec, str]] = GOOGLENET_TABLE1, *,
                 num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True,
                 batch_norm: bool = False, lrn: bool = True, kernel5: int = 5, last_pool_kernel: int = 3,
                 aux_pool: str = "avg5s3", dropout: float = 0.4, aux_dropout: float = 0.7,
                 bn_eps: float = 1e-3, transform_input: bool = False, small_input: bool = False,
                 image_size: int = 224) -> None:
        super().__init__()
        if transform_input and in_chans != 3:
            raise ValueError("transform_input assumes RGB inputs (in_chans=3)")
        self.num_classes = num_classes
        self.batch_norm = batch_norm
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        scale = torch.tensor(_IMAGENET_STD) / 0.5
        shift = (torch.tensor(_IMAGENET_MEAN) - 0.5) / 0.5
        self.register_buffer("input_scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", shift.view(1, 3, 1, 1), persistent=False)
        conv = dict(batch_norm=batch_norm, bn_eps=bn_eps)

        # Stem: conv1, pool, LRN, 1x1 reduce (conv2), 3x3 (conv3), LRN, pool (Figure 3).
        n = image_size
        k1, s1, p1 = (3, 1, 1) if small_input else (7, 2, 3)
        stem: list[tuple[str, nn.Module]] = [("conv1", ConvBlock(in_chans, 64, k1, s1, p1, **conv))]
        n = conv_output_size(n, k1, s1, p1)
        stem.append(("pool1", nn.MaxPool2d(3, stride=2, ceil_mode=True)))
        n = conv_output_size(n, 3, 2, ceil_mode=True)
        if lrn:
            stem.append(("lrn1", LocalResponseNorm(**_LRN)))
        stem += [("conv2", ConvBlock(64, 64, 1, **conv)), ("conv3", ConvBlock(64, 192, 3, padding=1, **conv))]
        if lrn:
            stem.append(("lrn2", LocalResponseNorm(**_LRN)))
        if not small_input:
            stem.append(("pool2", nn.MaxPool2d(3, stride=2, ceil_mode=True)))
            n = conv_output_size(n, 3, 2, ceil_mode=True)
        self.stem = nn.Sequential(OrderedDict(stem))
        # (module, channels, reduction) of every stem layer, for feature_info
        taps: list[tuple[str, int, int]] = []
        reduction, c = 1, in_chans
        for name, layer in stem:
            if isinstance(layer, ConvBlock):
                reduction, c = reduction * layer.conv.stride[0], layer.conv.out_channels
            elif isinstance(layer, nn.MaxPool2d):
                reduction *= 2
            taps.append((f"stem.{name}", c, reduction))

        # Inception stages, as listed in `blocks`.
        layers: dict[str, nn.Module] = {}
        c = 192
        aux_chans: dict[str, int] = {}  # tapped block -> its channels
        tap_sizes: dict[str, int] = {}  # tapped block -> its map side at `image_size`
        for b in blocks:
            if isinstance(b, str):
                k = last_pool_kernel if b == "maxpool4" else 3
                layers[b] = nn.MaxPool2d(k, stride=2, ceil_mode=True)
                n = conv_output_size(n, k, 2, ceil_mode=True)
                reduction *= 2
                taps.append((f"blocks.{b}", c, reduction))
                continue
            name = f"inception{b.name}"
            layers[name] = Inception(c, b, kernel5=kernel5, **conv)
            c = layers[name].out_chans
            taps.append((f"blocks.{name}", c, reduction))
            if name in AUX_TAPS:
                aux_chans[name], tap_sizes[name] = c, n
        self.blocks = nn.ModuleDict(layers)
        self.num_features = c
        self.feature_info = feature_info_from_taps(taps)

        self.aux1: InceptionAux | None = None
        self.aux2: InceptionAux | None = None
        if aux_logits:
            heads = []
            for tap in AUX_TAPS:
                m = tap_sizes[tap]
                grid = conv_output_size(m, 5, 3) if aux_pool == "avg5s3" else 4
                if grid < 1:
                    raise ValueError(f"image_size={image_size} leaves a {m}x{m} map at {tap}, too small for "
                                     f"the auxiliary head's 5x5 pool; use aux_logits=False or larger inputs")
                heads.append(InceptionAux(aux_chans[tap], num_classes, pool=aux_pool, grid=grid,
                                          dropout=aux_dropout, **conv))
            self.aux1, self.aux2 = heads

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """Without BN: the BVLC Caffe reference GoogLeNet, i.e. Caffe's "xavier" filler
        U(+-sqrt(3 / fan_in)) for every weight, biases 0.2, classifier biases 0.
        With BN: torchvision's GoogLeNet, weights ~ N(0, 0.01) truncated to [-2, 2],
        BN at the identity; biases 0."""
        classifiers = {self.fc}
        for aux in (self.aux1, self.aux2):
            if aux is not None:
                classifiers.add(aux.fc2)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                self._init_layer(m, classifier=m in classifiers)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _init_layer(self, m: nn.Conv2d | nn.Linear, classifier: bool) -> None:
        """One convolution or linear layer by the rule of :meth:`_init_weights`."""
        if self.batch_norm:
            nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2.0, b=2.0)
        else:
            nn.init.kaiming_uniform_(m.weight, nonlinearity="linear")  # bound sqrt(3 / fan_in)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0.0 if (self.batch_norm or classifier) else 0.2)

    def get_classifier(self) -> nn.Module:
        """Returns the main classifier, ``fc``."""
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replaces ``fc`` and the auxiliary heads' last layers by fresh ones.

        Args:
            num_classes: new number of classes (initialised as the classifiers of
                :meth:`_init_weights`); 0 installs ``nn.Identity``, so that ``forward`` returns
                the pooled features ``(B, num_features)`` (and the auxiliary heads their
                1,024 hidden units).
        """
        self.fc = new_classifier(self, self.num_features, num_classes)
        for aux in (self.aux1, self.aux2):
            if aux is not None:
                aux.fc2 = new_classifier(self, aux.fc1.out_features, num_classes)
        for m in (self.fc, *(a.fc2 for a in (self.aux1, self.aux2) if a is not None)):
            if isinstance(m, nn.Linear):
                self._init_layer(m, classifier=True)
        self.num_classes = num_classes

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.transform_input:
            x = x * self.input_scale + self.input_shift  # ImageNet-normalised -> [-1, 1]
        return x

    def _features(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        aux: list[torch.Tensor] = []
        x = self.stem(self._transform_input(x))  # (B, 192, 28, 28) at 224 px
        for name, block in self.blocks.items():
            x = block(x)
            if with_aux and name in AUX_TAPS:
                head = self.aux1 if name == AUX_TAPS[0] else self.aux2
                aux.append(head(x))
        return x, aux  # x: (B, 1024, 7, 7) at 224 px

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``(B, C, H, W)``. Returns: the inception-5b map ``(B, 1024, h, w)``."""
        x = self.stem(self._transform_input(x))  # (B, 192, 28, 28) at 224 px
        for block in self.blocks.values():  # no auxiliary taps: the same path as forward_train's
            x = block(x)
        return x  # (B, 1024, 7, 7) at 224 px

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pooling, dropout and ``fc``.

        Args:
            x: inception-5b map ``(B, 1024, h, w)``.
            pre_logits: return the input of ``fc`` ``(B, 1024)`` instead of the logits.

        Returns:
            Logits ``(B, num_classes)``, or the pre-logits features.
        """
        x = self.dropout(torch.flatten(self.avgpool(x), 1))  # (B, 1024)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Main logits only; the auxiliary heads are never evaluated here.

        Args:
            x: ``(B, C, H, W)``.

        Returns:
            Logits ``(B, num_classes)``.
        """
        return self.forward_head(self.forward_features(x))

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Main and auxiliary logits, for training (the auxiliary losses are weighted by 0.3).

        Args:
            x: ``(B, C, H, W)``.

        Returns:
            ``(logits, [aux_4a, aux_4d])``, each ``(B, num_classes)``; the list is empty
            with ``aux_logits=False``.
        """
        x, aux = self._features(x, with_aux=self.aux_logits)
        return self.forward_head(x), aux


def _tv_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's GoogLeNet keys -> ours: the stem convs live in ``stem``, the Inception
    modules in ``blocks``; the auxiliary heads and ``fc`` keep their names."""
    out: dict[str, torch.Tensor] = {}
    for k, v in state_dict.items():
        head = k.split(".", 1)[0]
        if head in ("conv1", "conv2", "conv3"):
            k = "stem." + k
        elif head.startswith("inception"):
            k = "blocks." + k
        out[k] = v
    return out


@register_model(
    paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=13_378_280, macs=1_582_671_872,
    paper_results={"imagenet_val/top5_err_1crop": 10.07},
    notes="Inception v1 of Table 1: true 5x5 branches, LRN, no BN; 6,998,552 params without aux heads",
)
def googlenet(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.4, aux_logits: bool = True,
              small_input: bool = False, image_size: int | None = None, **kwargs: Any) -> GoogLeNet:
    """GoogLeNet as in the paper's Table 1 (6,998,552 parameters without the auxiliary heads).

    Args:
        num_classes: output classes.
        in_chans: input channels.
        dropout: dropout before the classifier (paper: 0.4).
        aux_logits: build the auxiliary heads on 4a and 4d (for :meth:`GoogLeNet.forward_train`).
        small_input: 3x3/1 conv1 and no second stem pool, for 28/32-px inputs.
        image_size: input side the auxiliary heads are sized for (224, or 32 with ``small_input``).
        **kwargs: further :class:`GoogLeNet` options (``aux_dropout``, ``transform_input``).

    Returns:
        The model.
    """
    check_small_input("googlenet", small_input)
    return GoogLeNet(GOOGLENET_TABLE1, num_classes=num_classes, in_chans=in_chans, dropout=dropout,
                     aux_logits=aux_logits, small_input=small_input,
                     image_size=default_image_size(small_input, image_size, 224), **kwargs)


@register_model(
    paper=PAPER, input_size=(3, 224, 224), num_classes=1000, params=13_004_888, macs=1_498_376_192,
    notes="torchvision's BN GoogLeNet: 3x3 in the '5x5' branch, no LRN; 6,624,904 params without aux heads",
)
def googlenet_bn(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.2, aux_logits: bool = True,
                 transform_input: bool = False, small_input: bool = False, image_size: int | None = None,
                 **kwargs: Any) -> GoogLeNet:
    """torchvision's batch-normalised GoogLeNet (6,624,904 parameters without the auxiliary heads).

    Args:
        num_classes: output classes.
        in_chans: input channels.
        dropout: dropout before the classifier (torchvision: 0.2).
        aux_logits: build the auxiliary heads on 4a and 4d.
        transform_input: map ImageNet-normalised inputs to [-1, 1], as torchvision's
            pretrained weights expect.
        small_input: 3x3/1 conv1 and no second stem pool, for 28/32-px inputs.
        image_size: input side (224, or 32 with ``small_input``).
        **kwargs: further :class:`GoogLeNet` options.

    Returns:
        The model.
    """
    check_small_input("googlenet_bn", small_input)
    return GoogLeNet(GOOGLENET_TABLE1, num_classes=num_classes, in_chans=in_chans, dropout=dropout,
                     aux_logits=aux_logits, batch_norm=True, lrn=False, kernel5=3, last_pool_kernel=2,
                     aux_pool="adaptive", bn_eps=1e-3, transform_input=transform_input, small_input=small_input,
                     image_size=default_image_size(small_input, image_size, 224), **kwargs)


# torchvision's pretrained GoogLeNet expects transform_input=True (torchvision sets it when
# it loads those weights); pass transform_input=False for a state dict of a model built without it.
register_torchvision("googlenet_bn", "googlenet", remap=_tv_keys, transform_input=True)
