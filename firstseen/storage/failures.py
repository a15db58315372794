"""The ledger of files that failed to ingest: retried on later runs up to a limit, then
quarantined with their reason until the file changes or an operator releases them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, Text, delete, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Mapped, mapped_column

from firstseen.storage.sql import SqlDatabase
from firstseen.storage.sql import chunks as _chunks
from firstseen.storage.sql import utc as _utc
from firstseen.storage.tables import Base


class FailureRow(Base):
    __tablename__ = "ingest_failures"

    path: Mapped[str] = mapped_column(Text, primary_key=True)
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    file_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    first_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_run_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_runs.run_id", ondelete="SET NULL"))
    quarantined_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True, slots=True)
class FailureRecord:
    path: str
    file_stat: tuple[int, int] | None  # (size, mtime_ns) when it last failed; None if unreadable
    attempts: int
    reason: str
    first_failed_at: datetime
    last_failed_at: datetime
    last_run_id: int | None
    quarantined_at: datetime | None

    @property
    def quarantined(self) -> bool:
        return self.quarantined_at is not None

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "attempts": self.attempts,
            "reason": self.reason,
            "first_failed_at": self.first_failed_at.isoformat(),
            "last_failed_at": self.last_failed_at.isoformat(),
            "last_run_id": self.last_run_id,
            "quarantined_at": self.quarantined_at.isoformat() if self.quarantined_at else None,
        }


def _record(row: FailureRow) -> FailureRecord:
    stat = None if row.file_size is None else (int(row.file_size), int(row.file_mtime_ns or 0))
    return FailureRecord(
        row.path,
        stat,
        row.attempts,
        row.reason,
        _utc(row.first_failed_at),
        _utc(row.last_failed_at),
        row.last_run_id,
        _utc(row.quarantined_at),
    )


class SqlFailureLedger:
    """Per-file failure counts in the catalog database, keyed by the file's absolute path."""

    def __init__(self, catalog: SqlDatabase, max_attempts: int):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.catalog, self.max_attempts = catalog, max_attempts

    def all(self) -> dict[str, FailureRecord]:
        with self.catalog.session() as s:
            return {row.path: _record(row) for row in s.scalars(select(FailureRow).order_by(FailureRow.path))}

    def quarantined(self) -> list[FailureRecord]:
        return [r for r in self.all().values() if r.quarantined]

    def record(self, path: str, file_stat: tuple[int, int] | None, reason: str, run_id: int | None) -> FailureRecord:
        """Count one more failure; the attempt that reaches the limit quarantines the file.

        A file whose size or mtime changed since its last failure is a new file (re-exported,
        re-uploaded) and starts again from one attempt."""
        now = datetime.now(UTC)
        with self.catalog.session(write=True) as s:
            row = s.get(FailureRow, path)
            size, mtime_ns = file_stat if file_stat else (None, None)
            if row is None or (row.file_size, row.file_mtime_ns) != (size, mtime_ns) and file_stat is not None:
                if row is None:
                    row = FailureRow(path=path, first_failed_at=now)
                    s.add(row)
                row.attempts, row.first_failed_at, row.quarantined_at = 0, now, None
            row.attempts += 1
            row.file_size, row.file_mtime_ns = size, mtime_ns
            row.reason, row.last_failed_at, row.last_run_id = reason, now, run_id
            if row.attempts >= self.max_attempts and row.quarantined_at is None:
                row.quarantined_at = now
            s.flush()
            return _record(row)

    def clear(self, paths: list[str]) -> None:
        """Forget files that have now been ingested."""
        with self.catalog.session(write=True) as s:
            for chunk in _chunks(paths):
                s.execute(delete(FailureRow).where(FailureRow.path.in_(chunk)))

    def release(self, paths: list[str] | None = None) -> int:
        """Take files (all when paths is None) out of quarantine, for one more full set of tries."""
        with self.catalog.session(write=True) as s:
            query = update(FailureRow).where(FailureRow.quarantined_at.is_not(None))
            if paths is not None:
                query = query.where(FailureRow.path.in_(paths))
            released = cast(CursorResult, s.execute(query.values(quarantined_at=None, attempts=0)))
            return released.rowcount


def is_still_quarantined(record: FailureRecord | None, file_stat: tuple[int, int] | None) -> bool:
    """A quarantined file stays out until it changes on disk."""
    if record is None or not record.quarantined:
        return False
    return file_stat is None or record.file_stat == file_stat
