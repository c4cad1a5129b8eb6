"""Datamodule base classes, the in-memory image dataset and the data errors.

:class:`ImageDataModule` holds what every datamodule shares: the common
arguments (``root``, ``download``, ``batch_size``, ``num_workers``,
``image_size``, ``val_size``, ``split_seed``, ``augment``, ...), the
properties the training code reads (``num_classes``, ``in_chans``, ``mean``,
``std``, ``image_size``, ``input_size``, ``small_input``), the validation of
the ``num_classes`` / ``in_chans`` / ``small_input`` keywords that configs
pass for interpolation, and the dataloaders.

:class:`InMemoryDataModule` is the base of the small datasets (digits, MNIST,
CIFAR, SVHN). Once loaded, their images are one uint8 tensor ``(N, C, H, W)``
at ``image_size``:

* training batches are fetched with one tensor index and augmented as a
  batch (``none``, ``flip``, ``pad_crop``, ``pad_crop_flip``), or image by
  image with the tensor recipe of :mod:`zoo.data.transforms` (never PIL);
* validation and test sets are normalised once, at setup, into float tensors,
  so evaluation is a plain tensor index;
* the tensors live on the training device (``device``; by default the
  trainer's): on a GPU they are copied there once, at setup, and batches are
  indexed and augmented there, with no ``DataLoader`` and no copy of images per
  batch. The random choices are still drawn on the CPU from the same seeded
  generators, so the batches are the same on every device.

The validation split is carved from the training set by
:func:`split_indices`, a permutation drawn from ``numpy.random.RandomState(
split_seed)`` (whose stream NumPy keeps fixed across versions), independent of
the run seed; the test set is only ever used for the final test.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from zoo.data.transforms import (
    AUGMENTATIONS,
    BATCHED_AUGMENTATIONS,
    Normalize,
    TransformSpec,
    build_train_transform,
    lookup_recipe,
)

__all__ = [
    "DatasetNotFoundError",
    "EpochSeededDataLoader",
    "ImageDataModule",
    "InMemoryLoader",
    "InMemoryDataModule",
    "TensorImageDataset",
    "batch_seed",
    "collate",
    "default_data_root",
    "split_indices",
]

log = logging.getLogger(__name__)

ENV_VAR = "ZOO_DATA"


def default_data_root() -> Path:
    """The data folder used when ``root`` is not given: ``$ZOO_DATA``, else ``./data``."""
    return Path(os.environ.get(ENV_VAR) or "data")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not on disk and could not be downloaded.

    The message names the folder that was looked in, the files expected there,
    the ones missing, and either the download error or how to make the data
    available (``download=true``, ``data.root=...`` or ``$ZOO_DATA``).

    Args:
        dataset: dataset name for the message.
        folder: the folder looked in.
        expected: file names expected in it.
        missing: the expected files that are absent (default: all).
        download_error: the exception of a failed download.
        download: whether downloading was enabled.
        detail: one more line of explanation.
        downloadable: False for data that cannot be fetched (image folders).
        subdir: the folder's path relative to ``data.root`` (e.g. ``MNIST/raw``).

    Attributes:
        folder: the folder looked in.
        expected: file names expected in it.
        missing: the expected files that are not there.
        download_error: the exception raised by the download, if one was tried.
    """

    def __init__(
        self,
        dataset: str,
        folder: Path | str,
        expected: Sequence[str],
        missing: Sequence[str] | None = None,
        download_error: BaseException | None = None,
        download: bool = False,
        detail: str | None = None,
        downloadable: bool = True,
        subdir: str | None = None,
    ) -> None:
        self.dataset = dataset
        self.folder = Path(folder)
        self.expected = list(expected)
        self.missing = list(self.expected if missing is None else missing)
        self.download_error = download_error
        if self.missing or download_error is not None:
            lines = [f"{dataset} dataset not found in {self.folder}"]
        else:
            lines = [f"{dataset} dataset in {self.folder} could not be loaded"]
        lines.append(f"  expected files: {', '.join(self.expected)}")
        if self.missing:
            lines.append(f"  missing: {', '.join(self.missing)}")
        if detail:
            lines.append(f"  {detail}")
        target = f"a folder containing {subdir}/" if subdir and subdir != "." else "the folder that holds it"
        where = f"point data.root (or the {ENV_VAR} environment variable) at {target}"
        if download_error is not None:
            err = str(download_error).strip().replace("\n", "\n    ")
            lines.append(f"  download failed ({type(download_error).__name__}): {err}")
            lines.append(f"  Retry where the internet is reachable, or {where}.")
        elif not self.missing:
            lines.append(f"  Replace the files with an intact copy, or {where}.")
        elif not downloadable:
            lines.append(f"  {dataset} cannot be downloaded: put the files there, or {where}.")
        elif not download:
            lines.append(
                "  download=False, so nothing was fetched: set data.download=true to fetch it "
                f"(needs internet), or {where}."
            )
        else:
            lines.append(f"  {where[0].upper()}{where[1:]}.")
        super().__init__("\n".join(lines))

    def __str__(self) -> str:  # OSError would format (errno, strerror); keep the message.
        return str(self.args[0])


def split_indices(n: int, val_size: int | float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Splits ``range(n)`` into sorted train and validation indices.

    Args:
        n: number of samples.
        val_size: validation samples, as a count (int) or a fraction in (0, 1).
        seed: seed of the permutation (``numpy.random.RandomState``).

    Returns:
        ``(train_idx, val_idx)``, disjoint, sorted, covering ``range(n)``.

    Raises:
        ValueError: if the validation split would be empty or take every sample.
    """
    k = _count(val_size, n, "val_size")
    perm = np.random.RandomState(seed).permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])


def _count(size: int | float, n: int, what: str) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise ValueError(f"{what} must be a count or a fraction, got {size!r}")
    if isinstance(size, float) and not size.is_integer():
        if not 0.0 < size < 1.0:
            raise ValueError(f"{what} as a fraction must be in (0, 1), got {size}")
        k = max(1, int(round(size * n)))
    else:
        k = int(size)
    if not 0 < k < n:
        raise ValueError(f"{what}={size} leaves no samples on one side: the set has {n} samples")
    return k


class _Batch(tuple):
    """A ready-made ``(images, targets)`` batch returned by ``TensorImageDataset.__getitems__``."""


def collate(batch: Any) -> Any:
    """``default_collate``, passing through batches that ``TensorImageDataset`` made whole."""
    if isinstance(batch, _Batch):
        return tuple(batch)
    return default_collate(batch)


class TensorImageDataset(Dataset):
    """Images and labels held as tensors.

    A ``DataLoader`` (with :func:`collate`) fetches a whole batch with one
    tensor index through ``__getitems__``; ``batch_transform`` then augments
    the batch at once, else ``transform`` runs per image.

    The tensors may live on any device (:meth:`to` moves them); a batch is
    indexed and batch-transformed there.

    Args:
        images: ``(N, C, H, W)`` tensor (uint8, or float when pre-normalised).
        targets: ``(N,)`` int64 labels.
        transform: applied to each image ``(C, H, W)`` on access, or ``None``.
        batch_transform: applied to a batch ``(B, C, H, W)``; preferred over
            ``transform`` when fetching batches.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, transform: Any = None,
                 batch_transform: Any = None) -> None:
        if images.ndim != 4 or images.shape[0] != targets.shape[0]:
            raise ValueError(f"need images (N, C, H, W) and targets (N,), got {tuple(images.shape)}, "
                             f"{tuple(targets.shape)}")
        self.images = images
        self.targets = targets.to(torch.int64)
        self.transform = transform
        self.batch_transform = batch_transform

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def device(self) -> torch.device:
        """The device the images and labels live on."""
        return self.images.device

    def to(self, device: torch.device | str) -> TensorImageDataset:
        """Moves the images and labels to ``device`` (nothing is copied when they are there already).

        Args:
            device: the target device.

        Returns:
            This dataset.
        """
        self.images = self.images.to(device)
        self.targets = self.targets.to(device)
        return self

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[index]  # (C, H, W)
        if self.batch_transform is not None:
            x = self.batch_transform(x[None])[0]  # (C, H, W)
        elif self.transform is not None:
            x = self.transform(x)
        return x, self.targets[index]

    def __getitems__(self, indices: list[int]) -> _Batch:
        return _Batch(self.batch(torch.as_tensor(indices, dtype=torch.int64)))

    def batch(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the images and labels at ``idx``, transformed.

        Args:
            idx: ``(B,)`` int64 indices, on any device (moved to the dataset's).
            generator: source of the batch's random choices (a CPU generator); ``None`` draws from
                the global RNG. A per-image ``transform`` draws from the global CPU RNG, forked and
                seeded from ``generator`` so that the global stream is left as it was (accelerator
                RNGs, which the model's dropout may draw from, are not touched).

        Returns:
            ``(images (B, C, H, W), targets (B,))`` on the dataset's device.
        """
        idx = _to(idx, self.images.device)
        # index_select, not images[idx]: the same rows, and on the CPU about 15x cheaper for a batch.
        x = self.images.index_select(0, idx)  # (B, C, H, W)
        if self.batch_transform is not None:
            x = self.batch_transform(x, generator=generator)
        elif self.transform is not None:
            if generator is None:
                x = torch.stack([self.transform(img) for img in x])
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.default_generator.manual_seed(generator.initial_seed())
                    x = torch.stack([self.transform(img) for img in x])
        return x, self.targets.index_select(0, idx)


def batch_seed(base: int, epoch: int, index: int) -> int:
    """A 63-bit seed for batch ``index`` of ``epoch`` (``index=-1``: the epoch's order), from ``base``.

    The three numbers are mixed by ``numpy.random.SeedSequence``, so neighbouring
    epochs and batches get unrelated streams.
    """
    state = np.random.SeedSequence([int(base) % 2**63, int(epoch), int(index) + 1]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``: itself when it is there; a copy to an accelerator does not wait (the host
    tensor is staged at once), a copy to the host does."""
    return t.to(device, non_blocking=device.type != "cpu")


class InMemoryLoader:
    """Batches of a :class:`TensorImageDataset`, without ``DataLoader`` machinery, resumable exactly.

    Every random choice of an epoch is a pure function of ``(seed, epoch, batch)``:
    the epoch's order is ``randperm`` under a generator seeded from ``(seed, epoch)``,
    and batch ``i``'s augmentation draws from a generator seeded from
    ``(seed, epoch, i)``. Nothing touches the global RNG, so the batches of an
    epoch are the same whether it runs straight through or resumes mid-way, and
    whatever the model draws (dropout) is unaffected by the loader.

    The loader follows Lightning's resumable-loader protocol (``state_dict`` /
    ``load_state_dict``): the state is the epoch, the position (batches that reached
    the training step, counted by :meth:`mark_consumed`; Lightning fetches one batch
    ahead, so the batches made are not the position) and the seed.

    Batches are indexed and augmented where the dataset's tensors live: on an
    accelerator when they were moved there (:meth:`TensorImageDataset.to`). The
    random choices are drawn on the CPU all the same, from the same generators, and
    only the epoch's order (once per epoch) and each batch's small draws are copied
    to the device, so the batches are those of the CPU whatever the device.

    Under data-parallel training each process makes a loader with its ``rank`` and the
    ``world_size`` (Lightning replaces the samplers of ``DataLoader`` objects only, so this
    loader shards itself), and takes its share of every epoch as ``DistributedSampler``
    does: the same order is drawn from ``(seed, epoch)`` on every rank; a shuffled
    (training) order is padded with its own first indices to a multiple of
    ``world_size`` and rank ``r`` takes every ``world_size``-th index from ``r`` on, so every
    rank has the same number of samples and batches, the ranks' shares are disjoint but
    for the at most ``world_size - 1`` padded repeats, and their union is the whole epoch.
    Optimizer step ``i`` of all ranks together covers the samples that one process with
    ``world_size`` times the batch size would take at its step ``i``. An unshuffled
    (evaluation) order is split the same way without padding, so every sample is
    evaluated exactly once (ranks may differ by one sample). Batch ``i`` of rank ``r``
    draws its augmentation from ``(seed, epoch, i * world_size + r)``; with one process
    every batch and draw is the one it always was.

    Args:
        dataset: the images and labels.
        batch_size: images per batch.
        shuffle: a new random order each epoch (training); else the stored order.
        drop_last: drop the last incomplete batch.
        seed: base seed of orders and augmentations; ``None`` takes ``torch.initial_seed()``
            (the run seed after ``seed_everything``) when first iterated.
        epoch_fn: returns the current epoch (the trainer's), or ``None`` to count the
            loader's own passes.
        device: where the batches are delivered; ``None``: where the dataset lives. A batch
            made elsewhere (a per-image recipe, whose images stay on the host) is moved there.
        rank: this process's global rank (``trainer.global_rank``).
        world_size: the number of processes (``trainer.world_size``); 1: the whole epoch.
    """

    def __init__(self, dataset: TensorImageDataset, batch_size: int, *, shuffle: bool, drop_last: bool = False,
                 seed: int | None = None, epoch_fn: Callable[[], int | None] | None = None,
                 device: torch.device | str | None = None, rank: int = 0, world_size: int = 1) -> None:
        if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be an integer >= 1, got {world_size!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an integer in [0, {world_size - 1}] (world_size={world_size}), "
                             f"got {rank!r}")
        self.rank, self.world_size = rank, world_size
        self.dataset = dataset
        self.device = torch.device(device) if device is not None else None
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self._epoch_fn = epoch_fn
        self._passes = 0
        self.epoch = 0
        self.position = 0
        self._resume: dict[str, int] | None = None

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    @property
    def num_samples(self) -> int:
        """The samples of one epoch on this rank: ``ceil(N / world_size)`` when shuffled (padded), else this
        rank's share of ``range(N)``."""
        n, w = len(self.dataset), self.world_size
        if self.shuffle:
            return -(-n // w)
        return max(0, -(-(n - self.rank) // w))

    def indices(self, epoch: int) -> torch.Tensor:
        """This rank's samples of ``epoch`` in the order they are batched: ``(num_samples,)`` int64, on the CPU.

        Args:
            epoch: the epoch (its order is drawn from ``(seed, epoch)`` when shuffled).
        """
        if self.seed is None:
            self.seed = int(torch.initial_seed()) % 2**63
        n, w = len(self.dataset), self.world_size
        if not self.shuffle:
            return torch.arange(self.rank, n, w)
        order = torch.randperm(n, generator=_generator(batch_seed(self.seed, epoch, -1)))  # (N,)
        if w == 1:
            return order
        total = self.num_samples * w
        if total > n:  # pad with the order's own first indices, as DistributedSampler does
            order = torch.cat([order, order.repeat(-(-(total - n) // n))[: total - n]])
        return order[self.rank:total:w]

    def _current_epoch(self) -> int:
        epoch = self._epoch_fn() if self._epoch_fn is not None else None
        return self._passes if epoch is None else int(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # A generator: nothing is decided until the first batch is asked for, so an iter() that only
        # checks that the loader is iterable (as Lightning does) changes nothing.
        if self.seed is None:
            self.seed = int(torch.initial_seed()) % 2**63
        epoch, start = self._current_epoch(), 0
        if self._resume is not None and int(self._resume["epoch"]) == epoch:
            start = int(self._resume["position"])
            saved = self._resume["world_size"]
            if start and saved != self.world_size:
                raise ValueError(
                    f"the training loader's state was saved in the middle of epoch {epoch + 1} (after batch {start}) "
                    f"by {saved} process(es), and this run has {self.world_size}: the ranks' shares of the epoch "
                    f"differ, so a run resumes mid-epoch only with the same number of processes")
        self._resume = None
        self._passes += 1
        self.epoch, self.position = epoch, start
        n, b = len(self.dataset), self.batch_size
        where = self.dataset.device
        # A batch's generator is made only when its transform draws something (a crop, a flip, any
        # per-image transform): the values are the same, and a recipe without augmentation skips it.
        tf = self.dataset.batch_transform
        random = bool(getattr(tf, "draws_random", True)) if tf is not None else self.dataset.transform is not None
        w, r = self.world_size, self.rank
        order = None
        if self.shuffle or w > 1:  # drawn on the CPU, copied to the dataset's device once per epoch
            order = _to(self.indices(epoch), where)  # (num_samples,)
        for i in range(start, len(self)):
            if order is not None:
                idx = order[i * b:(i + 1) * b]  # (B,)
            else:
                idx = torch.arange(i * b, min(n, (i + 1) * b), device=where)
            gen = _generator(batch_seed(self.seed, epoch, i * w + r)) if self.shuffle and random else None
            x, y = self.dataset.batch(idx, generator=gen)
            if self.device is not None:  # a no-op when the batch is there already
                x, y = _to(x, self.device), _to(y, self.device)
            yield x, y

    def mark_consumed(self) -> None:
        """Counts one batch that reached the training step (the resume position)."""
        self.position += 1

    def state_dict(self) -> dict[str, int]:
        """The epoch, the position within it (batches of this rank; every rank is at the same one) and the seed;
        under data-parallel training also the world size."""
        state = {"epoch": int(self.epoch), "position": int(self.position), "seed": int(self.seed or 0)}
        if self.world_size > 1:
            state["world_size"] = int(self.world_size)
        return state

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resumes the epoch ``state["epoch"]`` at ``state["position"]`` on the next iteration (a state without
        a world size was saved by a single process). A mid-epoch position saved under another world size is
        refused when the epoch starts (the ranks' shares differ)."""
        self.seed = int(state["seed"])
        self._resume = {"epoch": int(state["epoch"]), "position": int(state["position"]),
                        "world_size": int(state.get("world_size", 1))}


class EpochSeededDataLoader(DataLoader):
    """A ``DataLoader`` whose order and worker seeds depend only on ``(seed, epoch)``.

    Its generator is re-seeded from :func:`batch_seed` at each ``iter()``, so an epoch's
    shuffle (and, without persistent workers, the workers' seeds) is the same in a run
    resumed at that epoch's start as in one that ran straight through; the global RNG
    is not drawn from.

    Args:
        *args: as for ``DataLoader``.
        seed: base seed; ``None`` takes ``torch.initial_seed()`` when first iterated.
        epoch_fn: returns the current epoch, or ``None`` to count passes.
        **kwargs: as for ``DataLoader`` (``generator`` is set here).

    Under data-parallel training Lightning replaces its sampler with a ``DistributedSampler``
    (``trainer.use_distributed_sampler``, on by default), re-creating this loader with the same
    ``seed`` and ``epoch_fn``. The epoch's order is then the sampler's: drawn from the run seed
    (``PL_GLOBAL_SEED``) and the epoch, which Lightning passes to ``set_epoch`` at every epoch
    start, so it still depends on ``(seed, epoch)`` only; this loader's generator then seeds the
    workers alone.
    """

    def __init__(self, *args: Any, seed: int | None = None, epoch_fn: Callable[[], int | None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, generator=torch.Generator(), **kwargs)
        self.seed = seed
        self._epoch_fn = epoch_fn
        self._passes = 0

    def __iter__(self) -> Any:
        if self.seed is None:
            self.seed = int(torch.initial_seed()) % 2**63
        epoch = self._epoch_fn() if self._epoch_fn is not None else None
        self.generator.manual_seed(batch_seed(self.seed, self._passes if epoch is None else int(epoch), -1))
        self._passes += 1
        return super().__iter__()


class ImageDataModule(pl.LightningDataModule):
    """Common arguments, properties and dataloaders of the image datamodules.

    Args:
        root: data folder; ``None`` means ``$ZOO_DATA`` or ``./data``.
        download: fetch the dataset if its files are missing (needs internet).
        batch_size: training batch size.
        num_workers: dataloader worker processes.
        image_size: side of the square input; ``None`` keeps the dataset's size.
        val_size: validation images carved from the training set (count or fraction).
        split_seed: seed of that carve; fixed, independent of the run seed.
        augment: training recipe name, see :mod:`zoo.data.transforms`.
        augment_kwargs: options of the recipe (e.g. ``{"padding": 2}``).
        eval_batch_size: batch size of validation/test; defaults to ``batch_size``.
        pin_memory: pin host memory in the dataloaders (for GPU training).
        persistent_workers: keep workers alive between epochs (when ``num_workers > 0``).
        drop_last: drop the last incomplete training batch.
        num_classes: expected class count (from the config); checked against the dataset.
        in_chans: expected channel count (from the config); checked against the dataset.
        small_input: whether models should use their small-input layout; defaults to
            ``image_size <= 32``. Carried for ``${data.small_input}`` in model configs.
    """

    #: registered name, e.g. ``"mnist"``.
    name: ClassVar[str] = ""
    #: class count of the dataset (``None``: known only from the files).
    NUM_CLASSES: ClassVar[int | None] = None
    #: channels of the stored images.
    IN_CHANS: ClassVar[int] = 3
    #: side of the stored images (``None``: varies).
    NATIVE_SIZE: ClassVar[int | None] = None
    #: key into :data:`zoo.data.stats.DATASET_STATS`.
    STATS_KEY: ClassVar[str] = ""

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        download: bool = False,
        batch_size: int = 128,
        num_workers: int = 0,
        *,
        image_size: int | None = None,
        val_size: int | float = 5000,
        split_seed: int = 0,
        augment: str = "none",
        augment_kwargs: dict[str, Any] | None = None,
        eval_batch_size: int | None = None,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        drop_last: bool = False,
        num_classes: int | None = None,
        in_chans: int | None = None,
        small_input: bool | None = None,
    ) -> None:
        super().__init__()
        self.root = Path(root) if root is not None else default_data_root()
        self.download = bool(download)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"data.batch_size={batch_size!r}: an integer >= 1 is needed; e.g. data.batch_size=128")
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)
        self.drop_last = bool(drop_last)
        self.val_size = val_size
        self.split_seed = int(split_seed)
        lookup_recipe(AUGMENTATIONS, augment, "augmentation recipe")  # fail early on a typo
        self.augment = augment
        self.augment_kwargs = dict(augment_kwargs or {})

        self._image_size = int(image_size or self.NATIVE_SIZE or 224)
        if self._image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        self._num_classes = self._check_keyword("num_classes", num_classes, self.NUM_CLASSES)
        self._in_chans = self._check_keyword("in_chans", in_chans, self.IN_CHANS)
        if small_input is not None and not isinstance(small_input, bool):
            raise ValueError(f"small_input must be true or false, got {small_input!r}")
        self._small_input = small_input if small_input is not None else self._image_size <= 32
        self.classes: list[str] | None = None
        #: base seed of the training order and augmentations; ``None``: the run seed
        #: (``torch.initial_seed()``) when the training loader is made. Kept in checkpoints.
        self.loader_seed: int | None = None

        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    # ------------------------------------------------------------------ keywords

    def _check_keyword(self, key: str, given: int | None, actual: int | None) -> int | None:
        if given is None:
            return actual
        if isinstance(given, bool) or not isinstance(given, int) or given < 1:
            raise ValueError(f"{key} must be a positive integer, got {given!r}")
        if actual is not None and given != actual:
            raise ValueError(
                f"{self.name} has {key}={actual}, but {key}={given} was requested "
                f"(data.{key} in the config); leave it at {actual}"
            )
        return given

    # ------------------------------------------------------------------ properties

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        if self._num_classes is None:
            raise RuntimeError(f"{self.name}: num_classes is known after setup(); or pass num_classes=")
        return self._num_classes

    @property
    def in_chans(self) -> int:
        """Channels of the images the network receives."""
        return self._in_chans

    @property
    def image_size(self) -> int:
        """Side of the square images the network receives."""
        return self._image_size

    @property
    def input_size(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one input image."""
        return (self.in_chans, self.image_size, self.image_size)

    @property
    def small_input(self) -> bool:
        """Whether models should use their small-input (28/32 px) layout."""
        return self._small_input

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean used for normalisation (``[0, 1]`` scale)."""
        return self._stats()[0]

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel standard deviation used for normalisation."""
        return self._stats()[1]

    def _stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        from zoo.data.stats import DATASET_STATS

        return DATASET_STATS[self.STATS_KEY]

    def transform_spec(self) -> TransformSpec:
        """The :class:`TransformSpec` the recipes of this datamodule are built from."""
        return TransformSpec(
            image_size=self.image_size, mean=self.mean, std=self.std, options=self.augment_kwargs
        )

    def train_transform(self) -> Any:
        """The training transform (recipe ``augment``)."""
        return build_train_transform(self.augment, self.transform_spec())

    # ------------------------------------------------------------------ loaders

    def _epoch(self) -> int | None:
        """The trainer's current epoch, or ``None`` outside a trainer."""
        trainer = getattr(self, "trainer", None)
        return int(trainer.current_epoch) if trainer is not None else None

    def _shard(self) -> tuple[int, int]:
        """``(rank, world_size)`` of this process's share of the data: the attached trainer's global rank and
        world size; ``(0, 1)`` without a trainer, or when its ``use_distributed_sampler`` is off (then every
        process reads all of it)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        connector = getattr(trainer, "_accelerator_connector", None)
        if not getattr(connector, "use_distributed_sampler", True):
            return 0, 1
        # a stand-in without ranks (a single process) reads all of it
        return int(getattr(trainer, "global_rank", 0)), int(getattr(trainer, "world_size", 1))

    def _loader(self, dataset: Dataset | None, *, train: bool) -> Any:
        """A ``DataLoader``. Under data-parallel training Lightning gives the training loader a
        ``DistributedSampler`` (its order drawn from the run seed and the epoch, which Lightning sets at each
        epoch start; padded so that every rank has the same number of batches); validation and test loaders get
        an unrepeated one here, so that every image is evaluated exactly once (Lightning's would pad them)."""
        if dataset is None:
            raise RuntimeError(f"{self.name}: call setup() before asking for dataloaders")
        workers = self.num_workers
        kwargs: dict[str, Any] = {}
        if train:  # the epoch's order depends on (seed, epoch) only: see EpochSeededDataLoader
            kwargs = {"seed": self.loader_seed, "epoch_fn": self._epoch}
        else:
            rank, world_size = self._shard()
            if world_size > 1:
                from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler

                kwargs = {"sampler": UnrepeatedDistributedSampler(dataset, num_replicas=world_size, rank=rank,
                                                                  shuffle=False)}
        return (EpochSeededDataLoader if train else DataLoader)(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            drop_last=self.drop_last if train else False,
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and workers > 0,
            collate_fn=collate,
            **kwargs,
        )

    # ------------------------------------------------------------------ resumable state

    def state_dict(self) -> dict[str, Any]:
        """Saved in each checkpoint: the seed of the training order and augmentations, and the
        training loader's position (epoch and batch) where it has one."""
        seed = self.loader_seed if self.loader_seed is not None else int(torch.initial_seed()) % 2**63
        state: dict[str, Any] = {"loader_seed": int(seed)}
        loader = getattr(self, "_train_loader", None)
        if loader is not None and hasattr(loader, "state_dict"):
            state["train_loader"] = loader.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores the seed of the training order and augmentations, and the position that every training
        loader made from now on resumes at (Lightning restores the datamodule before it makes the loaders)."""
        if "loader_seed" in state_dict:
            self.loader_seed = int(state_dict["loader_seed"])
        self._resume_state = state_dict.get("train_loader")

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, image_size={self.image_size}, "
            f"in_chans={self.in_chans}, num_classes={self._num_classes}, augment={self.augment!r})"
        )


class InMemoryDataModule(ImageDataModule):
    """Base of the datasets that live in memory as uint8 tensors.

    Subclasses implement :meth:`_load` returning ``(images, targets)`` for the
    training or the test split: images ``(N, C, h, w)`` uint8 at the native
    size, targets ``(N,)`` int64. This class brings them to ``image_size``
    (:meth:`_to_size`), carves the validation split and builds the datasets.

    Where the data lives (``device``): :meth:`setup` copies the training images
    and labels and the normalised validation and test sets to the device once;
    the loaders then index and augment batches there (:class:`InMemoryLoader`),
    so Lightning's transfer to the device finds them in place and copies nothing.
    The training images of a recipe without a batched version (per-image
    recipes such as ``random_resized_crop``) stay on the host, where the recipe
    runs, and each finished batch is copied to the device.

    Args:
        resize_mode: how images are brought to ``image_size`` when it differs
            from the native size: ``"pad"`` (zero-pad equally on all sides;
            needs ``image_size >= native``; the normalisation statistics are
            adjusted exactly, see :func:`zoo.data.stats.padded_stats`) or
            ``"resize"`` (bilinear, antialiased; statistics kept as at the
            native size, an approximation).
        device: where the tensors live and batches are made: ``None`` (the
            device of the attached trainer, read at :meth:`setup`; the CPU
            without a trainer), or a device such as ``"cpu"``, ``"cuda"``,
            ``"cuda:1"``.
        **kwargs: see :class:`ImageDataModule`.
    """

    def __init__(self, *args: Any, resize_mode: str = "pad", device: str | torch.device | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if resize_mode not in ("pad", "resize"):
            raise ValueError(f"resize_mode must be 'pad' or 'resize', got {resize_mode!r}")
        if device is not None:
            try:
                torch.device(device)
            except (RuntimeError, TypeError) as err:
                raise ValueError(f"device must be null (the trainer's device) or a device such as 'cpu', "
                                 f"'cuda' or 'cuda:0', got {device!r}") from err
        #: the requested device (``None``: the trainer's); :attr:`data_device` is the one in use.
        self.device = device
        #: where the tensors live, set by :meth:`setup`.
        self.data_device: torch.device = torch.device("cpu")
        native = self.NATIVE_SIZE
        if resize_mode == "pad" and native is not None and self.image_size < native:
            raise ValueError(
                f"{self.name}: image_size={self.image_size} is smaller than the native {native} px, "
                "which padding cannot give; use resize_mode='resize'"
            )
        self.resize_mode = resize_mode
        #: positions of the train / val images within the training file, set by setup().
        self.split_positions: dict[str, np.ndarray] = {}

    # -- subclass interface ------------------------------------------------------

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(images uint8 (N, C, h, w), targets int64 (N,))`` of one split."""
        raise NotImplementedError

    def batch_train_transform(self) -> Any:
        """The batched version of the training recipe, or ``None`` if it has none."""
        builder = BATCHED_AUGMENTATIONS.get(self.augment)
        return builder(self.transform_spec()) if builder is not None else None

    def _ensure_files(self) -> None:
        """Downloads the files if allowed and needed; raises DatasetNotFoundError otherwise."""

    # -- pipeline ----------------------------------------------------------------

    def prepare_data(self) -> None:
        """Downloads the dataset when ``download=True`` and its files are missing."""
        self._ensure_files()

    def _stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        from zoo.data.stats import padded_stats

        stats = super()._stats()
        native = self.NATIVE_SIZE
        if self.resize_mode == "pad" and native is not None and self.image_size > native:
            return padded_stats(stats, native, self.image_size)
        return stats

    def _to_size(self, images: torch.Tensor) -> torch.Tensor:
        """Brings uint8 images ``(N, C, h, w)`` to ``(N, C, image_size, image_size)``."""
        h, w = images.shape[-2:]
        size = self.image_size
        if (h, w) == (size, size):
            return images.contiguous()
        if self.resize_mode == "pad" and h <= size and w <= size:
            top, left = (size - h) // 2, (size - w) // 2
            return torch.nn.functional.pad(images, (left, size - w - left, top, size - h - top))
        out = []
        for chunk in images.split(4096):  # bounded float memory
            x = torch.nn.functional.interpolate(
                chunk.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
            out.append(x.round_().clamp_(0, 255).to(torch.uint8))
        return torch.cat(out)

    def _normalised(self, images: torch.Tensor) -> torch.Tensor:
        norm = Normalize(self.mean, self.std)
        return torch.cat([norm(chunk) for chunk in images.split(4096)]) if len(images) else images.float()

    def _check_loaded(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != self.IN_CHANS:
            raise RuntimeError(f"{self.name}: loader returned {images.dtype} {tuple(images.shape)}")
        if len(targets) and (int(targets.min()) < 0 or int(targets.max()) >= self.num_classes):
            raise RuntimeError(
                f"{self.name}: labels span {int(targets.min())}..{int(targets.max())}, "
                f"outside 0..{self.num_classes - 1}"
            )

    def resolve_device(self) -> torch.device:
        """The device the data should live on: ``device`` if given, else the attached trainer's
        (``trainer.strategy.root_device``), else the CPU.

        Raises:
            RuntimeError: if a CUDA device is asked for and CUDA is not available.
        """
        trainer = getattr(self, "trainer", None)
        if self.device is not None:
            device = torch.device(self.device)
        else:
            device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError(f"{self.name}: data.device={str(device)!r}, but CUDA is not available; use "
                                   "data.device=null (the trainer's device) or data.device=cpu")
            if device.index is None:
                device = torch.device("cuda", torch.cuda.current_device())
        if self.device is not None and trainer is not None and trainer.strategy.root_device != device:
            log.warning("%s: data.device=%s, but the model trains on %s: every batch is copied there",
                        self.name, device, trainer.strategy.root_device)
        return device

    def _place(self, device: torch.device) -> None:
        """Moves the datasets that are set up to ``device``; a dataset already there is not copied.

        The training images of a recipe without a batched version stay on the host, where the recipe runs.
        """
        moved = 0
        for split, ds in (("train", self.train_set), ("val", self.val_set), ("test", self.test_set)):
            if not isinstance(ds, TensorImageDataset):
                continue
            target = device
            if split == "train" and ds.batch_transform is None and ds.transform is not None:
                target = torch.device("cpu")  # per-image recipe: runs on the host, batches are copied
            if ds.device != target:
                ds.to(target)
                moved += ds.images.numel() * ds.images.element_size() + ds.targets.numel() * 8
        if moved:
            log.info("%s: %.1f MB of images and labels moved to %s", self.name, moved / 2**20, device)
        self.data_device = device

    def _loader(self, dataset: Dataset | None, *, train: bool) -> InMemoryLoader:
        """An :class:`InMemoryLoader`: batches are one tensor index, so there are no workers. Under data-parallel
        training it takes this process's share of every epoch (the trainer's global rank and world size)."""
        if dataset is None:
            raise RuntimeError(f"{self.name}: call setup() before asking for dataloaders")
        if not isinstance(dataset, TensorImageDataset):
            raise TypeError(f"{self.name}: in-memory loaders need a TensorImageDataset, got {type(dataset).__name__}")
        rank, world_size = self._shard()  # Lightning shards DataLoaders only: this loader shards itself
        if train:
            if self.loader_seed is None:
                self.loader_seed = int(torch.initial_seed()) % 2**63
            self._train_loader = InMemoryLoader(dataset, self.batch_size, shuffle=True, drop_last=self.drop_last,
                                                seed=self.loader_seed, epoch_fn=self._epoch, device=self.data_device,
                                                rank=rank, world_size=world_size)
            if getattr(self, "_resume_state", None):
                self._train_loader.load_state_dict(self._resume_state)
            return self._train_loader
        return InMemoryLoader(dataset, self.eval_batch_size, shuffle=False, device=self.data_device, rank=rank,
                              world_size=world_size)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Counts the training batches that reach the training step: the loader's resume position."""
        trainer = getattr(self, "trainer", None)
        loader = getattr(self, "_train_loader", None)
        if trainer is not None and trainer.training and loader is not None:
            loader.mark_consumed()
        return batch

    def setup(self, stage: str | None = None) -> None:
        """Loads the splits a stage needs (``fit``/``validate``: train + val; ``test``: test) and moves them
        to the device (:meth:`resolve_device`), once: a later call moves only what is not there yet."""
        device = self.resolve_device()
        if stage in (None, "fit", "validate") and self.val_set is None:
            self._ensure_files()
            images, targets = self._load(train=True)
            self._check_loaded(images, targets)
            images = self._to_size(images)
            train_idx, val_idx = split_indices(len(images), self.val_size, self.split_seed)
            self.split_positions = {"train": train_idx, "val": val_idx}
            t_idx, v_idx = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
            self.train_set = TensorImageDataset(images[t_idx], targets[t_idx], self.train_transform(),
                                                self.batch_train_transform())
            self.val_set = TensorImageDataset(self._normalised(images[v_idx]), targets[v_idx])
            log.info("%s: %d train / %d val images at %s", self.name, len(t_idx), len(v_idx), self.input_size)
        if stage in (None, "test") and self.test_set is None:
            self._ensure_files()
            images, targets = self._load(train=False)
            self._check_loaded(images, targets)
            self.test_set = TensorImageDataset(self._normalised(self._to_size(images)), targets)
            log.info("%s: %d test images", self.name, len(targets))
        self._place(device)
