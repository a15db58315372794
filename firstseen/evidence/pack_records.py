"""The evidence pack as records: its frames (query and archive side), its segments, the pack and what produced it."""

from __future__ import annotations

from dataclasses import dataclass, field

from firstseen.search.results import MatchSegment, SearchResult, VideoMatch


@dataclass
class PackFrame:
    """One frame of the pack: which side, when, its JPEG, the text read in it."""

    name: str  # file name inside the pack
    side: str  # "query" or "source"
    t: float
    jpeg: bytes | None  # None: the frame could not be read (reason says why)
    text: list[str] = field(default_factory=list)
    reason: str | None = None
    preview: bytes | None = None  # the report's copy, at most PREVIEW_SIDE pixels


@dataclass
class PackSegment:
    match: VideoMatch
    index: int
    segment: MatchSegment
    frames: list[tuple[PackFrame, PackFrame]]  # (query, source) at start, middle, end
    strip: list[tuple[PackFrame, PackFrame]] | None  # reversed or re-timed: six pairs in query order
    archive_text: list[str] = field(default_factory=list)  # the archive's stored chyrons for that stretch


@dataclass
class EvidencePack:
    result: SearchResult
    result_dict: dict
    segments: list[PackSegment]
    query_facts: dict
    produced_by: dict
    missing: list[str]  # "video_id: reason" for archived files that could not be read
