"""The generic classification LightningModule used for every model in the zoo."""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Mapping

import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, LRScheduler, OneCycleLR
from torch.optim.swa_utils import AveragedModel
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from zoo.data.base import batch_seed
from zoo.data.transforms import BatchMix

__all__ = ["ClassificationModule", "DivergenceError", "ema_decay", "make_ema"]

log = logging.getLogger(__name__)

#: salt of the mixing seeds, so that a batch's mixing draws differ from its augmentation draws.
_MIX_SALT = 0x6D69785F73656564  # "mix_seed"


def ema_decay(decay: float, updates: int, warmup: bool) -> float:
    """The EMA decay of the update that follows ``updates`` earlier ones.

    With ``warmup`` it is ``min(decay, (1 + updates) / (10 + updates))``, the ramp of TensorFlow's
    ``ExponentialMovingAverage(num_updates=...)`` that timm's ``ModelEmaV2``/``V3`` users know: the
    average follows the weights closely early on, when they move fast, and settles at ``decay``
    (0.9998 is reached after about 45,000 updates). Without it the decay is ``decay`` throughout.

    Args:
        decay: the target decay, in [0, 1).
        updates: the number of earlier updates (``AveragedModel.n_averaged``, the first of which copied
            the weights).
        warmup: ramp the decay up.

    Returns:
        The decay in [0, ``decay``].
    """
    return min(decay, (1 + updates) / (10 + updates)) if warmup else decay


def make_ema(model: nn.Module, decay: float, warmup: bool = True) -> AveragedModel:
    """An exponential moving average of ``model``'s weights: ``torch.optim.swa_utils.AveragedModel``.

    The averaged copy is a deep copy of ``model``, not attached to it (the model stays a plain module,
    with no hooks). Each :meth:`AveragedModel.update_parameters` call after the first (which copies the
    weights) moves every parameter and every floating-point buffer (BatchNorm's running mean and
    variance) towards the model's: ``ema = lerp(ema, current, 1 - d)`` with ``d =``
    :func:`ema_decay` (``decay``, ``n_averaged``, ``warmup``), as timm's ``ModelEmaV3`` averages them;
    integer buffers (BatchNorm's ``num_batches_tracked``) are copied. The copy does not require gradients.

    Args:
        model: the network.
        decay: the EMA decay, in [0, 1).
        warmup: ramp the decay up (see :func:`ema_decay`).

    Returns:
        The ``AveragedModel`` (``.module`` is the averaged network; ``n_averaged`` counts the updates).

    Raises:
        ValueError: for a decay outside [0, 1).
    """
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= float(decay) < 1.0:
        raise ValueError(f"ema.decay={decay!r}: a number in [0, 1) is needed; e.g. ema.decay=0.9998")
    decay = float(decay)

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor | int) -> None:
        if averaged[0].is_floating_point() or averaged[0].is_complex():
            d = ema_decay(decay, int(n_averaged), bool(warmup))
            torch._foreach_lerp_(averaged, current, 1.0 - d)
        else:  # integer buffers (num_batches_tracked): copied, not averaged
            torch._foreach_copy_(averaged, current)

    ema = AveragedModel(model, multi_avg_fn=update, use_buffers=True)
    ema.requires_grad_(False)
    return ema


def _all_finite(loss: torch.Tensor, grads: list[torch.Tensor]) -> bool:
    """Whether the loss and every gradient element are finite: one host sync.

    ``loss * 0`` is 0 for a finite loss and NaN otherwise. When the gradients are float32 on the loss's
    device, AMP's fused finite check (``torch._amp_foreach_non_finite_check_and_unscale_``, the gradient
    scaler's, with a scale of 1: the gradients are multiplied by 1.0, which leaves every value as it was)
    then sets it to 1 if any gradient element is not finite: one kernel for all of them. Otherwise the
    gradients' norms are summed into it.
    """
    flag = loss.detach().float().reshape(1) * 0.0  # (1,): 0, or NaN for a non-finite loss
    if grads:
        if all(g.dtype == torch.float32 and g.device == loss.device for g in grads):
            torch._amp_foreach_non_finite_check_and_unscale_(grads, flag, _unit(loss.device))
        else:
            flag = flag + torch.stack([n.float() for n in torch._foreach_norm(grads)]).sum() * 0.0
    return not bool(flag)


_UNITS: dict[torch.device, torch.Tensor] = {}


def _unit(device: torch.device) -> torch.Tensor:
    """A float32 ``tensor([1.])`` on ``device``, made once."""
    unit = _UNITS.get(device)
    if unit is None:
        unit = _UNITS[device] = torch.ones(1, device=device)
    return unit


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or gradient, or validation a non-finite loss.

    Raised before the optimizer step, so the weights (and every checkpoint) stay those of
    the last finite step.

    Attributes:
        what: ``"loss"``, ``"gradients"`` or ``"validation loss"``.
        epoch: the epoch (0-based) in which it happened.
        step: the optimizer step (``global_step``) it happened at.
        lr: the learning rate of the first parameter group at that step.
        value: the offending value (``nan``/``inf``).
    """

    def __init__(self, what: str, epoch: int, step: int, lr: float | None, value: float) -> None:
        self.what, self.epoch, self.step, self.lr, self.value = what, epoch, step, lr, value
        lr_text = f"{lr:.4g}" if lr is not None else "n/a"
        super().__init__(f"training diverged: non-finite {what} ({value}) at epoch {epoch + 1}, step {step}, "
                         f"lr {lr_text}")


class ClassificationModule(pl.LightningModule):
    """Trains any zoo classifier with cross-entropy and reports top-1 (and top-5) accuracy.

    The model only produces logits; the loss lives here. Models with auxiliary
    classifiers (GoogLeNet) expose ``forward_train(x) -> (logits, [aux, ...])``:
    during training the loss is ``CE(logits) + aux_weight * sum(CE(aux))``, and
    validation, test and inference call ``forward`` only. A 5-D evaluation batch
    ``(B, n_crops, C, H, W)`` (e.g. ten-crop testing) is scored by averaging the
    logits over the crops.

    Args:
        model: the network, ``forward(x) -> (B, num_classes)`` logits.
        optimizer: partial of a ``torch.optim`` optimizer, called with the parameters.
        scheduler: the ``sched`` config: ``scheduler`` (a partial or ``None``), ``interval``
            (``"epoch"``/``"step"``), ``monitor``, ``warmup_steps``, ``warmup_factor``, ``warmup_mode``.
        num_classes: number of classes (top-5 accuracy is tracked when >= 10).
        label_smoothing: cross-entropy label smoothing.
        aux_weight: weight of the auxiliary losses (0 disables ``forward_train``).
        channels_last: keep the weights and the 4-D batches in channels-last memory format
            (NHWC). The mathematics is unchanged; convolutions may run faster.
        compile: ``torch.compile`` the model for training and evaluation: ``False``, ``True``
            (torch.compile's defaults) or a mapping of ``torch.compile`` keywords (e.g.
            ``{"mode": "max-autotune"}``). The compiled callable is kept beside the model, not
            as a submodule, so checkpoints hold the plain model's keys (no ``_orig_mod.``
            prefix) and resume with or without compile.
        ema_decay: keep an exponential moving average of the weights with this decay (``None``: none;
            see :func:`make_ema`). It is updated after every optimizer step, validation and test run
            on it, and it is saved in the checkpoints (``ema.module.*``, ``ema.n_averaged``).
        ema_warmup: ramp the EMA's decay up (see :func:`ema_decay`).
        mixup_alpha: mixup's Beta parameter (0: off), see :class:`zoo.data.transforms.BatchMix`.
        cutmix_alpha: CutMix's Beta parameter (0: off).
        mix_prob: probability that a training batch is mixed. The loss of a mixed batch is taken
            against the mixed (soft) targets; the training accuracy is counted against each image's
            own label (the one with weight ``lam``), so under mixing it measures agreement with the
            dominant label only and is not comparable with an unmixed run's. Each batch's draws
            are seeded from ``(mix seed, epoch, batch)``, so a resumed run mixes as the straight one.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[..., Optimizer],
        scheduler: Mapping[str, Any] | None = None,
        num_classes: int = 10,
        label_smoothing: float = 0.0,
        aux_weight: float = 0.3,
        channels_last: bool = False,
        compile: bool | Mapping[str, Any] = False,
        ema_decay: float | None = None,
        ema_warmup: bool = True,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        mix_prob: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"])
        self.channels_last = bool(channels_last)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        #: the exponential moving average of the weights (``None``: off); a sibling of ``model``.
        self.ema: AveragedModel | None = make_ema(model, ema_decay, ema_warmup) if ema_decay is not None else None
        # The callables that run the model are kept beside it, never registered as submodules
        # (object.__setattr__): the state_dict holds the model's weights once, under ``model.``.
        self._run: Callable[..., Any]
        object.__setattr__(self, "_run", model)
        self._run_train: Callable[..., Any] | None = getattr(model, "forward_train", None)
        options = dict(compile) if isinstance(compile, Mapping) else {}
        if compile:
            object.__setattr__(self, "_run", torch.compile(model, **options))
            if self._run_train is not None:
                object.__setattr__(self, "_run_train", torch.compile(model.forward_train, **options))
        # Validation and test run on the EMA's weights when there is one; kept beside the modules
        # (object.__setattr__), so that the state_dict gains no second copy of them.
        run_eval: Callable[..., Any] = self._run
        if self.ema is not None:
            run_eval = torch.compile(self.ema.module, **options) if compile else self.ema.module
        object.__setattr__(self, "_run_eval", run_eval)
        self.mixer = BatchMix(num_classes, mixup_alpha, cutmix_alpha, mix_prob)
        #: base seed of the mixing draws (``None``: the run seed, when the first batch is mixed); checkpointed.
        self.mix_seed: int | None = None
        self.optimizer_factory = optimizer
        self.sched_cfg = dict(scheduler or {})
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.aux_weight = aux_weight
        self.use_aux = aux_weight > 0 and hasattr(model, "forward_train")

        def acc(k: int) -> MulticlassAccuracy:
            return MulticlassAccuracy(num_classes=num_classes, top_k=k, average="micro")

        self.val_acc, self.test_acc = acc(1), acc(1)
        self.top5 = num_classes >= 10
        if self.top5:
            self.val_acc5, self.test_acc5 = acc(5), acc(5)
        # nan_strategy="disable": a NaN loss is shown as NaN in the logs, never dropped from the mean.
        self.train_loss, self.val_loss, self.test_loss = (MeanMetric(nan_strategy="disable") for _ in range(3))
        # The training epoch's accuracy: a weighted mean of the processes' accuracies (weights: their
        # images), so the value synced under data-parallel training is the accuracy over all images.
        self.train_acc = MeanMetric(nan_strategy="disable")
        #: the training epoch's running sums on the model's device (the batch losses, the correct images),
        #: made on the first step of an epoch; ``_batches``/``_images`` count what they hold.
        self._loss_sum: torch.Tensor | None = None
        self._correct: torch.Tensor | None = None
        self._batches = 0
        self._images = 0
        #: the last ``train/loss_step`` written to the loggers (the progress bar shows it), and its step.
        self.last_step_loss: float | None = None
        self._logged_step = -1
        self._grad_params: tuple[Optimizer, list[nn.Parameter]] | None = None
        # Saved in checkpoints, so a resumed run keeps its best validation accuracy.
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)
        #: settings changed on resume, applied when training starts (see :meth:`apply_resume_changes`).
        self.resume_changes: dict[str, Any] = {}
        #: check each step for a non-finite loss and gradients (raises :class:`DivergenceError`).
        self.check_finite = True
        self._step_loss: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns logits of the trained weights; a 5-D batch ``(B, n_crops, C, H, W)`` gets crop-averaged logits."""
        return self._logits(self._run, x)

    def _logits(self, run: Callable[..., Any], x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            b, n = x.shape[:2]
            return run(self._memory_format(x.flatten(0, 1))).view(b, n, -1).mean(1)  # (B, K)
        return run(x)

    @property
    def eval_model(self) -> nn.Module:
        """The network that validation and test run: the EMA's copy when there is one, else ``model``."""
        return self.ema.module if self.ema is not None else self.model

    def _memory_format(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in channels-last memory format when ``channels_last`` is set and ``x`` is 4-D."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def _ce(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)

    def _mix_batch_seed(self, batch_idx: int) -> int:
        """The seed of batch ``batch_idx``'s mixing draws in this epoch, from :attr:`mix_seed`."""
        if self.mix_seed is None:
            self.mix_seed = (int(torch.initial_seed()) ^ _MIX_SALT) % 2**63
        return batch_seed(self.mix_seed, int(self.current_epoch), int(batch_idx))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        target = y
        if self.mixer.enabled:
            x, target = self.mixer(x, y, self._mix_batch_seed(batch_idx))  # soft targets when mixed
        x = self._memory_format(x)
        if self.use_aux and self._run_train is not None:
            logits, aux = self._run_train(x)
            loss = self._ce(logits, target) + self.aux_weight * sum(self._ce(a, target) for a in aux)
        else:
            logits = self._run(x)
            loss = self._ce(logits, target)
        self._step_loss = loss.detach()
        self._accumulate(self._step_loss, logits.detach(), y)
        return loss

    def _accumulate(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Adds a training batch's loss and correct top-1 predictions to the epoch's running sums.

        A few small tensor ops a step, with no host sync: the torchmetrics updates they replace (argument
        checks, state bookkeeping) cost several times more, a few percent of a LeNet-5 step.
        """
        correct = (logits.argmax(1) == y).sum()  # () int64
        if self._loss_sum is None or self._correct is None:
            self._loss_sum, self._correct = loss.float().clone(), correct
        else:
            self._loss_sum.add_(loss)
            self._correct.add_(correct)
        self._batches += 1
        self._images += int(y.shape[0])

    def train_epoch_stats(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """This process's training loss (the mean of its batch losses) and top-1 accuracy so far in the
        epoch, or ``None`` before its first step."""
        if self._loss_sum is None or self._correct is None:
            return None
        return self._loss_sum / self._batches, self._correct / self._images

    def train_epoch_metrics(self) -> dict[str, torch.Tensor] | None:
        """The epoch's training loss and accuracy over all processes, or ``None`` before the epoch's first step.

        The running sums go into the ``train_loss``/``train_acc`` metrics once (weighted by this process's
        batches and images); ``compute()`` then gathers every rank's (a collective under data-parallel
        training: every rank calls this) and keeps the result, so a second call costs nothing.
        """
        stats = self.train_epoch_stats()
        if stats is None:
            return None
        if not self.train_loss.update_count:
            self.train_loss.update(stats[0], weight=self._batches)
            self.train_acc.update(stats[1], weight=self._images)
        return {"train/loss": self.train_loss.compute(), "train/acc": self.train_acc.compute()}

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Writes the step's loss, ``train/loss_step``, to the loggers every ``trainer.log_every_n_steps``
        optimizer steps (at the step and with the epoch Lightning's own logging would give it).

        It goes to the loggers directly, not through ``self.log``: one host sync and one row every N steps,
        where ``self.log`` costs about as much as a LeNet-5 step each time and keeps Lightning's result
        collection busy on every later step. The progress bar shows it (:class:`~zoo.training.callbacks.
        LossRichProgressBar`); rank 0's own value, unsynchronised.
        """
        step = int(self.global_step)  # optimizer steps so far, this batch's included
        if step in (0, self._logged_step) or self._step_loss is None or step % self._log_every() != 0:
            return
        self._logged_step = step
        self.last_step_loss = float(self._step_loss)
        for logger in self.trainer.loggers:
            logger.log_metrics({"train/loss_step": self.last_step_loss, "epoch": int(self.current_epoch)},
                               step=step - 1)

    def _log_every(self) -> int:
        """``trainer.log_every_n_steps`` (at least 1)."""
        return max(int(self.trainer.log_every_n_steps or 1), 1)

    def on_train_epoch_end(self) -> None:
        """Logs the epoch's training loss and accuracy, then starts them afresh.

        Under data-parallel training every epoch-level value is over all processes: the torchmetrics objects
        gather their states from every rank in ``compute()``, and ``sync_dist=True`` then reduces the values
        (the same on every rank) once more, as Lightning asks of epoch-level logs. The per-step
        ``train/loss_step`` is rank 0's own, unsynchronised (a reduction every step would cost a collective).
        """
        metrics = self.train_epoch_metrics()
        if metrics is not None:
            self.log("train/loss_epoch", metrics["train/loss"], prog_bar=True, sync_dist=True)
            self.log("train/acc", metrics["train/acc"], prog_bar=True, sync_dist=True)
        self.train_loss.reset()
        self.train_acc.reset()
        self._loss_sum, self._correct, self._batches, self._images = None, None, 0, 0

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        x, y = batch
        logits = self._logits(self._run_eval, self._memory_format(x))
        loss = F.cross_entropy(logits, y)
        getattr(self, f"{stage}_loss").update(loss)
        getattr(self, f"{stage}_acc").update(logits, y)
        if self.top5:
            getattr(self, f"{stage}_acc5").update(logits, y)

    def _log_eval(self, stage: str) -> None:
        """Logs a validation or test epoch's loss and accuracies, then starts them afresh."""
        metrics = [("loss", getattr(self, f"{stage}_loss")), ("acc", getattr(self, f"{stage}_acc"))]
        if self.top5:
            metrics.append(("acc5", getattr(self, f"{stage}_acc5")))
        for name, metric in metrics:
            if metric.update_count:
                self.log(f"{stage}/{name}", metric.compute(), prog_bar=name != "acc5", sync_dist=True)
            metric.reset()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def _lr(self) -> float | None:
        try:
            return float(self.trainer.optimizers[0].param_groups[0]["lr"])
        except (AttributeError, IndexError, RuntimeError):
            return None

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        """Stops the run before a step on a non-finite loss or gradient (one host sync per step).

        Under ``16-mixed`` precision the gradient scaler skips steps with non-finite
        gradients by design, so only the loss is checked there.
        """
        if not self.check_finite or self._step_loss is None:
            return
        loss = self._step_loss
        if self._grad_params is None or self._grad_params[0] is not optimizer:  # its parameters, listed once
            self._grad_params = (optimizer, [p for g in optimizer.param_groups for p in g["params"]])
        grads = [p.grad for p in self._grad_params[1] if p.grad is not None]
        if "16-mixed" in str(self.trainer.precision):
            grads = []
        if _all_finite(loss, grads):
            return
        if not bool(torch.isfinite(loss)):
            self._diverged("loss", "train/loss_step", float(loss))
        total = torch.stack(torch._foreach_norm(grads)).float().sum()
        self._diverged("gradients", "train/grad_norm", float(total))

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Lightning's optimizer step, then the EMA's update (before any callback sees the step, so a
        checkpoint written at this step's end holds the updated average)."""
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Saves the mixing seed (the EMA is in the ``state_dict``)."""
        if self.mix_seed is not None:
            checkpoint["mix_seed"] = int(self.mix_seed)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restores the mixing seed, so that a resumed run mixes its batches as the straight run.

        Checkpoints written before the model's runner was kept out of the ``state_dict`` hold every
        weight a second time under ``_run.``; those keys are dropped (the ``model.`` ones are the same
        tensors), so such checkpoints still resume.
        """
        state = checkpoint.get("state_dict")
        if isinstance(state, dict):
            for key in [k for k in state if k.startswith("_run.")]:
                del state[key]
        if "mix_seed" in checkpoint:
            self.mix_seed = int(checkpoint["mix_seed"])

    def _diverged(self, what: str, key: str, value: float) -> None:
        """Writes the non-finite value to the loggers (NaN shows as NaN), then raises :class:`DivergenceError`."""
        epoch, step = int(self.current_epoch), int(self.global_step)
        for logger in self.trainer.loggers:
            logger.log_metrics({key: value, "epoch": epoch}, step=step)
            logger.save()
        raise DivergenceError(what, epoch, step, self._lr(), value)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:  # the sanity check must not count towards the best accuracy
            for metric in (self.val_loss, self.val_acc, *([self.val_acc5] if self.top5 else [])):
                metric.reset()
            return
        if self.check_finite and self.val_loss.update_count:
            val_loss = self.val_loss.compute()
            if not bool(torch.isfinite(val_loss)):
                self._diverged("validation loss", "val/loss", float(val_loss))
        if self.val_acc.update_count:
            self.val_acc_best(self.val_acc.compute())
        self._log_eval("val")
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_eval("test")

    def configure_optimizers(self) -> Any:
        """Builds the optimizer and the (optionally warmed-up) scheduler from their partials."""
        optimizer = self.optimizer_factory(params=self.model.parameters())
        cfg = self.sched_cfg
        interval = cfg.get("interval", "epoch")
        schedulers: list[dict[str, Any]] = []
        factory = cfg.get("scheduler")
        if factory is not None:
            kwargs: dict[str, Any] = {}
            func = getattr(factory, "func", factory)
            keywords = getattr(factory, "keywords", {})
            if func is OneCycleLR and keywords.get("total_steps") is None:
                kwargs["total_steps"] = self._total_units("step")
            if func is CosineAnnealingLR and keywords.get("T_max") is None:
                kwargs["T_max"] = self._total_units(interval)
            sched = factory(optimizer=optimizer, **kwargs)
            entry: dict[str, Any] = {"scheduler": sched, "interval": interval, "frequency": 1}
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                entry["monitor"] = cfg.get("monitor", "val/loss")
            schedulers.append(entry)
        warmup_steps = int(cfg.get("warmup_steps", 0) or 0)
        if warmup_steps > 0:
            schedulers.insert(0, {"scheduler": self._warmup(optimizer, cfg, warmup_steps),
                                  "interval": "step", "frequency": 1})
        if not schedulers:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": schedulers[0]} if len(schedulers) == 1 \
            else ([optimizer], schedulers)

    def on_train_start(self) -> None:
        if self.resume_changes:
            self.apply_resume_changes()

    def apply_resume_changes(self) -> None:
        """Applies the settings a resumed run changed, after the optimizer and schedulers were restored.

        ``resume_changes`` may hold ``optim`` (hyperparameters of the parameter groups, set as
        given), ``lr`` (the new base learning rate: the current rate and the schedule are scaled by
        new / old, so the schedule keeps its shape from the resume on) and ``replan`` (the
        cosine schedule's length is set to the new run length; its rate decays from the current
        value to ``eta_min`` at the new end).
        """
        changes = self.resume_changes
        optimizer = self.trainer.optimizers[0]
        for key, value in (changes.get("optim") or {}).items():
            for group in optimizer.param_groups:
                group[key] = tuple(value) if isinstance(group.get(key), tuple) else value
            log.info("resume: optim.%s is now %s", key, value)
        configs = self.trainer.lr_scheduler_configs
        if "lr" in changes:
            old, new = float(changes["lr"][0]), float(changes["lr"][1])
            ratio = new / old
            for group in optimizer.param_groups:
                group["lr"] = group["lr"] * ratio
                if "initial_lr" in group:
                    group["initial_lr"] = group["initial_lr"] * ratio
            for c in configs:
                sched = c.scheduler
                if hasattr(sched, "base_lrs"):
                    sched.base_lrs = [b * ratio for b in sched.base_lrs]
                if hasattr(sched, "_last_lr"):
                    sched._last_lr = [g["lr"] for g in optimizer.param_groups]
            log.info("resume: optim.lr %g -> %g: the schedule is scaled by %g from step %d (lr now %.4g)",
                     old, new, ratio, self.global_step, optimizer.param_groups[0]["lr"])
        if changes.get("replan"):
            for c in configs:
                sched = c.scheduler
                if isinstance(sched, CosineAnnealingLR):
                    old_t, old_lr = sched.T_max, optimizer.param_groups[0]["lr"]
                    sched.T_max = self._total_units(c.interval)
                    t = min(sched.last_epoch, sched.T_max)
                    for group, base in zip(optimizer.param_groups, sched.base_lrs):
                        group["lr"] = sched.eta_min + (base - sched.eta_min) * (1 + math.cos(math.pi * t / sched.T_max)) / 2
                    sched._last_lr = [g["lr"] for g in optimizer.param_groups]
                    log.info("resume: cosine schedule re-planned over %d %ss (was %d): at %s %d the lr is %.4g "
                             "(was %.4g); it decays to eta_min at the new end", sched.T_max, c.interval, old_t,
                             c.interval, t, optimizer.param_groups[0]["lr"], old_lr)

    def _total_units(self, interval: str) -> int:
        """Optimizer steps (``interval="step"``) or epochs of the whole run."""
        if interval == "step":
            return self._total_steps()
        return int(self.trainer.max_epochs)

    def _total_steps(self) -> int:
        """``trainer.estimated_stepping_batches``, counted without making the trainer set up its loaders.

        Lightning's property sets up the training loader the first time it is read. Read from
        ``configure_optimizers`` (before a checkpoint's loop state is restored), that loader would
        start at the wrong epoch and position on resume; so the count is made here from a loader of
        the datamodule's own, the same way Lightning counts.
        """
        trainer = self.trainer
        if trainer.fit_loop._combined_loader is not None or trainer.datamodule is None:
            return int(trainer.estimated_stepping_batches)
        n = len(trainer.datamodule.train_dataloader())
        if trainer.fast_dev_run:
            n = min(n, int(trainer.fast_dev_run))
        else:
            limit = trainer.limit_train_batches
            n = int(n * limit) if isinstance(limit, float) else min(n, int(limit))
        steps = math.ceil(n / trainer.accumulate_grad_batches) * max(int(trainer.max_epochs or 1), 1)
        return min(steps, trainer.max_steps) if trainer.max_steps != -1 else steps

    @staticmethod
    def _warmup(optimizer: Optimizer, cfg: Mapping[str, Any], steps: int) -> LRScheduler:
        """Warmup over the first ``steps`` optimizer steps, chained with the main schedule.

        ``constant`` holds the lr at ``warmup_factor`` x lr (He et al. 2015's ResNet-110
        recipe: 0.01 for ~400 iterations, then 0.1); ``linear`` ramps from
        ``warmup_factor`` x lr to lr (the usual ViT recipe).
        """
        factor = float(cfg.get("warmup_factor", 0.1))
        if cfg.get("warmup_mode", "linear") == "constant":
            return ConstantLR(optimizer, factor=factor, total_iters=steps)
        return LinearLR(optimizer, start_factor=factor, end_factor=1.0, total_iters=steps)
