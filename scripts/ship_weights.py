"""Publishes the weights behind the README table's MNIST rows as package data (``zoo/pretrained/``).

For each MNIST preset whose weights take 2 MB or less, the tested weights of its seed-0 run
(``results/runs/<preset>/seed0``, trained by ``make table`` with its checkpoints kept) are written as
``zoo/pretrained/<model>-mnist.safetensors`` with the JSON sidecar (model keywords, classes, input size,
normalisation, the run's test figures and the file's SHA-256). Then ``zoo.create_model(<model>,
weights="mnist")`` loads them offline, and ``tests/test_pretrained.py`` checks on real MNIST that each
reproduces its run's ``test/acc``.

Usage::

    python scripts/ship_weights.py            # every shipped preset
    python scripts/ship_weights.py --only lenet5_mnist
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import sys
from pathlib import Path
from typing import Sequence

from torchvision.datasets import MNIST

from zoo.trained import export_weights
from zoo.weights import SHIPPED_DIR

ROOT = Path(__file__).resolve().parents[1]

#: the MNIST rows whose weights ship with the package: preset -> registered model
SHIPPED_PRESETS = {
    "lenet5_mnist": "lenet5",
    "lenet5_modern_mnist": "lenet5_modern",
    "resnet20_mnist": "resnet20",
    "gated_cnn_mnist": "gated_cnn",
    "gated_tcn_mnist": "gated_tcn",
    "vit_tiny_mnist": "vit_tiny_patch4",
}
MAX_BYTES = 2 * 1024 * 1024

log = logging.getLogger("ship_weights")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python scripts/ship_weights.py", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="*", help="fnmatch pattern on preset names")
    parser.add_argument("--runs", default=str(ROOT / "results" / "runs"), help="folder of the table's runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    failed = 0
    for preset, model in SHIPPED_PRESETS.items():
        if not fnmatch.fnmatch(preset, args.only):
            continue
        run = Path(args.runs) / preset / "seed0"
        if not (run / "checkpoints").is_dir():
            log.error("%s: %s has no checkpoints; train it with make table ARGS=\"--only %s --seeds 0\"", preset, run,
                      preset)
            failed += 1
            continue
        out = export_weights(run, SHIPPED_DIR / f"{model}-mnist.safetensors", classes=list(MNIST.classes))
        size = out.stat().st_size
        if size > MAX_BYTES:
            log.error("%s: %s is %d bytes, over the %d-byte limit for shipped weights", preset, out, size, MAX_BYTES)
            out.unlink()
            out.with_suffix(".json").unlink()
            failed += 1
            continue
        log.info("%s -> %s (%d bytes)", preset, out.relative_to(ROOT), size)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
