"""Trained models leave their run folders as plain models: zoo.load_checkpoint, zoo.save_weights, weights=<file>."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import hydra
import pytest
import torch

import zoo
from hydra_helpers import make_cfg
from zoo.trained import CheckpointError, export_weights, load_checkpoint, load_checkpoint_file
from zoo.training import ClassificationModule, train
from zoo.weights import WeightsError, resolve_weights, save_weights


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run = tmp_path_factory.mktemp("trained") / "run"
    cfg = make_cfg(run, ["trainer.max_epochs=2", "model.dropout=0.1", "logger=csv"])
    return run, train(cfg)


def _test_set(run: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    dm = hydra.utils.instantiate(OmegaConf.merge({"paths": {"data_dir": "data", "root_dir": "."}}, cfg).data)
    dm.setup("test")
    return dm.test_set.images, dm.test_set.targets


def test_every_run_writes_its_tested_weights(trained_run):
    run, res = trained_run
    wf = resolve_weights("lenet5_modern", run / "checkpoints" / "model.safetensors")
    assert wf.meta["metrics"]["test/acc"] == res["test/acc"]
    assert wf.kwargs == {k: v for k, v in res["config"]["model"].items() if k not in ("_target_", "name")}
    assert wf.meta["input_size"] == [1, 32, 32] and wf.meta["classes"] == [str(i) for i in range(10)]
    assert len(wf.meta["mean"]) == 1 and len(wf.meta["sha256"]) == 64


@pytest.mark.parametrize("source", ["run_dir", "best_ckpt", "last_ckpt", "safetensors"])
def test_load_checkpoint_equals_the_training_module(trained_run, source):
    run, res = trained_run
    path = {"run_dir": run, "best_ckpt": Path(res["best_checkpoint"]), "last_ckpt": run / "checkpoints" / "last.ckpt",
            "safetensors": run / "checkpoints" / "model.safetensors"}[source]
    model = load_checkpoint(path)
    assert isinstance(model, torch.nn.Module) and not isinstance(model, ClassificationModule) and not model.training
    ckpt = load_checkpoint_file(res["best_checkpoint"] if source != "last_ckpt" else path)
    kwargs = ckpt["zoo"]["model_kwargs"]
    module = ClassificationModule(zoo.create_model("lenet5_modern", **kwargs), optimizer=partial(torch.optim.Adam))
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    x, y = _test_set(run)
    with torch.no_grad():
        plain, trained = model(x), module(x)
    assert torch.equal(plain, trained)
    if source != "last_ckpt":  # the tested weights reproduce the run's test accuracy
        assert (plain.argmax(1) == y).float().mean().item() == pytest.approx(res["test/acc"], abs=1e-6)


def test_create_model_loads_a_weights_file_by_its_sidecar(trained_run, tmp_path):
    run, res = trained_run
    src = run / "checkpoints" / "model.safetensors"
    model = zoo.create_model("lenet5_modern", weights=str(src))
    ref = load_checkpoint(src)
    x = torch.randn(4, 1, 32, 32)
    model.eval()
    assert torch.equal(model(x), ref(x))
    # another model's weights, an altered file, a missing sidecar: each named
    with pytest.raises(WeightsError, match="are of model 'lenet5_modern', not 'lenet5'"):
        zoo.create_model("lenet5", weights=str(src))
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(src.read_bytes()[:-8] + b"\0" * 8)
    (tmp_path / "model.json").write_text((run / "checkpoints" / "model.json").read_text())
    with pytest.raises(WeightsError, match=r"has SHA-256 .* but its sidecar records"):
        zoo.create_model("lenet5_modern", weights=str(bad))
    (tmp_path / "model.json").unlink()
    with pytest.raises(WeightsError, match="has no sidecar model.json"):
        zoo.create_model("lenet5_modern", weights=str(bad))
    with pytest.raises(WeightsError, match="no shipped weights 'imagenet'"):
        zoo.create_model("lenet5_modern", weights="imagenet")


def test_save_weights_round_trip(tmp_path):
    model = zoo.create_model("resnet20", num_classes=10).eval()
    path = save_weights(model, tmp_path / "r20.safetensors", name="resnet20", kwargs={"num_classes": 10},
                        metrics={"test/acc": 0.5})
    meta = json.loads((tmp_path / "r20.json").read_text())
    assert meta["model"] == "resnet20" and meta["metrics"] == {"test/acc": 0.5}
    again = load_checkpoint(path)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), again(x))


def test_export_weights_of_a_run(trained_run, tmp_path):
    run, res = trained_run
    out = export_weights(run, tmp_path / "exported.safetensors")
    assert resolve_weights("lenet5_modern", out).meta["metrics"]["test/acc"] == res["test/acc"]


def test_a_foreign_or_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.ckpt")
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="has no record of its model"):
        load_checkpoint(tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="has no checkpoints/model.safetensors"):
        load_checkpoint(tmp_path)
