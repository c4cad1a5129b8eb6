"""Composing configs/train.yaml in tests exactly as `python train.py <overrides>` does."""

from __future__ import annotations

import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def make_cfg(tmp_path: Path, overrides: list[str]) -> DictConfig:
    """Composes the training config with ``overrides``; the run writes into ``tmp_path``, on the CPU."""
    os.environ.setdefault("ZOO_ROOT", str(ROOT))
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
        cfg.paths.log_dir = str(tmp_path.parent)
        cfg.trainer.accelerator = "cpu"
        del cfg.hydra
    return cfg
