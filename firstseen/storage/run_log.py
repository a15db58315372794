"""The run log in SQL: one row per ingest run, its counts and errors, and runs a killed process left "running"."""

from __future__ import annotations

import json
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult

from firstseen.records import RunRecord, check_run_outcome
from firstseen.storage.sql import SqlDatabase, now, to_json, utc
from firstseen.storage.tables import IngestRunRow


def _run_record(row: IngestRunRow) -> RunRecord:
    return RunRecord(
        run_id=row.run_id, started_at=utc(row.started_at), finished_at=utc(row.finished_at),
        status=row.status, added=row.added, skipped=row.skipped, failed=row.failed,
        footage_s=float(row.footage_s), frames=row.frames,
        errors=json.loads(row.errors), params=json.loads(row.params), quarantined=row.quarantined or 0,
    )  # fmt: skip


class SqlRunLog:
    """RunLog (protocols.py) on the catalog's database."""

    def __init__(self, db: SqlDatabase):
        self.db = db

    def start_run(self, params: dict[str, Any]) -> int:
        with self.db.session(write=True) as s:
            row = IngestRunRow(
                started_at=now(), finished_at=None, status="running", added=0, skipped=0, failed=0,
                footage_s=0.0, frames=0, errors="[]", params=to_json(params), quarantined=0,
            )  # fmt: skip
            s.add(row)
            s.flush()
            return row.run_id

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        added: int,
        skipped: int,
        failed: int,
        footage_s: float,
        frames: int,
        errors: list[dict[str, Any]],
        quarantined: int = 0,
    ) -> None:
        check_run_outcome(status)
        with self.db.session(write=True) as s:
            row = s.get(IngestRunRow, run_id)
            if row is None:
                raise KeyError(f"no ingest run {run_id}")
            row.status, row.finished_at = status, now()
            row.added, row.skipped, row.failed = int(added), int(skipped), int(failed)
            row.footage_s, row.frames, row.errors = float(footage_s), int(frames), to_json(list(errors))
            row.quarantined = int(quarantined)

    def runs(self, limit: int = 10) -> list[RunRecord]:
        """The newest runs first."""
        with self.db.session() as s:
            rows = s.scalars(select(IngestRunRow).order_by(IngestRunRow.run_id.desc()).limit(limit))
            return [_run_record(row) for row in rows]

    def mark_stale_runs_crashed(self) -> int:
        """Runs still "running" were left by a killed process (the caller holds the writer lock).

        Their finished_at stays empty: when they died is not known."""
        with self.db.session(write=True) as s:
            query = update(IngestRunRow).where(IngestRunRow.status == "running").values(status="crashed")
            return cast(CursorResult, s.execute(query)).rowcount

    def last(self) -> RunRecord | None:
        runs = self.runs(limit=1)
        return runs[0] if runs else None
