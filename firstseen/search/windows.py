"""Sources filling part of a clip's frame: windows of a few query frames, described on their own, proposing candidates.

A picture-in-picture, a 9:16 phone re-framing of 16:9 footage (bars or a blurred copy above
and below) or a clip under a caption box and a ticker shows its source in part of the frame;
the whole frame's descriptor is then mostly about the rest, and the source is not among the
candidates at all. When the whole-frame search finds nothing, a fixed set of windows of a
few frames is described and searched; each window's best archive frame is a proposal, which
the geometry must verify (and locate) before anything is aligned or scored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firstseen.search.background import Background
from firstseen.search.geometry import Region

GRID_SIDE = 0.5  # grid windows are half the frame each way, a quarter apart: an inset of 40%
GRID_STEP = 0.25  # of the frame's width sits mostly inside one of them
PORTRAIT = 1.2  # a frame this much taller than wide gets landscape bands (phone re-framings)


def proposal_windows(width: int, height: int) -> list[Region]:
    """The windows searched: a 3x3 grid of half-frame windows, the frame's middle, its upper
    60% (above lower thirds and tickers) and, in a portrait frame, centred 16:9 and 4:3 bands."""
    starts = np.arange(0.0, 1.0 - GRID_SIDE + 1e-9, GRID_STEP)
    windows = [Region(float(x), float(y), GRID_SIDE, GRID_SIDE) for y in starts for x in starts]
    windows += [Region(0.15, 0.15, 0.7, 0.7), Region(0.0, 0.0, 1.0, 0.6)]
    if height > PORTRAIT * width:
        for aspect in (16 / 9, 4 / 3):
            band = width / aspect / height
            windows.append(Region(0.0, (1 - band) / 2, 1.0, band))
    return windows


@dataclass(frozen=True, slots=True)
class Lead:
    """A window of one query frame and the archive frame it found most alike."""

    window: Region
    query_frame: int
    source_pts: float
    score: float  # similarity over the background's, as the whole-frame search measures it


@dataclass(frozen=True, slots=True)
class Proposal:
    """An archive video worth a geometric check: its best lead on each query frame searched,
    best first (one frame may be blurred or caught mid-motion where another verifies)."""

    video_id: str
    leads: tuple[Lead, ...]

    @property
    def score(self) -> float:
        return self.leads[0].score


def pick_frames(usable: np.ndarray, count: int) -> list[int]:
    """Up to `count` usable frames spread over the clip."""
    frames = np.flatnonzero(usable)
    if frames.size <= count:
        return frames.tolist()
    return frames[np.linspace(0, frames.size - 1, count).round().astype(int)].tolist()


def propose(
    image: Callable[[int], np.ndarray],
    usable: np.ndarray,
    describe: Callable[[list], np.ndarray],
    search: Callable[[np.ndarray, int], list],
    *,
    neighbours: int,
    background: Background | None,
    background_k: int,
    frames: int = 3,
    videos: int = 2,
    exclude: frozenset[str] = frozenset(),
) -> list[Proposal]:
    """The `videos` archive videos most alike to some window (of `frames` usable query frames),
    best first, each with its best lead per frame. search is the archive's k-NN over frames."""
    picked = pick_frames(usable, frames)
    if not picked:
        return []
    first = image(picked[0])
    windows = proposal_windows(first.shape[1], first.shape[0])
    keys = [(i, w) for i in picked for w in windows]
    vectors = describe([w.crop(image(i)) for i, w in keys])
    offsets = np.zeros(len(keys)) if background is None else background.kth_similarity(vectors, background_k)
    best: dict[str, dict[int, Lead]] = {}  # video -> query frame -> its best lead
    for (i, window), offset, hits in zip(keys, offsets, search(vectors, neighbours)):
        for hit in hits:
            score = hit.score - float(offset)
            if hit.video_id in exclude or score <= 0:
                continue  # no more alike than the background's k-th picture: not a lead
            per_frame = best.setdefault(hit.video_id, {})
            if i not in per_frame or score > per_frame[i].score:
                per_frame[i] = Lead(window, i, hit.pts_s, score)
    proposals = [
        Proposal(video, tuple(sorted(leads.values(), key=lambda lead: -lead.score))) for video, leads in best.items()
    ]
    return sorted(proposals, key=lambda p: -p.score)[:videos]
