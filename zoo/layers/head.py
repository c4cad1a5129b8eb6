"""The fully connected classifier head of AlexNet and VGG, and the forward code around it.

Both networks end in the same way (Krizhevsky et al. 2012, Section 3.5; Simonyan &
Zisserman 2014, Section 2.1): the last feature map is flattened into ``fc6`` and
``fc7``, two hidden layers of 4,096 ReLU units with dropout 0.5, and ``fc8`` gives the
logits. They differ only in where the dropout sits:

* ``dropout_first=False``: ``fc6, ReLU, Dropout, fc7, ReLU, Dropout, fc8``. The papers'
  order: dropout zeroes the *outputs* of the hidden units (AlexNet, Section 4.2: "We use
  dropout in the first two fully-connected layers"; VGG, Section 3.1), and torchvision's VGG.
* ``dropout_first=True``: ``Dropout, fc6, ReLU, Dropout, fc7, ReLU, fc8``. torchvision's
  AlexNet, which drops the *inputs* of fc6 and fc7.

The head is an ``nn.Sequential`` whose module names fix the state-dict keys. By default
the names are the positions (``classifier.0.weight`` ...), as in torchvision. Checkpoints
of a model whose dropout order changed keep their keys through ``linear_keys``: the three
linear layers take the given names and the parameter-free modules descriptive ones
(``act6``, ``drop6``, ...), so only the order of the computation changes.

:func:`gap_classifier` is the light alternative: global average pooling and ``Dropout,
Linear`` (``classifier.1.weight``).

:class:`PooledClassifierNet` holds the forward code the two families share:
``forward_features`` (``features``), ``forward_head`` (``avgpool``, flatten,
``classifier``), ``get_classifier`` / ``reset_classifier`` and ``forward``.

:class:`GlobalPoolClassifierNet` is the same for the networks that end in global average
pooling, dropout and one linear layer, ``pool``, ``drop`` and ``fc`` (ResNet, MobileNet,
ShuffleNet, the gated CNN).

Both follow one rule: ``forward_head(x, pre_logits=True)`` returns the input of the final
layer (``get_classifier()``), ``(B, num_features)``, so that after ``reset_classifier(0)``
``forward(x)`` returns exactly that.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn

__all__ = ["fc_classifier", "gap_classifier", "new_classifier", "PooledClassifierNet", "GlobalPoolClassifierNet"]


def fc_classifier(in_features: int, num_classes: int, *, hidden: int = 4096, dropout: float = 0.5,
                  dropout_first: bool = False, linear_keys: Sequence[str] | None = None) -> nn.Sequential:
    """Builds the ``fc6, fc7, fc8`` classifier with ReLU and dropout.

    Args:
        in_features: flattened size of the feature map (``C * n * n``).
        num_classes: outputs of fc8.
        hidden: width of fc6 and fc7.
        dropout: dropout probability of the two dropout layers.
        dropout_first: ``True`` drops the inputs of fc6 and fc7 (torchvision's AlexNet);
            ``False`` drops the outputs of fc6 and fc7 (the papers, torchvision's VGG).
        linear_keys: names of fc6, fc7 and fc8 in the state dict (e.g. ``("1", "4", "6")``);
            ``None`` names every module by its position.

    Returns:
        The classifier, ``(B, in_features) -> (B, num_classes)``.
    """
    fc6, fc7, fc8 = nn.Linear(in_features, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, num_classes)
    if dropout_first:
        layers = [("drop6", nn.Dropout(dropout)), ("fc6", fc6), ("act6", nn.ReLU(inplace=True)),
                  ("drop7", nn.Dropout(dropout)), ("fc7", fc7), ("act7", nn.ReLU(inplace=True)), ("fc8", fc8)]
    else:
        layers = [("fc6", fc6), ("act6", nn.ReLU(inplace=True)), ("drop6", nn.Dropout(dropout)),
                  ("fc7", fc7), ("act7", nn.ReLU(inplace=True)), ("drop7", nn.Dropout(dropout)), ("fc8", fc8)]
    if linear_keys is None:
        return nn.Sequential(*(m for _, m in layers))
    keys = dict(zip(("fc6", "fc7", "fc8"), linear_keys, strict=True))
    return nn.Sequential(OrderedDict((keys.get(name, name), m) for name, m in layers))


def gap_classifier(in_features: int, num_classes: int, dropout: float = 0.5) -> nn.Sequential:
    """Builds ``Dropout, Linear`` for a globally pooled ``(B, in_features)`` input.

    Args:
        in_features: channels of the pooled feature map.
        num_classes: outputs.
        dropout: dropout before the linear layer.

    Returns:
        The classifier; its linear layer is ``classifier.1``.
    """
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))


def new_classifier(model: nn.Module, in_features: int, num_classes: int) -> nn.Module:
    """The final layer :meth:`reset_classifier` installs: ``nn.Linear`` or, for 0 classes, ``nn.Identity``.

    The layer is created on the device and with the dtype of ``model``'s parameters, and keeps
    PyTorch's default initialisation (the family re-initialises it as its own classifier).

    Args:
        model: the model that receives the layer.
        in_features: input width of the layer (the model's ``num_features``).
        num_classes: outputs; 0 for ``nn.Identity``.

    Returns:
        The new layer.

    Raises:
        ValueError: for a negative ``num_classes``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"reset_classifier needs num_classes >= 0 (0: no classifier), got {num_classes!r}")
    if num_classes == 0:
        return nn.Identity()
    ref = next(model.parameters(), None)
    factory = {} if ref is None else {"device": ref.device, "dtype": ref.dtype}
    return nn.Linear(in_features, num_classes, **factory)


class PooledClassifierNet(nn.Module):
    """Forward code of a network made of ``features``, ``avgpool`` and a sequential ``classifier``.

    Subclasses build ``self.features``, ``self.avgpool`` (to the FC head's design grid, or to
    1x1 for a GAP head), ``self.classifier`` (whose last module is the final linear layer),
    and set ``self.num_classes`` and ``self.num_features`` (the width of the classifier's last
    layer's input: ``hidden`` for the FC head, the channels for the GAP head). They define
    :meth:`_init_classifier` for the layer :meth:`reset_classifier` installs.
    """

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``(B, C, H, W)``. Returns: the last feature map ``(B, C', h, w)`` (before pooling)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pooling, flattening and the classifier.

        Args:
            x: feature map ``(B, C', h, w)``.
            pre_logits: stop before the final layer and return its input ``(B, num_features)``.

        Returns:
            Logits ``(B, num_classes)``, or the pre-logits features.
        """
        x = torch.flatten(self.avgpool(x), 1)  # (B, C' * n * n), or (B, C') for the GAP head
        last = len(self.classifier) - 1
        for i, layer in enumerate(self.classifier):
            if i < last or not pre_logits:
                x = layer(x)  # (B, num_features) after the hidden layers, then the logits
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``(B, C, H, W)``. Returns: logits ``(B, num_classes)``."""
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """Returns the final layer (fc8, or the GAP head's linear layer)."""
        return self.classifier[-1]

    def reset_classifier(self, num_classes: int) -> None:
        """Replaces the final layer by a fresh one with ``num_classes`` outputs.

        Args:
            num_classes: new number of classes; 0 installs ``nn.Identity``, so that
                ``forward`` returns the pre-logits features ``(B, num_features)``.
        """
        layer = new_classifier(self, self.num_features, num_classes)
        if isinstance(layer, nn.Linear):
            self._init_classifier(layer)
        setattr(self.classifier, list(self.classifier._modules)[-1], layer)
        self.num_classes = num_classes

    def _init_classifier(self, layer: nn.Linear) -> None:
        """Initialises a new final layer (overridden by the families)."""


class GlobalPoolClassifierNet(nn.Module):
    """Forward code of a network ending in ``pool`` (global average), ``drop`` (dropout) and ``fc``.

    Subclasses define :meth:`forward_features`, build ``self.pool``, ``self.drop`` and
    ``self.fc``, and set ``self.num_classes`` and ``self.num_features`` (the channels of the
    pooled features). :meth:`_init_classifier` initialises the layer :meth:`reset_classifier`
    installs (by default PyTorch's initialisation is kept).
    """

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - defined by the families
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pooling, dropout and ``fc``.

        Args:
            x: feature map ``(B, num_features, h, w)``.
            pre_logits: return the pooled features ``(B, num_features)`` instead of the logits.

        Returns:
            Logits ``(B, num_classes)``, or the pooled features.
        """
        x = self.drop(torch.flatten(self.pool(x), 1))  # (B, num_features)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x ``(B, C, H, W)``. Returns: logits ``(B, num_classes)``."""
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """Returns the final layer, ``fc``."""
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replaces ``fc`` by a fresh layer with ``num_classes`` outputs.

        Args:
            num_classes: new number of classes; 0 installs ``nn.Identity``, so that ``forward``
                returns the pooled features ``(B, num_features)``.
        """
        self.fc = new_classifier(self, self.num_features, num_classes)
        if isinstance(self.fc, nn.Linear):
            self._init_classifier(self.fc)
        self.num_classes = num_classes

    def _init_classifier(self, layer: nn.Linear) -> None:
        """Initialises a new ``fc`` (default: PyTorch's initialisation is kept)."""
