"""Layer-by-layer summary of a model: output shape, parameters and MACs of every module, and totals.

Usage::

    python -m zoo.summary lenet5
    python -m zoo.summary resnet20 --input 3,32,32 --depth 2
    python -m zoo.summary vgg16 --meta          # no compute: shapes and counts on the meta device

MACs come from ``torch.utils.flop_counter.FlopCounterMode``, which attributes the FLOPs of every
convolution and matrix product to each module enclosing it (2 FLOPs per multiply-add, so MACs are
half); the totals are therefore exactly :func:`zoo.count_params` and :func:`zoo.count_macs`.
Parameters are the trainable ones of the module's whole subtree, each tensor counted once.
Modules that do not run in the evaluation forward pass (GoogLeNet's auxiliary heads) are listed
with their parameters, no output shape and no MACs. The model runs in eval mode on one input.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["LayerRow", "Summary", "summarize", "format_summary", "main"]

log = logging.getLogger(__name__)


@dataclass
class LayerRow:
    """One module of the summary.

    Args:
        name: qualified name inside the model (``""`` for the model itself).
        type: the module's class name.
        depth: nesting depth (0 for the model itself).
        output_shape: shape of the module's output for one input (batch dim included), or ``None``
            when the module did not run; a tuple of shapes for tuple outputs.
        calls: how many times the module ran in the forward pass.
        params: trainable parameters of the module's subtree.
        own_params: trainable parameters held directly by this module (not by its children).
        macs: multiply-accumulates of the module's subtree in the forward pass.
    """

    name: str
    type: str
    depth: int
    output_shape: Any
    calls: int
    params: int
    own_params: int
    macs: int


@dataclass
class Summary:
    """The rows of a summary and its totals.

    Args:
        model: model name (registered name or class name).
        input_size: ``(C, H, W)`` without the batch dimension.
        rows: every module, in definition order, the model itself first.
        total_params: trainable parameters of the model (= ``zoo.count_params``).
        total_macs: multiply-accumulates of one forward pass (= ``zoo.count_macs``).
        output_shape: the model's output shape.
    """

    model: str
    input_size: tuple[int, ...]
    rows: list[LayerRow]
    total_params: int
    total_macs: int
    output_shape: Any

    def row(self, name: str) -> LayerRow:
        """Returns the row of the module called ``name`` (qualified name, e.g. ``features.c1``).

        Raises:
            KeyError: if there is no such module.
        """
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)


def _shape_of(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    if isinstance(out, (tuple, list)):
        return tuple(_shape_of(o) for o in out)
    if isinstance(out, dict):
        return {k: _shape_of(v) for k, v in out.items()}
    return None


def _trainable(module: nn.Module, recurse: bool) -> list[nn.Parameter]:
    return [p for p in module.parameters(recurse=recurse) if p.requires_grad]


@torch.no_grad()
def summarize(model: str | nn.Module, input_size: Sequence[int] | None = None, *,
              device: str | torch.device | None = None, **model_kwargs: Any) -> Summary:
    """Runs one forward pass and collects output shape, parameters and MACs of every module.

    Args:
        model: a registered model name (built with :func:`zoo.create_model`) or a module.
        input_size: ``(C, H, W)`` (or ``(C, L)``) without the batch dimension; the model's
            registered ``input_size`` when ``None`` and ``model`` is a name.
        device: where to build and run; ``"meta"`` gives shapes and counts without compute.
            Defaults to the device of the module's parameters, or CPU for a name.
        **model_kwargs: builder options when ``model`` is a name (``num_classes``, ``small_input``...).
            ``in_chans`` defaults to ``input_size[0]``.

    Returns:
        The :class:`Summary`.

    Raises:
        ValueError: if ``input_size`` is missing for a module.
    """
    from zoo._registry import model_info
    from zoo.diagnostics import check_input
    from zoo.factory import create_model
    from zoo.profiling import flop_counter

    if isinstance(model, str):
        name = model
        info = model_info(name)
        size = tuple(int(s) for s in (input_size or info.input_size))
        if size[0] != info.input_size[0]:
            model_kwargs.setdefault("in_chans", size[0])
        with torch.device(device or "cpu"):
            net = create_model(name, **model_kwargs)
    else:
        net = model
        name = type(net).__name__
        if input_size is None:
            raise ValueError("input_size is needed to summarize a module")
        size = tuple(int(s) for s in input_size)
    if device is None:
        p = next(iter(net.parameters()), None)
        device = p.device if p is not None else "cpu"

    check_input(net, size, name=name)  # an input too small names the layer (the model itself has no hooks)
    root = type(net).__name__
    modules = list(net.named_modules())
    shapes: dict[str, Any] = {}
    calls: dict[str, int] = {}
    handles = []

    def hook(mod_name: str):
        def fn(_m: nn.Module, _inp: Any, out: Any) -> None:
            shapes[mod_name] = _shape_of(out)
            calls[mod_name] = calls.get(mod_name, 0) + 1
        return fn

    for mod_name, mod in modules:
        handles.append(mod.register_forward_hook(hook(mod_name)))
    was_training = net.training
    net.eval()
    counter = flop_counter()
    try:
        with counter:
            net(torch.zeros(1, *size, device=device))
    finally:
        net.train(was_training)
        for h in handles:
            h.remove()
    flops = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}

    rows = []
    for mod_name, mod in modules:
        key = f"{root}.{mod_name}" if mod_name else root
        rows.append(LayerRow(
            name=mod_name, type=type(mod).__name__, depth=mod_name.count(".") + 1 if mod_name else 0,
            output_shape=shapes.get(mod_name), calls=calls.get(mod_name, 0),
            params=sum(p.numel() for p in _trainable(mod, recurse=True)),
            own_params=sum(p.numel() for p in _trainable(mod, recurse=False)),
            macs=flops.get(key, 0) // 2))
    # Containers that are never called themselves (ModuleDict, ModuleList) take their children's MACs.
    for r in reversed(rows):
        if r.calls == 0 and r.name:
            prefix = r.name + "."
            r.macs = sum(c.macs for c in rows if c.name.startswith(prefix) and "." not in c.name[len(prefix):])
    total_params = sum(p.numel() for p in _trainable(net, recurse=True))
    return Summary(model=name, input_size=size, rows=rows, total_params=total_params,
                   total_macs=flops.get("Global", 0) // 2, output_shape=shapes.get(""))


def _fmt_shape(shape: Any) -> str:
    if shape is None:
        return "—"
    if isinstance(shape, tuple) and all(isinstance(s, int) for s in shape):
        return "x".join(str(s) for s in shape[1:]) if len(shape) > 1 else str(shape[0])
    if isinstance(shape, tuple):
        return ", ".join(_fmt_shape(s) for s in shape)
    return str(shape)


def format_summary(summary: Summary, depth: int | None = None) -> str:
    """Renders the summary as a plain-text table.

    Args:
        summary: from :func:`summarize`.
        depth: show modules nested at most this deep (``None``: all).

    Returns:
        The table, with a totals line.
    """
    header = ("Layer", "Type", "Output (C x H x W)", "Params", "MACs")
    lines: list[tuple[str, ...]] = []
    for r in summary.rows[1:]:
        if depth is not None and r.depth > depth:
            continue
        calls = f" x{r.calls}" if r.calls > 1 else ""
        lines.append(("  " * (r.depth - 1) + r.name.rsplit(".", 1)[-1], r.type,
                      _fmt_shape(r.output_shape) + calls, f"{r.params:,}", f"{r.macs:,}"))
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(header)]

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(fmt(header))
    out = [f"{summary.model}, input {'x'.join(map(str, summary.input_size))}", rule, fmt(header), rule]
    out += [fmt(l) for l in lines]
    out += [rule,
            f"Total params: {summary.total_params:,}",
            f"Total MACs:   {summary.total_macs:,} ({summary.total_macs / 1e6:,.2f} M)",
            f"Output:       {_fmt_shape(summary.output_shape)}"]
    return "\n".join(out)


def input_size_arg(text: str) -> tuple[int, ...]:
    """argparse ``type=`` of ``--input``: ``"1,32,32"`` -> ``(1, 32, 32)`` (``C,H,W``, or ``C,L`` for sequences).

    Raises:
        argparse.ArgumentTypeError: unless ``text`` is 2 or 3 comma-separated integers >= 1.
    """
    parts = [p.strip() for p in text.split(",")]
    sizes = [int(p) for p in parts if p.isdigit()] if len(parts) in (2, 3) else []
    if len(sizes) != len(parts) or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(
            f"expected C,H,W: channels, height and width as integers >= 1 separated by commas "
            f"(C,L for sequence models), got {text!r}; e.g. --input 1,32,32"
        )
    return tuple(sizes)


def _int_arg(flag: str, minimum: int, example: str) -> Any:
    """An argparse ``type=`` accepting integers >= ``minimum`` (argparse prefixes ``argument <flag>:``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}; e.g. {example}"
            )
        return value

    parse.__name__ = flag.lstrip("-").replace("-", "_")  # argparse names the type in some messages
    return parse


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m zoo.summary <model> [--input C,H,W] [--depth N] [--meta]``.

    Bad arguments (an unknown model, a malformed ``--input``, an option the model does not
    take, an input too small for it) end with argparse's usage line and a message, exit status 2.
    """
    from zoo._registry import ModelArgumentError, ModelArgumentTypeError, UnknownModelError, model_info
    from zoo.models.vit import PatchSizeError
    from zoo.ops.shape import InputTooSmallError

    parser = argparse.ArgumentParser(prog="python -m zoo.summary", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="registered model name (python -c 'import zoo; print(zoo.list_models())')")
    parser.add_argument("--input", type=input_size_arg, default=None, metavar="C,H,W",
                        help="input size C,H,W, e.g. 1,32,32 (default: the model's own)")
    parser.add_argument("--num-classes", type=_int_arg("--num-classes", 1, "--num-classes 10"), default=None)
    parser.add_argument("--small-input", action="store_true", help="build with small_input=True")
    parser.add_argument("--depth", type=_int_arg("--depth", 0, "--depth 2"), default=None,
                        help="show modules nested at most this deep")
    parser.add_argument("--meta", action="store_true", help="run on the meta device (no compute)")
    args = parser.parse_args(argv)
    try:
        info = model_info(args.model)
    except UnknownModelError as err:
        parser.error(f"model: {err}")
    if args.input is not None and len(args.input) != len(info.input_size):
        own = ",".join(map(str, info.input_size))
        fmt = "C,H,W" if len(info.input_size) == 3 else "C,L"
        parser.error(f"--input {','.join(map(str, args.input))} has {len(args.input)} sizes, but {args.model} "
                     f"takes {fmt} ({len(info.input_size)} sizes); e.g. --input {own}")
    kwargs: dict[str, Any] = {}
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    if args.small_input:
        kwargs["small_input"] = True
    try:
        s = summarize(args.model, args.input, device="meta" if args.meta else None, **kwargs)
    except (ModelArgumentError, ModelArgumentTypeError, InputTooSmallError, PatchSizeError) as err:
        parser.error(str(err))
    print(format_summary(s, depth=args.depth))


if __name__ == "__main__":
    main()
