"""The shared ingest's job ledger: files queued once, claimed by one process at a time, committed once.

Every ingest process enqueues what it was given (a file already queued is not queued again),
then claims a few jobs at a time: on PostgreSQL with FOR UPDATE SKIP LOCKED, so processes on
any number of machines never wait on each other's claims. A claim carries a fresh token and a
lease; a process that dies stops renewing, its lease runs out and another takes the job again
(the work is redone). A commit names its token: once a job was taken again, the old claim can
no longer finish it, so a video is never committed twice. SQLite runs the same statements
without SKIP LOCKED (it has one writer at a time anyway); the memory twin is for tests."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import func, insert, select, update

from firstseen.errors import FirstSeenError
from firstseen.storage.sql import SqlDatabase
from firstseen.storage.tables import IngestJobRow, VideoRow


class StaleClaimError(FirstSeenError):
    """The claim ran out and the job was taken again (or finished) by another process."""

    code = "stale_claim"


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed file: what to ingest (the manifest item as JSON) and the claim's token."""

    job_id: int
    path: str
    item: dict
    token: str
    claims: int


@dataclass(frozen=True, slots=True)
class JobCounts:
    queued: int = 0
    claimed: int = 0
    committed: int = 0
    failed: int = 0


class JobLedger(Protocol):
    def enqueue(self, jobs: list[tuple[str, str, dict]]) -> int: ...
    def claim(self, worker: str, count: int, lease_s: float) -> list[Job]: ...
    def renew(self, job: Job, lease_s: float) -> None: ...
    def finish(self, job: Job, *, status: str, video_id: str | None = None, reason: str | None = None) -> None: ...
    def counts(self) -> JobCounts: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _check_status(status: str) -> None:
    if status not in ("committed", "failed", "queued"):
        raise ValueError(f"a job finishes as committed, failed or queued again, not {status!r}")


class SqlJobLedger:
    """The ledger in the catalog's own database (table ingest_jobs, migration 0005)."""

    def __init__(self, database: SqlDatabase):
        self._db = database
        self._skip_locked = database.engine.dialect.name == "postgresql"
        self._owned = False

    @classmethod
    def open(cls, catalog_url: str) -> SqlJobLedger:
        """A ledger over its own connection to the catalog (migrated to the newest schema)."""
        from firstseen.storage.catalog import SqlCatalog

        ledger = cls(SqlCatalog.open(catalog_url))
        ledger._owned = True
        return ledger

    def archived_as(self, sha256: str) -> str | None:
        """The committed video with these bytes, if any: a claimed file already archived is done."""
        with self._db.session() as s:
            return s.execute(
                select(VideoRow.video_id).where(VideoRow.sha256 == sha256, VideoRow.status == "committed")
            ).scalar_one_or_none()

    def failure_ledger(self, max_attempts: int):
        """The catalog's failure ledger (retries and quarantine), as a single-process run keeps it."""
        from firstseen.storage.failures import SqlFailureLedger

        return SqlFailureLedger(self._db, max_attempts)

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def enqueue(self, jobs: list[tuple[str, str, dict]]) -> int:
        """Queue (job_key, path, item) unless that key is queued already; a failed job given
        again is queued again (the failure ledger decides whether it may be retried at all).
        Returns how many were queued now."""
        queued = 0
        now = _now()
        with self._db.session(write=True) as s:
            known = {
                key: status
                for key, status in s.execute(
                    select(IngestJobRow.job_key, IngestJobRow.status).where(
                        IngestJobRow.job_key.in_([k for k, _, _ in jobs])
                    )
                )
            }
            for key, path, item in jobs:
                if key not in known:
                    s.execute(insert(IngestJobRow).values(
                        job_key=key, path=path, item=json.dumps(item, default=str), status="queued",
                        claims=0, updated_at=now,
                    ))  # fmt: skip
                    known[key] = "queued"
                    queued += 1
                elif known[key] == "failed":
                    s.execute(update(IngestJobRow).where(IngestJobRow.job_key == key).values(
                        status="queued", token=None, lease_until=None, updated_at=now
                    ))  # fmt: skip
                    known[key] = "queued"
                    queued += 1
        return queued

    def claim(self, worker: str, count: int, lease_s: float) -> list[Job]:
        """Up to count jobs that are queued, or claimed under a lease that ran out."""
        now = _now()
        claimable = (
            select(IngestJobRow.job_id)
            .where(
                (IngestJobRow.status == "queued")
                | ((IngestJobRow.status == "claimed") & (IngestJobRow.lease_until < now))
            )
            .order_by(IngestJobRow.job_id)
            .limit(count)
        )
        if self._skip_locked:
            claimable = claimable.with_for_update(skip_locked=True)
        jobs = []
        with self._db.session(write=True) as s:
            for (job_id,) in s.execute(claimable).all():
                token = str(uuid.uuid4())
                row = s.execute(
                    update(IngestJobRow)
                    .where(IngestJobRow.job_id == job_id)
                    .values(status="claimed", token=token, worker=worker, updated_at=now,
                            lease_until=now + timedelta(seconds=lease_s), claims=IngestJobRow.claims + 1)
                    .returning(IngestJobRow.path, IngestJobRow.item, IngestJobRow.claims)
                ).one()  # fmt: skip
                jobs.append(Job(job_id, row.path, json.loads(row.item), token, row.claims))
        return jobs

    def _mine(self, job: Job):
        return (
            (IngestJobRow.job_id == job.job_id) & (IngestJobRow.token == job.token) & (IngestJobRow.status == "claimed")
        )

    def renew(self, job: Job, lease_s: float) -> None:
        with self._db.session(write=True) as s:
            done = s.execute(
                update(IngestJobRow).where(self._mine(job)).values(
                    lease_until=_now() + timedelta(seconds=lease_s), updated_at=_now()
                )
            )  # fmt: skip
        if getattr(done, "rowcount", 0) != 1:
            raise StaleClaimError(f"job {job.job_id} ({job.path}) is no longer this process's claim")

    def finish(self, job: Job, *, status: str, video_id: str | None = None, reason: str | None = None) -> None:
        """End a claim: committed (with the video it became), failed, or queued again."""
        _check_status(status)
        with self._db.session(write=True) as s:
            done = s.execute(
                update(IngestJobRow).where(self._mine(job)).values(
                    status=status, video_id=video_id, reason=reason, lease_until=None, updated_at=_now()
                )
            )  # fmt: skip
        if getattr(done, "rowcount", 0) != 1:
            raise StaleClaimError(f"job {job.job_id} ({job.path}) is no longer this process's claim")

    def counts(self) -> JobCounts:
        with self._db.session() as s:
            rows = s.execute(select(IngestJobRow.status, func.count()).group_by(IngestJobRow.status)).all()
        return JobCounts(**{status: int(n) for status, n in rows})


class MemoryJobLedger:
    """The ledger's in-memory twin: the same rules, one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, dict] = {}
        self._next = 1

    def enqueue(self, jobs: list[tuple[str, str, dict]]) -> int:
        queued = 0
        with self._lock:
            for key, path, item in jobs:
                row = self._rows.get(key)
                if row is None:
                    plain = json.loads(json.dumps(item, default=str))  # as the SQL ledger gives it back
                    self._rows[key] = {"job_id": self._next, "path": path, "item": plain, "status": "queued",
                                       "token": None, "lease_until": None, "claims": 0}  # fmt: skip
                    self._next += 1
                    queued += 1
                elif row["status"] == "failed":
                    row.update(status="queued", token=None, lease_until=None)
                    queued += 1
        return queued

    def claim(self, worker: str, count: int, lease_s: float) -> list[Job]:
        now, jobs = _now(), list[Job]()
        with self._lock:
            for row in sorted(self._rows.values(), key=lambda r: r["job_id"]):
                if len(jobs) >= count:
                    break
                if row["status"] == "queued" or row["status"] == "claimed" and row["lease_until"] < now:
                    row.update(status="claimed", token=str(uuid.uuid4()), claims=row["claims"] + 1,
                               lease_until=now + timedelta(seconds=lease_s))  # fmt: skip
                    jobs.append(Job(row["job_id"], row["path"], row["item"], row["token"], row["claims"]))
        return jobs

    def _row(self, job: Job) -> dict:
        for row in self._rows.values():
            if row["job_id"] == job.job_id and row["token"] == job.token and row["status"] == "claimed":
                return row
        raise StaleClaimError(f"job {job.job_id} ({job.path}) is no longer this process's claim")

    def renew(self, job: Job, lease_s: float) -> None:
        with self._lock:
            self._row(job)["lease_until"] = _now() + timedelta(seconds=lease_s)

    def finish(self, job: Job, *, status: str, video_id: str | None = None, reason: str | None = None) -> None:
        _check_status(status)
        with self._lock:
            self._row(job).update(status=status, video_id=video_id, reason=reason, lease_until=None)

    def counts(self) -> JobCounts:
        with self._lock:
            counts: dict[str, int] = {}
            for row in self._rows.values():
                counts[row["status"]] = counts.get(row["status"], 0) + 1
        return replace(JobCounts(), **counts)
