"""Static overlays (a program's chrome, a channel logo): the parts of a clip's frames that stay while it moves.

Two unrelated screenshots of one program share its toolbar, inset, compass and play button
pixel for pixel, and local features verify them on that chrome alone, in the middle of the
frame as well as at its edges. What marks chrome is that it stays put while the picture under
it moves: over a few seconds of frames, a cell that keeps its detail exactly while most of the
frame changes is an overlay, not the scene. Verification then counts only matches outside the
overlays of both frames (verification.py), so a copy is proved by its footage and never by
the graphics laid over it. A clip where almost nothing moves (a still, a paused screen) gives
no mask, and the other clip's alone decides. A steady shot (a tripod, a surveillance camera),
whose still parts are its footage, is marked as such and masks nothing on either side.
Pure: frames in, a mask out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

GRID_W, GRID_H = 96, 54  # frames are compared on this grid (a cell is ~5 px of a 480-wide frame)
MIN_FRAMES = 6
MIN_SPAN_S = 3.0  # chrome is told from a still scene only over seconds of change
MAX_FRAMES = 24  # enough to see what moves; frames are picked evenly over the span
STATIC_LEVELS = 8  # a cell whose grey level varies less than this over the frames has not moved
MOVING_LEVELS = 24  # ... and one varying by this much has
MIN_ACTION = 0.1  # under this share of the frame moving (a still, a paused screen), nothing can be told
MIN_MOVING = 0.4  # under this, with still detail beside it, the clip is a steady shot (see OverlayMask.steady)
TEXTURE_LEVELS = 6.0  # grey levels per cell of gradient, in every frame: detail that can hold keypoints
MIN_PATCH = 6  # cells of static detail joined together, for a patch to count as drawn on
MIN_DETAIL, MAX_DETAIL = 0.005, 0.3  # share of the frame that is static detail for a mask to be kept


@dataclass(frozen=True, slots=True)
class OverlayMask:
    """Cells of a frame (GRID_H x GRID_W, True: overlay) in the frame's own proportions.
    A steady shot (a tripod, a surveillance camera) has no overlay and more: its still parts
    are its scene, so the other clip's still parts matched there are evidence too (a
    picture-in-picture of such footage is still, inset included, where it sits)."""

    cells: np.ndarray
    steady: bool = False

    def __post_init__(self) -> None:
        if self.cells.shape != (GRID_H, GRID_W) or self.cells.dtype != np.bool_:
            raise ValueError(f"an overlay mask is a {GRID_H}x{GRID_W} bool grid")

    @property
    def share(self) -> float:
        return float(self.cells.mean())

    def mirrored(self) -> OverlayMask:
        return OverlayMask(np.ascontiguousarray(self.cells[:, ::-1]), self.steady)

    @classmethod
    def steady_shot(cls) -> OverlayMask:
        return cls(np.zeros((GRID_H, GRID_W), bool), steady=True)

    def covers(self, points: np.ndarray, width: float, height: float) -> np.ndarray:
        """For each (x, y) point of a width x height frame, whether it lies on the overlay."""
        if len(points) == 0:
            return np.zeros(0, bool)
        col = np.clip((points[:, 0] / width * GRID_W).astype(int), 0, GRID_W - 1)
        row = np.clip((points[:, 1] / height * GRID_H).astype(int), 0, GRID_H - 1)
        return self.cells[row, col]


def masks_apply(query_overlay: OverlayMask | None, source_overlay: OverlayMask | None) -> bool:
    """Whether the two clips' overlays mask anything: not where either is a steady shot (its
    still parts are its scene, so the other clip's still parts matched there are evidence too)."""
    return not any(mask is not None and mask.steady for mask in (query_overlay, source_overlay))


def _grid(image: np.ndarray) -> np.ndarray:
    grey = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (GRID_W, GRID_H), interpolation=cv2.INTER_AREA)


def _dilate(cells: np.ndarray, steps: int) -> np.ndarray:
    kernel = np.ones((2 * steps + 1, 2 * steps + 1), np.uint8)
    return cv2.dilate(cells.astype(np.uint8), kernel).astype(bool)


def _without_specks(cells: np.ndarray) -> np.ndarray:
    """Only connected patches of MIN_PATCH cells or more: chrome, logos and tickers are drawn
    as solid graphics, while a steady shot leaves scattered still specks in a moving scene."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(cells.astype(np.uint8), connectivity=8)
    big = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= MIN_PATCH)
    return np.isin(labels, big[big > 0])


def _picture_area(blank: np.ndarray) -> tuple[slice, slice]:
    """The frame less the bars at its edges (rows and columns blank in every frame: letterbox
    and pillarbox bars), as (rows, columns); the whole frame where it is all blank."""
    rows, cols = np.flatnonzero(~blank.all(axis=1)), np.flatnonzero(~blank.all(axis=0))
    if not len(rows) or not len(cols):
        return slice(None), slice(None)
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def static_overlay(frames: Sequence[np.ndarray], times: Sequence[float]) -> OverlayMask | None:
    """The static overlay of frames shown at these times (RGB or grey, any size): None where it
    cannot be told (too few frames or seconds, too little moving), a steady shot's mark where
    still detail is the scene, an empty mask where there is no overlay."""
    if len(frames) != len(times):
        raise ValueError("one time per frame")
    if len(frames) < MIN_FRAMES or max(times) - min(times) < MIN_SPAN_S:
        return None
    grids = np.stack([_grid(f) for f in frames]).astype(np.float32)
    spread = grids.max(axis=0) - grids.min(axis=0)
    gradient = np.stack([np.hypot(*np.gradient(g)) for g in grids]).min(axis=0)
    static = spread < STATIC_LEVELS
    detail = _without_specks(static & (gradient >= TEXTURE_LEVELS))
    # Shares are of the picture, not of the bars around it: a 9:16 re-framing of a screenshot
    # is two thirds black bars, and counted over the whole frame it looked like a steady shot.
    picture = _picture_area(static & (gradient < TEXTURE_LEVELS))
    moving = float((spread >= MOVING_LEVELS)[picture].mean())
    still_detail = float(detail[picture].mean())
    if moving < MIN_ACTION:
        return None
    if still_detail < MIN_DETAIL:
        return OverlayMask(np.zeros((GRID_H, GRID_W), bool))
    if moving < MIN_MOVING or still_detail > MAX_DETAIL:
        return OverlayMask.steady_shot()
    # The overlay's flat insides next to its detail, then a cell beyond: a keypoint on the
    # overlay's edge sits a few pixels outside it.
    return OverlayMask(_dilate(static & _dilate(detail, 2), 1))


def evenly(indices: Sequence[int], count: int = MAX_FRAMES) -> list[int]:
    """At most count of these indices, spread evenly."""
    if len(indices) <= count:
        return list(indices)
    return [indices[k] for k in np.linspace(0, len(indices) - 1, count).round().astype(int)]


def overlay_of(
    image_of: Callable[[int], np.ndarray], times: np.ndarray, usable: np.ndarray, start: float, end: float
) -> OverlayMask | None:
    """The static overlay of the usable frames shown from start to end (frames by index)."""
    inside = np.flatnonzero(usable & (times >= start) & (times <= end)).tolist()
    picked = evenly(inside)
    if len(picked) < MIN_FRAMES:
        return None
    return static_overlay([image_of(i) for i in picked], [float(times[i]) for i in picked])
