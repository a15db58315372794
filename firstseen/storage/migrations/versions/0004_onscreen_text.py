"""On-screen text read from archived footage, with full-text search (SQLite FTS5, PostgreSQL tsvector).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Text is matched on a case-folded copy made in Python (`folded`), so that Cyrillic and Hangul
fold the same way on SQLite and on a PostgreSQL database with a C locale. The FTS5 table is
external-content and kept by triggers: it is derived, so backups skip it and a restore
refills it through the same triggers.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "onscreen_text",
        sa.Column("text_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("video_id", sa.String(32), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("end_s", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("folded", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("box", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["video_id"], ["videos.video_id"], ondelete="CASCADE", name="fk_onscreen_text_video_id_videos"
        ),
        sa.PrimaryKeyConstraint("text_id", name="pk_onscreen_text"),
    )
    op.create_index("ix_onscreen_text_video_id", "onscreen_text", ["video_id", "start_s"])
    op.create_table(
        "text_passes",
        sa.Column("video_id", sa.String(32), nullable=False),
        sa.Column("reader", sa.Text(), nullable=False),
        sa.Column("frames_read", sa.Integer(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["video_id"], ["videos.video_id"], ondelete="CASCADE", name="fk_text_passes_video_id_videos"
        ),
        sa.PrimaryKeyConstraint("video_id", name="pk_text_passes"),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE onscreen_text_fts USING fts5(folded, content='onscreen_text', "
            "content_rowid='text_id', tokenize='unicode61 remove_diacritics 0')"
        )
        op.execute(
            "CREATE TRIGGER onscreen_text_ai AFTER INSERT ON onscreen_text BEGIN "
            "INSERT INTO onscreen_text_fts(rowid, folded) VALUES (new.text_id, new.folded); END"
        )
        op.execute(
            "CREATE TRIGGER onscreen_text_ad AFTER DELETE ON onscreen_text BEGIN "
            "INSERT INTO onscreen_text_fts(onscreen_text_fts, rowid, folded) "
            "VALUES ('delete', old.text_id, old.folded); END"
        )
    else:
        op.execute("CREATE INDEX ix_onscreen_text_fts ON onscreen_text USING gin (to_tsvector('simple', folded))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS onscreen_text_ad")
        op.execute("DROP TRIGGER IF EXISTS onscreen_text_ai")
        op.execute("DROP TABLE IF EXISTS onscreen_text_fts")
    op.drop_table("text_passes")
    op.drop_index("ix_onscreen_text_video_id", table_name="onscreen_text")
    op.drop_table("onscreen_text")
