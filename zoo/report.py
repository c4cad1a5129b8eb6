"""Paper-vs-ours report from training runs: a Markdown table, a CSV and PNG plots.

Usage::

    python -m zoo.report outputs                         # writes outputs/report/results.{md,csv}, plots
    python -m zoo.report outputs multirun --out /tmp/rep
    python -m zoo.report outputs --readme README.md      # regenerates the README results table

Every ``results.json`` below the given folders is one run (a run folder without one is unfinished and
skipped, as are ``fast_dev_run`` and ``debug`` runs). Runs are grouped by model, dataset and recipe: the
experiment preset's name, or for runs without a preset a short hash of the resolved config with the
seed and every path left out, so runs that differ only in seed fall into one group. Each group gives
one row: test top-1 accuracy as mean ± sample standard deviation over its runs, the paper's figure from
the model's metadata (``paper_results``; errors are turned into accuracy = 100 - error; a preset's
``paper_result`` names the figure, and a top-5 figure is compared with top-5 accuracy), the difference,
and a verdict: "within noise" when ``|ours - paper| <= max(2 std, 0.3)`` points, else "off by X pts".
Parameters and MACs are those of the trained network (its ``num_classes``, ``in_chans`` and layout),
MACs counted on the meta device at the run's input size, given with that size. Wall time is the mean
over the seeds of each run's ``train_seconds`` (the fit, validation included); a resumed seed counts only
its last segment, so its row's time is a lower bound, marked ``≥``.

Copies of a dataset are labelled as what they are (:data:`DATASET_LABELS`): runs on ``data=cifar10_jpeg``,
CIFAR-10 re-encoded as JPEG at quality 75, are ``cifar10-jpeg`` rows, in a table of their own. The paper's
figures are on the original CIFAR-10, so such a row shows the paper's CIFAR-10 figure and the difference
for reference, and its verdict names what differs instead of passing or failing it: "JPEG copy", or
"JPEG copy, short schedule" when its recipe trains fewer epochs than the model's full-recipe
``<model>_cifar10`` preset.

Experiment presets in ``configs/experiment/`` that have no run yet are listed below the table with the
command to run them and what they need (ImageNet on disk, CIFAR-10 on disk and a GPU), and no number.
A preset counts as run only by runs on its own dataset: ``experiment=resnet20_cifar10 data=cifar10_jpeg``
does not make the CIFAR-10 preset's row.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = [
    "Run", "Group", "Copy", "CPU_DATASETS", "DATASET_LABELS", "COPIES", "dataset_label", "find_runs", "config_hash",
    "recipe_of", "group_runs", "paper_accuracy", "is_top5", "verdict", "copy_verdict", "full_recipe", "report_rows",
    "read_presets", "pending_presets", "to_markdown", "write_csv", "write_plots", "update_readme", "write_report",
    "main",
]

log = logging.getLogger(__name__)

CSV_COLUMNS = ["model", "dataset", "recipe", "params", "macs", "macs_input", "ours_mean", "ours_std", "n_runs",
               "seeds", "paper", "paper_metric", "diff", "verdict", "epochs", "wall_seconds", "wall_resumed_runs",
               "hardware", "command"]
README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"
README_PLACEHOLDER = "RESULTS_TABLE"
NOISE_FLOOR = 0.3  # points of accuracy

# Data choices whose rows carry another name than the choice: copies are never labelled as their source.
DATASET_LABELS = {"cifar10_jpeg": "cifar10-jpeg"}
# Data module classes of those copies, for runs recorded without the data choice.
_TARGET_LABELS = {"CIFAR10JPEGDataModule": "cifar10-jpeg"}


@dataclass(frozen=True)
class Copy:
    """A re-encoded copy of a dataset: where its paper figures come from and how its rows are told apart.

    Attributes:
        source: the dataset the paper's figures are on (``cifar10``).
        kind: the verdict's words for the copy (``JPEG copy``).
        title: the heading of its table.
        note: one line under the heading saying what the copy is.
    """

    source: str
    kind: str
    title: str
    note: str


COPIES = {
    "cifar10-jpeg": Copy(
        source="cifar10", kind="JPEG copy", title="CIFAR-10 as JPEG (cifar10-jpeg)",
        note="CIFAR-10 re-encoded as JPEG at quality 75, a lossy copy (`data=cifar10_jpeg`): the paper column "
             "is the paper's figure on the original CIFAR-10, shown with Δ for reference, never as a pass or "
             "fail; \"short schedule\": fewer epochs than the model's full-recipe CIFAR-10 preset."),
}


def dataset_label(data: str, experiment: str = "", target: str = "") -> str:
    """The name a dataset is shown under: ``imagenet`` for ``*_imagenet`` presets on ``imagefolder``,
    ``cifar10-jpeg`` for ``cifar10_jpeg`` (or its data module ``target``), else the data choice."""
    if data == "imagefolder" and experiment.endswith("_imagenet"):
        return "imagenet"
    if data in DATASET_LABELS:
        return DATASET_LABELS[data]
    cls = target.rsplit(".", 1)[-1]
    if cls in _TARGET_LABELS:
        return _TARGET_LABELS[cls]
    return data

# Config keys that do not change what is trained: paths, logging, the seed, resumption.
_IGNORED_TOP = {"seed", "paths", "task_name", "ckpt_path", "overwrite", "logger", "callbacks", "hydra", "extras",
                "tags", "paper_result", "print_config"}
# Options added after runs were made, at the value that leaves the recipe as it was (off): a run made
# before the option existed and one made after with it off are the same recipe. (section, key) -> value.
_NEUTRAL = {("ema", "enabled"): False, ("mixup", "alpha"): 0.0, ("cutmix", "alpha"): 0.0,
            ("trainer", "accumulate_grad_batches"): 1}
# The dataset's own facts (older runs kept copies of them in the data config; the model has them).
_IGNORED_DATA = {"num_classes", "in_chans", "small_input"}
_IGNORED_ANYWHERE = {"root", "download", "num_workers", "default_root_dir", "save_dir", "dirpath",
                     "pin_memory", "persistent_workers"}


@dataclass
class Run:
    """One finished training run.

    Args:
        path: the run folder (holding ``results.json``).
        results: the parsed ``results.json``.
    """

    path: Path
    results: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.results.get("model"))

    @property
    def dataset(self) -> str:
        """The dataset's label (:func:`dataset_label`)."""
        data_cfg = (self.results.get("config") or {}).get("data") or {}
        target = str(data_cfg.get("_target_") or "") if isinstance(data_cfg, dict) else ""
        return dataset_label(str(self.results.get("data") or ""), str(self.results.get("experiment") or ""),
                             target)

    @property
    def max_epochs(self) -> int | None:
        """The epochs the recipe trains (``trainer.max_epochs``), else those the run trained."""
        trainer = (self.results.get("config") or {}).get("trainer") or {}
        epochs = trainer.get("max_epochs") if isinstance(trainer, dict) else None
        if epochs is None:
            epochs = self.results.get("epochs")
        return None if epochs is None else int(epochs)

    @property
    def resumed(self) -> bool:
        """Whether the segment that finished resumed a checkpoint (its ``train_seconds`` is only that segment)."""
        return bool(self.results.get("resumed_from"))

    @property
    def acc(self) -> float | None:
        """Test top-1 accuracy in percent, or ``None`` when the run has none."""
        acc = self.results.get("test/acc")
        return None if acc is None else 100.0 * float(acc)

    @property
    def acc5(self) -> float | None:
        """Test top-5 accuracy in percent, or ``None`` when the run has none."""
        acc = self.results.get("test/acc5")
        return None if acc is None else 100.0 * float(acc)


@dataclass
class Group:
    """Runs of one model on one dataset with one recipe."""

    model: str
    dataset: str
    recipe: str
    runs: list[Run] = field(default_factory=list)


def _is_debug(results: dict[str, Any]) -> bool:
    cfg = results.get("config") or {}
    trainer = cfg.get("trainer") or {}
    return bool(trainer.get("fast_dev_run")) or cfg.get("task_name") == "debug"


def find_runs(dirs: Iterable[str | Path]) -> list[Run]:
    """Returns every finished, non-debug run below ``dirs`` (each folder holding a ``results.json``).

    Unreadable files are skipped with a warning.
    """
    runs: list[Run] = []
    seen: set[Path] = set()
    for d in dirs:
        d = Path(d)
        if not d.exists():
            log.warning("%s: no such folder", d)
            continue
        for f in sorted(d.rglob("results.json")):
            f = f.resolve()
            if f in seen:
                continue
            seen.add(f)
            try:
                results = json.loads(f.read_text())
            except (OSError, ValueError) as e:
                log.warning("skipping %s: %s", f, e)
                continue
            if not isinstance(results, dict) or "model" not in results:
                log.warning("skipping %s: not a results.json of a training run", f)
                continue
            if _is_debug(results):
                log.info("skipping debug run %s", f.parent)
                continue
            runs.append(Run(f.parent, results))
    return runs


def _strip(cfg: Any, top: bool = False) -> Any:
    # A key set to null is the same recipe as the key absent: a new option with a null default does not
    # split the runs made before it from those made after.
    if isinstance(cfg, dict):
        return {k: _strip(v) for k, v in sorted(cfg.items())
                if v is not None and k not in _IGNORED_ANYWHERE and not (top and k in _IGNORED_TOP)}
    if isinstance(cfg, list):
        return [_strip(v) for v in cfg]
    return cfg


def _drop_neutral(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` without the options of :data:`_NEUTRAL` that are off: the EMA section when it is disabled,
    mixup and CutMix at alpha 0 (and ``mix_prob`` when both are), one-batch gradient accumulation."""
    cfg = dict(cfg)
    for (section, key), value in _NEUTRAL.items():
        part = cfg.get(section)
        if isinstance(part, dict) and part.get(key) == value:
            if section == "trainer":
                cfg[section] = {k: v for k, v in part.items() if k != key}
            else:
                del cfg[section]
    if "mixup" not in cfg and "cutmix" not in cfg:
        cfg.pop("mix_prob", None)
    return cfg


def config_hash(results: dict[str, Any]) -> str:
    """Returns a short hash of the run's resolved config without the seed, paths, logging, the data's facts
    and the options that are off (:data:`_NEUTRAL`)."""
    cfg = _drop_neutral(_strip(results.get("config") or {}, top=True))
    if isinstance(cfg.get("data"), dict):
        cfg["data"] = {k: v for k, v in cfg["data"].items() if k not in _IGNORED_DATA}
    return hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:8]


def recipe_of(results: dict[str, Any]) -> str:
    """Returns the recipe of a run: its experiment preset, else ``cfg-<hash>`` of the config without
    the seed, paths and logging."""
    if results.get("experiment"):
        return str(results["experiment"])
    return f"cfg-{config_hash(results)}"


def group_runs(runs: Iterable[Run]) -> list[Group]:
    """Groups runs by (model, dataset, recipe), sorted by those keys; runs sorted by seed.

    Runs of one experiment preset whose configs differ beyond seed and paths (overrides on the command
    line, or a preset edited between runs) are kept apart as ``<preset>+cfg-<hash>``.
    """
    by_key: dict[tuple[str, str, str, str], list[Run]] = {}
    for run in runs:
        key = (run.model, run.dataset, recipe_of(run.results), config_hash(run.results))
        by_key.setdefault(key, []).append(run)
    n_variants: dict[tuple[str, str, str], int] = {}
    for model, dataset, recipe, _ in by_key:
        n_variants[(model, dataset, recipe)] = n_variants.get((model, dataset, recipe), 0) + 1
    groups = []
    for (model, dataset, recipe, digest), members in by_key.items():
        if n_variants[(model, dataset, recipe)] > 1 and not recipe.startswith("cfg-"):
            recipe = f"{recipe}+cfg-{digest}"
        members.sort(key=lambda r: (str(r.results.get("seed")), str(r.path)))
        groups.append(Group(model, dataset, recipe, members))
    return sorted(groups, key=lambda g: (g.model, g.dataset, g.recipe))


# Metric names of paper_results, most preferred first; "err" figures are turned into accuracy.
_METRIC_PREFERENCE = ["top1_err", "test_err", "err", "top1_err_1crop", "top1_err_10crop", "top1", "acc"]


def paper_accuracy(model: str, dataset: str, key: str | None = None) -> tuple[float, str] | None:
    """Returns the paper's top-1 accuracy (%) for ``model`` on ``dataset`` and the metadata key it
    comes from, or ``None`` when the metadata has no such figure (or the model is not registered).

    ``paper_results`` keys look like ``"<dataset>[_split]/<metric>"``; ``imagenet_val/top1_err`` serves
    ``imagenet``. Error figures become accuracy = 100 - error. ``key`` names the figure explicitly (a
    recipe's ``paper_result``, e.g. ``imagenet_val/top1_err_jitter``); an unknown key gives ``None``.
    """
    from zoo._registry import UnknownModelError, model_info

    try:
        results = model_info(model).paper_results
    except UnknownModelError:
        return None
    if key is not None:
        if key not in results:
            log.warning("%s has no paper figure %r (it has: %s)", model, key, ", ".join(results) or "none")
            return None
        metric = key.partition("/")[2]
        return (100.0 - float(results[key]) if "err" in metric else float(results[key])), key
    candidates: dict[str, tuple[float, str]] = {}
    for key, value in results.items():
        ds, _, metric = key.partition("/")
        if ds != dataset and not ds.startswith(dataset + "_"):
            continue
        if ds != dataset and not ds.endswith(("_val", "_test")):
            continue  # another setting of the dataset (resolution, pretraining), not this recipe
        if metric in _METRIC_PREFERENCE and metric not in candidates:
            acc = 100.0 - float(value) if "err" in metric else float(value)
            candidates[metric] = (acc, key)
    for metric in _METRIC_PREFERENCE:
        if metric in candidates:
            return candidates[metric]
    return None


def is_top5(paper_metric: str | None) -> bool:
    """Whether a ``paper_results`` key is a top-5 figure (compared with the runs' ``test/acc5``)."""
    return paper_metric is not None and "top5" in paper_metric.partition("/")[2]


def verdict(ours: float, std: float, paper: float | None) -> str:
    """Returns "within noise" when ``|ours - paper| <= max(2 std, 0.3)`` points, else "off by X pts";
    "—" without a paper figure."""
    if paper is None:
        return "—"
    diff = ours - paper
    if abs(diff) <= max(2.0 * std, NOISE_FLOOR):
        return "within noise"
    return f"off by {abs(diff):.2f} pts"


def copy_verdict(copy: Copy, epochs: int | None, full_epochs: int | None) -> str:
    """The verdict of a row on a copy of the paper's dataset: never a pass or fail, but what differs.

    Returns:
        ``"<kind>, short schedule"`` when ``epochs < full_epochs``, ``"<kind>"`` when the recipe trains at
        least the full recipe's epochs, ``"<kind>, schedule unknown"`` when either is unknown.
    """
    if epochs is None or full_epochs is None:
        return f"{copy.kind}, schedule unknown"
    return f"{copy.kind}, short schedule" if epochs < full_epochs else copy.kind


def full_recipe(model: str, dataset: str, recipe: str, presets: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The preset of ``model`` on ``dataset`` (a copy's source) that a copy's ``recipe`` is measured against.

    ``<recipe minus _jpeg>`` first (``resnet20_cifar10_jpeg`` -> ``resnet20_cifar10``), then ``recipe``
    itself (the CIFAR-10 preset run with ``data=cifar10_jpeg``), then ``<model>_<dataset>``, then the
    longest of the model's presets on ``dataset``; ``None`` when it has none.
    """
    candidates = {p["experiment"]: p for p in presets if p["model"] == model and p["dataset"] == dataset}
    base = recipe.split("+cfg-")[0]
    for name in (base.removesuffix("_jpeg"), base, f"{model}_{dataset}"):
        if name in candidates:
            return candidates[name]
    if not candidates:
        return None
    return max(candidates.values(), key=lambda p: p["epochs"] if p["epochs"] is not None else -1)


def _hardware(results: dict[str, Any]) -> str:
    hw = results.get("hardware") or {}
    text = str(hw.get("cpu") or "?")
    if hw.get("torch_threads") is not None:
        text += f", {hw['torch_threads']} thread{'s' if hw['torch_threads'] != 1 else ''}"
    if hw.get("cpu_count") is not None:
        text += f" of {hw['cpu_count']} cores"
    if hw.get("gpu"):
        text = ", ".join(hw["gpu"]) + f" (+ {text})"
    return text


_SEED = re.compile(r"(^|\s)seed=\S+")


def _command(group: Group) -> str:
    """The command that reproduces the group: one run's command, or a multirun over its seeds."""
    commands = [str(r.results.get("command") or "") for r in group.runs]
    seeds = [r.results.get("seed") for r in group.runs]
    if len(set(commands)) == 1:
        return commands[0]
    stripped = {_SEED.sub("", c).strip() for c in commands}
    if len(stripped) == 1 and len(set(map(str, seeds))) == len(seeds):
        base = stripped.pop()
        if base.startswith("python train.py"):
            base = "python train.py -m" + base[len("python train.py"):]
        return f"{base} seed={','.join(str(s) for s in seeds)}"
    return commands[0] + f"  (and {len(commands) - 1} more)"


def _macs(model: str, results: dict[str, Any] | None = None) -> tuple[int | None, str]:
    """MACs of one forward pass and the input they are counted at (``"CxHxW"``).

    For a run, the network it trained, built from its config on the meta device, at the data's
    ``in_chans`` x ``image_size``; otherwise (or when that fails) the registry's figure at the model's
    default input.
    """
    from zoo._registry import UnknownModelError, model_info

    cfg = (results or {}).get("config") or {}
    model_cfg, data_cfg = cfg.get("model") or {}, cfg.get("data") or {}
    # the channels are the model's as built (newer runs); older runs kept a copy in the data config
    size, chans = data_cfg.get("image_size"), model_cfg.get("in_chans") or data_cfg.get("in_chans")
    if model_cfg.get("_target_") and size and chans:
        try:
            import hydra
            import torch

            from zoo.profiling import count_macs

            h, w = (size, size) if isinstance(size, int) else tuple(size)
            with torch.device("meta"):
                net = hydra.utils.instantiate(model_cfg)
            return count_macs(net, (int(chans), int(h), int(w)), device="meta"), f"{chans}x{h}x{w}"
        except Exception as e:  # an old or foreign config: fall back to the metadata
            log.warning("could not count the MACs of %s from its run config (%s); using the metadata", model, e)
    try:
        info = model_info(model)
    except UnknownModelError:
        return None, ""
    return info.macs, "x".join(str(s) for s in info.input_size)


def report_rows(groups: Iterable[Group], presets: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Returns one row per group with the columns of :data:`CSV_COLUMNS`; groups whose runs have no
    test accuracy are left out with a warning.

    Args:
        groups: the grouped runs.
        presets: the experiment presets (:func:`read_presets`) a copy's row finds its full recipe in;
            ``None`` reads the project's.
    """
    rows = []
    for g in groups:
        copy = COPIES.get(g.dataset)
        paper_result = (g.runs[0].results.get("config") or {}).get("paper_result")
        paper = paper_accuracy(g.model, copy.source if copy else g.dataset, paper_result)
        top5 = paper is not None and is_top5(paper[1])  # the paper gives top-5 only (GoogLeNet)
        accs = [a for a in (r.acc5 if top5 else r.acc for r in g.runs) if a is not None]
        if not accs:
            log.warning("no test accuracy in the runs of %s / %s / %s; left out", g.model, g.dataset, g.recipe)
            continue
        mean = statistics.fmean(accs)
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        macs, macs_input = _macs(g.model, g.runs[0].results)
        first = g.runs[0].results
        params = first.get("params")
        timed = [r for r in g.runs if r.results.get("train_seconds") is not None]
        secs = [float(r.results["train_seconds"]) for r in timed]
        epochs = sorted({int(r.results["epochs"]) for r in g.runs if r.results.get("epochs") is not None})
        if paper is None:
            judged = "—"
        elif copy is not None:
            if presets is None:
                presets = read_presets(_default_configs())
            full = full_recipe(g.model, copy.source, g.recipe, presets)
            planned = [e for e in (r.max_epochs for r in g.runs) if e is not None]
            judged = copy_verdict(copy, max(planned) if planned else None, None if full is None else full["epochs"])
        else:
            judged = verdict(mean, std, paper[0])
        rows.append({
            "model": g.model, "dataset": g.dataset, "recipe": g.recipe,
            "params": params, "macs": macs, "macs_input": macs_input,
            "ours_mean": round(mean, 4), "ours_std": round(std, 4) if len(accs) > 1 else None,
            "n_runs": len(accs), "seeds": ",".join(str(r.results.get("seed")) for r in g.runs),
            "paper": None if paper is None else round(paper[0], 4),
            "paper_metric": None if paper is None else paper[1],
            "diff": None if paper is None else round(mean - paper[0], 4),
            "verdict": judged,
            "epochs": "/".join(map(str, epochs)),
            "wall_seconds": round(statistics.fmean(secs), 1) if secs else None,
            "wall_resumed_runs": sum(r.resumed for r in timed),
            "hardware": " / ".join(sorted({_hardware(r.results) for r in g.runs})),
            "command": _command(g),
        })
    return rows


# Data small enough to train on a CPU (dataset labels): their presets are run for the README table. The
# digits and MNIST-likes take minutes a seed; cifar10-jpeg presets 15 to 45 minutes.
CPU_DATASETS = ("digits", "mnist", "fashion_mnist", "kmnist", "cifar10-jpeg")


def _needs(dataset: str, name: str) -> str:
    if dataset in ("imagenet", "imagefolder") or name.endswith("_imagenet"):
        return "needs ImageNet on disk (data.root=/path/to/imagenet); GPU advised"
    if dataset in COPIES:
        return f"not run yet (CPU is enough; needs {dataset}/ on disk, data.root=...)"
    if dataset in CPU_DATASETS:
        return "not run yet (CPU is enough)"
    return f"needs {dataset.upper().replace('CIFAR', 'CIFAR-')} on disk; GPU advised"


def read_presets(configs_dir: str | Path) -> list[dict[str, Any]]:
    """Returns every experiment preset of ``configs_dir/experiment``, sorted by name.

    Each row has ``experiment``, ``model``, ``dataset`` (the label of the preset's data choice,
    :func:`dataset_label`: ``imagenet`` for ``*_imagenet`` presets on ``imagefolder``, ``cifar10-jpeg``),
    ``paper``, ``paper_metric`` (for a copy, the paper's figure on its source), ``epochs``, ``needs`` and
    ``command``. A preset may extend a sibling (a plain name in its defaults list). Unreadable presets are
    skipped with a warning.
    """
    exp_dir = Path(configs_dir) / "experiment"
    if not exp_dir.is_dir():
        return []
    rows = []
    for f in sorted(exp_dir.glob("*.yaml")):
        name = f.stem
        try:
            preset = _read_preset(exp_dir, name)
        except Exception as e:  # a broken preset should not stop the report
            log.warning("skipping preset %s: %s", f, e)
            continue
        model = preset["choices"].get("model", "?")
        dataset = dataset_label(preset["choices"].get("data", "?"), name)
        copy = COPIES.get(dataset)
        paper = paper_accuracy(model, copy.source if copy else dataset, preset["paper_result"])
        rows.append({
            "experiment": name, "model": model, "dataset": dataset,
            "paper": None if paper is None else round(paper[0], 4),
            "paper_metric": None if paper is None else paper[1],
            "epochs": preset["epochs"],
            "needs": _needs(dataset, name),
            "command": f"python train.py experiment={name}",
        })
    return rows


def _read_preset(exp_dir: Path, name: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Reads the group choices, ``trainer.max_epochs`` and ``paper_result`` of one preset, following the
    sibling presets it extends (plain names in its defaults list) before its own overrides."""
    from omegaconf import OmegaConf

    if name in _seen:
        raise ValueError(f"presets extend each other in a cycle: {' -> '.join(_seen + (name,))}")
    cfg = OmegaConf.to_container(OmegaConf.load(exp_dir / f"{name}.yaml"))
    out: dict[str, Any] = {"choices": {}, "epochs": None, "paper_result": None}
    own: dict[str, str] = {}
    for entry in cfg.get("defaults") or []:
        if isinstance(entry, str) and entry != "_self_":
            parent = _read_preset(exp_dir, entry.split("/")[-1], _seen + (name,))
            out["choices"].update(parent["choices"])
            out["epochs"] = parent["epochs"]
            out["paper_result"] = parent["paper_result"]
        elif isinstance(entry, dict):
            for k, v in entry.items():
                own[k.replace("override", "").strip().lstrip("/")] = str(v)
    out["choices"].update(own)
    if (cfg.get("trainer") or {}).get("max_epochs") is not None:
        out["epochs"] = cfg["trainer"]["max_epochs"]
    if cfg.get("paper_result") is not None:
        out["paper_result"] = cfg["paper_result"]
    return out


def pending_presets(configs_dir: str | Path, groups: Iterable[Group],
                    presets: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Returns the experiment presets of ``configs_dir/experiment`` (or ``presets``) that no group was run
    with on the preset's own dataset (rows as :func:`read_presets`)."""
    done = {(g.recipe.split("+cfg-")[0], g.dataset) for g in groups}
    rows = read_presets(configs_dir) if presets is None else presets
    return [row for row in rows if (row["experiment"], row["dataset"]) not in done]


def _num(n: int | None) -> str:
    if n is None:
        return "—"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}"
    return str(n)


def _duration(s: float | None) -> str:
    if s is None:
        return "—"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else (f"{m}m {sec:02d}s" if m else f"{sec}s")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _wall(row: dict[str, Any]) -> str:
    """The wall time cell: ``≥`` when a seed was resumed (its time is only its last segment)."""
    text = _duration(row["wall_seconds"])
    return f"≥ {text}" if row["wall_seconds"] is not None and row.get("wall_resumed_runs") else text


def _ours(row: dict[str, Any], tag: str) -> str:
    return f"{row['ours_mean']:.2f}" + (f" ± {row['ours_std']:.2f}" if row["ours_std"] is not None else "") + tag


def _main_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    head = ["Model", "Dataset", "Recipe", "Params", "MACs", "Ours (top-1 %)", "n", "Paper (top-1 %)", "Δ",
            "Verdict", "Epochs", "Wall time", "Hardware", "Command"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        tag = " (top-5)" if is_top5(r["paper_metric"]) else ""
        paper = "—" if r["paper"] is None else f"{r['paper']:.2f}{tag}"
        diff = "—" if r["diff"] is None else f"{r['diff']:+.2f}"
        macs = "—" if r["macs"] is None else f"{_num(r['macs'])} @{r['macs_input']}"
        cells = [r["model"], r["dataset"], r["recipe"], _num(r["params"]), macs, _ours(r, tag), r["n_runs"], paper,
                 diff, r["verdict"], r["epochs"], _wall(r), r["hardware"], f"`{r['command']}`"]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if not rows:
        lines.append("| " + " | ".join(["(no finished runs)"] + [""] * (len(head) - 1)) + " |")
    return lines


def _copy_table(copy: Copy, rows: Sequence[dict[str, Any]]) -> list[str]:
    """The side-by-side of the families on one copy of a dataset: its own heading, note and columns."""
    source = copy.source.upper().replace("CIFAR", "CIFAR-")
    head = ["Model", "Recipe", "Params", "MACs", "Ours (top-1 %)", "Seeds", f"Paper on {source} (top-1 %)", "Δ",
            "Verdict", "Epochs", "Wall time / seed", "Hardware", "Command"]
    lines = [f"#### {copy.title}", "", copy.note, "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        tag = " (top-5)" if is_top5(r["paper_metric"]) else ""
        paper = "—" if r["paper"] is None else f"{r['paper']:.2f}{tag}"
        diff = "—" if r["diff"] is None else f"{r['diff']:+.2f}"
        macs = "—" if r["macs"] is None else f"{_num(r['macs'])} @{r['macs_input']}"
        cells = [r["model"], r["recipe"], _num(r["params"]), macs, _ours(r, tag), f"{r['n_runs']} ({r['seeds']})",
                 paper, diff, r["verdict"], r["epochs"], _wall(r), r["hardware"], f"`{r['command']}`"]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def to_markdown(rows: Sequence[dict[str, Any]], pending: Sequence[dict[str, Any]] = ()) -> str:
    """Renders the report rows as Markdown tables: one for the datasets themselves, one per copy of a
    dataset (:data:`COPIES`) with runs, then the presets still to run."""
    main_rows = [r for r in rows if r["dataset"] not in COPIES]
    out = ""
    if main_rows or len(main_rows) == len(rows):
        out = "\n".join(_main_table(main_rows)) + "\n"
        out += ("\nOurs: test top-1 accuracy on the best validation checkpoint (top-5 where the paper gives only "
                "top-5), mean ± sample std over seeds "
                f"(n runs). Verdict: within noise when |Δ| ≤ max(2 std, {NOISE_FLOOR}) points. Params and MACs "
                "of the trained network, MACs at its training input (C x H x W).\n")
    resumed = any(r["wall_seconds"] is not None and r.get("wall_resumed_runs") for r in rows)
    for label, copy in COPIES.items():
        copy_rows = [r for r in rows if r["dataset"] == label]
        if copy_rows:
            out += ("\n" if out else "") + "\n".join(_copy_table(copy, copy_rows)) + "\n"
    if resumed:
        out += ("\nWall time: the fit of one seed (validation included), mean over the seeds; ≥: a seed was "
                "resumed and counts only the segment that finished.\n")
    if pending:
        out += "\nNot measured yet: these presets carry no number until a run is made.\n\n"
        out += "| Experiment | Model | Dataset | Paper (top-1 %) | Epochs | Needs | Command |\n"
        out += "|---|---|---|---|---|---|---|\n"
        for p in pending:
            paper = "—" if p["paper"] is None else f"{p['paper']:.2f}" + (" (top-5)" if is_top5(p["paper_metric"]) else "")
            if p["paper"] is not None and p["dataset"] in COPIES:
                paper += f" (on {COPIES[p['dataset']].source})"
            cells = [p["experiment"], p["model"], p["dataset"], paper, p["epochs"] if p["epochs"] is not None else "—",
                     p["needs"], f"`{p['command']}`"]
            out += "| " + " | ".join(_cell(c) for c in cells) + " |\n"
    return out


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Writes the report rows with the columns of :data:`CSV_COLUMNS`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else r[k]) for k in CSV_COLUMNS})
    return path


def _val_curve(run_dir: Path) -> tuple[list[float], list[float]]:
    """Returns (epochs, val/acc in %) from the run's CSV logs (every ``csv/**/metrics.csv``)."""
    points: dict[float, float] = {}
    for f in sorted(run_dir.glob("csv/**/metrics.csv")):
        with f.open(newline="") as fh:
            for row in csv.DictReader(fh):
                acc, epoch = row.get("val/acc"), row.get("epoch")
                if acc and epoch:
                    points[float(epoch)] = 100.0 * float(acc)
    xs = sorted(points)
    return xs, [points[x] for x in xs]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _save(fig: Any, path: Path) -> Path:
    """Writes a matplotlib figure as a 100-dpi PNG and frees it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_plots(groups: Sequence[Group], rows: Sequence[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Draws validation-accuracy curves (one PNG per group, one line per run) and accuracy against
    parameters and against MACs, and removes the curves of groups that are gone. Skipped with a warning
    when matplotlib is missing.

    Returns:
        The files written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed; no plots (pip install matplotlib)")
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for g in groups:
        curves = [(r, *_val_curve(r.path)) for r in g.runs]
        curves = [c for c in curves if c[1]]
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for run, xs, ys in curves:
            ax.plot(xs, ys, marker="o", ms=3, label=f"seed {run.results.get('seed')}")
        ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title=f"{g.model} / {g.dataset} / {g.recipe}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        written.append(_save(fig, out_dir / f"val_acc_{_slug(g.model)}_{_slug(g.dataset)}_{_slug(g.recipe)}.png"))
    for key, label in (("params", "parameters"), ("macs", "MACs (training input)")):
        pts = [r for r in rows if r.get(key)]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for dataset in sorted({r["dataset"] for r in pts}):
            sel = [r for r in pts if r["dataset"] == dataset]
            ax.errorbar([r[key] for r in sel], [r["ours_mean"] for r in sel],
                        yerr=[r["ours_std"] or 0.0 for r in sel], fmt="o", capsize=3, label=dataset)
            for r in sel:
                ax.annotate(r["model"], (r[key], r["ours_mean"]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        ax.set_xscale("log")
        ax.set(xlabel=label, ylabel="test accuracy (%)", title=f"accuracy vs {label}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        written.append(_save(fig, out_dir / f"acc_vs_{key}.png"))
    # Curves of groups that no longer exist (a recipe split and merged again, a run removed) go: the folder
    # shows the runs as they are.
    for stale in sorted(set(out_dir.glob("val_acc_*.png")) - set(written)):
        stale.unlink()
        log.info("removed %s: no such group of runs any more", stale)
    return written


def update_readme(readme: str | Path, table: str) -> None:
    """Puts ``table`` into ``readme`` between the ``<!-- results:start -->`` / ``<!-- results:end -->``
    markers, or in place of a line reading ``RESULTS_TABLE``; the markers are kept for the next run.

    Raises:
        ValueError: when the README has neither the markers nor the placeholder.
    """
    readme = Path(readme)
    text = readme.read_text()
    block = f"{README_START}\n<!-- generated by `python -m zoo.report`; do not edit by hand -->\n\n" \
            f"{table.rstrip()}\n\n{README_END}"
    if README_START in text and README_END in text:
        start = text.index(README_START)
        end = text.index(README_END, start) + len(README_END)
        text = text[:start] + block + text[end:]
    elif re.search(rf"^{README_PLACEHOLDER}$", text, flags=re.M):
        text = re.sub(rf"^{README_PLACEHOLDER}$", lambda _: block, text, count=1, flags=re.M)
    else:
        raise ValueError(f"{readme}: no '{README_START}' ... '{README_END}' block and no "
                         f"'{README_PLACEHOLDER}' line to replace")
    readme.write_text(text)


def _default_configs() -> Path:
    from zoo.configs import config_dir

    return config_dir()


def write_report(dirs: Sequence[str | Path], out: str | Path, configs_dir: str | Path | None = None,
                 plots: bool = True) -> dict[str, Any]:
    """Collects the runs below ``dirs`` and writes ``results.md``, ``results.csv`` and ``plots/`` in ``out``.

    Returns:
        ``{"rows", "pending", "markdown", "files"}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(find_runs(dirs))
    configs_dir = configs_dir if configs_dir is not None else _default_configs()
    presets = read_presets(configs_dir)
    rows = report_rows(groups, presets)
    pending = pending_presets(configs_dir, groups, presets)
    md = to_markdown(rows, pending)
    (out / "results.md").write_text(md)
    files = [out / "results.md", write_csv(rows, out / "results.csv")]
    if plots:
        files += write_plots(groups, rows, out / "plots")
    log.info("%d runs in %d groups; %d presets not run", sum(len(g.runs) for g in groups), len(rows), len(pending))
    return {"rows": rows, "pending": pending, "markdown": md, "files": files}


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m zoo.report <dir>... [--out DIR] [--readme README.md]``."""
    parser = argparse.ArgumentParser(prog="python -m zoo.report", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="folders searched for results.json")
    parser.add_argument("--out", default=None, help="output folder (default: <first dir>/report)")
    parser.add_argument("--readme", default=None, help="README to update between the results markers")
    parser.add_argument("--configs", default=None, help="configs folder with experiment/ (default: the project's)")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out) if args.out else Path(args.dirs[0]) / "report"
    result = write_report(args.dirs, out, args.configs, plots=not args.no_plots)
    if args.readme:
        update_readme(args.readme, result["markdown"])
        print(f"updated {args.readme}")
    for f in result["files"]:
        print(f"wrote {f}")


if __name__ == "__main__":
    main()
