"""zoo.training.config_check: every bad key of a composed training config is named in one error.

The configs are composed from configs/train.yaml with Hydra's compose API and command-line
overrides, exactly as ``python train.py <overrides>`` composes them, so the checks run against the
real groups and their defaults.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra_helpers import CONFIGS, make_cfg
from omegaconf import DictConfig, open_dict

from zoo.training.config_check import ConfigError, validate_config

EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))
# Every option of the groups the checks read (models are covered below by their own list).
GROUP_OPTIONS = [f"{group}={p.stem}" for group in ("data", "optim", "sched", "trainer", "callbacks", "debug")
                 for p in sorted((CONFIGS / group).glob("*.yaml"))]
# Models that no experiment preset uses (the presets cover the others).
_PRESET_MODELS = {m for p in (CONFIGS / "experiment").glob("*.yaml")
                  for m in re.findall(r"override /model: *(\w+)", p.read_text())}
MODELS = sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml") if p.stem not in _PRESET_MODELS)


def _error(tmp_path: Path, overrides: list[str]) -> ConfigError:
    """Composes the config with ``overrides`` and returns the ConfigError that validation raises."""
    cfg = make_cfg(tmp_path, overrides)
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    return info.value


# (command-line overrides, the key the message must name, repr of the bad value in the message)
BAD = [
    # top level
    (["seed=-5"], "seed", "-5"),
    (["seed=abc"], "seed", "'abc'"),
    (["seed=1.5"], "seed", "1.5"),
    (["seed=4294967296"], "seed", "4294967296"),
    (["ckpt_path=''"], "ckpt_path", "''"),
    (["ckpt_path=5"], "ckpt_path", "5"),
    (["test_on_best=no"], "test_on_best", "'no'"),
    (["test_on_best=1"], "test_on_best", "1"),
    (["++overwrite=yes"], "overwrite", "'yes'"),
    (["paper_result=3"], "paper_result", "3"),
    (["task_name=''"], "task_name", "''"),
    (["task_name=null"], "task_name", "None"),
    # loss
    (["loss.label_smoothing=1.0"], "loss.label_smoothing", "1.0"),
    (["loss.label_smoothing=-0.1"], "loss.label_smoothing", "-0.1"),
    (["loss.aux_weight=-1"], "loss.aux_weight", "-1"),
    (["loss.aux_weight=abc"], "loss.aux_weight", "'abc'"),
    (["loss.aux_weight=true"], "loss.aux_weight", "True"),
    # trainer
    (["trainer.max_epochs=abc"], "trainer.max_epochs", "'abc'"),
    (["trainer.max_epochs=0"], "trainer.max_epochs", "0"),
    (["trainer.max_epochs=-1"], "trainer.max_epochs", "-1"),
    (["trainer.max_epochs=true"], "trainer.max_epochs", "True"),
    (["trainer.max_epochs='30'"], "trainer.max_epochs", "'30'"),
    (["trainer.max_epochs=3", "trainer.min_epochs=5"], "trainer.min_epochs", "5"),
    (["trainer.min_epochs=-1"], "trainer.min_epochs", "-1"),
    (["trainer.check_val_every_n_epoch=0"], "trainer.check_val_every_n_epoch", "0"),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps", "0"),
    (["trainer.gradient_clip_val=-1"], "trainer.gradient_clip_val", "-1"),
    (["trainer.gradient_clip_val=0"], "trainer.gradient_clip_val", "0"),
    (["+trainer.gradient_clip_algorithm=l2"], "trainer.gradient_clip_algorithm", "'l2'"),
    (["trainer.deterministic=maybe"], "trainer.deterministic", "'maybe'"),
    (["trainer.precision=8"], "trainer.precision", "8"),
    (["trainer.precision=fp16"], "trainer.precision", "'fp16'"),
    (["trainer.devices=0"], "trainer.devices", "0"),
    (["trainer.devices=[]"], "trainer.devices", "[]"),
    (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches", "0"),
    (["+trainer.limit_train_batches=0"], "trainer.limit_train_batches", "0"),
    (["+trainer.limit_val_batches=1.5"], "trainer.limit_val_batches", "1.5"),
    (["+trainer.limit_test_batches=0.0"], "trainer.limit_test_batches", "0.0"),
    (["debug=limit", "trainer.limit_train_batches=-0.5"], "trainer.limit_train_batches", "-0.5"),
    (["+trainer.fast_dev_run=-1"], "trainer.fast_dev_run", "-1"),
    (["+trainer.overfit_batches=-1"], "trainer.overfit_batches", "-1"),
    (["+trainer.num_sanity_val_steps=-2"], "trainer.num_sanity_val_steps", "-2"),
    # data
    (["data.batch_size=1.5"], "data.batch_size", "1.5"),
    (["data.batch_size=0"], "data.batch_size", "0"),
    (["data.eval_batch_size=0"], "data.eval_batch_size", "0"),
    (["data.num_workers=-1"], "data.num_workers", "-1"),
    (["data.image_size=0"], "data.image_size", "0"),
    (["data.val_size=1.0"], "data.val_size", "1.0"),
    (["data.val_size=0"], "data.val_size", "0"),
    (["data.test_size=-1"], "data.test_size", "-1"),
    (["data.split_seed=-1"], "data.split_seed", "-1"),
    (["data.augment=''"], "data.augment", "''"),
    (["data.augment_kwargs=5"], "data.augment_kwargs", "5"),
    (["data.download=no"], "data.download", "'no'"),
    (["data.pin_memory=1"], "data.pin_memory", "1"),
    (["++data.persistent_workers=maybe"], "data.persistent_workers", "'maybe'"),
    (["++data.drop_last=2"], "data.drop_last", "2"),
    (["data.resize_mode=crop"], "data.resize_mode", "'crop'"),
    (["data.root=5"], "data.root", "5"),
    # optim
    (["optim._target_=5"], "optim._target_", "5"),
    (["optim.lr=0"], "optim.lr", "0"),
    (["optim.lr=abc"], "optim.lr", "'abc'"),
    (["optim.lr=-0.1"], "optim.lr", "-0.1"),
    (["optim.lr=inf"], "optim.lr", "inf"),
    (["optim.weight_decay=-1"], "optim.weight_decay", "-1"),
    (["optim=sgd", "optim.momentum=1.0"], "optim.momentum", "1.0"),
    (["optim=sgd", "optim.nesterov=yes"], "optim.nesterov", "'yes'"),
    (["optim.betas=[0.9,1.0]"], "optim.betas", "[0.9, 1.0]"),
    (["optim.betas=[0.9]"], "optim.betas", "[0.9]"),
    (["++optim.eps=0"], "optim.eps", "0"),
    # sched
    (["sched.interval=batch"], "sched.interval", "'batch'"),
    (["sched.warmup_steps=-5"], "sched.warmup_steps", "-5"),
    (["sched.warmup_factor=0"], "sched.warmup_factor", "0"),
    (["sched.warmup_mode=cosine"], "sched.warmup_mode", "'cosine'"),
    (["sched.monitor=5"], "sched.monitor", "5"),
    (["sched=multistep", "sched.scheduler.milestones=[75,50]"], "sched.scheduler.milestones", "[75, 50]"),
    (["sched=multistep", "sched.scheduler.milestones=[0,10]"], "sched.scheduler.milestones", "[0, 10]"),
    (["sched=multistep", "sched.scheduler.gamma=0"], "sched.scheduler.gamma", "0"),
    (["sched=onecycle", "sched.scheduler.pct_start=1.0"], "sched.scheduler.pct_start", "1.0"),
    (["sched=onecycle", "sched.scheduler.total_steps=0"], "sched.scheduler.total_steps", "0"),
    (["sched.scheduler.eta_min=-1"], "sched.scheduler.eta_min", "-1"),
    (["sched.scheduler.T_max=0"], "sched.scheduler.T_max", "0"),
    (["sched=step", "sched.scheduler.step_size=0"], "sched.scheduler.step_size", "0"),
    (["sched=plateau", "sched.scheduler.patience=-1"], "sched.scheduler.patience", "-1"),
    (["sched=plateau", "sched.scheduler.factor=1.0"], "sched.scheduler.factor", "1.0"),
    (["sched.scheduler=5"], "sched.scheduler", "5"),
    (["sched.scheduler._target_=null"], "sched.scheduler._target_", "None"),
    # callbacks
    (["callbacks.model_checkpoint.save_top_k=-2"], "callbacks.model_checkpoint.save_top_k", "-2"),
    (["++callbacks.last_checkpoint.every_n_train_steps=-1"], "callbacks.last_checkpoint.every_n_train_steps", "-1"),
    # model
    (["model.name=''"], "model.name", "''"),
    (["model=resnet18", "++model.small_input=no"], "model.small_input", "'no'"),
    (["+model.small_input=no"], "model.small_input", "'no'"),
    (["model=resnet18", "++model.small_input=1"], "model.small_input", "1"),
    (["++model.num_classes=0"], "model.num_classes", "0"),
    (["++model.num_classes=10.0"], "model.num_classes", "10.0"),
    (["++model.in_chans=0"], "model.in_chans", "0"),
    (["model=vit_tiny_patch4", "++model.image_size=0"], "model.image_size", "0"),
    (["model.dropout=1.0"], "model.dropout", "1.0"),
    (["model=googlenet", "model.aux_dropout=-0.1"], "model.aux_dropout", "-0.1"),
    (["model=vit_tiny_patch4", "model.attn_dropout=1.5"], "model.attn_dropout", "1.5"),
    (["++model.drop_path_rate=abc"], "model.drop_path_rate", "'abc'"),
    # a checked key whose interpolation cannot be resolved
    (["data.batch_size=${data.nope}"], "data.batch_size", "'${data.nope}'"),
]


def _case_id(case: tuple[list[str], str, str]) -> str:
    return " ".join(case[0])


@pytest.mark.parametrize("overrides, key, bad", BAD, ids=[_case_id(c) for c in BAD])
def test_bad_value_is_named(tmp_path: Path, overrides: list[str], key: str, bad: str) -> None:
    err = _error(tmp_path, overrides)
    assert len(err.problems) == 1, err.problems
    line = err.problems[0]
    assert line.startswith(f"{key}={bad}"), line
    assert f"e.g. {key}=" in line
    assert " is needed" in line
    assert line in str(err)


@pytest.mark.parametrize("group, example", [("optim", "optim=adam"), ("sched", "sched=cosine"),
                                            ("loss", "loss={"), ("model", "model=lenet5")])
def test_missing_group_is_named(tmp_path: Path, group: str, example: str) -> None:
    err = _error(tmp_path, [f"~{group}"])
    assert err.problems == [line for line in err.problems if line.startswith(f"{group} is absent")]
    assert example in err.problems[0]


def test_absent_required_key_is_named_with_plus_override(tmp_path: Path) -> None:
    err = _error(tmp_path, ["~trainer.max_epochs", "~optim.lr"])
    assert err.problems == [
        "trainer.max_epochs is absent: an integer >= 1 is needed; e.g. +trainer.max_epochs=30",
        "optim.lr is absent: a number > 0 is needed; e.g. +optim.lr=0.001",
    ]


def test_message_format(tmp_path: Path) -> None:
    """The documented lines, word for word, all in one error, with a header and a closing line."""
    err = _error(tmp_path, ["trainer.max_epochs=abc", "data.batch_size=1.5", "optim.lr=0", "seed=-5",
                            "model=resnet18", "++model.small_input=no"])
    assert isinstance(err, ValueError)
    assert "trainer.max_epochs='abc': an integer >= 1 is needed; e.g. trainer.max_epochs=30" in err.problems
    assert "data.batch_size=1.5: an integer >= 1 is needed (got a float); e.g. data.batch_size=2" in err.problems
    assert "optim.lr=0: a number > 0 is needed; e.g. optim.lr=0.001" in err.problems
    assert any(p.startswith("seed=-5: ") and p.endswith("e.g. seed=0") for p in err.problems)
    assert any(p.startswith("model.small_input='no': ") and p.endswith("e.g. model.small_input=false")
               for p in err.problems)
    lines = str(err).splitlines()
    assert lines[0] == "invalid config (5 problems):"
    assert lines[1:6] == [f"  {p}" for p in err.problems]
    assert "configs/" in lines[-1] and "command-line overrides" in lines[-1]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    overrides = ["seed=abc", "loss.aux_weight=-1", "trainer.max_epochs=-1", "trainer.check_val_every_n_epoch=0",
                 "data.num_workers=-1", "optim.lr=abc", "sched.warmup_steps=-5", "trainer.gradient_clip_val=-1",
                 "callbacks.model_checkpoint.save_top_k=-2", "+model.small_input=no"]
    err = _error(tmp_path, overrides)
    keys = [o.lstrip("+").split("=", 1)[0] for o in overrides]
    assert len(err.problems) == len(keys)
    for key in keys:
        assert sum(p.startswith(f"{key}=") for p in err.problems) == 1, key
    assert str(err).splitlines()[0] == f"invalid config ({len(keys)} problems):"
    assert "Lightning train forever" in str(err)


def test_one_problem_header_is_singular(tmp_path: Path) -> None:
    assert str(_error(tmp_path, ["seed=-5"])).splitlines()[0] == "invalid config (1 problem):"


@pytest.mark.parametrize("accelerator", ["tpu", "GPU", 1])
def test_bad_accelerator_is_named(tmp_path: Path, accelerator: object) -> None:
    """make_cfg pins the accelerator to the CPU, so the bad value is set on the composed config."""
    cfg = make_cfg(tmp_path, [])
    cfg.trainer.accelerator = accelerator
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    [line] = info.value.problems
    assert line.startswith(f"trainer.accelerator={accelerator!r}: one of 'auto', 'cpu', 'gpu', 'cuda', 'mps' is needed")
    assert line.endswith("; e.g. trainer.accelerator=auto")


def test_min_epochs_above_max_epochs_suggests_max(tmp_path: Path) -> None:
    err = _error(tmp_path, ["trainer.max_epochs=3", "trainer.min_epochs=5"])
    assert err.problems[0].endswith("e.g. trainer.min_epochs=3")


def test_interpolated_value_names_its_source(tmp_path: Path) -> None:
    err = _error(tmp_path, ["++data.num_classes=0", "++model.num_classes=${data.num_classes}"])
    assert "model.num_classes=0 (from ${data.num_classes})" in err.problems[0]


def test_default_config_passes(tmp_path: Path) -> None:
    assert validate_config(make_cfg(tmp_path, [])) is None


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_presets_pass(tmp_path: Path, name: str) -> None:
    validate_config(make_cfg(tmp_path, [f"experiment={name}"]))


@pytest.mark.parametrize("option", GROUP_OPTIONS)
def test_group_options_pass(tmp_path: Path, option: str) -> None:
    validate_config(make_cfg(tmp_path, [option]))


@pytest.mark.parametrize("name", MODELS)
def test_model_options_pass(tmp_path: Path, name: str) -> None:
    validate_config(make_cfg(tmp_path, [f"model={name}"]))


@pytest.mark.parametrize("overrides", [
    ["seed=null", "ckpt_path=last", "paper_result=imagenet_val/top1_err", "++overwrite=true"],
    ["trainer.precision=16", "trainer.precision=bf16-mixed", "trainer.devices=auto", "trainer.deterministic=warn"],
    ["trainer.devices=[0,1]", "trainer.min_epochs=null", "trainer.check_val_every_n_epoch=null"],
    ["+trainer.limit_val_batches=0", "+trainer.limit_train_batches=5", "+trainer.fast_dev_run=true"],
    ["+trainer.overfit_batches=0.5", "+trainer.num_sanity_val_steps=-1", "+trainer.gradient_clip_algorithm=value"],
    ["trainer.gradient_clip_val=0.5", "data.val_size=0.1", "data.eval_batch_size=null", "data.image_size=null"],
    ["optim=sgd", "optim.momentum=0", "optim.lr=1", "sched=multistep", "sched.scheduler.milestones=[1,2]"],
    ["sched=none", "sched.warmup_steps=400", "sched.warmup_factor=1", "sched.warmup_mode=constant"],
    ["++callbacks.last_checkpoint.every_n_train_steps=0", "callbacks.model_checkpoint.save_top_k=-1"],
    ["model=resnet18", "++model.small_input=null", "++model.num_classes=null", "loss.label_smoothing=0"],
])
def test_edge_values_pass(tmp_path: Path, overrides: list[str]) -> None:
    validate_config(make_cfg(tmp_path, overrides))


def test_unchecked_unresolvable_interpolations_are_not_touched(tmp_path: Path) -> None:
    """Only checked keys are read: an interpolation elsewhere that resolves only in a Hydra run is fine."""
    cfg = make_cfg(tmp_path, [])
    with open_dict(cfg):
        cfg.paths.output_dir = "${hydra:runtime.output_dir}"
        cfg.unrelated = "${no.such.key}"
        cfg.sched.scheduler.unrelated = "${no.such.key}"
        cfg.callbacks.model_checkpoint.dirpath = "${hydra:runtime.output_dir}/checkpoints"
    assert isinstance(cfg, DictConfig)
    validate_config(cfg)


def test_mandatory_missing_value_is_named(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, [])
    cfg.data.batch_size = "???"
    with pytest.raises(ConfigError, match=r"data\.batch_size='\?\?\?' \(not set\)"):
        validate_config(cfg)
