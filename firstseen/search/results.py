"""The search result records and their JSON form, which is a public contract (CLI --json and HTTP)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from firstseen.records import VideoRecord
from firstseen.search.geometry import SegmentEvidence


@dataclass(frozen=True, slots=True)
class MatchSegment:
    """A stretch of the query aligned with a stretch of one archive video.

    speed is source seconds per query second. timing_known is False where the footage shown
    is too short or too still to tell direction and speed (a screenshot, a static shot): then
    speed is 1.0 and reversed False, which are not claims."""

    query_start: float
    query_end: float
    source_start: float
    source_end: float
    speed: float
    reversed: bool
    mirrored: bool
    score: float
    timing_known: bool = True
    evidence: SegmentEvidence | None = None  # what the geometry verified; None on unverified paths

    def __post_init__(self) -> None:
        values = (self.query_start, self.query_end, self.source_start, self.source_end, self.speed, self.score)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"segment values must be finite: {values}")
        if self.query_end < self.query_start or self.source_end < self.source_start:
            raise ValueError(f"segment ends precede starts: {self}")
        if self.query_start < 0 or self.source_start < 0:
            raise ValueError(f"segment times must be >= 0: {self}")
        if self.speed <= 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must lie in [0, 1], got {self.score}")
        if not self.timing_known and (self.reversed or self.speed != 1.0):
            raise ValueError("a segment without known timing claims no direction or speed")

    @property
    def slope(self) -> float:
        """d(source)/d(query): negative when reversed."""
        span = self.query_end - self.query_start
        if not self.timing_known:
            return (self.source_end - self.source_start) / span if span > 0 else 0.0
        return -self.speed if self.reversed else self.speed

    def source_at(self, query_t: float) -> float:
        anchor = self.source_end if self.slope < 0 else self.source_start
        return anchor + self.slope * (query_t - self.query_start)

    def to_dict(self) -> dict:
        return {
            "query_start": round(self.query_start, 3),
            "query_end": round(self.query_end, 3),
            "source_start": round(self.source_start, 3),
            "source_end": round(self.source_end, 3),
            "speed": round(self.speed, 3),
            "reversed": self.reversed,
            "mirrored": self.mirrored,
            "score": round(self.score, 4),
            "timing_known": self.timing_known,
            "region": self.evidence.describe() if self.evidence else None,
            "evidence": self.evidence.to_dict() if self.evidence else None,
        }

    @classmethod
    def from_dict(cls, data: dict, *, score: float | None = None) -> MatchSegment:
        evidence = SegmentEvidence.from_dict(data["evidence"]) if data.get("evidence") else None
        return cls(
            float(data["query_start"]),
            float(data["query_end"]),
            float(data["source_start"]),
            float(data["source_end"]),
            float(data.get("speed", 1.0)),
            bool(data.get("reversed", False)),
            bool(data.get("mirrored", False)),
            float(data.get("score", 0.0) if score is None else score),
            bool(data.get("timing_known", True)),
            evidence,
        )


@dataclass(frozen=True, slots=True)
class VideoMatch:
    """One archive video holding the query's footage. via names the matched video through
    whose copy links this one was found, when the query did not match it directly."""

    video: VideoRecord
    score: float
    segments: tuple[MatchSegment, ...]
    via: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must lie in [0, 1], got {self.score}")
        if not self.segments:
            raise ValueError("a match needs at least one segment")

    @property
    def video_id(self) -> str:
        return self.video.video_id

    def to_dict(self) -> dict:
        return {
            **reference_dict(self.video),
            "score": round(self.score, 4),
            "segments": [s.to_dict() for s in self.segments],
            "via": self.via,
        }


def reference_dict(video: VideoRecord) -> dict:
    """What names an archive video to a reader (the contract's MATCH fields before the score)."""
    return {
        "video_id": video.video_id,
        "external_id": video.external_id,
        "title": video.title,
        "source": video.source,
        "published_at": video.published_at.isoformat() if video.published_at else None,
        "uri": video.uri,
        "location": video.location,
    }


@dataclass(frozen=True, slots=True)
class QueryInfo:
    filename: str
    kind: str  # "video" or "image"
    duration_s: float
    frames_sampled: int

    def __post_init__(self) -> None:
        if self.kind not in ("video", "image"):
            raise ValueError(f"query kind must be video or image, got {self.kind!r}")
        if self.frames_sampled < 1 or self.duration_s < 0:
            raise ValueError("a query has at least one frame and a non-negative duration")


@dataclass(frozen=True, slots=True)
class SearchResult:
    query: QueryInfo
    matches: tuple[VideoMatch, ...]  # best first
    earliest: VideoMatch | None
    timings_s: dict = field(default_factory=dict)  # stage -> seconds, for logs and benchmarks
    # Why there is no match, when it is not simply "not in the archive": too_little_picture.
    reason: str | None = None
    unverifiable: tuple = ()  # confirm.Unverifiable: candidates whose frames could not be read

    def __post_init__(self) -> None:
        if (self.earliest is None) != (not self.matches):
            raise ValueError("earliest is set exactly when there are matches")
        if any(a.score < b.score for a, b in zip(self.matches, self.matches[1:])):
            raise ValueError("matches are sorted by score, best first")
        if self.reason is not None and self.matches:
            raise ValueError("a no-match reason goes with no matches")

    @property
    def verdict(self) -> str:
        return "match" if self.matches else "no_match"

    def to_dict(self) -> dict:
        q = self.query
        return {
            "query": {
                "filename": q.filename,
                "kind": q.kind,
                "duration_s": round(q.duration_s, 3),
                "frames_sampled": q.frames_sampled,
            },
            "verdict": self.verdict,
            "reason": self.reason,
            "earliest": self.earliest.to_dict() if self.earliest else None,
            "matches": [m.to_dict() for m in self.matches],
            "unverifiable": [u.to_dict() for u in self.unverifiable],
        }


def result_from_dict(data: dict, video_of) -> SearchResult:
    """A stored result made whole again against the catalog (video_of: video id -> record or
    None). A video gone since is left out; earliest stays the stored one if it is still there."""

    def match(m: dict) -> VideoMatch | None:
        record = video_of(m["video_id"])
        if record is None:
            return None
        return VideoMatch(
            record, float(m["score"]), tuple(MatchSegment.from_dict(s) for s in m["segments"]), m.get("via")
        )

    matches = tuple(x for x in (match(m) for m in data.get("matches") or []) if x is not None)
    earliest = match(data["earliest"]) if data.get("earliest") else None
    if earliest is not None:
        earliest = next((m for m in matches if m.video_id == earliest.video_id), earliest)
    if not matches:
        earliest = None
    elif earliest is None:  # the stored earliest is gone (a takedown purges such searches; a race may not)
        earliest = min(matches, key=lambda m: (m.video.published_at is None, m.video.published_at or 0))
    q = data["query"]
    return SearchResult(
        QueryInfo(q.get("filename") or "query", q["kind"], float(q["duration_s"]), int(q["frames_sampled"])),
        matches,
        earliest,
        reason=data.get("reason"),
    )
