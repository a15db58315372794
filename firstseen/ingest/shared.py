"""Shared ingest: any number of processes, on any number of machines, fill one archive through the job ledger.

Each process queues what it was given, then claims a few files at a time (storage/job_ledger.py),
hashes, probes and describes them without any lock, and commits them through the archive's
writer lock (the data directory's flock and, on PostgreSQL, the archive-wide advisory lock),
held only for the commit. A single-writer index (FAISS files, Milvus Lite) thus stays correct:
each commit opens the archive afresh, recovering and loading what the others published. A claim
that ran out (its process died) is taken again and the work redone; a commit carries its
claim's token and checks the archive for the file's bytes first, so no video is committed
twice, and a killed run is resumed by running it again."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from firstseen.archive import DescriptorSpec, open_archive
from firstseen.descriptors import FrameDescriptor, create_descriptor
from firstseen.errors import BadInputError, DuplicateVideoError
from firstseen.fileid import sha256_file
from firstseen.ingest.manifest import CollectedInputs
from firstseen.ingest.pipeline import Described, Staged, describe_videos, stage_described
from firstseen.ingest.progress import LogProgress, Progress
from firstseen.ingest.run import IngestSummary, link_copies
from firstseen.media.decode import probe
from firstseen.params import IngestPolicy
from firstseen.records import VideoInfo, VideoMetadata
from firstseen.settings import Settings
from firstseen.storage.failures import is_still_quarantined
from firstseen.storage.job_ledger import Job, SqlJobLedger, StaleClaimError

log = logging.getLogger(__name__)

# paths, descriptor, policy -> each video described, in order (pipeline.describe_videos's shape)
Executor = Callable[[Iterable[Path], FrameDescriptor, IngestPolicy], Iterator[Described]]


def local_executor(paths: Iterable[Path], descriptor: FrameDescriptor, policy: IngestPolicy) -> Iterator[Described]:
    return describe_videos(paths, descriptor, policy, fps=policy.archive_fps)


def _item(meta: VideoMetadata) -> dict:
    return {
        "path": str(Path(meta.path).resolve()),
        "external_id": meta.external_id,
        "title": meta.title,
        "source": meta.source,
        "published_at": meta.published_at.isoformat() if meta.published_at else None,
        "uri": meta.uri,
        "location": meta.location,
        "manifest_line": meta.manifest_line,
    }


def _meta(item: dict) -> VideoMetadata:
    published = item.get("published_at")
    return VideoMetadata(
        path=Path(item["path"]),
        external_id=item.get("external_id"),
        title=item.get("title"),
        source=item.get("source"),
        published_at=datetime.fromisoformat(published) if published else None,
        uri=item.get("uri"),
        location=item.get("location"),
        manifest_line=item.get("manifest_line"),
    )


def _job_key(path: Path) -> tuple[str | None, tuple[int, int] | None]:
    """A file as it is now (path, size, mtime): the same bytes are queued once, a changed file again."""
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    return f"{path}|{st.st_size}|{st.st_mtime_ns}", (st.st_size, st.st_mtime_ns)


@dataclass
class _Ready:
    job: Job
    meta: VideoMetadata
    sha256: str
    info: VideoInfo


def ingest_shared(
    settings: Settings,
    collected: CollectedInputs,
    progress: Progress | None = None,
    *,
    executor: Executor = local_executor,
    worker: str | None = None,
) -> IngestSummary:
    """Queue the items, then claim (FIRSTSEEN_INGEST_CLAIM_BATCH at a time, under a lease of
    FIRSTSEEN_INGEST_LEASE_S), describe and commit until no claimable job is left."""
    claim_batch, lease_s = settings.ingest_claim_batch, settings.ingest_lease_s
    progress = progress or LogProgress()
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    started = time.perf_counter()
    summary = IngestSummary.of(collected)
    policy = IngestPolicy.from_settings(settings)
    descriptor = create_descriptor(settings.descriptor, settings)
    spec = DescriptorSpec.of(descriptor)
    url = settings.resolved_catalog_url()

    def writer():
        return open_archive(
            settings.data_dir, url, spec, writable=True, nprobe=settings.index_nprobe,
            lock_wait_s=max(settings.lock_wait_s, 600.0), index_url=settings.index_url,
        )  # fmt: skip

    with writer() as archive:  # recovers what a killed writer left, and logs this run
        summary.run_id = archive.start_run({"shared": worker, "items": len(collected.items)})
    ledger = SqlJobLedger.open(url)
    failures = ledger.failure_ledger(policy.max_attempts)
    try:
        known = failures.all()
        queue = []
        for meta in collected.items:
            path = Path(meta.path).resolve()
            key, file_stat = _job_key(path)
            if key is None:
                summary.fail(str(meta.path), "cannot read file: it is gone", meta.manifest_line)
            elif is_still_quarantined(known.get(str(path)), file_stat):
                summary.skipped_quarantined += 1
            else:
                queue.append((key, str(path), _item(meta)))
        queued = ledger.enqueue(queue)
        log.info("%s queued %d of %d files; %s", worker, queued, len(queue), ledger.counts())
        progress.start(len(queue))
        while jobs := ledger.claim(worker, claim_batch, lease_s):
            ready = _triage(jobs, ledger, failures, summary, progress)
            described: list[Described] = []
            for result in executor([r.meta.path for r in ready], descriptor, policy):
                described.append(result)
                for waiting in ready[len(described) :]:  # still queued behind this one: keep them claimed
                    _renew(ledger, waiting.job, lease_s)
            with writer() as archive:
                committed: list[tuple[_Ready, str, Staged | None]] = []
                for item, result in zip(ready, described, strict=True):
                    if result.error is not None or result.vectors is None:
                        if failures.record(str(item.meta.path), None, str(result.error), summary.run_id).quarantined:
                            summary.quarantined += 1
                        _end(ledger, item.job, "failed", reason=str(result.error))
                        summary.fail(str(item.meta.path), str(result.error), item.meta.manifest_line)
                        continue
                    try:
                        ledger.renew(item.job, lease_s)  # still this process's claim, under the lock
                    except StaleClaimError:
                        log.info("%s: claim ran out and was taken again; left to its new holder", item.meta.path)
                        continue
                    existing = archive.video_by_sha256(item.sha256)
                    if existing is not None:  # committed by an earlier holder of this claim
                        committed.append((item, existing.video_id, None))
                        continue
                    try:
                        done = stage_described(archive, item.meta, item.sha256, item.info, result.vectors,
                                               run_id=summary.run_id)  # fmt: skip
                    except DuplicateVideoError as exc:
                        _end(ledger, item.job, "failed", reason=str(exc))
                        summary.fail(str(item.meta.path), str(exc), item.meta.manifest_line)
                        continue
                    committed.append((item, done.record.video_id, done))
                summary.checkpoint = archive.commit()
            for item, video_id, staged in committed:  # a crash here: the next holder finds the bytes archived
                _end(ledger, item.job, "committed", video_id=video_id)
                failures.clear([str(item.meta.path)])
                if staged is None:
                    summary.skipped += 1
                    progress.video_done(str(item.meta.path), "skipped", f"already archived as {video_id}", 0.0)
                else:
                    summary.added += 1
                    summary.frames += staged.frames
                    summary.footage_s += staged.footage_s
                    progress.video_done(str(item.meta.path), "added", f"{staged.frames} frames", staged.footage_s)
        with writer() as archive:
            summary.copy_links = link_copies(archive, descriptor, settings)
            summary.checkpoint = archive.commit()  # what the archive is at now, whoever committed it
            summary.wall_s = time.perf_counter() - started
            archive.finish_run(
                summary.run_id, status="failed" if summary.failed else "ok", added=summary.added,
                skipped=summary.skipped, failed=summary.failed, footage_s=summary.footage_s,
                frames=summary.frames, errors=summary.errors, quarantined=summary.quarantined,
            )  # fmt: skip
    finally:
        progress.close()
        ledger.close()
    return summary


def _renew(ledger: SqlJobLedger, job: Job, lease_s: float) -> None:
    try:
        ledger.renew(job, lease_s)
    except StaleClaimError:
        pass  # taken again meanwhile: the commit's own check leaves it to its new holder


def _end(ledger: SqlJobLedger, job: Job, status: str, **fields) -> None:
    try:
        ledger.finish(job, status=status, **fields)
    except StaleClaimError:
        log.info("job %d (%s) was taken again before it finished here", job.job_id, job.path)


def _triage(
    jobs: list[Job], ledger: SqlJobLedger, failures, summary: IngestSummary, progress: Progress
) -> list[_Ready]:
    """Hash and probe the claimed files: those archived already are done, unreadable ones failed."""
    ready = []
    for job in jobs:
        meta = _meta(job.item)
        try:
            sha256 = sha256_file(meta.path)
            archived = ledger.archived_as(sha256)
            if archived is not None:
                _end(ledger, job, "committed", video_id=archived)
                summary.skipped += 1
                progress.video_done(str(meta.path), "skipped", f"already archived as {archived}", 0.0)
                continue
            info = probe(meta.path)
        except (OSError, BadInputError) as exc:
            reason = f"cannot read file: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
            record = failures.record(str(meta.path), None, reason, summary.run_id)
            if record.quarantined:
                summary.quarantined += 1
            _end(ledger, job, "failed", reason=reason)
            summary.fail(str(meta.path), reason, meta.manifest_line)
            progress.video_done(str(meta.path), "failed", reason, 0.0)
            continue
        ready.append(_Ready(job, meta, sha256, info))
    return ready
