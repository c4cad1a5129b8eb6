"""Callbacks that Lightning does not ship: the per-epoch log line, ``last.ckpt`` at every epoch end (and
every N steps), the RNG states in checkpoints, the run's metadata in checkpoints, and a progress bar that
shows the step loss."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint, RichProgressBar

__all__ = ["EpochLogger", "LastCheckpoint", "LossRichProgressBar", "RNGState", "RunMetadata", "capture_rng",
           "restore_rng"]

log = logging.getLogger("zoo.train")


class EpochLogger(pl.Callback):
    """Logs one line of metrics per epoch, so non-interactive runs (CI, nohup) keep a readable log.

    Under data-parallel training the line is written by the global rank 0 alone; the values are over all
    processes (every rank computes the training metrics, whose ``compute()`` gathers across ranks, so the
    collectives match on every rank).
    """

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Runs after this epoch's validation and before Lightning resets the epoch's metrics.
        m = dict(trainer.callback_metrics)
        epoch_metrics = getattr(pl_module, "train_epoch_metrics", None)
        if callable(epoch_metrics):
            m.update(epoch_metrics() or {})  # on every rank: a collective under DDP
        if not trainer.is_global_zero:
            return
        keys = ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best")
        parts = [f"{k} {float(m[k]):.4f}" for k in keys if k in m]
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        log.info("epoch %d/%d  %s%s", trainer.current_epoch + 1, trainer.max_epochs, "  ".join(parts),
                 f"  lr {lr:.3g}" if lr is not None else "")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        m: dict[str, Any] = trainer.callback_metrics
        log.info("test  %s", "  ".join(f"{k} {float(v):.4f}" for k, v in m.items() if k.startswith("test/")))


class LossRichProgressBar(RichProgressBar):
    """Lightning's ``RichProgressBar``, also showing the last ``train/loss_step`` while training.

    :class:`~zoo.training.module.ClassificationModule` writes the step loss to the loggers itself (every
    ``trainer.log_every_n_steps`` steps, outside ``self.log``), so the bar reads it from the module's
    ``last_step_loss``.
    """

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        loss = getattr(pl_module, "last_step_loss", None)
        if loss is not None and trainer.training:
            metrics["train/loss_step"] = loss
        return metrics


class LastCheckpoint(Checkpoint):
    """Writes ``last.ckpt`` at the end of every training epoch, and every ``every_n_train_steps`` steps.

    Lightning's ``ModelCheckpoint(save_last=True)`` rewrites ``last.ckpt`` only when it also
    saves a top-k checkpoint, so with ``save_top_k=1`` it holds the last *improving* epoch.
    This callback writes it unconditionally, through the trainer's checkpoint I/O (atomic with
    :class:`~zoo.training.checkpoint.AtomicCheckpointIO`). The end-of-epoch file is written after
    the epoch's validation, so it carries the epoch's metrics and the best-checkpoint state.
    Mid-epoch files (``every_n_train_steps``) let a long epoch resume where it stopped.

    Under data-parallel training it runs on every rank, as ``trainer.save_checkpoint`` must (it gathers the
    state on every rank, the strategy writes the file on the global rank 0 only, then all ranks wait at a
    barrier), so the file is written once.

    It is a Lightning ``Checkpoint`` callback, so it runs with the checkpoint callbacks, after the
    others; listed after ``ModelCheckpoint`` (as the training driver orders them), its end-of-epoch
    file holds that epoch's best-model bookkeeping.

    Args:
        dirpath: folder of ``last.ckpt``.
        filename: file name (default ``last.ckpt``).
        every_n_train_steps: also save after every N optimizer steps (0: only at epoch ends).
    """

    def __init__(self, dirpath: str | Path, filename: str = "last.ckpt", every_n_train_steps: int = 0) -> None:
        if isinstance(every_n_train_steps, bool) or not isinstance(every_n_train_steps, int) \
                or every_n_train_steps < 0:
            raise ValueError(f"callbacks.last_checkpoint.every_n_train_steps={every_n_train_steps!r}: an integer "
                             f">= 0 is needed (0: only at epoch ends); e.g. every_n_train_steps=500")
        self.path = Path(dirpath) / filename
        self.every_n_train_steps = every_n_train_steps
        self._last_step = -1

    @property
    def state_key(self) -> str:
        return f"LastCheckpoint[{self.path.name}]"

    def _save(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state a resume needs
        self._last_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        n = self.every_n_train_steps
        step = trainer.global_step
        if n and step % n == 0 and step != self._last_step \
                and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer)


def capture_rng() -> dict[str, Any]:
    """The states of torch (CPU and CUDA), NumPy's global and Python's ``random``, as tensors and numbers.

    Everything is stored so that ``torch.load(..., weights_only=True)`` reads it back.
    """
    keys, pos, has_gauss, gauss = np.random.get_state()[1:]
    version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)},
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": py_gauss},
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restores the states saved by :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), int(n["pos"]), int(n["has_gauss"]),
                         float(n["cached_gaussian"])))
    p = state["python"]
    random.setstate((int(p["version"]), tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RNGState(pl.Callback):
    """Saves the global RNG states in every checkpoint and restores them when training resumes.

    They are captured when the checkpoint is written and put back at ``on_train_start`` of the
    resumed run: after the model, the loaders and the sanity check were made, right before the
    first training batch. Between those two points nothing draws from the global RNG (the
    in-memory loaders draw from their own generators), so what the model draws next (dropout)
    is what it would have drawn without the interruption.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return capture_rng()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is not None:
            restore_rng(self._pending)
            self._pending = None


class RunMetadata(pl.Callback):
    """Stores the run's metadata in every checkpoint under ``checkpoint["zoo"]``: the model name, its builder
    keywords, the data facts and the resolved config, as plain containers (weights-only readable).

    Args:
        metadata: ``{"model": ..., "model_kwargs": ..., "data": ..., "config": ...}``.
    """

    def __init__(self, metadata: dict[str, Any]) -> None:
        self.metadata = metadata

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        classes = getattr(trainer.datamodule, "classes", None)
        if classes and isinstance(self.metadata.get("data"), dict):  # known once the data is set up
            self.metadata["data"]["classes"] = [str(c) for c in classes]
        checkpoint["zoo"] = self.metadata
