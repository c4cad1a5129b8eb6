"""Exporting a model to a file that runs without this package: TorchScript, ``torch.export`` or ONNX.

Every export is checked: the file is loaded back (``torch.jit.load``,
``torch.export.load`` or an onnxruntime session) and its outputs are compared
with the eager model's, at the example input and at one more sample than it
(the batch dimension is dynamic in every format)::

    python -m zoo.export resnet18 --format onnx --num-classes 10
    python -m zoo.export resnet20 --format torchscript --out resnet20.pt
    python -m zoo.export vgg11 --format exported --small-input --input 3,32,32 --weights vgg11.safetensors

prints one line such as::

    onnx  resnet18.onnx  44.7 MB  max abs diff 2.4e-06 (tolerance 1e-04 x max(1, max |output|))

=============  ========  ===============================================  ==========================
format         suffix    written with                                     loaded with
=============  ========  ===============================================  ==========================
torchscript    ``.pt``   ``torch.jit.script`` + ``torch.jit.save``        ``torch.jit.load``
exported       ``.pt2``  ``torch.export.export`` + ``torch.export.save``  ``torch.export.load``
onnx           ``.onnx`` ``torch.onnx.export(..., dynamo=True)``          onnxruntime
=============  ========  ===============================================  ==========================

Models are exported in eval mode (dropout off, normalisation layers on their
running statistics); the mode the model was in is restored afterwards. ONNX
needs the ``onnx``, ``onnxscript`` and ``onnxruntime`` packages. A model of
2 GiB or more of parameters is written as ``<file>.onnx`` plus its external
data ``<file>.onnx.data`` (protobuf's limit); smaller ones as one file.

The same functions serve the command line and the library:
:func:`export_model` writes the file, :func:`check_export` verifies it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import logging
import math
import os
import sys
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn

__all__ = [
    "FORMATS",
    "SUFFIXES",
    "TOLERANCES",
    "ExportCheckError",
    "export_model",
    "check_export",
    "parse_input_shape",
    "main",
]

log = logging.getLogger(__name__)

#: The export formats, as named on the command line.
FORMATS: tuple[str, ...] = ("torchscript", "exported", "onnx")

#: The file suffix of each format.
SUFFIXES: dict[str, str] = {"torchscript": ".pt", "exported": ".pt2", "onnx": ".onnx"}

#: Largest absolute difference from the eager outputs that :func:`check_export` accepts, for
#: outputs of magnitude up to 1 (larger outputs scale it: ``atol * max(1, max |output|)``).
#: TorchScript and ``torch.export`` run the same ATen kernels as eager; onnxruntime has
#: its own kernels (other summation orders), hence the looser bound.
TOLERANCES: dict[str, float] = {"torchscript": 1e-5, "exported": 1e-5, "onnx": 1e-4}

#: Above this many bytes of parameters and buffers an ONNX model keeps its weights in a
#: side file: one protobuf message cannot exceed 2 GiB.
_ONNX_SINGLE_FILE_LIMIT = 2**31 - 2**24


class ExportCheckError(RuntimeError):
    """Raised by :func:`check_export` when the exported file's outputs differ from the eager model's."""


def _check_format(format: str) -> str:
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    return format


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Puts ``model`` in eval mode for the block and restores its previous mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _batch_of_two(example_input: torch.Tensor) -> torch.Tensor:
    """The example with at least two samples: ``torch.export`` fixes a dimension it sees at size 1,
    so a dynamic batch must be traced at 2 or more (the first sample is repeated)."""
    if example_input.shape[0] >= 2:
        return example_input
    return example_input[:1].expand(2, *example_input.shape[1:]).clone()


def _dynamic_batch() -> tuple[dict[int, torch.export.Dim], ...]:
    """``dynamic_shapes`` for a ``forward(x)`` whose dimension 0 (the batch) may be any size >= 1."""
    return ({0: torch.export.Dim("batch", min=1)},)


def _state_bytes(model: nn.Module) -> int:
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def _onnx_files(path: Path) -> list[Path]:
    """The ONNX file and, when the weights live outside it, its external data file."""
    data = path.with_name(path.name + ".data")
    return [path, data] if data.exists() else [path]


def export_model(model: nn.Module, format: str, path: str | os.PathLike[str],
                 example_input: torch.Tensor) -> Path:
    """Writes ``model`` to ``path`` in one of :data:`FORMATS`, with a dynamic batch dimension.

    Args:
        model: the model; exported in eval mode, its own mode is restored afterwards.
        format: ``"torchscript"`` (``torch.jit.script``, saved with ``torch.jit.save``),
            ``"exported"`` (``torch.export.export``, saved with ``torch.export.save``) or
            ``"onnx"`` (``torch.onnx.export(..., dynamo=True)``).
        path: the file to write; its folder is created if needed.
        example_input: one input batch ``(B, ...)`` for tracing (``torch.export`` and ONNX);
            a batch of one is repeated to two, so that the batch dimension stays dynamic.

    Returns:
        The path written.

    Raises:
        ValueError: for an unknown format, or an ``"exported"`` path not ending in ``.pt2``.
        ImportError: for ONNX when ``onnxscript`` is not installed.
        Exception: whatever the exporter raises for a model it cannot handle (e.g.
            ``torch.jit.frontend.NotSupportedError``, ``torch._dynamo.exc.UserError``).
    """
    _check_format(format)
    path = Path(path)
    if format == "exported" and path.suffix != ".pt2":
        raise ValueError(f"torch.export.load reads only files ending in .pt2; got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    x = _batch_of_two(example_input)
    with _eval_mode(model), torch.no_grad():
        if format == "torchscript":
            torch.jit.save(torch.jit.script(model), str(path))
        elif format == "exported":
            program = torch.export.export(model, (x,), dynamic_shapes=_dynamic_batch())
            torch.export.save(program, path)
        else:
            external = _state_bytes(model) >= _ONNX_SINGLE_FILE_LIMIT
            stale = path.with_name(path.name + ".data")
            if stale.exists():  # a side file left by an earlier export would be read as this one's
                stale.unlink()
            torch.onnx.export(model, (x,), str(path), dynamo=True, dynamic_shapes=_dynamic_batch(),
                              external_data=external, verbose=False)
    log.info("exported %s (%s) to %s", type(model).__name__, format, path)
    return path


def _load_runner(path: Path, format: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A callable ``(B, ...) tensor -> tensor`` running the exported file."""
    if format == "torchscript":
        module = torch.jit.load(str(path), map_location="cpu")
        module.eval()
        return module
    if format == "exported":
        return torch.export.load(path).module()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.intra_op_num_threads = torch.get_num_threads()  # as many threads as torch uses
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.detach().cpu().numpy()})[0])

    return run


def _max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest ``|a - b|``; entries that are the same non-finite value on both sides count as equal,
    one that is non-finite on one side only makes the result ``inf``."""
    if a.shape != b.shape:
        raise ExportCheckError(f"the exported file returns shape {tuple(b.shape)}, the model {tuple(a.shape)}")
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    same = (a == b) | (torch.isnan(a) & torch.isnan(b))
    diff = torch.where(same, torch.zeros_like(a), (a - b).abs())
    diff = torch.nan_to_num(diff, nan=math.inf)
    return float(diff.max()) if diff.numel() else 0.0


def check_export(path: str | os.PathLike[str], format: str, model: nn.Module,
                 example_input: torch.Tensor, atol: float | None = None) -> float:
    """Loads an exported file and compares its outputs with the eager model's.

    Both run on ``example_input`` and on a batch of one more sample (seeded random
    values), which also checks that the batch dimension is dynamic. The tolerance
    scales with the outputs: rounding errors grow with the values they are made
    on, so a difference counts against ``atol * max(1, max |eager output|)``.

    Args:
        path: the file :func:`export_model` wrote.
        format: its format, one of :data:`FORMATS`.
        model: the eager model it was exported from (run in eval mode; its mode is restored).
        example_input: one input batch ``(B, ...)``.
        atol: accepted difference for outputs of magnitude up to 1; :data:`TOLERANCES` of the
            format when ``None``.

    Returns:
        The largest absolute difference over both batches.

    Raises:
        ValueError: for an unknown format.
        ExportCheckError: if the outputs differ by more than the tolerance or have another shape.
        ImportError: for ONNX when ``onnxruntime`` is not installed.
    """
    _check_format(format)
    path = Path(path)
    atol = TOLERANCES[format] if atol is None else atol
    generator = torch.Generator().manual_seed(0)
    more = torch.randn((example_input.shape[0] + 1, *example_input.shape[1:]), generator=generator,
                       dtype=example_input.dtype).to(example_input.device)
    runner = _load_runner(path, format)
    worst = 0.0
    with _eval_mode(model), torch.no_grad():
        for x in (example_input, more):
            expected = model(x)
            finite = expected[torch.isfinite(expected)]
            if finite.numel() < expected.numel():
                log.warning("%s: the eager model's outputs are not all finite at input %s; the check "
                            "compares the finite ones", type(model).__name__, tuple(x.shape))
            scale = max(1.0, float(finite.abs().max())) if finite.numel() else 1.0
            diff = _max_abs_diff(expected, runner(x.cpu()))  # files are loaded on the CPU
            if not diff <= atol * scale:
                raise ExportCheckError(
                    f"{format} export {path} differs from the eager model by up to {diff:.3g} at input "
                    f"{tuple(x.shape)} (tolerance {atol:g} x max(1, max |output| {scale:.3g}) = {atol * scale:.3g})"
                )
            worst = max(worst, diff)
    log.info("checked %s (%s): max abs diff %.3g", path, format, worst)
    return worst


def parse_input_shape(text: str) -> tuple[int, ...]:
    """Parses ``"C,H,W"`` (or ``"C,L"``) into a tuple of ints >= 1.

    Raises:
        ValueError: for anything else, naming the expected form.
    """
    parts = [p.strip() for p in str(text).replace("x", ",").split(",")]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) not in (2, 3) or any(n < 1 for n in shape):
        raise ValueError(f"--input must be C,H,W (or C,L), positive integers, e.g. 3,224,224; got {text!r}")
    return shape


def _size(files: Sequence[Path]) -> str:
    n = float(sum(f.stat().st_size for f in files))
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # not reached


def _build(name: str, args: argparse.Namespace, input_shape: tuple[int, ...]) -> nn.Module:
    """Builds the model the command line asks for (see :func:`main`)."""
    import zoo

    info = zoo.model_info(name)
    builder = inspect.signature(info.builder).parameters
    kwargs: dict[str, object] = {}
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    if input_shape[0] != info.input_size[0]:
        kwargs["in_chans"] = input_shape[0]
    if args.small_input:
        kwargs["small_input"] = True
    if args.input is not None and "image_size" in builder and len(input_shape) == 3 \
            and input_shape[1] == input_shape[2]:
        kwargs["image_size"] = input_shape[1]  # heads sized for the input (AlexNet, VGG, ViT, ...)
    if args.weights is not None:
        kwargs["weights"] = args.weights
    return zoo.create_model(name, **kwargs)


def _trained_source(model: str) -> Path | None:
    """``model`` as a trained model on disk (a run folder, a ``.ckpt`` or a ``.safetensors`` file), else ``None``."""
    p = Path(model).expanduser()
    if p.is_dir() or (p.is_file() and p.suffix in (".ckpt", ".safetensors")):
        return p
    return None


def _load_trained(source: Path) -> tuple[nn.Module, tuple[int, ...] | None]:
    """The trained model of a run folder, checkpoint or weights file, and the input size it was trained at
    (from the weights' sidecar or the checkpoint's record; ``None`` when neither records one)."""
    import json

    import zoo
    from zoo.trained import load_checkpoint_file

    model = zoo.load_checkpoint(source)
    sidecars = [source / "checkpoints" / "model.json"] if source.is_dir() else [source.with_suffix(".json")]
    for sidecar in sidecars:
        if sidecar.is_file():
            size = json.loads(sidecar.read_text()).get("input_size")
            if size:
                return model, tuple(int(v) for v in size)
    if source.suffix == ".ckpt":
        meta = load_checkpoint_file(source).get("zoo") or {}
        data = meta.get("data") or {}
        if data.get("input_size"):
            return model, tuple(int(v) for v in data["input_size"])
        if data.get("image_size") and data.get("in_chans"):
            return model, (int(data["in_chans"]), int(data["image_size"]), int(data["image_size"]))
    return model, None


def _default_input(name: str, small_input: bool) -> tuple[int, ...]:
    """The model's default input; with ``--small-input``, the same at 32 px."""
    import zoo

    shape = tuple(zoo.model_info(name).input_size)
    if small_input and len(shape) == 3:
        return (shape[0], min(shape[1], 32), min(shape[2], 32))
    return shape


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zoo.export",
        description="Export a registered model to TorchScript, torch.export (.pt2) or ONNX, "
                    "then load the file back and compare it with the eager model.",
    )
    parser.add_argument("model", help="registered model name (zoo.list_models()), or a trained model: a run folder "
                                      "of train.py, a .ckpt checkpoint or a .safetensors weights file with its sidecar")
    parser.add_argument("--format", required=True, choices=FORMATS, help="export format")
    parser.add_argument("--weights", metavar="FILE", default=None,
                        help="weights to load, passed to zoo.create_model as weights=FILE "
                             "(a .safetensors file, or a name zoo.create_model knows, e.g. torchvision)")
    parser.add_argument("--out", metavar="PATH", default=None,
                        help="file to write (default: <model><suffix> in the current folder; the "
                             "format's suffix is added to a name without one)")
    parser.add_argument("--input", metavar="C,H,W", default=None,
                        help="example input shape without the batch (default: the model's input size)")
    parser.add_argument("--num-classes", type=int, default=None, metavar="N",
                        help="classes of the head (default: the model's)")
    parser.add_argument("--small-input", action="store_true",
                        help="build the model's 28/32-px layout (small_input=True)")
    parser.add_argument("--batch", type=int, default=2, metavar="B",
                        help="batch size of the example input (default: 2; the export's batch is dynamic)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: export one model, check the file, print one summary line.

    Returns:
        0 when the check passes, 1 when the export or the check fails; argparse exits
        with 2 for a bad command line (unknown format, malformed ``--input``, unknown model).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    import zoo
    from zoo._registry import ModelArgumentError, ModelArgumentTypeError

    if args.batch < 1:
        parser.error(f"--batch must be >= 1, got {args.batch}")
    if args.format == "onnx":
        missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            parser.exit(1, f"zoo.export: error: --format onnx needs {', '.join(missing)}: "
                           f"pip install {' '.join(missing)}\n")
    trained = _trained_source(args.model)
    stem = (trained.name if trained.is_dir() else trained.stem) if trained is not None else args.model
    path = Path(args.out) if args.out else Path(stem)
    if not path.suffix:
        path = path.with_name(path.name + SUFFIXES[args.format])
    if args.format == "exported" and path.suffix != ".pt2":
        parser.error(f"--format exported writes a .pt2 file (torch.export.load reads no other); got --out {path}")
    try:
        if trained is not None:
            from zoo.trained import CheckpointError
            from zoo.weights import WeightsError

            if args.weights is not None or args.num_classes is not None or args.small_input:
                parser.error(f"{args.model} is a trained model: it brings its weights and layout; drop --weights, "
                             f"--num-classes and --small-input")
            try:
                model, recorded = _load_trained(trained)
            except (CheckpointError, WeightsError) as err:
                parser.error(str(err))
            input_shape = parse_input_shape(args.input) if args.input is not None else recorded
            if input_shape is None:
                parser.error(f"{args.model} records no input size; give one, e.g. --input 3,32,32")
        else:
            input_shape = (parse_input_shape(args.input) if args.input is not None
                           else _default_input(args.model, args.small_input))
            model = _build(args.model, args, input_shape)
    except (zoo.UnknownModelError, ModelArgumentError, ModelArgumentTypeError, ValueError) as err:
        parser.error(str(err))
    example = torch.randn((args.batch, *input_shape), generator=torch.Generator().manual_seed(0))
    try:
        export_model(model, args.format, path, example)
    except Exception as err:  # noqa: BLE001 - the exporter's own message is the useful part
        print(f"zoo.export: error: {args.format} export of {args.model!r} failed: "
              f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    try:
        diff = check_export(path, args.format, model, example)
    except ExportCheckError as err:
        print(f"zoo.export: error: {err}", file=sys.stderr)
        return 1
    files = _onnx_files(path) if args.format == "onnx" else [path]
    shown = " + ".join(str(f) for f in files)
    print(f"{args.format}  {shown}  {_size(files)}  max abs diff {diff:.1e} "
          f"(tolerance {TOLERANCES[args.format]:.0e} x max(1, max |output|))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
