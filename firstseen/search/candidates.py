"""Candidates for a query: k-NN, alignment per video, calibrated scores, geometric confirmation, insets realigned."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from firstseen.archive import Archive
from firstseen.descriptors import pairwise_similarity
from firstseen.errors import MediaError
from firstseen.records import FrameVectors, sample_step
from firstseen.search.alignment import AlignedSegment, AlignParams, QueryHit, align
from firstseen.search.background import Background
from firstseen.search.calibration import Calibration
from firstseen.search.confirm import Agreement, ArchiveFrames, Unverifiable, confirm_segments
from firstseen.search.query import QueryVectors
from firstseen.search.results import MatchSegment
from firstseen.search.verification import Verifier, VerifyParams
from firstseen.settings import Settings

log = logging.getLogger(__name__)

HITS_PER_FRAME = 4  # archive frames kept per query frame and candidate video for the alignment


@dataclass(frozen=True, slots=True)
class CandidateMatch:
    """One archive video's aligned segments, scored, before provenance is applied."""

    video_id: str
    score: float
    segments: tuple[MatchSegment, ...]


@dataclass(frozen=True, slots=True)
class Aligned:
    """One candidate video's segments, with what confirming them needs: its stored frames
    and the query x archive frame similarities (the better view, per pair)."""

    video_id: str
    segments: list[AlignedSegment]
    stored: FrameVectors
    similarity: np.ndarray  # (query frames, archive frames)


def align_candidates(
    archive: Archive,
    query: QueryVectors,
    *,
    similarity_floor: float,
    neighbours: int,
    candidates: int,
    exclude: frozenset[str] = frozenset(),
    params: AlignParams | None = None,
    background: Background | None = None,
    background_k: int = 10,
) -> list[Aligned]:
    """k-NN per query frame to pick candidate videos (by the evidence of their best frame
    per query frame), then each candidate's raw vectors against every query frame, and an
    alignment of those hits. Unscored: calibration turns the segments into scores, and it is
    the calibrated threshold, measured on negatives, that rejects weak chance alignments, so
    the alignment's own similarity bar is off. Uninformative frames, on either side, vote for
    nothing. With a background, each query frame's similarities are taken relative to its
    similarity to its background_k-th background neighbour (the floor is then on that scale)."""
    params = params or AlignParams(similarity_floor=similarity_floor, min_similarity_margin=0.0)
    views = [query.vectors] if query.mirrored is None else [query.vectors, query.mirrored]
    n = len(query.pts_s)
    usable = query.usable
    if not usable.any():
        return []
    # (views, n): what each query frame's similarities are measured from
    offsets = (
        np.zeros((len(views), n))
        if background is None
        else np.stack([background.kth_similarity(view, background_k) for view in views])
    )
    rows = np.flatnonzero(np.tile(usable, len(views)))
    per_frame = archive.search_frames(np.concatenate(views)[rows], neighbours)
    evidence: dict[str, np.ndarray] = {}
    for row, hits in zip(rows.tolist(), per_frame):
        offset = offsets[row // n, row % n]
        for hit in hits:
            score = hit.score - offset
            if hit.video_id in exclude or score <= similarity_floor:
                continue
            best = evidence.setdefault(hit.video_id, np.zeros(n))
            best[row % n] = max(best[row % n], score - similarity_floor)
    ranked = sorted(evidence, key=lambda vid: -evidence[vid].sum())[:candidates]

    aligned = []
    for video_id in ranked:
        stored = archive.raw_vectors(video_id)
        if stored is not None:
            aligned.append(align_one(query, views, offsets, video_id, stored, archive.spec.metric, params))
    return aligned


def align_one(
    query: QueryVectors,
    views: list[np.ndarray],
    offsets: np.ndarray,
    video_id: str,
    stored: FrameVectors,
    metric: str,
    params: AlignParams,
) -> Aligned:
    """One candidate video: every query frame against its stored vectors, aligned."""
    sims = np.stack([pairwise_similarity(metric, view, stored.vectors) for view in views])
    sims -= offsets[:, :, None]
    sims[:, ~query.usable, :] = -1.0  # below any floor: no hit, no pair
    sims[:, :, ~stored.informative_mask()] = -1.0
    hits = _hits(query, sims, stored.pts_s, params.similarity_floor)
    segments = align(hits, query_times=query.pts_s.tolist(), source_step_s=sample_step(stored.pts_s), params=params)
    return Aligned(video_id, segments, stored, sims.max(axis=0))


NEAR_MISS_SEGMENTS = 2  # segments of a near miss kept for geometry_rescue.py


@dataclass(frozen=True, slots=True)
class NearMiss:
    """A candidate whose best segment scored under the threshold (geometry_rescue.py)."""

    score: float
    aligned: Aligned
    segments: tuple[MatchSegment, ...]

    @classmethod
    def of(cls, aligned: Aligned, scored: list[MatchSegment]) -> NearMiss:
        """From a candidate's segments, scored and best first."""
        return cls(scored[0].score, aligned, tuple(scored[:NEAR_MISS_SEGMENTS]))


@dataclass(frozen=True, slots=True)
class VerifyPolicy:
    """How many candidates and frame pairs the geometry checks, with the verifier to use."""

    params: VerifyParams = VerifyParams()
    videos: int = 6
    pairs: int = 3
    frame_side: int = 360  # archive frames read from the file are decoded at this size
    # the descriptor, to find a still's exact moment among the archived file's frames
    describe: Callable[[list[np.ndarray]], np.ndarray] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, describe=None) -> VerifyPolicy:
        return cls(
            VerifyParams(min_inliers=settings.verify_min_inliers),
            settings.verify_videos,
            settings.verify_pairs,
            settings.decode_max_side,
            describe,
        )


def match_videos(
    archive: Archive,
    query: QueryVectors,
    calibration: Calibration,
    *,
    neighbours: int,
    candidates: int,
    exclude: frozenset[str] = frozenset(),
    verify: VerifyPolicy | None = None,
    background: Background | None = None,
    near_misses: list[NearMiss] | None = None,
) -> tuple[list[CandidateMatch], list[Unverifiable]]:
    """Aligned, calibrated and verified matches, best video first: only segments scoring at or
    above the calibrated threshold are kept, and then (with verify) only those the geometry
    confirms, for the `verify.videos` best candidates; the rest are not matches. Candidates
    whose frames cannot be read are returned apart, so the caller can say so. Candidates
    scoring under the threshold are added to near_misses, where given (geometry_rescue.py)."""
    scored_candidates = []
    for aligned in align_candidates(
        archive,
        query,
        similarity_floor=calibration.similarity_floor,
        neighbours=neighbours,
        candidates=candidates,
        exclude=exclude,
        background=background,
        background_k=calibration.background_k,
    ):
        scored = sorted((scored_segment(seg, query, calibration) for seg in aligned.segments), key=lambda s: -s.score)
        kept = [s for s in scored if s.score >= calibration.threshold]
        if kept:
            scored_candidates.append((kept[0].score, aligned, kept))
        elif scored and near_misses is not None:
            near_misses.append(NearMiss.of(aligned, scored))
    scored_candidates.sort(key=lambda c: -c[0])
    if verify is None:
        found = [CandidateMatch(a.video_id, score, tuple(kept)) for score, a, kept in scored_candidates]
        return found, []
    found, unverifiable = [], []
    verifier = Verifier(verify.params)  # one per search: OpenCV's detectors are not shared across threads
    for _, aligned, kept in scored_candidates[: verify.videos]:
        try:
            confirmed = confirm_aligned(archive, query, aligned, kept, verifier, verify)
        except (MediaError, OSError) as exc:
            log.warning("cannot verify %s: %s", aligned.video_id, exc)
            unverifiable.append(Unverifiable(aligned.video_id, f"archived frames unreadable: {exc}"))
            continue
        confirmed = distinct_segments(
            [_realigned_inset(archive, query, aligned, seg, calibration, background) for seg in confirmed]
        )
        if confirmed:
            found.append(CandidateMatch(aligned.video_id, confirmed[0].score, tuple(confirmed)))
    return sorted(found, key=lambda m: -m.score), unverifiable


def distinct_segments(segments: list[MatchSegment]) -> list[MatchSegment]:
    """Best first, without segments that repeat a better one (realigned insets can coincide)."""
    kept: list[MatchSegment] = []
    for seg in sorted(segments, key=lambda s: -s.score):
        if not any(
            _overlap(seg.query_start, seg.query_end, k.query_start, k.query_end) > 0.5
            and _overlap(seg.source_start, seg.source_end, k.source_start, k.source_end) > 0.5
            for k in kept
        ):
            kept.append(seg)
    return kept


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    """Shared length over the shorter one's (1 for two equal instants)."""
    shorter = min(a1 - a0, b1 - b0)
    shared = min(a1, b1) - max(a0, b0)
    return 1.0 if shorter <= 0 and shared >= 0 else max(0.0, shared) / shorter if shorter > 0 else 0.0


INSET_MAX_AREA = 0.6  # a source picture filling less of the clip's frame than this is described on its own


def _realigned_inset(
    archive: Archive,
    query: QueryVectors,
    aligned: Aligned,
    segment: MatchSegment,
    calibration: Calibration,
    background: Background | None,
) -> MatchSegment:
    """Where the source sits inside a larger frame (picture-in-picture, a phone screenshot, a
    meme), the frame's descriptor is mostly about the surroundings, and the alignment drifts.
    That region is described on its own and aligned again; the verified evidence stays."""
    inset = segment.evidence.source_in_query if segment.evidence else None
    if inset is None or inset.area > INSET_MAX_AREA or query.describe_region is None:
        return segment
    _, kept = align_within(
        query.within(inset), aligned.video_id, aligned.stored, archive.spec.metric, calibration, background
    )
    overlapping = [c for c in kept if c.query_start <= segment.query_end and c.query_end >= segment.query_start]
    if not overlapping:
        return segment
    best = max(overlapping, key=lambda c: (c.query_end - c.query_start, c.score))
    return replace(best, mirrored=segment.mirrored, evidence=segment.evidence)


def align_within(
    inner: QueryVectors,
    video_id: str,
    stored: FrameVectors,
    metric: str,
    calibration: Calibration,
    background: Background | None,
) -> tuple[Aligned, list[MatchSegment]]:
    """A query described in one region of its frames, aligned with one video: the alignment
    and its segments at or above the calibrated threshold, best first."""
    offsets = (
        np.zeros((1, len(inner.pts_s)))
        if background is None
        else background.kth_similarity(inner.vectors, calibration.background_k)[None]
    )
    params = AlignParams(similarity_floor=calibration.similarity_floor, min_similarity_margin=0.0)
    aligned = align_one(inner, [inner.vectors], offsets, video_id, stored, metric, params)
    kept = [
        c for c in (scored_segment(s, inner, calibration) for s in aligned.segments) if c.score >= calibration.threshold
    ]
    return aligned, sorted(kept, key=lambda c: -c.score)


def scored_segment(segment: AlignedSegment, query: QueryVectors, calibration: Calibration) -> MatchSegment:
    return _scored(_to_clip_end(segment, query), calibration)


def confirm_candidate(
    archive: Archive, query: QueryVectors, aligned: Aligned, segments: list[MatchSegment], verify: VerifyPolicy
) -> list[MatchSegment]:
    """The segments of one candidate that the geometry confirms (for calibration and tests)."""
    return confirm_aligned(archive, query, aligned, segments, Verifier(verify.params), verify)


def confirm_aligned(
    archive: Archive,
    query: QueryVectors,
    aligned: Aligned,
    kept: list[MatchSegment],
    verifier: Verifier,
    verify: VerifyPolicy,
    agree: Agreement | None = None,
) -> list[MatchSegment]:
    """The kept segments of one aligned candidate that the geometry confirms (in the query's
    window, if any); with agree, each carries how well its verified pairs agree as pictures."""
    if query.image is None:
        raise MediaError("the query's frames were not kept, so nothing can be verified")
    stored = (
        aligned.stored
        if aligned.stored.thumbnails is not None
        else archive.raw_vectors(aligned.video_id, thumbnails=True) or aligned.stored
    )
    record = archive.video(aligned.video_id)
    frames = ArchiveFrames(stored, record.path if record else "", verify.frame_side, verify.describe)
    return confirm_segments(
        verifier,
        kept,
        pairs_per_segment=verify.pairs,
        query_pts=query.pts_s,
        query_ok=query.usable,
        query_image=query.image,
        source=stored,
        frames=frames,
        similarity=aligned.similarity,
        source_name=aligned.video_id,
        query_vector=query.vectors[0] if len(query.pts_s) == 1 else None,
        window=query.window,
        agree=agree,
        query_overlay=query.static_overlay(),
    )


def _hits(query: QueryVectors, sims: np.ndarray, source_pts: np.ndarray, floor: float) -> list[QueryHit]:
    """For each query frame, its best archive frames in either view, each with BOTH views'
    similarities: the mirror decision compares the two at the same archive frame, and in a
    still scene a frame missing from one view's short list would look like a large gain."""
    keep = min(HITS_PER_FRAME, len(source_pts))
    best = sims.max(axis=0)
    top = np.argpartition(-best, keep - 1, axis=1)[:, :keep]
    hits: list[QueryHit] = []
    for i, row in enumerate(top):
        for j in row:
            for mirrored in range(len(sims)):
                if sims[mirrored, i, j] > floor:
                    hits.append(
                        QueryHit(
                            float(query.pts_s[i]), float(source_pts[j]), float(sims[mirrored, i, j]), bool(mirrored)
                        )
                    )
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
