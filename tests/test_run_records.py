"""Runs that can be trusted: the run folder's records, resuming with changed settings, divergence, safe loading.

Each test trains modern LeNet-5 on the bundled digits for a few epochs in-process (a second or two).
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pytest
import torch

from hydra_helpers import make_cfg
from zoo.training import CheckpointError, train
from zoo.training.checkpoint import AtomicCheckpointIO, load_checkpoint_file
from zoo.training.config_check import ConfigError
from zoo.training.records import RunExistsError
from zoo.training.run import TrainingDiverged

FAST = ["trainer.max_epochs=2", "logger=csv"]


def _results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def _lrs(run: Path) -> list[float]:
    """The learning rate at the start of each epoch (LearningRateMonitor), over the csv logs of every segment."""
    import csv

    out = []
    for path in [run / "csv" / "metrics.csv", *sorted((run / "csv").glob("resume*/metrics.csv"))]:
        with path.open() as f:
            out += [float(row["lr-Adam"]) for row in csv.DictReader(f) if row.get("lr-Adam")]
    return out


# ---------------------------------------------------------------------------- checkpoints


def test_last_ckpt_is_the_last_epoch_even_when_val_acc_does_not_improve(tmp_path):
    """With save_top_k=1 Lightning's save_last kept the last *improving* epoch; last.ckpt is now every epoch's."""
    run = tmp_path / "run"
    # lr so small that val/acc stays flat after the first epoch: the best checkpoint stays at epoch 1
    res = train(make_cfg(run, ["trainer.max_epochs=4", "optim.lr=1.0e-7", "sched=none"]))
    last = load_checkpoint_file(run / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 3 and last["global_step"] == res["global_steps"] == 4 * 20
    assert res["status"] == "completed"


def test_mid_epoch_checkpoints_every_n_steps(tmp_path):
    run = tmp_path / "run"
    saved = []
    real = AtomicCheckpointIO.save_checkpoint

    def spy(self, checkpoint, path, storage_options=None):
        if Path(path).name == "last.ckpt":
            saved.append(checkpoint["global_step"])
        return real(self, checkpoint, path, storage_options)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AtomicCheckpointIO, "save_checkpoint", spy)
        train(make_cfg(run, [*FAST, "callbacks.last_checkpoint.every_n_train_steps=6"]))
    # 20 steps per epoch: mid-epoch at 6, 12, 18, the epoch end at 20; then 24, 30, 36, 40
    assert saved == [6, 12, 18, 20, 24, 30, 36, 40]


def test_files_get_normal_permissions(tmp_path):
    run = tmp_path / "run"
    old = os.umask(0o022)
    try:
        train(make_cfg(run, FAST))
    finally:
        os.umask(old)
    for f in [run / "results.json", run / "segments.json", *(run / "checkpoints").glob("*.ckpt")]:
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


# ---------------------------------------------------------------------------- run folders and records


def test_a_folder_with_finished_results_is_not_trained_into_again(tmp_path):
    run = tmp_path / "run"
    first = train(make_cfg(run, FAST))
    with pytest.raises(RunExistsError, match=r"(?s)already holds finished results.*ckpt_path=last.*overwrite=true"):
        train(make_cfg(run, FAST))
    assert _results(run)["test/acc"] == first["test/acc"]  # untouched
    again = train(make_cfg(run, [*FAST, "overwrite=true", "seed=1"]))
    assert again["seed"] == 1 and [s["index"] for s in again["segments"]] == [1]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == \
        sorted({"last.ckpt", Path(again["best_checkpoint"]).name, "model.safetensors", "model.json"})


def test_a_folder_with_an_unfinished_run_is_not_trained_into_either(tmp_path):
    run = tmp_path / "run"
    train(make_cfg(run, FAST))
    (run / "results.json").unlink()  # as after a kill
    with pytest.raises(RunExistsError, match="checkpoints of an unfinished run"):
        train(make_cfg(run, FAST))


def test_a_resume_keeps_every_earlier_record(tmp_path):
    run = tmp_path / "run"
    r1 = train(make_cfg(run, FAST))
    config_1 = (run / ".hydra" / "config.yaml").read_text()
    r2 = train(make_cfg(run, ["trainer.max_epochs=3", "logger=csv", "ckpt_path=last"]))
    assert r2["epochs"] == 3 and r2["segment"] == 2
    assert json.loads((run / "results-1.json").read_text())["test/acc"] == r1["test/acc"]
    assert (run / ".hydra" / "config.yaml").read_text() == config_1
    assert "max_epochs: 3" in (run / ".hydra-2" / "config.yaml").read_text()
    assert [s["status"] for s in r2["segments"]] == ["completed", "completed"]
    assert r2["segments"][1]["changes"] == {"trainer.max_epochs": {"old": 2, "new": 3}}
    assert (run / "csv" / "metrics.csv").is_file() and (run / "csv" / "resume1" / "metrics.csv").is_file()


def test_ckpt_path_last_without_a_checkpoint_here_lists_the_runs_to_resume(tmp_path):
    earlier = tmp_path / "earlier"
    train(make_cfg(earlier, FAST))
    with pytest.raises(CheckpointError) as info:
        train(make_cfg(tmp_path / "new", [*FAST, "ckpt_path=last"]))
    msg = str(info.value)
    assert "has no checkpoints/last.ckpt" in msg and str(earlier) in msg and "epoch 2" in msg
    assert f"python train.py trainer.max_epochs=2 logger=csv hydra.run.dir={earlier} ckpt_path=last" in msg
    assert not (tmp_path / "new" / "checkpoints").exists()  # nothing was trained, nothing continued


def test_a_relative_path_that_starts_with_http_is_a_path(tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(make_cfg(run, FAST))
    (tmp_path / "http_runs").mkdir()
    (run / "checkpoints" / "last.ckpt").rename(tmp_path / "http_runs" / "last.ckpt")
    monkeypatch.chdir(tmp_path)
    res = train(make_cfg(tmp_path / "other", ["trainer.max_epochs=3", "logger=csv", "ckpt_path=http_runs/last.ckpt"]))
    assert res["resumed_from"] == str(tmp_path / "http_runs" / "last.ckpt") and res["epochs"] == 3


# ---------------------------------------------------------------------------- resuming with changed settings


def test_a_new_lr_applies_from_the_resume(tmp_path):
    run = tmp_path / "run"
    train(make_cfg(run, [*FAST, "sched=none"]))
    res = train(make_cfg(run, ["trainer.max_epochs=3", "logger=csv", "sched=none", "optim.lr=1.0e-4",
                               "ckpt_path=last"]))
    assert _lrs(run) == [1e-3, 1e-3, 1e-4]
    assert res["segments"][1]["changes"]["optim.lr"] == {"old": 1e-3, "new": 1e-4}
    last = load_checkpoint_file(run / "checkpoints" / "last.ckpt")
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-4)


def test_a_longer_cosine_run_is_replanned_and_never_climbs_back(tmp_path):
    run = tmp_path / "run"
    train(make_cfg(run, FAST))
    train(make_cfg(run, ["trainer.max_epochs=4", "logger=csv", "ckpt_path=last"]))
    # epoch starts: 1e-3, 5e-4 (step 20 of 40); resumed over 80 steps: step 40 of 80, step 60 of 80
    assert _lrs(run) == pytest.approx([1e-3, 5e-4, 5e-4, 1e-3 * (1 + math.cos(math.pi * 60 / 80)) / 2])
    last = load_checkpoint_file(run / "checkpoints" / "last.ckpt")
    assert last["lr_schedulers"][0]["T_max"] == 4 * 20
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_a_new_weight_decay_is_applied(tmp_path):
    run = tmp_path / "run"
    train(make_cfg(run, FAST))
    train(make_cfg(run, ["trainer.max_epochs=3", "logger=csv", "optim.weight_decay=0.01", "ckpt_path=last"]))
    last = load_checkpoint_file(run / "checkpoints" / "last.ckpt")
    assert last["optimizer_states"][0]["param_groups"][0]["weight_decay"] == 0.01


@pytest.mark.parametrize("first,second,key", [
    (["sched=onecycle"], ["sched=onecycle", "trainer.max_epochs=3"], "trainer.max_epochs"),
    (["sched=onecycle"], ["sched=onecycle", "optim.lr=0.01"], "optim.lr"),
    ([], ["optim=sgd"], "optim._target_"),
    ([], ["seed=1"], "seed"),
    ([], ["data.batch_size=32"], "data.batch_size"),
    ([], ["model.activation=tanh"], "model.activation"),
    ([], ["loss.label_smoothing=0.1"], "loss.label_smoothing"),
    ([], ["sched=step"], "sched.scheduler._target_"),
])
def test_a_change_a_resume_cannot_honour_is_refused_by_name(tmp_path, first, second, key):
    run = tmp_path / "run"
    train(make_cfg(run, [*FAST, *first]))
    with pytest.raises(CheckpointError, match="cannot honour") as info:
        train(make_cfg(run, [*FAST, *second, "ckpt_path=last"]))
    assert key in str(info.value) and "start a new run" in str(info.value)


def test_a_checkpoint_of_another_model_is_refused_with_its_file_name(tmp_path):
    run = tmp_path / "run"
    train(make_cfg(run, [*FAST, "model=lenet5"]))
    ckpt = run / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError, match=r"holds model 'lenet5', but this run builds 'lenet5_modern'") as info:
        train(make_cfg(tmp_path / "other", [*FAST, f"ckpt_path={ckpt}"]))
    assert str(ckpt) in str(info.value) and "model=lenet5" in str(info.value)
    # a checkpoint without the project's metadata: the state dict is compared instead
    foreign = load_checkpoint_file(ckpt)
    del foreign["zoo"]
    torch.save(foreign, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match=r"foreign\.ckpt does not fit model 'lenet5_modern'"):
        train(make_cfg(tmp_path / "third", [*FAST, f"ckpt_path={tmp_path / 'foreign.ckpt'}"]))


# ---------------------------------------------------------------------------- divergence


def test_divergence_stops_the_run_and_says_so(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as info:
        train(make_cfg(run, ["trainer.max_epochs=3", "optim.lr=1.0e10", "sched=none"]))
    msg = str(info.value)
    assert "training diverged: non-finite" in msg and "epoch 1, step" in msg and "lr 1e+10" in msg
    assert "no test was run" in msg
    res = _results(run)
    assert res["status"] == "diverged" and res["test/acc"] is None and res["tested_on"] is None
    assert res["divergence"]["lr"] == 1e10 and res["segments"][0]["status"] == "diverged"
    # the weights of every checkpoint written are finite: the step on a non-finite gradient never ran
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        sd = load_checkpoint_file(ckpt)["state_dict"]
        assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())


def test_divergence_later_in_the_run_names_the_last_good_checkpoint(tmp_path, monkeypatch):
    """A run that diverges in its third epoch: status diverged, the message names last.ckpt of epoch 2."""
    from zoo.training.module import ClassificationModule

    real = ClassificationModule.training_step

    def step(self, batch, batch_idx):
        loss = real(self, batch, batch_idx)
        if self.current_epoch == 2 and batch_idx == 5:
            self._step_loss = torch.tensor(float("nan"))
            self._loss_sum.add_(self._step_loss)  # the epoch's training loss is NaN from here on
        return loss

    monkeypatch.setattr(ClassificationModule, "training_step", step)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as info:
        train(make_cfg(run, ["trainer.max_epochs=4", "logger=csv", "trainer.log_every_n_steps=1"]))
    assert "non-finite loss (nan) at epoch 3, step 45" in str(info.value)
    assert f"last good checkpoint is {run / 'checkpoints' / 'last.ckpt'}" in str(info.value)
    res = _results(run)
    assert res["status"] == "diverged" and res["divergence"]["epoch"] == 3 and res["val/acc_best"] > 0.5
    assert load_checkpoint_file(run / "checkpoints" / "last.ckpt")["epoch"] == 1
    # the step-level log shows NaN as NaN
    assert "nan" in (run / "csv" / "metrics.csv").read_text().lower()


# ---------------------------------------------------------------------------- data facts flow one way


def test_a_model_override_that_contradicts_the_data_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.num_classes=5 contradicts the data: digits has num_classes=10"):
        train(make_cfg(tmp_path / "run", [*FAST, "+model.num_classes=5"]))
    with pytest.raises(ConfigError, match=r"model\.in_chans=3 contradicts the data"):
        train(make_cfg(tmp_path / "run", [*FAST, "+model.in_chans=3"]))


def test_the_model_is_built_from_the_data(tmp_path):
    res = train(make_cfg(tmp_path / "run", ["debug=fdr", "model=vit_tiny_patch4", "data.image_size=28"]))
    model = res["config"]["model"]
    assert (model["num_classes"], model["in_chans"], model["image_size"]) == (10, 1, 28)


def test_a_vit_input_not_divisible_by_its_patch_is_refused_before_training(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.image_size=30.*patch"):
        train(make_cfg(tmp_path / "run", ["debug=fdr", "model=vit_tiny_patch4", "data.image_size=30"]))


def test_a_missing_image_folder_is_reported_before_the_model(tmp_path):
    from zoo.data import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "nowhere")):
        train(make_cfg(tmp_path / "run", ["debug=fdr", f"data=imagefolder", f"data.root={tmp_path / 'nowhere'}"]))


# ---------------------------------------------------------------------------- safe loading


class _Payload:
    """Unpickling it creates a marker file, and does nothing else."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _malicious_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    """A real checkpoint of this project with a payload added: weights-only loading must refuse it."""
    run = tmp_path / "good"
    train(make_cfg(run, ["trainer.max_epochs=1", "logger=csv"]))
    ckpt = load_checkpoint_file(run / "checkpoints" / "last.ckpt")
    marker = tmp_path / "marker"
    ckpt["zz"] = _Payload(marker)
    path = tmp_path / "evil.ckpt"
    torch.save(ckpt, path)
    return path, marker


LOAD_PATHS = ["load_checkpoint_file", "checkpoint_io", "resume_by_path", "resume_last", "test_on_best"]


@pytest.mark.parametrize("entry", LOAD_PATHS)
def test_a_malicious_pickle_never_runs(tmp_path, entry):
    path, marker = _malicious_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="holds objects other than tensors"):
        if entry == "load_checkpoint_file":
            load_checkpoint_file(path)
        elif entry == "checkpoint_io":
            AtomicCheckpointIO().load_checkpoint(path)
        elif entry == "resume_by_path":
            train(make_cfg(tmp_path / "run", [*FAST, f"ckpt_path={path}"]))
        elif entry == "resume_last":
            run = tmp_path / "run"
            (run / "checkpoints").mkdir(parents=True)
            path.rename(run / "checkpoints" / "last.ckpt")
            train(make_cfg(run, [*FAST, "ckpt_path=last"]))
        else:  # the final test loads the best checkpoint: plant the payload there during the run
            from zoo.training import run as run_module

            real = run_module._finite_checkpoint

            def plant(p):
                torch.save({**load_checkpoint_file(p), "zz": _Payload(marker)}, p)
                return real(p)

            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(run_module, "_finite_checkpoint", plant)
                train(make_cfg(tmp_path / "run", FAST))
    assert not marker.exists()
