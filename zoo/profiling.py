"""Parameter and multiply-accumulate counts, the figures kept in every model's metadata."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_params", "count_macs"]


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Returns the number of (trainable) parameters.

    Args:
        model: any module.
        trainable_only: count only parameters with ``requires_grad``.

    Returns:
        Total element count.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_macs(model: nn.Module, input_size: Sequence[int], device: str | torch.device | None = None) -> int:
    """Counts multiply-accumulates of one forward pass of a single input.

    Uses ``torch.utils.flop_counter.FlopCounterMode``, which counts the FLOPs of
    convolutions and matrix products (2 per multiply-add); MACs are half of that.
    The model runs in eval mode, so auxiliary heads and dropout are not counted.

    Args:
        model: the network; it is put in eval mode for the count and restored after.
        input_size: ``(C, H, W)`` (or ``(C, L)``) without the batch dimension.
        device: where to run; defaults to the device of the model's parameters
            (``"meta"`` works and costs no compute).

    Returns:
        Multiply-accumulates per input.
    """
    if device is None:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else "cpu"
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, *input_size, device=device)
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
