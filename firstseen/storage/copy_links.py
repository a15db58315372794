"""Copy links in SQL: verified shared footage between two archived videos, stored both ways with its evidence."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, func, or_, select

from firstseen.records import CopyLinkRecord
from firstseen.storage.sql import SqlDatabase, now, to_json, utc
from firstseen.storage.tables import CopyLinkRow


def mirror_segment(segment: dict[str, Any]) -> dict[str, Any]:
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
        out["evidence"] = dict(
            evidence, query_in_source=evidence.get("source_in_query"), source_in_query=evidence.get("query_in_source")
        )
    return out


class SqlCopyLinks:
    """CopyLinkStore (protocols.py) on the catalog's database."""

    def __init__(self, db: SqlDatabase):
        self.db = db

    def add_copy_link(self, video_id: str, other_video_id: str, score: float, segments: list[dict]) -> None:
        """Record shared footage in both directions, replacing an earlier link between the two."""
        if video_id == other_video_id:
            raise ValueError("a video cannot be a copy of itself")
        stamp = now()
        with self.db.session(write=True) as s:
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
                            segments=to_json(list(segments)), created_at=stamp),
                CopyLinkRow(video_id=other_video_id, other_video_id=video_id, score=float(score),
                            segments=to_json([mirror_segment(seg) for seg in segments]), created_at=stamp),
            ])  # fmt: skip

    def delete_all(self) -> None:
        with self.db.session(write=True) as s:
            s.execute(delete(CopyLinkRow))

    def delete_video(self, video_id: str) -> None:
        with self.db.session(write=True) as s:
            s.execute(
                delete(CopyLinkRow).where(or_(CopyLinkRow.video_id == video_id, CopyLinkRow.other_video_id == video_id))
            )

    def count(self) -> int:
        """Links between two videos, each counted once although stored both ways."""
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(CopyLinkRow)) or 0) // 2

    def copy_links(self, video_id: str) -> list[CopyLinkRecord]:
        """Links from this video, best score first."""
        query = (
            select(CopyLinkRow)
            .where(CopyLinkRow.video_id == video_id)
            .order_by(CopyLinkRow.score.desc(), CopyLinkRow.other_video_id)
        )
        with self.db.session() as s:
            return [
                CopyLinkRecord(
                    video_id=row.video_id,
                    other_video_id=row.other_video_id,
                    score=float(row.score),
                    segments=json.loads(row.segments),
                    created_at=utc(row.created_at),
                )  # fmt: skip
                for row in s.scalars(query)
            ]
