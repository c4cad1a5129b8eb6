"""Section ``tta``: time to accuracy of one whole run through :func:`zoo.training.run.train`.

The config is ``configs/train.yaml`` composed with ``options.tta_overrides`` (default
``experiment=lenet5_mnist``), writing into ``options.tta_dir`` or a temporary folder, with one more
callback, :class:`EpochTimer`, that writes ``bench_epochs.json`` in the run folder: at the end of
each training epoch (after its validation) the wall and CPU time since training started and the
time spent in validation so far. The validation accuracy of each epoch is read from the run's
``metrics.csv`` (the CSV logger's), the test accuracy from its ``results.json``; then, for each
threshold, the first epoch whose validation accuracy reaches it, and the time at its end.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from zoo.bench.core import BenchOptions, Clock, Measurement, Report, compose_train_config

__all__ = ["run_tta", "tta_config", "EpochTimer", "read_val_acc"]

log = logging.getLogger(__name__)

EPOCHS_FILE = "bench_epochs.json"


class EpochTimer(pl.Callback):
    """Writes, at each training epoch's end, the times since training started to a JSON file.

    Each entry: ``epoch`` (1-based), ``elapsed_wall_s`` / ``elapsed_cpu_s`` (since ``on_train_start``,
    the epoch's validation included), ``val_wall_s`` / ``val_cpu_s`` (validation so far) and
    ``val_acc`` (the trainer's ``val/acc``, or ``None``).

    Args:
        path: the JSON file.
        device: the training device (CUDA is synchronised before each reading).
    """

    def __init__(self, path: str, device: str = "cpu") -> None:
        self.path = Path(path)
        self.clock = Clock(device)
        self.start: tuple[float, float] | None = None
        self.val_start: tuple[float, float] | None = None
        self.val = [0.0, 0.0]
        self.epochs: list[dict[str, Any]] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = self.clock.read()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.val_start = self.clock.read()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and self.val_start is not None:
            s = self.clock.since(self.val_start)
            self.val[0] += s.cpu
            self.val[1] += s.wall
            self.val_start = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.start is None:
            return
        s = self.clock.since(self.start)
        acc = trainer.callback_metrics.get("val/acc")
        self.epochs.append({"epoch": int(trainer.current_epoch) + 1, "elapsed_wall_s": s.wall, "elapsed_cpu_s": s.cpu,
                            "val_wall_s": self.val[1], "val_cpu_s": self.val[0],
                            "val_acc": float(acc) if acc is not None else None, "time": time.time()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.epochs, indent=2) + "\n")
        tmp.replace(self.path)


def tta_config(options: BenchOptions, output_dir: str | Path) -> Any:
    """The ``tta`` run's config: ``options.tta_overrides`` composed (with ``data.root`` from
    ``options.data_root`` unless given), on ``options.device``, with :class:`EpochTimer` added and no
    progress bar."""
    from omegaconf import open_dict

    overrides = list(options.tta_overrides)
    if options.data_root is not None and not any(o.startswith("data.root=") for o in overrides):
        overrides.append(f"data.root={options.data_root}")
    cfg = compose_train_config(overrides, output_dir)
    with open_dict(cfg):
        cfg.trainer.accelerator = "cuda" if options.torch_device.type == "cuda" else "cpu"
        if options.torch_device.type == "cuda":
            cfg.trainer.devices = [options.torch_device.index or 0]
        if cfg.get("callbacks") is None:
            cfg.callbacks = {}
        cfg.callbacks.pop("rich_progress_bar", None)
        cfg.callbacks.bench_epoch_timer = {"_target_": f"{EpochTimer.__module__}.EpochTimer",
                                           "path": str(Path(output_dir) / EPOCHS_FILE), "device": options.device}
    return cfg


def read_val_acc(run_dir: Path) -> dict[int, float]:
    """``{epoch (1-based): val/acc}`` from the run's ``metrics.csv`` (empty when there is none)."""
    files = sorted(Path(run_dir).glob("**/metrics.csv"))
    out: dict[int, float] = {}
    for f in files:
        with open(f, newline="") as fh:
            for row in csv.DictReader(fh):
                v, e = row.get("val/acc"), row.get("epoch")
                if v not in (None, "") and e not in (None, ""):
                    out[int(float(e)) + 1] = float(v)
    return out


def run_tta(options: BenchOptions, report: Report) -> None:
    """Trains one run as configured and adds its per-epoch times, accuracies and times to the thresholds.

    Args:
        options: the run's settings (``tta_overrides``, ``tta_thresholds``, ``tta_dir``, ``data_root``, ``device``).
        report: receives the rows and notes.
    """
    from zoo.training.run import train

    with tempfile.TemporaryDirectory(prefix="zoo-bench-tta-") as tmp:
        run_dir = Path(options.tta_dir) if options.tta_dir is not None else Path(tmp) / "run"
        cfg = tta_config(options, run_dir)
        results = train(cfg)
        epochs = json.loads((run_dir / EPOCHS_FILE).read_text())
        accs = read_val_acc(run_dir)
    name = " ".join(options.tta_overrides)
    source = "metrics.csv" if accs else "the trainer's val/acc"
    for e in epochs:
        acc = accs.get(e["epoch"], e.get("val_acc"))
        e["val_acc"] = acc
        key = f"epoch {e['epoch']}"
        for metric, value, unit in (("elapsed_wall_s", e["elapsed_wall_s"], "s"),
                                    ("elapsed_cpu_s", e["elapsed_cpu_s"], "s"),
                                    ("train_wall_s", e["elapsed_wall_s"] - e["val_wall_s"], "s"),
                                    ("val_acc", None if acc is None else 100 * acc, "%")):
            report.add(Measurement("tta", key, "run", metric, value, unit))
    for thr in options.tta_thresholds:
        hit = next((e for e in epochs if e["val_acc"] is not None and 100 * e["val_acc"] >= thr - 1e-9), None)
        key = f"val_acc >= {thr:g}%"
        note = f"first reached at epoch {hit['epoch']}" if hit else f"not reached in {len(epochs)} epochs"
        for metric, value, unit in (("elapsed_wall_s", hit and hit["elapsed_wall_s"], "s"),
                                    ("elapsed_cpu_s", hit and hit["elapsed_cpu_s"], "s"),
                                    ("train_wall_s", hit and hit["elapsed_wall_s"] - hit["val_wall_s"], "s"),
                                    ("epoch", hit and hit["epoch"], "epoch")):
            report.add(Measurement("tta", key, "run", metric, None if value is None else float(value), unit, note=note))
    test_acc = results.get("test/acc")
    report.add(Measurement("tta", "final", "run", "test_acc", None if test_acc is None else 100 * float(test_acc), "%",
                           note=f"tested on the {results.get('tested_on')} weights"))
    report.add(Measurement("tta", "final", "run", "train_seconds", float(results.get("train_seconds") or math.nan), "s",
                           note="results.json train_seconds (fit, validation included)"))
    report.note("tta", f"run: python train.py {name} ({results.get('epochs')} epochs, {results.get('global_steps')} "
                       f"steps, status {results.get('status')}); validation accuracy from {source}; run folder "
                       f"{run_dir if options.tta_dir is not None else '(temporary, removed)'}")
