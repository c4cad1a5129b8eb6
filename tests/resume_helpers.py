"""A callback that kills its own process with SIGKILL at a chosen point of a run (for tests/test_resume.py).

Points (``point=<kind>:<n>``):

* ``step:N``: at the end of the training batch that makes optimizer step N (mid-epoch);
* ``save:N``: while the checkpoint of step N is being written: the kill happens inside ``torch.save``,
  after part of the temporary file is on disk;
* ``val:E``: during the validation of epoch E (1-based), after its first batch;
* ``epoch_start:E``: at the start of epoch E (1-based), right after the previous epoch's last.ckpt;
* ``test:0``: when the final test starts, after training finished.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytorch_lightning as pl


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _KillWhenPickled:
    """Kills the process when pickled: inside ``torch.save`` of a checkpoint, mid-write."""

    def __reduce__(self) -> Any:
        _die()
        return (int, ())  # never reached


class KillAt(pl.Callback):
    """SIGKILLs the process at ``point`` (see the module docstring)."""

    def __init__(self, point: str) -> None:
        kind, _, n = point.partition(":")
        self.kind, self.n = kind, int(n or 0)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.kind == "step" and trainer.global_step == self.n:
            _die()

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if self.kind == "save" and trainer.global_step == self.n:
            # after the large tensors, so that part of the file is written before the kill
            checkpoint["zz_kill"] = _KillWhenPickled()

    def on_validation_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.kind == "val" and not trainer.sanity_checking and trainer.current_epoch + 1 == self.n:
            _die()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.kind == "epoch_start" and trainer.current_epoch + 1 == self.n:
            _die()

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.kind == "test":
            _die()
