"""Checks the device-resident in-memory data on a GPU: batches made on the device equal the CPU path's.

Three checks, each against the same data made on the CPU with the same seed:

1. the digits datamodule with ``device=<device>``: two training epochs (``pad_crop_flip``), the validation
   and the test set; every batch must live on the device, labels must be equal and images equal within
   1e-6 (they are normalised floats);
2. synthetic CIFAR-sized uint8 data (``--n`` images, 3x32x32) through :class:`zoo.data.base.InMemoryLoader`:
   the uint8 crop-and-flip must be bitwise equal, the normalised batches equal within 1e-6; the epoch
   times on the CPU and on the device are reported;
3. a short Lightning fit with ``device=None`` (the trainer's device): the datamodule must put the data on
   the trainer's device, Lightning's transfer of each batch must copy nothing, and the batches the
   training step sees must be the CPU path's.

Usage::

    python scripts/device_data_check.py                 # on CUDA; skips (exit 0) when there is none
    python scripts/device_data_check.py --require-cuda  # exit 1 when there is no CUDA
    python scripts/device_data_check.py --device cpu    # the same checks on the CPU (trivially equal)

Exit status 0 when every check passes (or CUDA is absent without ``--require-cuda``), 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytorch_lightning as pl  # noqa: E402

from zoo.data import create_datamodule  # noqa: E402
from zoo.data.base import InMemoryLoader, TensorImageDataset  # noqa: E402
from zoo.data.transforms import BATCHED_AUGMENTATIONS, TransformSpec  # noqa: E402

log = logging.getLogger("device_data_check")

SEED = 1234
ATOL = 1e-6


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _compare(name: str, cpu: list, dev: list, device: torch.device) -> None:
    """Asserts that ``dev`` batches live on ``device`` and equal the ``cpu`` batches (labels exactly,
    images within ``ATOL``)."""
    assert len(cpu) == len(dev), f"{name}: {len(cpu)} CPU batches, {len(dev)} on {device}"
    worst = 0.0
    exact = 0
    for i, ((xc, yc), (xd, yd)) in enumerate(zip(cpu, dev)):
        assert xd.device == device and yd.device == device, f"{name} batch {i}: on {xd.device}, {yd.device}"
        assert xc.shape == xd.shape and xc.dtype == xd.dtype, f"{name} batch {i}: {xd.shape} {xd.dtype}"
        assert torch.equal(yd.cpu(), yc), f"{name} batch {i}: labels differ"
        diff = (xd.cpu() - xc).abs().max().item() if xc.is_floating_point() else float(not torch.equal(xd.cpu(), xc))
        worst = max(worst, diff)
        exact += int(torch.equal(xd.cpu(), xc))
        assert diff <= ATOL, f"{name} batch {i}: max |difference| {diff:g} > {ATOL:g}"
    log.info("%-28s %3d batches on %s, equal to the CPU's (max |diff| %.3g, %d bitwise)",
             name, len(dev), device, worst, exact)


def _digits(device: Any) -> Any:
    dm = create_datamodule("digits", batch_size=64, augment="pad_crop_flip", augment_kwargs={"padding": 2},
                           device=device)
    dm.loader_seed = SEED
    return dm


def check_digits(device: torch.device) -> None:
    """Two training epochs, validation and test of the digits, on ``device`` and on the CPU."""
    cpu, dev = _digits("cpu"), _digits(str(device))
    for dm in (cpu, dev):
        dm.setup("fit")
        dm.setup("test")
    for split in ("train_set", "val_set", "test_set"):
        ds = getattr(dev, split)
        assert ds.images.device == device and ds.targets.device == device, f"digits {split} on {ds.images.device}"
    tc, td = cpu.train_dataloader(), dev.train_dataloader()
    _compare("digits train (2 epochs)", [b for _ in range(2) for b in tc], [b for _ in range(2) for b in td], device)
    _compare("digits val", list(cpu.val_dataloader()), list(dev.val_dataloader()), device)
    _compare("digits test", list(cpu.test_dataloader()), list(dev.test_dataloader()), device)


def check_cifar_sized(device: torch.device, n: int) -> None:
    """Synthetic CIFAR-sized data through the loader: bitwise uint8 augmentation, close floats, epoch times."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)  # (N, 3, 32, 32)
    targets = torch.randint(0, 10, (n,), generator=g)
    spec = TransformSpec(32, (0.491, 0.482, 0.447), (0.247, 0.243, 0.262), options={"padding": 4})
    aug = BATCHED_AUGMENTATIONS["pad_crop_flip"](spec)

    draws = aug.draw(min(n, 512), torch.Generator().manual_seed(1))
    head = images[: draws.shape[1]]
    u8_cpu, u8_dev = aug.crop_flip(head, draws), aug.crop_flip(head.to(device), draws)
    assert u8_dev.device == device and torch.equal(u8_dev.cpu(), u8_cpu), "uint8 crop/flip differs"
    log.info("%-28s bitwise equal on %s", "uint8 pad-crop-flip", device)

    cpu = InMemoryLoader(TensorImageDataset(images, targets, None, aug), 128, shuffle=True, seed=7)
    dev = InMemoryLoader(TensorImageDataset(images, targets, None, aug).to(device), 128, shuffle=True, seed=7,
                         device=device)
    for epoch in range(2):
        t0 = time.perf_counter()
        a = list(cpu)
        t1 = time.perf_counter()
        b = list(dev)
        _sync(device)
        t2 = time.perf_counter()
        _compare(f"cifar-sized epoch {epoch}", a, b, device)
        log.info("%-28s CPU %.3f s, %s %.3f s (%d images)", f"epoch {epoch} time", t1 - t0, device, t2 - t1, n)


class _Probe(pl.LightningModule):
    """A linear classifier that records the batches its training step sees and checks Lightning's transfer."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(in_features, 10)
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.copied = 0

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        moved = super().transfer_batch_to_device(batch, device, dataloader_idx)
        self.copied += sum(int(m is not b) for m, b in zip(moved, batch))
        return moved

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        self.seen.append((x.detach().clone(), y.clone()))
        return torch.nn.functional.cross_entropy(self.fc(x.flatten(1)), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def check_lightning(device: torch.device, batches: int) -> None:
    """A short fit with ``device=None``: the data goes to the trainer's device and is not copied per batch."""
    dm = _digits(None)
    probe = _Probe(32 * 32)
    trainer = pl.Trainer(accelerator=device.type, devices=[device.index or 0] if device.type == "cuda" else 1,
                         max_epochs=1, limit_train_batches=batches, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(probe, datamodule=dm)
    assert dm.data_device == trainer.strategy.root_device, f"data on {dm.data_device}"
    assert dm.train_set.images.device == trainer.strategy.root_device
    assert probe.copied == 0, f"Lightning copied {probe.copied} tensors"
    cpu = _digits("cpu")
    cpu.setup("fit")
    expected = [b for _, b in zip(range(batches), cpu.train_dataloader())]
    _compare("lightning fit (auto device)", expected, probe.seen, trainer.strategy.root_device)
    log.info("%-28s the data lives on %s; Lightning's transfer copied nothing", "", dm.data_device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="device to check against the CPU (default: cuda)")
    parser.add_argument("--require-cuda", action="store_true", help="fail instead of skipping without CUDA")
    parser.add_argument("--n", type=int, default=50_000, help="synthetic CIFAR-sized images (default 50,000)")
    parser.add_argument("--fit-batches", type=int, default=8, help="training batches of the Lightning check")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            log.warning("CUDA is not available: nothing checked")
            return 1 if args.require_cuda else 0
        device = torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
        log.info("device: %s (%s), torch %s", device, torch.cuda.get_device_name(device), torch.__version__)
    try:
        check_digits(device)
        check_cifar_sized(device, args.n)
        check_lightning(device, args.fit_batches)
    except AssertionError as err:
        log.error("FAILED: %s", err)
        return 1
    log.info("all device-data checks passed on %s", device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
