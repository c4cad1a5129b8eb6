"""Every registered model through every exporter, and the ``python -m zoo.export`` command line.

The sweep builds each model of ``zoo.list_models()`` once per test process, with
``num_classes=10`` and its small-input layout where it has one
(``small_input=True``), at the smallest square input it accepts from 8 px up
(see :func:`_build_smallest`), and compares with the eager logits at batch 2
and at batch 3 (the batch dimension is dynamic in every export):

* ``torchscript``: ``torch.jit.script(model)``, within 1e-5;
* ``exported``: ``torch.export.export`` with a dynamic batch dimension, the
  program's module run at batch 2 and 3, within 1e-5;
* ``onnx``: :func:`zoo.export.export_model` (``torch.onnx.export(..., dynamo=True)``,
  dynamic batch) to a file, :func:`zoo.export.check_export` runs it with
  onnxruntime, within 1e-4;
* ``compile``: ``torch.compile(model, fullgraph=True, backend="eager")`` at batch 2, within 1e-5.

Tolerances are for outputs of magnitude up to 1 and scale with larger ones
(``atol * max(1, max |logit|)``): the deep residual networks' logits reach
hundreds, where float32 rounding alone exceeds 1e-4. The saved files
(``.pt``, ``.pt2``, ``.onnx``) and their reloading are tested through the
command line, on one small model per format.

Before the comparison every model gets normalisation statistics measured on
one batch (fresh ones, mean 0 and variance 1, let activations grow through
deep residual stacks until ``resnet1202``'s eval outputs are NaN) and random
values in its constant parameters (zero-initialised heads, such as ViT's, would
make every logit 0 and every comparison vacuous).

A model that fails because of its own code is listed in
:data:`MODEL_FIXES_NEEDED` and runs as a strict xfail, so that the fix turns
it into a failure to remove from the list. :data:`EXPORTER_LIMITS` names the
cases an exporter itself cannot handle; those are skipped with that reason.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.export import (
    FORMATS,
    SUFFIXES,
    TOLERANCES,
    ExportCheckError,
    check_export,
    export_model,
    parse_input_shape,
)

ROOT = Path(__file__).resolve().parents[1]

#: (model, exporter) pairs that fail because of the model's code, with what to change, e.g.
#: ``("vit_b_16", "torchscript"): "MultiheadAttention.forward takes keyword-only arguments ..."``.
#: They run as strict xfails: remove an entry once the model is fixed (its test then fails as XPASS).
MODEL_FIXES_NEEDED: dict[tuple[str, str], str] = {}

#: (model, exporter) pairs that the exporter itself cannot handle: skipped with this reason.
EXPORTER_LIMITS: dict[tuple[str, str], str] = {}

EXPORTERS: tuple[str, ...] = ("torchscript", "exported", "onnx", "compile")

#: Largest difference from eager for logits of magnitude up to 1 (scaled by larger ones, as in
#: :func:`zoo.export.check_export`).
ATOL: dict[str, float] = {**TOLERANCES, "compile": 1e-5}

#: Input sides tried, smallest first: below 8 px most layers would see padding only.
SIDES: tuple[int, ...] = (8, 12, 16, 20, 24, 28, 32, 48, 64, 96, 128, 160, 192, 224, 227)

BATCH = 2

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")


# ----------------------------------------------------------------------------- model setup


@dataclass
class Prepared:
    """A model ready for the sweep: eval mode, settled statistics, an example batch and its logits."""

    name: str
    model: nn.Module
    x: torch.Tensor  # (BATCH, C, H, W)
    expected: torch.Tensor  # (BATCH, 10)
    x3: torch.Tensor  # (BATCH + 1, C, H, W): another batch size for the dynamic batch dimension
    expected3: torch.Tensor

    def batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(input, eager logits) at batch 2 and batch 3."""
        return [(self.x, self.expected), (self.x3, self.expected3)]


def _create(name: str, **kwargs: Any) -> nn.Module:
    """``zoo.create_model`` without the input-size hooks, whether or not it still installs them."""
    if "check_input_size" in inspect.signature(zoo.create_model).parameters:
        kwargs["check_input_size"] = False
    return zoo.create_model(name, **kwargs)


def _build_smallest(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    """The model (10 classes, small-input layout where it has one) and the smallest input it accepts.

    A builder with ``image_size`` is rebuilt for each side tried (its head is sized for it).
    """
    info = zoo.model_info(name)
    takes = inspect.signature(info.builder).parameters
    kwargs: dict[str, Any] = {"num_classes": 10}
    if "small_input" in takes:
        kwargs["small_input"] = True
    channels = info.input_size[0]
    sides = [s for s in SIDES if s < info.input_size[-1]] + [info.input_size[-1]]
    model: nn.Module | None = None
    errors: list[str] = []
    for side in sides:
        try:
            if model is None or "image_size" in takes:
                model = _create(name, **kwargs, **({"image_size": side} if "image_size" in takes else {}))
                model.eval()
            with torch.no_grad():
                out = model(torch.zeros(BATCH, channels, side, side))
            if out.shape == (BATCH, 10):
                return model, (channels, side, side)
            errors.append(f"{side} px: output {tuple(out.shape)}")
        except (RuntimeError, ValueError) as err:
            errors.append(f"{side} px: {type(err).__name__}: {str(err).splitlines()[0][:120]}")
            if "image_size" in takes:
                model = None
    raise AssertionError(f"{name} accepts none of the input sides {sides}:\n" + "\n".join(errors))


@torch.no_grad()
def _settle(model: nn.Module, x: torch.Tensor, seed: int) -> None:
    """Gives every constant parameter small random offsets and every running-statistics layer the
    statistics of ``x`` (one forward pass in train mode, cumulative average), then eval mode."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        if p.numel() and bool(p.min() == p.max()):
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)
    norms = [m for m in model.modules() if getattr(m, "track_running_stats", False)
             and getattr(m, "running_mean", None) is not None]
    if norms:
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, exactly its statistics
        model.train()
        model(x)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    model.eval()


_CACHE: dict[str, Prepared] = {}


def prepared(name: str) -> Prepared:
    """The prepared model, built once per test process (one at a time: the four exporters of a
    model are neighbours in the test order)."""
    if name not in _CACHE:
        _CACHE.clear()
        model, shape = _build_smallest(name)
        seed = sum(map(ord, name))
        g = torch.Generator().manual_seed(seed)
        _settle(model, torch.randn((4, *shape), generator=g), seed)
        x = torch.randn((BATCH, *shape), generator=g)
        x3 = torch.randn((BATCH + 1, *shape), generator=g)
        with torch.no_grad():
            expected, expected3 = model(x), model(x3)
        assert torch.isfinite(expected).all() and torch.isfinite(expected3).all(), \
            f"{name}: eager logits are not finite at {shape}"
        _CACHE[name] = Prepared(name, model, x, expected, x3, expected3)
    return _CACHE[name]


# ----------------------------------------------------------------------------- the sweep


#: Models whose exports take minutes (``resnet1202``: 1,202 layers, about 3.5 minutes of one core for
#: the four exporters, half of it ONNX). They run first, so that the other test processes share out
#: the rest meanwhile.
SLOWEST_FIRST: tuple[str, ...] = ("resnet1202",)


#: One model of each family, exported by every exporter in ``make test``; the other models are marked
#: ``export_sweep`` and run with ``make test-export`` (the whole sweep takes about 8 minutes on 2 cores).
QUICK: frozenset[str] = frozenset({
    "lenet5", "lenet5_modern", "resnet20", "resnet18", "mobilenet_v1_x0_25", "shufflenet_v1_g1",
    "shufflenet_v2_x0_5", "googlenet_bn", "gated_cnn", "gated_tcn", "vit_tiny_patch4",
})


def _cases() -> list[Any]:
    """(model, exporter) pairs in the order the tests run: :data:`SLOWEST_FIRST`, then the models by
    parameter count, smallest first (pytest-xdist hands the first tests of the list to one process
    along with the slowest model, so they should be quick ones). The four exporters of a model are
    neighbours, so that one test process builds the model once for all of them."""
    names = zoo.list_models()
    rest = sorted((n for n in names if n not in SLOWEST_FIRST), key=lambda n: (zoo.model_info(n).params, n))
    cases = []
    for name in [n for n in SLOWEST_FIRST if n in names] + rest:
        for exporter in EXPORTERS:
            marks = [] if name in QUICK else [pytest.mark.export_sweep]
            if (name, exporter) in MODEL_FIXES_NEEDED:
                marks.append(pytest.mark.xfail(strict=True, reason=MODEL_FIXES_NEEDED[name, exporter]))
            cases.append(pytest.param(name, exporter, marks=marks, id=f"{name}-{exporter}"))
    return cases


def _needs_onnx() -> None:
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module, reason=f"ONNX export needs {module} (pip install 'zoo[export]')")


def _assert_matches(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    """``actual`` equals ``expected`` within ``atol * max(1, max |expected|)`` (as :func:`check_export`)."""
    scale = max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(actual, expected, atol=atol * scale, rtol=0)


def _run_torchscript(p: Prepared, tmp_path: Path) -> None:
    scripted = torch.jit.script(p.model)
    with torch.no_grad():
        for x, expected in p.batches():
            _assert_matches(scripted(x), expected, ATOL["torchscript"])


def _run_exported(p: Prepared, tmp_path: Path) -> None:
    program = torch.export.export(p.model, (p.x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    module = program.module()
    with torch.no_grad():
        for x, expected in p.batches():
            _assert_matches(module(x), expected, ATOL["exported"])


def _run_onnx(p: Prepared, tmp_path: Path) -> None:
    _needs_onnx()
    path = export_model(p.model, "onnx", tmp_path / f"{p.name}.onnx", p.x)
    try:
        check_export(path, "onnx", p.model, p.x)  # batch 2 and 3 through onnxruntime; raises if off
    finally:
        for f in tmp_path.iterdir():  # the big models' files are hundreds of MB
            f.unlink()


def _run_compile(p: Prepared, tmp_path: Path) -> None:
    torch._dynamo.reset()
    try:
        compiled = torch.compile(p.model, fullgraph=True, backend="eager")
        with torch.no_grad():
            _assert_matches(compiled(p.x), p.expected, ATOL["compile"])
    finally:
        torch._dynamo.reset()


RUNNERS = {"torchscript": _run_torchscript, "exported": _run_exported, "onnx": _run_onnx,
           "compile": _run_compile}


@pytest.mark.parametrize("name, exporter", _cases())
def test_exporter(name: str, exporter: str, tmp_path: Path) -> None:
    if (name, exporter) in EXPORTER_LIMITS:
        pytest.skip(EXPORTER_LIMITS[name, exporter])
    RUNNERS[exporter](prepared(name), tmp_path)


def test_fix_and_limit_lists_name_registered_models() -> None:
    registered = set(zoo.list_models())
    for table in (MODEL_FIXES_NEEDED, EXPORTER_LIMITS):
        for name, exporter in table:
            assert name in registered, f"{name!r} is not a registered model"
            assert exporter in EXPORTERS, f"{exporter!r} is not one of {EXPORTERS}"
    assert not set(MODEL_FIXES_NEEDED) & set(EXPORTER_LIMITS)


# ----------------------------------------------------------------------------- library functions


def _small_model() -> tuple[nn.Module, torch.Tensor]:
    model = _create("lenet5", num_classes=10).eval()
    return model, torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))


def _plain_module() -> nn.Module:
    """A small model of standard layers that every exporter handles."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(0.5), nn.Linear(16, 5))


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_model_round_trip(fmt: str, tmp_path: Path) -> None:
    if fmt == "onnx":
        _needs_onnx()
    model = _plain_module()
    x = torch.randn(2, 3, 16, 16)
    path = export_model(model, fmt, tmp_path / f"plain{SUFFIXES[fmt]}", x)
    assert path.is_file() and model.training  # the caller's mode is kept
    assert check_export(path, fmt, model, x) <= TOLERANCES[fmt]


def test_check_export_fails_when_the_model_changed(tmp_path: Path) -> None:
    model, x = _small_model()
    path = export_model(model, "exported", tmp_path / "lenet5.pt2", x)
    assert check_export(path, "exported", model, x) <= TOLERANCES["exported"]
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    with pytest.raises(ExportCheckError, match="differs from the eager model"):
        check_export(path, "exported", model, x)


def test_export_keeps_the_model_mode_and_traces_a_batch_of_one(tmp_path: Path) -> None:
    model, x = _small_model()
    model.train()
    path = export_model(model, "exported", tmp_path / "lenet5.pt2", x[:1])
    assert model.training
    program = torch.export.load(path).module()
    model.eval()
    with torch.no_grad():
        for batch in (1, 3):
            xb = torch.randn(batch, 1, 32, 32)
            _assert_matches(program(xb), model(xb), 1e-5)


def test_export_model_refuses_bad_arguments(tmp_path: Path) -> None:
    model, x = _small_model()
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_model(model, "tflite", tmp_path / "m.tflite", x)
    with pytest.raises(ValueError, match=r"\.pt2"):
        export_model(model, "exported", tmp_path / "m.pt", x)
    with pytest.raises(ValueError, match="unknown export format"):
        check_export(tmp_path / "m.pt", "tflite", model, x)


@pytest.mark.parametrize("text, shape", [("3,32,32", (3, 32, 32)), ("1, 28, 28", (1, 28, 28)),
                                         ("3x224x224", (3, 224, 224)), ("1,784", (1, 784))])
def test_parse_input_shape(text: str, shape: tuple[int, ...]) -> None:
    assert parse_input_shape(text) == shape


@pytest.mark.parametrize("text", ["", "3", "3,32,32,32", "a,b,c", "3,0,32", "3,-1,32", "3.5,32,32"])
def test_parse_input_shape_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="C,H,W"):
        parse_input_shape(text)


# ----------------------------------------------------------------------------- command line

#: Small models for the command-line runs, first choice first.
CLI_CANDIDATES = ("lenet5", "resnet20", "mobilenet_v1_x0_25", "shufflenet_v2_x0_5", "vit_tiny_patch4")


def _cli_model(fmt: str) -> str | None:
    """The first small model that this format handles (see :data:`MODEL_FIXES_NEEDED`), if any."""
    for name in CLI_CANDIDATES:
        if (name, fmt) not in MODEL_FIXES_NEEDED and (name, fmt) not in EXPORTER_LIMITS:
            return name
    return None


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    path = [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "zoo.export", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_exports_and_checks(fmt: str, tmp_path: Path) -> None:
    if fmt == "onnx":
        _needs_onnx()
    name = _cli_model(fmt)
    if name is None:  # no small model exports to this format yet: the failure is reported cleanly
        result = _run_cli(CLI_CANDIDATES[0], "--format", fmt, "--out", "model", cwd=tmp_path)
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"zoo.export: error: {fmt} export of '{CLI_CANDIDATES[0]}' failed: " in result.stderr
        return
    small = "small_input" in inspect.signature(zoo.model_info(name).builder).parameters
    args = [name, "--format", fmt, "--num-classes", "7", "--out", "model"]
    if small:
        args.append("--small-input")
    result = _run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / f"model{SUFFIXES[fmt]}"
    assert out.is_file()
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith(f"{fmt}  {out.name}  ") and "max abs diff" in line, line
    diff = float(line.split("max abs diff ")[1].split()[0])
    assert diff <= TOLERANCES[fmt]


def test_cli_exports_the_weights_it_is_given(tmp_path: Path) -> None:
    weights = pytest.importorskip("zoo.weights", reason="weights files need zoo.weights")
    pytest.importorskip("safetensors")
    torch.manual_seed(1)
    model = _create("lenet5", num_classes=10).eval()
    file = weights.save_weights(model, tmp_path / "lenet5.safetensors", name="lenet5", kwargs={"num_classes": 10})
    result = _run_cli("lenet5", "--format", "exported", "--weights", str(file), "--out", "m", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    program = torch.export.load(tmp_path / "m.pt2").module()
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        _assert_matches(program(x), model(x), 1e-5)  # the file's weights, not a fresh initialisation


def test_cli_unknown_model_suggests_close_names(tmp_path: Path) -> None:
    result = _run_cli("resnet2", "--format", "exported", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown model 'resnet2'" in result.stderr and "Did you mean" in result.stderr
    assert "resnet20" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["lenet5", "--format", "tflite"], "invalid choice: 'tflite'"),
    (["lenet5", "--format", "exported", "--input", "1,a,32"], "--input must be C,H,W"),
    (["lenet5", "--format", "exported", "--out", "m.pt"], ".pt2"),
    (["lenet5"], "the following arguments are required: --format"),
], ids=["bad-format", "bad-input", "wrong-suffix", "no-format"])
def test_cli_refuses_bad_arguments(args: list[str], message: str, tmp_path: Path) -> None:
    result = _run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert not list(tmp_path.iterdir())  # nothing written
