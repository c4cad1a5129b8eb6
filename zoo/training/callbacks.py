"""Small callbacks that Lightning does not ship."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl

__all__ = ["EpochLogger"]

log = logging.getLogger("zoo.train")


class EpochLogger(pl.Callback):
    """Logs one line of metrics per epoch, so non-interactive runs (CI, nohup) keep a readable log."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Runs after this epoch's validation and before Lightning resets the epoch's metrics.
        m = dict(trainer.callback_metrics)
        for key, attr in (("train/loss", "train_loss"), ("train/acc", "train_acc")):
            metric = getattr(pl_module, attr, None)
            if metric is not None and getattr(metric, "update_count", 0):
                m[key] = metric.compute()
        keys = ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best")
        parts = [f"{k} {float(m[k]):.4f}" for k in keys if k in m]
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        log.info("epoch %d/%d  %s%s", trainer.current_epoch + 1, trainer.max_epochs, "  ".join(parts),
                 f"  lr {lr:.3g}" if lr is not None else "")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        m: dict[str, Any] = trainer.callback_metrics
        log.info("test  %s", "  ".join(f"{k} {float(v):.4f}" for k, v in m.items() if k.startswith("test/")))
