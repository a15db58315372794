"""The writer's lock on a data directory: one writer at a time (ingest, reindex, takedown, restore)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from firstseen.datadir import DataDir
from firstseen.errors import ArchiveLockedError


class DataDirLock:
    """An exclusive flock on the data directory. The kernel drops it when the process dies,
    so a crashed ingest never leaves a stale lock behind."""

    def __init__(self, data_dir: Path | DataDir):
        self.path = (data_dir if isinstance(data_dir, DataDir) else DataDir(data_dir)).lock
        self._fd: int | None = None

    def acquire(self, wait_s: float = 0.0) -> None:
        """Take the lock, waiting up to wait_s for another writer to finish."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(min(0.5, max(0.01, deadline - time.monotonic())))
                    continue
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise ArchiveLockedError(
                    f"another writer (pid {holder}) is using the archive in {self.path.parent}; wait for it to finish"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
