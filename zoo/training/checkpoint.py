"""Checkpoint I/O that never leaves a half-written file, and that explains an unreadable one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

__all__ = ["AtomicCheckpointIO", "CheckpointError", "atomic_write_text"]


class CheckpointError(RuntimeError):
    """Raised for a checkpoint file that is missing, truncated or not a Lightning checkpoint."""


def _atomic_replace(path: Path, write: Callable[[Any], None], mode: str) -> None:
    """Writes through ``write(f)`` into a temporary file beside ``path``, then renames it over ``path``.

    The rename is atomic on POSIX file systems, so a crash leaves either the old
    file or the new one, never a partial file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (temporary file + rename)."""
    _atomic_replace(Path(path), lambda f: f.write(text), "w")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` that writes to a temporary file and renames it into place.

    Loading a file that is truncated, corrupt or not a checkpoint raises
    :class:`CheckpointError` naming the file and what to do, instead of a bare
    unpickling error.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        _atomic_replace(Path(path), lambda f: torch.save(checkpoint, f), "wb")

    def load_checkpoint(self, path: Any, map_location: Optional[Callable] = lambda storage, loc: storage,
                        weights_only: Optional[bool] = None) -> dict[str, Any]:
        return load_checkpoint_file(path, map_location=map_location, weights_only=weights_only, io=self)


def load_checkpoint_file(path: Any, map_location: Any = "cpu", weights_only: Optional[bool] = None,
                         io: TorchCheckpointIO | None = None) -> dict[str, Any]:
    """Loads a Lightning checkpoint, with a clear error for a missing or unreadable file.

    Args:
        path: the ``.ckpt`` file.
        map_location: as for ``torch.load``.
        weights_only: as for ``torch.load`` (Lightning checkpoints hold more than tensors).

    Returns:
        The checkpoint dictionary.

    Raises:
        CheckpointError: if the file is missing, unreadable, or lacks ``state_dict``.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist; pass ckpt_path=<file> or ckpt_path=last")
    try:
        if io is not None:
            ckpt = TorchCheckpointIO.load_checkpoint(io, p, map_location=map_location, weights_only=weights_only)
        else:
            ckpt = torch.load(p, map_location=map_location, weights_only=bool(weights_only))
    except Exception as e:
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"checkpoint {p} ({p.stat().st_size} bytes) is unreadable ({type(e).__name__}: {reason}). "
            f"It is truncated or not a checkpoint written by this project. Resume from another file in "
            f"{p.parent} (best-*.ckpt or last.ckpt), or start afresh without ckpt_path."
        ) from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{p} is a readable file but not a Lightning checkpoint (no 'state_dict' key)")
    return ckpt
