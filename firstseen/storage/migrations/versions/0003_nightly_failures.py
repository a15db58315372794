"""Nightly ingestion: per-file failure ledger (retries, quarantine) and file fingerprints.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

Videos archived before this revision have no fingerprint, so the next run hashes them once
more (and finds them known by sha256) before the cheap unchanged-file skip applies.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_failures",
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=True),
        sa.Column("file_mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_id", sa.Integer(), nullable=True),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["last_run_id"],
            ["ingest_runs.run_id"],
            ondelete="SET NULL",
            name="fk_ingest_failures_last_run_id_ingest_runs",
        ),
        sa.PrimaryKeyConstraint("path", name="pk_ingest_failures"),
    )
    with op.batch_alter_table("videos") as batch:
        batch.add_column(sa.Column("file_size", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("file_mtime_ns", sa.BigInteger(), nullable=True))
        batch.create_index("ix_videos_path", ["path"])
    with op.batch_alter_table("ingest_runs") as batch:
        batch.add_column(sa.Column("quarantined", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("ingest_runs") as batch:
        batch.drop_column("quarantined")
    with op.batch_alter_table("videos") as batch:
        batch.drop_index("ix_videos_path")
        batch.drop_column("file_mtime_ns")
        batch.drop_column("file_size")
    op.drop_table("ingest_failures")
