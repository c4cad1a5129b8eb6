"""The ``zoo`` command (zoo/cli.py): train, eval, predict, list and the delegated tools, in-process
(``zoo.cli.main([...])``), plus one run of the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchvision.io import write_jpeg, write_png

from hydra_helpers import ROOT, make_cfg
from zoo.cli import main
from zoo.training import train

MNIST_ROOT = Path(os.environ.get("ZOO_TEST_MNIST", "/work/shared/data"))
SHIPPED_LENET = ROOT / "zoo" / "pretrained" / "lenet5-mnist.safetensors"


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Two epochs of LeNet-5 on the digits: a run folder with results.json, best-*.ckpt, last.ckpt, model.safetensors."""
    run = tmp_path_factory.mktemp("cli") / "run"
    return run, train(make_cfg(run, ["model=lenet5", "trainer.max_epochs=2"]))


def _err_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line
    return err[0]


# ---------------------------------------------------------------------------------------------- eval


def test_eval_of_a_run_folder_reproduces_its_test_acc_exactly(digits_run, capsys):
    run, results = digits_run
    assert main(["eval", f"ckpt={run}"]) == 0
    out = capsys.readouterr().out
    record = json.loads((run / "eval.json").read_text())
    assert record["test/acc"] == results["test/acc"]  # the same float, not approximately
    assert record["matches_run"] is True and Path(record["checkpoint"]).name == Path(results["best_checkpoint"]).name
    assert record["images"] == 360 and record["test/loss"] > 0 and record["test/acc5"] >= record["test/acc"]
    assert f"test/acc    {results['test/acc']!r}" in out and "reproduced exactly" in out

    # the checkpoint file itself (--ckpt form), then the validation split: new records, none overwritten
    first = (run / "eval.json").read_text()
    assert main(["eval", "--ckpt", results["best_checkpoint"]]) == 0
    assert json.loads((run / "eval-2.json").read_text())["test/acc"] == results["test/acc"]
    assert main(["eval", str(run), "split=val", "--model", "lenet5"]) == 0
    val = json.loads((run / "eval-3.json").read_text())
    assert val["split"] == "val" and val["images"] == 180 and 0 <= val["val/acc"] <= 1
    assert (run / "eval.json").read_text() == first


def test_eval_bad_input_exits_2_with_one_line(digits_run, tmp_path, capsys):
    run, _ = digits_run
    before = sorted(run.glob("eval*.json"))
    assert main(["eval", f"ckpt={tmp_path / 'missing'}"]) == 2
    line = _err_line(capsys)
    assert line.startswith("zoo eval: error: ckpt=") and "no such file" in line and "e.g. ckpt=" in line
    assert main(["eval", f"ckpt={run}", "--model", "resnet20"]) == 2
    line = _err_line(capsys)
    assert "holds model 'lenet5'" in line and "--model lenet5" in line
    assert main(["eval", f"ckpt={run}", "data.rooot=/data"]) == 2
    line = _err_line(capsys)
    assert "data.rooot" in line and "Did you mean: root?" in line
    assert main(["eval"]) == 2
    assert "ckpt is required" in _err_line(capsys)
    assert sorted(run.glob("eval*.json")) == before  # nothing written


# ---------------------------------------------------------------------------------------------- predict


def test_predict_on_the_runs_own_test_images_gives_its_test_acc(digits_run, tmp_path, capsys):
    """The digits' 360 test images as 8x8 PNG files: predict's decoding, resizing and normalisation are the
    evaluation's, so its top-1 answers score the run's test/acc."""
    from zoo.data.digits import DigitsDataModule, load_digits_uint8

    run, results = digits_run
    images, labels = load_digits_uint8()
    folder = tmp_path / "digits"
    folder.mkdir()
    truth = {}
    for i in DigitsDataModule().split_indices()["test"].tolist():
        f = folder / f"{i:04d}.png"
        write_png(images[i], str(f))  # (1, 8, 8) uint8
        truth[str(f)] = str(int(labels[i]))
    assert main(["predict", str(run), str(folder), "--json", "--topk", "1"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert len(preds) == 360
    correct = sum(p["top"][0]["class"] == truth[p["file"]] for p in preds)
    assert correct == round(results["test/acc"] * 360), (correct, results["test/acc"])


@pytest.mark.skipif(not (MNIST_ROOT / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file(),
                    reason=f"real MNIST not found in {MNIST_ROOT}/MNIST/raw")
def test_predict_real_mnist_pngs_with_the_shipped_lenet5(tmp_path, capsys):
    import numpy as np
    import torchvision

    test = torchvision.datasets.MNIST(root=str(MNIST_ROOT), train=False, download=False)
    truth = {}
    for i in range(20):
        img, label = test[i]
        f = tmp_path / f"mnist{i:02d}.png"
        write_png(torch.from_numpy(np.array(img))[None], str(f))  # (1, 28, 28): padded to 32 as in training
        truth[str(f)] = label
    assert main(["predict", str(SHIPPED_LENET), str(tmp_path), "--json", "--topk", "3"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert [len(p["top"]) for p in preds] == [3] * 20
    correct = sum(p["top"][0]["index"] == truth[p["file"]] for p in preds)
    assert correct >= 18, correct
    assert preds[0]["top"][0]["class"] == "7 - seven"

    # the text form: the file, then the top-k lines with percentages
    assert main(["predict", "lenet5.mnist", str(tmp_path / "mnist00.png"), "--topk", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("mnist00.png") and "7 - seven" in lines[1] and "%" in lines[1] and len(lines) == 3


def test_predict_converts_a_colour_jpeg_of_another_size_for_a_grey_model(tmp_path, capsys):
    # a bright stroke on dark, 45x60 RGB: decoded as grey, resized to MNIST's 28 px, padded to 32
    img = torch.zeros(3, 45, 60, dtype=torch.uint8)
    img[:, 8:38, 27:34] = torch.tensor([255, 200, 120], dtype=torch.uint8).view(3, 1, 1)
    f = tmp_path / "one.jpg"
    write_jpeg(img, str(f), quality=95)
    assert main(["predict", "lenet5.mnist", str(f), "--json"]) == 0
    (pred,) = json.loads(capsys.readouterr().out)
    probs = [t["prob"] for t in pred["top"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True) and 0.99 < sum(probs) <= 1.0 + 1e-6
    assert pred["top"][0]["class"] == "1 - one"

    from zoo.predict import Preprocess, read_image

    grey = read_image(f, 1)
    assert grey.shape == (1, 45, 60) and grey.dtype == torch.uint8
    pre = Preprocess(in_chans=1, image_size=32, mean=(0.1,), std=(0.3,), resize_mode="pad", native_size=28)
    fitted = pre.fit(grey)
    assert fitted.shape == (1, 32, 32) and fitted[:, :2].sum() == 0 and fitted[:, :, -2:].sum() == 0  # the pad


def test_predict_bad_input_names_it(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not an image")
    assert main(["predict", "lenet5.mnist", str(bad)]) == 2
    line = _err_line(capsys)
    assert str(bad) in line and "cannot be decoded" in line
    assert main(["predict", "lenet5.mnst", str(bad)]) == 2
    line = _err_line(capsys)
    assert "lenet5.mnst" in line and "Did you mean: lenet5.mnist" in line
    assert main(["predict", "lenet5.mnist", str(tmp_path / "nope.png")]) == 2
    assert "nope.png: no such file" in _err_line(capsys)
    assert main(["predict", "lenet5.mnist", str(bad), "--model", "resnet20"]) == 2
    assert "are of model 'lenet5'" in _err_line(capsys)
    assert main(["predict", "lenet5.mnist", str(bad), "--topk", "0"]) == 2
    assert "--topk" in _err_line(capsys)


# ---------------------------------------------------------------------------------------------- train, list, tools


def test_train_runs_the_hydra_entry_point_with_its_exit_codes(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "debug=fdr", "model=lenet5", f"hydra.run.dir={run}", f"paths.log_dir={tmp_path}"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["model"] == "lenet5" and "test/acc: " in capsys.readouterr().out
    assert main(["train", "trainer.max_epochs=abc", f"paths.log_dir={tmp_path}"]) == 2
    assert "trainer.max_epochs='abc'" in capsys.readouterr().err


def test_list_shows_params_macs_paper_and_year(capsys):
    assert main(["list", "resnet2*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["model", "params", "MACs", "input", "year", "paper"]
    (row,) = [ln for ln in out[1:] if ln.startswith("resnet20 ")]
    assert "269,722" in row and " M " in row and "2015" in row and "He et al." in row
    assert main(["list", "lenet*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {"lenet5", "lenet5_modern"} and rows[0]["params"] == 60_000
    assert main(["list", "renset*"]) == 2
    assert "matches no registered model" in _err_line(capsys)


def test_unknown_command_lists_the_commands_and_the_closest(capsys):
    assert main(["trian", "model=lenet5"]) == 2
    line = _err_line(capsys)
    assert "unknown command 'trian'" in line and "Did you mean: train?" in line
    assert "train, eval, predict, list, summary, report, bench, export" in line
    assert main([]) == 2
    assert main(["--help"]) == 0 and "predict" in capsys.readouterr().out


def test_the_tools_are_delegated(capsys):
    assert main(["summary", "lenet5"]) == 0
    assert "Total params: 60,000" in capsys.readouterr().out
    for tool in ("report", "bench", "export"):
        assert main([tool, "--help"]) == 0, tool
        assert "usage:" in capsys.readouterr().out
    assert main(["summary", "lenett5"]) == 2


def test_the_installed_console_script():
    exe = Path(sys.executable).parent / "zoo"
    script = str(exe) if exe.is_file() else shutil.which("zoo")
    if script is None:
        pytest.skip("the zoo console script is not installed: pip install -e . (pyproject.toml [project.scripts])")
    r = subprocess.run([script, "list", "resnet2*"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split("\n")[1].startswith("resnet20 ") and "He et al." in r.stdout


def test_installed_package_trains_outside_the_checkout(tmp_path):
    """``pip install .`` (into a temporary folder), then ``zoo train`` in a folder outside the checkout: the configs
    come from the package (pkg://zoo.configs) and the run is written under that folder's outputs/."""
    import subprocess
    import sys

    site, work = tmp_path / "site", tmp_path / "work"
    work.mkdir()
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(root)], check=True, capture_output=True, timeout=600)
    assert (site / "zoo" / "configs" / "train.yaml").is_file() and (site / "zoo" / "configs" / "model").is_dir()
    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_ROOT", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    script = site / "bin" / "zoo"
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "zoo.cli"]
    out = subprocess.run([*cmd, "train", "debug=fdr", "model=lenet5"], cwd=work, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    (results,) = list(work.glob("outputs/**/results.json"))
    data = json.loads(results.read_text())
    assert data["model"] == "lenet5" and data["status"] == "completed"
    assert str(site) in subprocess.run([sys.executable, "-c", "import zoo; print(zoo.__file__)"], cwd=work, env=env,
                                       capture_output=True, text=True).stdout
