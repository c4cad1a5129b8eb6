"""The ``zoo`` command: ``zoo <command> [arguments]``.

    zoo train model=lenet5 data=mnist data.root=../shared/data   # = python train.py <overrides>
    zoo eval ckpt=outputs/train/runs/lenet5-mnist/<time>          # re-score a run's tested checkpoint
    zoo predict lenet5.mnist digit.png digits/ --topk 3           # classify image files
    zoo list 'resnet*'                                           # registered models, params, MACs, paper
    zoo summary lenet5 | zoo report results/runs | zoo bench --quick | zoo export resnet20 --format onnx

The library logs; this command prints its results on stdout. Bad input ends with one line on stderr that
names the argument or value and shows a corrected example, and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Sequence

__all__ = ["COMMANDS", "CLIError", "main"]


class CLIError(Exception):
    """Bad input on the command line: printed as ``zoo <command>: error: <message>``, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line with an example (raised as :class:`CLIError`, not printed)."""

    def __init__(self, *args: Any, example: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.example = example

    def error(self, message: str) -> NoReturn:
        raise CLIError(f"{message}; e.g. {self.example}")


def _one_line(text: object) -> str:
    """A library message on one line: its lines joined with ``; ``."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return re.sub(r":;", ":", "; ".join(lines))


def _quiet_logging(verbose: bool, lightning: bool = False) -> None:
    """Log records of WARNING and above (INFO with ``-v``) on stderr; Lightning's banner lines and the
    libraries' deprecation notices only with ``-v``.

    Args:
        verbose: log INFO records, and show deprecation warnings.
        lightning: import Lightning first (its import sets its loggers to INFO), then set its level.
    """
    import warnings

    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)
    if lightning:
        import pytorch_lightning  # noqa: F401
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(level)
    if not verbose:
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")


@contextlib.contextmanager
def _restored_logging() -> Iterator[None]:
    """Puts back the logging levels, the root's handlers and the warning filters a command changed, so that
    ``main([...])`` called in a process that goes on (a test, a notebook) leaves them as it found them."""
    import warnings

    root = logging.getLogger()
    names = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric")
    levels = {n: logging.getLogger(n).level for n in names}
    root_level, handlers = root.level, list(root.handlers)
    with warnings.catch_warnings():
        try:
            yield
        finally:
            for h in [h for h in root.handlers if h not in handlers]:
                root.removeHandler(h)
            root.setLevel(root_level)
            for n, level in levels.items():
                logging.getLogger(n).setLevel(level)


def _delegate(func: Callable[[list[str]], Any], argv: list[str]) -> int:
    """Runs a tool's ``main(argv)``; its return value or ``SystemExit`` status is the exit status."""
    try:
        code = func(argv)
    except SystemExit as e:
        code = e.code
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


# ---------------------------------------------------------------------------------------------- train


def _train(argv: list[str]) -> int:
    from zoo.train import ConfigsNotFoundError, main as train_main

    try:
        return _delegate(lambda a: train_main(a, prog="zoo train"), argv)
    except ConfigsNotFoundError as e:
        raise CLIError(str(e)) from e


# ---------------------------------------------------------------------------------------------- eval


EVAL_EXAMPLE = "zoo eval ckpt=outputs/train/runs/lenet5_modern-digits/<time> [data.root=../shared/data] [split=test]"


def _eval(argv: list[str]) -> int:
    p = _Parser(prog="zoo eval", example=EVAL_EXAMPLE,
                description="Re-scores a checkpoint on its run's test (or validation) set, without training, and "
                            "writes eval.json (eval-2.json, ... when taken) in the run folder.")
    p.add_argument("items", nargs="*", metavar="key=value",
                   help="ckpt=<run folder or .ckpt>, split=test|val, model=<name>, and overrides of the run's "
                        "config (data.root=..., data=<name>, trainer.accelerator=cpu, +key=value)")
    p.add_argument("--ckpt", default=None, help="run folder of train.py or a .ckpt file")
    p.add_argument("--split", default=None, help="test (default) or val")
    p.add_argument("--model", default=None, help="refuse a checkpoint of another model")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress on stderr")
    args = p.parse_args(argv)
    given = {"ckpt": args.ckpt, "split": args.split, "model": args.model}
    overrides: list[str] = []
    for item in args.items:
        key, sep, value = item.partition("=")
        if not sep:
            if given["ckpt"] is None:
                given["ckpt"] = item  # zoo eval <run folder>
                continue
            raise CLIError(f"argument {item!r}: expected key=value (the checkpoint is {given['ckpt']}); "
                           f"e.g. {EVAL_EXAMPLE}")
        if key in given:
            if given[key] is not None and given[key] != value:
                raise CLIError(f"{key} is given twice ({given[key]} and {value}); e.g. {EVAL_EXAMPLE}")
            given[key] = value
        else:
            overrides.append(item)
    if not given["ckpt"]:
        raise CLIError(f"ckpt is required: a run folder of train.py or a .ckpt file; e.g. {EVAL_EXAMPLE}")
    split = given["split"] or "test"
    if split not in ("test", "val"):
        raise CLIError(f"split={split}: test or val; e.g. zoo eval ckpt={given['ckpt']} split=test")
    _quiet_logging(args.verbose, lightning=True)
    from zoo.evaluate import evaluate, write_record

    record = evaluate(given["ckpt"], overrides, split=split, model=given["model"])
    folder = Path(record["run_dir"]) if record.get("run_dir") else Path(record["checkpoint"]).parent
    written = write_record(record, folder)
    if args.json:
        print(json.dumps({**record, "written": str(written)}, indent=2, default=str))
        return 0
    print(f"checkpoint  {record['checkpoint']}")
    print(f"data        {record['data']} ({split}, {record['images']} images)")
    for name in ("acc", "loss", "acc5"):
        value = record.get(f"{split}/{name}")
        if value is not None:
            print(f"{split}/{name:<5}  {value!r}")
    if "run_test/acc" in record:
        verdict = "reproduced exactly" if record["matches_run"] else "DIFFERS"
        print(f"results.json test/acc {record['run_test/acc']!r}: {verdict}")
    print(f"wrote {written}")
    return 0


# ---------------------------------------------------------------------------------------------- predict


PREDICT_EXAMPLE = "zoo predict lenet5.mnist digit.png digits/ --topk 3"


def _predict(argv: list[str]) -> int:
    p = _Parser(prog="zoo predict", example=PREDICT_EXAMPLE,
                description="Classifies image files (PNG, JPEG, GIF, WebP; folders are searched) with a trained "
                            "model and its run's preprocessing.")
    p.add_argument("source", metavar="MODEL",
                   help="a run folder, a .ckpt, a .safetensors weights file, or shipped weights (zoo list --weights)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    p.add_argument("--topk", type=_int_at_least(1), default=5, help="classes shown per image")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--model", default=None, help="refuse weights of another model")
    p.add_argument("--batch-size", type=_int_at_least(1), default=64)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress on stderr")
    args = p.parse_args(argv)
    _quiet_logging(args.verbose)
    from zoo.predict import find_images, load_predictor, resolve_source

    source = resolve_source(args.source)
    files = find_images(args.images)  # a missing path is named before the model is loaded
    predictor = load_predictor(source, model=args.model)
    results = predictor.predict(files, topk=args.topk, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(r["file"])
        for t in r["top"]:
            print(f"  {t['prob']:7.2%}  {t['class']}")
    return 0


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= {low}")
        return value

    return parse


# ---------------------------------------------------------------------------------------------- list


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def _list(argv: list[str]) -> int:
    p = _Parser(prog="zoo list", example="zoo list 'resnet*'",
                description="The registered models with their parameters, multiply-accumulates and paper.")
    p.add_argument("pattern", nargs="?", default=None, help="fnmatch pattern, e.g. 'resnet*' (quote it)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--weights", action="store_true", help="list the shipped weights instead")
    args = p.parse_args(argv)
    import zoo

    if args.weights:
        names = [w for w in zoo.list_weights() if args.pattern is None or _fnmatch(w, args.pattern)]
        print(json.dumps(names) if args.json else "\n".join(names))
        return 0
    names = zoo.list_models(args.pattern)
    if not names:
        from zoo._registry import did_you_mean

        stem = re.sub(r"[*?\[\]]", "", args.pattern)
        hint = did_you_mean(stem, zoo.list_models(), n=3, cutoff=0.5)
        raise CLIError(f"pattern {args.pattern!r} matches no registered model.{hint} e.g. zoo list 'resnet*', "
                       f"or zoo list for all {len(zoo.list_models())}")
    infos = [zoo.model_info(n) for n in names]
    if args.json:
        print(json.dumps([{"name": i.name, "params": i.params, "macs": i.macs, "input_size": list(i.input_size),
                           "num_classes": i.num_classes, "year": i.paper.year, "paper": i.paper.cite(),
                           "family": i.family} for i in infos], indent=2))
        return 0
    rows = [(i.name, f"{i.params:,}", _human(i.macs), "x".join(map(str, i.input_size)), str(i.paper.year),
             f'{i.paper.authors}, "{_clip(i.paper.title, 60)}"') for i in infos]
    head = ("model", "params", "MACs", "input", "year", "paper")
    widths = [max(len(r[k]) for r in [head, *rows]) for k in range(len(head))]
    right = {1, 2}
    for r in [head, *rows]:
        print("  ".join(c.rjust(w) if k in right else c.ljust(w) for k, (c, w) in enumerate(zip(r, widths))).rstrip())
    return 0


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3].rstrip() + "..."


def _fnmatch(name: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern)


# ---------------------------------------------------------------------------------------------- the tools


def _summary(argv: list[str]) -> int:
    from zoo.summary import main as tool

    return _delegate(tool, argv)


def _report(argv: list[str]) -> int:
    from zoo.report import main as tool

    return _delegate(tool, argv)


def _bench(argv: list[str]) -> int:
    from zoo.bench.cli import main as tool

    return _delegate(tool, argv)


def _export(argv: list[str]) -> int:
    from zoo.export import main as tool

    return _delegate(tool, argv)


#: command -> (handler, one line of help)
COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "train": (_train, "train and test a model (Hydra overrides, as python train.py)"),
    "eval": (_eval, "re-score a run's checkpoint on its test set: ckpt=<run folder or .ckpt>"),
    "predict": (_predict, "classify image files: <run | .ckpt | .safetensors | lenet5.mnist> <images...>"),
    "list": (_list, "registered models with params, MACs, paper and year: [pattern]"),
    "summary": (_summary, "layer table of a model (python -m zoo.summary)"),
    "report": (_report, "results report of run folders (python -m zoo.report)"),
    "bench": (_bench, "the benchmark (python -m zoo.bench)"),
    "export": (_export, "TorchScript / torch.export / ONNX export, checked (python -m zoo.export)"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: zoo <command> [arguments]   (zoo <command> --help for its arguments)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def _error(command: str, message: str) -> int:
    print(f"zoo {command}: error: {_one_line(message)}" if command else f"zoo: error: {_one_line(message)}",
          file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``zoo <command> [arguments]``.

    Args:
        argv: the arguments after ``zoo`` (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 done, 2 bad input (one line on stderr), otherwise the command's own
        (``zoo train``: 3 diverged; ``zoo bench`` / ``zoo export``: 1 when a check fails).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(_usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from zoo import __version__

        print(f"zoo {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        from zoo._registry import did_you_mean

        hint = did_you_mean(command, COMMANDS, n=3, cutoff=0.5)
        return _error("", f"unknown command {command!r}.{hint} Commands: {', '.join(COMMANDS)}; e.g. zoo list 'resnet*'")
    handler = COMMANDS[command][0]
    try:
        with _restored_logging():
            return handler(rest)
    except CLIError as e:
        return _error(command, str(e))
    except Exception as e:
        if not _is_bad_input(e):
            raise
        return _error(command, str(e))


def _is_bad_input(e: BaseException) -> bool:
    """Whether ``e`` is one of the project's bad-input errors (a file, a checkpoint, data, a name, a value)."""
    from zoo._registry import ModelArgumentError, ModelArgumentTypeError, UnknownModelError
    from zoo.ops.shape import InputTooSmallError
    from zoo.trained import CheckpointError
    from zoo.weights import WeightsError

    kinds: tuple[type[BaseException], ...] = (CheckpointError, WeightsError, UnknownModelError, ModelArgumentError,
                                              ModelArgumentTypeError, InputTooSmallError)
    for module, names in (("zoo.evaluate", ("EvalError",)), ("zoo.predict", ("PredictError",)),
                          ("zoo.data.base", ("DatasetNotFoundError",)), ("zoo.data.cache", ("ImageTreeError",)),
                          ("zoo.training.config_check", ("ConfigError",))):
        mod = sys.modules.get(module)  # only a module that ran can have raised its error
        if mod is not None:
            kinds += tuple(getattr(mod, n) for n in names if hasattr(mod, n))
    return isinstance(e, kinds)


if __name__ == "__main__":
    sys.exit(main())
