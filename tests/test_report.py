"""zoo.report on synthetic run folders: grouping, mean ± std, paper comparison, CSV, Markdown, README, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from zoo.report import (COPIES, CSV_COLUMNS, copy_verdict, dataset_label, find_runs, group_runs, main,
                        paper_accuracy, pending_presets, report_rows, to_markdown, update_readme, verdict,
                        write_report)

HW = {"cpu": "Test CPU 9000", "cpu_count": 2, "torch_threads": 1}


def _config(model: str, data: str, seed: int, lr: float = 1e-3, fast_dev_run: bool = False,
            task_name: str = "train", run_dir: str = "/x") -> dict:
    return {"task_name": task_name, "seed": seed, "ckpt_path": None,
            "paths": {"output_dir": run_dir, "root_dir": "/r"},
            "data": {"_target_": "zoo.data.MNISTDataModule", "root": "/data", "batch_size": 64},
            "model": {"_target_": "zoo.create_model", "name": model},
            "optim": {"_target_": "torch.optim.Adam", "lr": lr},
            "trainer": {"max_epochs": 3, "default_root_dir": run_dir, "fast_dev_run": fast_dev_run},
            "logger": {"csv": {"save_dir": run_dir}}}


def make_run(root: Path, name: str, *, model: str = "lenet5", data: str = "mnist", experiment: str | None = None,
             seed: int = 0, acc: float | None = 0.99, lr: float = 1e-3, command: str | None = None,
             seconds: float = 60.0, curve: tuple[float, ...] = (0.9, 0.95, 0.97), **cfg_kwargs) -> Path:
    """Writes a fake run folder: results.json and csv/metrics.csv."""
    run_dir = root / name
    (run_dir / "csv").mkdir(parents=True)
    results = {
        "model": model, "data": data, "experiment": experiment, "params": 60_000, "epochs": len(curve),
        "seed": seed, "test/acc": acc, "test/loss": 0.1, "train_seconds": seconds,
        "command": command or f"python train.py model={model} data={data} seed={seed}",
        "hardware": HW, "device": "cpu", "run_dir": str(run_dir),
        "config": _config(model, data, seed, lr=lr, run_dir=str(run_dir), **cfg_kwargs),
    }
    (run_dir / "results.json").write_text(json.dumps(results))
    lines = ["epoch,step,train/loss_epoch,val/acc"]
    for epoch, val in enumerate(curve):
        lines += [f"{epoch},{10 * epoch + 5},,", f"{epoch},{10 * epoch + 9},0.5,{val}"]
    (run_dir / "csv" / "metrics.csv").write_text("\n".join(lines) + "\n")
    return run_dir


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "outputs"
    # Three seeds of the LeNet-5 preset: 99.0 ± 0.2 vs the paper's 99.05 -> within noise.
    for seed, acc in zip((0, 1, 2), (0.990, 0.992, 0.988)):
        make_run(root, f"multirun/{seed}", experiment="lenet5_mnist", seed=seed, acc=acc,
                 command=f"python train.py experiment=lenet5_mnist seed={seed}", seconds=100.0 + seed)
    # One run of another recipe (different lr): 95.0 vs 99.05 -> off by 4.05.
    make_run(root, "runs/a", acc=0.95, lr=0.1, command="python train.py model=lenet5 data=mnist optim.lr=0.1")
    # A model without a paper figure on digits.
    make_run(root, "runs/b", model="lenet5_modern", data="digits", acc=0.98)
    # Skipped: debug runs, an unfinished run, a broken file.
    make_run(root, "runs/dev", fast_dev_run=True)
    make_run(root, "runs/dbg", task_name="debug")
    (root / "runs" / "unfinished" / "csv").mkdir(parents=True)
    (root / "runs" / "broken").mkdir(parents=True)
    (root / "runs" / "broken" / "results.json").write_text("{not json")
    return root


def test_groups_mean_std_and_verdicts(runs_root):
    runs = find_runs([runs_root])
    assert len(runs) == 5  # debug, unfinished and broken runs are left out
    groups = group_runs(runs)
    assert [(g.model, g.dataset, len(g.runs)) for g in groups] == [
        ("lenet5", "mnist", 1), ("lenet5", "mnist", 3), ("lenet5_modern", "digits", 1)]
    assert groups[1].recipe == "lenet5_mnist" and groups[0].recipe.startswith("cfg-")
    rows = {r["recipe"]: r for r in report_rows(groups)}
    preset = rows["lenet5_mnist"]
    assert preset["ours_mean"] == pytest.approx(99.0)
    assert preset["ours_std"] == pytest.approx(0.2)
    assert preset["n_runs"] == 3 and preset["seeds"] == "0,1,2"
    assert preset["paper"] == pytest.approx(99.05) and preset["paper_metric"] == "mnist/test_err"
    assert preset["diff"] == pytest.approx(-0.05)
    assert preset["verdict"] == "within noise"
    assert preset["wall_seconds"] == pytest.approx(101.0)
    assert preset["hardware"] == "Test CPU 9000, 1 thread of 2 cores"
    assert preset["command"] == "python train.py -m experiment=lenet5_mnist seed=0,1,2"
    assert preset["macs"] == 325_680 and preset["macs_input"] == "1x32x32"
    other = rows[groups[0].recipe]
    assert other["ours_std"] is None and other["verdict"] == "off by 4.05 pts"
    assert other["command"] == "python train.py model=lenet5 data=mnist optim.lr=0.1"
    modern = rows[groups[2].recipe]
    assert modern["paper"] is None and modern["diff"] is None and modern["verdict"] == "—"


def test_seed_and_paths_do_not_split_a_recipe(tmp_path):
    make_run(tmp_path, "a", seed=0, acc=0.9)
    make_run(tmp_path, "b", seed=1, acc=0.8)
    make_run(tmp_path, "c", seed=2, acc=0.7, lr=0.5)
    groups = group_runs(find_runs([tmp_path]))
    assert sorted(len(g.runs) for g in groups) == [1, 2]
    # The same preset run with different settings is kept apart, still named after the preset.
    make_run(tmp_path, "d", experiment="lenet5_mnist", lr=0.1)
    make_run(tmp_path, "e", experiment="lenet5_mnist", lr=0.2)
    recipes = [g.recipe for g in group_runs(find_runs([tmp_path])) if g.recipe.startswith("lenet5_mnist")]
    assert len(recipes) == 2 and all(r.startswith("lenet5_mnist+cfg-") for r in recipes)


def test_a_null_option_added_later_does_not_split_a_recipe(tmp_path):
    """Runs made before a config gained ``paper_result: null`` (or any null option) group with later ones."""
    make_run(tmp_path, "old", experiment="lenet5_mnist", seed=0)
    new = make_run(tmp_path, "new", experiment="lenet5_mnist", seed=1)
    results = json.loads((new / "results.json").read_text())
    results["config"]["paper_result"] = None
    results["config"]["trainer"]["gradient_clip_val"] = None
    (new / "results.json").write_text(json.dumps(results))
    (group,) = group_runs(find_runs([tmp_path]))
    assert group.recipe == "lenet5_mnist" and len(group.runs) == 2


def test_macs_are_those_of_the_trained_network(tmp_path):
    """A run's MACs come from its own model config at its data's input size, not the ImageNet default."""
    run = make_run(tmp_path, "g", model="googlenet_bn", data="digits", experiment="googlenet_bn_digits")
    results = json.loads((run / "results.json").read_text())
    results["config"]["model"] = {"_target_": "zoo.create_model", "name": "googlenet_bn", "num_classes": 10,
                                  "in_chans": 1, "small_input": True}
    results["config"]["data"].update(image_size=32, in_chans=1)
    (run / "results.json").write_text(json.dumps(results))
    (row,) = report_rows(group_runs(find_runs([tmp_path])))
    import zoo
    from zoo.profiling import count_macs

    expected = count_macs(zoo.create_model("googlenet_bn", num_classes=10, in_chans=1, small_input=True), (1, 32, 32))
    assert row["macs_input"] == "1x32x32" and row["macs"] == expected
    assert row["macs"] != zoo.model_info("googlenet_bn").macs


def test_verdict_and_paper_figures():
    assert verdict(90.0, 0.0, 90.25) == "within noise"  # the 0.3-point floor
    assert verdict(90.0, 0.5, 91.0) == "within noise"  # 2 std
    assert verdict(90.0, 0.1, 91.0) == "off by 1.00 pts"
    assert verdict(90.0, 0.1, None) == "—"
    assert paper_accuracy("lenet5", "mnist") == (pytest.approx(99.05), "mnist/test_err")
    assert paper_accuracy("alexnet", "imagenet") == (pytest.approx(59.3), "imagenet_val/top1_err")
    assert paper_accuracy("resnet20", "cifar10") == (pytest.approx(91.25), "cifar10/top1_err")
    assert paper_accuracy("resnet20", "mnist") is None
    # A recipe names the row it reproduces: VGG-16 with scale jittering (Table 3, 25.6% error).
    assert paper_accuracy("vgg16", "imagenet") == (pytest.approx(73.0), "imagenet_val/top1_err")
    assert paper_accuracy("vgg16", "imagenet", "imagenet_val/top1_err_jitter") == \
        (pytest.approx(74.4), "imagenet_val/top1_err_jitter")
    assert paper_accuracy("vgg16", "imagenet", "imagenet_val/no_such_figure") is None
    assert paper_accuracy("vit_l_16", "cifar10") is None  # a JFT-pretrained figure is another recipe
    assert paper_accuracy("no_such_model", "mnist") is None


def test_csv_markdown_plots_and_pending_presets(runs_root, tmp_path):
    configs = tmp_path / "configs"
    (configs / "experiment").mkdir(parents=True)
    (configs / "experiment" / "lenet5_mnist.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: lenet5\n  - override /data: mnist\n")
    (configs / "experiment" / "alexnet_imagenet.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: alexnet\n  - override /data: imagefolder\n"
        "trainer:\n  max_epochs: 90\n")
    (configs / "experiment" / "resnet20_cifar10.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: resnet20\n  - override /data: cifar10\n")
    out = tmp_path / "report"
    result = write_report([runs_root], out, configs_dir=configs)

    with (out / "results.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_COLUMNS
        rows = list(reader)
    assert len(rows) == 3
    preset = next(r for r in rows if r["recipe"] == "lenet5_mnist")
    assert float(preset["ours_mean"]) == pytest.approx(99.0) and preset["verdict"] == "within noise"

    md = (out / "results.md").read_text()
    assert md == result["markdown"]
    assert "| lenet5 | mnist | lenet5_mnist | 60.00K | 325.68K @1x32x32 | 99.00 ± 0.20 | 3 | 99.05 | -0.05 | " \
           "within noise |" in md
    assert "off by 4.05 pts" in md and "Test CPU 9000, 1 thread of 2 cores" in md
    assert "`python train.py -m experiment=lenet5_mnist seed=0,1,2`" in md
    # Presets with no run: listed with what they need and the command, and no number.
    assert [p["experiment"] for p in result["pending"]] == ["alexnet_imagenet", "resnet20_cifar10"]
    assert "| alexnet_imagenet | alexnet | imagenet | 59.30 | 90 | needs ImageNet" in md
    assert "needs CIFAR-10 on disk; GPU advised | `python train.py experiment=resnet20_cifar10` |" in md

    pytest.importorskip("matplotlib")
    plots = {p.name for p in (out / "plots").glob("*.png")}
    assert {"acc_vs_params.png", "acc_vs_macs.png", "val_acc_lenet5_mnist_lenet5_mnist.png"} <= plots
    # A curve of a group that no longer exists is removed on the next report; the others stay.
    (out / "plots" / "val_acc_gone_mnist_gone.png").write_bytes(b"stale")
    write_report([runs_root], out, configs_dir=configs)
    assert {p.name for p in (out / "plots").glob("*.png")} == plots
    assert len([p for p in plots if p.startswith("val_acc_")]) == 3
    assert all((out / "plots" / p).stat().st_size > 1000 for p in plots)


def test_presets_extend_siblings_and_name_their_paper_figure(tmp_path):
    exp = tmp_path / "configs" / "experiment"
    exp.mkdir(parents=True)
    (exp / "vgg16_imagenet.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: vgg16\n  - override /data: imagefolder\n"
        "trainer:\n  max_epochs: 74\npaper_result: imagenet_val/top1_err_jitter\n")
    (exp / "vgg19_imagenet.yaml").write_text(
        "# @package _global_\ndefaults:\n  - vgg16_imagenet\n  - override /model: vgg19\n")
    (exp / "vgg11_imagenet.yaml").write_text(
        "# @package _global_\ndefaults:\n  - vgg16_imagenet\n  - override /model: vgg11\n"
        "trainer:\n  max_epochs: 60\npaper_result: imagenet_val/top1_err\n")
    (exp / "loop_a.yaml").write_text("defaults:\n  - loop_b\n")
    (exp / "loop_b.yaml").write_text("defaults:\n  - loop_a\n")
    rows = {r["experiment"]: r for r in pending_presets(tmp_path / "configs", [])}
    assert set(rows) == {"vgg11_imagenet", "vgg16_imagenet", "vgg19_imagenet"}  # the cycle is skipped
    e = rows["vgg19_imagenet"]
    assert (e["model"], e["dataset"], e["epochs"]) == ("vgg19", "imagenet", 74)
    assert (e["paper"], e["paper_metric"]) == (pytest.approx(74.5), "imagenet_val/top1_err_jitter")
    a = rows["vgg11_imagenet"]
    assert (a["model"], a["epochs"], a["paper"]) == ("vgg11", 60, pytest.approx(70.4))


def test_run_config_names_its_paper_figure(tmp_path):
    for seed in (0, 1):
        run = make_run(tmp_path, f"r{seed}", model="vgg16", data="imagefolder", experiment="vgg16_imagenet",
                       seed=seed, acc=0.744)
        results = json.loads((run / "results.json").read_text())
        results["config"]["paper_result"] = "imagenet_val/top1_err_jitter"
        (run / "results.json").write_text(json.dumps(results))
    (row,) = report_rows(group_runs(find_runs([tmp_path])))
    assert (row["dataset"], row["paper"], row["paper_metric"]) == ("imagenet", 74.4, "imagenet_val/top1_err_jitter")
    assert row["verdict"] == "within noise"


def test_top5_paper_figure_is_compared_with_top5(tmp_path):
    """GoogLeNet's paper gives top-5 error only: its row compares test/acc5 and says so."""
    for seed, acc5 in ((0, 0.90), (1, 0.898)):
        run = make_run(tmp_path, f"g{seed}", model="googlenet", data="imagefolder", experiment="googlenet_imagenet",
                       seed=seed, acc=0.70)
        results = json.loads((run / "results.json").read_text())
        results["test/acc5"] = acc5
        results["config"]["paper_result"] = "imagenet_val/top5_err_1crop"
        (run / "results.json").write_text(json.dumps(results))
    rows = report_rows(group_runs(find_runs([tmp_path])))
    (row,) = rows
    assert row["ours_mean"] == pytest.approx(89.9) and row["paper"] == pytest.approx(89.93)
    assert row["verdict"] == "within noise"
    md = to_markdown(rows)
    assert "| 89.90 ± 0.14 (top-5) | 2 | 89.93 (top-5) | -0.03 | within noise |" in md


def test_pending_presets_without_configs(tmp_path):
    assert pending_presets(tmp_path / "nowhere", []) == []


def test_readme_marker_replacement(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# zoo\n\n## Results\n\nRESULTS_TABLE\n\n## Layout\nkeep me\n")
    update_readme(readme, "| a | b |\n|---|---|\n| 1 | 2 |\n")
    text = readme.read_text()
    assert "RESULTS_TABLE" not in text and "| 1 | 2 |" in text
    assert text.index("<!-- results:start -->") < text.index("| 1 | 2 |") < text.index("<!-- results:end -->")
    assert text.startswith("# zoo\n\n## Results\n\n") and text.endswith("\n\n## Layout\nkeep me\n")
    # Regenerating replaces the block and nothing else.
    update_readme(readme, "| a | b |\n|---|---|\n| 3 | 4 |\n")
    again = readme.read_text()
    assert "| 1 | 2 |" not in again and "| 3 | 4 |" in again
    assert again.count("<!-- results:start -->") == 1 and again.endswith("\n\n## Layout\nkeep me\n")
    bare = tmp_path / "OTHER.md"
    bare.write_text("no marker here\n")
    with pytest.raises(ValueError, match="RESULTS_TABLE"):
        update_readme(bare, "x")


def test_cli_writes_report_and_readme(runs_root, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("intro\nRESULTS_TABLE\nend\n")
    out = tmp_path / "rep"
    main([str(runs_root), "--out", str(out), "--readme", str(readme), "--no-plots",
          "--configs", str(tmp_path / "none")])
    assert (out / "results.md").is_file() and (out / "results.csv").is_file()
    assert not (out / "plots").exists()
    text = readme.read_text()
    assert "99.00 ± 0.20" in text and text.startswith("intro\n<!-- results:start -->")
    assert "wrote" in capsys.readouterr().out


def test_empty_folder_gives_an_empty_table(tmp_path):
    md = to_markdown(report_rows(group_runs(find_runs([tmp_path]))))
    assert "(no finished runs)" in md


def _set(run: Path, **changes) -> None:
    """Edits a fake run's results.json: ``key=value`` at the top, ``max_epochs`` in its trainer config."""
    results = json.loads((run / "results.json").read_text())
    if "max_epochs" in changes:
        results["config"]["trainer"]["max_epochs"] = changes.pop("max_epochs")
    results.update(changes)
    (run / "results.json").write_text(json.dumps(results))


def _jpeg_configs(root: Path) -> Path:
    """A configs folder with ResNet-20's full CIFAR-10 recipe (182 epochs) and its 40-epoch JPEG preset."""
    configs = root / "configs"
    exp = configs / "experiment"
    exp.mkdir(parents=True)
    (exp / "resnet20_cifar10.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: resnet20\n  - override /data: cifar10\n"
        "trainer:\n  max_epochs: 182\n")
    (exp / "resnet20_cifar10_jpeg.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: resnet20\n  - override /data: cifar10_jpeg\n"
        "trainer:\n  max_epochs: 40\n")
    (exp / "lenet5_mnist.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: lenet5\n  - override /data: mnist\n")
    return configs


def _jpeg_runs(root: Path) -> Path:
    """Two seeds of resnet20_cifar10_jpeg (40 epochs) at the paper's CIFAR-10 figure, one LeNet-5 run on MNIST."""
    for seed, acc, secs in ((0, 0.9124, 1500.0), (1, 0.9126, 1600.0)):
        run = make_run(root, f"resnet20_cifar10_jpeg/seed{seed}", model="resnet20", data="cifar10_jpeg",
                       experiment="resnet20_cifar10_jpeg", seed=seed, acc=acc, seconds=secs,
                       command=f"python train.py experiment=resnet20_cifar10_jpeg seed={seed}")
        _set(run, max_epochs=40, epochs=40, params=272_474)
    make_run(root, "lenet5_mnist/seed0", experiment="lenet5_mnist")
    return root


def test_cifar10_jpeg_is_labelled_as_the_copy_it_is():
    assert dataset_label("cifar10_jpeg") == "cifar10-jpeg"
    assert dataset_label("imagefolder", "", "zoo.data.CIFAR10JPEGDataModule") == "cifar10-jpeg"
    assert dataset_label("cifar10") == "cifar10" and dataset_label("mnist") == "mnist"
    assert dataset_label("imagefolder", "alexnet_imagenet") == "imagenet"
    # No paper has a figure on the copy: its rows name the CIFAR-10 figure they show, explicitly.
    assert paper_accuracy("resnet20", "cifar10-jpeg") is None
    assert COPIES["cifar10-jpeg"].source == "cifar10"


def test_copy_verdict_is_never_a_pass_or_fail():
    copy = COPIES["cifar10-jpeg"]
    assert copy_verdict(copy, 40, 182) == "JPEG copy, short schedule"
    assert copy_verdict(copy, 182, 182) == "JPEG copy"
    assert copy_verdict(copy, 40, None) == "JPEG copy, schedule unknown"


def test_cifar10_jpeg_row_shows_paper_and_diff_with_a_jpeg_verdict(tmp_path):
    """A 40-epoch resnet20_cifar10_jpeg row at the paper's CIFAR-10 figure: the paper and Δ are shown, but the
    verdict says what differs (JPEG copy, short schedule), never "within noise"."""
    runs, configs = _jpeg_runs(tmp_path / "runs"), _jpeg_configs(tmp_path)
    out = tmp_path / "report"
    result = write_report([runs], out, configs_dir=configs, plots=False)
    row = next(r for r in result["rows"] if r["recipe"] == "resnet20_cifar10_jpeg")
    assert row["dataset"] == "cifar10-jpeg"
    assert (row["paper"], row["paper_metric"]) == (pytest.approx(91.25), "cifar10/top1_err")
    assert row["ours_mean"] == pytest.approx(91.25) and row["diff"] == pytest.approx(0.0, abs=1e-6)
    assert row["verdict"] == "JPEG copy, short schedule"
    assert row["n_runs"] == 2 and row["seeds"] == "0,1" and row["epochs"] == "40"
    # The CSV and the Markdown carry the copy's label, never plain cifar10, and no pass/fail verdict.
    with (out / "results.csv").open(newline="") as f:
        csv_row = next(r for r in csv.DictReader(f) if r["recipe"] == "resnet20_cifar10_jpeg")
    assert csv_row["dataset"] == "cifar10-jpeg" and csv_row["verdict"] == "JPEG copy, short schedule"
    md = result["markdown"]
    main_table, _, jpeg = md.partition("#### CIFAR-10 as JPEG (cifar10-jpeg)")
    assert "resnet20" not in main_table and "lenet5_mnist" in main_table  # its own table, below the main one
    note = jpeg.strip().splitlines()[0]
    assert "JPEG" in note and "quality 75" in note and "lossy" in note
    assert "| Paper on CIFAR-10 (top-1 %) |" in jpeg
    assert "| resnet20 | resnet20_cifar10_jpeg | 272.47K | " in jpeg
    assert "| 91.25 ± 0.01 | 2 (0,1) | 91.25 | +0.00 | JPEG copy, short schedule | 40 | 25m 50s |" in jpeg
    assert "within noise" not in jpeg and "off by" not in jpeg
    measured = md.partition("Not measured yet")[0]
    assert "| cifar10 |" not in measured and "| cifar10_jpeg |" not in md
    # The preset is run; the CIFAR-10 preset is not (a run on the copy is no run on CIFAR-10).
    assert [p["experiment"] for p in result["pending"]] == ["resnet20_cifar10"]


def test_full_recipe_on_the_jpeg_copy_is_a_jpeg_copy_row(tmp_path):
    """experiment=resnet20_cifar10 data=cifar10_jpeg (182 epochs): "JPEG copy"; the CIFAR-10 preset stays pending."""
    run = make_run(tmp_path / "runs", "full/seed0", model="resnet20", data="cifar10_jpeg",
                   experiment="resnet20_cifar10", acc=0.9100)
    _set(run, max_epochs=182, epochs=182)
    result = write_report([tmp_path / "runs"], tmp_path / "report", configs_dir=_jpeg_configs(tmp_path),
                          plots=False)
    (row,) = result["rows"]
    assert (row["dataset"], row["recipe"], row["verdict"]) == ("cifar10-jpeg", "resnet20_cifar10", "JPEG copy")
    assert row["diff"] == pytest.approx(-0.25)
    assert "resnet20_cifar10" in {p["experiment"] for p in result["pending"]}
    pending = next(p for p in result["pending"] if p["experiment"] == "resnet20_cifar10_jpeg")
    assert pending["dataset"] == "cifar10-jpeg" and pending["paper_metric"] == "cifar10/top1_err"
    assert "| resnet20_cifar10_jpeg | resnet20 | cifar10-jpeg | 91.25 (on cifar10) | 40 | not run yet (CPU is " \
           "enough" in result["markdown"]


def test_wall_time_per_seed_and_resumed_seeds(tmp_path):
    """Wall time is the mean train_seconds over the seeds; a resumed seed makes it a lower bound (≥)."""
    runs = _jpeg_runs(tmp_path / "runs")
    rows = {r["recipe"]: r for r in report_rows(group_runs(find_runs([runs])), [])}
    assert rows["resnet20_cifar10_jpeg"]["wall_seconds"] == pytest.approx(1550.0)
    assert rows["resnet20_cifar10_jpeg"]["wall_resumed_runs"] == 0
    assert "≥" not in to_markdown(list(rows.values()))
    _set(runs / "resnet20_cifar10_jpeg" / "seed1", resumed_from="/x/checkpoints/last.ckpt")
    rows = report_rows(group_runs(find_runs([runs])), [])
    jpeg = next(r for r in rows if r["recipe"] == "resnet20_cifar10_jpeg")
    assert jpeg["wall_resumed_runs"] == 1
    # Without the full recipe among the presets the schedule cannot be judged, and the row says so.
    assert jpeg["verdict"] == "JPEG copy, schedule unknown"
    md = to_markdown(rows)
    assert "| 40 | ≥ 25m 50s |" in md and "counts only the segment that finished" in md
    assert "| Wall time |" in md and "| Wall time / seed |" in md


def test_options_added_later_and_left_off_do_not_split_a_recipe() -> None:
    """A run recorded before the EMA, mixup, CutMix and accumulation options existed and one recorded with
    them off hash alike; turning one on makes another recipe."""
    from zoo.report import config_hash

    old = {"config": {"seed": 0, "model": {"name": "resnet20"}, "optim": {"lr": 0.1},
                      "trainer": {"max_epochs": 40}}}
    new = {"config": {**old["config"], "seed": 1, "tags": [], "print_config": False,
                      "ema": {"enabled": False, "decay": 0.9998, "warmup": True}, "mixup": {"alpha": 0.0},
                      "cutmix": {"alpha": 0.0}, "mix_prob": 1.0,
                      "trainer": {"max_epochs": 40, "accumulate_grad_batches": 1}}}
    assert config_hash(old) == config_hash(new)
    for section, value in [("ema", {"enabled": True, "decay": 0.9998, "warmup": True}), ("mixup", {"alpha": 0.2}),
                           ("trainer", {"max_epochs": 40, "accumulate_grad_batches": 2})]:
        changed = {"config": {**new["config"], section: value}}
        assert config_hash(changed) != config_hash(old), section
