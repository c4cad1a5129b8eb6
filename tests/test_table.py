"""The README results table: the runner's commands, and the committed runs behind the table.

``results/runs`` holds the table's runs (``results.json``, metrics and config of each seed, no weights);
the README block must be exactly what ``python -m zoo.report results/runs`` makes of them, and every
CPU-trainable preset must have its seeds there: all three for the digits and MNIST-likes, seed 0 at least for
``cifar10-jpeg`` presets (15 to 45 minutes a seed, filled breadth-first over several sittings).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from zoo.report import (COPIES, CPU_DATASETS, README_END, README_START, full_recipe, read_presets, update_readme,
                         write_report)

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


def _finish(out: Path, name: str, seed: int) -> None:
    (out / name / f"seed{seed}").mkdir(parents=True, exist_ok=True)
    (out / name / f"seed{seed}" / "results.json").write_text("{}")


def _interrupt(out: Path, name: str, seed: int) -> None:
    (out / name / f"seed{seed}" / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / name / f"seed{seed}" / "checkpoints" / "last.ckpt").write_bytes(b"")


def _plan(cmds: list[list[str]]) -> list[tuple[str, str, bool]]:
    """(preset, seed, resumed) of each command, in order."""
    return [(c[2].removeprefix("experiment="), next(a for a in c if a.startswith("seed=")).removeprefix("seed="),
             "ckpt_path=last" in c) for c in cmds]


def test_runner_plans_cpu_presets_and_skips_finished_seeds(tmp_path):
    run_table = _runner()
    configs = tmp_path / "configs"
    _preset(configs, "lenet5_digits", "lenet5", "digits")
    _preset(configs, "lenet5_mnist", "lenet5", "mnist")
    _preset(configs, "resnet20_cifar10", "resnet20", "cifar10")
    _preset(configs, "resnet20_cifar10_jpeg", "resnet20", "cifar10_jpeg")
    _preset(configs, "alexnet_imagenet", "alexnet", "imagefolder")
    out = tmp_path / "runs"
    # seed 1 of lenet5_mnist is finished; seed 2 only started (no results.json, no checkpoint).
    _finish(out, "lenet5_mnist", 1)
    (out / "lenet5_mnist" / "seed2").mkdir(parents=True)

    cmds = run_table.table_commands(configs, out, SEEDS, data_root="/data")
    # Breadth-first: seed 0 of every CPU preset (cifar10-jpeg included) before any seed 1.
    assert _plan(cmds) == [
        ("lenet5_digits", "0", False), ("lenet5_mnist", "0", False), ("resnet20_cifar10_jpeg", "0", False),
        ("lenet5_digits", "1", False), ("resnet20_cifar10_jpeg", "1", False),
        ("lenet5_digits", "2", False), ("lenet5_mnist", "2", False), ("resnet20_cifar10_jpeg", "2", False)]
    digits, mnist, jpeg = cmds[:3]
    assert digits[1:] == ["train.py", "experiment=lenet5_digits", "callbacks.rich_progress_bar=null", "seed=0",
                          f"hydra.run.dir={out / 'lenet5_digits' / 'seed0'}"]
    assert "data.root=/data" in mnist and "data.root=/data" in jpeg
    assert f"hydra.run.dir={out / 'resnet20_cifar10_jpeg' / 'seed0'}" in jpeg
    assert not any("-m" in c or any(a.startswith("hydra.sweep") for a in c) for c in cmds)

    assert _plan(run_table.table_commands(configs, out, SEEDS, only="*_mnist")) == \
        [("lenet5_mnist", "0", False), ("lenet5_mnist", "2", False)]
    for seed in (0, 2):
        _finish(out, "lenet5_mnist", seed)
    assert run_table.table_commands(configs, out, SEEDS, only="*_mnist") == []


def test_runner_resumes_an_interrupted_seed_in_its_folder(tmp_path):
    """A seed killed mid-run (last.ckpt, no results.json) is resumed with ckpt_path=last; the others start."""
    run_table = _runner()
    configs, out = CONFIGS, tmp_path / "runs"
    _interrupt(out, "lenet5_digits", 1)
    fresh0, resume, fresh2 = run_table.table_commands(configs, out, SEEDS, only="lenet5_digits")
    assert resume[1:] == ["train.py", "experiment=lenet5_digits", "callbacks.rich_progress_bar=null", "seed=1",
                          f"hydra.run.dir={out / 'lenet5_digits' / 'seed1'}", "ckpt_path=last"]
    assert fresh0[1:] == ["train.py", "experiment=lenet5_digits", "callbacks.rich_progress_bar=null", "seed=0",
                          f"hydra.run.dir={out / 'lenet5_digits' / 'seed0'}"]
    assert "seed=2" in fresh2 and "ckpt_path=last" not in fresh2


def test_runner_fills_seeds_breadth_first_over_sittings(tmp_path):
    """Each sitting goes on where the last stopped: finished seeds skipped, an interrupted one resumed in its
    place, no preset's seed 1 before every preset's seed 0."""
    run_table = _runner()
    configs, out = tmp_path / "configs", tmp_path / "runs"
    for name in ("a_cifar10_jpeg", "b_cifar10_jpeg", "c_mnist"):
        _preset(configs, name, "resnet20", "cifar10_jpeg" if "jpeg" in name else "mnist")
    first = run_table.table_commands(configs, out, SEEDS, data_root="/data")
    assert [(p, s) for p, s, _ in _plan(first)] == [
        (p, str(s)) for s in SEEDS for p in ("a_cifar10_jpeg", "b_cifar10_jpeg", "c_mnist")]
    # Sitting 1 ends during b's seed 0: a's seed 0 finished, b's seed 0 interrupted after a checkpoint.
    _finish(out, "a_cifar10_jpeg", 0)
    _interrupt(out, "b_cifar10_jpeg", 0)
    assert _plan(run_table.table_commands(configs, out, SEEDS, data_root="/data"))[:4] == [
        ("b_cifar10_jpeg", "0", True), ("c_mnist", "0", False), ("a_cifar10_jpeg", "1", False),
        ("b_cifar10_jpeg", "1", False)]
    # Sitting 2 ends during a's seed 1: every seed 0 done, a's seed 1 interrupted.
    _finish(out, "b_cifar10_jpeg", 0)
    _finish(out, "c_mnist", 0)
    _interrupt(out, "a_cifar10_jpeg", 1)
    plan = _plan(run_table.table_commands(configs, out, SEEDS, data_root="/data"))
    assert plan == [("a_cifar10_jpeg", "1", True), ("b_cifar10_jpeg", "1", False), ("c_mnist", "1", False),
                    ("a_cifar10_jpeg", "2", False), ("b_cifar10_jpeg", "2", False), ("c_mnist", "2", False)]
    # --seeds 0 is done; --only narrows the plan without changing its order.
    assert run_table.table_commands(configs, out, (0,)) == []
    assert _plan(run_table.table_commands(configs, out, SEEDS, only="*_jpeg")) == [
        ("a_cifar10_jpeg", "1", True), ("b_cifar10_jpeg", "1", False),
        ("a_cifar10_jpeg", "2", False), ("b_cifar10_jpeg", "2", False)]


def test_cifar10_jpeg_presets_are_cpu_rows_against_their_full_recipe(tmp_path):
    """The project's resnet20_cifar10_jpeg: a CPU preset labelled cifar10-jpeg, given data.root, whose paper
    figure is CIFAR-10's and whose full recipe is resnet20_cifar10 (182 epochs against its 40)."""
    presets = {p["experiment"]: p for p in read_presets(CONFIGS)}
    jpeg = presets["resnet20_cifar10_jpeg"]
    assert jpeg["dataset"] == "cifar10-jpeg" and jpeg["dataset"] in CPU_DATASETS
    assert (jpeg["paper"], jpeg["paper_metric"]) == (pytest.approx(91.25), "cifar10/top1_err")
    full = full_recipe("resnet20", "cifar10", "resnet20_cifar10_jpeg", presets.values())
    assert full["experiment"] == "resnet20_cifar10" and jpeg["epochs"] < full["epochs"]
    (cmd,) = _runner().table_commands(CONFIGS, tmp_path, (0,), only="resnet20_cifar10_jpeg", data_root="/data")
    assert "data.root=/data" in cmd and "seed=0" in cmd


def test_runner_dry_run_prints_and_runs_nothing(tmp_path, caplog):
    run_table = _runner()
    caplog.set_level("INFO")
    assert run_table.main(["--dry-run", "--only", "lenet5_digits", "--out", str(tmp_path)]) == 0
    assert "experiment=lenet5_digits" in caplog.text
    assert all(f"seed={s} " in caplog.text for s in SEEDS)
    assert list(tmp_path.iterdir()) == []


def _finished(name: str) -> list[int]:
    return [s for s in SEEDS if (RUNS / name / f"seed{s}" / "results.json").is_file()]


def test_every_cpu_preset_has_its_seeds_in_results():
    """The digits and MNIST presets have all their seeds; the cifar10-jpeg presets (15-45 minutes per seed) fill
    over several sittings, breadth-first: a seed is present only with the seeds before it."""
    cpu = {p["experiment"]: p["dataset"] for p in read_presets(CONFIGS) if p["dataset"] in CPU_DATASETS}
    assert {"lenet5_mnist", "lenet5_digits", "lenet5_modern_digits", "resnet20_cifar10_jpeg"} <= set(cpu)
    missing = {name: [s for s in SEEDS if s not in _finished(name)] for name, ds in cpu.items() if ds not in COPIES}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"presets without their table runs (python scripts/run_table.py): {missing}"
    for name, ds in cpu.items():
        done = _finished(name)
        if ds in COPIES:
            assert done == list(SEEDS[:len(done)]), f"{name}: seeds {done} (make table fills seed 0 first)"
        for s in done:
            results = json.loads((RUNS / name / f"seed{s}" / "results.json").read_text())
            assert results["experiment"] == name and results["seed"] == s and results.get("status", "completed") == "completed"
            assert 0.0 < results["test/acc"] <= 1.0


def test_readme_table_is_generated_from_the_committed_runs(tmp_path):
    result = write_report([RUNS], tmp_path, configs_dir=CONFIGS, plots=False)
    readme = (ROOT / "README.md").read_text()
    regenerated = tmp_path / "README.md"
    regenerated.write_text(readme)
    update_readme(regenerated, result["markdown"])
    assert readme.count(README_START) == readme.count(README_END) == 1
    assert regenerated.read_text() == readme, "the README table is stale: run `make results`"
    cpu = {p["experiment"]: p["dataset"] for p in read_presets(CONFIGS) if p["dataset"] in CPU_DATASETS}
    rows = {r["recipe"] for r in result["rows"]}
    pending = {p["experiment"] for p in result["pending"]}
    # Every CPU preset is a row once it has a finished seed; until then it is listed with its command.
    assert {name for name in cpu if _finished(name)} <= rows
    assert {name for name in cpu if not _finished(name)} <= pending
    assert all(p["dataset"] in COPIES or p["dataset"] not in CPU_DATASETS for p in result["pending"])
    assert all(r["dataset"] in CPU_DATASETS for r in result["rows"])
    assert all(1 <= r["n_runs"] <= len(SEEDS) for r in result["rows"])
    assert all(r["n_runs"] == len(SEEDS) for r in result["rows"] if r["dataset"] not in COPIES)


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


def test_readme_reference_ops_rows_are_the_committed_runs():
    """The README's reference-ops table gives the accuracy and training time of the runs in
    ``results/reference_ops`` (each run's command is the table's, with its ``conv_impl``)."""
    import re

    text = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(lenet5\w*)` \| .* \| (0\.\d{4}) \| (0\.\d{4}) \| (\d+) s / (\d+) s \((\d+\.\d)×\) \|$",
                      text, flags=re.M)
    assert [r[0] for r in rows] == ["lenet5_modern", "lenet5"]
    for model, acc_native, acc_ref, s_native, s_ref, ratio in rows:
        runs = {impl: json.loads((ROOT / "results" / "reference_ops" / f"{model}_{impl}" / "results.json").read_text())
                for impl in ("native", "reference")}
        for impl, acc, seconds in (("native", acc_native, s_native), ("reference", acc_ref, s_ref)):
            run = runs[impl]
            assert f"model={model} " in run["command"] and f"model.conv_impl={impl}" in run["command"]
            assert f"{run['test/acc']:.4f}" == acc, (model, impl)
            assert round(run["train_seconds"]) == int(seconds), (model, impl)
        assert f"{runs['reference']['train_seconds'] / runs['native']['train_seconds']:.1f}" == ratio, model
