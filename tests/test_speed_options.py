"""The speed options of a run: channels_last, compile and bf16 mixed precision. None changes what is
trained: each run completes, learns, and its checkpoints hold the plain model."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from hydra_helpers import make_cfg
from zoo.trained import load_checkpoint_file
from zoo.training.module import ClassificationModule
from zoo.training.run import train
import zoo.training.run as run_module


class _Spy(pl.Callback):
    """Records the memory format and dtype of what the training step sees."""

    def __init__(self) -> None:
        self.batch_channels_last: list[bool] = []
        self.weights_channels_last: list[bool] = []
        self.logits_dtypes: list[torch.dtype] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        convs = [m for m in pl_module.model.modules() if isinstance(m, torch.nn.Conv2d)]

        def record(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            if module.training:
                self.batch_channels_last.append(args[0].is_contiguous(memory_format=torch.channels_last))
                self.weights_channels_last.append(all(c.weight.is_contiguous(memory_format=torch.channels_last)
                                                      for c in convs))

        self.handle = pl_module.model.register_forward_pre_hook(record)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.handle.remove()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=trainer.precision == "bf16-mixed"):
            self.logits_dtypes.append(pl_module(batch[0][:2]).dtype)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> _Spy:
    s = _Spy()
    original = run_module._callbacks
    monkeypatch.setattr(run_module, "_callbacks", lambda cfg, metadata: [s] + original(cfg, metadata))
    return s


def _assert_plain_model_keys(run_dir) -> None:
    """last.ckpt holds the model under the keys of a model built the usual way (no ``_orig_mod.``)."""
    import zoo

    sd = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    keys = {k[len("model."):] for k in sd if k.startswith("model.")}
    assert keys == set(zoo.create_model("lenet5_modern", num_classes=10, in_chans=1).state_dict())
    assert not any("_orig_mod" in k for k in sd)


_FAST = ["trainer.max_epochs=2", "data.batch_size=64"]


def test_channels_last_run_feeds_nhwc_batches_to_nhwc_weights(tmp_path, spy):
    res = train(make_cfg(tmp_path, _FAST + ["channels_last=true"]))
    assert res["status"] == "completed" and res["test/acc"] > 0.5
    assert spy.batch_channels_last and all(spy.batch_channels_last)
    assert all(spy.weights_channels_last)
    # The weights file and the checkpoint are ordinary: they load into a model built the usual way.
    _assert_plain_model_keys(tmp_path)


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(0)
    import zoo

    model = zoo.create_model("resnet20", num_classes=10, in_chans=3)
    x = torch.randn(4, 3, 32, 32)
    ref = ClassificationModule(model, torch.optim.SGD).eval()(x)
    fast = ClassificationModule(model, torch.optim.SGD, channels_last=True).eval()
    x_cl = fast._memory_format(x)
    assert x_cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast(x_cl), ref, rtol=1e-4, atol=1e-5)


def test_compiled_run_saves_plain_keys_and_resumes_with_or_without_compile(tmp_path):
    first = tmp_path / "run"
    # backend=eager: the compile wrapper and its checkpoints without inductor's C++ build time
    res = train(make_cfg(first, ["trainer.max_epochs=1", "data.batch_size=64", "+compile={backend: eager}"]))
    assert res["status"] == "completed"
    _assert_plain_model_keys(first)
    # Resume the compiled run without compile, then once more with it.
    res2 = train(make_cfg(first, ["trainer.max_epochs=2", "data.batch_size=64", "ckpt_path=last"]))
    assert res2["status"] == "completed" and res2["epochs"] == 2
    res3 = train(make_cfg(first, ["trainer.max_epochs=3", "data.batch_size=64", "ckpt_path=last",
                                  "+compile={backend: eager}"]))
    assert res3["status"] == "completed" and res3["epochs"] == 3


def test_compile_true_trains_through_inductor(tmp_path):
    pytest.importorskip("torch._inductor")
    res = train(make_cfg(tmp_path, ["trainer.max_epochs=1", "data.batch_size=64", "compile=true"]))
    assert res["status"] == "completed" and res["test/acc"] > 0.3
    _assert_plain_model_keys(tmp_path)


def test_bf16_mixed_on_cpu_trains_in_bfloat16(tmp_path, spy):
    res = train(make_cfg(tmp_path, _FAST + ["trainer.precision=bf16-mixed"]))
    assert res["status"] == "completed" and res["test/acc"] > 0.5, res["test/acc"]
    assert spy.logits_dtypes and all(d == torch.bfloat16 for d in spy.logits_dtypes)
    # Weights stay float32 (mixed precision): the checkpoint holds float32 tensors.
    sd = load_checkpoint_file(tmp_path / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(v.dtype == torch.float32 for v in sd.values() if v.is_floating_point())


@pytest.mark.parametrize("override, key", [("channels_last=yes", "channels_last"), ("compile=3", "compile")])
def test_speed_options_are_checked(tmp_path, override, key):
    from zoo.training.config_check import ConfigError

    with pytest.raises(ConfigError) as err:
        train(make_cfg(tmp_path, [override]))
    assert key in str(err.value)


def test_state_dict_holds_the_weights_once_and_old_checkpoints_still_resume(tmp_path):
    """The model's runner is not a submodule: the checkpoint's state_dict has ``model.*`` keys only. A checkpoint
    written when it held a second copy under ``_run.*`` still resumes, to the same weights."""
    run = tmp_path / "run"
    res = train(make_cfg(run, ["trainer.max_epochs=1"]))
    last = run / "checkpoints" / "last.ckpt"
    ckpt = load_checkpoint_file(last)
    assert ckpt["state_dict"] and not [k for k in ckpt["state_dict"] if k.startswith("_run.")]
    ckpt["state_dict"].update({"_run." + k[len("model."):]: v for k, v in ckpt["state_dict"].items()
                               if k.startswith("model.")})
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    resumed = train(make_cfg(tmp_path / "resumed", ["trainer.max_epochs=2", f"ckpt_path={old}"]))
    assert resumed["epochs"] == 2 and res["epochs"] == 1


def test_epoch_training_stats_equal_the_torchmetrics_values():
    """The epoch's running sums give the mean batch loss and the micro top-1 accuracy that
    torchmetrics computes from the same batches (unequal batch sizes included), and restart each epoch."""
    import functools

    from torchmetrics import MeanMetric
    from torchmetrics.classification import MulticlassAccuracy

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 10))
    module = ClassificationModule(model, functools.partial(torch.optim.SGD, lr=0.1), num_classes=10)
    ref_loss, ref_acc = MeanMetric(), MulticlassAccuracy(num_classes=10, average="micro")
    for i, b in enumerate([32, 32, 7]):
        x, y = torch.randn(b, 1, 4, 4), torch.randint(0, 10, (b,))
        loss = module.training_step((x, y), i)
        ref_loss.update(loss.detach())
        ref_acc.update(model(x), y)
    loss_mean, acc = module.train_epoch_stats()
    torch.testing.assert_close(loss_mean, ref_loss.compute())
    torch.testing.assert_close(acc, ref_acc.compute())
    assert (module._batches, module._images) == (3, 71)

    logged: dict[str, torch.Tensor] = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, value)  # type: ignore[method-assign]
    module.on_train_epoch_end()
    torch.testing.assert_close(logged["train/loss_epoch"], ref_loss.compute())
    torch.testing.assert_close(logged["train/acc"], ref_acc.compute())
    assert module.train_epoch_stats() is None


def test_quiet_profiler_is_the_default_and_a_named_profiler_wins(tmp_path):
    """Runs get the no-cost profiler unless trainer.profiler names one."""
    from pytorch_lightning.profilers import SimpleProfiler

    cfg = make_cfg(tmp_path / "a", ["trainer.max_epochs=1"])
    trainer = run_module.build_trainer(cfg, [], [], interactive=False)
    assert isinstance(trainer.profiler, run_module.QuietProfiler)
    with trainer.profiler.profile("step") as entered:
        assert entered is None
    cfg = make_cfg(tmp_path / "b", ["trainer.max_epochs=1", "+trainer.profiler=simple"])
    assert isinstance(run_module.build_trainer(cfg, [], [], interactive=False).profiler, SimpleProfiler)


def test_step_loss_goes_to_the_loggers_every_n_optimizer_steps_and_to_the_progress_bar(tmp_path, monkeypatch):
    """train/loss_step is written at Lightning's steps (N-1, 2N-1, ...), once per optimizer step under
    gradient accumulation, with the epoch; the progress bar adds the last value to Lightning's metrics."""
    import csv
    import json
    from types import SimpleNamespace

    from pytorch_lightning.callbacks import RichProgressBar

    from zoo.training.callbacks import LossRichProgressBar

    run = tmp_path / "run"
    train(make_cfg(run, ["trainer.max_epochs=2", "data.batch_size=32", "trainer.log_every_n_steps=3",
                         "trainer.accumulate_grad_batches=2"]))
    steps_total = json.loads((run / "results.json").read_text())["global_steps"]
    rows = [r for r in csv.DictReader((run / "csv" / "metrics.csv").open()) if r.get("train/loss_step")]
    assert steps_total > 6 and [int(r["step"]) for r in rows] == list(range(2, steps_total, 3))
    assert all(math.isfinite(float(r["train/loss_step"])) and r["epoch"] in ("0", "1") for r in rows)

    monkeypatch.setattr(RichProgressBar, "get_metrics", lambda self, trainer, module: {"v_num": 0})
    bar, module = LossRichProgressBar(), SimpleNamespace(last_step_loss=0.25)
    assert bar.get_metrics(SimpleNamespace(training=True), module) == {"v_num": 0, "train/loss_step": 0.25}
    assert bar.get_metrics(SimpleNamespace(training=False), module) == {"v_num": 0}


def test_fused_finite_check_finds_every_non_finite_value_and_leaves_the_gradients_as_they_were():
    """The divergence check (one fused kernel for float32 gradients, norms otherwise) flags a NaN or an
    infinite loss or gradient element, and leaves the gradients' values unchanged."""
    from zoo.training.module import _all_finite

    g = [torch.randn(100), torch.randn(3, 3)]
    assert _all_finite(torch.tensor(1.0), g) and _all_finite(torch.tensor(2.0), [])
    assert _all_finite(torch.tensor(2.0), [t.double() for t in g])
    assert _all_finite(torch.tensor(1.0), [torch.full((10,), 3e38)])  # finite values whose norm overflows
    for bad in (float("nan"), float("inf"), -float("inf")):
        assert not _all_finite(torch.tensor(bad), g)
        h = [t.clone() for t in g]
        h[1][1, 1] = bad
        before = [t.clone() for t in h]
        assert not _all_finite(torch.tensor(1.0), h)
        assert all(torch.equal(a, b) for a, b in zip(h[:1], before[:1]))
        assert torch.equal(h[1].nan_to_num(), before[1].nan_to_num())
        assert not _all_finite(torch.tensor(1.0), [t.double() for t in h])


@pytest.mark.parametrize("nvml_loads", [False, True])
def test_nvml_check_is_skipped_only_where_nvml_cannot_load(monkeypatch, nvml_loads):
    """Lightning's PYTORCH_NVML_BASED_CUDA_CHECK=1 makes every Adam step try to load libnvidia-ml; where
    it cannot load, the variable goes to 0 (torch's answer is the CUDA runtime's either way) and a step
    loads nothing; where it loads, the variable stays."""
    import ctypes

    if not torch.backends.cuda.is_built():
        pytest.skip("a CPU build of torch has no CUDA check to skip")
    loads: list[str] = []
    real_cdll = ctypes.CDLL

    def cdll(name: Any, *args: Any, **kwargs: Any) -> Any:
        if str(name).startswith("libnvidia-ml"):
            loads.append(str(name))
            if not nvml_loads:
                raise OSError(f"{name}: cannot open shared object file")
            return real_cdll(None)  # a stand-in library handle (the process itself)
        return real_cdll(name, *args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    available = torch.cuda.is_available()
    assert run_module.skip_unloadable_nvml_check() is (not nvml_loads)
    expected = "1" if nvml_loads else "0"
    assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == expected
    if not nvml_loads:
        assert torch.cuda.is_available() is available  # the same answer without NVML
        loads.clear()
        w = torch.nn.Parameter(torch.ones(3))
        opt = torch.optim.Adam([w])
        w.sum().backward()
        opt.step()
        assert loads == [], "an Adam step still tried to load NVML"
    # a variable someone else set to 0 (or left unset) is left alone
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "0")
    assert run_module.skip_unloadable_nvml_check() is False
