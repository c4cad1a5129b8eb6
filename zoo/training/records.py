"""The records of a run folder: one segment per start or resume, nothing overwritten.

A run folder (Hydra's run directory, ``hydra.run.dir``) holds::

    .hydra/  .hydra-2/ ...      the config, Hydra config and overrides of each segment
    segments.json               one entry per segment: command, start, end, status, changes
    results.json                the final figures, with the segments list
    results-<k>.json            the results an earlier segment <k> wrote, kept when a later one resumes
    checkpoints/                best-epoch*.ckpt, last.ckpt
    csv/ (tensorboard/)         the metrics of each segment (version folders never overwritten)
    train.log                   appended by every segment

A segment is one process: the first start, or a resume with ``ckpt_path=last``. A segment
that was killed keeps ``"status": "running"`` in ``segments.json`` until the next one
starts and marks it ``"interrupted"``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

from zoo.training.checkpoint import atomic_write_text

__all__ = [
    "RunExistsError",
    "RunFolder",
    "config_changes",
    "flatten",
]

log = logging.getLogger("zoo.train")


class RunExistsError(RuntimeError):
    """Training into a folder that already holds a run, without ``ckpt_path=last`` or ``overwrite=true``."""


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Flattens nested dicts into ``{"a.b.c": value}``; lists stay values."""
    out: dict[str, Any] = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(flatten(v, key))
            else:
                out[key] = v
    else:
        out[prefix] = tree
    return out


def config_changes(old: dict[str, Any], new: dict[str, Any], ignore: Iterable[str] = ()) -> dict[str, tuple]:
    """The keys whose values differ between two resolved configs: ``{"optim.lr": (old, new), ...}``.

    Args:
        old: the config that wrote the checkpoint (plain containers).
        new: this run's config.
        ignore: key prefixes left out (``"paths"``, ``"logger"``, ...).
    """
    a, b = flatten(old), flatten(new)
    prefixes = tuple(ignore)
    changes = {}
    for key in sorted(set(a) | set(b)):
        if prefixes and any(key == p or key.startswith(p + ".") for p in prefixes):
            continue
        va, vb = a.get(key), b.get(key)
        if va != vb:
            changes[key] = (va, vb)
    return changes


class RunFolder:
    """The bookkeeping of one run folder.

    Args:
        path: the run folder (Hydra's ``runtime.output_dir``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.segments_file = self.path / "segments.json"
        self.results_file = self.path / "results.json"

    # -- state --------------------------------------------------------------------

    def checkpoint_files(self) -> list[Path]:
        return sorted(self.checkpoints.glob("*.ckpt")) if self.checkpoints.is_dir() else []

    def segments(self) -> list[dict[str, Any]]:
        if not self.segments_file.is_file():
            return []
        try:
            data = json.loads(self.segments_file.read_text())
        except (OSError, ValueError):
            return []
        return list(data.get("segments", [])) if isinstance(data, dict) else []

    def _write_segments(self, segments: list[dict[str, Any]]) -> None:
        atomic_write_text(self.segments_file, json.dumps({"segments": segments}, indent=2, default=str) + "\n")

    def results(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.results_file.read_text())
        except (OSError, ValueError):
            return None

    # -- checks ---------------------------------------------------------------------

    def check_fresh_start(self, overwrite: bool) -> None:
        """Refuses to start a new run where one already is, unless ``overwrite``; with it, clears the folder's
        earlier records (checkpoints, results, segments, logs and configs).

        Raises:
            RunExistsError: naming what the folder holds and the three ways on.
        """
        results, ckpts = self.results(), self.checkpoint_files()
        if results is None and not self.results_file.exists() and not ckpts:
            return
        if overwrite:
            self._clear()
            return
        if results is not None or self.results_file.exists():
            acc = (results or {}).get("test/acc")
            what = (f"finished results (results.json: status {(results or {}).get('status', 'completed')}, "
                    f"test/acc {acc})")
        else:
            what = f"checkpoints of an unfinished run ({', '.join(p.name for p in ckpts)})"
        raise RunExistsError(
            f"{self.path} already holds {what}. A new run would mix its records with them. Either:\n"
            f"  - resume that run: add ckpt_path=last (with the same settings, or a longer trainer.max_epochs);\n"
            f"  - replace it: add overwrite=true (its checkpoints, results and logs are deleted);\n"
            f"  - train into a new folder: drop hydra.run.dir=... (each run gets a fresh timestamped folder).")

    def _clear(self) -> None:
        removed = []
        for p in [*self.checkpoint_files(), self.results_file, self.segments_file,
                  *self.path.glob("results-*.json"), self.path / "model.safetensors"]:
            if p.is_file():
                p.unlink()
                removed.append(p.name)
        for d in [self.path / "csv", self.path / "tensorboard", *self.path.glob(".hydra*")]:
            if d.is_dir():
                shutil.rmtree(d)
                removed.append(d.name + "/")
        log.warning("overwrite=true: removed the earlier run's records from %s: %s", self.path, ", ".join(removed))

    # -- segments -------------------------------------------------------------------

    def begin_segment(self, command: str, resumed_from: str | None, start_epoch: int, start_step: int,
                      changes: dict[str, Any], cfg: DictConfig, hydra_cfg: DictConfig | None,
                      overrides: list[str]) -> dict[str, Any]:
        """Starts a segment: marks killed ones ``interrupted``, keeps an earlier ``results.json`` as
        ``results-<k>.json``, writes this segment's config folder and appends it to ``segments.json``.

        Returns:
            The new segment's entry.
        """
        segments = self.segments()
        for seg in segments:
            if seg.get("status") == "running":
                seg["status"] = "interrupted"
        index = len(segments) + 1
        if self.results_file.is_file():
            prev = self.results()
            k = int((prev or {}).get("segment") or max(1, index - 1))
            keep = self.path / f"results-{k}.json"
            while keep.exists():
                k += 1
                keep = self.path / f"results-{k}.json"
            self.results_file.rename(keep)
            log.info("kept the earlier results as %s", keep.name)
        config_dir = self._config_dir(index)
        self._write_config(config_dir, cfg, hydra_cfg, overrides)
        seg = {"index": index, "status": "running", "started": _now(), "ended": None, "command": command,
               "config": f"{config_dir.name}/config.yaml", "resumed_from": resumed_from,
               "start_epoch": start_epoch, "start_step": start_step, "changes": changes}
        segments.append(seg)
        self._write_segments(segments)
        return seg

    def end_segment(self, seg: dict[str, Any], status: str, epochs: int, steps: int) -> list[dict[str, Any]]:
        """Closes the segment with its status and where it stopped; returns all segments."""
        segments = self.segments()
        for s in segments:
            if s.get("index") == seg["index"]:
                s.update(status=status, ended=_now(), end_epoch=epochs, end_step=steps)
        self._write_segments(segments)
        return segments

    def _config_dir(self, index: int) -> Path:
        name = ".hydra" if index == 1 else f".hydra-{index}"
        d = self.path / name
        while (d / "config.yaml").exists():  # never overwrite an earlier segment's record
            index += 1
            d = self.path / f".hydra-{index}"
        return d

    @staticmethod
    def _write_config(d: Path, cfg: DictConfig, hydra_cfg: DictConfig | None, overrides: list[str]) -> None:
        atomic_write_text(d / "config.yaml", OmegaConf.to_yaml(cfg))
        if hydra_cfg is not None:
            atomic_write_text(d / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})))
        atomic_write_text(d / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(overrides))))

    def latest_config_dir(self) -> Path | None:
        dirs = [d for d in self.path.glob(".hydra*") if (d / "config.yaml").is_file()]
        if not dirs:
            return None
        return max(dirs, key=lambda d: int(d.name.split("-")[1]) if "-" in d.name else 1)
