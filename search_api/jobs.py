"""Ingest jobs sent over HTTP: queued, run one at a time on a worker thread, their state kept
as JSON files in the data directory so a restarted server reports them and finishes them."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from firstseen.datadir import DataDir
from firstseen.errors import BadInputError, FirstSeenError
from firstseen.ingest.manifest import parse_manifest_text
from firstseen.ingest.run import ingest_inputs
from firstseen.storage.atomic import atomic_write_bytes
from search_api.settings import ApiSettings

log = logging.getLogger("search_api")

MAX_LINES = 10_000
_SAVE_EVERY_S = 1.0  # progress is written at most this often; state changes always


def _now() -> str:
    return datetime.now(UTC).isoformat()


class JobProgress:
    """The ingest Progress protocol, recorded into a job's state."""

    def __init__(self, jobs: IngestJobs, job: dict):
        self._jobs, self._job = jobs, job
        self._last_save = 0.0

    def _update(self, force: bool = False, **progress: float) -> None:
        with self._jobs.lock:
            self._job["progress"].update(progress)
        if force or time.monotonic() - self._last_save >= _SAVE_EVERY_S:
            self._last_save = time.monotonic()
            self._jobs.save(self._job)

    def start(self, videos: int) -> None:
        self._update(force=True, videos_total=videos)

    def footage_total(self, seconds: float) -> None:
        self._update(force=True, footage_s_total=round(seconds, 2))

    def advance_footage(self, seconds: float) -> None:
        done = self._job["progress"].get("footage_s_done", 0.0) + max(0.0, seconds)
        self._update(footage_s_done=round(done, 2))

    def video_done(self, name: str, status: str, detail: str, footage_s: float) -> None:
        with self._jobs.lock:
            self._job["progress"]["videos_done"] = self._job["progress"].get("videos_done", 0) + 1
            self._job["videos"].append({"path": name, "status": status, "detail": detail})
        self._update(force=status == "failed")

    def close(self) -> None:
        pass


class IngestJobs:
    """The job queue. submit() returns at once; one worker thread runs jobs in order, since
    the archive takes one writer at a time anyway."""

    def __init__(self, settings: ApiSettings, *, on_committed: Callable[[], object] = lambda: None):
        self.settings = settings
        self.folder = DataDir(settings.data_dir).jobs
        self.lock = threading.Lock()
        self._on_committed = on_committed
        self._jobs: dict[str, dict] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        """Load earlier jobs; any a stopped server left queued or running is queued again
        (ingest is idempotent: what was committed is skipped, the rest is done)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                job = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.warning("unreadable job file %s: %s", path, exc)
                continue
            self._jobs[job["job_id"]] = job
            if job["status"] in ("queued", "running"):
                job.update(status="queued", note="queued again after a server restart")
                self.save(job)
                self._queue.put(job["job_id"])
        self._worker = threading.Thread(target=self._run_forever, name="ingest-jobs", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=1.0)  # a running ingest is left to finish; restart re-queues it

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def submit(self, manifest_text: str) -> dict:
        lines = [ln for ln in manifest_text.split("\n") if ln.strip()]
        if not lines:
            raise BadInputError("the manifest has no lines")
        if len(lines) > MAX_LINES:
            raise BadInputError(f"at most {MAX_LINES} manifest lines per job, got {len(lines)}")
        job_id = uuid.uuid4().hex[:16]
        (self.folder / f"{job_id}.jsonl").write_text(manifest_text)
        job = {
            "job_id": job_id,
            "status": "queued",
            "created_at": _now(),
            "started_at": None,
            "finished_at": None,
            "lines": len(lines),
            "progress": {},
            "videos": [],
            "errors": [],
            "summary": None,
            "message": None,
        }
        with self.lock:
            self._jobs[job_id] = job
        self.save(job)
        self._queue.put(job_id)
        return self.get(job_id)

    def get(self, job_id: str) -> dict | None:
        with self.lock:
            job = self._jobs.get(job_id)
            return json.loads(json.dumps(job)) if job is not None else None  # a copy, safe to serialise

    def counts(self) -> dict[str, int]:
        with self.lock:
            out: dict[str, int] = {}
            for job in self._jobs.values():
                out[job["status"]] = out.get(job["status"], 0) + 1
            return out

    def save(self, job: dict) -> None:
        with self.lock:
            data = json.dumps(job, indent=1).encode()
        atomic_write_bytes(self.folder / f"{job['job_id']}.json", data)

    def _run_forever(self) -> None:
        while (job_id := self._queue.get()) is not None:
            job = self._jobs[job_id]
            try:
                self._run(job)
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any one job
                log.exception("ingest job %s crashed", job_id)
                with self.lock:
                    job.update(
                        status="failed",
                        finished_at=_now(),
                        error_code="internal_error",
                        message=f"internal error ({type(exc).__name__}); the server log has the details",
                    )
                self.save(job)

    def _run(self, job: dict) -> None:
        root = self.settings.api_ingest_root
        base = (root or Path.cwd()).resolve()
        with self.lock:
            job.update(status="running", started_at=_now(), progress={}, videos=[])
        self.save(job)
        try:
            text = (self.folder / f"{job['job_id']}.jsonl").read_text()
            parsed = parse_manifest_text(text, base_dir=base, source=f"job {job['job_id']}", allowed_root=root)
            summary = ingest_inputs(self.settings, parsed, JobProgress(self, job))
        except (FirstSeenError, OSError) as exc:
            with self.lock:
                job.update(
                    status="failed",
                    finished_at=_now(),
                    message=str(exc),
                    error_code=getattr(exc, "code", "internal_error"),
                )
            self.save(job)
            log.warning("ingest job %s failed: %s", job["job_id"], exc)
            return
        result = summary.to_dict()
        with self.lock:
            job.update(status="done", finished_at=_now(), summary=result, errors=result.pop("errors"))
        self.save(job)
        log.info(
            "ingest job %s: added %d, skipped %d, failed %d",
            job["job_id"],
            summary.added,
            summary.skipped,
            summary.failed,
        )
        self._on_committed()
