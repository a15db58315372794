"""The archive's on-screen text: lines read from archived footage with their times, and full-text search over them.

Stored beside the catalog in the same database (migration 0004). Consecutive reads of the
same line are kept as one span (a chyron on screen for ten seconds is one row). Search runs
on a case-folded copy of each line, through SQLite FTS5 or a PostgreSQL tsvector index, so
"Владивосток" finds "ВЛАДИВОСТОК" on either backend."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text, delete, select, text
from sqlalchemy.orm import Mapped, mapped_column

from firstseen.errors import BadInputError
from firstseen.storage.sql import SqlDatabase
from firstseen.storage.tables import Base, VideoRow

DERIVED_TABLE_PREFIX = "onscreen_text_fts"  # FTS5's table and its shadow tables: rebuilt, never backed up


class TextRow(Base):
    __tablename__ = "onscreen_text"
    __table_args__ = (Index("ix_onscreen_text_video_id", "video_id", "start_s"),)

    text_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    video_id: Mapped[str] = mapped_column(String(32), ForeignKey("videos.video_id", ondelete="CASCADE"))
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    folded: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    box: Mapped[str] = mapped_column(Text)  # JSON {x, y, w, h}: fractions of the frame


class TextPassRow(Base):
    __tablename__ = "text_passes"

    video_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("videos.video_id", ondelete="CASCADE"), primary_key=True
    )
    reader: Mapped[str] = mapped_column(Text)
    frames_read: Mapped[int] = mapped_column(Integer)
    lines: Mapped[int] = mapped_column(Integer)
    read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True, slots=True)
class TextSpan:
    """A line of on-screen text and the stretch of a video it was read in."""

    video_id: str
    start_s: float
    end_s: float
    text: str
    confidence: float
    box: dict

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("a text span needs text")
        if not 0 <= self.start_s <= self.end_s:
            raise ValueError(f"a text span needs 0 <= start <= end, got {self.start_s}, {self.end_s}")

    def to_dict(self) -> dict:
        return {
            "video_id": self.video_id,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "text": self.text,
            "confidence": round(self.confidence, 1),
            "box": self.box,
        }


def fold(value: str) -> str:
    return unicodedata.normalize("NFC", value).casefold()


def _span(row: TextRow) -> TextSpan:
    return TextSpan(row.video_id, row.start_s, row.end_s, row.text, row.confidence, json.loads(row.box))


class TextStore:
    """On-screen text in the catalog's database."""

    def __init__(self, catalog: SqlDatabase):
        self._catalog = catalog

    def replace_video_text(self, video_id: str, spans: Sequence[TextSpan], *, reader: str, frames_read: int) -> None:
        """A video's text, all at once (a pass read again replaces the old one), and the pass itself."""
        with self._catalog.session(write=True) as s:
            s.execute(delete(TextRow).where(TextRow.video_id == video_id))
            s.add_all(
                TextRow(
                    video_id=video_id,
                    start_s=span.start_s,
                    end_s=span.end_s,
                    text=span.text,
                    folded=fold(span.text),
                    confidence=span.confidence,
                    box=json.dumps(span.box),
                )
                for span in spans
            )
            s.merge(
                TextPassRow(
                    video_id=video_id,
                    reader=reader,
                    frames_read=frames_read,
                    lines=len(spans),
                    read_at=datetime.now(UTC),
                )
            )

    def video_text(self, video_id: str) -> list[TextSpan]:
        with self._catalog.session() as s:
            rows = s.scalars(select(TextRow).where(TextRow.video_id == video_id).order_by(TextRow.start_s))
            return [_span(r) for r in rows]

    def text_between(self, video_id: str, t0: float, t1: float) -> list[TextSpan]:
        """The lines on screen at some moment from t0 to t1."""
        with self._catalog.session() as s:
            rows = s.scalars(
                select(TextRow)
                .where(TextRow.video_id == video_id, TextRow.end_s >= t0, TextRow.start_s <= t1)
                .order_by(TextRow.start_s)
            )
            return [_span(r) for r in rows]

    def videos_read(self) -> set[str]:
        with self._catalog.session() as s:
            return set(s.scalars(select(TextPassRow.video_id)))

    def search(self, query: str, *, limit: int = 50) -> list[TextSpan]:
        """Spans of committed videos whose text holds every word of the query, best first."""
        words = fold(query).split()
        if not words or not any(any(c.isalnum() for c in w) for w in words):
            raise BadInputError("a text search needs at least one word", code="bad_query")
        if not 1 <= limit <= 500:
            raise BadInputError(f"limit must lie in 1..500, got {limit}", code="bad_query")
        committed = select(VideoRow.video_id).where(VideoRow.status == "committed")
        with self._catalog.session() as s:
            if s.get_bind().dialect.name == "sqlite":
                # each word quoted: FTS5 query syntax (AND, NEAR, *, ") in user text is taken literally
                match = " ".join('"' + w.replace('"', '""') + '"' for w in words)
                ids = (
                    s.execute(
                        text(
                            "SELECT rowid FROM onscreen_text_fts WHERE onscreen_text_fts MATCH :q "
                            "ORDER BY rank LIMIT :n"
                        ),
                        {"q": match, "n": limit * 4},
                    )
                    .scalars()
                    .all()
                )
                order = {i: k for k, i in enumerate(ids)}
                rows = s.scalars(select(TextRow).where(TextRow.text_id.in_(ids), TextRow.video_id.in_(committed)))
                ranked = sorted(rows, key=lambda r: order[r.text_id])
            else:
                found = s.scalars(
                    select(TextRow)
                    .where(
                        text("to_tsvector('simple', folded) @@ plainto_tsquery('simple', :q)"),
                        TextRow.video_id.in_(committed),
                    )
                    .order_by(
                        text("ts_rank(to_tsvector('simple', folded), plainto_tsquery('simple', :q)) DESC"),
                        TextRow.video_id,
                        TextRow.start_s,
                    )
                    .params(q=" ".join(words))
                )
                ranked = list(found)
            return [_span(r) for r in ranked[:limit]]

    def delete_video(self, video_id: str) -> None:
        with self._catalog.session(write=True) as s:
            s.execute(delete(TextRow).where(TextRow.video_id == video_id))
            s.execute(delete(TextPassRow).where(TextPassRow.video_id == video_id))
