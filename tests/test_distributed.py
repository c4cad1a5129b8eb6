"""Data-parallel training: the loaders' shards, the rank-0 records, and a real two-process run on the CPU.

The sharding is tested without processes (loaders built with ``rank=0/1, world_size=2``), then once in a
``python train.py trainer=ddp_sim`` run (two processes over gloo), whose test accuracy is compared with the
accuracy of its best checkpoint over the whole test set, computed here in one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.data import _replace_dunder_methods, _set_sampler_epoch
from pytorch_lightning.trainer.states import RunningStage
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, TensorDataset

from zoo.data import create_datamodule
from zoo.data.base import EpochSeededDataLoader, ImageDataModule, InMemoryLoader, TensorImageDataset, batch_seed
from zoo.data.transforms import BATCHED_AUGMENTATIONS, TransformSpec
from zoo.training.run import CheckpointError, _check_world_size, launched_as_rank_zero

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers


def _ids(n: int) -> TensorImageDataset:
    """``n`` tiny images whose label is their own index, so a batch's labels say which samples it holds."""
    return TensorImageDataset(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.arange(n))


def _loaders(dataset: TensorImageDataset, world_size: int, *, shuffle: bool = True, batch_size: int = 8,
             drop_last: bool = False) -> list[InMemoryLoader]:
    return [InMemoryLoader(dataset, batch_size, shuffle=shuffle, drop_last=drop_last, seed=1234,
                           epoch_fn=lambda: None, rank=r, world_size=world_size) for r in range(world_size)]


def _labels(loader: InMemoryLoader) -> list[int]:
    """The samples of the loader's next epoch, in order (the labels are the indices)."""
    return [int(v) for _, y in loader for v in y]


# --------------------------------------------------------------------------- in-memory loaders


@pytest.mark.parametrize("n,world_size", [(96, 2), (101, 2), (100, 3), (5, 4)])
def test_training_shards_are_disjoint_cover_the_epoch_and_have_equal_batches(n, world_size):
    loaders = _loaders(_ids(n), world_size)
    for epoch in range(2):  # every loader counts its own passes: the epochs 0 and 1
        shares = [_labels(loader) for loader in loaders]
        total = -(-n // world_size) * world_size
        assert {len(s) for s in shares} == {total // world_size}
        assert len({len(loader) for loader in loaders}) == 1
        everything = [i for s in shares for i in s]
        assert set(everything) == set(range(n))  # the union is the whole epoch
        # disjoint but for the padding: the first total - n samples of the epoch's order, seen twice
        assert len(everything) - len(set(everything)) == total - n
        # the shares are those of one order drawn from (seed, epoch): rank r takes every world_size-th index
        order = torch.randperm(n, generator=torch.Generator().manual_seed(batch_seed(1234, epoch, -1))).tolist()
        padded = (order * (1 + total // n))[:total]
        assert shares == [padded[r::world_size] for r in range(world_size)]


def test_training_shards_change_with_the_epoch_and_a_step_of_all_ranks_is_one_big_batch():
    n, b = 96, 8
    loaders = _loaders(_ids(n), 2, batch_size=b)
    single = InMemoryLoader(_ids(n), 2 * b, shuffle=True, seed=1234, epoch_fn=lambda: None)
    for _ in range(2):
        r0, r1, one = list(loaders[0]), list(loaders[1]), list(single)
        for (_, y0), (_, y1), (_, y) in zip(r0, r1, one, strict=True):
            # step i of the two ranks takes the samples of step i of one process with twice the batch
            assert sorted(torch.cat([y0, y1]).tolist()) == sorted(y.tolist())
    assert _labels(loaders[0]) != [int(v) for _, y in r0 for v in y]  # a new order in the next epoch


def test_one_process_takes_the_whole_epoch_as_before():
    """world_size=1 (the default) is the loader it always was: the order of (seed, epoch), batches in it."""
    n, b = 101, 8
    loader = InMemoryLoader(_ids(n), b, shuffle=True, seed=1234, epoch_fn=lambda: None)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(batch_seed(1234, 0, -1))).tolist()
    assert _labels(loader) == order and len(loader) == 13
    assert _labels(InMemoryLoader(_ids(n), b, shuffle=False)) == list(range(n))


def test_augmentation_draws_differ_between_ranks_and_are_the_single_process_ones_for_rank_zero_of_one():
    spec = TransformSpec(32, (0.5,), (0.5,), options={"padding": 4})
    images = torch.randint(0, 256, (1, 1, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    ds = TensorImageDataset(images.expand(64, -1, -1, -1).clone(), torch.zeros(64, dtype=torch.int64), None,
                            BATCHED_AUGMENTATIONS["pad_crop_flip"](spec))  # 64 copies of one image
    x0, x1 = (next(iter(loader))[0] for loader in _loaders(ds, 2, batch_size=16))
    assert not torch.equal(x0, x1)  # the same crops and flips on both ranks would be correlated augmentation
    one = next(iter(InMemoryLoader(ds, 16, shuffle=True, seed=1234, epoch_fn=lambda: None)))[0]
    assert torch.equal(one, ds.batch(torch.arange(16), generator=torch.Generator().manual_seed(
        batch_seed(1234, 0, 0)))[0])


@pytest.mark.parametrize("n", [101, 100])
def test_evaluation_shards_hold_every_sample_exactly_once(n):
    loaders = _loaders(_ids(n), 2, shuffle=False, batch_size=16)
    shares = [_labels(loader) for loader in loaders]
    assert shares == [list(range(0, n, 2)), list(range(1, n, 2))]  # no padding: each sample evaluated once
    assert [len(loader) for loader in loaders] == [-(-len(s) // 16) for s in shares]


def test_rank_and_world_size_are_checked():
    with pytest.raises(ValueError, match="rank must be an integer in"):
        InMemoryLoader(_ids(8), 4, shuffle=True, rank=2, world_size=2)
    with pytest.raises(ValueError, match="world_size must be an integer >= 1"):
        InMemoryLoader(_ids(8), 4, shuffle=True, world_size=0)


def test_a_rank_resumes_mid_epoch_at_its_own_position_bitwise():
    n, b = 101, 8
    straight = _loaders(_ids(n), 2, batch_size=b)[1]
    expected = list(straight)
    first = _loaders(_ids(n), 2, batch_size=b)[1]
    it = iter(first)
    for _ in range(3):
        next(it)
        first.mark_consumed()
    state = first.state_dict()
    assert state == {"epoch": 0, "position": 3, "seed": 1234, "world_size": 2}
    assert InMemoryLoader(_ids(n), b, shuffle=True).state_dict() == {"epoch": 0, "position": 0, "seed": 0}
    resumed = _loaders(_ids(n), 2, batch_size=b)[1]
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == len(expected) - 3
    for (xa, ya), (xb, yb) in zip(rest, expected[3:], strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_a_mid_epoch_state_of_another_world_size_is_refused():
    n, b = 101, 8
    two = _loaders(_ids(n), 2, batch_size=b)[0]
    it = iter(two)
    next(it)
    two.mark_consumed()
    state = two.state_dict()
    one = InMemoryLoader(_ids(n), b, shuffle=True, seed=1234, epoch_fn=lambda: None)
    one.load_state_dict(state)
    with pytest.raises(ValueError, match="resumes mid-epoch only with the same number of processes"):
        next(iter(one))
    # the state of an epoch that ended: the next epoch starts afresh under any world size
    one.load_state_dict(state)
    one._passes = 1  # the next epoch
    assert len(list(one)) == len(one)


def test_the_driver_refuses_a_mid_epoch_checkpoint_of_another_world_size(tmp_path):
    state = {"epoch": 0, "position": 1, "seed": 1234, "world_size": 2}
    connector = SimpleNamespace(use_distributed_sampler=True)

    def checkpoint(last_batch: bool) -> str:
        path = tmp_path / f"{'end' if last_batch else 'mid'}.ckpt"
        progress = {"epoch_loop.batch_progress": {"is_last_batch": last_batch}}
        torch.save({"epoch": 0, "loops": {"fit_loop": progress},
                    "DigitsDataModule": {"loader_seed": 1234, "train_loader": state}}, path)
        return str(path)

    with pytest.raises(CheckpointError, match=r"mid.ckpt was written in the middle of epoch 1 .* by 2 process"):
        _check_world_size(checkpoint(False), SimpleNamespace(world_size=1, _accelerator_connector=connector))
    _check_world_size(checkpoint(False), SimpleNamespace(world_size=2, _accelerator_connector=connector))
    _check_world_size(checkpoint(True), SimpleNamespace(world_size=1, _accelerator_connector=connector))


def test_the_datamodule_gives_its_loaders_the_trainers_rank_and_world_size():
    dm = create_datamodule("digits", batch_size=64)
    dm.setup("fit")
    connector = SimpleNamespace(use_distributed_sampler=True)
    shares = []
    for rank in (0, 1):
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2, current_epoch=0, _accelerator_connector=connector)
        train, val = dm.train_dataloader(), dm.val_dataloader()
        assert (train.rank, train.world_size, val.rank, val.world_size) == (rank, 2, rank, 2)
        shares.append(train.indices(0).tolist())
    assert len(shares[0]) == len(shares[1]) == 629 and set(shares[0]) | set(shares[1]) == set(range(1257))
    connector.use_distributed_sampler = False  # the user turned sharding off: every process reads everything
    assert dm.train_dataloader().world_size == 1


def test_streamed_loader_gets_lightnings_distributed_sampler_seeded_by_seed_and_epoch(monkeypatch):
    """Lightning re-creates the EpochSeededDataLoader around a DistributedSampler; the order depends on the
    run seed and the epoch (set_epoch); the evaluation loaders carry an unrepeated sampler of their own."""
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    train_orders: dict[int, list[list[int]]] = {}
    val_orders: dict[int, list[int]] = {}
    for rank in (0, 1):
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False)
        assert (trainer.global_rank, trainer.world_size) == (rank, 2)
        dm = ImageDataModule(batch_size=8)
        dm.train_set, dm.val_set = TensorDataset(torch.arange(101)), TensorDataset(torch.arange(51))
        dm.trainer = trainer
        with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
            train, val = dm.train_dataloader(), dm.val_dataloader()  # as Lightning asks for them
        train = trainer._data_connector._prepare_dataloader(train, shuffle=True, mode=RunningStage.TRAINING)
        assert isinstance(train, EpochSeededDataLoader) and isinstance(train.sampler, DistributedSampler)
        assert train._epoch_fn is not None and train.sampler.seed == 7 and len(train) == 7
        assert trainer._data_connector._prepare_dataloader(val, shuffle=False, mode=RunningStage.VALIDATING) is val
        val_orders[rank] = [int(v) for (x,) in val for v in x]
        train_orders[rank] = []
        for epoch in (0, 1, 0):
            _set_sampler_epoch(train, epoch)  # what Lightning does at every epoch start
            train_orders[rank].append([int(v) for (x,) in train for v in x])
    for rank in (0, 1):
        e0, e1, again = train_orders[rank]
        assert e0 == again and e0 != e1  # an epoch's order depends on (seed, epoch) only
    for epoch in (0, 1):
        r0, r1 = train_orders[0][epoch], train_orders[1][epoch]
        assert len(r0) == len(r1) == 51 and set(r0) | set(r1) == set(range(101))
        assert len(set(r0) & set(r1)) == 1  # DistributedSampler pads 101 to 102
    assert sorted(val_orders[0] + val_orders[1]) == list(range(51))  # each validation sample once


def test_rank_zero_is_read_from_the_launchers_variables(monkeypatch):
    for key in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert launched_as_rank_zero()
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert launched_as_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")  # a process Lightning started
    assert not launched_as_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "1")  # the first process of the second node
    assert not launched_as_rank_zero()
    monkeypatch.delenv("NODE_RANK")
    monkeypatch.setenv("SLURM_PROCID", "5")
    assert not launched_as_rank_zero()


# --------------------------------------------------------------------------- a real two-process run


class ShardProbe(pl.Callback):
    """Records, on each rank, the training and test samples its loaders hold, the samples of the batches that
    reached the training step (the labels of each batch are checked against them), into ``probe-<rank>.json``.

    Used by the ddp_sim run below (``+callbacks.probe._target_=test_distributed.ShardProbe``).
    """

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.info: dict[str, Any] = {"seen": [], "labels_match": []}

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loader = trainer.datamodule._train_loader
        self.order = loader.indices(trainer.current_epoch)
        self.info.update(rank=trainer.global_rank, world_size=trainer.world_size, loader_rank=loader.rank,
                         loader_world_size=loader.world_size, batches=len(loader), n=len(loader.dataset),
                         train=self.order.tolist())

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        loader = trainer.datamodule._train_loader
        idx = self.order[batch_idx * loader.batch_size:(batch_idx + 1) * loader.batch_size]
        self.info["seen"] += idx.tolist()
        self.info["labels_match"].append(bool(torch.equal(batch[1].cpu(), loader.dataset.targets[idx].cpu())))

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loader = trainer.test_dataloaders
        loader = loader[0] if isinstance(loader, (list, tuple)) else loader
        self.info.update(test=loader.indices(0).tolist(), test_n=len(loader.dataset))

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"probe-{trainer.global_rank}.json").write_text(json.dumps(self.info))


def _test_accuracy(checkpoint: Path, data_cfg: dict[str, Any]) -> tuple[int, int]:
    """(correct, total) of a checkpoint's model over the whole test set, in this one process."""
    import hydra

    import zoo

    model = zoo.load_checkpoint(checkpoint).eval()
    dm = hydra.utils.instantiate(data_cfg)
    dm.setup("test")
    correct = 0
    with torch.no_grad():
        for x, y in dm.test_dataloader():
            correct += int((model(x).argmax(1) == y).sum())
    return correct, len(dm.test_set)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    """``python train.py trainer=ddp_sim``: two CPU processes, 4 training batches each, one epoch."""
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    probe = run_dir.parent / "probe"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "trainer=ddp_sim", "trainer.max_epochs=1",
         "+trainer.limit_train_batches=4", "trainer.log_every_n_steps=1", "+callbacks.probe._target_="
         "test_distributed.ShardProbe", f"+callbacks.probe.out={probe}", f"hydra.run.dir={run_dir}",
         "tags=[ddp,sim]", "print_config=true"],
        cwd=run_dir.parent, env=env, capture_output=True, text=True, timeout=300)
    return proc, run_dir


def test_ddp_sim_run_writes_one_record_and_each_rank_trains_on_its_own_share(ddp_run):
    proc, run_dir = ddp_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed" and results["world_size"] == 2
    assert results["tags"] == ["ddp", "sim"]
    assert proc.stderr.count("process_group_backend: gloo") == 1  # print_config, by rank 0 only
    assert [p.name for p in run_dir.glob("results*.json")] == ["results.json"]
    segments = json.loads((run_dir / "segments.json").read_text())["segments"]
    assert [s["status"] for s in segments] == ["completed"]  # one segment: the other rank recorded none
    assert sorted(p.name for p in run_dir.glob(".hydra*")) == [".hydra"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "best-epoch000.ckpt", "last.ckpt", "model.json", "model.safetensors"]
    log = (run_dir / "train.log").read_text()
    assert log.count("epoch 1/1") == 1 and log.count("wrote ") == 1  # rank 0 logs the run

    probes = [json.loads((run_dir.parent / "probe" / f"probe-{r}.json").read_text()) for r in (0, 1)]
    for r, p in enumerate(probes):
        assert (p["rank"], p["world_size"], p["loader_rank"], p["loader_world_size"]) == (r, 2, r, 2)
        assert len(p["labels_match"]) == 4 and all(p["labels_match"])  # the batches are the loader's shares
    a, b = probes
    n = a["n"]
    assert n == 1257 and len(a["train"]) == len(b["train"]) == 629 and a["batches"] == b["batches"] == 10
    assert set(a["train"]) | set(b["train"]) == set(range(n))  # the union is the whole epoch
    assert len(set(a["train"]) & set(b["train"])) == 1  # 1257 is odd: one sample padded in
    assert len(a["seen"]) == len(b["seen"]) == 256 and not set(a["seen"]) & set(b["seen"])
    assert sorted(a["test"] + b["test"]) == list(range(a["test_n"]))  # each test image once


def test_ddp_sim_test_accuracy_is_the_accuracy_over_the_whole_test_set(ddp_run):
    proc, run_dir = ddp_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["tested_on"] == "best"
    correct, total = _test_accuracy(Path(results["best_checkpoint"]), results["config"]["data"])
    assert total == 360
    assert results["test/acc"] == pytest.approx(correct / total, abs=1e-7)
    assert round(results["test/acc"] * total) == correct


def test_the_ddp_configs_compose_and_their_keys_are_checked(tmp_path):
    from hydra_helpers import make_cfg

    from zoo.training.config_check import ConfigError, validate_config

    for choice in ("ddp", "ddp_sim"):
        cfg = make_cfg(tmp_path, [f"trainer={choice}"])
        validate_config(cfg)
        assert cfg.trainer.strategy is not None and cfg.trainer.num_nodes == 1
    ddp = make_cfg(tmp_path, ["trainer=ddp"]).trainer
    assert (ddp.strategy, ddp.sync_batchnorm, ddp.devices) == ("ddp", True, "auto")
    sim = make_cfg(tmp_path, ["trainer=ddp_sim"]).trainer
    assert (sim.devices, sim.strategy.process_group_backend) == (2, "gloo")
    with pytest.raises(ConfigError) as err:
        validate_config(make_cfg(tmp_path, ["trainer=ddp", "trainer.num_nodes=0", "trainer.sync_batchnorm=yes"]))
    assert "trainer.num_nodes=0: an integer >= 1 is needed; e.g. trainer.num_nodes=2" in str(err.value)
    assert "trainer.sync_batchnorm='yes': true or false is needed" in str(err.value)


# --------------------------------------------------------------------------- tags and print_config


def test_tags_and_print_config_are_checked(tmp_path):
    from hydra_helpers import make_cfg

    from zoo.training.config_check import ConfigError, validate_config

    cfg = make_cfg(tmp_path, [])
    assert (list(cfg.tags), cfg.print_config) == ([], False)
    validate_config(make_cfg(tmp_path, ["tags=[baseline,cifar]", "print_config=true"]))
    with pytest.raises(ConfigError) as err:
        validate_config(make_cfg(tmp_path, ["tags=baseline", "print_config=maybe"]))
    assert err.value.problems == [
        "tags='baseline': a list of non-empty strings or null (no tags) is needed (write a list: tags=[baseline]); "
        "e.g. tags=[baseline,cifar]",
        "print_config='maybe': true or false is needed (got a string); e.g. print_config=true"]
    with pytest.raises(ConfigError, match=r"tags=\[2024, 'x'\]: .* quote it, e.g. tags=\['2024'\]"):
        validate_config(make_cfg(tmp_path, ["tags=[2024,x]"]))


def test_print_config_tree_shows_the_groups_first_with_their_yaml(tmp_path):
    import io

    from hydra_helpers import make_cfg
    from rich.console import Console

    from zoo.training.run import print_config_tree

    out = io.StringIO()
    print_config_tree(make_cfg(tmp_path, ["trainer.max_epochs=7", "tags=[a]"]), Console(file=out, width=120))
    text = out.getvalue()
    assert text.startswith("config\n")
    order = [text.index(f"── {key}\n") for key in ("data", "model", "optim", "sched", "trainer", "seed", "tags")]
    assert order == sorted(order)
    assert "max_epochs: 7" in text and "_target_: zoo.data.DigitsDataModule" in text and "- a" in text
