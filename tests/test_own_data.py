"""The README's "Your own data" walk-through, run on a tiny generated ImageFolder tree: train, eval, predict
and export, each through the ``zoo`` command line (in-process)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conftest import write_jpeg_tree
from zoo.cli import main


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "my_tree"
    write_jpeg_tree(root / "train", ("circle", "square", "triangle"), n=30, seed=0)
    write_jpeg_tree(root / "val", ("circle", "square", "triangle"), n=8, seed=5)
    return root


def test_your_own_data_in_four_commands(tree, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ZOO_ROOT", raising=False)
    run = tmp_path / "runs" / "my_model"
    # 1. train (the README's command, with a short budget and a small model for the test)
    code = main(["train", "data=imagefolder", "data.root=my_tree", "data.in_memory=true", "data.image_size=null",
                 "model=lenet5_modern", f"hydra.run.dir={run}", "trainer.max_epochs=3", "data.batch_size=16",
                 "data.val_size=9"])
    assert code == 0
    results = json.loads((run / "results.json").read_text())
    assert results["data"] == "imagefolder" and results["config"]["model"]["num_classes"] == 3
    capsys.readouterr()
    # 2. eval: the run's test accuracy, exactly
    assert main(["eval", f"ckpt={run}"]) == 0
    assert "reproduced exactly" in capsys.readouterr().out
    assert json.loads((run / "eval.json").read_text())["test/acc"] == results["test/acc"]
    # 3. predict: class names and probabilities for image files and folders
    assert main(["predict", str(run), "my_tree/val/square/0000.jpg", "my_tree/val/circle", "--topk", "2",
                 "--json"]) == 0
    predictions = json.loads(capsys.readouterr().out)
    assert len(predictions) == 9
    for p in predictions:
        top = p["top"]
        assert len(top) == 2 and {t["class"] for t in top} <= {"circle", "square", "triangle"}
        assert 0.0 <= top[1]["prob"] <= top[0]["prob"] <= 1.0
    # 4. export: ONNX, checked against the model, and it runs in onnxruntime
    assert main(["export", str(run), "--format", "onnx", "--out", "my_model.onnx"]) == 0
    session = ort.InferenceSession(str(tmp_path / "my_model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.RandomState(0).randn(2, 3, 32, 32).astype(np.float32)
    (logits,) = session.run(None, {session.get_inputs()[0].name: x})
    assert logits.shape == (2, 3)
    import zoo

    expected = zoo.load_checkpoint(run)(torch.from_numpy(x)).detach().numpy()
    assert np.allclose(logits, expected, atol=1e-4)
