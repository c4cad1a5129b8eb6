"""The README results table: the runner's commands, and the committed runs behind the table.

``results/runs`` holds the table's runs (``results.json``, metrics and config of each seed, no weights);
the README block must be exactly what ``python -m zoo.report results/runs`` makes of them, and every
CPU-trainable preset must have its seeds there.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from zoo.report import CPU_DATASETS, README_END, README_START, read_presets, update_readme, write_report

from hydra_helpers import CONFIGS, ROOT

RUNS = ROOT / "results" / "runs"
SEEDS = (0, 1, 2)


def _runner():
    spec = importlib.util.spec_from_file_location("run_table", ROOT / "scripts" / "run_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("run_table", module)
    spec.loader.exec_module(module)
    return module


def _preset(configs: Path, name: str, model: str, data: str) -> None:
    (configs / "experiment").mkdir(parents=True, exist_ok=True)
    (configs / "experiment" / f"{name}.yaml").write_text(
        f"# @package _global_\ndefaults:\n  - override /model: {model}\n  - override /data: {data}\n")


def test_runner_plans_cpu_presets_and_skips_finished_seeds(tmp_path):
    run_table = _runner()
    configs = tmp_path / "configs"
    _preset(configs, "lenet5_digits", "lenet5", "digits")
    _preset(configs, "lenet5_mnist", "lenet5", "mnist")
    _preset(configs, "resnet20_cifar10", "resnet20", "cifar10")
    _preset(configs, "alexnet_imagenet", "alexnet", "imagefolder")
    out = tmp_path / "runs"
    # seed 1 of lenet5_mnist is finished; seed 2 only started (no results.json).
    (out / "lenet5_mnist" / "seed1").mkdir(parents=True)
    (out / "lenet5_mnist" / "seed1" / "results.json").write_text("{}")
    (out / "lenet5_mnist" / "seed2").mkdir(parents=True)

    cmds = run_table.table_commands(configs, out, SEEDS, data_root="/data")
    assert [c[3] for c in cmds] == ["experiment=lenet5_digits", "experiment=lenet5_mnist"]
    digits, mnist = cmds
    assert digits[1:3] == ["train.py", "-m"]
    assert "seed=0,1,2" in digits and not any(a.startswith("data.root=") for a in digits)
    assert "seed=0,2" in mnist and "data.root=/data" in mnist
    assert f"hydra.sweep.dir={out / 'lenet5_mnist'}" in mnist and "hydra.sweep.subdir=seed${seed}" in mnist

    assert [c[3] for c in run_table.table_commands(configs, out, SEEDS, only="*_mnist")] == \
        ["experiment=lenet5_mnist"]
    for seed in (0, 2):
        (out / "lenet5_mnist" / f"seed{seed}" / "results.json").parent.mkdir(parents=True, exist_ok=True)
        (out / "lenet5_mnist" / f"seed{seed}" / "results.json").write_text("{}")
    assert run_table.table_commands(configs, out, SEEDS, only="*_mnist") == []


def test_runner_resumes_an_interrupted_seed_in_its_folder(tmp_path):
    """A seed killed mid-run (last.ckpt, no results.json) is resumed with ckpt_path=last; the others start."""
    run_table = _runner()
    configs, out = CONFIGS, tmp_path / "runs"
    (out / "lenet5_digits" / "seed1" / "checkpoints").mkdir(parents=True)
    (out / "lenet5_digits" / "seed1" / "checkpoints" / "last.ckpt").write_bytes(b"")
    resume, fresh = run_table.table_commands(configs, out, SEEDS, only="lenet5_digits")
    assert resume[1:] == ["train.py", "experiment=lenet5_digits", "callbacks.rich_progress_bar=null", "seed=1",
                          f"hydra.run.dir={out / 'lenet5_digits' / 'seed1'}", "ckpt_path=last"]
    assert fresh[1:3] == ["train.py", "-m"] and "seed=0,2" in fresh


def test_runner_dry_run_prints_and_runs_nothing(tmp_path, caplog):
    run_table = _runner()
    caplog.set_level("INFO")
    assert run_table.main(["--dry-run", "--only", "lenet5_digits", "--out", str(tmp_path)]) == 0
    assert "experiment=lenet5_digits" in caplog.text and "seed=0,1,2" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_every_cpu_preset_has_its_seeds_in_results():
    cpu = [p["experiment"] for p in read_presets(CONFIGS) if p["dataset"] in CPU_DATASETS]
    assert {"lenet5_mnist", "lenet5_digits", "lenet5_modern_digits"} <= set(cpu)
    missing = {name: [s for s in SEEDS if not (RUNS / name / f"seed{s}" / "results.json").is_file()]
               for name in cpu}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"presets without their table runs (python scripts/run_table.py): {missing}"
    for name in cpu:
        for s in SEEDS:
            results = json.loads((RUNS / name / f"seed{s}" / "results.json").read_text())
            assert results["experiment"] == name and results["seed"] == s
            assert 0.0 < results["test/acc"] <= 1.0


def test_readme_table_is_generated_from_the_committed_runs(tmp_path):
    result = write_report([RUNS], tmp_path, configs_dir=CONFIGS, plots=False)
    readme = (ROOT / "README.md").read_text()
    regenerated = tmp_path / "README.md"
    regenerated.write_text(readme)
    update_readme(regenerated, result["markdown"])
    assert readme.count(README_START) == readme.count(README_END) == 1
    assert regenerated.read_text() == readme, "the README table is stale: run `make results`"
    # Only CIFAR and ImageNet presets are left without a number.
    assert result["pending"] and all(p["dataset"] not in CPU_DATASETS for p in result["pending"])
    assert {r["recipe"] for r in result["rows"]} == \
        {p["experiment"] for p in read_presets(CONFIGS) if p["dataset"] in CPU_DATASETS}
    assert all(r["n_runs"] == len(SEEDS) for r in result["rows"])


def test_every_preset_paper_figure_is_in_the_model_metadata():
    """A preset's paper_result names a figure its model's metadata has; paper rows get their figure."""
    from zoo import model_info

    presets = read_presets(CONFIGS)
    for p in presets:
        cfg = (CONFIGS / "experiment" / f"{p['experiment']}.yaml").read_text()
        if "paper_result:" in cfg:
            assert p["paper_metric"] in model_info(p["model"]).paper_results, p["experiment"]
    paper_rows = [p for p in presets if p["dataset"] in ("imagenet", "cifar10") and p["paper"] is not None]
    names = {p["experiment"] for p in paper_rows}
    assert {f"vgg{n}_imagenet" for n in ("11", "11_lrn", "13", "16_1x1", "16", "19")} <= names
    assert {f"resnet{n}_cifar10" for n in (20, 32, 44, 56, 110)} <= names
    assert {f"resnet{n}_imagenet" for n in (18, 34, 50, 101, 152)} <= names
    assert {"alexnet_imagenet", "googlenet_imagenet", "mobilenet_v1_imagenet", "shufflenet_v1_g3_imagenet"} <= names


def test_lenet5_mnist_row_compares_with_the_paper(tmp_path):
    row = next(r for r in write_report([RUNS / "lenet5_mnist"], tmp_path, configs_dir=CONFIGS, plots=False)["rows"])
    assert row["paper"] == pytest.approx(99.05) and row["n_runs"] == len(SEEDS)
    assert row["diff"] == pytest.approx(row["ours_mean"] - 99.05, abs=1e-3)
    assert row["verdict"] in ("within noise", f"off by {abs(row['diff']):.2f} pts")
