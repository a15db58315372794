"""The SQL catalog: what each FAISS frame id means, the video lifecycle, copy links and ingest runs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (BigInteger, CheckConstraint, DateTime, Float, ForeignKey, Integer, MetaData, String,
                        Text, UniqueConstraint, create_engine, delete, event, func, or_, select, text, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from firstseen.errors import BadInputError, FirstSeenError
from firstseen.records import VideoMetadata

VIDEO_STATUSES = ("pending", "committed", "removing")
RUN_STATUSES = ("running", "ok", "failed", "crashed")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
NEXT_FRAME_ID_KEY = "next_frame_id"

_IN_CHUNK = 900  # below SQLite's historic limit of 999 bound parameters per statement
_BUSY_TIMEOUT_S = 30.0
_PG_MIGRATION_LOCK = 0x46_53_43_41_54  # advisory lock key: concurrent first opens must not race DDL
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DuplicateVideoError(FirstSeenError):
    """A video with this sha256, external_id or video_id is already in the catalog."""

    def __init__(self, field: str, value: str, existing_video_id: str):
        self.field = field
        self.value = value
        self.existing_video_id = existing_video_id
        super().__init__(f"{field} {value!r} is already in the catalog (video {existing_video_id})")


class VideoNotFoundError(BadInputError):
    """No video has this id (or external id)."""


# Explicit constraint names, so the hand-written migration can name them identically on every backend.
_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


class IngestRunRow(Base):
    __tablename__ = "ingest_runs"
    __table_args__ = (CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),)

    run_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    added: Mapped[int] = mapped_column(Integer)
    skipped: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    footage_s: Mapped[float] = mapped_column(Float)
    frames: Mapped[int] = mapped_column(Integer)
    errors: Mapped[str] = mapped_column(Text)  # JSON list of {"path", "line", "reason"}
    params: Mapped[str] = mapped_column(Text)  # JSON object
    quarantined: Mapped[int] = mapped_column(Integer, default=0)  # files this run put in quarantine


class ArchiveMetaRow(Base):
    __tablename__ = "archive_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class VideoRow(Base):
    __tablename__ = "videos"
    __table_args__ = (CheckConstraint(f"status IN {VIDEO_STATUSES!r}", name="status"),)

    video_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    path: Mapped[str] = mapped_column(Text, index=True)
    # The file's size and mtime at ingest: an unchanged file in a drop folder is skipped
    # without reading it again to hash it.
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    file_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    external_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    title: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    uri: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[float] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    codec: Mapped[str] = mapped_column(String(64))
    descriptor: Mapped[str] = mapped_column(String(64))
    first_frame_id: Mapped[int] = mapped_column(BigInteger)
    frame_count: Mapped[int] = mapped_column(Integer)
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    committed_checkpoint: Mapped[int | None] = mapped_column(Integer)
    # Set once the video has been searched against the archive for copies (see search.py).
    copies_linked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Pruning old runs must not take their videos with them.
    run_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_runs.run_id", ondelete="SET NULL"))


class FrameRow(Base):
    __tablename__ = "frames"

    # Ids are allocated by the catalog (they are FAISS ids), so no sequence: PostgreSQL would
    # otherwise make a BIGSERIAL of it.
    frame_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    video_id: Mapped[str] = mapped_column(ForeignKey("videos.video_id", ondelete="CASCADE"), index=True)
    pts_s: Mapped[float] = mapped_column(Float)


class CopyLinkRow(Base):
    __tablename__ = "copy_links"
    __table_args__ = (
        UniqueConstraint("video_id", "other_video_id"),
        CheckConstraint("video_id <> other_video_id", name="not_self"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    video_id: Mapped[str] = mapped_column(ForeignKey("videos.video_id", ondelete="CASCADE"))
    # Indexed so that deleting a video does not scan the table for the reverse direction.
    other_video_id: Mapped[str] = mapped_column(ForeignKey("videos.video_id", ondelete="CASCADE"), index=True)
    score: Mapped[float] = mapped_column(Float)
    segments: Mapped[str] = mapped_column(Text)  # JSON list of segment objects
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True, slots=True)
class VideoRecord:
    video_id: str
    sha256: str
    status: str
    path: str
    external_id: str | None
    title: str | None
    source: str | None
    published_at: datetime | None
    uri: str | None
    location: str | None
    duration_s: float
    width: int
    height: int
    codec: str
    descriptor: str
    first_frame_id: int
    frame_count: int
    ingested_at: datetime
    committed_checkpoint: int | None
    run_id: int | None

    @property
    def frame_ids(self) -> range:
        return range(self.first_frame_id, self.first_frame_id + self.frame_count)


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    added: int
    skipped: int
    failed: int
    footage_s: float
    frames: int
    errors: list[dict[str, Any]]
    params: dict[str, Any]
    quarantined: int = 0


@dataclass(frozen=True, slots=True)
class CopyLinkRecord:
    video_id: str
    other_video_id: str
    score: float
    segments: list[dict[str, Any]]  # seen from video_id: "query_*" is video_id, "source_*" the other
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CatalogStats:
    videos_by_status: dict[str, int]  # every status present, zero included
    committed_footage_s: float
    committed_frames: int
    copy_links: int  # links between two videos, each counted once although stored both ways
    last_run: RunRecord | None


def _utc(value: datetime | date | None) -> datetime | None:
    """Callers' naive datetimes and SQLite's tz-less values both mean UTC."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(), UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


def _video_record(row: VideoRow) -> VideoRecord:
    return VideoRecord(
        video_id=row.video_id, sha256=row.sha256, status=row.status, path=row.path,
        external_id=row.external_id, title=row.title, source=row.source,
        published_at=_utc(row.published_at), uri=row.uri, location=row.location,
        duration_s=float(row.duration_s), width=row.width, height=row.height, codec=row.codec,
        descriptor=row.descriptor, first_frame_id=int(row.first_frame_id), frame_count=row.frame_count,
        ingested_at=_utc(row.ingested_at), committed_checkpoint=row.committed_checkpoint, run_id=row.run_id,
    )  # fmt: skip


def _run_record(row: IngestRunRow) -> RunRecord:
    return RunRecord(
        run_id=row.run_id, started_at=_utc(row.started_at), finished_at=_utc(row.finished_at),
        status=row.status, added=row.added, skipped=row.skipped, failed=row.failed,
        footage_s=float(row.footage_s), frames=row.frames,
        errors=json.loads(row.errors), params=json.loads(row.params), quarantined=row.quarantined or 0,
    )  # fmt: skip


def _mirror_segment(segment: dict[str, Any]) -> dict[str, Any]:
    """The same matched footage seen from the other video: query and source swap, speed inverts."""
    out = dict(segment)
    for a, b in (("query_start", "source_start"), ("query_end", "source_end")):
        if a in segment or b in segment:
            out[a], out[b] = segment.get(b), segment.get(a)
    speed = segment.get("speed")
    if isinstance(speed, (int, float)) and speed > 0:
        out["speed"] = 1.0 / speed
    evidence = segment.get("evidence")
    if isinstance(evidence, dict):  # each picture's place in the other swaps too
        out["evidence"] = dict(evidence, query_in_source=evidence.get("source_in_query"),
                               source_in_query=evidence.get("query_in_source"))
    return out


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is switched off so _sqlite_on_begin decides how to BEGIN
    # (and so DDL in migrations stays inside our transaction).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (search) never block the writer (ingest)
    cursor.execute("PRAGMA synchronous=FULL")  # WAL + NORMAL may lose the last commits on power loss
    cursor.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A write takes the write lock up front: a deferred transaction that reads and then writes
    # (frame-id allocation) could otherwise fail midway, or act on a stale read.
    write = conn.get_execution_options().get("firstseen_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise BadInputError(f"catalog URL must be SQLite or PostgreSQL, got {parsed.get_backend_name()!r}")
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": _BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


class SqlCatalog:
    """The catalog over SQLite or PostgreSQL. Every public write is one transaction."""

    def __init__(self, url: str):
        self.url = url
        self._engine = _make_engine(url)
        self._writer = self._engine.execution_options(firstseen_write=True)

    @classmethod
    def open(cls, url: str) -> SqlCatalog:
        """Connect and bring the schema up to the newest migration."""
        catalog = cls(url)
        try:
            catalog.migrate()
        except BaseException:
            catalog.close()
            raise
        return catalog

    def migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        with self._writer.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    dispose = close

    def __enter__(self) -> SqlCatalog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction, for the catalog's companion tables (failures.py)."""
        with self._session(write=write) as s:
            yield s

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        with Session(self._writer if write else self._engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    # -- archive meta ------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._session() as s:
            return s.scalar(select(ArchiveMetaRow.value).where(ArchiveMetaRow.key == key))

    def set_meta(self, key: str, value: str) -> None:
        with self._session(write=True) as s:
            _upsert_meta(s, key, str(value), overwrite=True)

    # -- videos ------------------------------------------------------------------------------

    def find_by_sha256(self, sha256: str) -> VideoRecord | None:
        with self._session() as s:
            row = s.scalar(select(VideoRow).where(VideoRow.sha256 == sha256.lower()))
            return _video_record(row) if row else None

    def unchanged_paths(self, stats: dict[str, tuple[int, int]]) -> dict[str, str]:
        """path -> video_id for archived files whose size and mtime are still those of ingest."""
        out: dict[str, str] = {}
        paths = list(stats)
        with self._session() as s:
            for chunk in _chunks(paths):
                query = select(VideoRow.path, VideoRow.video_id, VideoRow.file_size, VideoRow.file_mtime_ns)
                for path, video_id, size, mtime_ns in s.execute(query.where(VideoRow.path.in_(chunk))):
                    if size is not None and (size, mtime_ns) == stats[path]:
                        out[path] = video_id
        return out

    def update_file_stat(self, video_id: str, file_stat: tuple[int, int]) -> None:
        with self._session(write=True) as s:
            s.execute(update(VideoRow).where(VideoRow.video_id == video_id)
                      .values(file_size=int(file_stat[0]), file_mtime_ns=int(file_stat[1])))

    def get_video(self, ref: str) -> VideoRecord | None:
        """Look up by video_id first, then by external_id."""
        with self._session() as s:
            row = s.get(VideoRow, ref) or s.scalar(select(VideoRow).where(VideoRow.external_id == ref))
            return _video_record(row) if row else None

    def videos(self, status: str | None = None) -> list[VideoRecord]:
        query = select(VideoRow).order_by(VideoRow.first_frame_id, VideoRow.video_id)
        if status is not None:
            if status not in VIDEO_STATUSES:
                raise ValueError(f"unknown video status {status!r}; expected one of {VIDEO_STATUSES}")
            query = query.where(VideoRow.status == status)
        with self._session() as s:
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
        pts = np.asarray(frame_pts, dtype=np.float64)
        if pts.ndim != 1 or not np.all(np.isfinite(pts)) or np.any(pts < 0):
            raise ValueError("frame_pts must be a 1-d array of finite timestamps >= 0")
        if not video_id or len(video_id) > 32:
            raise ValueError(f"video_id must be 1 to 32 characters, got {video_id!r}")
        sha256 = sha256.lower()
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
        try:
            with self._session(write=True) as s:
                duplicate = _find_duplicate(s, video_id, sha256, meta.external_id)
                if duplicate:
                    raise duplicate
                first = _allocate_frame_ids(s, len(pts))
                row = VideoRow(
                    video_id=video_id, sha256=sha256, status="pending", path=str(meta.path),
                    external_id=meta.external_id, title=meta.title, source=meta.source,
                    published_at=_utc(meta.published_at), uri=meta.uri, location=meta.location,
                    duration_s=float(duration_s), width=int(width), height=int(height), codec=codec,
                    descriptor=descriptor, first_frame_id=first, frame_count=len(pts),
                    ingested_at=_now(), committed_checkpoint=None, run_id=run_id,
                    file_size=file_stat[0] if file_stat else None,
                    file_mtime_ns=file_stat[1] if file_stat else None,
                )  # fmt: skip
                s.add(row)
                s.flush()
                _insert_frames(s, video_id, first, pts.tolist())
                record = _video_record(row)
        except IntegrityError as exc:
            # Another writer won a race between our check and our insert.
            with self._session() as s:
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
        with self._session(write=True) as s:
            status: dict[str, str] = {}
            for chunk in _chunks(ids):
                query = select(VideoRow.video_id, VideoRow.status).where(VideoRow.video_id.in_(chunk))
                status.update({video_id: st for video_id, st in s.execute(query)})
            missing = [v for v in ids if v not in status]
            if missing:
                raise VideoNotFoundError(f"no such videos: {', '.join(missing[:10])}")
            removing = [v for v in ids if status[v] == "removing"]
            if removing:
                raise FirstSeenError(f"videos being removed cannot be committed: {', '.join(removing[:10])}")
            for chunk in _chunks(ids):
                s.execute(
                    update(VideoRow)
                    .where(VideoRow.video_id.in_(chunk), VideoRow.status == "pending")
                    .values(status="committed", committed_checkpoint=int(checkpoint))
                )

    def mark_removing(self, video_id: str) -> VideoRecord:
        """Hide a video from search before its vectors leave the index; returns it updated."""
        with self._session(write=True) as s:
            row = s.get(VideoRow, video_id)
            if row is None:
                raise VideoNotFoundError(f"no video {video_id!r}")
            row.status = "removing"
            s.flush()
            return _video_record(row)

    def delete_video(self, video_id: str) -> bool:
        """Delete a video with its frames and copy links; False if it was not there."""
        with self._session(write=True) as s:
            # Explicit deletes, not only ON DELETE CASCADE: a SQLite connection opened elsewhere
            # without foreign_keys=ON must not leave orphans behind.
            s.execute(delete(FrameRow).where(FrameRow.video_id == video_id))
            for companion in ("onscreen_text", "text_passes"):  # text_store.py's tables (migration 0004)
                s.execute(text(f"DELETE FROM {companion} WHERE video_id = :video_id"), {"video_id": video_id})
            s.execute(
                delete(CopyLinkRow).where(
                    or_(CopyLinkRow.video_id == video_id, CopyLinkRow.other_video_id == video_id)
                )
            )
            return s.execute(delete(VideoRow).where(VideoRow.video_id == video_id)).rowcount > 0

    def resolve_frames(self, frame_ids: Iterable[int]) -> dict[int, tuple[str, float]]:
        """frame_id -> (video_id, pts_s), for frames of committed videos only."""
        ids = sorted({int(i) for i in frame_ids})
        out: dict[int, tuple[str, float]] = {}
        with self._session() as s:
            for chunk in _chunks(ids):
                rows = s.execute(
                    select(FrameRow.frame_id, FrameRow.video_id, FrameRow.pts_s)
                    .join(VideoRow, VideoRow.video_id == FrameRow.video_id)
                    .where(FrameRow.frame_id.in_(chunk), VideoRow.status == "committed")
                )
                out.update({int(fid): (vid, float(pts)) for fid, vid, pts in rows})
        return out

    # -- copy links --------------------------------------------------------------------------

    def add_copy_link(self, video_id: str, other_video_id: str, score: float, segments: list[dict]) -> None:
        """Record shared footage in both directions, replacing an earlier link between the two."""
        if video_id == other_video_id:
            raise ValueError("a video cannot be a copy of itself")
        now = _now()
        with self._session(write=True) as s:
            s.execute(
                delete(CopyLinkRow).where(
                    or_(
                        (CopyLinkRow.video_id == video_id) & (CopyLinkRow.other_video_id == other_video_id),
                        (CopyLinkRow.video_id == other_video_id) & (CopyLinkRow.other_video_id == video_id),
                    )
                )
            )
            s.add_all([
                CopyLinkRow(video_id=video_id, other_video_id=other_video_id, score=float(score),
                            segments=_json(list(segments)), created_at=now),
                CopyLinkRow(video_id=other_video_id, other_video_id=video_id, score=float(score),
                            segments=_json([_mirror_segment(seg) for seg in segments]), created_at=now),
            ])  # fmt: skip

    def videos_awaiting_copy_links(self) -> list[str]:
        """Committed videos not yet searched against the archive for copies, oldest first."""
        query = (select(VideoRow.video_id)
                 .where(VideoRow.status == "committed", VideoRow.copies_linked_at.is_(None))
                 .order_by(VideoRow.first_frame_id))
        with self._session() as s:
            return list(s.scalars(query))

    def reset_copy_links(self) -> None:
        """Forget every copy link, and that any video was searched for copies (one transaction)."""
        with self._session(write=True) as s:
            s.execute(delete(CopyLinkRow))
            s.execute(update(VideoRow).values(copies_linked_at=None))

    def mark_copies_linked(self, video_ids: Sequence[str]) -> None:
        now = _now()
        with self._session(write=True) as s:
            for chunk in _chunks(list(video_ids)):
                s.execute(update(VideoRow).where(VideoRow.video_id.in_(chunk)).values(copies_linked_at=now))

    def copy_links(self, video_id: str) -> list[CopyLinkRecord]:
        """Links from this video, best score first."""
        query = (
            select(CopyLinkRow)
            .where(CopyLinkRow.video_id == video_id)
            .order_by(CopyLinkRow.score.desc(), CopyLinkRow.other_video_id)
        )
        with self._session() as s:
            return [
                CopyLinkRecord(
                    video_id=row.video_id, other_video_id=row.other_video_id, score=float(row.score),
                    segments=json.loads(row.segments), created_at=_utc(row.created_at),
                )  # fmt: skip
                for row in s.scalars(query)
            ]

    # -- ingest runs -------------------------------------------------------------------------

    def start_run(self, params: dict[str, Any]) -> int:
        with self._session(write=True) as s:
            row = IngestRunRow(
                started_at=_now(), finished_at=None, status="running", added=0, skipped=0, failed=0,
                footage_s=0.0, frames=0, errors="[]", params=_json(params), quarantined=0,
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
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"a run finishes as ok, failed or crashed, not {status!r}")
        with self._session(write=True) as s:
            row = s.get(IngestRunRow, run_id)
            if row is None:
                raise KeyError(f"no ingest run {run_id}")
            row.status, row.finished_at = status, _now()
            row.added, row.skipped, row.failed = int(added), int(skipped), int(failed)
            row.footage_s, row.frames, row.errors = float(footage_s), int(frames), _json(list(errors))
            row.quarantined = int(quarantined)

    def runs(self, limit: int = 10) -> list[RunRecord]:
        """The newest runs first."""
        with self._session() as s:
            rows = s.scalars(select(IngestRunRow).order_by(IngestRunRow.run_id.desc()).limit(limit))
            return [_run_record(row) for row in rows]

    def mark_stale_runs_crashed(self) -> int:
        """Runs still "running" were left by a killed process (the caller holds the writer lock).

        Their finished_at stays empty: when they died is not known."""
        with self._session(write=True) as s:
            query = update(IngestRunRow).where(IngestRunRow.status == "running").values(status="crashed")
            return s.execute(query).rowcount

    # -- stats -------------------------------------------------------------------------------

    def stats(self) -> CatalogStats:
        with self._session() as s:
            by_status = dict.fromkeys(VIDEO_STATUSES, 0)
            for st, count in s.execute(select(VideoRow.status, func.count()).group_by(VideoRow.status)):
                by_status[st] = int(count)
            totals = select(func.sum(VideoRow.duration_s), func.sum(VideoRow.frame_count))
            footage, frames = s.execute(totals.where(VideoRow.status == "committed")).one()
            link_rows = s.scalar(select(func.count()).select_from(CopyLinkRow)) or 0
            last = s.scalar(select(IngestRunRow).order_by(IngestRunRow.run_id.desc()).limit(1))
            return CatalogStats(
                videos_by_status=by_status,
                committed_footage_s=float(footage or 0),
                committed_frames=int(frames or 0),
                copy_links=int(link_rows) // 2,
                last_run=_run_record(last) if last else None,
            )


def _find_duplicate(
    s: Session, video_id: str, sha256: str, external_id: str | None
) -> DuplicateVideoError | None:
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
    stmt = dialect_insert(ArchiveMetaRow.__table__).values(key=key, value=value)
    if overwrite:
        stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=["key"])
    s.execute(stmt)


def _allocate_frame_ids(s: Session, n: int) -> int:
    """Reserve [first, first + n); the counter only grows, so removed videos' ids never come back
    (FAISS may still hold them until its next checkpoint)."""
    _upsert_meta(s, NEXT_FRAME_ID_KEY, "0", overwrite=False)
    stored = s.scalar(
        select(ArchiveMetaRow.value).where(ArchiveMetaRow.key == NEXT_FRAME_ID_KEY).with_for_update()
    )
    highest = s.scalar(select(func.max(FrameRow.frame_id)))
    # The floor guards against a counter that was reset by hand: ids in use are never handed out twice.
    first = max(int(stored), 0 if highest is None else int(highest) + 1)
    s.execute(
        update(ArchiveMetaRow).where(ArchiveMetaRow.key == NEXT_FRAME_ID_KEY).values(value=str(first + n))
    )
    return first


def _insert_frames(s: Session, video_id: str, first: int, pts: list[float]) -> None:
    # ORM objects per frame would cost seconds for a long video: Core executemany on SQLite,
    # COPY on PostgreSQL (3x faster than psycopg's executemany for 10k rows).
    if not pts:
        return
    connection = s.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        with connection.connection.driver_connection.cursor() as cursor:
            with cursor.copy("COPY frames (frame_id, video_id, pts_s) FROM STDIN") as copy:
                for i, p in enumerate(pts):
                    copy.write_row((first + i, video_id, p))
        return
    s.execute(
        FrameRow.__table__.insert(),
        [{"frame_id": first + i, "video_id": video_id, "pts_s": p} for i, p in enumerate(pts)],
    )
