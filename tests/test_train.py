"""The training pipeline: config composition, runs, results.json, resume, checkpoints, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import zoo
from hydra_helpers import CONFIGS, ROOT, make_cfg
from zoo.training import CheckpointError, ClassificationModule, train
from zoo.training.checkpoint import AtomicCheckpointIO
from zoo.training.run import model_kwargs


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


# ---------------------------------------------------------------------------- configs compose


@pytest.mark.parametrize("group", ["model", "data", "optim", "sched", "trainer", "callbacks", "logger",
                                   "debug", "experiment"])
def test_every_config_composes_and_instantiates(group, tmp_path):
    import hydra

    opts = options(group)
    assert opts, f"configs/{group} is empty"
    for opt in opts:
        cfg = make_cfg(tmp_path, [f"{group}={opt}"])
        # Every group is instantiated, whichever option was picked: the whole run must be buildable.
        dm = hydra.utils.instantiate(cfg.data)
        if cfg.model.name in zoo.list_models():
            # The model is built from the data's facts (num_classes, in_chans, ...), as train() builds it.
            facts = {"num_classes": dm._num_classes or 1000, "in_chans": dm.in_chans,
                     "image_size": dm.image_size, "small_input": dm.small_input}
            kwargs = model_kwargs(cfg.model, facts, opt)
            with torch.device("meta"):
                model = hydra.utils.instantiate(kwargs)
            assert isinstance(model, nn.Module), (group, opt)
            assert model_kwargs(cfg.model, facts, opt)["num_classes"] == facts["num_classes"]
        params = [nn.Parameter(torch.zeros(2))]
        opt_obj = hydra.utils.instantiate(cfg.optim)(params=params)
        sched = hydra.utils.instantiate(cfg.sched)
        if sched.scheduler is not None:
            kw = {}
            if "total_steps" in sched.scheduler.keywords and sched.scheduler.keywords["total_steps"] is None:
                kw["total_steps"] = 10
            if "T_max" in sched.scheduler.keywords and sched.scheduler.keywords["T_max"] is None:
                kw["T_max"] = 10
            sched.scheduler(optimizer=opt_obj, **kw)
        for c in (cfg.callbacks or {}).values():
            if c is not None and "_target_" in c:
                hydra.utils.instantiate(c)
        for lg in (cfg.logger or {}).values():
            if lg is not None and "_target_" in lg:
                hydra.utils.instantiate(lg)
        hydra.utils.instantiate(cfg.trainer, logger=False, enable_progress_bar=False)


def test_seed_zero_is_a_real_seed(tmp_path):
    import hydra

    def weights(seed: int | None) -> torch.Tensor:
        cfg = make_cfg(tmp_path, [f"seed={seed if seed is not None else 'null'}"])
        if cfg.get("seed") is not None:
            import pytorch_lightning as pl

            pl.seed_everything(cfg.seed)
        return torch.cat([p.flatten() for p in hydra.utils.instantiate(cfg.model).parameters()])

    assert torch.equal(weights(0), weights(0))
    assert not torch.equal(weights(0), weights(1))


# ---------------------------------------------------------------------------- runs


def test_fast_dev_run_on_digits_writes_results(tmp_path):
    cfg = make_cfg(tmp_path, ["debug=fdr", "model=lenet5"])
    res = train(cfg)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["model"] == "lenet5" and saved["params"] == 60_000
    for key in ("model", "data", "params", "epochs", "seed", "test/acc", "test/loss", "val/acc_best",
                "train_seconds", "config", "git_commit", "versions", "hardware", "command"):
        assert key in saved, key
    assert saved["seed"] == 0
    assert 0.0 <= saved["test/acc"] <= 1.0 and saved["test/loss"] > 0
    assert saved["config"]["model"]["name"] == "lenet5"
    assert saved["versions"]["torch"] == torch.__version__
    assert res["test/acc"] == saved["test/acc"]


def test_short_run_learns_checkpoints_and_logs(tmp_path):
    """Three epochs of the default run (modern LeNet-5 on digits): accuracy far above chance,
    best + last checkpoints, CSV log."""
    cfg = make_cfg(tmp_path, ["trainer.max_epochs=3"])
    res = train(cfg)
    assert res["epochs"] == 3
    assert res["test/acc"] > 0.6, res["test/acc"]
    assert res["val/acc_best"] >= res["test/acc"] - 0.2
    ckpts = {p.name for p in (tmp_path / "checkpoints").iterdir()}
    assert "last.ckpt" in ckpts and any(n.startswith("best-") for n in ckpts), ckpts
    assert not any(n.endswith(".tmp") for n in ckpts)
    metrics = (tmp_path / "csv" / "metrics.csv").read_text()
    assert "val/acc" in metrics and "train/loss_epoch" in metrics
    losses = [float(r.split(",")[i]) for r in metrics.splitlines()[1:]
              for i, h in enumerate(metrics.splitlines()[0].split(",")) if h == "train/loss_epoch"
              and r.split(",")[i]]
    assert losses[-1] < losses[0], losses


def test_resume_from_last_checkpoint(tmp_path):
    first = tmp_path / "first"
    r1 = train(make_cfg(first, ["trainer.max_epochs=1"]))
    last = first / "checkpoints" / "last.ckpt"
    assert last.is_file() and r1["epochs"] == 1
    # Resume by path into another run directory: training continues from epoch 1 to 2.
    r2 = train(make_cfg(tmp_path / "second", ["trainer.max_epochs=2", f"ckpt_path={last}"]))
    assert r2["epochs"] == 2 and r2["resumed_from"] == str(last)
    assert r2["global_steps"] == 2 * r1["global_steps"]
    # `ckpt_path=last` in the same run directory finds its own last.ckpt.
    r3 = train(make_cfg(tmp_path / "second", ["trainer.max_epochs=3", "ckpt_path=last"]))
    assert r3["epochs"] == 3 and r3["resumed_from"].endswith("second/checkpoints/last.ckpt")
    # Resuming never overwrites the logs of the run it continues.
    assert (tmp_path / "second" / "csv" / "metrics.csv").is_file()
    assert (tmp_path / "second" / "csv" / "resume1" / "metrics.csv").is_file()


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x80\x04 this is not a checkpoint")
    with pytest.raises(CheckpointError, match=r"(?s)bad\.ckpt .* unreadable.*truncated"):
        train(make_cfg(tmp_path / "run", ["trainer.max_epochs=1", f"ckpt_path={bad}"]))
    with pytest.raises(CheckpointError, match="no such file"):
        train(make_cfg(tmp_path / "run", [f"ckpt_path={tmp_path / 'missing.ckpt'}"]))


@pytest.mark.parametrize("failure", ["killed", "disk_full"])
def test_checkpoint_write_is_atomic(tmp_path, monkeypatch, failure):
    """A save that fails half-way (an interrupt, a full disk) leaves the previous file intact and no debris;
    a full disk is reported with the file's name and what to do."""
    import errno

    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)

    def crash(obj, f, *a, **k):
        f.write(b"partial bytes")
        if failure == "killed":
            raise KeyboardInterrupt("killed while saving")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", crash)
    expected = (pytest.raises(KeyboardInterrupt) if failure == "killed" else
                pytest.raises(CheckpointError, match=r"(?s)could not write .*last\.ckpt: No space left.*intact.*free"))
    with expected:
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_input_too_small_is_reported_before_training(tmp_path):
    cfg = make_cfg(tmp_path, ["model=lenet5", "data.image_size=28"])
    with pytest.raises(zoo.InputTooSmallError, match=r"lenet5: at layer '.*'.*\(n \+ 2p - d\(f-1\) - 1\)/s \+ 1"):
        train(cfg)


# ---------------------------------------------------------------------------- the LightningModule


class _TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main, self.aux = nn.Linear(4, 3), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.main(x), [self.aux(x)]


def test_aux_loss_and_label_smoothing():
    torch.manual_seed(0)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    model = _TwoHeads()
    m = ClassificationModule(model, optimizer=torch.optim.SGD, num_classes=3, aux_weight=0.3,
                             label_smoothing=0.1)
    m.log = lambda *a, **k: None  # no trainer attached
    loss = m.training_step((x, y), 0)
    ce = nn.functional.cross_entropy
    want = ce(model.main(x), y, label_smoothing=0.1) + 0.3 * ce(model.aux(x), y, label_smoothing=0.1)
    assert torch.allclose(loss, want)
    m0 = ClassificationModule(model, optimizer=torch.optim.SGD, num_classes=3, aux_weight=0.0)
    m0.log = lambda *a, **k: None
    assert torch.allclose(m0.training_step((x, y), 0), ce(model.main(x), y))


def test_ten_crop_batches_average_logits():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    m = ClassificationModule(model, optimizer=torch.optim.SGD, num_classes=5)
    x = torch.randn(2, 10, 3, 4, 4)  # (B, crops, C, H, W)
    assert torch.allclose(m(x), torch.stack([model(x[i]).mean(0) for i in range(2)]))


def test_warmup_chains_with_the_main_schedule(tmp_path):
    """ResNet-110 style: lr x0.1 for the first steps, then the multistep schedule by epoch."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from functools import partial

    lrs: list[float] = []

    class Rec(pl.Callback):
        def on_train_batch_start(self, trainer, *a):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    sched = {"scheduler": partial(torch.optim.lr_scheduler.MultiStepLR, milestones=[2], gamma=0.1),
             "interval": "epoch", "warmup_steps": 3, "warmup_factor": 0.1, "warmup_mode": "constant"}
    m = ClassificationModule(model, optimizer=partial(torch.optim.SGD, lr=0.1), scheduler=sched, num_classes=3)
    data = DataLoader(TensorDataset(torch.randn(20, 4), torch.randint(0, 3, (20,))), batch_size=4)
    pl.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, callbacks=[Rec()],
               default_root_dir=tmp_path).fit(m, data)
    want = [0.01] * 3 + [0.1] * 7 + [0.01] * 5
    assert lrs == pytest.approx(want), lrs


# ---------------------------------------------------------------------------- real on-disk formats


@pytest.mark.parametrize("data,fixture,model", [
    ("mnist", "mnist_root", "lenet5"),
    ("fashion_mnist", "fashion_mnist_root", "lenet5_modern"),
    ("cifar10", "cifar10_root", "lenet5_modern"),
])
def test_fast_dev_run_on_real_format_files(data, fixture, model, tmp_path, request):
    """torchvision's own loaders read our IDX / pickle fixture files, then one batch of each stage runs."""
    root = request.getfixturevalue(fixture)
    extra = ["data.verify_checksums=false"] if data.startswith("cifar") else []
    cfg = make_cfg(tmp_path, ["debug=fdr", f"model={model}", f"data={data}", f"data.root={root}",
                              "data.val_size=16", *extra])
    res = train(cfg)
    assert res["data"] == data and res["config"]["model"]["in_chans"] == (3 if data == "cifar10" else 1)
    assert 0.0 <= res["test/acc"] <= 1.0


def test_real_mnist_short_run(real_mnist_root, tmp_path):
    """On the real MNIST files (when present), 150 steps of modern LeNet-5 pass 90% test accuracy."""
    cfg = make_cfg(tmp_path, ["model=lenet5_modern", "data=mnist", f"data.root={real_mnist_root}", "trainer.max_epochs=1",
                              "+trainer.limit_train_batches=150", "+trainer.limit_val_batches=5",
                              "data.batch_size=64", "optim.lr=2e-3"])
    res = train(cfg)
    assert res["test/acc"] > 0.9, res["test/acc"]


def test_missing_dataset_names_folder_files_and_fix(tmp_path):
    from zoo.data import DatasetNotFoundError

    cfg = make_cfg(tmp_path, ["data=mnist", f"data.root={tmp_path / 'nowhere'}"])
    with pytest.raises(DatasetNotFoundError) as err:
        train(cfg)
    msg = str(err.value)
    assert str(tmp_path / "nowhere") in msg and "train-images-idx3-ubyte" in msg and "download" in msg


# ---------------------------------------------------------------------------- the command line


def _cli(tmp_path: Path, *args: str) -> "subprocess.CompletedProcess[str]":
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args, f"paths.log_dir={tmp_path}"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)


def test_cli_multirun_writes_one_results_json_per_seed(tmp_path):
    out = _cli(tmp_path, "-m", "debug=fdr", "seed=0,1")
    assert out.returncode == 0, out.stderr[-2000:]
    results = sorted(tmp_path.glob("debug/multiruns/*/*/results.json"))
    assert [json.loads(p.read_text())["seed"] for p in results] == [0, 1]
    assert out.stdout.count("test/acc: ") == 2 and out.stdout.count("run dir: ") == 2


def test_cli_bad_input_exits_with_the_message(tmp_path):
    out = _cli(tmp_path, "model=lenet5", "data.image_size=28")
    assert out.returncode == 2
    assert "input too small for lenet5" in out.stderr and "features.c5" in out.stderr


def test_cli_bad_config_exits_2_naming_every_bad_key(tmp_path):
    out = _cli(tmp_path, "trainer.max_epochs=abc", "data.batch_size=1.5", "seed=-5", "optim.lr=0")
    assert out.returncode == 2
    for line in ("trainer.max_epochs='abc'", "data.batch_size=1.5", "seed=-5", "optim.lr=0"):
        assert line in out.stderr, line
    assert "e.g. trainer.max_epochs=" in out.stderr
    assert not list(tmp_path.glob("**/checkpoints")), "nothing ran"


def test_cli_divergence_exits_3_and_records_it(tmp_path):
    out = _cli(tmp_path, "optim.lr=1.0e10", "sched=none", "trainer.max_epochs=2")
    assert out.returncode == 3, out.stderr[-2000:]
    assert "training diverged: non-finite" in out.stderr and "no test was run" in out.stderr
    (results,) = tmp_path.glob("train/runs/*/*/results.json")
    assert json.loads(results.read_text())["status"] == "diverged"
