"""What every section of the benchmark shares: clocks, interleaved sampling, records, the machine
block, the output files and the composition of the training config.

Every figure is a median over ``repeats`` samples taken in rounds (A, B, A, B, ...) after
``warmup`` discarded rounds, in both process CPU time (:func:`time.process_time`) and wall time
(:func:`time.perf_counter`). A row's ``ratio`` is its value divided by the value of the section's
reference variant (its ``baseline``) for the same name and metric.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import math
import os
import platform
import shlex
import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

__all__ = [
    "SECTIONS", "DEFAULT_SECTIONS", "CPU_FLAGS", "BenchOptions", "Sample", "Clock", "Sampler", "interleave",
    "paired_ratios", "Measurement", "Report", "machine_info", "write_outputs", "project_root", "compose_train_config",
    "quiet_loggers",
]

log = logging.getLogger(__name__)

#: Every section, in the order they run.
SECTIONS = ("loop", "data", "models", "lenet", "throughput", "tta")
#: Sections run when ``--sections`` is not given: ``tta`` is a whole training run, asked for by name.
DEFAULT_SECTIONS = ("loop", "data", "models", "lenet", "throughput")
#: CPU flags reported in the machine block (present or not).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


@dataclass
class BenchOptions:
    """Settings of one benchmark run (the CLI's options, resolved; see ``python -m zoo.bench --help``).

    Attributes:
        sections: sections to run, in :data:`SECTIONS` order.
        threads: ``torch.set_num_threads``.
        repeats: timed rounds per comparison (the median is reported).
        warmup: discarded rounds before them.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        out: output folder of ``bench.md``, ``bench.csv`` and ``bench.json``.
        data_root: folder holding ``MNIST/raw`` (``None``: none found).
        target_s: least seconds of one sample of a short call (calls are repeated to reach it).
        loop_overrides: Hydra overrides of the ``loop`` section's training config.
        steps: timed training steps per sample of the ``loop`` section.
        loop_warmup: untimed steps before them, in every sample.
        data_batches: batches per sample of the ``data`` section (0: one epoch).
        data_overrides: Hydra overrides of the ``data`` section's MNIST datamodule.
        cifar_images: synthetic CIFAR-sized images of the ``data`` section.
        workers: ``num_workers`` values of the torchvision loaders.
        models: torchvision twins of the ``models`` section.
        batch: batch of the ``models`` section and of the large-input models of ``throughput``.
        size: image side of the ``models`` section and of the large-input models of ``throughput``.
        small_batch: batch of the small-input (<= 64 px) models of ``throughput``.
        lenet_batches: batches of the ``lenet`` section.
        throughput_models: models of the ``throughput`` section.
        compile: add a ``torch.compile`` training-step variant to ``throughput``.
        tta_overrides: Hydra overrides of the ``tta`` run.
        tta_thresholds: validation accuracies (percent) whose first time is reported.
        tta_dir: run folder of the ``tta`` run (``None``: a temporary folder).
        quick: tiny sizes (recorded in the output).
    """

    sections: list[str] = field(default_factory=lambda: list(DEFAULT_SECTIONS))
    threads: int = 1
    repeats: int = 5
    warmup: int = 1
    device: str = "cpu"
    out: Path = Path("results/bench")
    data_root: Path | None = None
    target_s: float = 0.2
    loop_overrides: list[str] = field(default_factory=lambda: ["model=lenet5_modern", "data=mnist",
                                                               "data.batch_size=128"])
    steps: int = 50
    loop_warmup: int = 5
    data_batches: int = 100
    data_overrides: list[str] = field(default_factory=list)
    cifar_images: int = 50000
    workers: list[int] = field(default_factory=lambda: [0, 2])
    models: list[str] = field(default_factory=list)
    batch: int = 8
    size: int = 224
    small_batch: int = 128
    lenet_batches: list[int] = field(default_factory=lambda: [32, 128])
    throughput_models: list[str] = field(default_factory=list)
    compile: bool = False
    tta_overrides: list[str] = field(default_factory=lambda: ["experiment=lenet5_mnist"])
    tta_thresholds: list[float] = field(default_factory=lambda: [98.5, 99.0])
    tta_dir: Path | None = None
    quick: bool = False

    @property
    def torch_device(self) -> torch.device:
        """The device as a ``torch.device``."""
        return torch.device(self.device)

    def to_dict(self) -> dict[str, Any]:
        """The options as plain JSON values."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


# ------------------------------------------------------------------------------------------ timing


@dataclass(frozen=True)
class Sample:
    """One timing: seconds of process CPU time and of wall time."""

    cpu: float
    wall: float

    def __truediv__(self, n: float) -> "Sample":
        return Sample(self.cpu / n, self.wall / n)


class Clock:
    """Reads process CPU time and wall time; on CUDA it synchronises the device first.

    Args:
        device: the device whose queued work must be finished before a reading.
        children: add the CPU time of finished child processes (``os.times``), e.g. the
            worker processes of a ``DataLoader`` once it has joined them.
    """

    def __init__(self, device: torch.device | str = "cpu", children: bool = False) -> None:
        self.device = torch.device(device)
        self.children = children

    def read(self) -> tuple[float, float]:
        """Returns ``(cpu seconds, wall seconds)`` now."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        cpu = time.process_time()
        if self.children:
            t = os.times()
            cpu += t.children_user + t.children_system
        return cpu, time.perf_counter()

    def since(self, start: tuple[float, float]) -> Sample:
        """Returns the time elapsed since ``start`` (a :meth:`read`)."""
        cpu, wall = self.read()
        return Sample(cpu - start[0], wall - start[1])


class Sampler:
    """Times ``fn`` per call, over a number of calls fixed by the first (warm-up) sample.

    The first call of the sampler runs ``fn`` once untimed, times one call, and sets the number of
    calls so that a sample lasts about ``target_s`` seconds; every later sample runs that many.

    Args:
        fn: the work to time; it returns nothing useful.
        clock: the clock.
        target_s: least duration of a sample.
        calls: fixed number of calls per sample (skips the calibration).
    """

    def __init__(self, fn: Callable[[], Any], clock: Clock, target_s: float = 0.2, calls: int | None = None) -> None:
        self.fn, self.clock, self.target_s, self.calls = fn, clock, target_s, calls

    def __call__(self) -> Sample:
        if self.calls is None:
            self.fn()
            start = self.clock.read()
            self.fn()
            one = self.clock.since(start).wall
            self.calls = max(1, min(10_000, math.ceil(self.target_s / max(one, 1e-9))))
        start = self.clock.read()
        for _ in range(self.calls):
            self.fn()
        return self.clock.since(start) / self.calls


def interleave(samplers: dict[str, Callable[[], Sample]], repeats: int, warmup: int = 1) -> dict[str, list[Sample]]:
    """Takes samples in rounds, each round one sample of every variant in order (A, B, A, B, ...).

    Args:
        samplers: ``{variant: callable returning one Sample}``.
        repeats: rounds kept.
        warmup: rounds run first and discarded.

    Returns:
        ``{variant: [Sample, ...]}`` with ``repeats`` samples each.
    """
    kept: dict[str, list[Sample]] = {k: [] for k in samplers}
    for r in range(warmup + repeats):
        for variant, sampler in samplers.items():
            s = sampler()
            if r >= warmup:
                kept[variant].append(s)
    return kept


def paired_ratios(a: list[Sample], b: list[Sample]) -> str:
    """The ratios ``a / b`` of the samples taken in the same round, as ``median (quartiles)`` in CPU and in wall time.

    A round's two samples run back to back, so their ratio is spared the machine's slower drifts (other jobs
    on the host), which the ratio of the two medians is not.
    """
    def spread(values: list[float]) -> str:
        if len(values) < 2:
            return f"{values[0]:.3f}x"
        q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return f"{q2:.3f}x ({q1:.3f}-{q3:.3f})"

    cpu = [x.cpu / y.cpu for x, y in zip(a, b)]
    wall = [x.wall / y.wall for x, y in zip(a, b)]
    rounds = f"{len(cpu)} round" + ("s" if len(cpu) != 1 else "")
    return f"cpu {spread(cpu)}, wall {spread(wall)}, median (quartiles) of {rounds}"


@contextmanager
def quiet_loggers(*names: str, level: int = logging.WARNING) -> Iterator[None]:
    """Raises the level of the named loggers for the duration of the block."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for lg, _ in saved:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, old in saved:
            lg.setLevel(old)


# ------------------------------------------------------------------------------------------ records


@dataclass
class Measurement:
    """One row of the output: a median (or a single reading) of one metric of one variant.

    Attributes:
        section: the section (``loop``, ``data``, ...).
        name: what is compared (a model, a dataset, a batch size).
        variant: the side of the comparison (``project``, ``plain``, ``zoo``, ``torchvision``, ``fp32``, ...).
        metric: e.g. ``cpu_ms``, ``wall_ms``, ``img_s``.
        value: the median, or ``None`` when there is none (a threshold never reached).
        unit: ``ms``, ``s``, ``img/s``, ``%``, ...
        ratio: ``value / value of baseline`` (same section, name and metric), or ``None``.
        baseline: the variant the ratio divides by.
        samples: the individual samples behind the median.
        note: a remark.
    """

    section: str
    name: str
    variant: str
    metric: str
    value: float | None
    unit: str
    ratio: float | None = None
    baseline: str | None = None
    samples: list[float] = field(default_factory=list)
    note: str = ""


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


class Report:
    """The measurements, notes and section statuses of one run.

    Args:
        options: the run's settings.
        argv: the command-line arguments (for the machine block's command).
    """

    def __init__(self, options: BenchOptions, argv: Sequence[str] | None = None) -> None:
        self.options = options
        self.argv = list(argv) if argv is not None else None
        self.machine: dict[str, Any] = {}
        self.measurements: list[Measurement] = []
        self.notes: dict[str, list[str]] = {}
        self.sections: dict[str, dict[str, Any]] = {}

    # -- adding

    def add(self, m: Measurement) -> Measurement:
        """Adds one row."""
        self.measurements.append(m)
        return m

    def note(self, section: str, text: str) -> None:
        """Adds a remark to a section (shown under its table)."""
        self.notes.setdefault(section, []).append(text)
        log.info("%s: %s", section, text)

    def add_timings(self, section: str, name: str, samples: dict[str, list[Sample]], *, scale: float = 1e3,
                    unit: str = "ms", prefix: str = "", per_item: float | None = None, note: str = "") -> None:
        """Adds the medians of interleaved samples: ``<prefix>cpu_<unit>`` and ``<prefix>wall_<unit>``
        per variant, and ``<prefix>img_s`` (items per wall second) when ``per_item`` is given.

        Args:
            section: the section.
            name: what is compared.
            samples: ``{variant: [Sample, ...]}`` from :func:`interleave`.
            scale: seconds -> unit factor.
            unit: unit of the times.
            prefix: metric prefix (e.g. ``infer_``).
            per_item: items (images) per sample, for a rate.
            note: a remark for every row.
        """
        for variant, ss in samples.items():
            for kind in ("cpu", "wall"):
                vals = [getattr(s, kind) * scale for s in ss]
                self.add(Measurement(section, name, variant, f"{prefix}{kind}_{unit}", _median(vals), unit,
                                     samples=[round(v, 6) for v in vals], note=note))
            if per_item is not None:
                rates = [per_item / s.wall for s in ss if s.wall > 0]
                self.add(Measurement(section, name, variant, f"{prefix}img_s", _median(rates) if rates else None,
                                     "img/s", samples=[round(v, 3) for v in rates], note=note))

    def set_ratios(self, section: str, baseline: str, name: str | None = None) -> None:
        """Sets ``ratio = value / value of baseline`` on the rows of ``section`` (and ``name``) that
        are not the baseline, for every metric the baseline has."""
        base = {(m.name, m.metric): m.value for m in self.measurements
                if m.section == section and m.variant == baseline and (name is None or m.name == name)}
        for m in self.measurements:
            if m.section != section or m.variant == baseline or (name is not None and m.name != name):
                continue
            b = base.get((m.name, m.metric))
            if b is not None and m.value is not None and b != 0:
                m.ratio, m.baseline = m.value / b, baseline

    def ratios(self) -> list[dict[str, Any]]:
        """Every ratio as an explicit pair: ``{section, name, metric, a, b, value_a, value_b, ratio}``."""
        index = {(m.section, m.name, m.variant, m.metric): m.value for m in self.measurements}
        out = []
        for m in self.measurements:
            if m.ratio is None or m.baseline is None:
                continue
            out.append({"section": m.section, "name": m.name, "metric": m.metric, "a": m.variant, "b": m.baseline,
                        "value_a": m.value, "value_b": index[(m.section, m.name, m.baseline, m.metric)],
                        "ratio": m.ratio})
        return out

    def rows(self, section: str) -> list[Measurement]:
        """The rows of one section."""
        return [m for m in self.measurements if m.section == section]


# ------------------------------------------------------------------------------------------ machine


def _cpuinfo() -> tuple[str, set[str]]:
    """The CPU model name and flags from ``/proc/cpuinfo`` (``platform`` where there is none)."""
    name, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not name:
                name = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return name or platform.processor() or platform.machine(), flags


def machine_info(argv: Sequence[str] | None = None, device: str = "cpu") -> dict[str, Any]:
    """The machine block: CPU model and flags, cores, threads, library versions, GPU, date, command.

    Args:
        argv: the command-line arguments of ``python -m zoo.bench`` (``None``: not from the CLI).
        device: the device the run times.

    Returns:
        A JSON-ready dict.
    """
    import torchvision

    cpu, flags = _cpuinfo()
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "torchvision": torchvision.__version__}
    for mod, key in (("pytorch_lightning", "lightning"), ("hydra", "hydra")):
        try:
            versions[key] = __import__(mod).__version__
        except Exception:
            versions[key] = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    gpu = None
    if torch.cuda.is_available():
        gpu = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    try:
        from zoo.training.run import _git_commit

        commit = _git_commit(project_root())
    except Exception:
        commit = None
    command = "python -m zoo.bench" + (" " + shlex.join(argv) if argv else "") if argv is not None else None
    return {
        "cpu": cpu,
        "cpu_flags": {f: f in flags for f in CPU_FLAGS},
        "cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "threads": torch.get_num_threads(),
        "device": device,
        "gpu": gpu,
        "versions": versions,
        "cuda": torch.version.cuda,
        "load_average": load,
        "platform": platform.platform(),
        "git_commit": commit,
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
    }


# ------------------------------------------------------------------------------------------ config


def project_root() -> Path:
    """The folder runs are written under: ``$ZOO_ROOT`` if it holds ``configs/``, else the package's parent."""
    env = os.environ.get("ZOO_ROOT")
    if env and (Path(env) / "configs").is_dir():
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2]


def compose_train_config(overrides: Sequence[str], output_dir: str | os.PathLike) -> Any:
    """Composes ``configs/train.yaml`` with ``overrides`` as ``python train.py <overrides>`` does,
    with the run writing into ``output_dir``.

    Hydra's run record (``HydraConfig``) is set, as in a run, so that the training driver finds the
    config-group choices; the ``hydra`` node is then removed from the returned config.

    Args:
        overrides: Hydra overrides, e.g. ``["model=lenet5_modern", "data=mnist"]``.
        output_dir: the run folder.

    Returns:
        The composed ``DictConfig``.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from zoo.configs import config_dir

    root = project_root()
    os.environ.setdefault("ZOO_ROOT", str(root))
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(Path(output_dir).parent)
        del cfg.hydra
    return cfg


# ------------------------------------------------------------------------------------------ output

_CSV_FIELDS = ("section", "name", "variant", "metric", "value", "unit", "ratio", "baseline", "n", "min", "max", "note")

#: What each section compares, and the meaning of its ratio (written above its table).
SECTION_DOC = {
    "loop": "Training steps of `train.py`'s path (Hydra config, datamodule loader, ClassificationModule, "
            "Lightning Trainer with the run's callbacks and loggers, no progress bar) vs a hand-written loop "
            "(`loss = F.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step()`) over the "
            "same batches, model and optimizer. `plain_loader` is the plain loop fetching its batches from "
            "the datamodule's loader. Per step, after warm-up steps. Ratio: variant / plain.",
    "data": "Batches of the project's in-memory loader vs torchvision's `DataLoader` with per-image "
            "`transforms.v2`, per batch. Ratio: zoo / torchvision. The CPU time of a torchvision loader with "
            "workers includes the workers' (started at each pass, joined at its end).",
    "models": "Forward + backward (cross-entropy) in training mode of each zoo model vs its torchvision twin, "
              "with the same weights (`zoo.from_torchvision`). Ratio: zoo / torchvision.",
    "lenet": "Forward + backward + Adam step of the faithful LeNet-5 vs `lenet5_modern` on 1x32x32 inputs. "
             "Ratio: lenet5 / lenet5_modern.",
    "throughput": "Inference (eval, `torch.inference_mode`) and training steps (SGD with momentum) per batch: "
                  "fp32 vs bf16 autocast vs channels_last (and torch.compile for training with --compile). "
                  "Ratio: variant / fp32; on `img_s` the ratio is the speed-up, on times a ratio < 1 is faster.",
    "tta": "Time to accuracy: a whole run through `zoo.training.run.train`; per epoch the wall and CPU time "
           "since training started (validation included), the training time without validation, and the "
           "validation accuracy from the run's metrics.csv; then the first time each threshold is reached.",
}


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.3g}" if a < 10 else f"{v:.1f}"
    return f"{v:.3g}"


def _markdown(report: Report) -> str:
    mc = report.machine
    out = io.StringIO()
    w = out.write
    w("# zoo benchmark\n\n")
    if mc.get("command"):
        w(f"`{mc['command']}`\n\n")
    w(f"{mc.get('date', '')}. Medians of {report.options.repeats} interleaved rounds after "
      f"{report.options.warmup} warm-up round(s); CPU = process CPU time, wall = elapsed time. "
      f"{'Quick (tiny) sizes. ' if report.options.quick else ''}\n\n")
    w("## Machine\n\n| | |\n|---|---|\n")
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in (mc.get("cpu_flags") or {}).items())
    rows = [("CPU", mc.get("cpu")), ("CPU flags", flags), ("torch CPU capability", mc.get("cpu_capability")),
            ("cores (usable)", f"{mc.get('cores')} ({mc.get('cores_usable')})"), ("torch threads", mc.get("threads")),
            ("device", mc.get("device")), ("GPU", ", ".join(mc["gpu"]) if mc.get("gpu") else "none"),
            ("versions", ", ".join(f"{k} {v}" for k, v in (mc.get("versions") or {}).items())),
            ("load average (start, end)", f"{mc.get('load_average')}, {mc.get('load_average_end')}"), ("git commit", mc.get("git_commit")),
            ("platform", mc.get("platform"))]
    for k, v in rows:
        w(f"| {k} | {v} |\n")
    w("\n")
    summary = _summary(report)
    if summary:
        w("## Ratios\n\nTime of the first variant over the second's (below 1: the first is faster), in process "
          "CPU time and in wall time. The CPU figure is the steadier one on a shared machine.\n\n")
        w(summary + "\n")
    for section in report.options.sections:
        info = report.sections.get(section, {})
        w(f"## {section}\n\n")
        if section in SECTION_DOC:
            w(SECTION_DOC[section] + "\n\n")
        status = info.get("status", "not run")
        if status != "ok":
            w(f"**{status}**" + (f": {info['reason']}" if info.get("reason") else "") + "\n\n")
        for n in report.notes.get(section, []):
            w(f"- {n}\n")
        if report.notes.get(section):
            w("\n")
        rows_ = report.rows(section)
        if rows_:
            w(_tables(rows_))
            w("\n")
        if "seconds" in info:
            w(f"Section time: {info['seconds']:.1f} s.\n\n")
    return out.getvalue()


def _ratio(r: float) -> str:
    return f"{r:.3g}x" if r < 100 else f"{r:.0f}x"


def _family(metric: str) -> str:
    """``infer_cpu_ms`` -> ``infer``: metrics of one family share a table."""
    head, _, rest = metric.partition("_")
    return head if head in ("infer", "train") and rest in ("cpu_ms", "wall_ms", "img_s") else ""


def _tables(rows: list[Measurement]) -> str:
    """The rows as tables: one per metric family (``infer_*``, ``train_*``, the rest), split further where
    consecutive lines have different sets of metrics (the tta section's epochs, thresholds and totals)."""
    out = []
    families: list[str] = []
    for m in rows:
        if _family(m.metric) not in families:
            families.append(_family(m.metric))
    for fam in families:
        lines: dict[tuple[str, str], dict[str, Measurement]] = {}
        for m in rows:
            if _family(m.metric) == fam:
                lines.setdefault((m.name, m.variant), {})[m.metric] = m
        block: list[tuple[tuple[str, str], dict[str, Measurement]]] = []
        for item in lines.items():
            if block and list(block[-1][1]) != list(item[1]):
                out.append(_pivot(block))
                block = []
            block.append(item)
        if block:
            out.append(_pivot(block))
    return "\n".join(out)


def _pivot(block: list[tuple[tuple[str, str], dict[str, Measurement]]]) -> str:
    """A table with one line per (name, variant) and one column per metric; cells ``value (ratio x)``."""
    metrics = list(block[0][1])
    units = {k: block[0][1][k].unit for k in metrics}
    head = "| name | variant | " + " | ".join(f"{k} ({units[k]})" for k in metrics) + " |\n"
    sep = "|---|---|" + "---:|" * len(metrics) + "\n"
    body = []
    for (name, variant), cells in block:
        vals = []
        for k in metrics:
            m = cells.get(k)
            vals.append("" if m is None else _fmt(m.value) + (f" ({_ratio(m.ratio)})" if m.ratio is not None else ""))
        body.append(f"| {name} | {variant} | " + " | ".join(vals) + " |\n")
    return head + sep + "".join(body)


def _summary(report: Report) -> str:
    """One line per compared pair: the ratio in CPU time and in wall time (per metric family)."""
    pairs: dict[tuple[str, str, str, str, str], dict[str, float]] = {}
    for r in report.ratios():
        metric = r["metric"]
        fam = _family(metric)
        kind = metric[len(fam) + 1:] if fam else metric
        if kind not in ("cpu_ms", "wall_ms"):
            continue
        pairs.setdefault((r["section"], r["name"], fam, r["a"], r["b"]), {})[kind.split("_")[0]] = r["ratio"]
    lines = []
    for (section, name, fam, a, b), rs in pairs.items():
        what = f"{fam} " if fam else ""
        parts = ", ".join(f"{k} {_ratio(v)}" for k, v in sorted(rs.items()))
        lines.append(f"- {section}: {name}: {what}{a} / {b} = {parts}\n")
    return "".join(lines)


def write_outputs(report: Report, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Writes ``bench.md``, ``bench.csv`` and ``bench.json`` into ``out_dir``.

    Returns:
        ``{"md": path, "csv": path, "json": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "bench.md", "csv": out / "bench.csv", "json": out / "bench.json"}
    paths["md"].write_text(_markdown(report))
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_CSV_FIELDS)
        writer.writeheader()
        for m in report.measurements:
            writer.writerow({"section": m.section, "name": m.name, "variant": m.variant, "metric": m.metric,
                             "value": "" if m.value is None else repr(float(m.value)), "unit": m.unit,
                             "ratio": "" if m.ratio is None else repr(float(m.ratio)), "baseline": m.baseline or "",
                             "n": len(m.samples), "min": min(m.samples) if m.samples else "",
                             "max": max(m.samples) if m.samples else "", "note": m.note})
    doc = {"machine": report.machine, "options": report.options.to_dict(), "sections": report.sections,
           "notes": report.notes, "measurements": [asdict(m) for m in report.measurements],
           "ratios": report.ratios()}
    paths["json"].write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return paths
