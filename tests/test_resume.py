"""A run killed with SIGKILL and resumed with ``ckpt_path=last`` ends bitwise where the uninterrupted run ends.

Each case runs the real ``train.py`` in a subprocess: modern LeNet-5 with dropout on the digits (pad-crop
augmentation, cosine schedule stepped per batch), 3 epochs of 20 batches, ``last.ckpt`` at every epoch
end and every 7 steps, ``trainer.deterministic=true``, one thread. A callback of ``tests/resume_helpers.py``
kills the process at a chosen point; the run is then resumed in its folder, and its final weights, optimizer
state, best checkpoint and ``results.json`` figures are compared with those of the run that was never
interrupted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["model.dropout=0.2", "trainer.max_epochs=3", "trainer.deterministic=true",
          "callbacks.last_checkpoint.every_n_train_steps=7", "logger=csv"]
KILLED = -9


def _train(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests"), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *COMMON, f"hydra.run.dir={run_dir}", *overrides],
                          cwd=run_dir.parent, env=env, capture_output=True, text=True, timeout=300)


def _kill_at(run_dir: Path, point: str) -> subprocess.CompletedProcess:
    return _train(run_dir, "+callbacks.killer._target_=resume_helpers.KillAt", f"+callbacks.killer.point={point}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    proc = _train(run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    sa, sb = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        for k in sa[i]:
            assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])), (i, k)
    assert a["lr_schedulers"] == b["lr_schedulers"]


def _assert_same_run(ref: Path, run: Path) -> None:
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (ref, run))
    for key in ("status", "test/acc", "test/loss", "test/acc5", "val/acc_best", "epochs", "global_steps"):
        assert ra[key] == rb[key], (key, ra[key], rb[key])
    _assert_same_state(_load(ref / "checkpoints" / "last.ckpt"), _load(run / "checkpoints" / "last.ckpt"))
    best_a, best_b = (Path(r["best_checkpoint"]).name for r in (ra, rb))
    assert best_a == best_b
    _assert_same_state(_load(ref / "checkpoints" / best_a), _load(run / "checkpoints" / best_b))


# step:10 resumes mid-epoch from the step-7 checkpoint; save:14 dies inside torch.save of the step-14
# checkpoint (its temporary file is left half-written; last.ckpt is still step 7); val:2 dies during the
# second epoch's validation; epoch_start:3 right after the second epoch's last.ckpt; test:0 after training.
POINTS = ["step:10", "save:14", "val:2", "epoch_start:3", "step:47", "test:0"]


@pytest.mark.parametrize("point", POINTS)
def test_kill_and_resume_is_bitwise_exact(point: str, reference: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    killed = _kill_at(run_dir, point)
    assert killed.returncode == KILLED, killed.stderr[-3000:]
    assert not (run_dir / "results.json").exists()
    if point.startswith("save:"):
        assert list((run_dir / "checkpoints").glob(".*.tmp")), "the kill should leave a half-written file"
    resumed = _train(run_dir, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not list((run_dir / "checkpoints").glob(".*.tmp")), "stale temporary files are removed on resume"
    _assert_same_run(reference, run_dir)
    segments = json.loads((run_dir / "results.json").read_text())["segments"]
    assert [s["status"] for s in segments] == ["interrupted", "completed"]
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / ".hydra-2" / "config.yaml").is_file()


def test_killed_twice_resumes_twice(reference: Path, tmp_path: Path) -> None:
    """Two kills in two segments (mid-epoch, then during a save), two resumes: still bitwise equal."""
    run_dir = tmp_path / "run"
    assert _kill_at(run_dir, "step:10").returncode == KILLED
    second = _train(run_dir, "ckpt_path=last", "+callbacks.killer._target_=resume_helpers.KillAt",
                    "+callbacks.killer.point=save:28")
    assert second.returncode == KILLED, second.stderr[-3000:]
    assert _train(run_dir, "ckpt_path=last").returncode == 0
    _assert_same_run(reference, run_dir)
    segments = json.loads((run_dir / "results.json").read_text())["segments"]
    assert [s["status"] for s in segments] == ["interrupted", "interrupted", "completed"]
    assert [s["start_step"] for s in segments] == [0, 7, 21]
