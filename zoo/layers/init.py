"""Weight initialisation shared by the BatchNorm networks of the zoo."""

from __future__ import annotations

import torch.nn as nn

__all__ = ["kaiming_fan_out_init"]


def kaiming_fan_out_init(model: nn.Module, linear_std: float = 0.01) -> None:
    """He-normal (fan-out) convolutions (He et al. 2015, arXiv:1502.01852), unit BatchNorm,
    and an N(0, ``linear_std``) classifier with zero bias.

    Args:
        model: initialised in place.
        linear_std: standard deviation of the linear layers' weights.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)
