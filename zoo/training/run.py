"""One training run from a composed Hydra config: fit, test, and write ``results.json``."""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
import torch.nn as nn
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.profilers import PassThroughProfiler
from hydra.errors import InstantiationException
from omegaconf import DictConfig, ListConfig, OmegaConf

from zoo.profiling import count_params
from zoo.training.callbacks import EpochLogger, LastCheckpoint, RNGState, RunMetadata
from zoo.training.checkpoint import (
    AtomicCheckpointIO,
    CheckpointError,
    atomic_write_text,
    load_checkpoint_file,
    remove_stale_temporaries,
)
from zoo.training.config_check import ConfigError, validate_config
from zoo.training.module import ClassificationModule, DivergenceError
from zoo.training.records import RunFolder, config_changes
from zoo.weights import save_weights

__all__ = ["train", "build_trainer", "QuietProfiler", "skip_unloadable_nvml_check", "resolve_ckpt_path", "check_input",
           "TrainingDiverged", "data_facts", "model_kwargs", "recipe_options", "print_config_tree"]

log = logging.getLogger("zoo.train")


def _choices() -> dict[str, str]:
    """Returns Hydra's config-group choices (``{"model": "lenet5", ...}``), or ``{}`` outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return {k: v for k, v in HydraConfig.get().runtime.choices.items() if isinstance(v, str)}
    except Exception:
        return {}


def _command() -> str:
    """Returns the command line that reproduces this run (``python train.py <overrides>``)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except Exception:
        overrides = sys.argv[1:]
    return " ".join(["python train.py", *overrides])


def _git_commit(root: Path) -> str | None:
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except Exception:
        return None


#: The environment variables in which launchers give a process its rank: torchrun's RANK, SLURM's SLURM_PROCID,
#: LSF's JSM_NAMESPACE_RANK, and LOCAL_RANK / NODE_RANK (GROUP_RANK) of the processes Lightning itself starts.
_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")


def launched_as_rank_zero() -> bool:
    """Whether this process is the global rank 0 as its launcher tells it, before any trainer exists.

    A plain ``python train.py`` sets no rank variable and is rank 0. Under data-parallel training Lightning
    starts the other processes of a node by running the same command again with ``LOCAL_RANK`` (and
    ``NODE_RANK``) set; SLURM and torchrun set their own variables. The run folder's checks and records are
    made by the process for which every rank variable that is set is 0 (once the trainer exists, by
    ``trainer.is_global_zero``).
    """
    for key in _RANK_VARIABLES:
        value = os.environ.get(key, "").strip()
        if value and value.lstrip("-").isdigit() and int(value) != 0:
            return False
    return True


def _check_world_size(ckpt_file: str, trainer: pl.Trainer) -> None:
    """Refuses a mid-epoch checkpoint whose in-memory training loader was sharded over another number of
    processes than ``trainer`` runs (its world size; 1 when its ``use_distributed_sampler`` is off, as the
    in-memory loaders then read everything on every process). A checkpoint written at an epoch's end resumes
    under any number: the next epoch is sharded afresh.

    Raises:
        CheckpointError: naming the file, the epoch and both numbers of processes.
    """
    try:
        ckpt = torch.load(ckpt_file, map_location="cpu", weights_only=True, mmap=True)
        progress = ckpt["loops"]["fit_loop"]["epoch_loop.batch_progress"]
        state = next(v["train_loader"] for v in ckpt.values()
                     if isinstance(v, dict) and isinstance(v.get("train_loader"), dict))
        mid_epoch = not progress["is_last_batch"] and int(state["position"]) > 0
    except Exception:  # streamed data (no loader state), a checkpoint of another kind: nothing to check
        return
    sharded = getattr(getattr(trainer, "_accelerator_connector", None), "use_distributed_sampler", True)
    saved, now = int(state.get("world_size", 1)), int(trainer.world_size) if sharded else 1
    if mid_epoch and saved != now:
        raise CheckpointError(
            f"checkpoint {ckpt_file} was written in the middle of epoch {int(state['epoch']) + 1} (after batch "
            f"{state['position']}) by {saved} process(es), and this run has {now}: each process's share of the "
            f"epoch depends on their number, so a mid-epoch checkpoint resumes only with {saved} (trainer.devices "
            f"x trainer.num_nodes); or resume from a checkpoint written at an epoch's end")


#: The groups shown first by :func:`print_config_tree`, in this order; the other keys follow as composed.
_TREE_ORDER = ("data", "model", "optim", "sched", "trainer", "callbacks", "logger", "paths")


def print_config_tree(cfg: DictConfig, console: Any = None) -> None:
    """Prints the composed config as a tree: one branch per top-level key (the groups first), each holding
    its YAML, resolved where it can be (``print_config=true``).

    Args:
        cfg: the composed config.
        console: a ``rich.console.Console``; default: one on stderr (stdout carries the run's result lines).
    """
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", style="bold", guide_style="dim")
    keys = [k for k in _TREE_ORDER if k in cfg] + [k for k in cfg if k not in _TREE_ORDER]
    for key in keys:
        branch = tree.add(str(key), style="bold", guide_style="dim")
        try:
            node = cfg[key]
        except Exception as e:  # an interpolation that only resolves inside a Hydra run
            branch.add(f"<unresolved: {e}>")
            continue
        if isinstance(node, (DictConfig, ListConfig)):
            try:
                text = OmegaConf.to_yaml(node, resolve=True)
            except Exception:
                text = OmegaConf.to_yaml(node)
            branch.add(Syntax(text.rstrip(), "yaml", theme="ansi_dark", background_color="default"))
        else:
            branch.add(repr(node) if isinstance(node, str) and not node else str(node))
    (console or Console(stderr=True)).print(tree)


def _hardware() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    hw: dict[str, Any] = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        hw["gpu"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return hw


def _versions() -> dict[str, str]:
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "pytorch_lightning": pl.__version__,
            "cuda": torch.version.cuda or "none"}


@torch.no_grad()
def check_input(model: nn.Module, input_size: tuple[int, ...]) -> None:
    """Runs one zero input through ``model`` so that an unsuitable input size fails before training.

    Raises:
        zoo.InputTooSmallError: naming the layer and the output-size arithmetic.
        ConfigError: naming ``data.image_size`` when the model refuses the size for another reason
            (a ViT whose patch does not divide it).
    """
    import zoo

    try:
        zoo.check_input(model, input_size)  # eval mode, no_grad, hooks removed afterwards
    except zoo.InputTooSmallError:
        raise
    except (ValueError, RuntimeError) as e:
        raise ConfigError([f"data.image_size={input_size[-1]}: the model refuses a {input_size[0]}x"
                           f"{input_size[1]}x{input_size[2]} input: {e}"]) from e


# ---------------------------------------------------------------------------- resume

#: Settings that may differ on resume without changing what comes next (paths, logging, hardware).
RESUME_IGNORED = (
    "paths", "logger", "callbacks", "ckpt_path", "overwrite", "task_name", "test_on_best", "paper_result", "debug",
    "data.root", "data.download", "data.num_workers", "data.pin_memory", "data.persistent_workers",
    "data.eval_batch_size", "trainer.accelerator", "trainer.devices", "trainer.default_root_dir",
    "trainer.log_every_n_steps", "trainer.enable_progress_bar", "trainer.enable_model_summary",
    "trainer.limit_val_batches", "trainer.limit_test_batches", "trainer.num_sanity_val_steps",
    "trainer.check_val_every_n_epoch", "trainer.deterministic", "trainer.min_epochs", "data.device",
    "channels_last", "compile", "trainer.strategy", "trainer.num_nodes", "trainer.sync_batchnorm",
    "tags", "print_config", "optimized_metric",
)


#: Values of the training-recipe keys that a config written before they existed stands for (all off), so
#: that checkpoints of older runs still resume: an absent key of the saved config is read as this value.
RECIPE_DEFAULTS: dict[str, Any] = {
    "ema.enabled": False, "ema.decay": 0.9998, "ema.warmup": True, "mixup.alpha": 0.0, "cutmix.alpha": 0.0,
    "mix_prob": 1.0, "trainer.accumulate_grad_batches": 1,
}


def _with_recipe_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every absent key of :data:`RECIPE_DEFAULTS` set to its value (a copy; nested dicts)."""
    import copy

    out = copy.deepcopy(config)
    for dotted, value in RECIPE_DEFAULTS.items():
        *parents, last = dotted.split(".")
        node = out
        for part in parents:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):  # a malformed saved config: left as it is, the comparison tells
                break
        else:
            node.setdefault(last, value)
    return out


def recipe_options(cfg: DictConfig) -> dict[str, Any]:
    """The training-recipe keywords of :class:`ClassificationModule` from the config (absent keys: off).

    Returns:
        ``{"ema_decay": float | None, "ema_warmup": bool, "mixup_alpha": float, "cutmix_alpha": float,
        "mix_prob": float}``; ``ema_decay`` is ``None`` unless ``ema.enabled`` is true.
    """
    def get(key: str) -> Any:
        value = OmegaConf.select(cfg, key, default=None)
        return RECIPE_DEFAULTS[key] if value is None else value

    return {"ema_decay": float(get("ema.decay")) if bool(get("ema.enabled")) else None,
            "ema_warmup": bool(get("ema.warmup")), "mixup_alpha": float(get("mixup.alpha")),
            "cutmix_alpha": float(get("cutmix.alpha")), "mix_prob": float(get("mix_prob"))}


def _compile_options(value: Any) -> bool | dict[str, Any]:
    """The ``compile`` setting: ``False``/``None`` (off), ``True`` or a mapping of ``torch.compile`` keywords."""
    if isinstance(value, DictConfig):
        return dict(OmegaConf.to_container(value, resolve=True))  # type: ignore[arg-type]
    return bool(value) if value is not None else False


def _checkpoint_epoch(path: Path) -> tuple[int | None, int | None]:
    """The epoch and step a checkpoint was written at (``None`` when unreadable)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(ckpt.get("epoch", -1)) + 1, int(ckpt.get("global_step", 0))
    except Exception:
        return None, None


def _matching_runs(cfg: DictConfig, limit: int = 5) -> list[Path]:
    """The newest run folders below ``paths.log_dir`` with a ``last.ckpt`` of this model and data."""
    found = []
    for last in Path(cfg.paths.log_dir).glob("**/checkpoints/last.ckpt"):
        run_dir = last.parent.parent
        saved = RunFolder(run_dir).latest_config_dir()
        try:
            other = OmegaConf.load(saved / "config.yaml") if saved else None
        except Exception:
            other = None
        if other is not None and other.get("model", {}).get("name") == cfg.model.get("name") and \
                other.get("data", {}).get("_target_") == cfg.data.get("_target_"):
            found.append(last)
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return [p.parent.parent for p in found[:limit]]


def _resume_command(run_dir: Path) -> str:
    saved = RunFolder(run_dir).latest_config_dir()
    overrides: list[str] = []
    if saved is not None and (saved / "overrides.yaml").is_file():
        try:
            overrides = [str(o) for o in OmegaConf.load(saved / "overrides.yaml")]
        except Exception:
            overrides = []
    keep = [o for o in overrides if not o.split("=", 1)[0].lstrip("+~") in ("ckpt_path", "hydra.run.dir", "overwrite")]
    return " ".join(["python train.py", *keep, f"hydra.run.dir={run_dir}", "ckpt_path=last"])


def resolve_ckpt_path(ckpt_path: str | None, cfg: DictConfig) -> str | None:
    """Turns ``ckpt_path`` into an absolute local file: ``last`` means this run folder's ``last.ckpt``.

    A path is always a path: it is made absolute, so that a relative name such as ``http_run/last.ckpt``
    is never taken for a URL.

    Raises:
        CheckpointError: if there is no such file; for ``last``, the message lists the runs of
            the same model and data that could be resumed (folder, epoch, date) with the command
            that resumes each.
    """
    if ckpt_path in (None, ""):
        return None
    if str(ckpt_path) != "last":
        p = Path(str(ckpt_path)).expanduser().resolve()
        if p.is_dir() and (p / "checkpoints" / "last.ckpt").is_file():
            raise CheckpointError(
                f"ckpt_path={ckpt_path} is a run folder; resume it in place with "
                f"hydra.run.dir={p} ckpt_path=last, or pass a file: ckpt_path={p / 'checkpoints' / 'last.ckpt'}")
        if not p.is_file():
            raise CheckpointError(f"ckpt_path={ckpt_path}: no such file ({p}); pass ckpt_path=<file of a checkpoint> "
                                  f"or ckpt_path=last with hydra.run.dir=<the run folder>")
        return str(p)
    here = Path(cfg.paths.output_dir).resolve() / "checkpoints" / "last.ckpt"
    if here.is_file():
        return str(here)
    lines = [f"ckpt_path=last: this run folder {here.parent.parent} has no checkpoints/last.ckpt. "
             f"ckpt_path=last resumes the run in its own folder: name it with hydra.run.dir=<folder>."]
    runs = _matching_runs(cfg)
    if runs:
        lines.append(f"Runs of model {cfg.model.get('name')} on this data under {cfg.paths.log_dir}, newest first:")
        for run_dir in runs:
            last = run_dir / "checkpoints" / "last.ckpt"
            epoch, step = _checkpoint_epoch(last)
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last.stat().st_mtime))
            lines.append(f"  {run_dir}  (epoch {epoch}, step {step}, saved {when})\n"
                         f"    resume: {_resume_command(run_dir)}")
    else:
        lines.append(f"No run of model {cfg.model.get('name')} on this data under {cfg.paths.log_dir} has a "
                     f"last.ckpt; start without ckpt_path.")
    raise CheckpointError("\n".join(lines))


def plan_resume(ckpt_file: str, cfg: DictConfig, module: ClassificationModule,
                run_config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Checks that ``ckpt_file`` belongs to this run's model and decides what a changed setting means.

    Returns:
        ``(module.resume_changes, record)``: the changes to apply when training starts (see
        :meth:`ClassificationModule.apply_resume_changes`) and, for the records, every changed key
        with its old and new value.

    Raises:
        CheckpointError: for a checkpoint of another model (or a state dict that does not fit),
            naming the file; or for a changed setting that a resumed run cannot honour, naming it
            and what to do.
    """
    ckpt = load_checkpoint_file(ckpt_file)
    meta = ckpt.get("zoo") if isinstance(ckpt.get("zoo"), dict) else {}
    name = cfg.model.get("name")
    if meta.get("model") not in (None, name):
        raise CheckpointError(
            f"checkpoint {ckpt_file} holds model {meta['model']!r}, but this run builds {name!r}: pass "
            f"model={meta['model']} to resume it, or give the checkpoint of a {name} run")
    own = module.state_dict()
    theirs = ckpt["state_dict"]
    own_ema, their_ema = (any(k.startswith("ema.") for k in sd) for sd in (own, theirs))
    if own_ema != their_ema:
        was, now = ("true", "false") if their_ema else ("false", "true")
        raise CheckpointError(
            f"checkpoint {ckpt_file} was written with ema.enabled={was}, but this run has ema.enabled={now}: an "
            f"average of the weights cannot be {'dropped' if their_ema else 'started'} in the middle of a run. Resume "
            f"with ema.enabled={was}, or start a new run without ckpt_path")
    missing = [k for k in own if k not in theirs]
    wrong = [f"{k} {tuple(theirs[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in theirs and hasattr(theirs[k], "shape") and tuple(theirs[k].shape) != tuple(v.shape)]
    if missing or wrong:
        detail = "; ".join([*(f"missing {k}" for k in missing[:3]), *wrong[:3]])
        raise CheckpointError(
            f"checkpoint {ckpt_file} does not fit model {name!r} as configured ({detail}). It was written by "
            f"another model or other model options: resume with that run's settings (its config is in its "
            f"run folder's .hydra/config.yaml), or give a checkpoint of this model")
    old_cfg = meta.get("config")
    if not isinstance(old_cfg, dict):
        log.warning("checkpoint %s has no saved config: changed settings cannot be checked", ckpt_file)
        return {}, {}
    changes = config_changes(_with_recipe_defaults(old_cfg), run_config, ignore=RESUME_IGNORED)
    honoured: dict[str, Any] = {}
    refused = []
    sched = dict(run_config.get("sched") or {})
    sched_target = str((sched.get("scheduler") or {}).get("_target_", ""))
    onecycle = sched_target.endswith("OneCycleLR")
    auto_cosine = sched_target.endswith("CosineAnnealingLR") and (sched.get("scheduler") or {}).get("T_max") is None
    step = int(ckpt.get("global_step", 0))
    warmup = int(sched.get("warmup_steps") or 0)
    for key, (old, new) in changes.items():
        if key == "trainer.max_epochs":
            if onecycle:
                refused.append(f"{key}: {old} -> {new} (sched=onecycle fixes its phases by the total steps; resume "
                               f"with trainer.max_epochs={old})")
            else:
                honoured["replan"] = auto_cosine
        elif key == "optim.lr":
            if onecycle:
                refused.append(f"{key}: {old} -> {new} (sched=onecycle takes its peak from optim.lr; resume with "
                               f"optim.lr={old})")
            elif step < warmup:
                refused.append(f"{key}: {old} -> {new} (the checkpoint is inside the {warmup}-step warmup; resume "
                               f"with optim.lr={old} and change it after step {warmup})")
            elif not old or not new:
                refused.append(f"{key}: {old} -> {new}")
            else:
                honoured["lr"] = (float(old), float(new))
        elif key.startswith("optim.") and key.count(".") == 1 and key not in ("optim._target_", "optim._partial_"):
            honoured.setdefault("optim", {})[key.split(".", 1)[1]] = new
        else:
            refused.append(f"{key}: {old!r} -> {new!r}")
    if refused:
        raise CheckpointError(
            f"resuming {ckpt_file} with settings that a resumed run cannot honour:\n  " + "\n  ".join(refused) +
            "\nResume with the values the run was started with (they are in the run folder's .hydra/config.yaml; "
            "drop those overrides), or start a new run without ckpt_path. A resume honours a new optim.lr (the "
            "schedule is scaled from the resume on), other optimizer settings, and a longer trainer.max_epochs "
            "(the cosine schedule is re-planned over the new length).")
    record = {k: {"old": o, "new": n} for k, (o, n) in changes.items()}
    if honoured:
        log.info("resume: applying changed settings %s", ", ".join(f"{k} {v['old']} -> {v['new']}"
                                                                    for k, v in record.items()))
    return honoured, record


# ---------------------------------------------------------------------------- data facts -> model


def data_facts(datamodule: Any) -> dict[str, Any]:
    """The facts the model is built from: ``num_classes``, ``in_chans``, ``image_size``, ``small_input``.

    A datamodule that learns its classes from the files (image folders) is set up first.
    """
    try:
        num_classes = datamodule.num_classes
    except RuntimeError:
        datamodule.setup("fit")
        num_classes = datamodule.num_classes
    return {"num_classes": int(num_classes), "in_chans": int(datamodule.in_chans),
            "image_size": int(datamodule.image_size), "small_input": bool(datamodule.small_input)}


def model_kwargs(model_cfg: DictConfig, facts: dict[str, Any], data_name: str) -> dict[str, Any]:
    """The keywords ``create_model`` is called with: the model config plus the data's facts.

    ``num_classes`` and ``in_chans`` always come from the data; ``image_size`` and ``small_input``
    go to builders that take them, unless the model config sets them (``small_input`` is a layout
    choice; ``image_size`` of a model is the side its head is sized for). A builder whose
    ``small_input`` defaults to True has the small layout only, and keeps it.

    Raises:
        ConfigError: if the model config sets ``num_classes`` or ``in_chans`` to another value than the data's.
    """
    from zoo._registry import model_info

    kw = OmegaConf.to_container(model_cfg, resolve=True)
    assert isinstance(kw, dict)
    name = kw.get("name")
    params = inspect.signature(model_info(str(name)).builder).parameters
    problems = []
    for key in ("num_classes", "in_chans"):
        given = kw.get(key)
        if given is not None and given != facts[key]:
            problems.append(f"model.{key}={given!r} contradicts the data: {data_name} has {key}={facts[key]}. "
                            f"The model takes {key} from the data: drop the override (e.g. remove "
                            f"model.{key}={given}), or pick data with {given} {key.replace('_', ' ')}")
        kw[key] = facts[key]
    if problems:
        raise ConfigError(problems)
    for key in ("image_size", "small_input"):
        if key in params and kw.get(key) is None:
            if key == "image_size" and key in kw:
                continue  # an explicit null: the model's own rule (e.g. 224, or 32 with small_input)
            if key == "small_input" and params[key].default is True:
                continue  # a network whose only layout is the small one (LeNet-5, the CIFAR ResNets) keeps it
            kw[key] = facts[key]
    return kw


class QuietProfiler(PassThroughProfiler):
    """Lightning's default profiler (it records nothing), with a ``profile()`` that costs nothing.

    Lightning wraps every hook and callback call in ``trainer.profiler.profile(name)``, some 120 times a
    training step; the default's generator-based context manager costs about 0.8 µs each, a reused
    ``nullcontext`` a quarter of that. Used unless ``trainer.profiler`` names one (``simple``,
    ``advanced``, ``pytorch``).
    """

    _NULL = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.AbstractContextManager:  # type: ignore[override]
        return self._NULL


_NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def skip_unloadable_nvml_check() -> bool:
    """Turns off torch's NVML-based CUDA check when NVML cannot be loaded; returns whether it did.

    ``lightning_fabric`` sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` when imported, so that
    ``torch.cuda.is_available()`` asks NVML instead of initialising CUDA. Adam, AdamW and most other
    torch optimizers ask on every ``step()`` (``_accelerator_graph_capture_health_check``). Where a
    CUDA build of torch runs without an NVIDIA driver, ``libnvidia-ml.so.1`` is missing: each question
    then tries to ``dlopen`` it, searching the library path (about 50 µs), and falls back to the CUDA
    runtime's answer. With the variable off, torch asks the CUDA runtime at once: the same answer, and
    the same fork safety (the fallback initialised the runtime's device count all along).

    Nothing changes where NVML loads (a machine with a GPU driver), where torch has no CUDA, or where the
    variable is not ``1``.
    """
    if os.environ.get(_NVML_CHECK) != "1" or not torch.backends.cuda.is_built():
        return False
    import ctypes

    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        os.environ[_NVML_CHECK] = "0"
        log.debug("%s=0: NVML cannot be loaded, so torch's CUDA check asks the CUDA runtime directly", _NVML_CHECK)
        return True
    return False


def build_trainer(cfg: DictConfig, callbacks: list[pl.Callback], loggers: list[Any], *, interactive: bool,
                  **overrides: Any) -> pl.Trainer:
    """The run's Lightning ``Trainer``: ``cfg.trainer`` with the callbacks, the loggers, atomic
    checkpoint I/O and, unless the config names a profiler, :class:`QuietProfiler`.

    Where NVML cannot be loaded, torch's per-step CUDA check first stops asking it
    (:func:`skip_unloadable_nvml_check`).

    Args:
        cfg: the run's config.
        callbacks: the callbacks (:func:`_callbacks`).
        loggers: the loggers (:func:`_loggers`); none: logging off.
        interactive: show the progress bar and the model summary.
        **overrides: further ``Trainer`` keywords (the benchmark's).
    """
    skip_unloadable_nvml_check()
    extra: dict[str, Any] = {}
    if cfg.trainer.get("profiler") is None:
        extra["profiler"] = QuietProfiler()
    return hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                   plugins=[AtomicCheckpointIO()], enable_progress_bar=interactive,
                                   enable_model_summary=interactive, **{**extra, **overrides})


def _callbacks(cfg: DictConfig, metadata: dict[str, Any]) -> list[pl.Callback]:
    """The configured callbacks, plus the per-epoch log line, the RNG states and the run's metadata
    (both saved in every checkpoint)."""
    callbacks: list[pl.Callback] = [EpochLogger(), RNGState(), RunMetadata(metadata)]
    for name, cb_cfg in (cfg.get("callbacks") or {}).items():
        if cb_cfg is None or "_target_" not in cb_cfg:
            continue
        if cb_cfg._target_.endswith("RichProgressBar") and not sys.stdout.isatty():
            continue  # a progress bar in a log file is noise; EpochLogger writes one line per epoch
        callbacks.append(hydra.utils.instantiate(cb_cfg))
    # last.ckpt is written after the other checkpoint callbacks have saved, so it holds their state
    return sorted(callbacks, key=lambda c: isinstance(c, LastCheckpoint))


#: the config sections a run's trackers receive as hyperparameters (as lightning-hydra-template logs them).
TRACKED_SECTIONS = ("model", "data", "optim", "sched", "trainer", "loss", "ema", "mixup", "cutmix")
TRACKED_KEYS = ("seed", "tags", "mix_prob", "channels_last", "compile", "optimized_metric")


def _tracked_hyperparams(run_config: dict[str, Any], n_params: int, experiment: str | None) -> dict[str, Any]:
    """The run's settings as flat ``section/key`` hyperparameters for the loggers (wandb, mlflow, ...).

    Args:
        run_config: the resolved config, with the model as built.
        n_params: the model's parameter count.
        experiment: the experiment preset, if any.

    Returns:
        ``{"model/name": "resnet20", "optim/lr": 0.1, ..., "seed": 0, "params": 269722}``; lists and
        ``None`` become strings, so every tracker can store them.
    """
    flat: dict[str, Any] = {"params": int(n_params), "experiment": str(experiment)}

    def put(key: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                put(f"{key}/{k}", v)
        elif isinstance(value, (bool, int, float, str)):
            flat[key] = value
        else:
            flat[key] = str(value)

    for section in TRACKED_SECTIONS:
        if section in run_config:
            put(section, run_config[section])
    for key in TRACKED_KEYS:
        if key in run_config:
            put(key, run_config[key])
    return flat


def _loggers(cfg: DictConfig, resuming: bool) -> list[Any]:
    """Instantiates the loggers; a resumed run never overwrites the logs of the run it continues."""
    loggers = []
    for c in (cfg.get("logger") or {}).values():
        if c is None or "_target_" not in c:
            continue
        kwargs: dict[str, Any] = {}
        if resuming and "save_dir" in c:
            base = str(c.get("version") or "")
            version, k = base, 0
            while any((Path(c.save_dir) / str(c.get("name") or "") / version).glob("*")):
                k += 1
                version = f"{base}resume{k}" if not base else f"{base}_resume{k}"
            kwargs["version"] = version
        loggers.append(hydra.utils.instantiate(c, **kwargs))
    return loggers


class TrainingDiverged(RuntimeError):
    """A run stopped on a non-finite loss or gradient; ``results.json`` records ``"status": "diverged"``.

    Attributes:
        results: the contents of ``results.json``.
    """

    def __init__(self, message: str, results: dict[str, Any]) -> None:
        super().__init__(message)
        self.results = results


def _finite_checkpoint(path: str | Path | None) -> bool:
    """Whether ``path`` is a readable checkpoint whose floating-point weights are all finite."""
    if not path or not Path(path).is_file():
        return False
    sd = load_checkpoint_file(path)["state_dict"]
    return all(bool(torch.isfinite(v).all()) for v in sd.values() if torch.is_tensor(v) and v.is_floating_point())


def _val_acc_best(module: ClassificationModule, fit_metrics: dict[str, float]) -> float | None:
    """The best validation accuracy: kept in the module's state, so a resume that trains no further has it."""
    best = float(module.val_acc_best.max_value)
    if math.isfinite(best):
        return best
    return fit_metrics.get("val/acc_best")


def _best_path(trainer: pl.Trainer) -> str:
    """The best checkpoint of the run's ``ModelCheckpoint``, or ``""`` without one."""
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint):
            return cb.best_model_path or ""
    return ""


def _hydra_record() -> tuple[DictConfig | None, list[str]]:
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        return hc, list(hc.overrides.task)
    except Exception:
        return None, sys.argv[1:]


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fits and tests one model as configured, and writes ``results.json`` in the run directory.

    The config is validated first; then the run folder is checked (a folder that holds a run is
    resumed with ``ckpt_path=last`` or replaced with ``overwrite=true``, never mixed); then the
    data is found, and the model is built from the data's facts. Each start or resume is a
    segment of the run's records (see :mod:`zoo.training.records`).

    Under data-parallel training (``trainer=ddp``, ``trainer=ddp_sim``) every process runs this function
    (Lightning starts the other processes of a node by running the same command again, into the same run
    folder; SLURM or torchrun start them all). The run folder is checked and written by the global rank 0
    alone: ``segments.json``, the config records, ``results.json`` and ``model.safetensors`` (checkpoints are
    written on rank 0 by Lightning's strategy); the other processes log warnings only. Each process trains on
    its share of every epoch, and the metrics are gathered over all of them, so the figures of the record are
    those of the whole data.

    Args:
        cfg: the composed ``configs/train.yaml``.

    Returns:
        The contents of ``results.json``.

    Raises:
        ConfigError: a bad value in the config, before anything heavy runs.
        CheckpointError: no checkpoint to resume, a foreign or unreadable one, or a changed setting
            that a resume cannot honour.
        RunExistsError: the run folder already holds a run.
        TrainingDiverged: a non-finite loss or gradient stopped the run.
    """
    validate_config(cfg)
    # Under data-parallel training every process runs this function; the run folder is checked and written by
    # the global rank 0 alone (the other processes are started once it trains, into the folder it checked).
    rank_zero = launched_as_rank_zero()
    if not rank_zero:
        logging.getLogger("zoo").setLevel(logging.WARNING)  # rank 0 logs the run; the others warnings only
    elif cfg.get("print_config"):
        print_config_tree(cfg)
    out_dir = Path(cfg.paths.output_dir).resolve()
    folder = RunFolder(out_dir)
    if rank_zero:
        remove_stale_temporaries(out_dir, folder.checkpoints)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg)
    if ckpt_path is None and rank_zero:
        folder.check_fresh_start(bool(cfg.get("overwrite") or False))
    out_dir.mkdir(parents=True, exist_ok=True)
    git_commit = _git_commit(Path(cfg.paths.root_dir))  # the code that runs, before anything can change it

    if cfg.get("seed") is not None:
        pl.seed_everything(int(cfg.seed), workers=True)
    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()  # a missing dataset is reported before the model is built
    facts = data_facts(datamodule)
    choices = _choices()
    data_name = choices.get("data", str(cfg.data.get("_target_", "")).rsplit(".", 1)[-1])
    kwargs = model_kwargs(cfg.model, facts, data_name)
    try:
        model: nn.Module = hydra.utils.instantiate(kwargs)
    except InstantiationException as e:
        cause = e.__cause__ or e
        if not isinstance(cause, (ValueError, TypeError)):
            raise
        key = "data.image_size" if "image_size" in str(cause) else "model"
        value = facts["image_size"] if key == "data.image_size" else cfg.model.get("name")
        raise ConfigError([f"{key}={value}: model {cfg.model.get('name')} cannot be built: {cause}"]) from e
    check_input(model, (facts["in_chans"], facts["image_size"], facts["image_size"]))
    n_params = count_params(model)
    log.info("model %s: %s parameters; data %s, input %s", cfg.model.get("name"), f"{n_params:,}",
             type(datamodule).__name__, (facts["in_chans"], facts["image_size"], facts["image_size"]))

    module = ClassificationModule(
        model=model,
        optimizer=hydra.utils.instantiate(cfg.optim),
        scheduler=hydra.utils.instantiate(cfg.sched),
        num_classes=facts["num_classes"],
        label_smoothing=float(cfg.loss.label_smoothing),
        aux_weight=float(cfg.loss.aux_weight),
        channels_last=bool(cfg.get("channels_last") or False),
        compile=_compile_options(cfg.get("compile")),
        **recipe_options(cfg),
    )
    run_config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(run_config, dict)
    run_config["model"] = dict(kwargs)  # the model as built: with the data's facts
    changes: dict[str, Any] = {}
    if ckpt_path is not None:
        module.resume_changes, changes = plan_resume(ckpt_path, cfg, module, run_config)
    start_epoch, start_step = _checkpoint_epoch(Path(ckpt_path)) if ckpt_path else (0, 0)
    metadata = {"model": cfg.model.get("name"),
                "model_kwargs": {k: v for k, v in kwargs.items() if k not in ("_target_", "name")},
                "data": {"name": data_name, **facts, "mean": list(getattr(datamodule, "mean", ()) or ()),
                         "std": list(getattr(datamodule, "std", ()) or ()),
                         "classes": list(getattr(datamodule, "classes", None) or [])},
                "config": run_config}
    interactive = sys.stdout.isatty()
    trainer = build_trainer(cfg, _callbacks(cfg, metadata), _loggers(cfg, resuming=ckpt_path is not None),
                            interactive=interactive)
    # The trainer knows the ranks (Lightning's cluster environments); from here on it decides who writes.
    rank_zero = bool(trainer.is_global_zero)
    if ckpt_path is not None:
        _check_world_size(ckpt_path, trainer)
    if rank_zero:  # what the trackers (wandb, mlflow, tensorboard) show beside the metrics
        hyperparams = _tracked_hyperparams(run_config, n_params=n_params,
                                           experiment=_choices().get("experiment"))
        for tracker in trainer.loggers:
            tracker.log_hyperparams(hyperparams)
    hydra_cfg, overrides = _hydra_record()
    segment: dict[str, Any] = {"index": None}
    if rank_zero:
        segment = folder.begin_segment(_command(), ckpt_path, start_epoch or 0, start_step or 0, changes,
                                       cfg, hydra_cfg, overrides)

    def write_results(results: dict[str, Any]) -> None:
        if rank_zero:
            atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2, default=str) + "\n")

    def record(status: str, test_metrics: dict[str, float], fit_metrics: dict[str, float], best: str,
               tested_on: str | None, seconds: float) -> dict[str, Any]:
        if rank_zero:
            segments = folder.end_segment(segment, status, int(trainer.current_epoch), int(trainer.global_step))
        else:
            segments = folder.segments()
        results: dict[str, Any] = {
            "status": status,
            "model": cfg.model.get("name"),
            "data": data_name,
            "experiment": choices.get("experiment"),
            "tags": [str(t) for t in (cfg.get("tags") or [])],
            "params": n_params,
            "epochs": int(trainer.current_epoch),
            "global_steps": int(trainer.global_step),
            "seed": cfg.get("seed"),
            "test/acc": test_metrics.get("test/acc"),
            "test/loss": test_metrics.get("test/loss"),
            "test/acc5": test_metrics.get("test/acc5"),
            "val/acc_best": _val_acc_best(module, fit_metrics),
            "train_seconds": round(seconds, 2),
            "best_checkpoint": best or None,
            # validation, the checkpoints' choice, the test and model.safetensors use the EMA's weights
            "ema": module.ema is not None,
            "tested_on": tested_on,
            "resumed_from": ckpt_path,
            "segment": segment["index"],
            "segments": segments,
            "run_dir": str(out_dir),
            "command": _command(),
            "git_commit": git_commit,
            "versions": _versions(),
            "hardware": _hardware(),
            "device": str(module.device),
            # processes of a data-parallel run (devices x num_nodes); 1 for a single process
            "world_size": int(trainer.world_size),
            "config": run_config,
        }
        write_results(results)
        return results

    t0 = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except DivergenceError as e:
        seconds = time.perf_counter() - t0
        last = folder.checkpoints / "last.ckpt"
        try:
            good = str(last) if _finite_checkpoint(last) else None
        except CheckpointError:
            good = None
        fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        best = _best_path(trainer)
        results = record("diverged", {}, fit_metrics, best, None, seconds)
        results["divergence"] = {"what": e.what, "epoch": e.epoch + 1, "step": e.step, "lr": e.lr,
                                 "value": str(e.value), "last_good_checkpoint": good}
        write_results(results)
        where = (f"The last good checkpoint is {good} (resume it with a lower optim.lr: "
                 f"hydra.run.dir={out_dir} ckpt_path=last optim.lr=<lower>)." if good else
                 "No checkpoint was written before it: start again with a lower optim.lr.")
        raise TrainingDiverged(f"{e}. The run stopped; no test was run. {where} "
                               f"results.json records status 'diverged'.", results) from e
    train_seconds = time.perf_counter() - t0
    fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}

    best = _best_path(trainer)
    test_ckpt = best if (cfg.get("test_on_best", True) and best) else None
    weights_ok = _finite_checkpoint(test_ckpt) if test_ckpt else all(
        bool(torch.isfinite(p).all()) for p in module.parameters())
    if not weights_ok:
        results = record("diverged", {}, fit_metrics, best, None, train_seconds)
        raise TrainingDiverged(f"the weights to test ({test_ckpt or 'the final weights'}) are not finite; no test "
                               f"was run. results.json records status 'diverged'.", results)
    trainer.test(module, datamodule=datamodule, ckpt_path=test_ckpt, weights_only=True)
    test_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    # The tested weights (trainer.test loaded the best checkpoint into the module) as a plain weights file:
    # the EMA's when it is on, as the test ran on them. Written once, by the global rank 0.
    if rank_zero:
        save_weights(module.eval_model, folder.checkpoints / "model.safetensors", name=str(cfg.model.get("name")),
                     kwargs=metadata["model_kwargs"],
                     classes=[str(c) for c in getattr(datamodule, "classes", None) or []] or None,
                     input_size=[facts["in_chans"], facts["image_size"], facts["image_size"]],
                     mean=metadata["data"]["mean"] or None, std=metadata["data"]["std"] or None,
                     metrics=test_metrics, source=f"{out_dir}: {_command()}")
    return record("completed", test_metrics, fit_metrics, best, "best" if test_ckpt else "last", train_seconds)
