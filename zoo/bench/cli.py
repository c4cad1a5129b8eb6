"""``python -m zoo.bench``: the command line, its checks, and the run over the sections."""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from zoo.bench.core import (
    DEFAULT_SECTIONS,
    SECTIONS,
    BenchOptions,
    Report,
    machine_info,
    project_root,
    write_outputs,
)

__all__ = ["main", "build_parser", "options_from_args", "run_benchmark", "default_data_root"]

log = logging.getLogger("zoo.bench")

EXAMPLES = """\
examples:
  python -m zoo.bench                                   # loop, data, models, lenet, throughput (~10 min, 2 cores)
  python -m zoo.bench --quick                           # tiny sizes, a smoke run (under a minute)
  python -m zoo.bench --sections loop,lenet --repeats 9 --threads 2
  python -m zoo.bench --sections models --models all    # every torchvision twin (long on a CPU)
  python -m zoo.bench --sections tta --tta-overrides 'experiment=lenet5_mnist' --tta-dir results/bench/tta
  python -m zoo.bench --sections throughput --compile --device cuda

Outputs: <out>/bench.md, bench.csv (one row per measurement) and bench.json, each with the machine block.
A ratio is the row's value divided by the section's reference variant (plain loop, torchvision,
lenet5_modern, fp32) for the same name and metric.
"""


def _near(word: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(allowed), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _sections(text: str) -> list[str]:
    names = _split(text)
    if not names:
        raise argparse.ArgumentTypeError(f"no section given ({text!r}); allowed: {', '.join(SECTIONS)}; "
                                         f"e.g. --sections loop,data")
    bad = [n for n in names if n not in SECTIONS]
    if bad:
        fixed = [n if n in SECTIONS else (difflib.get_close_matches(n, SECTIONS, 1, 0.5) or [""])[0] for n in names]
        example = ",".join(dict.fromkeys(f for f in fixed if f)) or "loop,data"
        raise argparse.ArgumentTypeError(f"unknown section {bad[0]!r} in {text!r}{_near(bad[0], SECTIONS)} Allowed: "
                                         f"{', '.join(SECTIONS)}; e.g. --sections {example}")
    return [s for s in SECTIONS if s in names]


def _int_at_least(low: int, example: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or v < low:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= {low}; e.g. {example}")
        return v

    return parse


def _int_list(low: int, example: str) -> Callable[[str], list[int]]:
    one = _int_at_least(low, 0)

    def parse(text: str) -> list[int]:
        try:
            values = [one(t) for t in _split(text)]
        except argparse.ArgumentTypeError:
            values = []
        if not values:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers >= {low}; "
                                             f"e.g. {example}")
        return values

    return parse


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 < v <= 60:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration in seconds (0 < value <= 60); e.g. 0.2")
    return v


def _floats(text: str) -> list[float]:
    try:
        values = [float(t) for t in _split(text)]
    except ValueError:
        values = []
    if not values or not all(0 < v <= 100 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of accuracies in percent "
                                         f"(0 < value <= 100); e.g. 98.5,99.0")
    return values


def _model_names(text: str) -> list[str]:
    import zoo

    known = zoo.list_models()
    names = _split(text)
    if not names:
        raise argparse.ArgumentTypeError(f"no model given ({text!r}); e.g. lenet5,resnet18")
    for n in names:
        if n not in known:
            raise argparse.ArgumentTypeError(f"unknown model {n!r}{_near(n, known)} Allowed: the names of "
                                             f"zoo.list_models(); e.g. lenet5,resnet18")
    return names


def _twins(text: str) -> list[str] | str:
    import zoo

    if text in ("default", "all"):
        return text
    pairs = zoo.torchvision_pairs()
    names = _split(text)
    for n in names:
        if n not in pairs:
            raise argparse.ArgumentTypeError(
                f"{n!r} has no torchvision twin{_near(n, list(pairs))} Allowed: default, all, or models among "
                f"{', '.join(pairs)}; e.g. --models resnet18,vgg11_bn")
    if not names:
        raise argparse.ArgumentTypeError(f"no model given ({text!r}); e.g. --models resnet18,vgg11_bn")
    return names


def _overrides(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} cannot be split into overrides ({e}); "
                                         f"e.g. 'model=lenet5_modern data=mnist'") from e


def _device(text: str) -> str:
    try:
        d = torch.device(text)
    except (RuntimeError, ValueError):
        d = None
    if d is None or d.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device this benchmark runs on; allowed: cpu, cuda, "
                                         f"cuda:N; e.g. --device cpu")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m zoo.bench`` argument parser."""
    p = argparse.ArgumentParser(
        prog="python -m zoo.bench", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Times the project's training loop, data loaders and models against plain PyTorch and "
                    "torchvision, in one process, interleaved (A, B, A, B, ...), and reports medians and ratios "
                    "in process CPU time and wall time.")
    p.add_argument("--sections", type=_sections, default=None,
                   help=f"comma-separated, from {', '.join(SECTIONS)} (default: {','.join(DEFAULT_SECTIONS)}; "
                        f"tta is a whole training run)")
    p.add_argument("--threads", type=_int_at_least(1, 1), default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--repeats", type=_int_at_least(1, 5), default=None, help="timed rounds (default 5; quick 2)")
    p.add_argument("--warmup", type=_int_at_least(0, 1), default=1, help="discarded rounds first (default 1)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    p.add_argument("--out", type=Path, default=Path("results/bench"), help="output folder (default results/bench)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="folder holding MNIST/raw (default: $ZOO_DATA, else ../shared/data beside the project)")
    p.add_argument("--device", type=_device, default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--min-sample-s", type=_seconds, default=None, dest="target_s",
                   help="short calls are repeated until one sample lasts this long (default 0.2 s; quick 0.01)")
    g = p.add_argument_group("loop")
    g.add_argument("--loop-overrides", type=_overrides, default=None,
                   help="Hydra overrides of the training config (default 'model=lenet5_modern data=mnist "
                        "data.batch_size=128'; data=digits when no MNIST is found)")
    g.add_argument("--steps", type=_int_at_least(1, 50), default=None, help="timed steps per sample (default 50)")
    g.add_argument("--loop-warmup", type=_int_at_least(1, 5), default=None,
                   help="untimed steps before them in each sample (default 5)")
    g = p.add_argument_group("data")
    g.add_argument("--data-batches", type=_int_at_least(0, 100), default=None,
                   help="batches per sample (default 100; 0: one epoch)")
    g.add_argument("--data-overrides", type=_overrides, default=[],
                   help="Hydra overrides of the MNIST datamodule, e.g. 'data.batch_size=256'")
    g.add_argument("--cifar-images", type=_int_at_least(1, 50000), default=None,
                   help="synthetic CIFAR-sized images (default 50000)")
    g.add_argument("--workers", type=_int_list(0, "0,2"), default=None,
                   help="num_workers of the torchvision loaders (default 0,2)")
    g = p.add_argument_group("models, lenet, throughput")
    g.add_argument("--models", type=_twins, default=None,
                   help="twins of the models section: default (one per family), all, or a list")
    g.add_argument("--batch", type=_int_at_least(1, 8), default=None, help="batch of 224-px models (default 8)")
    g.add_argument("--size", type=_int_at_least(16, 224), default=None,
                   help="image side of the models section and of large-input throughput models (default 224)")
    g.add_argument("--small-batch", type=_int_at_least(1, 128), default=None,
                   help="batch of small-input (<= 64 px) throughput models (default 128)")
    g.add_argument("--lenet-batches", type=_int_list(1, "32,128"), default=None, help="default 32,128")
    g.add_argument("--throughput-models", type=_model_names, default=None,
                   help="models of the throughput section (default lenet5,lenet5_modern,resnet20,alexnet,"
                        "resnet18,mobilenet_v1,shufflenet_v2_x1_0,vit_tiny_patch4)")
    g.add_argument("--compile", action="store_true", help="add a torch.compile training-step variant (slow warm-up)")
    g = p.add_argument_group("tta")
    g.add_argument("--tta-overrides", type=_overrides, default=None,
                   help="Hydra overrides of the run (default 'experiment=lenet5_mnist'; quick "
                        "'experiment=lenet5_digits trainer.max_epochs=2')")
    g.add_argument("--tta-thresholds", type=_floats, default=[98.5, 99.0],
                   help="validation accuracies in percent (default 98.5,99.0)")
    g.add_argument("--tta-dir", type=Path, default=None, help="run folder of the tta run (default: temporary)")
    return p


def default_data_root() -> Path | None:
    """The first folder holding MNIST/raw among ``$ZOO_DATA`` and ``<project>/../shared/data``."""
    from zoo.bench.data import mnist_available

    for cand in (os.environ.get("ZOO_DATA"), project_root().parent / "shared" / "data"):
        if cand and mnist_available(cand):
            return Path(cand)
    return None


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    """Resolves the parsed arguments into :class:`BenchOptions` (``--quick`` picks the tiny defaults)."""
    from zoo.bench.models import DEFAULT_TWINS, QUICK_TWINS
    from zoo.bench.throughput import DEFAULT_MODELS, QUICK_MODELS

    import zoo

    q = args.quick

    def pick(value: Any, full: Any, quick: Any) -> Any:
        return value if value is not None else (quick if q else full)

    models = args.models
    if models is None or models == "default":
        models = list(QUICK_TWINS if q and models is None else DEFAULT_TWINS)
    elif models == "all":
        models = list(zoo.torchvision_pairs())
    return BenchOptions(
        sections=list(args.sections or DEFAULT_SECTIONS), threads=args.threads, repeats=pick(args.repeats, 5, 2),
        warmup=args.warmup, device=args.device, out=args.out,
        data_root=args.data_root if args.data_root is not None else default_data_root(),
        target_s=pick(args.target_s, 0.2, 0.01),
        loop_overrides=pick(args.loop_overrides, ["model=lenet5_modern", "data=mnist", "data.batch_size=128"],
                            ["model=lenet5_modern", "data=mnist", "data.batch_size=128"]),
        steps=pick(args.steps, 50, 3), loop_warmup=pick(args.loop_warmup, 5, 1),
        data_batches=pick(args.data_batches, 100, 3), data_overrides=list(args.data_overrides),
        cifar_images=pick(args.cifar_images, 50000, 512), workers=pick(args.workers, [0, 2], [0, 2]),
        models=models, batch=pick(args.batch, 8, 2), size=pick(args.size, 224, 64),
        small_batch=pick(args.small_batch, 128, 16), lenet_batches=pick(args.lenet_batches, [32, 128], [32, 128]),
        throughput_models=pick(args.throughput_models, list(DEFAULT_MODELS), list(QUICK_MODELS)),
        compile=args.compile,
        tta_overrides=pick(args.tta_overrides, ["experiment=lenet5_mnist"],
                           ["experiment=lenet5_digits", "trainer.max_epochs=2"]),
        tta_thresholds=args.tta_thresholds, tta_dir=args.tta_dir, quick=q)


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace, opts: BenchOptions, report: Report) -> None:
    """Checks what can fail before anything heavy runs; ``parser.error`` (exit 2) names the argument,
    the bad value, what is allowed and a corrected example."""
    import tempfile

    from zoo.bench.data import mnist_available

    if opts.torch_device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"argument --device: {opts.device!r}, but CUDA is not available here (torch {torch.__version__}, "
                     f"CUDA build {torch.version.cuda or 'none'}); allowed here: cpu; e.g. --device cpu")
    if opts.torch_device.type == "cuda" and opts.torch_device.index is not None \
            and opts.torch_device.index >= torch.cuda.device_count():
        parser.error(f"argument --device: {opts.device!r}, but there are {torch.cuda.device_count()} CUDA devices; "
                     f"e.g. --device cuda:0")
    given = args.data_root is not None
    if given and not args.data_root.is_dir():
        parser.error(f"argument --data-root: {str(args.data_root)!r} is not a folder; it must hold MNIST/raw "
                     f"(torchvision's layout); e.g. --data-root ../shared/data")
    if given and "data" in opts.sections and not mnist_available(args.data_root):
        parser.error(f"argument --data-root: {str(args.data_root)!r} has no MNIST/raw/{{train,t10k}}-*-ubyte files, "
                     f"which the data section reads; e.g. --data-root ../shared/data, or omit --data-root to skip "
                     f"MNIST (the CIFAR-sized part needs no files)")
    if "loop" in opts.sections and args.loop_overrides is None and not mnist_available(opts.data_root):
        opts.loop_overrides = [o if o != "data=mnist" else "data=digits" for o in opts.loop_overrides]
        report.note("loop", "no MNIST found ($ZOO_DATA, ../shared/data): the loop runs on data=digits")
    with tempfile.TemporaryDirectory(prefix="zoo-bench-check-") as tmp:
        for section, flag, build in (("loop", "--loop-overrides", "loop_config"), ("tta", "--tta-overrides", "tta_config")):
            if section not in opts.sections:
                continue
            overrides = opts.loop_overrides if section == "loop" else opts.tta_overrides
            try:
                _check_config(section, build, opts, Path(tmp) / section)
            except Exception as e:  # Hydra composition, ConfigError, DatasetNotFoundError: all bad input here
                first = str(e).strip()
                hint = (f"e.g. {flag} 'model=lenet5_modern data=digits'" if section == "loop"
                        else f"e.g. {flag} 'experiment=lenet5_digits trainer.max_epochs=1'")
                if type(e).__name__ == "DatasetNotFoundError":
                    parser.error(f"argument --data-root: {opts.data_root} does not hold the data of the {section} "
                                 f"section ({flag} {shlex.join(overrides)}): {first}\n{hint}, or "
                                 f"--data-root ../shared/data")
                parser.error(f"argument {flag}: {shlex.join(overrides)!r} is not a usable training config: "
                             f"{type(e).__name__}: {first}\n{hint}")
    if "tta" in opts.sections and opts.tta_dir is not None and opts.tta_dir.exists() and any(opts.tta_dir.iterdir()):
        parser.error(f"argument --tta-dir: {str(opts.tta_dir)!r} is not empty; the tta run needs a fresh folder; "
                     f"e.g. --tta-dir {opts.tta_dir}-2")


def _check_config(section: str, build: str, opts: BenchOptions, out: Path) -> None:
    """Composes and validates a section's training config and finds its data (no model is built)."""
    import hydra

    from zoo.training.config_check import validate_config

    if section == "loop":
        from zoo.bench.loop import loop_config as make
    else:
        from zoo.bench.tta import tta_config as make
    cfg = make(opts, out)
    validate_config(cfg)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()


def _runner(section: str) -> Callable[[BenchOptions, Report], None]:
    if section == "loop":
        from zoo.bench.loop import run_loop

        return run_loop
    if section == "data":
        from zoo.bench.data import run_data

        return run_data
    if section == "models":
        from zoo.bench.models import run_models

        return run_models
    if section == "lenet":
        from zoo.bench.models import run_lenet

        return run_lenet
    if section == "throughput":
        from zoo.bench.throughput import run_throughput

        return run_throughput
    from zoo.bench.tta import run_tta

    return run_tta


def run_benchmark(options: BenchOptions, argv: Sequence[str] | None = None, report: Report | None = None) -> Report:
    """Runs the sections of ``options`` in order and writes the outputs after each one.

    A section that raises is recorded as failed (with its error) and the others still run.

    Args:
        options: the settings.
        argv: the command-line arguments, for the machine block's command.
        report: a report to fill (e.g. with notes from the checks); a new one by default.

    Returns:
        The report (its ``sections`` hold each section's status and seconds).
    """
    torch.set_num_threads(options.threads)
    report = report or Report(options, argv)
    report.options = options
    report.machine = machine_info(argv, options.device)
    for section in options.sections:
        log.info("section %s ...", section)
        t0 = time.perf_counter()
        try:
            _runner(section)(options, report)
            report.sections[section] = {"status": "ok", "seconds": round(time.perf_counter() - t0, 2)}
        except Exception as e:
            log.error("section %s failed: %s\n%s", section, e, traceback.format_exc())
            report.sections[section] = {"status": "failed", "reason": f"{type(e).__name__}: {e}",
                                        "seconds": round(time.perf_counter() - t0, 2)}
        log.info("section %s: %s in %.1f s", section, report.sections[section]["status"],
                 report.sections[section]["seconds"])
        try:
            report.machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        except OSError:
            pass
        write_outputs(report, options.out)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: parses and checks ``argv``, runs the sections, writes the outputs and the report.

    Returns:
        0 when every section ran, 1 when one failed (the outputs hold the others).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    options = options_from_args(args)
    report = Report(options, argv)
    _check(parser, args, options, report)
    t0 = time.perf_counter()
    report = run_benchmark(options, argv, report)
    paths = write_outputs(report, options.out)
    sys.stdout.write(paths["md"].read_text())
    sys.stdout.write(f"\nwritten: {paths['md']}, {paths['csv']}, {paths['json']} ({time.perf_counter() - t0:.0f} s)\n")
    return 0 if all(s.get("status") == "ok" for s in report.sections.values()) else 1
