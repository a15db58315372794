"""Atomic file writes: a reader sees the old file or the new one, never a torn one, even after SIGKILL or power loss."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes | memoryview | Callable[[BinaryIO], None]) -> None:
    """Write to a temporary file, fsync, rename over the target, fsync the folder: a reader
    sees the old file or the new one, never a torn one, even after SIGKILL or power loss.
    data may be a function that writes into the open file, so large content is streamed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            data(fh) if callable(data) else fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
