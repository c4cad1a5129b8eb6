"""Times the reference ops against PyTorch's native kernels, forward + backward, in one process.

    python -m zoo.ops.bench                  # LeNet-5 layers and a few larger ones
    python -m zoo.ops.bench --batch 32 --repeat 20 --threads 1

For every case both implementations get the same tensors; the figure is the
median wall time of ``forward + backward`` (gradients for input, weight and
bias) over ``--repeat`` runs after ``--warmup`` runs, and the ratio
reference / native. The ratio is a teaching figure: the reference ops copy
every receptive field (im2col) and run the input gradient as a dense full
convolution over a zero-stuffed gradient, where the native kernels do neither.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

import zoo.ops as ops

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Case:
    """One benchmarked layer."""

    name: str
    in_shape: tuple[int, int, int]  # (C, H, W), batch added at run time
    kind: str  # "conv", "conv_transpose", "max_pool", "avg_pool"
    out_chans: int = 0
    kernel: int = 2
    stride: int = 1
    padding: int = 0
    groups: int = 1


CASES = [
    Case("LeNet-5 C1 5x5, 1->6, 32px", (1, 32, 32), "conv", 6, 5),
    Case("LeNet-5 C3 5x5, 6->16, 14px", (6, 14, 14), "conv", 16, 5),
    Case("LeNet-5 S2 max-pool 2x2", (6, 28, 28), "max_pool", kernel=2, stride=2),
    Case("LeNet-5 S2 avg-pool 2x2", (6, 28, 28), "avg_pool", kernel=2, stride=2),
    Case("3x3, 64->64, 16px", (64, 16, 16), "conv", 64, 3, 1, 1),
    Case("3x3 stride 2, 64->128, 16px", (64, 16, 16), "conv", 128, 3, 2, 1),
    Case("3x3 depthwise, 64 ch, 16px", (64, 16, 16), "conv", 64, 3, 1, 1, groups=64),
    Case("4x4 transposed stride 2, 64->32, 8px", (64, 8, 8), "conv_transpose", 32, 4, 2, 1),
]


def _make(case: Case, batch: int, reference: bool, gen: torch.Generator,
          dtype: torch.dtype) -> tuple[Callable[[], torch.Tensor], list[torch.Tensor]]:
    """Returns a closure computing the op's output, and the tensors that need gradients."""
    c, h, w = case.in_shape
    x = torch.randn(batch, c, h, w, generator=gen, dtype=dtype).requires_grad_()
    if case.kind in ("max_pool", "avg_pool"):
        if case.kind == "max_pool":
            fn = ops.max_pool2d if reference else F.max_pool2d
        else:
            fn = ops.avg_pool2d if reference else F.avg_pool2d
        return (lambda: fn(x, case.kernel, case.stride, case.padding)), [x]
    if case.kind == "conv":
        weight_shape = (case.out_chans, c // case.groups, case.kernel, case.kernel)
        conv = ops.conv2d if reference else F.conv2d
        wt = torch.randn(*weight_shape, generator=gen, dtype=dtype).requires_grad_()
        b = torch.randn(case.out_chans, generator=gen, dtype=dtype).requires_grad_()
        return (lambda: conv(x, wt, b, case.stride, case.padding, 1, case.groups)), [x, wt, b]
    weight_shape = (c, case.out_chans // case.groups, case.kernel, case.kernel)
    tconv = ops.conv_transpose2d if reference else F.conv_transpose2d
    wt = torch.randn(*weight_shape, generator=gen, dtype=dtype).requires_grad_()
    b = torch.randn(case.out_chans, generator=gen, dtype=dtype).requires_grad_()
    return (lambda: tconv(x, wt, b, case.stride, case.padding, 0, case.groups, 1)), [x, wt, b]


def time_case(case: Case, batch: int, reference: bool, warmup: int, repeat: int,
              dtype: torch.dtype = torch.float32) -> float:
    """Median seconds of one forward + backward of ``case``."""
    gen = torch.Generator().manual_seed(0)
    forward, leaves = _make(case, batch, reference, gen, dtype)
    grad = torch.randn(forward().shape, generator=gen, dtype=dtype)
    times = []
    for i in range(warmup + repeat):
        start = time.perf_counter()
        torch.autograd.grad(forward(), leaves, grad)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> list[tuple[str, float, float]]:
    """Runs the benchmark and logs one line per case; returns ``(name, native_s, reference_s)`` rows."""
    parser = argparse.ArgumentParser(prog="python -m zoo.ops.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--float64", action="store_true", help="time in float64 instead of float32")
    parser.add_argument("--only", default=None, help="run only cases whose name contains this text")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.float64 if args.float64 else torch.float32
    log.info("forward + backward, batch %d, %s, %d threads, median of %d runs", args.batch,
             str(dtype).replace("torch.", ""), torch.get_num_threads(), args.repeat)
    log.info("%-40s %12s %12s %8s", "case", "native ms", "reference ms", "ratio")
    rows = []
    for case in CASES:
        if args.only and args.only.lower() not in case.name.lower():
            continue
        native = time_case(case, args.batch, False, args.warmup, args.repeat, dtype)
        reference = time_case(case, args.batch, True, args.warmup, args.repeat, dtype)
        rows.append((case.name, native, reference))
        log.info("%-40s %12.3f %12.3f %7.1fx", case.name, native * 1e3, reference * 1e3, reference / native)
    return rows


if __name__ == "__main__":
    main()
