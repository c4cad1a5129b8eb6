"""Train and test one zoo model: `python train.py model=<name> data=<name> [overrides...]`.

Examples:
    python train.py                                   # LeNet-5 on the bundled digits
    python train.py experiment=lenet5_mnist data.root=../shared/data
    python train.py model=resnet20 data=cifar10 optim=sgd sched=multistep trainer.max_epochs=182
    python train.py -m experiment=resnet20_cifar10 seed=0,1,2
    python train.py ... hydra.run.dir=<run folder> ckpt_path=last   # resume a run in its folder

Every run writes results.json, checkpoints/ (best and last.ckpt), csv/ logs and train.log in its
run directory under outputs/.

The Hydra entry point lives in the package (zoo/train.py), shared with `zoo train <overrides>`; this
script runs it on the configs/ beside it. Exit codes: 0 completed, 2 bad input (config, data,
checkpoint, run folder), 3 diverged.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("ZOO_ROOT", str(ROOT))

from zoo.train import main as _main  # noqa: E402  (after ZOO_ROOT: it imports hydra)


def main() -> None:
    """Runs ``zoo.train.main`` with this checkout's ``configs/`` and the command line's overrides."""
    _main(configs=ROOT / "configs")


if __name__ == "__main__":
    main()
