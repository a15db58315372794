"""The SQL video catalog: what each index frame id means, the video lifecycle, frame-id allocation, archive meta."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import numpy as np
from sqlalchemy import Table, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from firstseen.errors import DuplicateVideoError, FirstSeenError, VideoNotFoundError
from firstseen.records import VideoMetadata, VideoRecord, checked_new_video
from firstseen.storage.copy_links import SqlCopyLinks
from firstseen.storage.run_log import SqlRunLog
from firstseen.storage.sql import SqlDatabase, chunks, now, utc
from firstseen.storage.tables import VIDEO_STATUSES, ArchiveMetaRow, CopyLinkRow, FrameRow, VideoRow

NEXT_FRAME_ID_KEY = "next_frame_id"


def _video_record(row: VideoRow) -> VideoRecord:
    return VideoRecord(
        video_id=row.video_id, sha256=row.sha256, status=row.status, path=row.path,
        external_id=row.external_id, title=row.title, source=row.source,
        published_at=utc(row.published_at), uri=row.uri, location=row.location,
        duration_s=float(row.duration_s), width=row.width, height=row.height, codec=row.codec,
        descriptor=row.descriptor, first_frame_id=int(row.first_frame_id), frame_count=row.frame_count,
        ingested_at=utc(row.ingested_at), committed_checkpoint=row.committed_checkpoint, run_id=row.run_id,
    )  # fmt: skip


class SqlCatalog(SqlDatabase):
    """The video catalog over SQLite or PostgreSQL (VideoCatalog in protocols.py). Its database
    also holds the copy links and the run log, reached through links and run_log."""

    @property
    def links(self) -> SqlCopyLinks:
        return SqlCopyLinks(self)

    @property
    def run_log(self) -> SqlRunLog:
        return SqlRunLog(self)

    # -- archive meta ------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.session() as s:
            return s.scalar(select(ArchiveMetaRow.value).where(ArchiveMetaRow.key == key))

    def set_meta(self, key: str, value: str) -> None:
        with self.session(write=True) as s:
            _upsert_meta(s, key, str(value), overwrite=True)

    # -- videos ------------------------------------------------------------------------------

    def find_by_sha256(self, sha256: str) -> VideoRecord | None:
        with self.session() as s:
            row = s.scalar(select(VideoRow).where(VideoRow.sha256 == sha256.lower()))
            return _video_record(row) if row else None

    def unchanged_paths(self, stats: dict[str, tuple[int, int]]) -> dict[str, str]:
        """path -> video_id for archived files whose size and mtime are still those of ingest."""
        out: dict[str, str] = {}
        paths = list(stats)
        with self.session() as s:
            for chunk in chunks(paths):
                query = select(VideoRow.path, VideoRow.video_id, VideoRow.file_size, VideoRow.file_mtime_ns)
                for path, video_id, size, mtime_ns in s.execute(query.where(VideoRow.path.in_(chunk))):
                    if size is not None and (size, mtime_ns) == stats[path]:
                        out[path] = video_id
        return out

    def update_file_stat(self, video_id: str, file_stat: tuple[int, int]) -> None:
        with self.session(write=True) as s:
            s.execute(
                update(VideoRow)
                .where(VideoRow.video_id == video_id)
                .values(file_size=int(file_stat[0]), file_mtime_ns=int(file_stat[1]))
            )

    def get_video(self, ref: str) -> VideoRecord | None:
        """Look up by video_id first, then by external_id."""
        with self.session() as s:
            row = s.get(VideoRow, ref) or s.scalar(select(VideoRow).where(VideoRow.external_id == ref))
            return _video_record(row) if row else None

    def videos(self, status: str | None = None) -> list[VideoRecord]:
        query = select(VideoRow).order_by(VideoRow.first_frame_id, VideoRow.video_id)
        if status is not None:
            if status not in VIDEO_STATUSES:
                raise ValueError(f"unknown video status {status!r}; expected one of {VIDEO_STATUSES}")
            query = query.where(VideoRow.status == status)
        with self.session() as s:
            return [_video_record(row) for row in s.scalars(query)]

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
        """Insert a pending video and its frames under a freshly allocated, contiguous id range."""
        pts, sha256 = checked_new_video(video_id, sha256, frame_pts)
        try:
            with self.session(write=True) as s:
                duplicate = _find_duplicate(s, video_id, sha256, meta.external_id)
                if duplicate:
                    raise duplicate
                first = _allocate_frame_ids(s, len(pts))
                row = VideoRow(
                    video_id=video_id, sha256=sha256, status="pending", path=str(meta.path),
                    external_id=meta.external_id, title=meta.title, source=meta.source,
                    published_at=utc(meta.published_at), uri=meta.uri, location=meta.location,
                    duration_s=float(duration_s), width=int(width), height=int(height), codec=codec,
                    descriptor=descriptor, first_frame_id=first, frame_count=len(pts),
                    ingested_at=now(), committed_checkpoint=None, run_id=run_id,
                    file_size=file_stat[0] if file_stat else None,
                    file_mtime_ns=file_stat[1] if file_stat else None,
                )  # fmt: skip
                s.add(row)
                s.flush()
                _insert_frames(s, video_id, first, pts.tolist())
                record = _video_record(row)
        except IntegrityError as exc:
            # Another writer won a race between our check and our insert.
            with self.session() as s:
                duplicate = _find_duplicate(s, video_id, sha256, meta.external_id)
            if duplicate:
                raise duplicate from exc
            raise
        return record

    def mark_committed(self, video_ids: Sequence[str], checkpoint: int) -> None:
        """Make pending videos visible to search; already committed ones keep their checkpoint."""
        ids = list(dict.fromkeys(video_ids))
        if not ids:
            return
        with self.session(write=True) as s:
            status: dict[str, str] = {}
            for chunk in chunks(ids):
                query = select(VideoRow.video_id, VideoRow.status).where(VideoRow.video_id.in_(chunk))
                status.update({video_id: st for video_id, st in s.execute(query)})
            missing = [v for v in ids if v not in status]
            if missing:
                raise VideoNotFoundError(f"no such videos: {', '.join(missing[:10])}")
            removing = [v for v in ids if status[v] == "removing"]
            if removing:
                raise FirstSeenError(f"videos being removed cannot be committed: {', '.join(removing[:10])}")
            for chunk in chunks(ids):
                s.execute(
                    update(VideoRow)
                    .where(VideoRow.video_id.in_(chunk), VideoRow.status == "pending")
                    .values(status="committed", committed_checkpoint=int(checkpoint))
                )

    def mark_removing(self, video_id: str) -> VideoRecord:
        """Hide a video from search before its vectors leave the index; returns it updated."""
        with self.session(write=True) as s:
            row = s.get(VideoRow, video_id)
            if row is None:
                raise VideoNotFoundError(f"no video {video_id!r}")
            row.status = "removing"
            s.flush()
            return _video_record(row)

    def delete_video(self, video_id: str) -> bool:
        """Delete a video with its frames and copy links; False if it was not there."""
        with self.session(write=True) as s:
            # Explicit deletes, not only ON DELETE CASCADE: a SQLite connection opened elsewhere
            # without foreign_keys=ON must not leave orphans behind.
            s.execute(delete(FrameRow).where(FrameRow.video_id == video_id))
            for companion in ("onscreen_text", "text_passes"):  # text_store.py's tables (migration 0004)
                s.execute(text(f"DELETE FROM {companion} WHERE video_id = :video_id"), {"video_id": video_id})
            s.execute(
                delete(CopyLinkRow).where(or_(CopyLinkRow.video_id == video_id, CopyLinkRow.other_video_id == video_id))
            )
            deleted = cast(CursorResult, s.execute(delete(VideoRow).where(VideoRow.video_id == video_id)))
            return deleted.rowcount > 0

    def resolve_frames(self, frame_ids: Iterable[int]) -> dict[int, tuple[str, float]]:
        """frame_id -> (video_id, pts_s), for frames of committed videos only."""
        ids = sorted({int(i) for i in frame_ids})
        out: dict[int, tuple[str, float]] = {}
        with self.session() as s:
            for chunk in chunks(ids):
                rows = s.execute(
                    select(FrameRow.frame_id, FrameRow.video_id, FrameRow.pts_s)
                    .join(VideoRow, VideoRow.video_id == FrameRow.video_id)
                    .where(FrameRow.frame_id.in_(chunk), VideoRow.status == "committed")
                )
                out.update({int(fid): (vid, float(pts)) for fid, vid, pts in rows})
        return out

    def video_totals(self) -> tuple[dict[str, int], float, int]:
        """Videos by status (every status, zero included), and committed footage seconds and frames."""
        with self.session() as s:
            by_status = dict.fromkeys(VIDEO_STATUSES, 0)
            for st, count in s.execute(select(VideoRow.status, func.count()).group_by(VideoRow.status)):
                by_status[st] = int(count)
            totals = select(func.sum(VideoRow.duration_s), func.sum(VideoRow.frame_count))
            footage, frames = s.execute(totals.where(VideoRow.status == "committed")).one()
            return by_status, float(footage or 0), int(frames or 0)

    def videos_awaiting_copy_links(self) -> list[str]:
        """Committed videos not yet searched against the archive for copies, oldest first."""
        query = (
            select(VideoRow.video_id)
            .where(VideoRow.status == "committed", VideoRow.copies_linked_at.is_(None))
            .order_by(VideoRow.first_frame_id)
        )
        with self.session() as s:
            return list(s.scalars(query))

    def mark_copies_linked(self, video_ids: Sequence[str] | None) -> None:
        """Record that these videos were searched for copies; None forgets it for every video."""
        with self.session(write=True) as s:
            if video_ids is None:
                s.execute(update(VideoRow).values(copies_linked_at=None))
                return
            stamp = now()
            for chunk in chunks(list(video_ids)):
                s.execute(update(VideoRow).where(VideoRow.video_id.in_(chunk)).values(copies_linked_at=stamp))


def _find_duplicate(s: Session, video_id: str, sha256: str, external_id: str | None) -> DuplicateVideoError | None:
    checks = [("sha256", sha256, VideoRow.sha256), ("video_id", video_id, VideoRow.video_id),
              ("external_id", external_id, VideoRow.external_id)]  # fmt: skip
    for field, value, column in checks:
        if value is None:
            continue
        existing = s.scalar(select(VideoRow.video_id).where(column == value))
        if existing is not None:
            return DuplicateVideoError(field, value, existing)
    return None


def _upsert_meta(s: Session, key: str, value: str, *, overwrite: bool) -> None:
    # An upsert, not select-then-insert: two PostgreSQL writers could both see the key missing.
    dialect_insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(cast(Table, ArchiveMetaRow.__table__)).values(key=key, value=value)
    if overwrite:
        stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=["key"])
    s.execute(stmt)


def _allocate_frame_ids(s: Session, n: int) -> int:
    """Reserve [first, first + n); the counter only grows, so removed videos' ids never come back
    (FAISS may still hold them until its next checkpoint)."""
    _upsert_meta(s, NEXT_FRAME_ID_KEY, "0", overwrite=False)
    stored = s.scalar(select(ArchiveMetaRow.value).where(ArchiveMetaRow.key == NEXT_FRAME_ID_KEY).with_for_update())
    highest = s.scalar(select(func.max(FrameRow.frame_id)))
    # The floor guards against a counter that was reset by hand: ids in use are never handed out twice.
    first = max(int(stored or 0), 0 if highest is None else int(highest) + 1)
    s.execute(update(ArchiveMetaRow).where(ArchiveMetaRow.key == NEXT_FRAME_ID_KEY).values(value=str(first + n)))
    return first


def _insert_frames(s: Session, video_id: str, first: int, pts: list[float]) -> None:
    # ORM objects per frame would cost seconds for a long video: Core executemany on SQLite,
    # COPY on PostgreSQL (3x faster than psycopg's executemany for 10k rows).
    if not pts:
        return
    connection = s.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        driver = connection.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            with cursor.copy("COPY frames (frame_id, video_id, pts_s) FROM STDIN") as copy:
                for i, p in enumerate(pts):
                    copy.write_row((first + i, video_id, p))
        return
    s.execute(
        cast(Table, FrameRow.__table__).insert(),
        [{"frame_id": first + i, "video_id": video_id, "pts_s": p} for i, p in enumerate(pts)],
    )
