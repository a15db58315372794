"""Which frames carry too little picture to be evidence: black, flat, fades, bars, plain cards and slates.

Two unrelated dark frames, two flat walls or two title cards describe alike under any
global descriptor (SSCD cosine 0.25-0.5 between such unrelated frames), so a search that
lets them vote names sources for footage the archive does not hold. Such frames keep their
place in the index and the raw vectors (frame ids stay contiguous, timing is kept) and are
flagged: they vote for nothing. The test is cheap (a few array passes on a 96-pixel-high
grey copy) so it runs on every sampled frame at ingest and at query."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Which test flagged an archive's frames; recheck flags them again when it has changed.
GATE_VERSION = "2"  # 1: one size; 2: a second look at half the size for hazy or blurred pictures


@dataclass(frozen=True, slots=True)
class InformativeParams:
    height: int = 96  # frames are judged at this height
    bar_level: float = 6.0  # rows/columns this uniform are letterbox or pillarbox bars, not picture
    edge_threshold: float = 24.0  # grey-level gradient of a visible edge
    min_textured_share: float = 0.04  # of the picture's pixels on an edge
    flat_gradient: float = 1.5  # grey-level gradient below which a pixel lies in a uniform area
    max_flat_share: float = 0.75  # of the picture in uniform areas (cards, graphics, a flat wall)
    min_picture_share: float = 0.25  # of the frame left once bars are cut away


@dataclass(frozen=True, slots=True)
class FrameInformation:
    textured_share: float
    flat_share: float
    picture_share: float
    informative: bool
    coarse_textured_share: float = 0.0  # at half the size, where a hazy picture's edges show


def picture_bounds(gray: np.ndarray, level: float) -> tuple[int, int, int, int]:
    """The frame without uniform bars at its edges (letterbox, pillarbox, a black border)."""
    rows = gray.std(axis=1) > level
    cols = gray.std(axis=0) > level
    if not rows.any() or not cols.any():
        return 0, 0, 0, 0
    r = np.flatnonzero(rows)
    c = np.flatnonzero(cols)
    return int(r[0]), int(r[-1]) + 1, int(c[0]), int(c[-1]) + 1


def _judge(gray: np.ndarray, p: InformativeParams) -> FrameInformation:
    """Texture, flatness and picture share of a grey frame at the size it is given."""
    r0, r1, c0, c1 = picture_bounds(gray, p.bar_level)
    picture_share = (r1 - r0) * (c1 - c0) / gray.size
    if picture_share < p.min_picture_share or r1 - r0 < 8 or c1 - c0 < 8:
        return FrameInformation(0.0, 1.0, picture_share, False)
    picture = gray[r0:r1, c0:c1]
    gx = cv2.Sobel(picture, cv2.CV_32F, 1, 0, ksize=3) / 4
    gy = cv2.Sobel(picture, cv2.CV_32F, 0, 1, ksize=3) / 4
    magnitude = np.hypot(gx, gy)[1:-1, 1:-1]
    textured = float(np.mean(magnitude > p.edge_threshold))
    flat = float(np.mean(magnitude < p.flat_gradient))
    informative = textured >= p.min_textured_share and flat <= p.max_flat_share
    return FrameInformation(textured, flat, picture_share, informative)


def measure(rgb: np.ndarray, params: InformativeParams | None = None) -> FrameInformation:
    p = params or InformativeParams()
    h, w = rgb.shape[:2]
    scale = p.height / h
    # grey before the resize: a third of the pixels to average (half the cost of this test)
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else np.ascontiguousarray(rgb)
    gray = cv2.resize(gray, (max(8, round(w * scale)), p.height), interpolation=cv2.INTER_AREA).astype(np.float32)
    fine = _judge(gray, p)
    if fine.informative or fine.picture_share < p.min_picture_share or fine.flat_share > p.max_flat_share:
        return fine
    # A hazy or blurred picture (murky water, a crop scaled up, a soft re-encode) spreads its
    # edges over several pixels, so few reach the edge threshold at this size; at half the size
    # they do. A flat wall, a card or a dark frame stays flat at any size, so this second look
    # lets real picture back in without the look-alikes (eval side: 0 flat, dark, card, ident or
    # animation frames turned informative; README "Search quality").
    half = cv2.resize(gray, (max(8, gray.shape[1] // 2), max(8, p.height // 2)), interpolation=cv2.INTER_AREA)
    coarse = _judge(half, p)
    if coarse.informative:
        return FrameInformation(fine.textured_share, fine.flat_share, fine.picture_share, True, coarse.textured_share)
    return fine


def informative_flags(frames: list[np.ndarray], params: InformativeParams | None = None) -> np.ndarray:
    return np.array([measure(f, params).informative for f in frames], dtype=bool)
