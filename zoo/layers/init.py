"""Weight initialisation shared by the BatchNorm networks of the zoo (ResNet, MobileNet, ShuffleNet)."""

from __future__ import annotations

import torch.nn as nn

__all__ = ["kaiming_fan_out_init"]


def kaiming_fan_out_init(model: nn.Module, linear_std: float | None = 0.01) -> None:
    """He-normal (fan-out) convolutions, unit norm layers and an N(0, ``linear_std``) classifier.

    Convolution weights are drawn from N(0, 2 / (k*k*c_out)): the initialisation of He et al.
    2015, "Delving Deep into Rectifiers", arXiv:1502.01852, Sec. 2.2, in its backward-propagation
    form (n = k^2 d, the fan-out), which is torchvision's
    ``nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")`` for its ResNets,
    MobileNets and ShuffleNets. Convolution biases are zeroed; BatchNorm / GroupNorm start at
    the identity (weight 1, bias 0). Modules are visited in ``model.modules()`` order, so the
    random draws are reproducible for a given seed.

    Args:
        model: initialised in place.
        linear_std: standard deviation of the linear layers' weights (their biases are zeroed);
            ``None`` leaves the linear layers as PyTorch initialised them.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)
