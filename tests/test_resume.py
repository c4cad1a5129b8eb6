"""A run killed with SIGKILL and resumed with ``ckpt_path=last`` ends bitwise where the uninterrupted run ends.

Each case runs the real ``train.py`` in a subprocess: modern LeNet-5 with dropout on the digits (pad-crop
augmentation, cosine schedule stepped per batch), 3 epochs of 20 batches, ``last.ckpt`` at every epoch
end and every 7 steps, ``trainer.deterministic=true``, one thread. A callback of ``tests/resume_helpers.py``
kills the process at a chosen point; the run is resumed in its folder, killed at the next point of its case,
and so on, then resumed to the end. Its final weights, optimizer state, best checkpoint and ``results.json``
figures are compared with those of the run that was never interrupted.
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


# Each case kills one run at several points in turn, resuming it after each kill. step:10 resumes mid-epoch
# from the step-7 checkpoint; save:N dies inside torch.save of the step-N checkpoint (its temporary file is
# left half-written; last.ckpt is still the one before); val:2 dies during the second epoch's validation;
# epoch_start:3 right after the second epoch's last.ckpt; step:47 in the third epoch; test:0 after training.
# Every segment's resume has to be exact for the final state to equal the reference's.
CHAINS = [("step:10", "save:28"), ("save:14", "val:2"), ("epoch_start:3", "step:47", "test:0")]
# the segments' first steps where the kill points fix them (last.ckpt every 7 steps: step:10 resumes at 7,
# and save:28, which dies mid-save, at 21)
STARTS = {("step:10", "save:28"): [0, 7, 21]}


@pytest.mark.parametrize("points", CHAINS, ids=["+".join(c) for c in CHAINS])
def test_killed_and_resumed_run_is_bitwise_exact(points: tuple[str, ...], reference: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    for i, point in enumerate(points):
        resume = ["ckpt_path=last"] if i else []
        killed = _train(run_dir, *resume, "+callbacks.killer._target_=resume_helpers.KillAt",
                        f"+callbacks.killer.point={point}")
        assert killed.returncode == KILLED, (point, killed.stderr[-3000:])
        assert not (run_dir / "results.json").exists(), point
        if point.startswith("save:"):
            assert list((run_dir / "checkpoints").glob(".*.tmp")), f"the kill at {point} should leave a half-written file"
    resumed = _train(run_dir, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not list((run_dir / "checkpoints").glob(".*.tmp")), "stale temporary files are removed on resume"
    _assert_same_run(reference, run_dir)
    segments = json.loads((run_dir / "results.json").read_text())["segments"]
    assert [s["status"] for s in segments] == ["interrupted"] * len(points) + ["completed"]
    starts = [s["start_step"] for s in segments]
    assert starts[0] == 0 and starts == sorted(starts), starts
    assert starts == STARTS.get(points, starts)
    # each segment keeps its own composed config; none overwrites an earlier one
    for k in range(1, len(points) + 2):
        assert (run_dir / (".hydra" if k == 1 else f".hydra-{k}") / "config.yaml").is_file(), k
