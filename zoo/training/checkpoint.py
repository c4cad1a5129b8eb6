"""Checkpoint I/O that never leaves a half-written file, loads weights only, and explains an unreadable file.

* Writes go to a temporary file beside the target (``.<name>.<random>.tmp``), are
  flushed to disk, get the usual permissions (``0o666`` less the umask, as
  ``open()`` would give), and are renamed over the target: a crash leaves either
  the old file or the new one. :func:`remove_stale_temporaries` deletes what a
  killed save left behind.
* Every load is ``torch.load(..., weights_only=True)``: tensors, numbers, strings
  and containers only, so a planted pickle cannot run code. A path is always a
  local path (never taken for a URL).
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from zoo._atomic import TEMP_GLOB, atomic_write
from zoo.trained import CheckpointError, load_checkpoint_file

__all__ = [
    "AtomicCheckpointIO",
    "CheckpointError",
    "atomic_write_text",
    "load_checkpoint_file",
    "remove_stale_temporaries",
]

log = logging.getLogger(__name__)


def _atomic_replace(path: Path, write: Callable[[Any], None], mode: str) -> None:
    """Writes through ``write(f)`` atomically (:func:`zoo._atomic.atomic_write`).

    Raises:
        CheckpointError: if the file cannot be written (a full disk, no permission); the
            previous file at ``path`` is left as it was.
    """
    try:
        atomic_write(path, write, mode)
    except OSError as e:
        raise _write_error(path, e) from e


def _write_error(path: Path, e: OSError) -> CheckpointError:
    reason = os.strerror(e.errno) if e.errno else str(e)
    hint = f"free space on the disk that holds {path.parent}" if e.errno in (errno.ENOSPC, errno.EDQUOT) \
        else f"check that {path.parent} is writable"
    kept = f"the previous {path.name} is intact; " if path.exists() else ""
    return CheckpointError(
        f"could not write {path}: {reason} ({type(e).__name__}, errno {e.errno}). Nothing was replaced: "
        f"{kept}{hint}, then resume with ckpt_path=last.")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (temporary file + rename)."""
    _atomic_replace(Path(path), lambda f: f.write(text), "w")


def remove_stale_temporaries(*folders: str | os.PathLike) -> list[Path]:
    """Deletes the temporary files that an interrupted atomic save left in ``folders``.

    Returns:
        The files removed.
    """
    removed = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for tmp in sorted(folder.glob(TEMP_GLOB)):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
                log.info("removed %s, left by an interrupted save", tmp)
    return removed


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` that writes to a temporary file and renames it into place, and loads weights only.

    Loading a file that is truncated, corrupt, unsafe or not a checkpoint raises
    :class:`CheckpointError` naming the file and what to do, instead of a bare
    unpickling error.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        _atomic_replace(Path(path), lambda f: torch.save(checkpoint, f), "wb")

    def load_checkpoint(self, path: Any, map_location: Optional[Callable] = lambda storage, loc: storage,
                        weights_only: Optional[bool] = None) -> dict[str, Any]:
        if weights_only is False:
            raise CheckpointError(f"{path}: this project loads checkpoints with weights_only=True only")
        return load_checkpoint_file(path, map_location=map_location)
