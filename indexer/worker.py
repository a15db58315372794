"""One ingest run: collect inputs, take the archive lock, add each video, checkpoint, summarise."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from firstseen.archive import DescriptorSpec, open_archive
from firstseen.catalog import DuplicateVideoError
from firstseen.descriptors import create_descriptor
from firstseen.errors import BadInputError
from firstseen.ingest import ingest_file
from firstseen.media import probe
from firstseen.settings import Settings
from indexer.inputs import collect_inputs
from indexer.progress import Progress, make_progress


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
    errors: list[dict] = field(default_factory=list)

    @property
    def footage_hours(self) -> float:
        return self.footage_s / 3600

    @property
    def realtime_factor(self) -> float:
        """Footage seconds ingested per wall-clock second."""
        return self.footage_s / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "footage_hours": round(self.footage_hours, 4),
                "realtime_factor": round(self.realtime_factor, 2),
                "frames_per_s": round(self.frames / self.wall_s, 2) if self.wall_s else 0.0}

    def fail(self, path: str, reason: str, line: int | None = None) -> None:
        self.failed += 1
        self.errors.append({"path": path, "line": line, "reason": reason})


def run_ingest(settings: Settings, paths: list[Path], manifests: list[Path] = (),
               progress: Progress | None = None) -> IngestSummary:
    """Ingest everything named; a bad input is recorded in the summary and the rest go on.
    Raises only for failures of the archive itself (lock held, mismatch, storage errors)."""
    progress = progress or make_progress()
    started = time.perf_counter()
    summary = IngestSummary()
    collected = collect_inputs(paths, manifests)
    for problem in collected.problems:
        summary.fail(problem.source, problem.reason, problem.line)

    descriptor = create_descriptor(settings.descriptor, settings)
    archive = open_archive(settings.data_dir, settings.resolved_catalog_url(),
                           DescriptorSpec.of(descriptor), writable=True)
    try:
        summary.run_id = archive.catalog.start_run(
            {"inputs": [str(p) for p in paths], "manifests": [str(m) for m in manifests],
             "descriptor": descriptor.config_id, "archive_fps": settings.archive_fps})
        infos = {}
        for item in collected.items:
            try:
                infos[item.path] = probe(item.path)
            except BadInputError:
                pass  # reported when the item's turn comes, with the same reason
        progress.start(len(collected.items), sum(i.duration_s for i in infos.values()))
        last_commit = time.monotonic()
        for item in collected.items:
            name = str(item.path)
            done_s = 0.0

            def advance(pts_s: float) -> None:
                nonlocal done_s
                progress.advance_footage(pts_s - done_s)
                done_s = pts_s

            try:
                outcome = ingest_file(archive, descriptor, item, settings, run_id=summary.run_id,
                                      info=infos.get(item.path), on_progress=advance)
            except (BadInputError, DuplicateVideoError) as exc:
                where = f" (manifest line {item.manifest_line})" if item.manifest_line else ""
                summary.fail(name, f"{exc}{where}", item.manifest_line)
                progress.advance_footage(infos[item.path].duration_s - done_s if item.path in infos else 0)
                progress.video_done(name, "failed", str(exc), 0.0)
                continue
            if outcome.status == "skipped":
                summary.skipped += 1
                progress.advance_footage(infos[item.path].duration_s if item.path in infos else 0)
                progress.video_done(name, "skipped", f"already archived as {outcome.record.video_id}", 0.0)
            else:
                summary.added += 1
                summary.frames += outcome.frames
                summary.footage_s += outcome.footage_s
                progress.advance_footage(outcome.footage_s - done_s)
                progress.video_done(name, "added", f"{outcome.frames} frames", outcome.footage_s)
            if time.monotonic() - last_commit >= settings.checkpoint_every_s:
                archive.commit()
                last_commit = time.monotonic()
        summary.checkpoint = archive.commit()
        summary.wall_s = time.perf_counter() - started
        archive.catalog.finish_run(summary.run_id, status="failed" if summary.failed else "ok",
                                   added=summary.added, skipped=summary.skipped, failed=summary.failed,
                                   footage_s=summary.footage_s, frames=summary.frames, errors=summary.errors)
    finally:
        progress.close()
        archive.close()
    return summary
