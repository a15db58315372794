"""The nightly job and its scheduler: ingest the configured drop folders and manifests, then
maintain the index; a status file beats while the scheduler lives, for health checks."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from firstseen.datadir import DataDir
from firstseen.errors import ArchiveLockedError, FirstSeenError
from firstseen.ingest.manifest import collect_inputs
from firstseen.ingest.progress import Progress
from firstseen.ingest.run import configured_inputs, run_ingest
from firstseen.ingest.shared import ingest_shared
from firstseen.ops.reindex import maintain_index
from firstseen.settings import Settings
from firstseen.storage.atomic import atomic_write_bytes
from indexer.settings import NightlySettings

log = logging.getLogger("firstseen.nightly")

BEAT_EVERY_S = 30.0
HEALTHY_WITHIN_S = 180.0


def run_nightly_once(settings: Settings, progress: Progress | None = None) -> dict:
    """One nightly run: ingest (failures retried, then quarantined), then index maintenance.

    Raises ArchiveLockedError when another run holds the archive: runs never overlap."""
    paths, manifests = configured_inputs(settings)
    if settings.ingest_shared:  # one of several indexers (any machine) sharing the archive's job ledger
        summary = ingest_shared(settings, collect_inputs(paths, manifests), progress)
    else:
        summary = run_ingest(settings, paths, manifests, progress)
    outcome: dict = {"ingest": summary.to_dict()}
    log.info(
        "ingest run %s: %d added, %d skipped, %d failed, %d quarantined",
        summary.run_id,
        summary.added,
        summary.skipped,
        summary.failed,
        summary.quarantined,
    )
    if summary.checkpoint == 0:
        outcome["index"] = {"action": "none", "reason": "the archive is empty"}
        return outcome
    try:
        report = maintain_index(settings)
        outcome["index"] = report.to_dict()
        log.info("index maintenance: %s (%s)", report.action, report.reason)
    except ArchiveLockedError as exc:  # an API job got the lock first: next night then
        outcome["index"] = {"action": "deferred", "reason": str(exc)}
        log.warning("index maintenance deferred: %s", exc)
    outcome["onscreen_text"] = _text_pass(settings)
    return outcome


def _text_pass(settings: Settings) -> dict:
    """Read the on-screen text of every committed video not read yet (new ones, or an old
    archive's backlog). OCR that cannot run here is reported, and the night's ingest stands."""
    if not settings.ocr:
        return {"action": "off"}
    from firstseen.evidence.onscreen_text import open_reader
    from firstseen.evidence.text_pass import TextPassParams, read_archive_text

    reader, why_not = open_reader(settings.ocr, settings.ocr_languages)
    if reader is None:
        log.warning("on-screen text not read: %s", why_not)
        return {"action": "failed", "reason": why_not}
    try:
        with reader:
            summary = read_archive_text(
                settings.data_dir,
                settings.resolved_catalog_url(),
                reader,
                TextPassParams(settings.ocr_every_s, settings.ocr_max_side),
            )
    except FirstSeenError as exc:
        log.warning("on-screen text not read: %s", exc)
        return {"action": "failed", "reason": str(exc)}
    log.info("on-screen text: %d videos read, %d lines", summary.videos, summary.lines)
    return {"action": "read", **summary.to_dict()}


def next_run_at(now: datetime, at: str) -> datetime:
    """The next local HH:MM strictly after now."""
    hour, minute = (int(part) for part in at.split(":"))
    candidate = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return candidate if candidate > now else candidate + timedelta(days=1)


class StatusFile:
    """DATA_DIR/nightly-status.json: the scheduler's state, rewritten atomically by a beat thread."""

    def __init__(self, data_dir: Path):
        self.path = DataDir(data_dir).nightly_status
        self._state: dict = {"state": "starting"}
        self._lock = threading.Lock()

    def update(self, **fields: object) -> None:
        with self._lock:
            self._state.update(fields)
            self._write()

    def _write(self) -> None:
        self._state["updated_at"] = datetime.now().astimezone().isoformat()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, json.dumps(self._state, indent=2, default=str).encode())

    def beat(self) -> None:
        with self._lock:
            self._write()


def healthy(settings: Settings, within_s: float = HEALTHY_WITHIN_S) -> tuple[bool, str]:
    path = DataDir(settings.data_dir).nightly_status
    try:
        status = json.loads(path.read_text())
        age = (datetime.now().astimezone() - datetime.fromisoformat(status["updated_at"])).total_seconds()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"no readable status in {path}: {exc}"
    if age > within_s:
        return False, f"status last written {age:.0f} s ago (state {status.get('state')})"
    return True, f"{status.get('state')}, next run {status.get('next_run_at')}"


def run_scheduler(
    settings: NightlySettings, stop: threading.Event | None = None, clock=lambda: datetime.now().astimezone()
) -> None:
    """Run the nightly job every day at FIRSTSEEN_NIGHTLY_AT (local time, TZ) until stopped.

    SIGTERM stops the wait at once, or interrupts a run, which then commits what it has
    (the rest is rolled back and retried next night)."""
    stop = stop or threading.Event()
    status = StatusFile(settings.data_dir)
    beating = threading.Event()

    def beat() -> None:
        while not beating.wait(BEAT_EVERY_S):
            status.beat()

    previous_handler = None
    if threading.current_thread() is threading.main_thread():

        def on_term(signum, frame):  # noqa: ARG001
            stop.set()
            raise KeyboardInterrupt

        previous_handler = signal.signal(signal.SIGTERM, on_term)
    beater = threading.Thread(target=beat, name="status-beat", daemon=True)
    beater.start()
    try:
        while not stop.is_set():
            due = next_run_at(clock(), settings.nightly_at)
            status.update(state="waiting", next_run_at=due.isoformat())
            log.info("next nightly run at %s", due.isoformat())
            while not stop.is_set() and clock() < due:
                stop.wait(min(BEAT_EVERY_S, max(0.05, (due - clock()).total_seconds())))
            if stop.is_set():
                break
            status.update(state="running", run_started_at=clock().isoformat())
            started = time.perf_counter()
            try:
                outcome = run_nightly_once(settings)
                result = {"status": "ok", **outcome}
            except ArchiveLockedError as exc:
                result = {"status": "skipped", "reason": str(exc)}
                log.warning("nightly run skipped: %s", exc)
            except FirstSeenError as exc:
                result = {"status": "failed", "reason": str(exc)}
                log.error("nightly run failed: %s", exc)
            except Exception as exc:  # noqa: BLE001 - a database outage must not end the schedule
                result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
                log.exception("nightly run failed unexpectedly")
            result["wall_s"] = round(time.perf_counter() - started, 1)
            status.update(state="waiting", last_run=result, last_run_at=clock().isoformat())
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        beating.set()
        status.update(state="stopped")
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
