"""Re-scoring a trained checkpoint without training: ``zoo eval ckpt=<run folder or .ckpt>``.

The data module and the model are rebuilt from the run's own record: the resolved config and the model's
builder keywords that every checkpoint of ``train.py`` carries (``checkpoint["zoo"]``, written by
:class:`zoo.training.callbacks.RunMetadata`), else the run folder's ``results.json``. Overrides such as
``data.root=...`` apply on top. The test runs as the run's own test did: the same checkpoint (for a run
folder, the one its test used: ``best_checkpoint`` of ``results.json``, else ``last.ckpt``), the same
trainer settings (accelerator, precision, batch limits), the same evaluation batches and the same metrics
(``torchmetrics``' top-1 and top-5 accuracy, the mean of the batches' cross-entropy). On the same machine
``test/acc`` is therefore that of ``results.json``, exactly.

The figures are written to ``eval.json`` in the run folder (or beside a checkpoint that is not in one);
an earlier ``eval.json`` is never overwritten: the next is ``eval-2.json``, ``eval-3.json``, ...
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from zoo.trained import model_from_checkpoint, tested_state_dict

__all__ = ["EvalError", "evaluate", "find_checkpoint", "model_from_checkpoint", "parse_overrides",
           "tested_state_dict", "write_record"]

log = logging.getLogger(__name__)

SPLITS = ("test", "val")


class EvalError(ValueError):
    """Bad input to :func:`evaluate`: a missing path, a weights file, an unknown override key, a bad split,
    a checkpoint of another model than the one asked for, data that does not fit the model."""


# ---------------------------------------------------------------------------------------------- checkpoints


def find_checkpoint(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """The checkpoint to score and the run folder it belongs to.

    Args:
        path: a run folder of ``train.py`` (its tested checkpoint is taken, as :func:`zoo.load_checkpoint`
            takes it) or a ``.ckpt`` file.

    Returns:
        ``(checkpoint file, run folder or None)``; a checkpoint in ``<run>/checkpoints/`` belongs to ``<run>``
        when that folder holds the run's records (``results.json`` or ``.hydra/``).

    Raises:
        EvalError: for a path that does not exist, a folder without checkpoints, or a weights file.
        zoo.CheckpointError: for a run folder that has no checkpoint.
    """
    from zoo.trained import _run_checkpoint

    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise EvalError(f"ckpt={path}: no such file or folder; pass a run folder of train.py or one of its "
                        f"checkpoints, e.g. ckpt=outputs/train/runs/lenet5-digits/<time> or ckpt=<run>/checkpoints/last.ckpt")
    if p.is_dir():
        if not (p / "checkpoints").is_dir():
            raise EvalError(f"ckpt={path}: folder {p} has no checkpoints/, so it is not a run folder of train.py; "
                            f"e.g. ckpt=outputs/train/runs/lenet5-digits/<time>")
        return _run_checkpoint(p), p
    if p.suffix == ".safetensors":
        raise EvalError(f"ckpt={path}: a weights file holds no record of the data it was tested on; pass its run "
                        f"folder or a .ckpt, e.g. ckpt={p.parent.parent if p.parent.name == 'checkpoints' else '<run>'}")
    run = p.parent.parent if p.parent.name == "checkpoints" else None
    if run is not None and not ((run / "results.json").is_file() or (run / ".hydra").is_dir()):
        run = None
    return p, run


# ---------------------------------------------------------------------------------------------- config


def parse_overrides(items: Sequence[str]) -> tuple[str | None, list[tuple[str, str, bool]]]:
    """Splits ``key=value`` overrides into a data group choice (``data=<name>``) and dotted keys.

    Returns:
        ``(data choice or None, [(key, value text, add), ...])``; ``add`` is true for ``+key=value``.

    Raises:
        EvalError: for an item without ``=`` or with an empty key.
    """
    data, out = None, []
    for item in items:
        key, sep, value = item.partition("=")
        add = key.startswith("+")
        key = key.lstrip("+")
        if not sep or not key or key.startswith("~"):
            raise EvalError(f"override {item!r}: expected key=value (or +key=value for a key the run's config lacks); "
                            f"e.g. data.root=../shared/data")
        if key == "data" and not add:
            data = value
        else:
            out.append((key, value, add))
    return data, out


def _data_group(name: str) -> dict[str, Any]:
    """``configs/data/<name>.yaml`` of the project, unresolved (its ``${paths...}`` resolve against the run's)."""
    from omegaconf import OmegaConf

    from zoo.configs import config_dir

    folder = config_dir() / "data"
    f = folder / f"{name}.yaml"
    if not f.is_file():
        from zoo._registry import did_you_mean

        names = sorted(p.stem for p in folder.glob("*.yaml"))
        raise EvalError(f"data={name}: no such data config in {folder}.{did_you_mean(name, names, n=3)} "
                        f"Available: {', '.join(names)}; e.g. data=mnist")
    return OmegaConf.to_container(OmegaConf.load(f), resolve=False)  # type: ignore[return-value]


def run_config(ckpt_meta: Mapping[str, Any], run_dir: Path | None, data: str | None,
               overrides: Sequence[tuple[str, str, bool]]) -> Any:
    """The run's resolved config with the overrides applied, as a ``DictConfig``.

    Raises:
        EvalError: when no config is recorded, or an override names a key the config lacks (without ``+``).
    """
    from omegaconf import OmegaConf

    config = ckpt_meta.get("config")
    if not isinstance(config, dict) and run_dir is not None:
        try:
            config = json.loads((run_dir / "results.json").read_text()).get("config")
        except (OSError, ValueError):
            config = None
    if not isinstance(config, dict):
        raise EvalError("the checkpoint records no config and no results.json beside it holds one: the data it was "
                        "tested on is unknown; pass a run folder of train.py")
    cfg = OmegaConf.create(copy.deepcopy(config))
    if data is not None:
        cfg.data = _data_group(data)
    for key, value, add in overrides:
        missing = object()
        if not add and OmegaConf.select(cfg, key, default=missing) is missing:
            parent = key.rsplit(".", 1)[0] if "." in key else ""
            node = OmegaConf.select(cfg, parent) if parent else cfg
            have = sorted(node.keys())[:20] if hasattr(node, "keys") else []
            from zoo._registry import did_you_mean

            near = did_you_mean(key.rsplit(".", 1)[-1], have, n=3)
            raise EvalError(f"override {key}={value}: the run's config has no key {key!r}.{near} "
                            f"{'Keys of ' + parent + ': ' + ', '.join(map(str, have)) + '. ' if parent and have else ''}"
                            f"Use +{key}={value} to add it; e.g. data.root=../shared/data")
        parsed = OmegaConf.from_dotlist([f"{key}={value}"])
        cfg = OmegaConf.merge(cfg, parsed)
    return cfg


# ---------------------------------------------------------------------------------------------- scoring


def _eval_module(model: nn.Module, num_classes: int, channels_last: bool, compile_opts: Any) -> Any:
    """A LightningModule that scores ``model`` as :class:`zoo.training.ClassificationModule` validates and tests:
    the same metrics, updated the same way, logged once at the end."""
    import pytorch_lightning as pl
    import torch.nn.functional as F
    from torchmetrics import MeanMetric
    from torchmetrics.classification import MulticlassAccuracy

    class _Scorer(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model.to(memory_format=torch.channels_last) if channels_last else model
            run = self.model
            if compile_opts:
                run = torch.compile(self.model, **(dict(compile_opts) if isinstance(compile_opts, Mapping) else {}))
            object.__setattr__(self, "_run", run)
            self.top5 = num_classes >= 10

            def acc(k: int) -> MulticlassAccuracy:
                return MulticlassAccuracy(num_classes=num_classes, top_k=k, average="micro")

            self.acc, self.acc5 = acc(1), (acc(5) if self.top5 else None)
            self.loss = MeanMetric(nan_strategy="disable")

        def _fmt(self, x: torch.Tensor) -> torch.Tensor:
            return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x

        def _logits(self, x: torch.Tensor) -> torch.Tensor:
            if x.dim() == 5:  # (B, n_crops, C, H, W): ten-crop testing, logits averaged over the crops
                b, n = x.shape[:2]
                return self._run(self._fmt(x.flatten(0, 1))).view(b, n, -1).mean(1)
            return self._run(self._fmt(x))

        def _step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
            x, y = batch
            logits = self._logits(x)
            self.loss.update(F.cross_entropy(logits, y))
            self.acc.update(logits, y)
            if self.acc5 is not None:
                self.acc5.update(logits, y)

        def _end(self, stage: str) -> None:
            for name, metric in (("loss", self.loss), ("acc", self.acc), ("acc5", self.acc5)):
                if metric is not None and metric.update_count:
                    self.log(f"{stage}/{name}", metric.compute())
                if metric is not None:
                    metric.reset()

        def test_step(self, batch: Any, batch_idx: int) -> None:
            self._step(batch)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self._step(batch)

        def on_test_epoch_end(self) -> None:
            self._end("test")

        def on_validation_epoch_end(self) -> None:
            self._end("val")

    return _Scorer()


def evaluate(ckpt: str | os.PathLike, overrides: Sequence[str] = (), split: str = "test",
             model: str | None = None) -> dict[str, Any]:
    """Scores a trained checkpoint on its run's test (or validation) set, without training.

    Args:
        ckpt: a run folder of ``train.py`` or a ``.ckpt`` file.
        overrides: ``key=value`` changes to the run's config (``data.root=../shared/data``,
            ``trainer.accelerator=cpu``, ``data=<name>`` for another data config, ``+key=value`` to add a key).
        split: ``"test"`` or ``"val"``.
        model: when given, the registered model name the checkpoint must hold.

    Returns:
        The record (also what :func:`write_record` writes): ``<split>/acc``, ``<split>/loss``, ``<split>/acc5``,
        ``checkpoint``, ``run_dir``, ``model``, ``data``, ``split``, ``overrides``, ``images``, ``seconds``,
        and, where the run's ``results.json`` scored the same checkpoint on the same data, ``run_test/acc``
        and ``matches_run``.

    Raises:
        EvalError: bad input (see :class:`EvalError`).
        zoo.CheckpointError: an unreadable checkpoint, or one without a record of its model.
        zoo.data.DatasetNotFoundError: the data is not where the config says.
    """
    if split not in SPLITS:
        raise EvalError(f"split={split}: one of {', '.join(SPLITS)} is needed; e.g. split=test")
    data_choice, dotted = parse_overrides(list(overrides))
    ckpt_path, run_dir = find_checkpoint(ckpt)

    import hydra
    import pytorch_lightning as pl
    from omegaconf import OmegaConf

    from zoo.trained import load_checkpoint_file

    t0 = time.perf_counter()
    loaded = load_checkpoint_file(ckpt_path)
    net, meta = model_from_checkpoint(loaded, ckpt_path)
    if model is not None and meta["model"] != model:
        raise EvalError(f"--model {model}: checkpoint {ckpt_path} holds model {meta['model']!r}; drop --model or "
                        f"pass --model {meta['model']}")
    cfg = run_config(meta, run_dir, data_choice, dotted)
    facts = dict(meta.get("data") or {})
    del loaded

    if cfg.get("seed") is not None:
        pl.seed_everything(int(cfg.seed), workers=True)  # as the run did before it built the data
    try:
        datamodule = hydra.utils.instantiate(cfg.data)
    except Exception as e:  # a bad data override: hydra wraps the datamodule's own message
        cause = e.__cause__ or e
        raise EvalError(f"the data config cannot be built: {cause}") from e
    datamodule.prepare_data()
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert isinstance(trainer_cfg, dict)
    trainer_cfg.pop("_target_", None)
    for key in ("default_root_dir", "max_epochs", "min_epochs", "max_steps", "check_val_every_n_epoch",
                "log_every_n_steps", "gradient_clip_val", "gradient_clip_algorithm", "accumulate_grad_batches",
                "overfit_batches", "limit_train_batches", "val_check_interval", "num_sanity_val_steps"):
        trainer_cfg.pop(key, None)  # training-only settings; the test's own (limits, precision, device) stay
    if split == "test":
        trainer_cfg.pop("limit_val_batches", None)
    else:
        trainer_cfg.pop("limit_test_batches", None)
    try:
        trainer = pl.Trainer(**trainer_cfg, logger=False, callbacks=[], enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False)
    except Exception as e:  # e.g. the run's accelerator is not on this machine
        raise EvalError(f"the run's trainer settings cannot be used here ({type(e).__name__}: "
                        f"{_first_line(e)}); override them, e.g. trainer.accelerator=cpu") from e
    scorer = _eval_module(net, int(facts.get("num_classes") or getattr(net, "num_classes")),
                          bool(cfg.get("channels_last") or False), _container(cfg.get("compile")))
    # Set up first, so that data which does not fit the model is named before anything runs.
    datamodule.trainer = trainer
    datamodule.setup("test" if split == "test" else "validate")
    for key in ("num_classes", "in_chans"):
        have = getattr(datamodule, key)
        if facts.get(key) is not None and have != facts[key]:
            raise EvalError(f"the data has {key}={have}, but model {meta['model']} was trained with {key}={facts[key]}; "
                            f"evaluate it on data like its own, e.g. data={facts.get('name') or 'digits'}")
    if split == "test":
        trainer.test(scorer, datamodule=datamodule, verbose=False)
    else:
        trainer.validate(scorer, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(f"{split}/")}
    dataset = datamodule.test_set if split == "test" else datamodule.val_set
    record: dict[str, Any] = {
        "checkpoint": str(ckpt_path.resolve()),
        "run_dir": str(run_dir.resolve()) if run_dir is not None else None,
        "model": meta["model"],
        "data": facts.get("name") if data_choice is None else data_choice,
        "split": split,
        "overrides": list(overrides),
        f"{split}/acc": metrics.get(f"{split}/acc"),
        f"{split}/loss": metrics.get(f"{split}/loss"),
        f"{split}/acc5": metrics.get(f"{split}/acc5"),
        "images": len(dataset) if dataset is not None else None,
        "device": str(trainer.strategy.root_device),
        "precision": str(trainer_cfg.get("precision", "32-true")),
        "seconds": round(time.perf_counter() - t0, 2),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    record.update(_compare_with_run(run_dir, ckpt_path, split, data_choice, dotted, record))
    log.info("%s %s: %s", ckpt_path, split, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return record


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:200]


def _container(value: Any) -> Any:
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def _compare_with_run(run_dir: Path | None, ckpt_path: Path, split: str, data_choice: str | None,
                      dotted: Sequence[tuple[str, str, bool]], record: Mapping[str, Any]) -> dict[str, Any]:
    """``run_test/acc`` and ``matches_run`` when the run's ``results.json`` scored this checkpoint on this data."""
    if run_dir is None or split != "test" or data_choice is not None:
        return {}
    if any(not k.startswith(("data.root", "data.num_workers", "data.device", "data.pin_memory", "trainer.accelerator",
                             "trainer.devices", "data.eval_batch_size")) for k, _, _ in dotted):
        return {}
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return {}
    tested = results.get("best_checkpoint") if results.get("tested_on") == "best" else str(
        run_dir / "checkpoints" / "last.ckpt")
    if not tested or Path(tested).name != ckpt_path.name or results.get("test/acc") is None:
        return {}
    return {"run_test/acc": results["test/acc"], "matches_run": results["test/acc"] == record.get("test/acc")}


def write_record(record: Mapping[str, Any], folder: str | os.PathLike) -> Path:
    """Writes ``record`` as ``eval.json`` in ``folder``, or ``eval-<k>.json`` (k = 2, 3, ...) if taken: an
    earlier evaluation is never overwritten.

    Returns:
        The file written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=2, default=str) + "\n"
    k = 1
    while True:
        path = folder / ("eval.json" if k == 1 else f"eval-{k}.json")
        try:
            with open(path, "x") as f:  # exclusive: two evaluations at once never take the same name
                f.write(text)
            return path
        except FileExistsError:
            k += 1
