"""The Hydra entry point of training: ``python train.py <overrides>``, ``zoo train <overrides>`` and
``python -m zoo.train <overrides>`` all run :func:`main`.

The configs are shipped inside the package (``zoo/configs``, Hydra's ``pkg://zoo.configs``), so an installed
package trains in any folder: runs are written under ``./outputs``. ``$ZOO_ROOT/configs`` is used instead
when ``ZOO_ROOT`` names a folder that holds one (``train.py`` sets it to its checkout, whose ``configs/`` is
the package's), and runs are then written under ``$ZOO_ROOT/outputs``.

Exit codes: 0 completed, 2 bad input (config, data, checkpoint, run folder), 3 diverged; Hydra's own
errors (an override of an unknown group) exit with 1, as Hydra does.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Sequence

import hydra
from omegaconf import DictConfig

__all__ = ["ConfigsNotFoundError", "config_dir", "main", "run"]

log = logging.getLogger("zoo.train")

class ConfigsNotFoundError(FileNotFoundError):
    """The configs folder named by ``configs=`` has no ``train.yaml``."""


def config_dir() -> Path:
    """The configs in use: ``$ZOO_ROOT/configs`` when ``ZOO_ROOT`` holds them, else the packaged ones
    (:func:`zoo.configs.config_dir`)."""
    from zoo.configs import config_dir as _config_dir

    return _config_dir()


def _finish_wandb(exit_code: int) -> None:
    """Ends the wandb run this process started, if any: Lightning's WandbLogger never does, and the next job
    of a multirun in this process would otherwise log into the same wandb run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)


def run(cfg: DictConfig) -> float | None:
    """Runs one configured training; returns the value a Hydra sweeper optimises.

    That value is the ``results.json`` entry named by the top-level ``optimized_metric`` (``val/acc_best``
    under ``hparams_search=optuna``), or test accuracy when it is absent or null.

    Exit codes: 0 completed, 2 bad input (config, data, checkpoint, run folder), 3 diverged.
    """
    from zoo.data import DatasetNotFoundError
    from zoo.ops.shape import InputTooSmallError
    from zoo.training import CheckpointError, train
    from zoo.training.config_check import ConfigError
    from zoo.training.records import RunExistsError
    from zoo.training.run import TrainingDiverged

    exit_code = 1
    try:
        results = train(cfg)
        exit_code = 0
    except (ConfigError, CheckpointError, DatasetNotFoundError, InputTooSmallError, RunExistsError) as e:
        exit_code = 2
        log.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except TrainingDiverged as e:
        exit_code = 3
        log.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    finally:
        _finish_wandb(exit_code)
    from zoo.training.run import launched_as_rank_zero

    acc = results["test/acc"]
    metric = cfg.get("optimized_metric") or "test/acc"
    if launched_as_rank_zero():  # the other processes of a data-parallel run print nothing
        print(f"test/acc: {acc:.4f}" if acc is not None else "test/acc: n/a")
        print(f"run dir: {results['run_dir']}")
        if metric != "test/acc":
            print(f"{metric}: {results[metric]:.4f}" if results[metric] is not None else f"{metric}: n/a")
    return results[metric]


def main(argv: Sequence[str] | None = None, *, configs: str | os.PathLike | None = None,
         prog: str | None = None) -> None:
    """Composes ``configs/train.yaml`` with the command line's overrides (Hydra) and runs :func:`run`.

    Args:
        argv: the overrides (``["model=lenet5", "trainer.max_epochs=2"]``, ``-m`` for a multirun, Hydra's
            flags); ``None`` reads ``sys.argv[1:]``.
        configs: the configs folder (default: :func:`config_dir`); ``train.py`` passes its own.
        prog: the program name Hydra's ``--help`` shows (default ``sys.argv[0]``).

    Raises:
        SystemExit: with status 2 or 3 from :func:`run`, or Hydra's for its own errors.
        ConfigsNotFoundError: when ``configs`` has no ``train.yaml``.
    """
    if configs is None:
        from zoo.configs import PACKAGED, packaged_dir

        source = config_dir()
        # The packaged configs are found through Hydra's package search path; runs are written under
        # ZOO_ROOT when it is set (a checkout), else under the current folder (paths.root_dir is ".").
        path = PACKAGED if source == packaged_dir() else str(source)
    else:
        if not (Path(configs) / "train.yaml").is_file():
            raise ConfigsNotFoundError(f"{configs} has no train.yaml: pass the folder that holds the training "
                                       f"configs, e.g. configs=zoo/configs")
        os.environ.setdefault("ZOO_ROOT", str(Path(configs).resolve().parent))
        path = str(Path(configs).resolve())
    # The task function is this module's run(): Hydra names the job after its module, "train", as before.
    entry = hydra.main(version_base="1.3", config_path=path, config_name="train")(run)
    if argv is None and prog is None:
        entry()
        return
    saved = sys.argv
    sys.argv = [prog or (saved[0] if saved else "train"), *(saved[1:] if argv is None else argv)]
    try:
        entry()
    finally:
        sys.argv = saved


if __name__ == "__main__":
    main()
