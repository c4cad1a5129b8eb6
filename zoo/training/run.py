"""One training run from a composed Hydra config: fit, test, and write ``results.json``."""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from zoo.profiling import count_params
from zoo.training.callbacks import EpochLogger
from zoo.training.checkpoint import AtomicCheckpointIO, CheckpointError, atomic_write_text
from zoo.training.module import ClassificationModule

__all__ = ["train", "resolve_ckpt_path", "check_input"]

log = logging.getLogger("zoo.train")


def _choices() -> dict[str, str]:
    """Returns Hydra's config-group choices (``{"model": "lenet5", ...}``), or ``{}`` outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return {k: v for k, v in HydraConfig.get().runtime.choices.items() if isinstance(v, str)}
    except Exception:
        return {}


def _command() -> str:
    """Returns the command line that reproduces this run (``python train.py <overrides>``)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except Exception:
        overrides = sys.argv[1:]
    return " ".join(["python train.py", *overrides])


def _git_commit(root: Path) -> str | None:
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except Exception:
        return None


def _hardware() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    hw: dict[str, Any] = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        hw["gpu"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return hw


def _versions() -> dict[str, str]:
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "pytorch_lightning": pl.__version__,
            "cuda": torch.version.cuda or "none"}


@torch.no_grad()
def check_input(model: nn.Module, input_size: tuple[int, ...]) -> None:
    """Runs one zero input through ``model`` so that an unsuitable input size fails before training.

    Raises:
        zoo.InputTooSmallError: naming the layer and the output-size arithmetic.
    """
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, *input_size))
    finally:
        model.train(was_training)


def _same_run_kind(run_dir: Path, cfg: DictConfig) -> bool:
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        return False
    try:
        other = OmegaConf.load(saved)
        return other.model.get("name") == cfg.model.get("name") and \
            other.data.get("_target_") == cfg.data.get("_target_")
    except Exception:
        return False


def resolve_ckpt_path(ckpt_path: str | None, cfg: DictConfig) -> str | None:
    """Turns ``ckpt_path`` into a file: ``last`` means this run's ``last.ckpt``, else the newest one
    of a run of the same model and data below ``paths.log_dir``.

    Raises:
        CheckpointError: if no such checkpoint exists.
    """
    if ckpt_path in (None, ""):
        return None
    if str(ckpt_path) != "last":
        p = Path(str(ckpt_path)).expanduser()
        if not p.is_file():
            raise CheckpointError(f"ckpt_path={ckpt_path}: no such file")
        return str(p)
    here = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    if here.is_file():
        return str(here)
    found = [p for p in Path(cfg.paths.log_dir).glob("**/checkpoints/last.ckpt")
             if _same_run_kind(p.parent.parent, cfg)]
    if not found:
        raise CheckpointError(
            f"ckpt_path=last: no last.ckpt of model {cfg.model.get('name')} with this data under "
            f"{cfg.paths.log_dir}; pass ckpt_path=<path to a .ckpt file>")
    newest = max(found, key=lambda p: p.stat().st_mtime)
    log.info("resuming from the newest matching checkpoint %s", newest)
    return str(newest)


def _callbacks(cfg: DictConfig) -> list[pl.Callback]:
    callbacks: list[pl.Callback] = [EpochLogger()]
    for name, cb_cfg in (cfg.get("callbacks") or {}).items():
        if cb_cfg is None or "_target_" not in cb_cfg:
            continue
        if cb_cfg._target_.endswith("RichProgressBar") and not sys.stdout.isatty():
            continue  # a progress bar in a log file is noise; EpochLogger writes one line per epoch
        callbacks.append(hydra.utils.instantiate(cb_cfg))
    return callbacks


def _loggers(cfg: DictConfig, resuming: bool) -> list[Any]:
    """Instantiates the loggers; a resumed run never overwrites the logs of the run it continues."""
    loggers = []
    for c in (cfg.get("logger") or {}).values():
        if c is None or "_target_" not in c:
            continue
        kwargs: dict[str, Any] = {}
        if resuming and "save_dir" in c:
            base = str(c.get("version") or "")
            version, k = base, 0
            while any((Path(c.save_dir) / str(c.get("name") or "") / version).glob("*")):
                k += 1
                version = f"{base}resume{k}" if not base else f"{base}_resume{k}"
            kwargs["version"] = version
        loggers.append(hydra.utils.instantiate(c, **kwargs))
    return loggers


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fits and tests one model as configured, and writes ``results.json`` in the run directory.

    Args:
        cfg: the composed ``configs/train.yaml``.

    Returns:
        The contents of ``results.json``.
    """
    if cfg.get("seed") is not None:
        pl.seed_everything(int(cfg.seed), workers=True)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    git_commit = _git_commit(Path(cfg.paths.root_dir))  # the code that runs, before anything can change it

    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    model: nn.Module = hydra.utils.instantiate(cfg.model)
    check_input(model, tuple(datamodule.input_size))
    n_params = count_params(model)
    log.info("model %s: %s parameters; data %s, input %s", cfg.model.get("name"), f"{n_params:,}",
             type(datamodule).__name__, tuple(datamodule.input_size))

    module = ClassificationModule(
        model=model,
        optimizer=hydra.utils.instantiate(cfg.optim),
        scheduler=hydra.utils.instantiate(cfg.sched),
        num_classes=int(cfg.model.num_classes),
        label_smoothing=float(cfg.loss.label_smoothing),
        aux_weight=float(cfg.loss.aux_weight),
    )
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg)
    interactive = sys.stdout.isatty()
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=_callbacks(cfg), logger=_loggers(cfg, resuming=ckpt_path is not None) or False,
        plugins=[AtomicCheckpointIO()], enable_progress_bar=interactive, enable_model_summary=interactive)

    t0 = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    train_seconds = time.perf_counter() - t0
    fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    test_ckpt = best if (cfg.get("test_on_best", True) and best) else None
    trainer.test(module, datamodule=datamodule, ckpt_path=test_ckpt)
    test_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}

    choices = _choices()
    results: dict[str, Any] = {
        "model": cfg.model.get("name"),
        "data": choices.get("data", str(cfg.data.get("_target_", "")).rsplit(".", 1)[-1]),
        "experiment": choices.get("experiment"),
        "params": n_params,
        "epochs": int(trainer.current_epoch),
        "global_steps": int(trainer.global_step),
        "seed": cfg.get("seed"),
        "test/acc": test_metrics.get("test/acc"),
        "test/loss": test_metrics.get("test/loss"),
        "test/acc5": test_metrics.get("test/acc5"),
        "val/acc_best": fit_metrics.get("val/acc_best"),
        "train_seconds": round(train_seconds, 2),
        "best_checkpoint": best or None,
        "tested_on": "best" if test_ckpt else "last",
        "resumed_from": ckpt_path,
        "run_dir": str(out_dir),
        "command": _command(),
        "git_commit": git_commit,
        "versions": _versions(),
        "hardware": _hardware(),
        "device": str(module.device),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2, default=str) + "\n")
    return results
