"""In-memory twins of the catalog, copy links, run log and failure ledger: the same contracts, no database (tests)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from firstseen.errors import DuplicateVideoError, FirstSeenError, VideoNotFoundError
from firstseen.records import (
    CopyLinkRecord,
    RunRecord,
    VideoMetadata,
    VideoRecord,
    check_run_outcome,
    checked_new_video,
)
from firstseen.storage.copy_links import mirror_segment
from firstseen.storage.failures import FailureRecord
from firstseen.storage.sql import utc
from firstseen.storage.tables import VIDEO_STATUSES


def _now() -> datetime:
    return datetime.now(UTC)


class MemoryCatalog:
    """VideoCatalog in dicts. Frame ids are allocated as in SQL: contiguous, never reused."""

    def __init__(self) -> None:
        self._meta: dict[str, str] = {}
        self._videos: dict[str, VideoRecord] = {}
        self._pts: dict[str, np.ndarray] = {}
        self._stats: dict[str, tuple[int, int] | None] = {}
        self._linked: set[str] = set()
        self._next_frame_id = 0

    def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = str(value)

    def find_by_sha256(self, sha256: str) -> VideoRecord | None:
        return next((v for v in self._videos.values() if v.sha256 == sha256.lower()), None)

    def get_video(self, ref: str) -> VideoRecord | None:
        return self._videos.get(ref) or next((v for v in self._videos.values() if v.external_id == ref), None)

    def videos(self, status: str | None = None) -> list[VideoRecord]:
        if status is not None and status not in VIDEO_STATUSES:
            raise ValueError(f"unknown video status {status!r}; expected one of {VIDEO_STATUSES}")
        found = [v for v in self._videos.values() if status is None or v.status == status]
        return sorted(found, key=lambda v: (v.first_frame_id, v.video_id))

    def unchanged_paths(self, stats: dict[str, tuple[int, int]]) -> dict[str, str]:
        return {
            v.path: v.video_id
            for v in self._videos.values()
            if v.path in stats and self._stats.get(v.video_id) == tuple(stats[v.path])
        }

    def update_file_stat(self, video_id: str, file_stat: tuple[int, int]) -> None:
        if video_id in self._videos:
            self._stats[video_id] = (int(file_stat[0]), int(file_stat[1]))

    def add_pending_video(
        self,
        meta: VideoMetadata,
        *,
        video_id: str,
        sha256: str,
        duration_s: float,
        width: int,
        height: int,
        codec: str,
        descriptor: str,
        frame_pts: np.ndarray,
        run_id: int | None,
        file_stat: tuple[int, int] | None = None,
    ) -> VideoRecord:
        pts, sha256 = checked_new_video(video_id, sha256, frame_pts)
        for field, value, same in (
            ("sha256", sha256, lambda v: v.sha256 == sha256),
            ("video_id", video_id, lambda v: v.video_id == video_id),
            ("external_id", meta.external_id, lambda v: v.external_id == meta.external_id),
        ):
            if value is None:
                continue
            existing = next((v for v in self._videos.values() if same(v)), None)
            if existing is not None:
                raise DuplicateVideoError(field, value, existing.video_id)
        record = VideoRecord(
            video_id=video_id,
            sha256=sha256,
            status="pending",
            path=str(meta.path),
            external_id=meta.external_id,
            title=meta.title,
            source=meta.source,
            published_at=utc(meta.published_at),
            uri=meta.uri,
            location=meta.location,
            duration_s=float(duration_s),
            width=int(width),
            height=int(height),
            codec=codec,
            descriptor=descriptor,
            first_frame_id=self._next_frame_id,
            frame_count=len(pts),
            ingested_at=_now(),
            committed_checkpoint=None,
            run_id=run_id,
        )
        self._next_frame_id += len(pts)
        self._videos[video_id], self._pts[video_id] = record, pts.copy()
        self._stats[video_id] = (int(file_stat[0]), int(file_stat[1])) if file_stat else None
        return record

    def mark_committed(self, video_ids: Sequence[str], checkpoint: int) -> None:
        ids = list(dict.fromkeys(video_ids))
        missing = [v for v in ids if v not in self._videos]
        if missing:
            raise VideoNotFoundError(f"no such videos: {', '.join(missing[:10])}")
        removing = [v for v in ids if self._videos[v].status == "removing"]
        if removing:
            raise FirstSeenError(f"videos being removed cannot be committed: {', '.join(removing[:10])}")
        for v in ids:
            if self._videos[v].status == "pending":
                self._videos[v] = replace(self._videos[v], status="committed", committed_checkpoint=int(checkpoint))

    def mark_removing(self, video_id: str) -> VideoRecord:
        if video_id not in self._videos:
            raise VideoNotFoundError(f"no video {video_id!r}")
        self._videos[video_id] = replace(self._videos[video_id], status="removing")
        return self._videos[video_id]

    def delete_video(self, video_id: str) -> bool:
        self._pts.pop(video_id, None)
        self._stats.pop(video_id, None)
        self._linked.discard(video_id)
        return self._videos.pop(video_id, None) is not None

    def resolve_frames(self, frame_ids: Iterable[int]) -> dict[int, tuple[str, float]]:
        out: dict[int, tuple[str, float]] = {}
        wanted = sorted({int(i) for i in frame_ids})
        for v in self._videos.values():
            if v.status != "committed":
                continue
            for fid in wanted:
                if v.first_frame_id <= fid < v.first_frame_id + v.frame_count:
                    out[fid] = (v.video_id, float(self._pts[v.video_id][fid - v.first_frame_id]))
        return out

    def video_totals(self) -> tuple[dict[str, int], float, int]:
        by_status = dict.fromkeys(VIDEO_STATUSES, 0)
        for v in self._videos.values():
            by_status[v.status] += 1
        committed = [v for v in self._videos.values() if v.status == "committed"]
        return by_status, float(sum(v.duration_s for v in committed)), int(sum(v.frame_count for v in committed))

    def videos_awaiting_copy_links(self) -> list[str]:
        return [v.video_id for v in self.videos("committed") if v.video_id not in self._linked]

    def mark_copies_linked(self, video_ids: Sequence[str] | None) -> None:
        if video_ids is None:
            self._linked.clear()
        else:
            self._linked.update(v for v in video_ids if v in self._videos)

    def close(self) -> None:
        pass


class MemoryCopyLinks:
    def __init__(self) -> None:
        self._links: dict[tuple[str, str], CopyLinkRecord] = {}

    def add_copy_link(self, video_id: str, other_video_id: str, score: float, segments: list[dict]) -> None:
        if video_id == other_video_id:
            raise ValueError("a video cannot be a copy of itself")
        now = _now()
        self._links[(video_id, other_video_id)] = CopyLinkRecord(
            video_id, other_video_id, float(score), [dict(s) for s in segments], now
        )
        self._links[(other_video_id, video_id)] = CopyLinkRecord(
            other_video_id, video_id, float(score), [mirror_segment(s) for s in segments], now
        )

    def copy_links(self, video_id: str) -> list[CopyLinkRecord]:
        found = [link for (a, _), link in self._links.items() if a == video_id]
        return sorted(found, key=lambda link: (-link.score, link.other_video_id))

    def delete_video(self, video_id: str) -> None:
        self._links = {k: v for k, v in self._links.items() if video_id not in k}

    def delete_all(self) -> None:
        self._links.clear()

    def count(self) -> int:
        return len(self._links) // 2


class MemoryRunLog:
    def __init__(self) -> None:
        self._runs: dict[int, RunRecord] = {}

    def start_run(self, params: dict) -> int:
        run_id = max(self._runs, default=0) + 1
        self._runs[run_id] = RunRecord(run_id, _now(), None, "running", 0, 0, 0, 0.0, 0, [], dict(params), 0)
        return run_id

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
        errors: list[dict],
        quarantined: int = 0,
    ) -> None:
        check_run_outcome(status)
        if run_id not in self._runs:
            raise KeyError(f"no ingest run {run_id}")
        self._runs[run_id] = replace(
            self._runs[run_id],
            status=status,
            finished_at=_now(),
            added=int(added),
            skipped=int(skipped),
            failed=int(failed),
            footage_s=float(footage_s),
            frames=int(frames),
            errors=list(errors),
            quarantined=int(quarantined),
        )

    def runs(self, limit: int = 10) -> list[RunRecord]:
        return [self._runs[k] for k in sorted(self._runs, reverse=True)[:limit]]

    def last(self) -> RunRecord | None:
        runs = self.runs(limit=1)
        return runs[0] if runs else None

    def mark_stale_runs_crashed(self) -> int:
        stale = [k for k, r in self._runs.items() if r.status == "running"]
        for k in stale:
            self._runs[k] = replace(self._runs[k], status="crashed")
        return len(stale)


class MemoryFailureLedger:
    """FailureLedger in a dict; rows may be shared between ledgers, as one database's are."""

    def __init__(self, max_attempts: int, rows: dict[str, FailureRecord] | None = None):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self._rows = rows if rows is not None else {}

    def all(self) -> dict[str, FailureRecord]:
        return dict(sorted(self._rows.items()))

    def quarantined(self) -> list[FailureRecord]:
        return [r for r in self.all().values() if r.quarantined]

    def record(self, path: str, file_stat: tuple[int, int] | None, reason: str, run_id: int | None) -> FailureRecord:
        now = _now()
        old = self._rows.get(path)
        stat = (int(file_stat[0]), int(file_stat[1])) if file_stat else None
        if old is None or (stat is not None and old.file_stat != stat):  # new, or changed: a new file
            attempts, first, quarantined_at = 1, now, None
        else:
            attempts, first, quarantined_at = old.attempts + 1, old.first_failed_at, old.quarantined_at
        if attempts >= self.max_attempts and quarantined_at is None:
            quarantined_at = now
        self._rows[path] = FailureRecord(path, stat, attempts, reason, first, now, run_id, quarantined_at)
        return self._rows[path]

    def clear(self, paths: list[str]) -> None:
        for path in paths:
            self._rows.pop(path, None)

    def release(self, paths: list[str] | None = None) -> int:
        released = [p for p, r in self._rows.items() if r.quarantined and (paths is None or p in paths)]
        for p in released:
            self._rows[p] = replace(self._rows[p], quarantined_at=None, attempts=0)
        return len(released)
