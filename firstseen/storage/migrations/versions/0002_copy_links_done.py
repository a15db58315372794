"""Record when a video's copy links were computed, so a run cut short finishes them later.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Videos archived before this revision get NULL, so the next ingest run links them too.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("videos") as batch:
        batch.add_column(sa.Column("copies_linked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("copies_linked_at")
