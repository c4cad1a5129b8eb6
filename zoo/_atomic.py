"""Atomic file writes: a temporary file beside the target, flushed to disk, then renamed over it.

A crash leaves either the old file or the new one, never a partial file. The new file gets the
usual permissions (``0o666`` less the umask, as ``open()`` would give). Temporary files are named
``.<name>.<random>.tmp`` (:data:`TEMP_GLOB`), so what a killed write left behind can be found.

This module imports nothing from the package: checkpoints, weight files, run records and data
caches all write through :func:`atomic_write`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["TEMP_GLOB", "atomic_write"]

#: glob of the temporary files :func:`atomic_write` makes.
TEMP_GLOB = ".*.tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], None], mode: str = "wb") -> None:
    """Writes through ``write(f)`` into a temporary file beside ``path``, then renames it over ``path``.

    Args:
        path: the file to write; its folder is created if needed.
        write: writes the contents to the open file object it is given.
        mode: ``"wb"`` (bytes) or ``"w"`` (text).

    Raises:
        OSError: if the file cannot be written (a full disk, no permission); the previous
            file at ``path`` is left as it was and the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
