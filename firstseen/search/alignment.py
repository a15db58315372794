"""Temporal alignment of a query clip to one archive video: hits in, timed segments out, by Hough voting."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_DENSE_CELLS_MAX = 4_000_000  # beyond this many (slope, offset) cells, count only the occupied ones


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


@dataclass(frozen=True, slots=True)
class QueryHit:
    """One archive frame among the most similar to one query frame (or to its mirror image)."""

    query_t: float
    source_t: float
    similarity: float
    mirrored: bool = False

    def __post_init__(self) -> None:
        if not (_finite(self.query_t, self.source_t, self.similarity) and self.query_t >= 0 and self.source_t >= 0):
            raise ValueError(f"hit needs finite values and times >= 0: {self!r}")


@dataclass(frozen=True, slots=True)
class AlignParams:
    min_speed: float = 0.25
    max_speed: float = 4.0
    speed_steps: int = 49  # log-spaced speeds per direction
    similarity_floor: float = 0.25  # hits at or below contribute no vote (weight = sim - floor)
    min_frames: int = 2
    max_gap_s: float = 2.5
    max_segments: int = 8
    direction_ratio: float = 1.5
    mirror_margin: float = 0.015
    # Unrelated frames that line up by chance sit just above the floor: a segment's mean similarity must clear
    # the floor by this share of the way up to 1.0, which holds for any descriptor whose floor is calibrated.
    min_similarity_margin: float = 0.15

    def __post_init__(self) -> None:
        if not (0 < self.min_speed <= self.max_speed and math.isfinite(self.max_speed)):
            raise ValueError(f"need 0 < min_speed <= max_speed, got {self.min_speed}, {self.max_speed}")
        if self.speed_steps < 1 or self.min_frames < 1 or self.max_segments < 1:
            raise ValueError("speed_steps, min_frames and max_segments must be at least 1")
        if not (
            _finite(
                self.similarity_floor,
                self.max_gap_s,
                self.direction_ratio,
                self.mirror_margin,
                self.min_similarity_margin,
            )
            and self.max_gap_s >= 0
            and self.direction_ratio >= 1
        ):
            raise ValueError("max_gap_s must be >= 0, direction_ratio >= 1, and all values finite")


@dataclass(frozen=True, slots=True)
class AlignedSegment:
    query_start: float
    query_end: float
    source_start: float  # source_start <= source_end, reversed or not
    source_end: float
    speed: float  # source seconds per query second; 1.0 when timing is unknown
    reversed: bool
    mirrored: bool
    timing_known: bool
    frames: int  # query frames supporting the segment
    similarity: float  # mean over those frames of each one's best inlier similarity

    def __post_init__(self) -> None:
        if not (
            _finite(self.query_start, self.query_end, self.source_start, self.source_end, self.speed, self.similarity)
            and 0 <= self.query_start <= self.query_end
            and 0 <= self.source_start <= self.source_end
            and self.speed > 0
            and self.frames >= 1
        ):
            raise ValueError(f"segment needs finite ordered bounds >= 0, speed > 0 and frames >= 1: {self!r}")
        if not self.timing_known and (self.reversed or self.speed != 1.0):
            raise ValueError(f"a segment of unknown timing has speed 1.0 and is not reversed: {self!r}")


@dataclass(frozen=True, slots=True)
class _Cell:
    vote: float
    slope: float  # signed: source seconds per query second
    offset: float  # source time at the reference query time


@dataclass(frozen=True, slots=True)
class _Hits:
    q: np.ndarray
    s: np.ndarray
    sim: np.ndarray
    weight: np.ndarray
    mirrored: np.ndarray
    frame: np.ndarray  # query frame index of each hit, in query-time order
    n_frames: int
    q_ref: float  # lines are written about the middle of the query, so a slope error shifts offsets least
    q_step: float
    source_step: float
    window: float  # width of an offset cell: the archive's sampling phase spreads a true line over one sample
    speeds: np.ndarray
    min_similarity: float  # a segment's mean similarity must reach this
    params: AlignParams

    def tolerance(self, slope: float) -> float:
        return 0.6 * self.source_step + abs(slope) * self.q_step / 2

    def residual(self, slope: float, offset: float) -> np.ndarray:
        return np.abs(self.s - (slope * (self.q - self.q_ref) + offset))


def _local_peaks(frame: np.ndarray, s: np.ndarray, weight: np.ndarray, window: float) -> np.ndarray:
    """Keep hits with no stronger hit of the same query frame within `window` of source time: kept hits of one
    frame then never share an offset cell, so a static shot matching many archive frames cannot stack votes."""
    order = np.lexsort((s, frame))
    f, t, w = frame[order], s[order], weight[order]
    keep = np.ones(order.size, bool)
    for k in range(1, order.size):
        near = np.nonzero((f[k:] == f[:-k]) & (t[k:] - t[:-k] < window))[0]
        if near.size == 0:  # sorted by source time within a frame: farther pairs are farther apart
            break
        earlier_weaker = w[near] < w[near + k]  # on a tie the earlier source time stays
        keep[near[earlier_weaker]] = False
        keep[near[~earlier_weaker] + k] = False
    peaks = np.empty(order.size, bool)
    peaks[order] = keep
    return peaks


def _vote(h: _Hits, pick: np.ndarray, min_count: int) -> tuple[_Cell | None, _Cell | None]:
    """Best (slope, offset) cell per direction, forward first, among the picked hits."""
    if np.count_nonzero(pick) < min_count:
        return None, None
    slopes = np.concatenate([h.speeds, -h.speeds])
    rows = slopes.size
    fine = h.window / 3  # cells are 3 fine bins wide and start at every fine bin: overlapping cells, any phase
    offsets = h.s[pick, None] - (h.q[pick, None] - h.q_ref) * slopes[None, :]
    low = offsets.min(axis=0)
    bins = np.floor((offsets - low) / fine).astype(np.int64) + 2  # 2 spare bins: every cell start is >= 0
    width = int(bins.max()) + 3
    keys = (bins + (np.arange(rows) * width)[None, :]).ravel()
    weights = np.broadcast_to(h.weight[pick, None], bins.shape).ravel()
    if rows * width <= _DENSE_CELLS_MAX:
        grid_votes = np.bincount(keys, weights, minlength=rows * width).reshape(rows, width)
        grid_counts = np.bincount(keys, minlength=rows * width).reshape(rows, width)
        votes = (grid_votes[:, :-2] + grid_votes[:, 1:-1] + grid_votes[:, 2:]).ravel()
        counts = (grid_counts[:, :-2] + grid_counts[:, 1:-1] + grid_counts[:, 2:]).ravel()
        cells, stride = None, width - 2
        split = h.speeds.size * stride
    else:  # a very long archive video: most cells are empty
        cells, inverse = np.unique((keys[:, None] - np.arange(3)).ravel(), return_inverse=True)
        votes = np.bincount(inverse, np.repeat(weights, 3))
        counts = np.bincount(inverse)
        stride = width
        split = int(np.searchsorted(cells, h.speeds.size * stride))
    votes = np.where(counts >= min_count, votes, 0.0)
    best: list[_Cell | None] = []
    for part in (slice(0, split), slice(split, votes.size)):
        chunk = votes[part]
        if chunk.size == 0 or chunk.max() <= 0:
            best.append(None)
            continue
        i = part.start + int(chunk.argmax())
        row, start = divmod(i if cells is None else int(cells[i]), stride)
        best.append(_Cell(float(votes[i]), float(slopes[row]), float(low[row] + (start - 0.5) * fine)))
    return best[0], best[1]


def _best_inliers(h: _Hits, available: np.ndarray, slope: float, offset: float, tol: float) -> np.ndarray:
    """Per available query frame, its most similar voting hit near the line; indices in query-time order."""
    residual = h.residual(slope, offset)
    near = np.nonzero(available[h.frame] & (h.weight > 0) & (residual <= tol))[0]
    order = near[np.lexsort((residual[near], -h.sim[near], h.frame[near]))]
    _, first = np.unique(h.frame[order], return_index=True)
    return order[first]


def _fit(h: _Hits, idx: np.ndarray, direction: int) -> tuple[float, float] | None:
    """Weighted least squares line, its speed clamped to the allowed range and its direction kept; None when
    the points cannot fix a slope (a single archive frame says nothing about speed)."""
    if np.unique(h.s[idx]).size < 2:
        return None
    q, s, w = h.q[idx] - h.q_ref, h.s[idx], h.weight[idx]
    q_mean, s_mean = np.average(q, weights=w), np.average(s, weights=w)
    spread = float(np.sum(w * (q - q_mean) ** 2))
    if spread <= 0:
        return None
    raw = float(np.sum(w * (q - q_mean) * (s - s_mean))) / spread
    slope = direction * min(max(direction * raw, h.params.min_speed), h.params.max_speed)
    return slope, float(s_mean - slope * q_mean)


def _refine(
    h: _Hits, available: np.ndarray, cell: _Cell, direction: int
) -> tuple[np.ndarray, float, float, np.ndarray]:
    slope, offset = cell.slope, cell.offset
    # Start as wide as the cell itself so every hit that voted for it is retired with the segment.
    support = _best_inliers(h, available, slope, offset, max(h.tolerance(slope), h.window / 2 + 1e-9))
    used = h.frame[support]
    for _ in range(4):
        fitted = _fit(h, support, direction)
        if fitted is None:
            break
        moved = _best_inliers(h, available, *fitted, h.tolerance(fitted[0]))
        if moved.size == 0:
            break
        slope, offset = fitted
        if np.array_equal(moved, support):
            break
        support, used = moved, np.union1d(used, h.frame[moved])
    return support, slope, offset, used


def _looks_mirrored(h: _Hits, in_run: np.ndarray, slope: float, offset: float) -> bool:
    """Whether the mirrored view explains the run better than the plain one near the line:
    by mirror_margin on average and on at least 75% of its frames (a missing hit counts as
    the floor). Copy descriptors are nearly mirror-invariant, so the true gain is small
    (0.03-0.08 on real footage); the frame-by-frame agreement is what chance rarely gives."""
    p = h.params
    near = in_run[h.frame] & (h.residual(slope, offset) <= h.tolerance(slope))
    best = np.full((2, h.n_frames), p.similarity_floor)
    np.maximum.at(best, (h.mirrored[near].astype(np.intp), h.frame[near]), h.sim[near])
    gain = best[1, in_run] - best[0, in_run]
    if gain.size < 3:
        return float(np.mean(gain)) >= 2 * p.mirror_margin
    return float(np.mean(gain)) >= p.mirror_margin and float(np.mean(gain > 0)) >= 0.75


RESOLVED_SAMPLES = 1.5  # a speed is claimed once it shifts the footage this many archive samples over the segment


def _segment(
    h: _Hits,
    run: np.ndarray,
    slope: float,
    offset: float,
    direction: int,
    voters: np.ndarray,
    extent: tuple[float, float],
) -> AlignedSegment | None:
    p = h.params
    similarity = float(h.sim[run].mean())
    if run.size < p.min_frames or similarity < h.min_similarity:
        return None
    distinct_sources = np.unique(h.s[run]).size
    if distinct_sources >= 3:  # the run's own line, when it has enough archive frames to fix one
        slope, offset = _fit(h, run, direction) or (slope, offset)
    q0 = max(extent[0], float(h.q[run[0]]) - h.q_step / 2)
    q1 = min(extent[1], float(h.q[run[-1]]) + h.q_step / 2)
    source = sorted(max(0.0, slope * (t - h.q_ref) + offset) for t in (q0, q1))
    in_run = np.zeros(h.n_frames, bool)
    in_run[h.frame[run]] = True
    mirrored = _looks_mirrored(h, in_run, slope, offset)
    # Direction is only told from footage spanning about two archive samples, and only by a clear vote
    # against the other direction's best line through the same query frames.
    known = distinct_sources >= 2 and source[1] - source[0] >= 1.5 * h.source_step
    if known:
        forward, backward = _vote(h, voters & in_run[h.frame], 1)
        mine, other = (forward, backward) if direction > 0 else (backward, forward)
        known = mine is not None and mine.vote >= p.direction_ratio * (other.vote if other else 0.0)
    if not known:
        source = [float(h.s[run].min()), float(h.s[run].max())]
    elif abs(abs(slope) - 1.0) * (q1 - q0) < RESOLVED_SAMPLES * h.source_step:
        # Archive frames a sample apart fix a speed only once it has moved the footage by one and a
        # half samples over the segment: below that, a fitted 0.84x on an 8-second crop is noise in
        # the sampled times, not a re-timing to print. The 1x line through the same hits stands.
        slope = float(direction)
        offset = float(np.average(h.s[run] - slope * (h.q[run] - h.q_ref), weights=h.weight[run]))
        source = sorted(max(0.0, slope * (t - h.q_ref) + offset) for t in (q0, q1))
    speed = float(abs(slope)) if known else 1.0
    return AlignedSegment(
        q0, q1, source[0], source[1], speed, known and direction < 0, mirrored, known, int(run.size), similarity
    )


def _single_frame(h: _Hits, t: float) -> list[AlignedSegment]:
    """A still: one segment per distinct place it matches; adjacent archive frames of one shot are one place."""
    p = h.params
    good = np.nonzero(h.weight > 0)[0]
    good = good[np.argsort(h.s[good], kind="stable")]
    found = []
    for place in np.split(good, np.nonzero(np.diff(h.s[good]) > h.window)[0] + 1):
        if place.size == 0:
            continue
        best = place[np.argmax(h.sim[place])]
        similarity = float(h.sim[best])
        if similarity < h.min_similarity:
            continue
        flavours = [max([p.similarity_floor, *h.sim[place][h.mirrored[place] == m]]) for m in (False, True)]
        mirrored = flavours[1] - flavours[0] >= p.mirror_margin
        s = float(h.s[best])
        found.append(AlignedSegment(t, t, s, s, 1.0, False, mirrored, False, 1, similarity))
    return sorted(found, key=lambda seg: -seg.similarity)[: p.max_segments]


def align(
    hits: Sequence[QueryHit], *, query_times: Sequence[float], source_step_s: float, params: AlignParams = AlignParams()
) -> list[AlignedSegment]:
    """Segments best first (by frames * (similarity - floor)).

    Votes every hit into (direction, speed, offset) cells, takes the strongest line, refits it on its best
    inlier per query frame, splits it at gaps into segments, retires those frames and looks again."""
    if len(hits) == 0:
        return []
    if not (math.isfinite(source_step_s) and source_step_s > 0):
        raise ValueError(f"source_step_s must be a positive number, got {source_step_s}")
    times = np.unique(np.asarray(query_times, dtype=np.float64))
    if times.size == 0 or not np.isfinite(times).all():
        raise ValueError("query_times must be a non-empty list of finite times")
    q = np.array([hit.query_t for hit in hits], dtype=np.float64)
    sim = np.array([hit.similarity for hit in hits], dtype=np.float64)
    frame_times, frame = np.unique(q, return_inverse=True)
    extent = (min(float(times[0]), float(frame_times[0])), max(float(times[-1]), float(frame_times[-1])))
    floor = params.similarity_floor
    min_similarity = floor + params.min_similarity_margin * max(1.0 - floor, 0.0)
    h = _Hits(
        q=q,
        s=np.array([hit.source_t for hit in hits], dtype=np.float64),
        sim=sim,
        weight=np.maximum(sim - floor, 0.0),
        mirrored=np.array([bool(hit.mirrored) for hit in hits]),
        frame=frame.ravel(),
        n_frames=frame_times.size,
        q_ref=(extent[0] + extent[1]) / 2,
        q_step=float(np.median(np.diff(times))) if times.size > 1 else 0.0,
        source_step=source_step_s,
        window=1.5 * source_step_s,
        speeds=np.geomspace(params.min_speed, params.max_speed, params.speed_steps),
        min_similarity=min_similarity,
        params=params,
    )
    if times.size == 1:
        return _single_frame(h, float(times[0]))

    voters = np.zeros(q.size, bool)
    positive = np.nonzero(h.weight > 0)[0]
    voters[positive] = _local_peaks(h.frame[positive], h.s[positive], h.weight[positive], h.window)
    available = np.ones(h.n_frames, bool)
    # A cell too weak to hold min_frames frames at the segment similarity bar cannot become a segment.
    min_vote = max(params.min_frames * (min_similarity - floor), 1e-9)
    split_gap = max(params.max_gap_s, 3 * h.q_step)
    segments: list[AlignedSegment] = []
    for _ in range(2 * params.max_segments + 4):  # each pass retires frames; the cap bounds the work on noise
        cells = [cell for cell in _vote(h, voters & available[h.frame], params.min_frames) if cell is not None]
        if not cells or max(cell.vote for cell in cells) < min_vote:
            break
        cell = max(cells, key=lambda c: c.vote)
        direction = 1 if cell.slope > 0 else -1
        support, slope, offset, used = _refine(h, available, cell, direction)
        available[used] = False
        for run in np.split(support, np.nonzero(np.diff(h.q[support]) > split_gap)[0] + 1):
            if run.size and (segment := _segment(h, run, slope, offset, direction, voters, extent)) is not None:
                segments.append(segment)
        if len(segments) >= params.max_segments or not available.any():
            break
    segments.sort(key=lambda seg: -seg.frames * (seg.similarity - floor))
    kept: list[AlignedSegment] = []
    for seg in segments:  # frames a stronger line narrowly missed would otherwise come back as a sliver of it
        if not any(
            o.query_start - h.q_step <= seg.query_start
            and seg.query_end <= o.query_end + h.q_step
            and o.source_start - source_step_s <= seg.source_start
            and seg.source_end <= o.source_end + source_step_s
            for o in kept
        ):
            kept.append(seg)
    return kept[: params.max_segments]
