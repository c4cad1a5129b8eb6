"""The training configs (Hydra), shipped inside the package: ``pkg://zoo.configs``.

Groups: ``model``, ``data``, ``trainer``, ``optim``, ``sched``, ``callbacks``, ``logger``, ``debug``,
``experiment``, ``hparams_search``, ``paths``, ``hydra`` (with ``hydra/launcher``); the root config is ``train.yaml``. In a checkout, ``configs/`` at the
project's root is this folder.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PACKAGED", "config_dir", "packaged_dir"]

#: Hydra's search path of the packaged configs.
PACKAGED = "pkg://zoo.configs"


def packaged_dir() -> Path:
    """The folder of the packaged configs (this package's folder)."""
    return Path(__file__).resolve().parent


def config_dir() -> Path:
    """The configs in use: ``$ZOO_ROOT/configs`` when ``ZOO_ROOT`` names a folder that holds
    ``configs/train.yaml`` (a checkout, or a copy of the configs to edit), else the packaged ones."""
    env = os.environ.get("ZOO_ROOT")
    if env and (Path(env).expanduser() / "configs" / "train.yaml").is_file():
        return (Path(env).expanduser() / "configs").resolve()
    return packaged_dir()
