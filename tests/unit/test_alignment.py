"""Temporal alignment on simulated hits: speed, direction, splices, mirror, static shots and noise."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from firstseen.search.alignment import AlignedSegment, AlignParams, QueryHit, align

QUERY_STEP = 0.25


@dataclass(frozen=True)
class Piece:
    """Query times [q_start, q_end] show source time source_at_start + velocity * (q - q_start)."""

    q_start: float
    q_end: float
    source_at_start: float
    velocity: float  # signed speed: negative plays the source backwards

    def source(self, q: float) -> float:
        return self.source_at_start + self.velocity * (q - self.q_start)


@dataclass
class Simulated:
    hits: list[QueryHit]
    query_times: list[float]


def simulate(
    pieces: list[Piece],
    *,
    duration: float,
    seed: int,
    archive_phase: float = 0.37,
    archive_length: float = 200.0,
    true_sim: tuple[float, float] = (0.6, 0.9),
    mirrored_sim: tuple[float, float] | None = None,
    noise: bool = True,
) -> Simulated:
    """Each query frame's nearest archive frame as the true hit (when a piece covers it) plus 3-4 noise hits
    at random archive frames; with mirrored_sim, the mirrored view hits the same archive frames too."""
    rng = np.random.default_rng(seed)
    query_times = rng.uniform(0, QUERY_STEP) + np.arange(int(round(duration / QUERY_STEP))) * QUERY_STEP
    archive = archive_phase + np.arange(int(archive_length))
    hits = []
    for q in query_times:
        for piece in pieces:
            if piece.q_start <= q <= piece.q_end:
                nearest = float(archive[np.argmin(np.abs(archive - piece.source(q)))])
                hits.append(QueryHit(float(q), nearest, float(rng.uniform(*true_sim))))
                if mirrored_sim is not None:
                    hits.append(QueryHit(float(q), nearest, float(rng.uniform(*mirrored_sim)), mirrored=True))
        if noise:
            for s in rng.choice(archive, size=int(rng.integers(3, 5)), replace=False):
                hits.append(QueryHit(float(q), float(s), float(rng.uniform(0.05, 0.35)), bool(rng.integers(2))))
    return Simulated(hits, [float(t) for t in query_times])


def run(sim: Simulated, **params) -> list[AlignedSegment]:
    return align(sim.hits, query_times=sim.query_times, source_step_s=1.0, params=AlignParams(**params))


def covered(sim: Simulated, piece: Piece) -> tuple[float, float]:
    inside = [t for t in sim.query_times if piece.q_start <= t <= piece.q_end]
    return inside[0], inside[-1]


def test_forward_one_to_one():
    piece = Piece(0.0, 10.0, 30.2, 1.0)
    sim = simulate([piece], duration=10.0, seed=1)
    [seg] = run(sim)
    first, last = covered(sim, piece)
    assert seg.timing_known and not seg.reversed and not seg.mirrored
    assert seg.speed == pytest.approx(1.0, rel=0.05)
    assert abs(seg.query_start - first) <= 2 * QUERY_STEP and abs(seg.query_end - last) <= 2 * QUERY_STEP
    assert abs(seg.source_start - piece.source(first)) <= 0.6 and abs(seg.source_end - piece.source(last)) <= 0.6
    assert seg.frames >= 0.9 * len(sim.query_times) and seg.similarity > 0.6


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("speed", [0.25, 0.5, 1.5, 2.0, 4.0])
def test_speed_and_direction(speed, reverse):
    duration = min(30.0, max(6.0, 8.0 / speed))
    span = speed * duration
    start = 20.0 + span if reverse else 20.0
    sim = simulate(
        [Piece(0.0, duration, start, -speed if reverse else speed)], duration=duration, seed=int(speed * 100) + reverse
    )
    seg = run(sim)[0]
    assert seg.timing_known
    assert seg.reversed is reverse
    assert seg.speed == pytest.approx(speed, rel=0.10)
    assert seg.source_start == pytest.approx(20.0, abs=1.0) and seg.source_end == pytest.approx(20.0 + span, abs=1.0)


def test_reversed_clip_is_reversed_and_forward_never_is():
    backwards = simulate([Piece(0.0, 8.0, 60.0, -1.0)], duration=8.0, seed=3)
    [seg] = run(backwards)
    assert seg.reversed and seg.timing_known and seg.speed == pytest.approx(1.0, rel=0.05)
    assert seg.source_start == pytest.approx(52.0, abs=0.8) and seg.source_end == pytest.approx(60.0, abs=0.8)

    rng = np.random.default_rng(99)
    false_reversed, found = 0, 0
    for seed in range(20):
        speed = float(np.exp(rng.uniform(np.log(0.3), np.log(3.5))))
        duration = float(rng.uniform(5.0, 15.0))
        sim = simulate(
            [Piece(0.0, duration, 15.0, speed)],
            duration=duration,
            seed=1000 + seed,
            archive_phase=float(rng.uniform(0, 1)),
        )
        segments = run(sim)
        found += bool(segments)
        false_reversed += sum(seg.reversed for seg in segments)
    assert false_reversed == 0
    assert found == 20


def test_splice_gives_two_segments_with_their_own_directions():
    first, second = Piece(0.0, 5.0, 10.0, 1.0), Piece(8.0, 12.0, 40.0, -1.0)
    sim = simulate([first, second], duration=12.0, seed=4)
    segments = run(sim)
    assert len(segments) == 2
    forward, backward = sorted(segments, key=lambda seg: seg.query_start)
    assert not forward.reversed and forward.timing_known and backward.reversed and backward.timing_known
    assert forward.query_start == pytest.approx(0.0, abs=0.5) and forward.query_end == pytest.approx(5.0, abs=0.5)
    assert backward.query_start == pytest.approx(8.0, abs=0.5) and backward.query_end == pytest.approx(12.0, abs=0.5)
    assert forward.source_start == pytest.approx(10.0, abs=0.8) and forward.source_end == pytest.approx(15.0, abs=0.8)
    assert backward.source_start == pytest.approx(36.0, abs=0.8) and backward.source_end == pytest.approx(40.0, abs=0.8)
    assert segments[0] is forward  # more frames at similar similarity: more evidence, listed first


def test_short_true_footage_inside_unrelated_material():
    piece = Piece(12.0, 16.0, 70.0, 1.0)
    sim = simulate([piece], duration=40.0, seed=5)
    [seg] = run(sim)
    first, last = covered(sim, piece)
    assert seg.query_start == pytest.approx(first, abs=QUERY_STEP)
    assert seg.query_end == pytest.approx(last, abs=QUERY_STEP)
    assert seg.timing_known and not seg.reversed and seg.source_start == pytest.approx(piece.source(first), abs=0.8)


@pytest.mark.parametrize("seed", range(5))
def test_pure_noise_gives_no_segment(seed):
    sim = simulate([], duration=30.0, seed=seed, archive_length=60.0)
    assert run(sim) == []


def test_static_shot_claims_no_timing():
    rng = np.random.default_rng(7)
    query_times = [0.1 + i * QUERY_STEP for i in range(40)]
    archive = 0.37 + np.arange(60)
    hits = [QueryHit(q, float(s), float(0.8 + rng.uniform(-0.01, 0.01))) for q in query_times for s in archive]
    segments = align(hits, query_times=query_times, source_step_s=1.0)
    assert segments
    assert not any(seg.timing_known or seg.reversed for seg in segments)
    assert all(seg.speed == 1.0 for seg in segments)


@pytest.mark.parametrize(
    ("plain", "mirrored", "expected"),
    [
        ((0.6, 0.6), (0.85, 0.85), True),
        ((0.85, 0.85), (0.83, 0.83), False),
        ((0.7, 0.7), (0.7, 0.7), False),
    ],
)
def test_mirror_needs_a_clear_margin(plain, mirrored, expected):
    sim = simulate([Piece(0.0, 8.0, 25.0, 1.0)], duration=8.0, seed=8, true_sim=plain, mirrored_sim=mirrored)
    [seg] = run(sim)  # plain and mirrored hits on the same line are one segment
    assert seg.mirrored is expected
    assert seg.timing_known and not seg.reversed
    assert seg.similarity == pytest.approx(max(plain[0], mirrored[0]), abs=0.01)


def test_mirror_only_hits_are_mirrored():
    sim = simulate([Piece(0.0, 8.0, 25.0, 1.0)], duration=8.0, seed=9, true_sim=(0.2, 0.2), mirrored_sim=(0.8, 0.8))
    [seg] = run(sim)
    assert seg.mirrored and seg.timing_known


def test_single_frame_query():
    hits = [
        QueryHit(3.0, 20.37, 0.8),
        QueryHit(3.0, 21.37, 0.7),
        QueryHit(3.0, 55.37, 0.2),
        QueryHit(3.0, 90.37, 0.3, mirrored=True),
    ]
    [seg] = align(hits, query_times=[3.0], source_step_s=1.0)
    assert (seg.query_start, seg.query_end, seg.source_start, seg.source_end) == (3.0, 3.0, 20.37, 20.37)
    assert not seg.timing_known and not seg.reversed and not seg.mirrored
    assert seg.frames == 1 and seg.speed == 1.0 and seg.similarity == pytest.approx(0.8)


def test_single_frame_query_reports_each_distinct_place_and_mirror():
    hits = [QueryHit(0.0, 5.0, 0.7), QueryHit(0.0, 5.0, 0.9, mirrored=True), QueryHit(0.0, 80.0, 0.6)]
    segments = align(hits, query_times=[0.0], source_step_s=1.0)
    assert [(seg.source_start, seg.mirrored) for seg in segments] == [(5.0, True), (80.0, False)]


@pytest.mark.parametrize(
    "bad",
    [
        dict(query_t=math.nan, source_t=1.0, similarity=0.5),
        dict(query_t=1.0, source_t=math.inf, similarity=0.5),
        dict(query_t=1.0, source_t=1.0, similarity=math.nan),
        dict(query_t=-0.1, source_t=1.0, similarity=0.5),
        dict(query_t=1.0, source_t=-1.0, similarity=0.5),
    ],
)
def test_query_hit_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        QueryHit(**bad)


GOOD = dict(
    query_start=0.0,
    query_end=1.0,
    source_start=2.0,
    source_end=3.0,
    speed=1.0,
    reversed=False,
    mirrored=False,
    timing_known=True,
    frames=4,
    similarity=0.7,
)


@pytest.mark.parametrize(
    "change",
    [
        dict(query_end=-1.0),
        dict(source_start=4.0),
        dict(source_start=-1.0, source_end=-0.5),
        dict(speed=0.0),
        dict(frames=0),
        dict(similarity=math.nan),
        dict(timing_known=False, reversed=True),
        dict(timing_known=False, speed=2.0),
    ],
)
def test_aligned_segment_invariants(change):
    AlignedSegment(**GOOD)
    with pytest.raises(ValueError):
        AlignedSegment(**{**GOOD, **change})


def test_bad_arguments_are_refused():
    hits = [QueryHit(0.0, 1.0, 0.9)]
    with pytest.raises(ValueError):
        align(hits, query_times=[0.0], source_step_s=0.0)
    with pytest.raises(ValueError):
        align(hits, query_times=[], source_step_s=1.0)
    with pytest.raises(ValueError):
        AlignParams(min_speed=2.0, max_speed=1.0)


@pytest.mark.parametrize("archive_phase", [0.0, 0.5, 0.87])
def test_any_archive_sampling_phase(archive_phase):
    sim = simulate([Piece(0.0, 10.0, 30.0, 1.0)], duration=10.0, seed=10, archive_phase=archive_phase)
    [seg] = run(sim)
    assert seg.timing_known and not seg.reversed and seg.speed == pytest.approx(1.0, rel=0.05)
    assert seg.source_start == pytest.approx(30.0 + sim.query_times[0], abs=0.6)


@pytest.mark.parametrize(("velocity", "clamped"), [(4.6, 4.0), (-4.6, 4.0), (0.22, 0.25)])
def test_speed_outside_the_range_is_clamped(velocity, clamped):
    duration = 8.0 if abs(velocity) > 1 else 30.0
    start = 20.0 + abs(velocity) * duration if velocity < 0 else 20.0
    sim = simulate([Piece(0.0, duration, start, velocity)], duration=duration, seed=11)
    segments = run(sim)  # a clamped line drifts off the true one, so the clip may come back in pieces
    assert segments and segments[0].timing_known
    for seg in segments:
        assert seg.speed == pytest.approx(clamped) or not seg.timing_known
        assert seg.reversed is (velocity < 0 and seg.timing_known)
    assert sum(seg.frames for seg in segments) >= 0.75 * len(sim.query_times)
    for seg in segments:  # leftovers the clamped line missed are not reported again inside it
        assert not any(
            other is not seg
            and other.query_start <= seg.query_start <= seg.query_end <= other.query_end
            and other.source_start <= seg.source_start <= seg.source_end <= other.source_end
            for other in segments
        )


def test_empty_hits():
    assert align([], query_times=[0.0, 0.25], source_step_s=1.0) == []
    assert align([], query_times=[], source_step_s=1.0) == []


def test_too_short_to_tell_direction():
    # 4 frames over one archive step, crossing from archive frame 30.0 to 31.0
    sim = simulate([Piece(0.0, 0.9, 30.0, 1.0)], duration=1.0, seed=12, archive_phase=0.0)
    for ratio in (1.0, 1.5):  # even when the direction vote is allowed to tie, the span alone is too short
        [seg] = run(sim, direction_ratio=ratio)
        assert not seg.timing_known and not seg.reversed and seg.speed == 1.0
        assert seg.source_end - seg.source_start <= 1.0 + 1e-9


@pytest.mark.parametrize(("speed", "duration"), [(1.2, 20.0), (2.9, 10.0), (0.6, 25.0)])
def test_speed_between_grid_steps_is_refined(speed, duration):
    sim = simulate([Piece(0.0, duration, 10.0, speed)], duration=duration, seed=13)
    [seg] = run(sim)
    assert seg.speed == pytest.approx(speed, rel=0.015)


@pytest.mark.parametrize(("speed", "duration"), [(1.03, 20.0), (0.85, 6.0)])
def test_a_speed_the_archive_samples_cannot_resolve_is_no_claim(speed, duration):
    """Over the segment these speeds move the footage by less than one and a half archive samples
    (0.6 s, 0.9 s): the 1x line is reported, not a re-timing the sampled times cannot show."""
    sim = simulate([Piece(0.0, duration, 10.0, speed)], duration=duration, seed=13)
    [seg] = run(sim)
    assert seg.timing_known and seg.speed == 1.0 and not seg.reversed
    assert seg.source_start == pytest.approx(10.0, abs=1.0)


def test_jump_cut_gets_each_part_its_own_line():
    first, second = Piece(0.0, 6.0, 10.0, 1.0), Piece(9.0, 15.0, 19.8, 1.0)  # 0.8 s off the first line's path
    sim = simulate([first, second], duration=15.0, seed=14)
    segments = sorted(run(sim), key=lambda seg: seg.query_start)
    assert len(segments) == 2
    for seg, piece in zip(segments, (first, second)):
        start, end = covered(sim, piece)
        assert seg.source_start == pytest.approx(piece.source(start), abs=0.5)
        assert seg.source_end == pytest.approx(piece.source(end), abs=0.5)


def test_frames_matching_several_archive_frames_do_not_outvote_longer_footage():
    """7 frames of a static shot, each matching two archive frames, against 10 frames of moving footage."""
    moving = simulate([Piece(0.0, 2.5, 10.0, 1.0)], duration=2.5, seed=15, noise=False)
    static_times = [5.0 + 0.25 * i for i in range(7)]
    static = [QueryHit(t, s, 0.7) for t in static_times for s in (50.37, 51.37)]
    [seg] = align(
        moving.hits + static,
        query_times=moving.query_times + static_times,
        source_step_s=1.0,
        params=AlignParams(max_segments=1),
    )
    assert seg.frames == len(moving.query_times) and seg.query_end < 3.0
