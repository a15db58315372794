"""Finding where a clip or still came from: dense query sampling, k-NN, alignment per video, provenance."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from firstseen.alignment import AlignedSegment, AlignParams, QueryHit, align
from firstseen.archive import Archive, DescriptorSpec, open_archive
from firstseen.calibration import Calibration, load_calibration
from firstseen.descriptors import FrameDescriptor, create_descriptor, pairwise_similarity
from firstseen.errors import BadInputError, MediaError
from firstseen.media import IMAGE_EXTENSIONS, load_image, probe, sample_frames
from firstseen.provenance import copies_through_links, earliest_source
from firstseen.records import SampledFrame
from firstseen.results import MatchSegment, QueryInfo, SearchResult, VideoMatch
from firstseen.settings import Settings

log = logging.getLogger(__name__)

HITS_PER_FRAME = 4  # archive frames kept per query frame and candidate video for the alignment


@dataclass(frozen=True, slots=True)
class QueryVectors:
    """A query's sampled frames, described as shown and mirrored; timestamps travel with them."""

    info: QueryInfo
    pts_s: np.ndarray  # (n,) float64
    vectors: np.ndarray  # (n, d) as the descriptor returns them
    mirrored: np.ndarray | None  # (n, d) of the horizontally flipped frames, or None

    def __post_init__(self) -> None:
        n = len(self.pts_s)
        if n == 0 or len(self.vectors) != n or (self.mirrored is not None and len(self.mirrored) != n):
            raise ValueError("a query needs one vector (and one mirrored vector) per sampled frame")
        if n > 1 and np.any(np.diff(self.pts_s) <= 0):
            raise ValueError("query timestamps must increase")


def sample_query(path: Path, settings: Settings) -> tuple[QueryInfo, list[SampledFrame]]:
    """Decode a query file: a still image gives one frame; a video gives frames at real
    timestamps, every frame of a short clip, otherwise query_fps (fewer for very long clips)."""
    path = Path(path)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return _image_query(path, settings)
    try:
        info = probe(path)
    except MediaError as video_error:
        try:  # uploads arrive under any name: a screenshot called clip.mp4 is still a screenshot
            return _image_query(path, settings)
        except MediaError as image_error:
            # Pillow knew the format (an image bomb, a broken PNG): its reason is the one that fits
            raise (video_error if image_error.code == "not_media" else image_error) from None
    if info.duration_s > settings.query_max_duration_s:
        raise BadInputError(f"clip is {info.duration_s:.0f} s long; the limit is {settings.query_max_duration_s:.0f} s",
                            code="too_long")
    dense = info.duration_s <= settings.query_dense_below_s
    fps = None if dense else min(settings.query_fps, settings.query_max_frames / max(info.duration_s, 1e-6))
    frames = list(sample_frames(path, fps=fps, max_side=settings.decode_max_side, threads=settings.decode_threads,
                                skip_nonref=False, max_truncation_s=settings.max_truncation_s))
    if len(frames) > settings.query_max_frames:  # a short clip at a very high frame rate
        keep = np.linspace(0, len(frames) - 1, settings.query_max_frames).round().astype(int)
        frames = [frames[i] for i in np.unique(keep)]
    duration = max(info.duration_s, frames[-1].pts_s)
    return QueryInfo(path.name, "video", duration, len(frames)), frames


def _image_query(path: Path, settings: Settings) -> tuple[QueryInfo, list[SampledFrame]]:
    frame = load_image(path, max_side=settings.decode_max_side, max_pixels=settings.image_max_pixels)
    return QueryInfo(path.name, "image", 0.0, 1), [frame]


def describe_query(path: Path, descriptor: FrameDescriptor, settings: Settings) -> QueryVectors:
    info, frames = sample_query(path, settings)
    shown = [f.rgb for f in frames]
    flipped = [np.ascontiguousarray(f.rgb[:, ::-1]) for f in frames]
    vectors = descriptor.describe(shown + flipped)  # one call: batches stay full
    n = len(frames)
    return QueryVectors(info, np.array([f.pts_s for f in frames], dtype=np.float64), vectors[:n], vectors[n:])


@dataclass(frozen=True, slots=True)
class CandidateMatch:
    """One archive video's aligned segments, scored, before provenance is applied."""

    video_id: str
    score: float
    segments: tuple[MatchSegment, ...]


def align_candidates(archive: Archive, query: QueryVectors, *, similarity_floor: float, neighbours: int,
                     candidates: int, exclude: frozenset[str] = frozenset(),
                     params: AlignParams | None = None) -> list[tuple[str, list[AlignedSegment]]]:
    """k-NN per query frame to pick candidate videos (by the evidence of their best frame
    per query frame), then each candidate's raw vectors against every query frame, and an
    alignment of those hits. Unscored: calibration turns the segments into scores, and it is
    the calibrated threshold, measured on negatives, that rejects weak chance alignments, so
    the alignment's own similarity bar is off."""
    params = params or AlignParams(similarity_floor=similarity_floor, min_similarity_margin=0.0)
    views = [query.vectors] if query.mirrored is None else [query.vectors, query.mirrored]
    n = len(query.pts_s)
    per_frame = archive.search_frames(np.concatenate(views), neighbours)
    evidence: dict[str, np.ndarray] = {}
    for row, hits in enumerate(per_frame):
        for hit in hits:
            if hit.video_id in exclude or hit.score <= similarity_floor:
                continue
            best = evidence.setdefault(hit.video_id, np.zeros(n))
            best[row % n] = max(best[row % n], hit.score - similarity_floor)
    ranked = sorted(evidence, key=lambda vid: -evidence[vid].sum())[:candidates]

    aligned = []
    for video_id in ranked:
        stored = archive.vectors.get(video_id)
        if stored is None:
            continue
        hits = _hits(query, views, stored.pts_s, stored.vectors, archive.spec.metric, similarity_floor)
        step = float(np.median(np.diff(stored.pts_s))) if len(stored.pts_s) > 1 else 1.0
        aligned.append((video_id, align(hits, query_times=query.pts_s.tolist(), source_step_s=step, params=params)))
    return aligned


def match_videos(archive: Archive, query: QueryVectors, calibration: Calibration, *, neighbours: int,
                 candidates: int, exclude: frozenset[str] = frozenset()) -> list[CandidateMatch]:
    """Aligned, calibrated matches: only segments scoring at or above the calibrated
    threshold are kept; best video first."""
    found = []
    for video_id, segments in align_candidates(archive, query, similarity_floor=calibration.similarity_floor,
                                               neighbours=neighbours, candidates=candidates, exclude=exclude):
        scored = (_scored(_to_clip_end(seg, query), calibration) for seg in segments)
        kept = tuple(sorted((s for s in scored if s.score >= calibration.threshold), key=lambda s: -s.score))
        if kept:
            found.append(CandidateMatch(video_id, kept[0].score, kept))
    return sorted(found, key=lambda m: -m.score)


def _hits(query: QueryVectors, views: list[np.ndarray], source_pts: np.ndarray, source_vectors: np.ndarray,
          metric: str, floor: float) -> list[QueryHit]:
    """For each query frame, its best archive frames in either view, each with BOTH views'
    similarities: the mirror decision compares the two at the same archive frame, and in a
    still scene a frame missing from one view's short list would look like a large gain."""
    sims = np.stack([pairwise_similarity(metric, view, source_vectors) for view in views])
    keep = min(HITS_PER_FRAME, len(source_pts))
    best = sims.max(axis=0)
    top = np.argpartition(-best, keep - 1, axis=1)[:, :keep]
    hits: list[QueryHit] = []
    for i, row in enumerate(top):
        for j in row:
            for mirrored in range(len(views)):
                if sims[mirrored, i, j] > floor:
                    hits.append(QueryHit(float(query.pts_s[i]), float(source_pts[j]), float(sims[mirrored, i, j]),
                                         bool(mirrored)))
    return hits


def _to_clip_end(segment: AlignedSegment, query: QueryVectors) -> AlignedSegment:
    """A segment reaching the last sampled frame runs on to the end of the clip: that frame
    stays on screen until then, and without it every segment would end one step short."""
    pts = query.pts_s
    if len(pts) < 2 or segment.query_end < pts[-1] - 1e-6:
        return segment
    extra = min(query.info.duration_s - segment.query_end, 1.5 * float(np.median(np.diff(pts))))
    if extra <= 0:
        return segment
    source_start, source_end = segment.source_start, segment.source_end
    if segment.timing_known and segment.reversed:
        source_start = max(0.0, source_start - segment.speed * extra)
    elif segment.timing_known:
        source_end += segment.speed * extra
    return replace(segment, query_end=segment.query_end + extra, source_start=source_start, source_end=source_end)


def _scored(segment: AlignedSegment, calibration: Calibration) -> MatchSegment:
    return MatchSegment(
        query_start=segment.query_start, query_end=segment.query_end,
        source_start=segment.source_start, source_end=segment.source_end,
        speed=float(segment.speed) if segment.timing_known else 1.0,
        reversed=bool(segment.reversed and segment.timing_known), mirrored=bool(segment.mirrored),
        score=calibration.score(segment.similarity, segment.frames), timing_known=bool(segment.timing_known),
    )  # fmt: skip


def find_sources(archive: Archive, query: QueryVectors, calibration: Calibration, settings: Settings, *,
                 top_k: int = 10) -> SearchResult:
    """The archive videos holding the query's footage, best first, and the earliest of them
    (also among copies known only through the links recorded at ingest)."""
    if top_k < 1:
        raise BadInputError(f"top-k must be at least 1, got {top_k}")
    started = time.perf_counter()
    candidates = match_videos(archive, query, calibration, neighbours=settings.search_neighbours,
                              candidates=settings.search_candidates)
    records = {m.video_id: archive.catalog.get_video(m.video_id) for m in candidates}
    direct = [VideoMatch(records[m.video_id], m.score, m.segments) for m in candidates if records[m.video_id]]
    via_links = copies_through_links(direct, archive.catalog.copy_links, archive.catalog.get_video)
    holders = direct + via_links
    earliest = earliest_source(holders)
    shown = holders[:top_k]
    if earliest is not None and earliest not in shown:
        shown.append(earliest)  # the answer a fact-checker came for is never cut off
    return SearchResult(query.info, tuple(shown), earliest, {"match_s": time.perf_counter() - started})


def search_file(archive: Archive, path: Path, descriptor: FrameDescriptor, calibration: Calibration,
                settings: Settings, *, top_k: int = 10) -> SearchResult:
    """Decode, describe and search one query file, timing each stage."""
    started = time.perf_counter()
    query = describe_query(path, descriptor, settings)
    described = time.perf_counter()
    result = find_sources(archive, query, calibration, settings, top_k=top_k)
    result.timings_s.update(describe_s=described - started, total_s=time.perf_counter() - started)
    log.info("searched %s: %s, %d matches in %.2f s", query.info.filename, result.verdict,
             len(result.matches), result.timings_s["total_s"])
    return result


class Searcher:
    """What a search needs, loaded once: the descriptor, its calibration and the archive
    (read-only, checked to have been built with that descriptor). The CLI opens one per
    command; a long-lived caller keeps one."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.descriptor = create_descriptor(settings.descriptor, settings)
        self.calibration = load_calibration(self.descriptor.config_id, settings.calibration_path)
        self.archive = open_archive(settings.data_dir, settings.resolved_catalog_url(),
                                    DescriptorSpec.of(self.descriptor), nprobe=settings.index_nprobe)

    def search(self, path: Path, *, top_k: int = 10) -> SearchResult:
        return search_file(self.archive, path, self.descriptor, self.calibration, self.settings, top_k=top_k)

    def close(self) -> None:
        self.archive.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
