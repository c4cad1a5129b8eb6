"""Section ``throughput``: inference and training speed per model, fp32 vs bf16 vs channels_last.

Inference (``eval()``, ``torch.inference_mode``): ``fp32``, ``bf16`` (``torch.autocast(device_type,
dtype=torch.bfloat16)``), ``channels_last`` (model and input in ``torch.channels_last``) and
``bf16_channels_last``. Training step (forward, cross-entropy, backward, SGD with momentum):
``fp32``, ``bf16`` (forward and loss under autocast), ``channels_last`` and, with ``--compile``,
``compile`` (``torch.compile(model)``, fp32; it compiles in a first step, whose time is noted).

Models whose input is at most 64 px run at their own input size with ``small_batch`` images;
the others at ``size`` x ``size`` with ``batch`` images. Every variant has its own copy of the
model, built from the same seed. Rows: ``infer_*`` and ``train_*`` times per batch and images per
second; the ratio divides by ``fp32``.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import logging
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.bench.core import BenchOptions, Clock, Report, Sampler, interleave

__all__ = ["run_throughput", "DEFAULT_MODELS", "QUICK_MODELS", "input_shape"]

log = logging.getLogger(__name__)

#: Models of the section by default.
DEFAULT_MODELS = ("lenet5", "lenet5_modern", "resnet20", "alexnet", "resnet18", "mobilenet_v1",
                  "shufflenet_v2_x1_0", "vit_tiny_patch4")
#: Models of ``--quick``.
QUICK_MODELS = ("lenet5", "lenet5_modern", "resnet20", "resnet18")


def input_shape(name: str, options: BenchOptions) -> tuple[int, int, int, int]:
    """``(B, C, H, W)`` of model ``name``: its own input with ``small_batch`` when at most 64 px, else
    ``size`` x ``size`` with ``batch``."""
    import zoo

    c, h, w = zoo.model_info(name).input_size
    if max(h, w) <= 64:
        return options.small_batch, c, h, w
    return options.batch, c, options.size, options.size


def _autocast(device: torch.device, on: bool) -> Any:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if on else contextlib.nullcontext()


def _infer(model: nn.Module, x: torch.Tensor, bf16: bool, device: torch.device) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode(), _autocast(device, bf16):
            model(x)

    return run


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool, device: torch.device) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with _autocast(device, bf16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def run_throughput(options: BenchOptions, report: Report) -> None:
    """Times inference and training steps of every model in ``options.throughput_models`` in each variant.

    Args:
        options: the run's settings (``throughput_models``, ``batch``, ``size``, ``small_batch``,
            ``compile``, ``repeats``, ``device``, ``target_s``).
        report: receives the rows and notes.
    """
    import zoo

    device = options.torch_device
    clock = Clock(device)
    cl = torch.channels_last
    for name in options.throughput_models:
        b, c, h, w = input_shape(name, options)
        torch.manual_seed(0)
        base = zoo.create_model(name).to(device)
        num_classes = int(base.num_classes)
        x = torch.randn(b, c, h, w, device=device)
        x_cl = x.contiguous(memory_format=cl)
        y = torch.randint(0, num_classes, (b,), device=device)
        shape = f"{b}x{c}x{h}x{w}"

        m_fp32 = copy.deepcopy(base).eval()
        m_cl = copy.deepcopy(base).to(memory_format=cl).eval()
        infer = {"fp32": Sampler(_infer(m_fp32, x, False, device), clock, options.target_s),
                 "bf16": Sampler(_infer(m_fp32, x, True, device), clock, options.target_s),
                 "channels_last": Sampler(_infer(m_cl, x_cl, False, device), clock, options.target_s),
                 "bf16_channels_last": Sampler(_infer(m_cl, x_cl, True, device), clock, options.target_s)}
        report.add_timings("throughput", name, interleave(infer, options.repeats, options.warmup), prefix="infer_",
                           per_item=b, note=f"inference, {shape}")
        del m_fp32, m_cl, infer

        train: dict[str, Sampler] = {
            "fp32": Sampler(_train(copy.deepcopy(base).train(), x, y, False, device), clock, options.target_s),
            "bf16": Sampler(_train(copy.deepcopy(base).train(), x, y, True, device), clock, options.target_s),
            "channels_last": Sampler(_train(copy.deepcopy(base).to(memory_format=cl).train(), x_cl, y, False, device),
                                     clock, options.target_s)}
        if options.compile:
            compiled = torch.compile(copy.deepcopy(base).train())
            step = _train(compiled, x, y, False, device)
            start = clock.read()
            try:
                step()  # compiles here; a model torch.compile cannot handle is noted, the others still run
            except Exception as e:  # noqa: BLE001 - any compiler error
                report.note("throughput", f"{name}: torch.compile failed ({type(e).__name__}: "
                                          f"{str(e).splitlines()[0][:160]})")
            else:
                first = clock.since(start)
                report.note("throughput", f"{name}: torch.compile's first training step (the compilation) took "
                                          f"{first.wall:.1f} s wall, {first.cpu:.1f} s CPU")
                train["compile"] = Sampler(step, clock, options.target_s)
        report.add_timings("throughput", name, interleave(train, options.repeats, options.warmup), prefix="train_",
                           per_item=b, note=f"training step (SGD momentum), {shape}")
        del train, base
        gc.collect()
    report.set_ratios("throughput", "fp32")
    if not options.compile:
        report.note("throughput", "torch.compile not timed (add --compile)")
    report.note("throughput", f"device {device}; small-input models: batch {options.small_batch}; others: batch "
                              f"{options.batch} at {options.size} px")
