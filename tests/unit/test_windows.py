"""Proposal windows for sources filling part of the frame: their geometry, the frames picked, proposals from a k-NN."""

from __future__ import annotations

import numpy as np
import pytest

from firstseen.archive import FrameHit
from firstseen.search.geometry import Region
from firstseen.search.windows import pick_frames, proposal_windows, propose


def coverage(inset: Region, window: Region) -> float:
    """How much of the inset lies inside the window."""
    ix = max(0.0, min(inset.x + inset.w, window.x + window.w) - max(inset.x, window.x))
    iy = max(0.0, min(inset.y + inset.h, window.y + window.h) - max(inset.y, window.y))
    return ix * iy / inset.area


def test_every_window_lies_inside_the_frame_and_portrait_frames_get_landscape_bands():
    landscape, portrait = proposal_windows(640, 360), proposal_windows(360, 640)
    assert len(portrait) == len(landscape) + 2
    for window in portrait:  # Region checks its own bounds; the bands are 16:9 and 4:3 pictures
        assert window.x + window.w <= 1 + 1e-9 and window.y + window.h <= 1 + 1e-9
    bands = portrait[-2:]
    assert [round(b.w * 360 / (b.h * 640), 3) for b in bands] == [round(16 / 9, 3), round(4 / 3, 3)]
    assert all(abs(b.y + b.h / 2 - 0.5) < 1e-9 for b in bands)


@pytest.mark.parametrize("x, y", [(0.0, 0.0), (0.175, 0.175), (0.6, 0.3), (0.33, 0.6), (0.1, 0.45)])
def test_a_forty_percent_inset_anywhere_is_mostly_inside_some_window(x, y):
    inset = Region(x, y, 0.4, 0.4)
    assert max(coverage(inset, w) for w in proposal_windows(640, 360)) >= 0.66


def test_frames_are_picked_from_the_usable_ones_spread_over_the_clip():
    usable = np.ones(40, bool)
    usable[:5] = False
    assert pick_frames(usable, 3) == [5, 22, 39]
    assert pick_frames(np.array([False, True, False]), 3) == [1]
    assert pick_frames(np.zeros(4, bool), 3) == []


class _Background:
    def kth_similarity(self, vectors: np.ndarray, k: int) -> np.ndarray:
        return np.full(len(vectors), 0.3)


def test_proposals_keep_each_videos_best_window_above_the_background_best_first():
    frames = [np.full((360, 640, 3), i, np.uint8) for i in range(6)]
    described: list[int] = []

    def describe(crops):
        described.append(len(crops))
        return np.arange(len(crops), dtype=np.float32)[:, None]  # a vector per crop: its row

    def search(vectors, k):
        rows = []
        for (row,) in vectors.astype(int):  # one window of one frame hits "a" well, another hits "b"
            rows.append(
                [
                    FrameHit(1, "a", 2.0, 0.9 if row == 7 else 0.35),
                    FrameHit(2, "b", 4.0, 0.6 if row == 20 else 0.1),
                    FrameHit(3, "gone", 1.0, 0.99),
                ]
            )
        return rows

    found = propose(
        frames.__getitem__,
        np.ones(6, bool),
        describe,
        search,
        neighbours=3,
        background=_Background(),
        background_k=10,
        frames=2,
        videos=2,
        exclude=frozenset({"gone"}),
    )
    windows = proposal_windows(640, 360)
    assert described == [2 * len(windows)]  # one batch: two frames, every window
    assert [p.video_id for p in found] == ["a", "b"]
    best_a, best_b = found[0].leads[0], found[1].leads[0]
    assert (best_a.window, best_a.query_frame, best_a.source_pts) == (windows[7], 0, 2.0)
    assert (best_b.window, best_b.query_frame, best_b.source_pts) == (windows[20 - len(windows)], 5, 4.0)
    assert found[0].score == pytest.approx(0.6) and found[1].score == pytest.approx(0.3)
    # a lead on every frame searched, best first: a blurred frame is not the only chance
    assert [lead.query_frame for lead in found[0].leads] == [0, 5]
    assert found[0].leads[1].score == pytest.approx(0.05)
    # nothing more alike than the background's k-th picture is no lead
    assert (
        propose(
            frames.__getitem__,
            np.ones(6, bool),
            describe,
            lambda v, k: [[FrameHit(1, "a", 0, 0.3)]] * len(v),
            neighbours=1,
            background=_Background(),
            background_k=10,
        )
        == []
    )
