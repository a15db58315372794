"""Confirming aligned candidates by geometry: which frame pairs to check, where their pixels come from, the verdict.

An alignment that clears the calibrated score is still only descriptor similarity. Here the
few best frame pairs of each segment are matched with local features (verification.py);
a segment none of whose pairs verifies is dropped, and the geometry decides MIRRORED and
the region. Archive frames come from the grey thumbnails stored at ingest, else from the
archived file; when neither is there, the video is reported as unverifiable, never as a
silent miss."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from firstseen.media.frames import frame_at, frames_between
from firstseen.records import FrameVectors, sample_step
from firstseen.search.geometry import PairEvidence, Region, SegmentEvidence, summarise
from firstseen.search.overlay import OverlayMask, overlay_of
from firstseen.search.results import MatchSegment
from firstseen.search.verification import Verifier, decode_thumbnail

log = logging.getLogger(__name__)

ImageOf = Callable[[int], np.ndarray]  # frame index -> RGB or grey pixels
# (query frame, source frame, their verified evidence) -> how well they agree as pictures
Agreement = Callable[[np.ndarray, np.ndarray, PairEvidence], "float | None"]


@dataclass(frozen=True, slots=True)
class Unverifiable:
    """A candidate whose frames could not be read, so no claim was made about it."""

    video_id: str
    reason: str

    def to_dict(self) -> dict:
        return {"video_id": self.video_id, "reason": self.reason}


def pick_pairs(
    segment: MatchSegment,
    query_pts: np.ndarray,
    query_ok: np.ndarray,
    source_pts: np.ndarray,
    source_ok: np.ndarray,
    similarity: np.ndarray,
    count: int,
) -> list[tuple[int, int]]:
    """Up to `count` (query frame, archive frame) pairs along the segment, spread over it:
    in each of `count` stretches the pair the descriptor finds most alike near the aligned time.
    A still (one query frame) is paired with its best distinct archive frames near that time."""
    inside = np.flatnonzero(
        (query_pts >= segment.query_start - 1e-6) & (query_pts <= segment.query_end + 1e-6) & query_ok
    )
    if inside.size == 0 or not source_ok.any():
        return []
    step = sample_step(source_pts)
    best: list[tuple[float, int, int]] = []
    for i in inside:
        t = segment.source_at(float(query_pts[i]))
        near = np.flatnonzero((np.abs(source_pts - t) <= 1.5 * step + 0.5) & source_ok)
        if near.size == 0:
            continue
        j = int(near[np.argmax(similarity[i, near])])
        best.append((float(similarity[i, j]), int(i), j))
    if not best:
        return []
    if len(inside) == 1:  # a still: several archive frames near the time, best first
        still = best[0][1]
        t = segment.source_at(float(query_pts[still]))
        near = np.flatnonzero((np.abs(source_pts - t) <= 1.5 * step + 0.5) & source_ok)
        ranked = near[np.argsort(-similarity[still, near])][:count]
        return [(still, int(j)) for j in ranked]
    chunks = np.array_split(np.arange(len(best)), min(count, len(best)))
    return [(best[c[k]][1], best[c[k]][2]) for c in chunks if c.size for k in [int(np.argmax([best[x][0] for x in c]))]]


OVERLAY_CONTEXT_S = 30.0  # an archive video's overlay is read from its frames this far around a segment


class ArchiveFrames:
    """Archive frames for verification: the stored thumbnail of a sampled frame, and the
    archived file's own frame at an exact time (decoded only when the thumbnails fail: the
    archive samples a frame a second, and in fast or particle-filled footage the nearest
    sample may show a different moment from the query's frame)."""

    def __init__(
        self,
        stored: FrameVectors,
        path: str,
        max_side: int,
        describe: Callable[[list[np.ndarray]], np.ndarray] | None = None,
    ):
        self._stored, self._path, self._max_side, self._describe = stored, path, max_side, describe
        self._decoded: dict[float, np.ndarray] = {}
        self._overlays: dict[tuple[int, ...], OverlayMask | None] = {}

    @property
    def has_thumbnails(self) -> bool:
        return self._stored.thumbnails is not None

    def sample(self, index: int) -> np.ndarray:
        thumbs = self._stored.thumbnails
        if thumbs is not None:
            return decode_thumbnail(thumbs.get(index))
        return self.at(float(self._stored.pts_s[index]))

    def at(self, t: float) -> np.ndarray:
        """The file's frame on screen at t; MediaError when the file is gone or unreadable."""
        if t in self._decoded:
            return self._decoded[t]
        return frame_at(self._path, max(0.0, t), max_side=self._max_side).rgb

    def overlay_near(self, start: float, end: float) -> OverlayMask | None:
        """The static overlay (a logo, a program's chrome) of the stored thumbnails within
        OVERLAY_CONTEXT_S of start..end; None where there is none, or no thumbnails to tell
        (decoding the file for it would cost more than the verification it guards)."""
        if self._stored.thumbnails is None:
            return None
        pts = self._stored.pts_s
        start, end = start - OVERLAY_CONTEXT_S, end + OVERLAY_CONTEXT_S
        key = tuple(int(k) for k in np.searchsorted(pts, [start, end], side="left"))
        if key not in self._overlays:
            try:
                self._overlays[key] = overlay_of(self.sample, pts, self._stored.informative_mask(), start, end)
            except ValueError as exc:  # a damaged thumbnail: no mask, as for an archive without thumbnails
                log.warning("no overlay mask for %s: %s", self._path, exc)
                self._overlays[key] = None
        return self._overlays[key]

    def nearest_moments(self, query_vector: np.ndarray, t: float, span: float, count: int = 3) -> list[float]:
        """The times of the file's frames within span of t whose descriptors are nearest the
        query's (a still is one moment: the archive's samples a second apart rarely hold it)."""
        if self._describe is None:
            return []
        frames = frames_between(self._path, max(0.0, t - span), t + span, max_side=self._max_side)
        if not frames:
            return []
        sims = self._describe([f.rgb for f in frames]) @ np.asarray(query_vector, np.float32)
        best = np.argsort(-sims)[:count]
        for k in best:
            self._decoded[round(frames[k].pts_s, 3)] = frames[k].rgb
        return [round(frames[k].pts_s, 3) for k in best]


def verify_pairs(
    verifier: Verifier,
    pairs: Sequence[tuple[int, object]],
    query_image: ImageOf,
    source_image: Callable[[Any], np.ndarray],  # a sample index (thumbnails) or a time (the file)
    source_name: str = "",
    *,
    give_up_after: int = 2,
    window: Region | None = None,
    agree: Agreement | None = None,
    query_overlay: OverlayMask | None = None,
    source_overlay: OverlayMask | None = None,
) -> SegmentEvidence:
    """Check pairs in order (in a window of the query frames, where given); stop early once two
    verify or `give_up_after` fail with none verified (an unrelated candidate costs two pairs).
    With agree, the verified pairs are also scored as whole pictures: the evidence carries the
    mean of their agreements, as a segment's score reads the mean similarity of its frames (a
    pair whose overlap is too thin to describe counts as no agreement at all)."""
    fetched: dict[Any, np.ndarray] = {}  # an archive frame read from the file is decoded once

    def source_of(ref: Any) -> np.ndarray:
        if ref not in fetched:
            fetched[ref] = source_image(ref)
        return fetched[ref]

    first = pairs[: min(2, give_up_after)]  # checked whatever they show
    verifier.prefetch(
        [(query_image(i), i) for i, _ in first], [(source_of(ref), (source_name, ref)) for _, ref in first], window
    )
    evidence: list[PairEvidence] = []
    agreements: list[float | None] = []
    for i, ref in pairs:
        pair = verifier.verify(
            query_image(i),
            source_of(ref),
            query_key=i,
            source_key=(source_name, ref),
            window=window,
            query_overlay=query_overlay,
            source_overlay=source_overlay,
        )
        evidence.append(pair)
        if agree is not None and pair.verified:
            agreements.append(agree(query_image(i), source_of(ref), pair))
        verified = sum(e.verified for e in evidence)
        if verified >= 2 or verified == 0 and len(evidence) >= give_up_after:
            break
    summary = summarise(evidence)
    if not agreements:
        return summary
    scored = [a for a in agreements if a is not None]
    return replace(summary, agreement=sum(scored) / len(scored) if len(scored) == len(agreements) else None)


def exact_times(
    segment: MatchSegment, pairs: Sequence[tuple[int, int]], query_pts: np.ndarray, source_pts: np.ndarray
) -> list[tuple[int, float]]:
    """The archive time each pair's query frame aligns to. Where the timing is not known (a
    still, a clip too short or too still to time), the aligned time is known only to about an
    archive sample: the best pair's frame is tried at its sample and at moments around it."""
    aligned = [(i, round(float(segment.source_at(float(query_pts[i]))), 3)) for i, _ in pairs]
    if segment.timing_known and len({i for i, _ in pairs}) > 1:
        return aligned
    i, j = pairs[0]
    step = sample_step(source_pts)
    around = [
        (i, round(max(0.0, float(source_pts[j]) + f * step), 3)) for f in (0, -0.25, 0.25, -0.5, 0.5, -0.75, 0.75)
    ]
    return (aligned if len({k for k, _ in pairs}) > 1 else []) + around


def confirm_segments(
    verifier: Verifier,
    segments: Sequence[MatchSegment],
    *,
    pairs_per_segment: int,
    query_pts: np.ndarray,
    query_ok: np.ndarray,
    query_image: ImageOf,
    source: FrameVectors,
    frames: ArchiveFrames,
    similarity: np.ndarray,
    source_name: str = "",
    query_vector: np.ndarray | None = None,
    window: Region | None = None,
    agree: Agreement | None = None,
    query_overlay: OverlayMask | None = None,
) -> list[MatchSegment]:
    """The segments the geometry confirms, each with its evidence; MIRRORED as the geometry says.
    Pairs are checked on the stored thumbnails first, then on the archived file's exact frames;
    with a window, on that part of the query frames (where the segment's vectors came from).
    Matches on the query's static overlay, or on the archive video's around the segment, count
    for nothing. Raises MediaError when the file is needed and cannot be read."""
    confirmed = []
    source_ok = source.informative_mask()
    for segment in segments:
        pairs = pick_pairs(segment, query_pts, query_ok, source.pts_s, source_ok, similarity, pairs_per_segment)
        if not pairs:
            continue
        check = partial(
            verify_pairs,
            verifier,
            window=window,
            agree=agree,
            query_overlay=query_overlay,
            source_overlay=frames.overlay_near(segment.source_start, segment.source_end),
        )
        evidence = check(pairs, query_image, frames.sample, source_name) if frames.has_thumbnails else None
        if evidence is None or not evidence.verified:
            exact = exact_times(segment, pairs, query_pts, source.pts_s)
            if len(query_pts) == 1 and query_vector is not None:  # a still: find its moment first
                moments = frames.nearest_moments(query_vector, exact[0][1], sample_step(source.pts_s))
                exact = [(exact[0][0], m) for m in moments] + exact
            timed = segment.timing_known and len({i for i, _ in exact}) > 1
            evidence = check(
                exact, query_image, frames.at, f"{source_name}@t", give_up_after=2 if timed else len(exact)
            )
        if evidence.verified:
            confirmed.append(replace(segment, mirrored=evidence.mirrored is True, evidence=evidence))
    return confirmed
