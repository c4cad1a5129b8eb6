"""``python -m zoo.bench``: every section on tiny sizes, the structure of its outputs, and its input errors.

Nothing here asserts on a timing: the checks are that the files are written, that the machine block
is there, that every requested section ran and has rows, and that each ratio is ``value_a / value_b``
of the rows it names. The data are the digits (scikit-learn) and the small MNIST-format fixture.
"""

from __future__ import annotations

import csv
import json
import math
import shlex
from pathlib import Path

import pytest
import torch

from zoo.bench import SECTIONS, BenchOptions, Report, Sample, interleave, main
from zoo.bench.core import CPU_FLAGS, Measurement, write_outputs

LIGHTNING_SECTIONS = ["loop", "tta"]
TIMING_SECTIONS = ["data", "models", "lenet", "throughput"]


def _read(out: Path) -> tuple[str, list[dict[str, str]], dict]:
    md = (out / "bench.md").read_text()
    with open(out / "bench.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return md, rows, json.loads((out / "bench.json").read_text())


def _check_structure(out: Path, sections: list[str], argv: list[str]) -> tuple[str, list[dict[str, str]], dict]:
    """The checks every run's outputs pass: files, machine block, sections, CSV = JSON, ratios = a / b."""
    md, rows, doc = _read(out)
    machine = doc["machine"]
    for key in ("cpu", "cpu_flags", "cores", "threads", "versions", "gpu", "date", "command", "device"):
        assert key in machine, key
    assert machine["cpu"] and set(machine["cpu_flags"]) == set(CPU_FLAGS)
    assert machine["threads"] == 1 and machine["cores"] >= 1
    assert {"torch", "torchvision", "lightning"} <= set(machine["versions"])
    assert machine["command"] == "python -m zoo.bench " + shlex.join(argv)
    assert "## Machine" in md and machine["cpu"] in md

    assert list(doc["sections"]) == sections
    for s in sections:
        assert doc["sections"][s]["status"] == "ok", doc["sections"][s]
        assert f"## {s}" in md
        assert any(r["section"] == s for r in rows), s

    assert len(rows) == len(doc["measurements"])
    assert list(rows[0]) == ["section", "name", "variant", "metric", "value", "unit", "ratio", "baseline", "n",
                             "min", "max", "note"]
    values = {(r["section"], r["name"], r["variant"], r["metric"]): r["value"] for r in rows}
    for r in rows:
        if r["ratio"]:
            b = float(values[(r["section"], r["name"], r["baseline"], r["metric"])])
            assert math.isclose(float(r["ratio"]), float(r["value"]) / b, rel_tol=1e-9)
    for r in doc["ratios"]:
        assert math.isclose(r["ratio"], r["value_a"] / r["value_b"], rel_tol=1e-12)
        assert r["a"] != r["b"]
    return md, rows, doc


def _variants(rows: list[dict[str, str]], section: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in rows:
        if r["section"] == section:
            out.setdefault(r["name"], set()).add(r["variant"])
    return out


def test_loop_and_tta_sections(tmp_path: Path) -> None:
    """The Lightning sections on the digits: the loop's three variants, the run's epochs and thresholds."""
    out = tmp_path / "bench"
    argv = ["--quick", "--sections", "loop,tta", "--out", str(out),
            "--loop-overrides", "model=lenet5_modern data=digits data.batch_size=32",
            "--tta-overrides", "experiment=lenet5_digits trainer.max_epochs=2", "--tta-thresholds", "5,100"]
    assert main(argv) == 0
    md, rows, doc = _check_structure(out, LIGHTNING_SECTIONS, argv)

    loop = [r for r in rows if r["section"] == "loop"]
    assert _variants(rows, "loop") == {
        "lenet5_modern digits b32": {"project", "plain", "plain_loader", "lightning_bare"}}
    assert {r["metric"] for r in loop} == {"cpu_ms", "wall_ms"}
    assert {r["baseline"] for r in loop if r["ratio"]} == {"plain"}
    assert {r["variant"] for r in loop if r["ratio"]} == {"project", "plain_loader", "lightning_bare"}
    assert all(int(r["n"]) == 2 for r in loop)  # --quick: 2 rounds
    assert [n.split(":")[0] for n in doc["notes"]["loop"] if "paired by round" in n] == \
        ["project / plain, paired by round", "lightning_bare / plain, paired by round"]

    tta = {(r["name"], r["metric"]): r for r in rows if r["section"] == "tta"}
    assert {("epoch 1", "val_acc"), ("epoch 2", "val_acc"), ("final", "test_acc")} <= set(tta)
    for e in ("epoch 1", "epoch 2"):
        assert 0 <= float(tta[(e, "val_acc")]["value"]) <= 100
    assert float(tta[("epoch 2", "elapsed_wall_s")]["value"]) >= float(tta[("epoch 1", "elapsed_wall_s")]["value"])
    # 5 % is reached at the first epoch; 100 % is never checked for a value: only that the row says when
    assert tta[("val_acc >= 5%", "epoch")]["value"] == "1.0"
    assert tta[("val_acc >= 5%", "elapsed_wall_s")]["value"] == tta[("epoch 1", "elapsed_wall_s")]["value"]
    reached = tta[("val_acc >= 100%", "epoch")]
    assert (reached["value"] == "") == ("not reached" in reached["note"])
    assert "Ratios" in md


def test_timing_sections(tmp_path: Path, mnist_root: Path) -> None:
    """data (MNIST-format fixture and synthetic CIFAR, 0 and 1 workers), models, lenet and throughput."""
    out = tmp_path / "bench"
    argv = ["--quick", "--sections", ",".join(TIMING_SECTIONS), "--out", str(out), "--data-root", str(mnist_root),
            "--data-overrides", "data.val_size=16", "--workers", "0,1", "--cifar-images", "256",
            "--models", "shufflenet_v2_x0_5", "--throughput-models", "lenet5_modern,resnet20", "--small-batch", "8"]
    assert main(argv) == 0
    md, rows, doc = _check_structure(out, TIMING_SECTIONS, argv)

    assert _variants(rows, "data") == {f"{d} workers={w}": {"zoo", "torchvision"}
                                       for d in ("mnist", "cifar_synthetic") for w in (0, 1)}
    assert {r["baseline"] for r in rows if r["section"] == "data" and r["ratio"]} == {"torchvision"}
    assert _variants(rows, "models") == {"shufflenet_v2_x0_5": {"zoo", "torchvision"}}
    assert _variants(rows, "lenet") == {"batch 32": {"lenet5", "lenet5_modern"},
                                        "batch 128": {"lenet5", "lenet5_modern"}}
    assert {r["variant"] for r in rows if r["section"] == "lenet" and r["ratio"]} == {"lenet5"}

    tp = [r for r in rows if r["section"] == "throughput"]
    assert {r["name"] for r in tp} == {"lenet5_modern", "resnet20"}
    infer = {r["variant"] for r in tp if r["metric"] == "infer_img_s"}
    train = {r["variant"] for r in tp if r["metric"] == "train_img_s"}
    assert infer == {"fp32", "bf16", "channels_last", "bf16_channels_last"}
    assert train == {"fp32", "bf16", "channels_last"}  # no --compile
    assert all(r["baseline"] == "fp32" for r in tp if r["ratio"])
    assert doc["options"]["quick"] is True and doc["options"]["workers"] == [0, 1]


def test_throughput_compile_variant_notes_its_compilation_time(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """With --compile the throughput section adds a ``compile`` training variant and notes how long its first
    step (the compilation) took; a model that fails to compile is noted and left out. torch.compile is
    replaced by stand-ins here (a real compilation takes tens of seconds)."""
    class Broken(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("stand-in compiler error")

    def fake_compile(model: torch.nn.Module, **kwargs: object) -> torch.nn.Module:
        return Broken(model) if type(model).__name__ == "ResNet" else model

    monkeypatch.setattr(torch, "compile", fake_compile)
    out = tmp_path / "bench"
    argv = ["--quick", "--sections", "throughput", "--out", str(out), "--throughput-models", "lenet5_modern,resnet20",
            "--small-batch", "4", "--compile"]
    assert main(argv) == 0
    md, rows, doc = _check_structure(out, ["throughput"], argv)
    train = {(r["name"], r["variant"]) for r in rows if r["metric"] == "train_img_s"}
    assert ("lenet5_modern", "compile") in train and ("resnet20", "compile") not in train
    notes = doc["notes"]["throughput"]
    first = [n for n in notes if "first training step" in n]
    assert len(first) == 1 and first[0].startswith("lenet5_modern: ") and " s wall, " in first[0]
    assert any(n.startswith("resnet20: torch.compile failed (RuntimeError: stand-in compiler error)") for n in notes)


def test_data_without_mnist_skips_it_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no MNIST found, the data section times the synthetic CIFAR part only and says why."""
    from zoo.bench import cli

    monkeypatch.setattr(cli, "default_data_root", lambda: None)
    out = tmp_path / "bench"
    assert main(["--quick", "--sections", "data", "--out", str(out), "--workers", "0", "--cifar-images", "128"]) == 0
    md, rows, doc = _read(out)
    assert {r["name"] for r in rows} == {"cifar_synthetic workers=0"}
    assert any("MNIST skipped" in n for n in doc["notes"]["data"]) and "MNIST skipped" in md


def test_interleave_runs_rounds_in_order_and_discards_warmup() -> None:
    calls: list[str] = []

    def sampler(name: str, value: float):
        def sample() -> Sample:
            calls.append(name)
            return Sample(value * len(calls), value)

        return sample

    got = interleave({"a": sampler("a", 1.0), "b": sampler("b", 2.0)}, repeats=3, warmup=2)
    assert calls == ["a", "b"] * 5
    assert [s.cpu for s in got["a"]] == [5.0, 7.0, 9.0]  # rounds 3..5: calls 5, 7, 9
    assert [s.cpu for s in got["b"]] == [12.0, 16.0, 20.0]


def test_paired_ratios_divide_the_samples_of_each_round() -> None:
    """Round by round: a drift that slows both sides alike leaves every paired ratio at 1.2, while the medians
    of the two sides come from different rounds."""
    from zoo.bench.core import paired_ratios

    plain = [Sample(t, 2 * t) for t in (1.0, 3.0, 2.0, 5.0, 4.0)]
    project = [Sample(1.2 * p.cpu, 2.4 * p.cpu) for p in plain]
    assert paired_ratios(project, plain) == "cpu 1.200x (1.200-1.200), wall 1.200x (1.200-1.200), " \
                                             "median (quartiles) of 5 rounds"
    uneven = [Sample(c, c) for c in (1.0, 1.1, 1.3, 1.6, 2.0)]
    ones = [Sample(1.0, 1.0)] * 5
    assert paired_ratios(uneven, ones).startswith("cpu 1.300x (1.100-1.600)")
    assert paired_ratios([Sample(2.0, 3.0)], [Sample(1.0, 1.0)]) == "cpu 2.000x, wall 3.000x, median (quartiles) " \
                                                                   "of 1 round"


def test_ratios_are_value_a_over_value_b(tmp_path: Path) -> None:
    report = Report(BenchOptions(sections=["models"]), ["--sections", "models"])
    report.add_timings("models", "net", {"zoo": [Sample(0.003, 0.006)] * 3,
                                         "torchvision": [Sample(0.002, 0.004), Sample(0.002, 0.005),
                                                         Sample(0.004, 0.003)]})
    report.add(Measurement("models", "other", "zoo", "cpu_ms", 1.0, "ms"))  # no baseline row: no ratio
    report.set_ratios("models", "torchvision")
    by = {(m.name, m.variant, m.metric): m for m in report.measurements}
    assert by[("net", "torchvision", "cpu_ms")].value == pytest.approx(2.0)  # medians, in ms
    assert by[("net", "zoo", "cpu_ms")].ratio == pytest.approx(3.0 / 2.0)
    assert by[("net", "zoo", "wall_ms")].ratio == pytest.approx(6.0 / 4.0)
    assert by[("net", "torchvision", "cpu_ms")].ratio is None
    assert by[("other", "zoo", "cpu_ms")].ratio is None
    assert [(r["a"], r["b"], r["metric"]) for r in report.ratios()] == [("zoo", "torchvision", "cpu_ms"),
                                                                        ("zoo", "torchvision", "wall_ms")]
    report.sections["models"] = {"status": "ok", "seconds": 0.0}
    paths = write_outputs(report, tmp_path)
    assert all(p.is_file() for p in paths.values())
    assert "(1.5x)" in paths["md"].read_text()


BAD = [
    (["--sections", "loop,lop"], ["--sections", "'lop'", "loop, data, models, lenet, throughput, tta", "e.g."]),
    (["--sections", "data", "--data-root", "{tmp}/missing"], ["--data-root", "missing", "not a folder", "e.g."]),
    (["--sections", "data", "--data-root", "{tmp}"], ["--data-root", "MNIST/raw", "e.g."]),
    (["--sections", "tta", "--data-root", "{tmp}"], ["--data-root", "experiment=lenet5_mnist", "e.g."]),
    (["--models", "resnet20"], ["--models", "'resnet20'", "no torchvision twin", "resnet18", "e.g."]),
    (["--throughput-models", "lenett5"], ["--throughput-models", "'lenett5'", "lenet5", "e.g."]),
    (["--sections", "loop", "--loop-overrides", "model=nosuch"], ["--loop-overrides", "model=nosuch", "e.g."]),
    (["--repeats", "0"], ["--repeats", "'0'", ">= 1", "e.g."]),
    (["--workers", "0,x"], ["--workers", "'0,x'", "e.g. 0,2"]),
    (["--device", "tpu"], ["--device", "'tpu'", "cpu, cuda", "e.g."]),
]


@pytest.mark.parametrize("argv,words", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_refused_before_any_work(argv: list[str], words: list[str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--out", str(out)]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err, (w, err)
    assert not out.exists()  # nothing ran


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_a_gpu_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--device", "cuda", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "--device" in err and "'cuda'" in err and "CUDA is not available" in err and "--device cpu" in err


def test_every_section_is_documented_and_known() -> None:
    from zoo.bench.core import SECTION_DOC

    assert set(SECTION_DOC) == set(SECTIONS)
