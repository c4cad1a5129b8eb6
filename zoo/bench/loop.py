"""Section ``loop``: training steps through ``train.py``'s path vs a hand-written loop.

The project side is built as :func:`zoo.training.run.train` builds a run, with its own functions:
the Hydra-composed config, the datamodule (``hydra.utils.instantiate(cfg.data)``), the data's facts
and the model's keywords (:func:`~zoo.training.run.data_facts`, :func:`~zoo.training.run.model_kwargs`),
:class:`~zoo.training.module.ClassificationModule`, and a Lightning ``Trainer`` from ``cfg.trainer``
with the run's callbacks (:func:`~zoo.training.run._callbacks`), loggers
(:func:`~zoo.training.run._loggers`) and checkpoint I/O, writing into a temporary folder. Each
sample is one ``fit`` of ``loop_warmup + steps`` batches without validation; the time from the end
of the last warm-up step to the end of the last step is divided by ``steps``.

The plain side runs ``loss = F.cross_entropy(model(x), y); opt.zero_grad(); loss.backward();
opt.step()`` over the same batches (made once by the datamodule's loader), with the same model
(same keywords, same seed) and the same optimizer (``cfg.optim``). ``plain_loader`` is the same
loop drawing its batches from the datamodule's loader, which separates the loader's share of the
difference from the trainer's. ``lightning_bare`` is a minimal ``LightningModule`` (the same loss and
optimizer, nothing logged, no scheduler) under a ``Trainer`` with no callbacks, loggers or checkpoints,
over the same batches: Lightning's own per-step cost, which the project's path cannot go below.
"""

from __future__ import annotations

import inspect
import logging
import tempfile
import warnings
from itertools import islice
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from zoo.bench.core import (BenchOptions, Clock, Report, Sample, compose_train_config, interleave, paired_ratios,
                            quiet_loggers)

__all__ = ["run_loop", "loop_config", "StepTimer"]

log = logging.getLogger(__name__)

_QUIET = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning", "zoo.train",
          "zoo.data", "zoo.data.base")


def loop_config(options: BenchOptions, output_dir: str | Path) -> Any:
    """The ``loop`` section's training config: ``options.loop_overrides`` composed, then set to train
    ``loop_warmup + steps`` batches of one epoch, without validation, sanity check or progress bar.

    ``data.root`` is set to ``options.data_root`` unless the overrides set it.
    """
    from omegaconf import open_dict

    overrides = list(options.loop_overrides)
    if options.data_root is not None and not any(o.startswith("data.root=") for o in overrides):
        overrides.append(f"data.root={options.data_root}")
    cfg = compose_train_config(overrides, output_dir)
    with open_dict(cfg):
        t = cfg.trainer
        t.max_epochs, t.min_epochs = 1, 1
        t.limit_train_batches = options.loop_warmup + options.steps
        t.limit_val_batches = 0
        t.num_sanity_val_steps = 0
        t.accelerator = "cuda" if options.torch_device.type == "cuda" else "cpu"
        if options.torch_device.type == "cuda":
            t.devices = [options.torch_device.index or 0]
        if cfg.get("callbacks"):
            cfg.callbacks.pop("rich_progress_bar", None)  # a benchmark is a non-interactive run
    return cfg


class StepTimer(pl.Callback):
    """Reads the clock at the end of every training batch.

    Args:
        clock: the clock.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.marks: list[tuple[float, float]] = []

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.marks.append(self.clock.read())

    def per_step(self, warmup: int, steps: int) -> Sample:
        """The mean time of steps ``warmup .. warmup + steps - 1`` (each from the end of the step before).

        Raises:
            RuntimeError: if fewer steps ran.
        """
        if len(self.marks) < warmup + steps or warmup < 1:
            raise RuntimeError(f"the trainer ran {len(self.marks)} training steps; {warmup} + {steps} were needed "
                               f"(is the training set smaller than {warmup + steps} batches?)")
        (c0, w0), (c1, w1) = self.marks[warmup - 1], self.marks[warmup + steps - 1]
        return Sample((c1 - c0) / steps, (w1 - w0) / steps)


class _BareModule(pl.LightningModule):
    """The least a LightningModule can be: cross-entropy and the optimizer, nothing logged."""

    def __init__(self, model: torch.nn.Module, optimizer: Any) -> None:
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.model(x), y)

    def configure_optimizers(self) -> Any:
        return self.optimizer_factory(params=self.model.parameters())


class _Batches:
    """A fixed list of batches as one training loader (a plain list would be read as several loaders)."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.batches = batches

    def __iter__(self) -> Any:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _speed_options(cfg: Any, run: Any, module_cls: type) -> dict[str, Any]:
    """The module's speed keywords as :func:`zoo.training.run.train` passes them (``channels_last``,
    ``compile``), for those the module takes."""
    params = inspect.signature(module_cls).parameters
    out: dict[str, Any] = {}
    if "channels_last" in params:
        out["channels_last"] = bool(cfg.get("channels_last") or False)
    if "compile" in params and hasattr(run, "_compile_options"):
        out["compile"] = run._compile_options(cfg.get("compile"))
    return out


def run_loop(options: BenchOptions, report: Report) -> None:
    """Times ``options.steps`` training steps of both loops, interleaved, and adds the rows.

    Args:
        options: the run's settings (``loop_overrides``, ``steps``, ``loop_warmup``, ``repeats``, ``device``).
        report: receives the rows and notes.
    """
    import hydra
    from omegaconf import open_dict

    from zoo.training.config_check import validate_config
    from zoo.training.module import ClassificationModule
    from zoo.training import run

    run.skip_unloadable_nvml_check()  # Lightning's NVML check would cost every side's optimizer step alike
    device = options.torch_device
    clock = Clock(device)
    warm, steps = max(1, options.loop_warmup), options.steps
    with tempfile.TemporaryDirectory(prefix="zoo-bench-loop-") as tmp, quiet_loggers(*_QUIET):
        cfg = loop_config(options, Path(tmp) / "run0")
        validate_config(cfg)
        seed = int(cfg.seed) if cfg.get("seed") is not None else 0
        torch.manual_seed(seed)
        datamodule = hydra.utils.instantiate(cfg.data)
        datamodule.prepare_data()
        facts = run.data_facts(datamodule)
        choices = run._choices()
        data_name = choices.get("data", str(cfg.data.get("_target_", "")).rsplit(".", 1)[-1])
        kwargs = run.model_kwargs(cfg.model, facts, data_name)
        datamodule.setup("fit")
        batches = [(x, y) for x, y in islice(datamodule.train_dataloader(), warm + steps)]
        if len(batches) < warm + steps:
            raise ValueError(f"--steps {steps}: the training set of {data_name} gives {len(batches)} batches of "
                             f"{datamodule.batch_size}, fewer than {warm} warm-up + {steps} timed steps; "
                             f"e.g. --steps {max(1, len(batches) - warm)}")
        name = f"{cfg.model.get('name')} {data_name} b{datamodule.batch_size}"
        metadata = {"model": cfg.model.get("name"),
                    "model_kwargs": {k: v for k, v in kwargs.items() if k not in ("_target_", "name")},
                    "data": {"name": data_name, **facts}, "config": {}}
        fits = [0]

        def project() -> Sample:
            fits[0] += 1
            with open_dict(cfg):
                cfg.paths.output_dir = str(Path(tmp) / f"fit{fits[0]}")
            torch.manual_seed(seed)
            model = hydra.utils.instantiate(kwargs)
            module = ClassificationModule(
                model=model, optimizer=hydra.utils.instantiate(cfg.optim),
                scheduler=hydra.utils.instantiate(cfg.sched), num_classes=facts["num_classes"],
                label_smoothing=float(cfg.loss.label_smoothing), aux_weight=float(cfg.loss.aux_weight),
                **_speed_options(cfg, run, ClassificationModule))
            timer = StepTimer(clock)
            trainer = run.build_trainer(cfg, [*run._callbacks(cfg, metadata), timer],
                                        run._loggers(cfg, resuming=False), interactive=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trainer.fit(module, datamodule=datamodule, weights_only=True)
            return timer.per_step(warm, steps)

        def plain_on(source: Any) -> Sample:
            torch.manual_seed(seed)
            model = hydra.utils.instantiate(kwargs).to(device)
            model.train()
            opt = hydra.utils.instantiate(cfg.optim)(params=model.parameters())
            start = None
            for i, (x, y) in enumerate(islice(source, warm + steps)):
                if i == warm:
                    start = clock.read()
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            assert start is not None
            return clock.since(start) / steps

        def lightning_bare() -> Sample:
            torch.manual_seed(seed)
            module = _BareModule(hydra.utils.instantiate(kwargs), hydra.utils.instantiate(cfg.optim))
            timer = StepTimer(clock)
            trainer = pl.Trainer(max_epochs=1, accelerator=cfg.trainer.accelerator,
                                 devices=cfg.trainer.get("devices", 1), logger=False, enable_checkpointing=False,
                                 enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
                                 default_root_dir=str(Path(tmp) / "bare"))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trainer.fit(module, train_dataloaders=_Batches(batches))
            return timer.per_step(warm, steps)

        samples = interleave({"project": project, "plain": lambda: plain_on(batches),
                              "plain_loader": lambda: plain_on(datamodule.train_dataloader()),
                              "lightning_bare": lightning_bare},
                             options.repeats, options.warmup)
    report.add_timings("loop", name, samples, note=f"per step; {warm} warm-up + {steps} timed steps per sample")
    report.set_ratios("loop", "plain")
    for variant in ("project", "lightning_bare"):
        paired = paired_ratios(samples[variant], samples["plain"])
        report.note("loop", f"{variant} / plain, paired by round: {paired}")
    report.note("loop", f"config: python train.py {' '.join(options.loop_overrides)} (data.root {options.data_root}; "
                        f"one epoch of {warm} + {steps} batches, no validation); model {cfg.model.get('name')}, optimizer "
                        f"{cfg.optim.get('_target_')}, batch {datamodule.batch_size}, device {device}")
