"""Sections ``models`` (zoo vs torchvision twins) and ``lenet`` (faithful LeNet-5 vs ``lenet5_modern``).

``models``: each zoo model with a torchvision pair (:func:`zoo.torchvision_pairs`) is built with
torchvision's weights (``zoo.from_torchvision(name, tv.state_dict())``, the pair's builder options),
so both compute the same function; one forward + backward of a cross-entropy loss in training
mode is timed for each, interleaved. GoogLeNet is built without auxiliary heads on both sides
(training-mode torchvision would otherwise compute them and zoo would not); ViTs are built for
``--size``.

``lenet``: one training step (forward, cross-entropy, backward, Adam step) of ``lenet5`` and of
``lenet5_modern`` on random ``(B, 1, 32, 32)`` batches.
"""

from __future__ import annotations

import gc
import logging
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.bench.core import BenchOptions, Clock, Report, Sampler, interleave

__all__ = ["run_models", "run_lenet", "twin_pair", "DEFAULT_TWINS", "QUICK_TWINS"]

log = logging.getLogger(__name__)

#: Twins timed by default: one per family (all 22 at batch 8, 224 px take about 16 minutes on 2 cores;
#: ``--models all`` runs them).
DEFAULT_TWINS = ("alexnet_tv", "googlenet_bn", "resnet18", "resnet50", "shufflenet_v2_x1_0", "vgg11_bn", "vit_b_32")
#: Twins of ``--quick``.
QUICK_TWINS = ("resnet18", "shufflenet_v2_x0_5")


def twin_pair(name: str, size: int, num_classes: int = 1000) -> tuple[nn.Module, nn.Module]:
    """Builds zoo model ``name`` and its torchvision twin with the same (torchvision's random) weights.

    Args:
        name: a zoo model with a torchvision pair.
        size: input side (ViTs are built for it).
        num_classes: classes of both heads.

    Returns:
        ``(zoo model, torchvision model)``, in training mode.
    """
    import torchvision

    import zoo

    tv_name = zoo.torchvision_pairs()[name]
    zoo_kw: dict[str, Any] = {"num_classes": num_classes}
    tv_kw: dict[str, Any] = {"num_classes": num_classes}
    if tv_name.startswith("vit_"):
        zoo_kw["image_size"] = tv_kw["image_size"] = size
    if tv_name == "googlenet":
        zoo_kw["aux_logits"] = False
        tv_kw.update(aux_logits=False, init_weights=True, transform_input=True)
    tv = torchvision.models.get_model(tv_name, weights=None, **tv_kw)
    z = zoo.from_torchvision(name, tv.state_dict(), **zoo_kw)
    return z.train(), tv.train()


def _fwd_bwd(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    return step


def run_models(options: BenchOptions, report: Report) -> None:
    """Times forward + backward of every model in ``options.models`` against its torchvision twin.

    Args:
        options: the run's settings (``models``, ``batch``, ``size``, ``repeats``, ``device``, ``target_s``).
        report: receives the rows and notes.
    """
    import zoo

    device = options.torch_device
    clock = Clock(device)
    pairs = zoo.torchvision_pairs()
    b, s = options.batch, options.size
    for name in options.models:
        torch.manual_seed(0)
        z, tv = twin_pair(name, s)
        z, tv = z.to(device), tv.to(device)
        x = torch.randn(b, 3, s, s, device=device)
        y = torch.randint(0, 1000, (b,), device=device)
        samples = interleave({"zoo": Sampler(_fwd_bwd(z, x, y), clock, options.target_s),
                              "torchvision": Sampler(_fwd_bwd(tv, x, y), clock, options.target_s)},
                             options.repeats, options.warmup)
        report.add_timings("models", name, samples, note=f"torchvision {pairs[name]}; forward + backward, "
                                                         f"batch {b}, 3x{s}x{s}, training mode")
        del z, tv, x, y
        gc.collect()
    report.set_ratios("models", "torchvision")
    report.note("models", f"batch {b}, 3x{s}x{s}, device {device}; same weights (zoo.from_torchvision)")


def run_lenet(options: BenchOptions, report: Report) -> None:
    """Times one Adam training step of ``lenet5`` and ``lenet5_modern`` at each of ``options.lenet_batches``.

    Args:
        options: the run's settings (``lenet_batches``, ``repeats``, ``device``, ``target_s``).
        report: receives the rows and notes.
    """
    import zoo

    device = options.torch_device
    clock = Clock(device)
    for b in options.lenet_batches:
        gen = torch.Generator().manual_seed(b)
        x = torch.randn(b, 1, 32, 32, generator=gen).to(device)
        y = torch.randint(0, 10, (b,), generator=gen).to(device)
        samplers = {}
        for name in ("lenet5", "lenet5_modern"):
            torch.manual_seed(0)
            model = zoo.create_model(name, num_classes=10, in_chans=1).to(device).train()
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)

            def step(model: nn.Module = model, opt: torch.optim.Optimizer = opt) -> None:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()

            samplers[name] = Sampler(step, clock, options.target_s)
        samples = interleave(samplers, options.repeats, options.warmup)
        report.add_timings("lenet", f"batch {b}", samples, per_item=b,
                           note=f"forward + backward + Adam step, {b}x1x32x32")
    report.set_ratios("lenet", "lenet5_modern")
