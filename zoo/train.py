"""The Hydra entry point of training: ``python train.py <overrides>``, ``zoo train <overrides>`` and
``python -m zoo.train <overrides>`` all run :func:`main`.

The configs are the project's ``configs/`` folder: ``$ZOO_ROOT/configs`` when ``ZOO_ROOT`` names a folder
that has one, else the ``configs/`` beside the ``zoo`` package (the checkout this package is installed
from). ``ZOO_ROOT`` is set to that folder unless it is set already, as ``train.py`` does, so that the
configs' ``paths.root_dir`` (and with it ``outputs/``) is the project folder whatever the working directory.

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

__all__ = ["ConfigsNotFoundError", "config_dir", "main", "project_root", "run"]

log = logging.getLogger("zoo.train")

#: the folder that holds the ``zoo`` package (a checkout, or an editable install's source tree).
PACKAGE_PARENT = Path(__file__).resolve().parents[1]


class ConfigsNotFoundError(FileNotFoundError):
    """Neither ``$ZOO_ROOT/configs`` nor the ``configs/`` beside the package exists."""


def project_root() -> Path:
    """The project folder that holds ``configs/``: ``$ZOO_ROOT`` if it has one, else the package's parent.

    Raises:
        ConfigsNotFoundError: if neither has a ``configs/train.yaml``.
    """
    env = os.environ.get("ZOO_ROOT")
    candidates = ([Path(env).expanduser()] if env else []) + [PACKAGE_PARENT]
    for root in candidates:
        if (root / "configs" / "train.yaml").is_file():
            return root.resolve()
    where = " or ".join(str(c / "configs") for c in candidates)
    raise ConfigsNotFoundError(
        f"no training configs found (looked in {where}): zoo train needs the project's configs/ folder; "
        f"point ZOO_ROOT at the checkout that holds it, e.g. ZOO_ROOT=/path/to/zoo zoo train model=lenet5")


def config_dir() -> Path:
    """``<project_root()>/configs``."""
    return project_root() / "configs"


def run(cfg: DictConfig) -> float | None:
    """Runs one configured training; returns test accuracy (for Hydra sweepers).

    Exit codes: 0 completed, 2 bad input (config, data, checkpoint, run folder), 3 diverged.
    """
    from zoo.data import DatasetNotFoundError
    from zoo.ops.shape import InputTooSmallError
    from zoo.training import CheckpointError, train
    from zoo.training.config_check import ConfigError
    from zoo.training.records import RunExistsError
    from zoo.training.run import TrainingDiverged

    try:
        results = train(cfg)
    except (ConfigError, CheckpointError, DatasetNotFoundError, InputTooSmallError, RunExistsError) as e:
        log.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except TrainingDiverged as e:
        log.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    acc = results["test/acc"]
    print(f"test/acc: {acc:.4f}" if acc is not None else "test/acc: n/a")
    print(f"run dir: {results['run_dir']}")
    return acc


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
        ConfigsNotFoundError: when no configs folder is found (only without ``configs``).
    """
    if configs is None:
        root = project_root()
        configs = root / "configs"
        os.environ.setdefault("ZOO_ROOT", str(root))
    else:
        os.environ.setdefault("ZOO_ROOT", str(Path(configs).resolve().parent))
    # The task function is this module's run(): Hydra names the job after its module, "train", as before.
    entry = hydra.main(version_base="1.3", config_path=str(Path(configs).resolve()), config_name="train")(run)
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
