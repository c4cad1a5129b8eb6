"""Train and test one zoo model: `python train.py model=<name> data=<name> [overrides...]`.

Examples:
    python train.py                                   # LeNet-5 on the bundled digits
    python train.py experiment=lenet5_mnist data.root=../shared/data
    python train.py model=resnet20 data=cifar10 optim=sgd sched=multistep trainer.max_epochs=182
    python train.py -m experiment=resnet20_cifar10 seed=0,1,2
    python train.py ... hydra.run.dir=<run folder> ckpt_path=last   # resume a run in its folder

Every run writes results.json, checkpoints/ (best and last.ckpt), csv/ logs and train.log in its
run directory under outputs/.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("ZOO_ROOT", str(ROOT))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

log = logging.getLogger("zoo.train")


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
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


if __name__ == "__main__":
    main()
