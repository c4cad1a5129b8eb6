"""The weights shipped with the package: they load offline, and on real MNIST each reproduces its run's test/acc.

The shipped files are the tested weights of the seed-0 runs behind the README table's MNIST rows
(``results/runs/<preset>/seed0``), written by ``python scripts/ship_weights.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

import zoo
from zoo.weights import list_weights, resolve_weights

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {  # registered model -> the table preset whose seed-0 run it is
    "lenet5": "lenet5_mnist", "lenet5_modern": "lenet5_modern_mnist", "resnet20": "resnet20_mnist",
    "gated_cnn": "gated_cnn_mnist", "gated_tcn": "gated_tcn_mnist", "vit_tiny_patch4": "vit_tiny_mnist",
}


def test_every_mnist_row_model_ships_its_weights():
    assert sorted(list_weights()) == sorted(f"{m}.mnist" for m in SHIPPED)
    for model, preset in SHIPPED.items():
        wf = resolve_weights(model, "mnist")
        assert wf.path.stat().st_size <= 2 * 1024 * 1024
        run = json.loads((ROOT / "results" / "runs" / preset / "seed0" / "results.json").read_text())
        assert wf.meta["metrics"]["test/acc"] == run["test/acc"], model
        assert wf.meta["source"].startswith(f"{preset}/seed0: {run['command']}")
        assert wf.meta["classes"][0] == "0 - zero" and len(wf.meta["classes"]) == 10


@pytest.mark.parametrize("model", sorted(SHIPPED))
def test_shipped_weights_load_offline(model):
    net = zoo.create_model(model, weights="mnist").eval()
    c, h, w = resolve_weights(model, "mnist").meta["input_size"]
    with torch.no_grad():
        assert net(torch.zeros(2, c, h, w)).shape == (2, 10)


@pytest.mark.parametrize("model", sorted(SHIPPED))
def test_shipped_weights_reproduce_the_table_on_real_mnist(model, real_mnist_root):
    """Each shipped model, with its run's preprocessing, gets its run's test accuracy on the 10,000 test images."""
    preset = SHIPPED[model]
    run_dir = ROOT / "results" / "runs" / preset / "seed0"
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    data_cfg = OmegaConf.merge({"paths": {"data_dir": str(real_mnist_root), "root_dir": str(ROOT)}},
                               {"data": cfg.data}, {"data": {"root": str(real_mnist_root)}}).data
    dm = hydra.utils.instantiate(data_cfg)
    dm.setup("test")
    net = zoo.create_model(model, weights="mnist").eval()
    torch.set_num_threads(1)
    correct = 0
    with torch.no_grad():
        for x, y in dm.test_dataloader():
            correct += int((net(x).argmax(1) == y).sum())
    acc = torch.tensor(correct / len(dm.test_set), dtype=torch.float32).item()
    expected = json.loads((run_dir / "results.json").read_text())["test/acc"]
    assert acc == expected, (model, correct)


def test_readme_lists_each_shipped_model_with_its_run_and_accuracy():
    """The README's table of shipped weights gives each file's own test/acc (to 0.01 %) and seed-0 run."""
    import re

    text = (ROOT / "README.md").read_text()
    rows = dict((m, (float(acc), run)) for m, acc, run in
                re.findall(r"^\| `(\w+)` \| (\d+\.\d+) % \| `(results/runs/\w+/seed0)` \|$", text, flags=re.M))
    assert sorted(rows) == sorted(SHIPPED), "the README's shipped-weights table lists other models"
    for model, preset in SHIPPED.items():
        acc, run = rows[model]
        assert run == f"results/runs/{preset}/seed0", model
        expected = round(100 * resolve_weights(model, "mnist").meta["metrics"]["test/acc"], 2)
        assert acc == expected, f"README gives {model} {acc} %, its weights {expected} %"
