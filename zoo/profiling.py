"""Parameter and multiply-accumulate counts, the figures kept in every model's metadata.

MACs are counted with ``torch.utils.flop_counter.FlopCounterMode``. zoo's own FLOP
formulas (PyTorch's fused CPU attention kernel, see
:func:`zoo.layers.attention.cpu_sdpa_flop_formulas`) are given to each counter
(:func:`flop_counter`), never registered in torch's global ``flop_registry``, so
importing zoo changes no torch state.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
from torch.utils import flop_counter as fc
from torch.utils.flop_counter import FlopCounterMode

from zoo.layers.attention import cpu_sdpa_flop_formulas

__all__ = ["count_params", "count_macs", "flop_counter", "flop_formulas"]

log = logging.getLogger(__name__)

#: Whether this torch's FlopCounterMode takes ``custom_mapping`` (else formulas are registered on first count).
_HAS_CUSTOM_MAPPING = "custom_mapping" in inspect.signature(FlopCounterMode.__init__).parameters


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Returns the number of (trainable) parameters.

    Args:
        model: any module.
        trainable_only: count only parameters with ``requires_grad``.

    Returns:
        Total element count.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def flop_formulas() -> dict[Any, Callable[..., int]]:
    """zoo's FLOP formulas for ops torch's counter does not know, wrapped as torch's counter calls them.

    Returns:
        ``{aten op: formula}`` ready for ``FlopCounterMode(custom_mapping=...)``: each formula is
        wrapped by ``torch.utils.flop_counter.shape_wrapper`` and marked raw, so torch does not wrap it again.
    """
    out: dict[Any, Callable[..., int]] = {}
    for op, formula in cpu_sdpa_flop_formulas().items():
        wrapped = fc.shape_wrapper(formula)
        wrapped._get_raw = True  # type: ignore[attr-defined]
        out[op] = wrapped
    return out


_registered_globally = False


def flop_counter(**kwargs: Any) -> FlopCounterMode:
    """Returns ``FlopCounterMode(display=False, **kwargs)`` that also counts zoo's formulas.

    With a torch whose counter takes ``custom_mapping`` nothing global changes; with an older one,
    the formulas are registered in torch's ``flop_registry`` once, on the first call.
    """
    global _registered_globally
    kwargs.setdefault("display", False)
    if _HAS_CUSTOM_MAPPING:
        return FlopCounterMode(custom_mapping={**flop_formulas(), **kwargs.pop("custom_mapping", {})}, **kwargs)
    if not _registered_globally:
        for op, formula in cpu_sdpa_flop_formulas().items():
            if op not in fc.flop_registry:
                fc.register_flop_formula(op)(formula)
        _registered_globally = True
        log.debug("registered zoo's FLOP formulas in torch.utils.flop_counter.flop_registry")
    return FlopCounterMode(**kwargs)


@torch.no_grad()
def count_macs(model: nn.Module, input_size: Sequence[int], device: str | torch.device | None = None) -> int:
    """Counts multiply-accumulates of one forward pass of a single input.

    Uses ``torch.utils.flop_counter.FlopCounterMode`` (with zoo's formulas, see
    :func:`flop_counter`), which counts the FLOPs of convolutions and matrix
    products (2 per multiply-add); MACs are half of that. The model runs in eval
    mode, so auxiliary heads and dropout are not counted.

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
        counter = flop_counter()
        with counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
