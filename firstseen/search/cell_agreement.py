"""Whether a verified pair's pictures agree where they overlap: cell by cell, once the geometry's transform aligns them.

Keypoints can agree on graphics that two different pictures share while the rest of the
pictures differ: two screenshots of one map program showing different cities verify on the
program's overview map and sidebar (20 to 50 inliers), and the descriptor, which sees the same
program twice, scores them as a copy. Aligned by the transform the keypoints found, a copy
agrees with its source over most of the picture the two share, whatever was done to its
colours, sharpness or size; two pictures that share only some graphics agree only there. So
the overlap is cut into cells, and a cell with detail in either picture counts as agreeing
when the two pictures correlate there (zero-mean normalised cross-correlation, which a change
of brightness or contrast leaves alone, on lightly blurred pixels, which noise and re-encoding
leave nearly alone). Cells on either clip's static overlay (overlay.py) count for nothing, as
the matches there do. Pure: grey frames and a transform in, counts out."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from firstseen.media.informative import InformativeParams, picture_bounds
from firstseen.search.overlay import OverlayMask, masks_apply

CELL_PX = 16  # at verification size (360 px on the long side): 22 x 12 cells for a 16:9 frame
BLUR_SIGMA = 1.5  # pixels: what a re-encode, a resize or grain moves, not what a different picture does
TEXTURE_LEVELS = 4.0  # grey-level spread of a cell, in either picture, for it to count
AGREEING_CORRELATION = 0.5


@dataclass(frozen=True, slots=True)
class CellAgreement:
    """Cells of the overlap with detail in either picture, and those of them that agree."""

    textured: int
    agreeing: int

    def __post_init__(self) -> None:
        if not 0 <= self.agreeing <= self.textured:
            raise ValueError(f"0 <= agreeing <= textured is required, got {self.agreeing} of {self.textured}")

    @property
    def share(self) -> float:
        return self.agreeing / self.textured if self.textured else 0.0


def cell_agreement(
    query_gray: np.ndarray,
    source_gray: np.ndarray,
    transform: np.ndarray,
    *,
    query_offset: tuple[float, float] = (0.0, 0.0),
    query_frame: tuple[float, float] | None = None,
    query_overlay: OverlayMask | None = None,
    source_overlay: OverlayMask | None = None,
) -> CellAgreement:
    """Cells of the source frame (at source_gray's size) that the query covers once warped by
    transform (2x3, query frame -> source frame coordinates). query_gray's pixel (0, 0) lies at
    query_offset in the query frame's coordinates (a window of the frame), and query_frame is
    that frame's (width, height) for its overlay mask (query_gray's own size by default)."""
    height, width = source_gray.shape
    # the query's pixels -> the source frame: the transform after the window's offset
    matrix = np.asarray(transform, np.float64).copy()
    matrix[:, 2] += matrix[:, :2] @ np.asarray(query_offset, np.float64)
    warped = cv2.warpAffine(query_gray.astype(np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR)
    # Only picture meets picture: bars around either frame (a pillarboxed copy's black sides
    # land on the source's picture) are no disagreement.
    inside = cv2.warpAffine(_picture(query_gray), matrix, (width, height), flags=cv2.INTER_NEAREST, borderValue=0)
    inside &= _picture(source_gray)
    rows, cols = height // CELL_PX, width // CELL_PX
    if rows == 0 or cols == 0:
        return CellAgreement(0, 0)
    crop = (slice(0, rows * CELL_PX), slice(0, cols * CELL_PX))
    a = _cells(cv2.GaussianBlur(warped, (0, 0), BLUR_SIGMA)[crop], rows, cols)
    b = _cells(cv2.GaussianBlur(source_gray.astype(np.float32), (0, 0), BLUR_SIGMA)[crop], rows, cols)
    covered = _cells(inside[crop].astype(np.float32), rows, cols).min(axis=2) > 0
    centres = np.stack(np.meshgrid((np.arange(cols) + 0.5) * CELL_PX, (np.arange(rows) + 0.5) * CELL_PX), -1)
    centres = centres.reshape(-1, 2)
    counted = covered.ravel() & ~_on_overlays(centres, matrix, query_gray.shape, query_offset, query_frame,
                                              (width, height), query_overlay, source_overlay)  # fmt: skip
    a, b = a.reshape(rows * cols, -1)[counted], b.reshape(rows * cols, -1)[counted]
    a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    spread_a, spread_b = np.sqrt((a * a).mean(axis=1)), np.sqrt((b * b).mean(axis=1))
    textured = np.maximum(spread_a, spread_b) >= TEXTURE_LEVELS
    correlation = (a * b).mean(axis=1) / np.maximum(spread_a * spread_b, 1e-6)
    # a cell with detail in one picture only is a disagreement (correlation 0), never skipped
    agreeing = textured & (np.minimum(spread_a, spread_b) > 1e-3) & (correlation >= AGREEING_CORRELATION)
    return CellAgreement(int(textured.sum()), int(agreeing.sum()))


def _picture(gray: np.ndarray) -> np.ndarray:
    """1 inside the frame's picture, 0 on the uniform bars at its edges (letterbox, pillarbox)."""
    r0, r1, c0, c1 = picture_bounds(gray, InformativeParams().bar_level)  # the frame test's bars
    inside = np.zeros(gray.shape, np.uint8)
    inside[r0:r1, c0:c1] = 1
    return inside


def _cells(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows, cols, CELL_PX * CELL_PX): each cell's pixels."""
    return image.reshape(rows, CELL_PX, cols, CELL_PX).transpose(0, 2, 1, 3).reshape(rows, cols, -1)


def _on_overlays(
    centres: np.ndarray,
    matrix: np.ndarray,
    query_shape: tuple[int, ...],
    query_offset: tuple[float, float],
    query_frame: tuple[float, float] | None,
    source_size: tuple[int, int],
    query_overlay: OverlayMask | None,
    source_overlay: OverlayMask | None,
) -> np.ndarray:
    """Which cell centres (source coordinates) lie on either clip's static overlay; none where
    either clip is a steady shot (its still parts are footage, as verification.py treats them)."""
    off = np.zeros(len(centres), bool)
    if not masks_apply(query_overlay, source_overlay):
        return off
    if source_overlay is not None:
        off |= source_overlay.covers(centres, *source_size)
    if query_overlay is not None:
        back = cv2.invertAffineTransform(matrix)  # source -> the query's pixels
        in_query = centres @ back[:, :2].T + back[:, 2] + np.asarray(query_offset)
        frame = query_frame or (query_shape[1], query_shape[0])
        off |= query_overlay.covers(in_query, *frame)
    return off
