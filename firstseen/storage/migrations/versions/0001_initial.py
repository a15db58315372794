"""Initial schema: ingest runs, archive meta, videos, frames, copy links.

Revision ID: 0001
Revises:
Create Date: 2025-11-21

Written by hand to match firstseen.storage.catalog's models, constraint names included
(tests/test_catalog.py checks that the two agree). Names are wrapped in op.f() because the
models' naming convention would otherwise be applied to them a second time.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the status lists: later code changes must come with a migration.
_VIDEO_STATUSES = "('pending', 'committed', 'removing')"
_RUN_STATUSES = "('running', 'ok', 'failed', 'crashed')"


def upgrade() -> None:
    op.create_table(
        "ingest_runs",
        sa.Column("run_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("footage_s", sa.Float(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.CheckConstraint(f"status IN {_RUN_STATUSES}", name=op.f("ck_ingest_runs_status")),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_ingest_runs")),
    )
    op.create_table(
        "archive_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_archive_meta")),
    )
    op.create_table(
        "videos",
        sa.Column("video_id", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("codec", sa.String(length=64), nullable=False),
        sa.Column("descriptor", sa.String(length=64), nullable=False),
        sa.Column("first_frame_id", sa.BigInteger(), nullable=False),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("committed_checkpoint", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(f"status IN {_VIDEO_STATUSES}", name=op.f("ck_videos_status")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["ingest_runs.run_id"], name=op.f("fk_videos_run_id_ingest_runs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("video_id", name=op.f("pk_videos")),
        sa.UniqueConstraint("external_id", name=op.f("uq_videos_external_id")),
        sa.UniqueConstraint("sha256", name=op.f("uq_videos_sha256")),
    )
    op.create_index(op.f("ix_videos_status"), "videos", ["status"], unique=False)
    op.create_table(
        "frames",
        sa.Column("frame_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("video_id", sa.String(length=32), nullable=False),
        sa.Column("pts_s", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["video_id"], ["videos.video_id"], name=op.f("fk_frames_video_id_videos"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("frame_id", name=op.f("pk_frames")),
    )
    op.create_index(op.f("ix_frames_video_id"), "frames", ["video_id"], unique=False)
    op.create_table(
        "copy_links",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("video_id", sa.String(length=32), nullable=False),
        sa.Column("other_video_id", sa.String(length=32), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("segments", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("video_id <> other_video_id", name=op.f("ck_copy_links_not_self")),
        sa.ForeignKeyConstraint(
            ["video_id"], ["videos.video_id"], name=op.f("fk_copy_links_video_id_videos"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["other_video_id"],
            ["videos.video_id"],
            name=op.f("fk_copy_links_other_video_id_videos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_copy_links")),
        sa.UniqueConstraint("video_id", "other_video_id", name=op.f("uq_copy_links_video_id_other_video_id")),
    )
    op.create_index(op.f("ix_copy_links_other_video_id"), "copy_links", ["other_video_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_copy_links_other_video_id"), table_name="copy_links")
    op.drop_table("copy_links")
    op.drop_index(op.f("ix_frames_video_id"), table_name="frames")
    op.drop_table("frames")
    op.drop_index(op.f("ix_videos_status"), table_name="videos")
    op.drop_table("videos")
    op.drop_table("archive_meta")
    op.drop_table("ingest_runs")
