"""Runs the README results table: every CPU-trainable experiment preset over several seeds.

A preset is CPU-trainable when its data is one of ``zoo.report.CPU_DATASETS``: the small sets (digits,
MNIST and its drop-ins, minutes a seed) and ``cifar10-jpeg`` (15 to 45 minutes a seed); the others
(CIFAR-10, ImageNet) are listed under the table by ``python -m zoo.report`` with the command to run them.
Each (preset, seed) is one run::

    python train.py experiment=<name> seed=<N> hydra.run.dir=results/runs/<name>/seed<N>

so every run keeps its ``results.json``, metrics and resolved config under ``results/runs/<name>/seed<N>``
(checkpoints are not kept in git). The table fills breadth-first: seed 0 of every preset, then seed 1 of
every preset, and so on, so a table made over several sittings has one seed of each row before a second of
any. Seeds that already have a ``results.json`` are skipped, and a seed whose run was interrupted (a
``last.ckpt`` but no ``results.json``) is resumed in its folder with ``ckpt_path=last``, in its place in
that order, so an interrupted table goes on where it stopped, exactly. ``make results`` then regenerates
the README table.

Usage::

    python scripts/run_table.py                          # every CPU preset, seeds 0,1,2
    python scripts/run_table.py --only 'lenet5*' --seeds 0
    python scripts/run_table.py --dry-run                # print the commands only
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from zoo.report import CPU_DATASETS, read_presets

ROOT = Path(__file__).resolve().parents[1]

log = logging.getLogger("run_table")


def missing_seeds(out_dir: Path, seeds: Sequence[int]) -> list[int]:
    """Returns the seeds of ``seeds`` without a finished run (``seed<N>/results.json``) in ``out_dir``."""
    return [s for s in seeds if not (out_dir / f"seed{s}" / "results.json").is_file()]


def table_commands(configs_dir: Path, out_root: Path, seeds: Sequence[int], only: str = "*",
                   data_root: str | None = None) -> list[list[str]]:
    """Returns one ``train.py`` command per (CPU preset matching ``only``, seed) without a finished run,
    seed by seed: every preset's first seed before any preset's second.

    Args:
        configs_dir: the configs folder holding ``experiment/``.
        out_root: the folder of the table's runs (``<out_root>/<preset>/seed<N>``).
        seeds: the seeds every preset is run with, in the order they are filled.
        only: fnmatch pattern on preset names.
        data_root: ``data.root`` for presets whose data is read from disk (not digits); ``None`` leaves
            the config's default (``ZOO_DATA`` or ``<project>/data``).

    Returns:
        The commands: ``python train.py experiment=<name> ... seed=<N> hydra.run.dir=<out_root>/<name>/seed<N>``,
        with ``ckpt_path=last`` for a seed that was interrupted (a ``last.ckpt``, no ``results.json``).
    """
    presets = [p for p in read_presets(configs_dir)
               if p["dataset"] in CPU_DATASETS and fnmatch.fnmatch(p["experiment"], only)]
    todo = {p["experiment"]: missing_seeds(out_root / p["experiment"], seeds) for p in presets}
    for name, missing in todo.items():
        if not missing:
            log.info("%s: seeds %s done", name, ",".join(map(str, seeds)))
    commands = []
    for seed in seeds:
        for preset in presets:
            name = preset["experiment"]
            if seed not in todo[name]:
                continue
            run_dir = out_root / name / f"seed{seed}"
            data = [f"data.root={data_root}"] if data_root is not None and preset["dataset"] != "digits" else []
            resume = ["ckpt_path=last"] if (run_dir / "checkpoints" / "last.ckpt").is_file() else []
            commands.append([sys.executable, "train.py", f"experiment={name}", *data,
                             "callbacks.rich_progress_bar=null", f"seed={seed}", f"hydra.run.dir={run_dir}", *resume])
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit code (non-zero when a run failed)."""
    parser = argparse.ArgumentParser(prog="python scripts/run_table.py", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    parser.add_argument("--only", default="*", help="fnmatch pattern on preset names (default: all)")
    parser.add_argument("--out", default="results/runs", help="folder of the table's runs")
    parser.add_argument("--data-root", default=os.environ.get("ZOO_DATA"),
                        help="data.root for presets read from disk (MNIST-likes, cifar10-jpeg; default: $ZOO_DATA, "
                             "else the config's)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out_root = Path(args.out)
    if not out_root.is_absolute():
        out_root = (Path.cwd() / out_root).resolve()
    failed = 0
    for cmd in table_commands(ROOT / "configs", out_root, seeds, args.only, args.data_root):
        log.info("$ %s", shlex.join(cmd))
        if args.dry_run:
            continue
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            log.error("failed: %s", shlex.join(cmd))
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
