"""``scripts/gpu_check.sh``: the GPU machine's script. Its dry run checks the input folder and prints every
step's command; the printed training is the full ResNet-20 recipe; the data that ``--prepare`` packs is
unpacked bitwise by the data step. Nothing here needs a GPU or the network."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
WHEELS = ("hydra_core", "omegaconf", "antlr4_python3_runtime")


def run_script(*args: str, **env: str | Path) -> subprocess.CompletedProcess[str]:
    """Runs the script from the project root with a clean environment plus ``env``."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("GPU_CHECK_") and k not in ("OUT", "ZOO_DEVICE_DIR", "ZOO_DATA", "PYTHON")}
    base.update({k: str(v) for k, v in env.items()})
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=base, capture_output=True, text=True,
                          timeout=120)


def commands(stdout: str) -> list[list[str]]:
    """The printed commands (lines starting with ``$ ``), split into words."""
    return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("$ ") and "export" not in line]


def find(cmds: list[list[str]], *words: str) -> list[str]:
    """The one command holding every word of ``words``."""
    hits = [c for c in cmds if all(w in c for w in words)]
    assert len(hits) == 1, f"{len(hits)} commands hold {words}: {hits}"
    return hits[0]


def fill_inputs(dev: Path) -> None:
    """An input folder that passes the check: one wheel per package, a non-empty pack and checksum file."""
    (dev / "wheels").mkdir(parents=True)
    for name in WHEELS:
        (dev / "wheels" / f"{name}-1.0-py3-none-any.whl").write_bytes(b"PK")
    (dev / "cifar10-jpeg.tar.gz").write_bytes(b"\x1f\x8b")
    (dev / "cifar10-jpeg.sha256").write_text("0" * 64 + " 12\n")


def test_dry_run_without_inputs_reports_them_and_prints_every_step(tmp_path: Path) -> None:
    dev = tmp_path / "absent"
    r = run_script("--dry-run", ZOO_DEVICE_DIR=dev)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for name in ("hydra-core", "omegaconf", "antlr4-python3-runtime"):
        assert f"missing: a wheel of {name}" in out
    assert f"missing: {dev}/cifar10-jpeg.tar.gz" in out and f"missing: {dev}/cifar10-jpeg.sha256" in out
    assert "5 input(s) missing" in out and "bash scripts/gpu_check.sh --prepare" in out
    assert not dev.exists(), "a dry run writes nothing"

    cmds = commands(out)
    pips = [c for c in cmds if c[1:4] == ["-m", "pip", "install"]]
    assert len(pips) == 2 and all("--no-index" in c for c in pips)
    assert f"{dev}/wheels/*.whl" in pips[0] and "--target" in pips[0]
    assert str(ROOT) in pips[1] and "--no-build-isolation" in pips[1] and "--no-deps" in pips[1]
    find(cmds, "tar", "-xzf", f"{dev}/cifar10-jpeg.tar.gz", "-C", f"{dev}/data")
    find(cmds, "--verify-data", f"{dev}/data", f"{dev}/cifar10-jpeg.sha256")
    find(cmds, "pytest", "tests/test_device_data.py", "tests/test_speed_options.py")
    find(cmds, "scripts/device_data_check.py", "--require-cuda")

    bench = find(cmds, "zoo.bench")
    assert bench[bench.index("--device") + 1] == "cuda" and "--compile" in bench
    assert {"loop", "throughput"} <= set(bench[bench.index("--sections") + 1].split(","))
    assert bench[bench.index("--out") + 1] == f"{ROOT}/results/bench/cuda"
    assert "data=cifar10_jpeg" in bench[bench.index("--loop-overrides") + 1].split()

    train = find(cmds, "train.py")
    for word in ("experiment=resnet20_cifar10", "data=cifar10_jpeg", f"data.root={dev}/data", "trainer=gpu",
                 "trainer.precision=bf16-mixed", "channels_last=true", "compile=true", "seed=0",
                 f"hydra.run.dir={ROOT}/results/runs/resnet20_cifar10_jpeg_full/seed0"):
        assert word in train, word
    # the full recipe: nothing shortens it
    assert not [w for w in train if w.split("=")[0] in ("trainer.max_epochs", "trainer.limit_train_batches",
                                                         "trainer.max_steps", "trainer.fast_dev_run", "debug")]
    assert "resnet20_cifar10.yaml (182 epochs)" in out

    find(cmds, "tar", "-czf", f"{dev}/out/run-resnet20_cifar10_jpeg_full-seed0.tar.gz",
         "results/runs/resnet20_cifar10_jpeg_full/seed0")
    find(cmds, "tar", "-czf", f"{dev}/out/bench-cuda.tar.gz", "results/bench/cuda")
    assert 'carry=["' in out and "timeout_s=600" in out
    assert "6 step(s) printed" in out


def test_printed_training_composes_to_the_paper_recipe(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir

    from zoo.training.config_check import validate_config

    r = run_script("--dry-run", ZOO_DEVICE_DIR=tmp_path / "dev")
    train = find(commands(r.stdout), "train.py")
    overrides = train[train.index("train.py") + 1:]
    jpeg = (ROOT / "configs" / "data" / "cifar10_jpeg.yaml").is_file()
    if not jpeg:  # the same recipe on the original files' data config: every other override is checked
        overrides = [("data=cifar10" if o == "data=cifar10_jpeg" else o) for o in overrides]
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    assert cfg.trainer.max_epochs == 182 and list(cfg.sched.scheduler.milestones) == [91, 136]
    assert cfg.optim.lr == 0.1 and cfg.optim.momentum == 0.9 and cfg.optim.weight_decay == 1e-4
    assert cfg.data.batch_size == 128 and cfg.data.augment == "pad_crop_flip" and cfg.data.val_size == 5000
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    assert cfg.compile is True and cfg.channels_last is True and cfg.seed == 0
    assert cfg.data.root == str(tmp_path / "dev" / "data")
    assert cfg.hydra.run.dir == f"{ROOT}/results/runs/resnet20_cifar10_jpeg_full/seed0"
    if jpeg:
        assert cfg.data._target_.endswith("CIFAR10JPEGDataModule")
    validate_config(cfg)


def test_dry_run_with_complete_inputs_lists_the_wheels(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    fill_inputs(dev)
    r = run_script("--dry-run", ZOO_DEVICE_DIR=dev, OUT=tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "complete" in r.stdout and "missing" not in r.stdout
    pip = commands(r.stdout)[0]
    assert sorted(Path(w).name.split("-")[0] for w in pip if w.endswith(".whl")) == sorted(WHEELS)
    assert f"{tmp_path}/out/run-resnet20_cifar10_jpeg_full-seed0.tar.gz" in r.stdout
    assert not (tmp_path / "out").exists()


def test_two_versions_of_a_wheel_are_reported(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    fill_inputs(dev)
    (dev / "wheels" / "omegaconf-2.0-py3-none-any.whl").write_bytes(b"PK")
    r = run_script("--dry-run", ZOO_DEVICE_DIR=dev)
    assert r.returncode == 0
    assert "2 wheels of omegaconf" in r.stdout and "keep one version" in r.stdout and "1 input(s) missing" in r.stdout


def test_a_run_without_inputs_stops_before_running_anything(tmp_path: Path) -> None:
    r = run_script(ZOO_DEVICE_DIR=tmp_path / "absent", OUT=tmp_path / "out")
    assert r.returncode == 2
    assert "stopped before running anything" in r.stdout and "missing: a wheel of hydra-core" in r.stdout
    assert not commands(r.stdout)
    assert (tmp_path / "out" / "gpu_check.log").read_text() == r.stdout


def test_only_adds_the_steps_a_step_needs(tmp_path: Path) -> None:
    r = run_script("--dry-run", "--only", "train", ZOO_DEVICE_DIR=tmp_path / "dev")
    assert r.returncode == 0, r.stderr
    assert "steps: install data train" in r.stdout
    cmds = commands(r.stdout)
    find(cmds, "train.py")
    assert not [c for c in cmds if "pytest" in c or "zoo.bench" in c or "scripts/device_data_check.py" in c]
    r = run_script("--dry-run", "--only", "tests", ZOO_DEVICE_DIR=tmp_path / "dev")
    assert "steps: install tests" in r.stdout and "missing: a wheel of omegaconf" in r.stdout
    assert "cifar10-jpeg.tar.gz" not in r.stdout  # the tests need no data


@pytest.mark.parametrize("args, env, words", [
    (["--only", "tests,bogus"], {}, ["'bogus'", "install data tests check bench train", "e.g. --only"]),
    (["--dry-run"], {"GPU_CHECK_BUDGET_S": "8m"}, ["GPU_CHECK_BUDGET_S=8m", "e.g. GPU_CHECK_BUDGET_S=500"]),
    (["--dry-run"], {"GPU_CHECK_SEED": "-1"}, ["GPU_CHECK_SEED=-1", "e.g. GPU_CHECK_SEED=0"]),
    (["--fast"], {}, ["'--fast'", "--dry-run"]),
])
def test_bad_arguments_are_refused(tmp_path: Path, args: list[str], env: dict[str, str], words: list[str]) -> None:
    r = run_script(*args, ZOO_DEVICE_DIR=tmp_path / "dev", **env)
    assert r.returncode == 2 and not r.stdout
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def _jpeg_tree(root: Path) -> dict[str, bytes]:
    """A tiny CIFAR-like tree ``root/cifar10-jpeg/{train,test}/<class>/NNNN.jpg``; returns path -> bytes."""
    from torchvision.io import encode_jpeg

    g = torch.Generator().manual_seed(0)
    files = {}
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            folder = root / "cifar10-jpeg" / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                data = encode_jpeg(torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g), quality=75)
                (folder / f"{i:04d}.jpg").write_bytes(data.numpy().tobytes())
                files[f"cifar10-jpeg/{split}/{cls}/{i:04d}.jpg"] = (folder / f"{i:04d}.jpg").read_bytes()
    return files


def test_prepared_data_unpacks_bitwise_and_damage_is_caught(tmp_path: Path) -> None:
    src, dev = tmp_path / "src", tmp_path / "dev"
    files = _jpeg_tree(src)
    r = run_script("--prepare", "--only", "data", ZOO_DATA=src, ZOO_DEVICE_DIR=dev)
    assert r.returncode == 0, r.stderr
    assert "10 JPEG files" in r.stdout and "sizes that travel" in r.stdout
    assert not (dev / "wheels").exists()  # --only data: no download
    sha, count = (dev / "cifar10-jpeg.sha256").read_text().split()
    assert count == "10" and len(sha) == 64

    r = run_script("--only", "data", ZOO_DEVICE_DIR=dev, OUT=tmp_path / "out")
    assert r.returncode == 0, r.stdout + r.stderr
    unpacked = dev / "data"
    got = {p.relative_to(unpacked).as_posix(): p.read_bytes() for p in unpacked.rglob("*") if p.is_file()}
    assert got == files
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "data     ok" in summary and "every step passed" in summary

    (dev / "cifar10-jpeg.sha256").write_text("f" * 64 + " 10\n")
    r = run_script("--only", "data", ZOO_DEVICE_DIR=dev, OUT=tmp_path / "out")
    assert r.returncode == 1
    assert "damaged" in r.stdout and "data     failed" in r.stdout

    r = run_script("--prepare", "--only", "data", ZOO_DATA=tmp_path / "nowhere", ZOO_DEVICE_DIR=dev)
    assert r.returncode == 2 and f"{tmp_path}/nowhere/cifar10-jpeg" in r.stderr and "ZOO_DATA" in r.stderr


def test_prepare_removes_what_a_run_left_in_the_input_folder(tmp_path: Path) -> None:
    src, dev = tmp_path / "src", tmp_path / "dev"
    _jpeg_tree(src)
    (dev / "data" / "cifar10-jpeg").mkdir(parents=True)
    (dev / "out").mkdir()
    r = run_script("--prepare", "--only", "data", ZOO_DATA=src, ZOO_DEVICE_DIR=dev)
    assert r.returncode == 0, r.stderr
    assert not (dev / "data").exists() and not (dev / "out").exists()
    assert "would travel with the folder" in r.stdout
