"""The catalog's tables as SQLAlchemy models; the hand-written migrations create exactly these."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

VIDEO_STATUSES = ("pending", "committed", "removing")
RUN_STATUSES = ("running", "ok", "failed", "crashed")


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


JOB_STATUSES = ("queued", "claimed", "committed", "failed")


class IngestJobRow(Base):
    """One file's ingest job in the shared ledger (storage/job_ledger.py)."""

    __tablename__ = "ingest_jobs"
    __table_args__ = (UniqueConstraint("job_key"),)

    job_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_key: Mapped[str] = mapped_column(Text)  # the file as it was enqueued: path, size, mtime
    path: Mapped[str] = mapped_column(Text)
    item: Mapped[str] = mapped_column(Text)  # the manifest item (JSON): what any worker needs to ingest it
    status: Mapped[str] = mapped_column(String(16), index=True)
    token: Mapped[str | None] = mapped_column(String(36))  # the current claim's; a commit must carry it
    worker: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claims: Mapped[int] = mapped_column(Integer)
    video_id: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
