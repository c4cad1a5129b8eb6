"""Gated convolutional networks (GLU) for image classification.

Dauphin et al. 2017, "Language Modeling with Gated Convolutional Networks",
arXiv:1612.08083, introduce the gated linear unit ``h = (X*W + b) * sigmoid(X*V + c)``
(Eq. 1): a convolution whose output is modulated, channel by channel, by a sigmoid
gate computed by a second convolution of the same input, and wrap stacks of such
layers in residual blocks (Fig. 1). The paper builds language models; the two
networks here carry the same layer to images, and every architectural choice beyond
the gated unit and the residual block is this module's own (listed below).
The blocks are :class:`zoo.layers.conv.GatedConv2d`, :class:`~zoo.layers.conv.GatedConv1d`
and the residual forms :class:`~zoo.layers.conv.GatedResidualBlock2d` / ``1d``.

``gated_cnn`` -- an image classifier of 2-D gated residual blocks:

* stem: a 3x3 gated convolution to ``widths[0]`` channels;
* stages: stage ``i > 0`` opens with a 3x3 stride-2 gated convolution (the
  downsampling layer, itself gated) to ``widths[i]`` channels, followed by
  ``depths[i]`` residual blocks of two 3x3 gated convolutions each;
* head: BatchNorm, global average pool, fully connected layer.
* Every gated convolution after the stem is preceded by BatchNorm (pre-activation
  order, He et al. 2016, arXiv:1603.05027). Dauphin et al. use weight
  normalisation (and gradient clipping) instead; BatchNorm is the usual
  normalisation of image classifiers and the one the rest of this zoo uses.

``gated_tcn`` -- a temporal convolutional network that reads an image as a
sequence, one row per time step (the row's pixels of all channels are the step's
features), as in the sequential-MNIST benchmarks of recurrent and temporal
convolutional networks (Bai et al. 2018, "An Empirical Evaluation of Generic
Convolutional and Recurrent Networks for Sequence Modeling", arXiv:1803.01271):

* a 1x1 convolution (a per-step linear map) to ``hidden`` channels;
* residual blocks of two causal gated 1-D convolutions (kernel 3) with dilation
  ``1, 2, 4, 8, ...`` in successive blocks (WaveNet's dilation schedule, van den
  Oord et al. 2016, arXiv:1609.03499), as many blocks as it takes for the
  receptive field ``1 + 2 (k - 1) (1 + 2 + ... + 2^(L-1))`` to cover every row (28
  rows: 3 blocks, field 29; 32 rows: 4 blocks, field 61);
* causal: every convolution is left-padded by ``(k - 1) d`` (Dauphin et al.,
  Sec. 2), so step ``t`` sees rows ``<= t`` only, and the class is read from the
  last step, the only one that has seen the whole image;
* normalisation is a LayerNorm over the channels of each step (it keeps the
  network causal; BatchNorm's batch statistics would mix time steps).

The default widths are small (4.6 M multiply-adds at 28 px) so that a few
epochs of MNIST train in minutes on a CPU; ``widths``/``depths`` scale it up.

Small inputs: both networks are laid out for 28/32-px images, and that layout is their
default; the paper, a language model, has no image layout to follow. ``gated_cnn``'s
``small_input=True`` (the default, the registered figures) is that layout;
``small_input=False`` (for ImageNet-size images) replaces the stem by a 7x7 stride-2
gated convolution and a 3x3 stride-2 max pool, dividing the resolution by 4 before the
stages. ``gated_tcn`` has a single layout: it is built for ``image_size`` (rows x row
width), its depth follows the number of rows, and it takes ``small_input=True`` only.

Dropout: ``gated_cnn``'s ``dropout`` is dropout on the pooled features, before the
classifier; ``gated_tcn``'s is dropout on every residual branch (the classifier reads
the last step directly).

Interface: ``gated_cnn`` ends in :class:`zoo.layers.head.GlobalPoolClassifierNet`'s head
(``forward_head(x, pre_logits=True)`` is the pooled ``(B, widths[-1])``); ``gated_tcn``'s
``forward_features`` returns the per-step features ``(B, hidden, H)`` and
``forward_head(x, pre_logits=True)`` the normalised last step ``(B, hidden)``. For both,
``get_classifier()`` is ``fc`` and ``reset_classifier(k)`` replaces it (He init, as below).

Layer tables (MNIST, 1x28x28)::

    gated_cnn                          output
    gated conv 3x3                      8x28x28
    gated conv 3x3 /2, 1 block         16x14x14
    gated conv 3x3 /2, 1 block         32x7x7
    BN, global pool, fc                10

    gated_tcn                          output
    rows as steps                      28 features x 28 steps
    conv 1x1                           64 x 28
    3 blocks (d = 1, 2, 4), causal     64 x 28   (receptive field 29 steps)
    LayerNorm, last step, fc           10
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from zoo._registry import Paper, register_model
from zoo.layers.conv import (
    GatedConv2d,
    GatedResidualBlock1d,
    GatedResidualBlock2d,
    receptive_field,
)
from zoo.layers.head import GlobalPoolClassifierNet, new_classifier
from zoo.models._common import check_small_input, require_layout

__all__ = ["GatedCNN", "GatedTCN", "gated_cnn", "gated_tcn"]

PAPER = Paper(
    title="Language Modeling with Gated Convolutional Networks",
    authors="Dauphin et al.",
    year=2017,
    arxiv="1612.08083",
)


def _init_layer(m: nn.Conv1d | nn.Conv2d | nn.Linear) -> None:
    """He-normal (fan-in) weights and zero bias for one layer (see :func:`_init_weights`)."""
    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    if m.bias is not None:
        nn.init.zeros_(m.bias)


def _init_weights(model: nn.Module) -> None:
    """He-normal (fan-in) convolutions and linear layers with zero biases, as Dauphin et al.
    2017 (Sec. 5) initialise their gated layers (He et al. 2015, arXiv:1502.01852); unit norms."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            _init_layer(m)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class GatedCNN(GlobalPoolClassifierNet):
    """Image classifier of 2-D gated residual blocks.

    Args:
        widths: channels of each stage.
        depths: residual blocks per stage.
        kernel_size: kernel of every gated convolution in the blocks.
        layers_per_block: gated convolutions per residual block.
        num_classes: classifier outputs.
        in_chans: input image channels.
        small_input: 3x3 stride-1 stem (28/32-px images); ``False``: 7x7/2 stem and 3x3/2 max pool.
        dropout: dropout before the classifier.
    """

    def __init__(self, widths: Sequence[int] = (8, 16, 32), depths: Sequence[int] = (0, 1, 1),
                 kernel_size: int = 3, layers_per_block: int = 2, *, num_classes: int = 10, in_chans: int = 1,
                 small_input: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        widths, depths = tuple(widths), tuple(depths)
        if len(widths) != len(depths):
            raise ValueError(f"widths and depths need one entry per stage, got {widths} and {depths}")
        if small_input:
            self.stem = nn.Sequential(GatedConv2d(in_chans, widths[0], 3))
        else:
            self.stem = nn.Sequential(GatedConv2d(in_chans, widths[0], 7, stride=2),
                                      nn.MaxPool2d(3, stride=2, padding=1))
        stages: list[nn.Module] = []
        c = widths[0]
        for i, (w, d) in enumerate(zip(widths, depths)):
            layers: list[nn.Module] = []
            if i > 0:
                layers += [nn.BatchNorm2d(c), GatedConv2d(c, w, 3, stride=2)]  # (B, c, H, W) -> (B, w, H/2, W/2)
            layers += [GatedResidualBlock2d(w, kernel_size, num_layers=layers_per_block, norm="batch")
                       for _ in range(d)]
            stages.append(nn.Sequential(*layers))
            c = w
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(c)
        self.num_classes = num_classes
        self.num_features = c
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """See :func:`_init_weights` (He et al. 2015, as in Dauphin et al. 2017)."""
        _init_weights(self)

    def _init_classifier(self, layer: nn.Linear) -> None:
        """A new ``fc``: He-normal weights, zero bias, as :meth:`_init_weights`."""
        _init_layer(layer)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` image -> ``(B, widths[-1], h, w)`` normalised feature map."""
        return self.norm(self.stages(self.stem(x)))


class GatedTCN(GlobalPoolClassifierNet):
    """Causal, dilated gated temporal convolutional network over the rows of an image.

    Its head reads the last time step (LayerNorm, ``fc``) instead of pooling: it overrides
    :meth:`forward_head` and shares ``forward``, ``get_classifier`` and ``reset_classifier``.

    Args:
        seq_len: number of time steps (image rows) the receptive field must cover.
        in_features: features per step (``in_chans x`` row width).
        hidden: channels of every block.
        kernel_size: kernel of the gated convolutions.
        layers_per_block: gated convolutions per residual block.
        num_blocks: residual blocks (dilation ``2^i`` in block ``i``); ``None``: the fewest
            whose receptive field covers ``seq_len``.
        num_classes: classifier outputs.
        dropout: dropout on each block's residual branch.
    """

    def __init__(self, seq_len: int = 28, in_features: int = 28, hidden: int = 64, kernel_size: int = 3,
                 layers_per_block: int = 2, num_blocks: int | None = None, *, num_classes: int = 10,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.seq_len, self.in_features = seq_len, in_features
        if num_blocks is None:
            num_blocks = 1
            while self._field(kernel_size, layers_per_block, num_blocks) < seq_len:
                num_blocks += 1
        self.dilations = [2 ** i for i in range(num_blocks)]
        self.receptive_field = self._field(kernel_size, layers_per_block, num_blocks)
        self.proj = nn.Conv1d(in_features, hidden, 1)
        self.blocks = nn.Sequential(*[
            GatedResidualBlock1d(hidden, kernel_size, dilation=d, causal=True, num_layers=layers_per_block,
                                 norm="layer", dropout=dropout)
            for d in self.dilations
        ])
        self.norm = nn.LayerNorm(hidden)
        self.num_features = hidden
        self.fc = nn.Linear(hidden, num_classes)
        self._init_weights()

    @staticmethod
    def _field(kernel_size: int, layers_per_block: int, num_blocks: int) -> int:
        return receptive_field([(kernel_size, 1, 2 ** i) for i in range(num_blocks)
                                for _ in range(layers_per_block)])

    def _init_weights(self) -> None:
        """See :func:`_init_weights` (He et al. 2015, as in Dauphin et al. 2017)."""
        _init_weights(self)

    @staticmethod
    def to_sequence(x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` image -> ``(B, C*W, H)`` sequence: row ``t`` is step ``t``."""
        b, c, h, w = x.shape
        return x.permute(0, 1, 3, 2).reshape(b, c * w, h)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` image -> ``(B, hidden, H)`` per-step features (step ``t`` sees rows ``<= t``)."""
        seq = self.to_sequence(x)  # (B, C*W, H)
        if seq.shape[1] != self.in_features:
            if not torch.jit.is_scripting():
                self._fail_row_features(x)
            raise ValueError("GatedTCN was built for rows of another number of features (channels x width); "
                             "build it with image_size=(H, W) of your data")
        return self.blocks(self.proj(seq))  # (B, hidden, H)

    def _fail_row_features(self, x: torch.Tensor) -> None:
        """Raises the ValueError of :meth:`forward_features` for an image ``x`` of the wrong width."""
        raise ValueError(f"GatedTCN was built for rows of {self.in_features} features (channels x width), "
                         f"got an image {tuple(x.shape[1:])} with {x.shape[1] * x.shape[3]}; build it with "
                         f"image_size=(H, W) of your data")

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Reads the last step: LayerNorm and ``fc``.

        Args:
            x: per-step features ``(B, hidden, L)``.
            pre_logits: return the normalised last step ``(B, hidden)`` instead of the logits.

        Returns:
            Logits ``(B, num_classes)``, or the normalised last step.
        """
        x = self.norm(x[:, :, -1])  # (B, hidden): the only step that has seen every row
        return x if pre_logits else self.fc(x)

    def _init_classifier(self, layer: nn.Linear) -> None:
        """A new ``fc`` from :meth:`reset_classifier`: He-normal weights, zero bias (as at build time)."""
        _init_layer(layer)


@register_model(paper=PAPER, input_size=(1, 28, 28), num_classes=10, params=58_682, macs=4_629_056,
                notes="2-D gated residual image classifier (design of this zoo, GLU layers of Dauphin et al.)")
def gated_cnn(*, num_classes: int = 10, in_chans: int = 1, small_input: bool = True,
              dropout: float = 0.0, **kwargs: Any) -> GatedCNN:
    """Gated CNN image classifier for 28/32-px images.

    Args:
        num_classes: classifier outputs.
        in_chans: input channels.
        small_input: ``True`` (default: the network's design layout, for 28/32-px images);
            ``False`` adds a 7x7/2 stem and max pool for large images.
        dropout: dropout before the classifier.
        **kwargs: further :class:`GatedCNN` options (``widths``, ``depths``, ...).

    Returns:
        The model.
    """
    check_small_input("gated_cnn", small_input)
    return GatedCNN(num_classes=num_classes, in_chans=in_chans, small_input=small_input, dropout=dropout,
                    **kwargs)


@register_model(paper=PAPER, input_size=(1, 28, 28), num_classes=10, params=151_626, macs=4_179_584,
                notes="causal dilated gated TCN over image rows, reads the last step (sequential images)")
def gated_tcn(*, num_classes: int = 10, in_chans: int = 1, small_input: bool = True,
              image_size: int | Sequence[int] = 28, dropout: float = 0.0, **kwargs: Any) -> GatedTCN:
    """Gated temporal convolutional network reading an image row by row.

    Args:
        num_classes: classifier outputs.
        in_chans: input channels.
        small_input: must be ``True``: the network has a single layout, built for ``image_size``.
        image_size: ``H`` or ``(H, W)`` of the images: ``H`` steps of ``in_chans x W`` features.
        dropout: dropout on the residual branches.
        **kwargs: further :class:`GatedTCN` options (``hidden``, ``kernel_size``, ...).

    Returns:
        The model.

    Raises:
        ValueError: for ``small_input=False``.
    """
    require_layout("gated_tcn", small_input,
                   layout="rows of 28/32-px images as steps, its depth set by image_size")
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    return GatedTCN(seq_len=h, in_features=in_chans * w, num_classes=num_classes, dropout=dropout, **kwargs)
