"""Scaling out and tracking: the Optuna sweep (hparams_search=optuna), the submitit launchers (SLURM and local)
and the wandb / MLflow loggers, each run for real on digits with a tiny budget, with no network."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hydra_helpers import CONFIGS, ROOT, make_cfg
from zoo.training.config_check import ConfigError, validate_config

# A real run in a few batches: one epoch of two training batches, one validation and one test batch.
TINY = ["debug=limit", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1"]

# What the subprocesses import first (PYTHONPATH): the test suite's network block, for the training processes
# and every process they start (submitit's jobs): a lookup or connection to another host raises.
_SITECUSTOMIZE = '''
import socket
_LOCAL = {"localhost", "127.0.0.1", "::1", "", None}
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo
def _host(a):
    return a[0] if isinstance(a, tuple) else a
def connect(sock, address):
    if sock.family != getattr(socket, "AF_UNIX", None) and _host(address) not in _LOCAL:
        raise OSError(f"tests must not reach the network (connect to {address!r})")
    return _connect(sock, address)
def getaddrinfo(host, *args, **kwargs):
    if host not in _LOCAL:
        raise OSError(f"tests must not reach the network (lookup of {host!r})")
    return _getaddrinfo(host, *args, **kwargs)
socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo
'''


def _hparams_search() -> str:
    """``hparams_search=optuna`` when train.yaml's defaults list has the group (as ``hparams_search: null``),
    else ``+hparams_search=optuna``, which appends it."""
    defaults = OmegaConf.to_container(OmegaConf.load(CONFIGS / "train.yaml")).get("defaults", [])
    listed = any((isinstance(d, dict) and "hparams_search" in d) or d == "hparams_search" for d in defaults)
    return ("" if listed else "+") + "hparams_search=optuna"


def _train(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
           timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """``python train.py <args> paths.log_dir=<tmp_path>`` in ``tmp_path``, with the network blocked and wandb
    and MLflow kept local (their caches and settings under ``tmp_path``)."""
    site = tmp_path / "_site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_"))}
    base.update({
        "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(site), base.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true",
        "WANDB_CONFIG_DIR": str(tmp_path / "_wandb_config"), "WANDB_CACHE_DIR": str(tmp_path / "_wandb_cache"),
        "WANDB_DATA_DIR": str(tmp_path / "_wandb_data"), **(env or {}),
    })
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args, f"paths.log_dir={tmp_path}"],
                          capture_output=True, text=True, env=base, cwd=tmp_path, timeout=timeout)


def _results(folder: Path) -> list[dict]:
    """The results.json of each job folder of a multirun, in job order."""
    paths = sorted(folder.glob("*/results.json"), key=lambda p: int(p.parent.name))
    return [json.loads(p.read_text()) for p in paths]


def _sweep_dir(tmp_path: Path) -> Path:
    (sweep,) = tmp_path.glob("debug/multiruns/*")
    return sweep


# ---------------------------------------------------------------------------- Optuna


def test_optuna_search_config_composes(tmp_path):
    cfg = make_cfg(tmp_path, [_hparams_search()])
    assert cfg.optimized_metric == "val/acc_best"
    validate_config(cfg)


def test_optuna_sweeper_settings():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[_hparams_search()], return_hydra_config=True)
    assert str(cfg.hydra.mode) in ("MULTIRUN", "RunMode.MULTIRUN")  # a sweep even without -m
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sweeper.direction == "maximize" and sweeper.n_trials >= 1
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and isinstance(sweeper.sampler.seed, int)
    assert sweeper.params["optim.lr"].startswith("tag(log, interval(")
    assert sweeper.params["data.batch_size"].startswith("choice(")


def test_optimized_metric_is_checked(tmp_path):
    for value in (None, "val/acc_best", "test/acc"):
        validate_config(make_cfg(tmp_path, [f"++optimized_metric={'null' if value is None else value}"]))
    with pytest.raises(ConfigError) as err:
        validate_config(make_cfg(tmp_path, ["++optimized_metric=val/acc"]))
    assert "optimized_metric='val/acc': one of 'val/acc_best', 'test/acc'" in str(err.value)
    assert "e.g. optimized_metric=val/acc_best" in str(err.value)


def test_optuna_sweep_maximises_val_acc_best(tmp_path):
    out = _train(tmp_path, "-m", _hparams_search(), "hydra.sweeper.n_trials=3", *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    sweep = _sweep_dir(tmp_path)
    trials = _results(sweep)
    assert len(trials) == 3 and all(r["status"] == "completed" for r in trials)
    # every trial drew its own learning rate from the search space
    lrs = [r["config"]["optim"]["lr"] for r in trials]
    assert len(set(lrs)) == 3 and all(1e-4 <= lr <= 1e-2 for lr in lrs)
    assert all(r["config"]["data"]["batch_size"] in (32, 64, 128) for r in trials)
    assert out.stdout.count("val/acc_best: ") == 3  # each trial returned its best validation accuracy

    best = OmegaConf.to_container(OmegaConf.load(sweep / "optimization_results.yaml"))
    accs = [r["val/acc_best"] for r in trials]
    assert best["best_value"] == pytest.approx(max(accs), abs=1e-12)
    winners = [r for r in trials if r["val/acc_best"] == pytest.approx(max(accs), abs=1e-12)]
    assert set(best["best_params"]) == {"optim.lr", "data.batch_size"}
    assert any(math.isclose(best["best_params"]["optim.lr"], r["config"]["optim"]["lr"], rel_tol=1e-9)
               and best["best_params"]["data.batch_size"] == r["config"]["data"]["batch_size"] for r in winners)


# ---------------------------------------------------------------------------- submitit launchers


def _hydra_cfg(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_submitit_slurm_launcher_composes():
    launcher = _hydra_cfg(["hydra/launcher=submitit_slurm"]).hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    for key in ("partition", "gpus_per_node", "tasks_per_node", "timeout_min", "mem_gb", "cpus_per_task", "nodes"):
        assert key in launcher, key


def test_slurm_launcher_config_sets_the_documented_keys():
    launcher = _hydra_cfg(["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                           "hydra.launcher.timeout_min=30"]).hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.partition == "gpu" and launcher.timeout_min == 30
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (1, 1, 1)
    assert launcher.mem_gb == 32 and launcher.cpus_per_task == 8
    assert launcher.qos is None and launcher.account is None  # the plugin's other keys are still there


def test_slurm_launcher_writes_the_sbatch_script(tmp_path):
    """A multirun on hydra/launcher=slurm submits one job array through sbatch; a stand-in sbatch keeps the
    script and refuses the job (there is no cluster here), so nothing runs. (submitit also looks for srun.)"""
    bin_dir = tmp_path / "_bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/submitted.sh\n'
                                    f'echo "sbatch: error: no cluster here" >&2\nexit 1\n')
    (bin_dir / "srun").write_text('#!/bin/sh\necho "srun: no cluster here" >&2\nexit 1\n')
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    out = _train(tmp_path, "-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu_debug",
                 "hydra.launcher.timeout_min=7", "hydra.launcher.mem_gb=3", "hydra.launcher.gpus_per_node=2",
                 "hydra.launcher.tasks_per_node=2", "hydra.launcher.array_parallelism=1", "seed=0,1", *TINY,
                 env={"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}, timeout=120)
    assert out.returncode != 0 and "no cluster here" in out.stderr + out.stdout
    script = (tmp_path / "submitted.sh").read_text()
    for line in ("#SBATCH --partition=gpu_debug", "#SBATCH --time=7", "#SBATCH --mem=3GB",
                 "#SBATCH --gpus-per-node=2", "#SBATCH --ntasks-per-node=2", "#SBATCH --nodes=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --array=0-1%1", "#SBATCH --job-name=debug"):
        assert line in script, (line, script)
    assert "submitit.core._submit" in script
    assert not list(tmp_path.glob("debug/multiruns/*/*/results.json"))


def test_submitit_local_launcher_runs_two_jobs(tmp_path):
    out = _train(tmp_path, "-m", "hydra/launcher=submitit_local", "seed=0,1", *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    sweep = _sweep_dir(tmp_path)
    assert [r["seed"] for r in _results(sweep)] == [0, 1]
    assert all(r["status"] == "completed" for r in _results(sweep))
    assert list(sweep.glob(".submitit/*/*_log.out")), "the jobs ran through submitit"


# ---------------------------------------------------------------------------- loggers


def test_wandb_is_offline_unless_wandb_mode_says_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = make_cfg(tmp_path, ["logger=wandb"])
    assert cfg.logger.wandb.mode == "offline" and cfg.logger.wandb.project == "zoo"
    assert cfg.logger.wandb.save_dir == str(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "online")
    assert make_cfg(tmp_path, ["logger=wandb"]).logger.wandb.mode == "online"
    with pytest.raises(ConfigError, match=r"logger.wandb.mode='upload': one of 'online', 'offline'"):
        validate_config(make_cfg(tmp_path, ["logger=wandb", "logger.wandb.mode=upload"]))


@pytest.mark.parametrize("logger", ["wandb", "mlflow", "many"])
def test_logger_options_pass_the_config_check(logger, tmp_path):
    validate_config(make_cfg(tmp_path, [f"logger={logger}"]))


def test_mlflow_store_is_inside_the_run_folder(tmp_path):
    cfg = make_cfg(tmp_path, ["logger=mlflow"])
    assert cfg.logger.mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert cfg.logger.mlflow.artifact_location.startswith(str(tmp_path))


def test_loggers_instantiate_for_a_resume(tmp_path, monkeypatch):
    """A resumed run passes the loggers a fresh ``version`` where they keep one (wandb); MLflow takes none."""
    from zoo.training.run import _loggers

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = make_cfg(tmp_path, ["logger=many"])
    names = {type(lg).__name__ for lg in _loggers(cfg, resuming=True)}
    assert names == {"CSVLogger", "TensorBoardLogger", "WandbLogger", "MLFlowLogger"}


def _wandb_records(path: Path):
    """The records of an offline wandb run file (``run-<id>.wandb``): a LevelDB-style log of 32 KiB blocks
    after a 7-byte header, each record a ``wandb_internal_pb2.Record``, split into chunks across blocks."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # the block's tail is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            break
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            yield record


def _items(items) -> dict[str, object]:
    return {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in items}


def test_wandb_offline_runs_one_per_job(tmp_path):
    """logger=wandb in a two-job multirun: each job has its own offline run in its folder, with its metrics
    and the module's hyperparameters (each job's wandb run is finished before the next starts)."""
    out = _train(tmp_path, "-m", "logger=wandb", "seed=0,1", *TINY, "trainer.max_epochs=2")
    assert out.returncode == 0, out.stderr[-3000:]
    sweep = _sweep_dir(tmp_path)
    for job, results in zip(("0", "1"), _results(sweep)):
        (run_file,) = (sweep / job / "wandb").glob("offline-run-*/run-*.wandb")
        history, config, exited = [], {}, False
        for record in _wandb_records(run_file):
            kind = record.WhichOneof("record_type")
            if kind == "history":
                history.append(_items(record.history.item))
            elif kind == "config":
                config.update(_items(record.config.update))
            exited |= kind == "exit"
        val = [h for h in history if "val/acc" in h]
        assert len(val) == 2, history  # one validation per epoch
        assert val[-1]["val/acc_best"] == pytest.approx(results["val/acc_best"], abs=1e-6)
        assert [h["test/acc"] for h in history if "test/acc" in h] == [pytest.approx(results["test/acc"], abs=1e-6)]
        assert config["num_classes"] == 10 and config["label_smoothing"] == 0.0
        assert exited, "the wandb run was finished"


def test_mlflow_local_store_holds_metrics_and_params(tmp_path):
    out = _train(tmp_path, "logger=mlflow", *TINY, "trainer.max_epochs=2", f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = tmp_path / "run"
    results = json.loads((run_dir / "results.json").read_text())
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{run_dir}/mlflow.db")
    experiment = client.get_experiment_by_name("zoo")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "lenet5_modern-digits"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val/acc")] and \
        len(client.get_metric_history(run.info.run_id, "val/acc")) == 2
    assert run.data.metrics["val/acc_best"] == pytest.approx(results["val/acc_best"], abs=1e-6)
    assert run.data.metrics["test/acc"] == pytest.approx(results["test/acc"], abs=1e-6)
    assert run.data.params["num_classes"] == "10"
    # the run's settings reach the tracker as flat section/key hyperparameters
    params = run.data.params
    assert params["model/name"] == "lenet5_modern" and params["seed"] == str(results["seed"])
    assert float(params["optim/lr"]) == results["config"]["optim"]["lr"]
    assert params["data/batch_size"] == str(results["config"]["data"]["batch_size"])
    assert params["params"] == str(results["params"])
