"""Where a still's moment is looked for: near a video's nearest samples, by a stride that never skips the best frame."""

from __future__ import annotations

import numpy as np
import pytest

from firstseen.search.still_moment import MOMENTS, best_moment_similarities, spans_around


def test_spans_around_samples_merge_when_they_overlap_and_stop_at_zero():
    assert spans_around([5.0, 7.0, 8.0], 1.0) == [(4.0, 9.0)]  # touching spans are one decode
    assert spans_around([12.0, 0.5], 1.0) == [(0.0, 1.5), (11.0, 13.0)]
    assert spans_around([3.0], 0.5) == [(2.5, 3.5)]


def _frames_and_describe(n: int, best: int):
    """Frames that are their own index; the descriptor makes `best` the still itself and its
    neighbours fall off with their distance from it (fast motion: a frame or two away already
    looks unlike it), other frames far. Counts what it describes."""
    described: list[int] = []
    still = np.array([[1.0, 0.0]], np.float32)

    def describe(frames: list[np.ndarray]) -> np.ndarray:
        out = []
        for frame in frames:
            k = int(frame[0, 0])
            described.append(k)
            sim = max(0.1, 1.0 - 0.2 * abs(k - best))
            out.append([sim, np.sqrt(1 - sim**2)])
        return np.asarray(out, np.float32)

    frames = [np.full((2, 2), k, np.float32) for k in range(n)]
    return frames, describe, still, described


@pytest.mark.parametrize("stride", [1, 2, 3, 4, 5])
def test_the_best_frame_is_found_even_where_the_stride_skips_it(stride):
    frames, describe, still, described = _frames_and_describe(40, best=17)
    sims = best_moment_similarities(frames, still, "ip", describe, stride)
    assert int(np.argmax(sims)) == 17 and sims[17] == pytest.approx(1.0)
    # the first round plus at most the neighbours of the best few: the cost stays bounded
    assert len(described) == len(set(described)) <= len(range(0, 40, stride)) + MOMENTS * 2 * (stride - 1)
    assert np.isneginf(sims[[k for k in range(40) if k not in described]]).all()


def test_without_a_stride_every_frame_is_described_once():
    frames, describe, still, described = _frames_and_describe(10, best=3)
    sims = best_moment_similarities(frames, still, "ip", describe, 1)
    assert sorted(described) == list(range(10)) and np.isfinite(sims).all()
