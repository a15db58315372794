"""The writer's lock on a data directory: one writer at a time (ingest, reindex, takedown, restore)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Any

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


class ArchiveAdvisoryLock:
    """A PostgreSQL advisory lock on the archive, for writers on other machines: the flock only
    covers one machine's processes. Its key comes from the server's own names for the database
    and schema, so every client names the same archive alike whatever host name it uses. The
    server drops it when the holder's connection dies."""

    def __init__(self, catalog_url: str):
        self.url = catalog_url
        self._engine: Any = None
        self._conn: Any = None

    def acquire(self, wait_s: float = 0.0) -> None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        engine = create_engine(self.url, poolclass=NullPool)
        conn = engine.connect()
        try:
            key = conn.execute(
                text(
                    "SELECT hashtextextended('firstseen:' || current_database() || ':' "
                    "|| coalesce(current_schema(), current_setting('search_path')), 0)"
                )
            ).scalar_one()
            deadline = time.monotonic() + wait_s
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one():
                if time.monotonic() >= deadline:
                    raise ArchiveLockedError(
                        "another writer (on this or another machine) is committing to this archive; "
                        "wait for it to finish"
                    )
                time.sleep(min(0.2, max(0.01, deadline - time.monotonic())))
            conn.commit()
        except BaseException:
            conn.close()
            engine.dispose()
            raise
        self._engine, self._conn, self._key = engine, conn, key

    def release(self) -> None:
        if self._conn is not None:
            from sqlalchemy import text

            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                self._conn.commit()
            finally:
                self._conn.close()
                self._engine.dispose()
                self._conn = self._engine = None


class WriterLock:
    """What a writer holds: the data directory's flock and, on a PostgreSQL catalog, the
    archive-wide advisory lock (ingest commits, reindex, backup, restore and takedown all take it)."""

    def __init__(self, data_dir: Path | DataDir, catalog_url: str):
        self._locks: list = [DataDirLock(data_dir)]
        if catalog_url.startswith("postgresql"):
            self._locks.append(ArchiveAdvisoryLock(catalog_url))
        self._held: list = []

    def acquire(self, wait_s: float = 0.0) -> None:
        deadline = time.monotonic() + wait_s
        try:
            for lock in self._locks:
                lock.acquire(wait_s=max(0.0, deadline - time.monotonic()))
                self._held.append(lock)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        while self._held:
            self._held.pop().release()
