"""One ingest run: collect inputs, take the archive lock, add each video, checkpoint, summarise."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from firstseen.archive import DescriptorSpec, open_archive
from firstseen.descriptors import create_descriptor
from firstseen.errors import BadInputError, DuplicateVideoError
from firstseen.fileid import sha256_file, video_id_for
from firstseen.ingest.copylinks import link_new_copies
from firstseen.ingest.manifest import CollectedInputs, collect_inputs
from firstseen.ingest.pipeline import describe_videos, stage_described
from firstseen.ingest.progress import LogProgress, Progress
from firstseen.media.decode import probe
from firstseen.params import IngestPolicy, SearchParams
from firstseen.records import VideoInfo, VideoMetadata
from firstseen.search.background import BackgroundError
from firstseen.search.calibration import CalibrationMissingError, load_scoring
from firstseen.search.candidates import VerifyPolicy
from firstseen.settings import Settings
from firstseen.storage.failures import FailureRecord, is_still_quarantined
from firstseen.storage.protocols import FailureLedger

log = logging.getLogger(__name__)


@dataclass
class IngestSummary:
    run_id: int | None = None
    added: int = 0
    skipped: int = 0
    failed: int = 0
    footage_s: float = 0.0
    frames: int = 0
    wall_s: float = 0.0
    checkpoint: int = 0
    copy_links: int = 0
    quarantined: int = 0  # files this run put in quarantine (their last allowed attempt failed)
    skipped_quarantined: int = 0  # files left alone because they are in quarantine
    errors: list[dict] = field(default_factory=list)

    @property
    def footage_hours(self) -> float:
        return self.footage_s / 3600

    @property
    def realtime_factor(self) -> float:
        """Footage seconds ingested per wall-clock second."""
        return self.footage_s / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "footage_hours": round(self.footage_hours, 4),
            "realtime_factor": round(self.realtime_factor, 2),
            "frames_per_s": round(self.frames / self.wall_s, 2) if self.wall_s else 0.0,
        }

    @classmethod
    def of(cls, collected: CollectedInputs) -> IngestSummary:
        """A run's summary, starting with what reading its inputs already refused."""
        summary = cls()
        for problem in collected.problems:
            summary.fail(problem.source, problem.reason, problem.line)
        return summary

    def fail(self, path: str, reason: str, line: int | None = None) -> None:
        self.failed += 1
        self.errors.append({"path": path, "line": line, "reason": reason})


def configured_inputs(settings: Settings) -> tuple[list[Path], list[Path]]:
    """The drop folders and manifests a scheduled run reads (FIRSTSEEN_INGEST_*)."""
    if not settings.ingest_drop_dirs and not settings.ingest_manifests:
        raise BadInputError(
            "nothing to ingest: name PATHs or --manifest files, or set "
            "FIRSTSEEN_INGEST_DROP_DIRS and/or FIRSTSEEN_INGEST_MANIFESTS"
        )
    return list(settings.ingest_drop_dirs), list(settings.ingest_manifests)


def run_ingest(
    settings: Settings,
    paths: list[Path],
    manifests: Sequence[Path] = (),
    progress: Progress | None = None,
    *,
    retry_quarantined: bool = False,
) -> IngestSummary:
    """Ingest the files, folders and manifests named (collect_inputs reads them)."""
    return ingest_inputs(
        settings,
        collect_inputs(paths, manifests),
        progress,
        retry_quarantined=retry_quarantined,
        named=(paths, manifests),
    )


def ingest_inputs(
    settings: Settings,
    collected: CollectedInputs,
    progress: Progress | None = None,
    *,
    retry_quarantined: bool = False,
    named: tuple[Sequence[Path], Sequence[Path]] = ((), ()),
) -> IngestSummary:
    """Ingest work items already read (from paths and manifests, or manifest lines sent over
    HTTP); a bad input is recorded in the summary and the rest go on. A file that fails is
    retried by later runs up to FIRSTSEEN_INGEST_MAX_ATTEMPTS times, then quarantined. Raises
    only for failures of the archive itself (lock held, mismatch, storage errors). named: the
    paths and manifests the items came from, for the run log."""
    paths, manifests = named
    progress = progress or LogProgress()
    started = time.perf_counter()
    summary = IngestSummary.of(collected)

    policy = IngestPolicy.from_settings(settings)
    descriptor = create_descriptor(settings.descriptor, settings)
    archive = open_archive(
        settings.data_dir,
        settings.resolved_catalog_url(),
        DescriptorSpec.of(descriptor),
        writable=True,
        nprobe=settings.index_nprobe,
        index_url=settings.index_url,
    )
    try:
        summary.run_id = archive.start_run(
            {
                "inputs": [str(p) for p in paths],
                "manifests": [str(m) for m in manifests],
                "descriptor": descriptor.config_id,
                "archive_fps": policy.archive_fps,
            }
        )
        failure_ledger = archive.failure_ledger(policy.max_attempts)
        if retry_quarantined:
            failure_ledger.release()
        ledger = _Ledger(failure_ledger, summary)
        progress.start(len(collected.items))
        todo = _triage(archive, collected.items, summary, progress, ledger)
        _describe_and_stage(archive, descriptor, policy, todo, summary, progress, ledger)
        summary.checkpoint = archive.commit()
        ledger.ledger.clear(ledger.succeeded)
        summary.copy_links = link_copies(archive, descriptor, settings)
        summary.wall_s = time.perf_counter() - started
        archive.finish_run(
            summary.run_id,
            status="failed" if summary.failed else "ok",
            added=summary.added,
            skipped=summary.skipped,
            failed=summary.failed,
            footage_s=summary.footage_s,
            frames=summary.frames,
            errors=summary.errors,
            quarantined=summary.quarantined,
        )
    finally:
        progress.close()
        archive.close()
    return summary


def link_copies(archive, descriptor, settings: Settings) -> int:
    """Record copy links for every committed video still without them (this run's, and any
    a crashed run left). Without a calibration for this descriptor no link can be judged, so
    the videos wait, unlinked, for a run that has one."""
    try:
        calibration, background = load_scoring(descriptor.config_id, settings.calibration_path, settings.background_dir)
    except (CalibrationMissingError, BackgroundError) as exc:
        log.warning("copy links not recorded: %s", exc)
        return 0
    return link_new_copies(
        archive, calibration, SearchParams.from_settings(settings), VerifyPolicy.from_settings(settings), background
    )


@dataclass(frozen=True)
class _Todo:
    meta: VideoMetadata
    sha256: str
    info: VideoInfo
    file_stat: tuple[int, int] | None


def _key(path: Path) -> str:
    return os.path.abspath(path)


def _file_stat(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class _Ledger:
    """This run's view of the failure ledger: what to leave alone, what to count or forget."""

    def __init__(self, ledger: FailureLedger, summary: IngestSummary):
        self.ledger, self.summary = ledger, summary
        self.known: dict[str, FailureRecord] = ledger.all()
        self.succeeded: list[str] = []
        # A file the operator deleted will not come back to succeed: drop it from the ledger,
        # or stats would list it as failing forever.
        gone = [path for path in self.known if not os.path.exists(path)]
        ledger.clear(gone)
        for path in gone:
            del self.known[path]

    def failed(self, item: VideoMetadata, reason: str, file_stat: tuple[int, int] | None) -> str:
        record = self.ledger.record(_key(item.path), file_stat, reason, self.summary.run_id)
        if record.quarantined:
            self.summary.quarantined += 1
            return f"{reason} [attempt {record.attempts} of {self.ledger.max_attempts}: quarantined]"
        return f"{reason} [attempt {record.attempts} of {self.ledger.max_attempts}, retried next run]"

    def done(self, path: Path) -> None:
        if _key(path) in self.known:
            self.succeeded.append(_key(path))


def _failed(
    summary: IngestSummary,
    progress: Progress,
    item: VideoMetadata,
    reason: str,
    ledger: _Ledger,
    file_stat: tuple[int, int] | None,
) -> None:
    reason = ledger.failed(item, reason, file_stat)
    where = f" (manifest line {item.manifest_line})" if item.manifest_line else ""
    summary.fail(str(item.path), f"{reason}{where}", item.manifest_line)
    progress.video_done(str(item.path), "failed", reason, 0.0)


def _triage(
    archive, items: list[VideoMetadata], summary: IngestSummary, progress: Progress, ledger: _Ledger
) -> list[_Todo]:
    """Hash and probe every input first (cheap next to decoding): known files are skipped
    before any decoding, and the progress bar knows the footage still to describe. Files
    archived before with the same size and mtime are skipped without being read at all, so a
    nightly walk over a large drop folder costs a stat per file."""
    todo: list[_Todo] = []
    seen: set[str] = set()
    stats = {_key(item.path): _file_stat(item.path) for item in items}
    unchanged = archive.unchanged_paths({k: v for k, v in stats.items() if v is not None})
    for item in items:
        file_stat = stats[_key(item.path)]
        if _key(item.path) in unchanged:
            summary.skipped += 1
            ledger.done(item.path)
            progress.video_done(
                str(item.path), "skipped", f"unchanged since archived as {unchanged[_key(item.path)]}", 0.0
            )
            continue
        if is_still_quarantined(ledger.known.get(_key(item.path)), file_stat):
            summary.skipped_quarantined += 1
            progress.video_done(str(item.path), "skipped", "quarantined (see firstseen stats)", 0.0)
            continue
        try:
            sha256 = sha256_file(item.path)
            existing = archive.video_by_sha256(sha256)
            if existing is not None or sha256 in seen:
                ledger.done(item.path)
                if existing is not None and existing.path == _key(item.path) and file_stat is not None:
                    # Touched (copied back, restored) but the same bytes: remember the new
                    # size and mtime so the next run skips it with a stat again.
                    archive.update_file_stat(existing.video_id, file_stat)
                summary.skipped += 1
                progress.video_done(
                    str(item.path),
                    "skipped",
                    f"already archived as {existing.video_id if existing else video_id_for(sha256)}",
                    0.0,
                )
                continue
            info = probe(item.path)
        except OSError as exc:
            _failed(summary, progress, item, f"cannot read file: {exc.strerror or exc}", ledger, file_stat)
            continue
        except BadInputError as exc:
            _failed(summary, progress, item, str(exc), ledger, file_stat)
            continue
        seen.add(sha256)
        todo.append(_Todo(item, sha256, info, file_stat))
    progress.footage_total(sum(t.info.duration_s for t in todo))
    return todo


def _describe_and_stage(
    archive,
    descriptor,
    policy: IngestPolicy,
    todo: list[_Todo],
    summary: IngestSummary,
    progress: Progress,
    ledger: _Ledger,
) -> None:
    by_path = {t.meta.path: t for t in todo}
    done_s: dict[Path, float] = {}

    def advance(path: Path, pts_s: float) -> None:
        progress.advance_footage(pts_s - done_s.get(path, 0.0))
        done_s[path] = pts_s

    last_commit = time.monotonic()
    for described in describe_videos(
        [t.meta.path for t in todo], descriptor, policy, fps=policy.archive_fps, on_progress=advance
    ):
        item = by_path[described.path]
        progress.advance_footage(item.info.duration_s - done_s.get(described.path, 0.0))
        if described.error is not None:
            _failed(summary, progress, item.meta, str(described.error), ledger, item.file_stat)
            continue
        assert described.vectors is not None  # no error: the pipeline gave vectors
        try:
            staged = stage_described(
                archive,
                item.meta,
                item.sha256,
                item.info,
                described.vectors,
                run_id=summary.run_id,
                file_stat=item.file_stat,
            )
        except DuplicateVideoError as exc:
            _failed(summary, progress, item.meta, str(exc), ledger, item.file_stat)
            continue
        ledger.done(item.meta.path)
        summary.added += 1
        summary.frames += staged.frames
        summary.footage_s += staged.footage_s
        progress.video_done(str(item.meta.path), "added", f"{staged.frames} frames", staged.footage_s)
        if time.monotonic() - last_commit >= policy.checkpoint_every_s:
            archive.commit()
            last_commit = time.monotonic()
