"""The opt-in training recipes: EMA of the weights, mixup / CutMix, RandAugment / TrivialAugment, random erasing
and gradient accumulation.

Each is checked for what it computes (the EMA against a hand-computed average, mixup against the convex
combination with its drawn lambda, erasing's rectangles, accumulation's gradient against one large batch),
for its reproducibility from a seed, and in short digits runs of ``train()``: each option trains, a run with
EMA validates, tests and exports the averaged weights, and a run with EMA, mixup, CutMix and batched erasing
killed mid-epoch and resumed ends bitwise where the straight run ends.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
from hydra_helpers import ROOT, make_cfg
from test_resume import KILLED, _assert_same_run
from torchvision.transforms import v2

from zoo.data import create_datamodule
from zoo.data.transforms import (
    BatchMix,
    BatchPadCropFlip,
    BatchRandomErasing,
    Normalize,
    TransformSpec,
    build_train_transform,
)
from zoo.training import CheckpointError, ClassificationModule, train
from zoo.training.module import ema_decay, make_ema

# ---------------------------------------------------------------------------- EMA


def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


@pytest.mark.parametrize("warmup", [True, False])
def test_ema_equals_the_hand_computed_average(warmup: bool) -> None:
    """After N steps the EMA's parameters and BatchNorm running statistics are the average computed by hand
    (first update copies; then ema = d * ema + (1 - d) * w, d = min(decay, k / (9 + k)) at update k);
    num_batches_tracked is copied; the model itself stays a plain module without hooks."""
    model = _bn_net()
    ema = make_ema(model, decay=0.8, warmup=warmup)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    hand: dict[str, torch.Tensor] = {}
    for k in range(1, 9):
        x = torch.randn(16, 6)
        opt.zero_grad()
        F.cross_entropy(model(x), torch.randint(0, 3, (16,))).backward()
        opt.step()
        ema.update_parameters(model)
        current = {n: t.detach().clone() for n, t in model.state_dict().items()}
        d = min(0.8, k / (9 + k)) if warmup else 0.8
        assert ema_decay(0.8, k - 1, warmup) == pytest.approx(d)
        for n, t in current.items():
            if k == 1 or not t.is_floating_point():
                hand[n] = t
            else:
                hand[n] = d * hand[n] + (1 - d) * t
    averaged = ema.module.state_dict()
    assert int(ema.n_averaged) == 8
    for n, t in hand.items():
        if t.is_floating_point():
            torch.testing.assert_close(averaged[n], t, rtol=1e-5, atol=1e-6, msg=n)
        else:
            assert torch.equal(averaged[n], t), n  # num_batches_tracked: copied
    assert "1.running_mean" in hand and not torch.equal(averaged["1.running_mean"], model[1].running_mean)
    assert not torch.equal(averaged["0.weight"], model[0].weight.detach())
    # the model is untouched by the average: plain type, no hooks, no gradients needed by the copy
    assert type(model) is nn.Sequential
    for m in model.modules():
        assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks), m
    assert all(not p.requires_grad for p in ema.parameters())
    with pytest.raises(ValueError, match=r"ema\.decay=1\.0: a number in \[0, 1\)"):
        make_ema(model, decay=1.0)


def _accuracy(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(images).argmax(1) == targets).float().mean())


def _metric_rows(run_dir: Path, key: str) -> list[float]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [float(r[key]) for r in csv.DictReader(f) if r.get(key)]


def test_ema_run_validates_tests_and_exports_the_average(tmp_path: Path) -> None:
    """With ema.enabled=true: the checkpoints carry the average (ema.module.*, n_averaged = the steps), the
    logged validation accuracy is the average's, the test ran on the best checkpoint's average, and
    model.safetensors holds it; results.json says "ema": true; a resume without EMA is refused by name."""
    import hydra
    from safetensors.torch import load_file

    import zoo

    run = tmp_path / "run"
    cfg = make_cfg(run, ["trainer.max_epochs=2", "ema.enabled=true", "ema.decay=0.9"])
    res = train(cfg)
    assert res["ema"] is True and res["tested_on"] == "best"
    ckpt = torch.load(res["best_checkpoint"], map_location="cpu", weights_only=True)
    sd = ckpt["state_dict"]
    assert int(sd["ema.n_averaged"]) == ckpt["global_step"] > 0
    averaged = {k[len("ema.module."):]: v for k, v in sd.items() if k.startswith("ema.module.")}
    raw = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    assert averaged.keys() == raw.keys()
    assert any(not torch.equal(averaged[k], raw[k]) for k in raw)
    exported = load_file(str(run / "checkpoints" / "model.safetensors"))
    assert exported.keys() == averaged.keys()
    assert all(torch.equal(exported[k], averaged[k]) for k in averaged)

    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    dm.setup("test")
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    ema_model = zoo.create_model("lenet5_modern", num_classes=10, in_chans=1)
    ema_model.load_state_dict({k[len("ema.module."):]: v for k, v in last.items() if k.startswith("ema.module.")})
    val = (dm.val_set.images, dm.val_set.targets)
    assert _metric_rows(run, "val/acc")[-1] == pytest.approx(_accuracy(ema_model, *val), abs=1e-6)
    tested = zoo.load_checkpoint(run)  # model.safetensors: the average of the best checkpoint
    assert res["test/acc"] == pytest.approx(_accuracy(tested, dm.test_set.images, dm.test_set.targets), abs=1e-6)
    from_ckpt = zoo.load_checkpoint(res["best_checkpoint"])  # a .ckpt of an EMA run gives the average too
    assert all(torch.equal(from_ckpt.state_dict()[k], averaged[k]) for k in averaged)

    with pytest.raises(CheckpointError, match=r"ema\.enabled=true, but this run has ema\.enabled=false"):
        train(make_cfg(tmp_path / "other", ["trainer.max_epochs=3", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]))


# ---------------------------------------------------------------------------- mixup and CutMix


def test_mixup_is_the_convex_combination_with_the_drawn_lambda() -> None:
    x, y = torch.randn(8, 3, 6, 6), torch.arange(8)
    mix = BatchMix(10, mixup_alpha=0.4)
    state = torch.get_rng_state()
    out, target = mix(x, y, seed=3)
    assert torch.equal(torch.get_rng_state(), state), "the global RNG must not be drawn from"
    lam = float(target[0, 0])
    assert 0 < lam < 1
    assert torch.allclose(target[torch.arange(8), y], torch.full((8,), lam))
    assert torch.allclose(target[torch.arange(8), y.roll(1)], torch.full((8,), 1 - lam))
    torch.testing.assert_close(out, lam * x + (1 - lam) * x.roll(1, 0))
    again, target_again = mix(x, y, seed=3)
    assert torch.equal(again, out) and torch.equal(target_again, target)
    assert float(mix(x, y, seed=4)[1][0, 0]) != lam


def test_cutmix_pastes_a_box_weighted_by_its_area() -> None:
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8)
    out, target = BatchMix(10, cutmix_alpha=1.0)(x, y, seed=1)
    pasted = (out == x.roll(1, 0)).all(1) & (out != x).any(1)  # (B, H, W)
    assert torch.equal((out == x) | (out == x.roll(1, 0)), torch.ones_like(out, dtype=torch.bool))
    assert torch.equal(pasted, pasted[:1].expand_as(pasted)), "one box for the batch"
    lam = 1 - pasted[0].float().mean()
    assert torch.allclose(target[torch.arange(8), y], lam.expand(8))
    assert torch.allclose(target.sum(1), torch.ones(8))


def test_mix_choice_and_probability_come_from_the_seed() -> None:
    x, y = torch.randn(8, 1, 8, 8), torch.arange(8)
    both = BatchMix(10, mixup_alpha=0.4, cutmix_alpha=1.0, prob=0.6)
    kinds = []
    for seed in range(40):
        out, target = both(x, y, seed=seed)
        if target.dim() == 1:
            kinds.append("none")
            assert torch.equal(out, x) and torch.equal(target, y)
        else:
            kinds.append("cutmix" if ((out == x) | (out == x.roll(1, 0))).all() else "mixup")
    assert {"none", "mixup", "cutmix"} <= set(kinds), kinds
    assert [both(x, y, seed=s)[1].dim() == 1 for s in range(40)] == [k == "none" for k in kinds]
    assert not BatchMix(10).enabled and not BatchMix(10, mixup_alpha=0.2, prob=0.0).enabled


def test_mixed_training_step_uses_soft_targets_and_hard_label_accuracy() -> None:
    """The loss is taken against the mixed targets; train/acc counts each image's own label."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    module = ClassificationModule(model, functools.partial(torch.optim.SGD, lr=0.1), num_classes=10,
                                  mixup_alpha=0.4, cutmix_alpha=1.0)
    x, y = torch.randn(32, 1, 4, 4), torch.randint(0, 10, (32,))
    loss = module.training_step((x, y), 0)
    mixed, soft = module.mixer(x, y, module._mix_batch_seed(0))
    assert soft.shape == (32, 10) and not torch.equal(mixed, x)
    logits = model(mixed)
    torch.testing.assert_close(loss, F.cross_entropy(logits, soft))
    loss_mean, acc = module.train_epoch_stats()
    torch.testing.assert_close(loss_mean, loss.detach())
    torch.testing.assert_close(acc, (logits.argmax(1) == y).float().mean())


# ---------------------------------------------------------------------------- RandAugment, TrivialAugment


def _run_seeded(transform, image: Any, seed: int) -> torch.Tensor:
    """``transform(image)`` with the global CPU RNG seeded with ``seed`` (and restored afterwards)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transform(image)


@pytest.mark.parametrize("recipe, policy", [("randaugment", v2.RandAugment), ("trivialaugment", v2.TrivialAugmentWide)])
def test_policy_recipes_change_images_keep_shape_and_follow_the_seed(recipe: str, policy: type) -> None:
    from zoo.data.digits import load_digits_uint8

    images = torch.nn.functional.interpolate(load_digits_uint8()[0][:48].float(), size=32).round().to(torch.uint8)
    spec = TransformSpec(32, (0.2,), (0.3,), options={"crop": "none", "flip": False})
    tf, plain = build_train_transform(recipe, spec), build_train_transform("none", spec)
    steps = [type(t) for t in tf.transforms]
    assert steps.index(policy) < steps.index(Normalize), "the policy runs on the uint8 image, before normalising"
    changed = 0
    for i, img in enumerate(images):
        out = _run_seeded(tf, img, i)
        assert out.dtype == torch.float32 and out.shape == img.shape
        assert torch.equal(out, _run_seeded(tf, img, i))
        changed += not torch.equal(out, plain(img))
    assert changed > len(images) // 2, changed
    outs = [_run_seeded(tf, images[0], s) for s in range(6)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    rgb = torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8)
    out = _run_seeded(build_train_transform(recipe, TransformSpec(24, (0.5,) * 3, (0.25,) * 3)), rgb, 0)
    assert out.shape == rgb.shape and out.dtype == torch.float32
    with pytest.raises(ValueError, match=r"magnitude=31: an integer in \[0, 30\]"):
        build_train_transform("randaugment", TransformSpec(32, (0.2,), (0.3,), options={"magnitude": 31}))


def test_policy_recipe_in_memory_resumes_mid_epoch_exactly() -> None:
    """Digits with randaugment: the per-image path draws from the batch's seeded generator, so a loader resumed
    at batch 5 gives bitwise the batches of the straight pass."""
    kwargs = dict(batch_size=100, augment="randaugment", augment_kwargs={"padding": 2, "flip": False})
    dm = create_datamodule("digits", **kwargs)
    dm.setup("fit")
    dm.loader_seed = 123
    straight = list(dm.train_dataloader())
    resumed = create_datamodule("digits", **kwargs)
    resumed.setup("fit")
    resumed.load_state_dict({"loader_seed": 123, "train_loader": {"epoch": 0, "position": 5, "seed": 123}})
    rest = list(resumed.train_dataloader())
    assert len(rest) == len(straight) - 5
    for (xa, ya), (xb, yb) in zip(straight[5:], rest):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert straight[0][0].dtype == torch.float32


@pytest.mark.parametrize("recipe", ["randaugment", "trivialaugment"])
def test_policy_recipes_on_streamed_image_folders(recipe: str, imagefolder_root: Path) -> None:
    dm = create_datamodule("imagefolder", root=imagefolder_root, num_workers=0, image_size=32, val_size=3,
                           augment=recipe, augment_kwargs={"erase_p": 0.5})
    dm.setup("fit")
    first = [_run_seeded(lambda i: dm.train_set[i][0], i, seed=7) for i in range(4)]
    assert all(a.shape == (3, 32, 32) and a.dtype == torch.float32 for a in first)
    assert all(torch.equal(a, _run_seeded(lambda i: dm.train_set[i][0], i, seed=7)) for i, a in enumerate(first))


# ---------------------------------------------------------------------------- random erasing


def test_batched_random_erasing_draws_rectangles_per_image() -> None:
    batch = torch.full((2000, 1, 16, 16), 200, dtype=torch.uint8)
    erase = BatchRandomErasing(BatchPadCropFlip(0, False, (0.0,), (1.0,)), p=0.4)
    out = erase(batch, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.shape == batch.shape
    assert torch.equal(out, erase(batch, generator=torch.Generator().manual_seed(0)))
    zero = out[:, 0] == 0  # (B, H, W): the erased pixels
    hit = zero.flatten(1).any(1)
    assert abs(float(hit.float().mean()) - 0.4) < 0.05
    assert torch.all(out[~hit] == 200 / 255)
    for mask in zero[hit][:200]:
        rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert int(mask.sum()) == h * w, "a rectangle"
        assert 0.01 <= h * w / 256 <= 0.36 and h < 16 and w < 16
    # erase_p reaches the batched recipe of an in-memory datamodule, and the per-image recipes
    dm = create_datamodule("digits", augment="pad_crop", augment_kwargs={"padding": 2, "erase_p": 0.5})
    dm.setup("fit")
    assert isinstance(dm.train_set.batch_transform, BatchRandomErasing)
    one = build_train_transform("none", TransformSpec(16, (0.0,), (1.0,), options={"erase_p": 1.0}))
    assert (_run_seeded(one, batch[0], 0) == 0).any()
    with pytest.raises(ValueError, match=r"erase_p=1\.5: a number in \[0, 1\]"):
        build_train_transform("none", TransformSpec(16, (0.0,), (1.0,), options={"erase_p": 1.5}))


# ---------------------------------------------------------------------------- gradient accumulation


class _Grads(pl.Callback):
    """Keeps the gradients of every optimizer step."""

    def __init__(self) -> None:
        self.steps: list[list[torch.Tensor]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.steps.append([p.grad.detach().clone() for p in pl_module.model.parameters()])


def _one_step(batch_size: int, accumulate: int) -> tuple[list[torch.Tensor], list[torch.Tensor], int]:
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))  # no batch norm
    x, y = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.arange(64) % 10
    module = ClassificationModule(model, functools.partial(torch.optim.SGD, lr=0.5), num_classes=10)
    grads = _Grads()
    trainer = pl.Trainer(accelerator="cpu", max_steps=1, accumulate_grad_batches=accumulate, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, callbacks=[grads])
    trainer.fit(module, train_dataloaders=DataLoader(TensorDataset(x, y), batch_size=batch_size))
    return grads.steps[0], [p.detach().clone() for p in model.parameters()], int(trainer.global_step)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_accumulating_two_batches_of_32_gives_the_gradient_of_one_batch_of_64() -> None:
    g_acc, w_acc, steps_acc = _one_step(32, 2)
    g_one, w_one, steps_one = _one_step(64, 1)
    assert steps_acc == steps_one == 1
    for a, b in zip(g_acc, g_one):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    for a, b in zip(w_acc, w_one):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_schedule_counts_optimizer_steps_under_accumulation(tmp_path: Path) -> None:
    """Digits: 20 batches an epoch, 3 accumulated per step -> ceil(20 / 3) = 7 steps; the cosine schedule is
    planned over those 7 steps and ends at eta_min."""
    res = train(make_cfg(tmp_path, ["trainer.max_epochs=1", "trainer.accumulate_grad_batches=3"]))
    assert res["global_steps"] == 7
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    sched = ckpt["lr_schedulers"][0]
    assert sched["T_max"] == 7 and sched["last_epoch"] == 7
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------------------- short digits runs


@pytest.mark.parametrize("overrides", [
    ["ema.enabled=true", "ema.decay=0.99"],
    ["mixup.alpha=0.2"],
    ["cutmix.alpha=1.0"],
    ["data.augment=randaugment", "+data.augment_kwargs.flip=false"],
    ["data.augment=trivialaugment", "+data.augment_kwargs.flip=false"],
    ["+data.augment_kwargs.erase_p=0.25"],
    ["trainer.accumulate_grad_batches=2"],
], ids=lambda o: o[0].split("=")[0].lstrip("+"))
def test_short_digits_run_with_the_option_learns(overrides: list[str], tmp_path: Path) -> None:
    res = train(make_cfg(tmp_path, ["trainer.max_epochs=3", *overrides]))
    losses = _metric_rows(tmp_path, "train/loss_epoch")
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert res["status"] == "completed" and res["val/acc_best"] > 0.3, res["val/acc_best"]


# ---------------------------------------------------------------------------- config checks


def test_config_check_names_bad_recipe_values(tmp_path: Path) -> None:
    from zoo.training.config_check import ConfigError, validate_config

    cfg = make_cfg(tmp_path, ["ema.enabled=yes", "ema.decay=1.0", "mixup.alpha=-1", "cutmix=1.0", "mix_prob=1.5",
                              "trainer.accumulate_grad_batches=0", "data.augment=randaugment",
                              "+data.augment_kwargs.erase_p=2", "+data.augment_kwargs.magnitude=31",
                              "+data.augment_kwargs.crop=center", "+data.augment_kwargs.flip=1"])
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    assert info.value.problems == [
        "trainer.accumulate_grad_batches=0: an integer >= 1 is needed; e.g. trainer.accumulate_grad_batches=1",
        "data.augment_kwargs.erase_p=2: a number in [0, 1] (0: off) is needed; e.g. data.augment_kwargs.erase_p=0.25",
        "data.augment_kwargs.magnitude=31: an integer in [0, 30] (below num_magnitude_bins=31) is needed; "
        "e.g. data.augment_kwargs.magnitude=9",
        "data.augment_kwargs.flip=1: true or false is needed (got an integer); e.g. data.augment_kwargs.flip=true",
        "data.augment_kwargs.crop='center': one of 'pad', 'resized', 'none' is needed; "
        "e.g. data.augment_kwargs.crop=pad",
        "cutmix=1.0: a mapping {alpha} is needed (got a float); e.g. cutmix.alpha=1.0",
        "ema.enabled='yes': true or false is needed (got a string; write true or false); e.g. ema.enabled=true",
        "ema.decay=1.0: a number in [0, 1) is needed (1 would never move the average); e.g. ema.decay=0.9998",
        "mixup.alpha=-1: a number >= 0 (0: off) is needed; e.g. mixup.alpha=0.2",
        "mix_prob=1.5: a number in [0, 1] is needed; e.g. mix_prob=1.0",
    ]
    validate_config(make_cfg(tmp_path, ["ema.enabled=true", "mixup.alpha=0.2", "cutmix.alpha=1.0", "mix_prob=0.5",
                                        "data.augment=trivialaugment", "+data.augment_kwargs.erase_p=0.25",
                                        "trainer.accumulate_grad_batches=4"]))


def test_checkpoints_of_runs_before_the_recipe_keys_still_resume(tmp_path: Path) -> None:
    """A saved config without ema, mixup, cutmix, mix_prob and trainer.accumulate_grad_batches reads them as off."""
    from omegaconf import OmegaConf

    from zoo.training.records import config_changes
    from zoo.training.run import RESUME_IGNORED, _with_recipe_defaults

    new = OmegaConf.to_container(make_cfg(tmp_path, []), resolve=False)
    old = {k: v for k, v in new.items() if k not in ("ema", "mixup", "cutmix", "mix_prob")}
    old["trainer"] = {k: v for k, v in new["trainer"].items() if k != "accumulate_grad_batches"}
    assert config_changes(old, new, ignore=RESUME_IGNORED)  # what a plain comparison would refuse
    assert config_changes(_with_recipe_defaults(old), new, ignore=RESUME_IGNORED) == {}
    on = {**new, "mixup": {"alpha": 0.2}}
    assert config_changes(_with_recipe_defaults(old), on, ignore=RESUME_IGNORED) == {"mixup.alpha": (0.0, 0.2)}


# ---------------------------------------------------------------------------- exact resume


RECIPES = ["model.dropout=0.2", "trainer.max_epochs=2", "trainer.deterministic=true",
           "callbacks.last_checkpoint.every_n_train_steps=7", "logger=csv", "ema.enabled=true", "ema.decay=0.9",
           "mixup.alpha=0.4", "cutmix.alpha=1.0", "mix_prob=0.8", "+data.augment_kwargs.erase_p=0.5"]


def _train_subprocess(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "tests"), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *RECIPES, f"hydra.run.dir={run_dir}", *overrides],
                          cwd=run_dir.parent, env=env, capture_output=True, text=True, timeout=300)


def test_recipes_kill_and_resume_is_bitwise_exact(tmp_path: Path) -> None:
    """EMA, mixup + CutMix and batched random erasing on: a run SIGKILLed after step 10 and resumed from its
    step-7 checkpoint (mid-epoch) ends with weights, EMA, optimizer, best checkpoint and test figures
    bitwise equal to the straight run's."""
    reference = tmp_path / "reference"
    proc = _train_subprocess(reference)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "run"
    killed = _train_subprocess(run, "+callbacks.killer._target_=resume_helpers.KillAt",
                               "+callbacks.killer.point=step:10")
    assert killed.returncode == KILLED, killed.stderr[-3000:]
    resumed = _train_subprocess(run, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(reference, run)
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert int(last["state_dict"]["ema.n_averaged"]) == last["global_step"] and "mix_seed" in last
    results = json.loads((run / "results.json").read_text())
    assert results["ema"] is True and [s["start_step"] for s in results["segments"]] == [0, 7]
