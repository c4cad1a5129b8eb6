"""Small callbacks that Lightning does not ship."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl

__all__ = ["EpochLogger"]

log = logging.getLogger("zoo.train")


class EpochLogger(pl.Callback):
    """Logs one line of metrics per epoch, so non-interactive runs (CI, nohup) keep a readable log."""

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        keys = ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best")
        parts = [f"{k} {float(m[k]):.4f}" for k in keys if k in m]
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        log.info("epoch %d/%d  %s%s", trainer.current_epoch + 1, trainer.max_epochs, "  ".join(parts),
                 f"  lr {lr:.3g}" if lr is not None else "")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        m: dict[str, Any] = trainer.callback_metrics
        log.info("test  %s", "  ".join(f"{k} {float(v):.4f}" for k, v in m.items() if k.startswith("test/")))
