"""Section ``data``: the project's in-memory loaders vs torchvision's ``DataLoader`` with ``transforms.v2``.

* MNIST (real files under ``data_root``): the training loader of the datamodule of
  ``configs/data/mnist.yaml`` (an :class:`~zoo.data.base.InMemoryLoader`: 28x28 images zero-padded
  to 32x32 once, batches are one tensor index, normalised per batch) vs
  ``torchvision.datasets.MNIST`` over the same training images (the datamodule's split) with
  ``ToImage, Pad(2), ToDtype(float32, scale=True), Normalize`` per image (the same output tensors).
* CIFAR-sized: synthetic uint8 images ``N x 3 x 32 x 32`` through the project's in-memory dataset
  (:class:`~zoo.data.base.TensorImageDataset` with the batched ``pad_crop_flip`` recipe, as the CIFAR
  datamodules build it, read by an :class:`~zoo.data.base.InMemoryLoader`) vs a ``Dataset`` applying
  ``RandomCrop(32, padding=4), RandomHorizontalFlip, ToDtype, Normalize`` per image.

On a GPU the project's images live on the device (``data.device``), as in a run there; torchvision's
batches are copied to it one by one. Each torchvision loader runs with every ``num_workers`` of
``options.workers``, each paired and
interleaved with the project's loader. A sample is ``data_batches`` batches (0: one epoch) from a
fresh iterator: a new epoch order, and for ``num_workers > 0`` newly started workers
(``persistent_workers=False``), whose CPU time is counted once they are joined. Nothing is downloaded.
"""

from __future__ import annotations

import logging
import tempfile
from itertools import islice
from typing import Any, Callable, Iterable

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from zoo.bench.core import BenchOptions, Clock, Report, Sample, compose_train_config, interleave, quiet_loggers

__all__ = ["run_data", "mnist_available", "SyntheticImages"]

log = logging.getLogger(__name__)

_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")


def mnist_available(root: Any) -> bool:
    """Whether ``root/MNIST/raw`` holds the four uncompressed MNIST files."""
    from pathlib import Path

    return root is not None and all((Path(root) / "MNIST" / "raw" / f).is_file() for f in _MNIST_FILES)


class SyntheticImages(Dataset):
    """uint8 images ``(N, C, H, W)`` and labels, one transformed image per index.

    Args:
        images: ``(N, C, H, W)`` uint8.
        targets: ``(N,)`` int64.
        transform: applied to each ``(C, H, W)`` image.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, transform: Callable[[Any], Any]) -> None:
        self.images, self.targets, self.transform = images, targets, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, torch.Tensor]:
        return self.transform(self.images[i]), self.targets[i]


def _pass(make_iter: Callable[[], Iterable[Any]], batches: int, clock: Clock, device: torch.device) -> Sample:
    """Time per batch of ``batches`` batches (0: all) of a fresh iterator, each moved to ``device``.

    The iterator is dropped inside the timing, so a ``DataLoader`` joins its workers before the
    clock is read (their CPU time is then counted).
    """
    start = clock.read()
    it = iter(make_iter())
    n = 0
    for x, y in (islice(it, batches) if batches else it):
        x.to(device, non_blocking=True)
        y.to(device, non_blocking=True)
        n += 1
    del it
    s = clock.since(start)
    return s / max(n, 1)


def _tv_loader(dataset: Dataset, batch: int, workers: int, seed: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=False,
                      generator=torch.Generator().manual_seed(seed))


def _compare(report: Report, options: BenchOptions, name: str, project: Callable[[], Iterable[Any]],
             tv: Callable[[int], Dataset], batch: int, batches: int, note: str) -> None:
    """Interleaves the project's loader with torchvision's at each worker count and adds the rows."""
    device = options.torch_device
    for w in options.workers:
        dataset = tv(w)
        pair = {"zoo": lambda: _pass(project, batches, Clock(device), device),
                "torchvision": lambda: _pass(lambda: _tv_loader(dataset, batch, w, 0), batches,
                                             Clock(device, children=w > 0), device)}
        samples = interleave(pair, options.repeats, options.warmup)
        key = f"{name} workers={w}"
        report.add_timings("data", key, samples, per_item=batch,
                           note=f"per batch of {batch}; {note}; torchvision num_workers={w}")
        report.set_ratios("data", "torchvision", name=key)


def run_data(options: BenchOptions, report: Report) -> None:
    """Times the MNIST and the CIFAR-sized loaders of both kinds and adds the rows.

    Args:
        options: the run's settings (``data_root``, ``data_overrides``, ``data_batches``, ``cifar_images``,
            ``workers``, ``repeats``, ``device``).
        report: receives the rows and notes.
    """
    import hydra
    from torchvision import datasets
    from torchvision.transforms import v2

    from zoo.data import TensorImageDataset
    from zoo.data.base import InMemoryLoader
    from zoo.data.stats import DATASET_STATS
    from zoo.data.transforms import BATCHED_AUGMENTATIONS, TransformSpec, build_train_transform

    batches = options.data_batches
    device = options.torch_device
    what = f"{batches} batches" if batches else "one epoch"

    # -- MNIST, real files
    if mnist_available(options.data_root):
        with tempfile.TemporaryDirectory(prefix="zoo-bench-data-") as tmp, quiet_loggers("zoo.data", "zoo.data.base"):
            cfg = compose_train_config(["data=mnist", f"data.root={options.data_root}", *options.data_overrides], tmp)
            if device.type != "cpu" and "device" in cfg.data and cfg.data.device is None:
                cfg.data.device = str(device)  # the project's batches are made where the model trains
            dm = hydra.utils.instantiate(cfg.data)
        dm.prepare_data()
        dm.setup("fit")
        batch = dm.batch_size
        mean, std = tuple(dm.mean), tuple(dm.std)
        pad = (dm.image_size - 28) // 2
        steps: list[Any] = [v2.ToImage()]
        if pad > 0:
            steps.append(v2.Pad(pad))
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
        tv_set = datasets.MNIST(str(options.data_root), train=True, download=False, transform=v2.Compose(steps))
        positions = getattr(dm, "split_positions", {}).get("train")
        if positions is not None:
            tv_set = Subset(tv_set, [int(i) for i in positions])
        n_batches = len(dm.train_dataloader())
        _compare(report, options, "mnist", dm.train_dataloader, lambda w: tv_set, batch, batches,
                 f"{what} per sample ({n_batches} per epoch); {len(tv_set)} training images; zoo: the datamodule of "
                 f"configs/data/mnist.yaml (in memory, no workers)")
    else:
        report.note("data", f"MNIST skipped: no MNIST/raw files under --data-root ({options.data_root}); "
                            f"e.g. --data-root ../shared/data")

    # -- CIFAR-sized synthetic images
    n = options.cifar_images
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    targets = torch.randint(0, 10, (n,), generator=gen)
    mean, std = DATASET_STATS["cifar10"]
    spec = TransformSpec(image_size=32, mean=tuple(mean), std=tuple(std), options={"padding": 4})
    project_set = TensorImageDataset(images, targets, build_train_transform("pad_crop_flip", spec),
                                     BATCHED_AUGMENTATIONS["pad_crop_flip"](spec))
    if device.type != "cpu" and hasattr(project_set, "to"):
        project_set.to(device)  # as the datamodules keep their in-memory sets on the training device
    batch = 128
    epoch = [0]

    def project_loader() -> Iterable[Any]:
        epoch[0] += 1
        return InMemoryLoader(project_set, batch, shuffle=True, seed=epoch[0])

    tv_transform = v2.Compose([v2.ToImage(), v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(),
                               v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])
    tv_set_c = SyntheticImages(images, targets, tv_transform)
    _compare(report, options, "cifar_synthetic", project_loader, lambda w: tv_set_c, batch, batches,
             f"{what} per sample; {n} synthetic uint8 3x32x32 images, pad-crop-flip (4 px) + normalise; zoo: "
             f"TensorImageDataset with the batched pad_crop_flip recipe through InMemoryLoader")
    report.note("data", f"torchvision workers: {', '.join(map(str, options.workers))}; each sample is {what} "
                        f"from a fresh iterator (workers started and joined inside the timing)")
