"""Response models: they document the HTTP contract in /docs and check what the API sends."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Box(BaseModel):
    x: float = Field(description="left edge, as a fraction of the frame's width")
    y: float = Field(description="top edge, as a fraction of the frame's height")
    w: float
    h: float
    area: float = Field(description="share of the frame's area")


class Evidence(BaseModel):
    """What geometric verification (local features + RANSAC) found on the segment's frame pairs."""

    pairs_checked: int
    pairs_verified: int
    inliers: int = Field(description="feature matches agreeing on one transform, over the verified pairs")
    mirror_decided: bool = Field(description="false: the two views tied (symmetric or textureless): no claim")
    mirrored: bool
    region: str | None = Field(None, description="the region in words, when the picture is cropped or inset")
    query_in_source: Box | None = Field(None, description="where the clip's picture lies in the source frame")
    source_in_query: Box | None = Field(None, description="where the source's picture lies in the clip's frame")
    aligned_similarity: float | None = Field(
        None,
        description="for a match found through its aligned parts: the descriptor's similarity (less the "
        "background's) of the parts of each verified pair that overlap, mean over the pairs",
    )
    cells_compared: int = Field(
        0, description="cells of the overlapping picture with detail, over the verified pairs (0: none to compare)"
    )
    picture_agreement: float | None = Field(
        None,
        description="share of those cells where the clip and the source agree once aligned by the "
        "verified transform (correlation of their pixels); null where no cell had detail",
    )


class Segment(BaseModel):
    query_start: float
    query_end: float
    source_start: float
    source_end: float
    speed: float = Field(description="source seconds per query second")
    reversed: bool
    mirrored: bool
    score: float
    timing_known: bool = Field(True, description="false: too short or still to tell direction and speed")
    region: str | None = Field(None, description='e.g. "shows 36% of the source frame, its top left part"')
    evidence: Evidence | None = None


class VideoRef(BaseModel):
    """What identifies an archive video to a reader: ids, title, outlet, date, link."""

    video_id: str
    external_id: str | None
    title: str | None
    source: str | None = Field(description="outlet or agency")
    published_at: str | None = Field(description="ISO 8601")
    uri: str | None
    location: str | None


class Match(VideoRef):
    score: float = Field(description="0..1, calibrated")
    segments: list[Segment]
    via: str | None = Field(None, description="the match through whose copy links this one was found")


class Query(BaseModel):
    filename: str
    kind: str = Field(description='"video" or "image"')
    duration_s: float
    frames_sampled: int


class QueryFrame(BaseModel):
    t: float = Field(description="query seconds")
    jpeg: str = Field(description="data:image/jpeg;base64,...")


class Unverifiable(BaseModel):
    video_id: str
    reason: str


class SearchResult(BaseModel):
    query: Query
    verdict: str = Field(description='"match" or "no_match"')
    reason: str | None = Field(
        None, description='with no_match: "too_little_picture" when the query has too little in the picture to search'
    )
    earliest: Match | None = Field(description="the earliest-published archive video holding this footage")
    matches: list[Match] = Field(description="best first")
    unverifiable: list[Unverifiable] = Field(
        default_factory=list, description="candidates whose archived frames could not be read"
    )
    query_frames: list[QueryFrame] | None = Field(None, description="only with ?previews=true")
    search_id: str | None = Field(
        None,
        description="this search as kept for a while: GET /v1/searches/{id} and "
        "/v1/searches/{id}/evidence.zip (same key, or an admin key)",
    )


class Copy(VideoRef):
    score: float
    segments: list[Segment] = Field(description="query_* on this video, source_* on the copy")


class Video(VideoRef):
    duration_s: float
    width: int
    height: int
    codec: str
    sha256: str
    frames: int
    ingested_at: str
    copies: list[Copy] = Field(description="other archive videos sharing footage with this one, oldest first")


class IngestLines(BaseModel):
    lines: list[dict] = Field(
        description="manifest objects: path (required), external_id, title, source, published_at, uri, location",
        max_length=10_000,
    )


class ErrorBody(BaseModel):
    code: str
    message: str


class Error(BaseModel):
    error: ErrorBody
