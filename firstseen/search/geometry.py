"""What geometric verification found, as records: boxes in frames, per-pair and per-segment evidence.

Kept apart from verification.py (which runs OpenCV) so that results, provenance and the
catalog can carry evidence without importing a feature matcher."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Region:
    """An axis-aligned box in a frame, as fractions of its width and height."""

    x: float
    y: float
    w: float
    h: float

    def __post_init__(self) -> None:
        values = (self.x, self.y, self.w, self.h)
        if (
            not all(math.isfinite(v) for v in values)
            or self.w <= 0
            or self.h <= 0
            or self.x < -1e-6
            or self.y < -1e-6
            or self.x + self.w > 1 + 1e-6
            or self.y + self.h > 1 + 1e-6
        ):
            raise ValueError(f"a region lies inside its frame with positive size: {values}")

    @property
    def area(self) -> float:
        return self.w * self.h

    @property
    def whole(self) -> bool:
        return self.area >= 0.9

    def pixel_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in a frame of that size, at least 8 pixels each way."""
        x0, y0 = int(self.x * width), int(self.y * height)
        return x0, y0, max(x0 + 8, round((self.x + self.w) * width)), max(y0 + 8, round((self.y + self.h) * height))

    def crop(self, image: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = self.pixel_box(image.shape[1], image.shape[0])
        return np.ascontiguousarray(image[y0:y1, x0:x1])

    def iou(self, other: Region) -> float:
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        return inter / (self.area + other.area - inter)

    def where(self) -> str:
        """In words: "its left part", "its centre", "its top right"."""
        cx, cy = self.x + self.w / 2, self.y + self.h / 2
        horizontal = "left" if cx < 0.4 else "right" if cx > 0.6 else ""
        vertical = "top" if cy < 0.4 else "bottom" if cy > 0.6 else ""
        place = " ".join(p for p in (vertical, horizontal) if p)
        return f"its {place} part" if place else "its centre"

    def to_dict(self) -> dict:
        return {
            "x": round(self.x, 4),
            "y": round(self.y, 4),
            "w": round(self.w, 4),
            "h": round(self.h, 4),
            "area": round(self.area, 4),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Region:
        return cls(float(data["x"]), float(data["y"]), float(data["w"]), float(data["h"]))


@dataclass(frozen=True, slots=True)
class PairEvidence:
    """What the geometry says about one (query frame, source frame) pair.

    inliers count for the better of the two views; shown_inliers and flipped_inliers for
    each (flipped_inliers is -1 where the flipped view was not tried: the shown one was
    verified beyond doubt). The regions are those of the better view: query_in_source is where the query's
    picture lies in the source frame (a crop covers part of it), source_in_query where the
    source's picture lies in the query frame (an inset covers part of it)."""

    inliers: int
    shown_inliers: int
    flipped_inliers: int
    flipped: bool
    query_in_source: Region | None
    source_in_query: Region | None
    # cells of the overlap with detail, and those where the aligned pictures agree (cell_agreement.py)
    cells_textured: int = 0
    cells_agreeing: int = 0

    @property
    def verified(self) -> bool:
        return self.query_in_source is not None


@dataclass(frozen=True, slots=True)
class SegmentEvidence:
    """The verdict of the geometry over a segment's checked frame pairs."""

    pairs_checked: int
    pairs_verified: int
    inliers: int  # summed over the verified pairs
    mirrored: bool | None  # True/False when the geometry decides; None when it abstains
    query_in_source: Region | None  # median box over the verified pairs
    source_in_query: Region | None
    # How well the verified pairs agree as whole pictures (aligned_agreement.py): the mean of
    # the descriptor's normalised similarities of their overlapping parts, once cut out by the
    # geometry; None where it was not asked for (or a part was too thin). Decides only near
    # misses (geometry_rescue.py).
    agreement: float | None = None
    # over the verified pairs: cells of the overlap with detail, and those where the aligned
    # pictures agree (cell_agreement.py); each verified pair passed on its own share
    cells_textured: int = 0
    cells_agreeing: int = 0

    @property
    def picture_agreement(self) -> float | None:
        return self.cells_agreeing / self.cells_textured if self.cells_textured else None

    @property
    def verified(self) -> bool:
        return self.pairs_verified > 0

    @classmethod
    def from_dict(cls, data: dict) -> SegmentEvidence:
        box = lambda key: Region.from_dict(data[key]) if data.get(key) else None  # noqa: E731
        mirrored = data.get("mirrored") if data.get("mirror_decided") else None
        return cls(
            int(data["pairs_checked"]),
            int(data["pairs_verified"]),
            int(data["inliers"]),
            mirrored,
            box("query_in_source"),
            box("source_in_query"),
            data.get("aligned_similarity"),
            int(data.get("cells_compared") or 0),
            round((data.get("picture_agreement") or 0.0) * int(data.get("cells_compared") or 0)),
        )

    def describe(self) -> str | None:
        """The region in words, for the page and the CLI table."""
        crop, inset = self.query_in_source, self.source_in_query
        if crop is not None and not crop.whole:
            return f"shows {crop.area:.0%} of the source frame, {crop.where()}"
        if inset is not None and not inset.whole:
            return f"the source picture fills {inset.area:.0%} of the clip's frame, {inset.where()}"
        return None

    def to_dict(self) -> dict:
        return {
            "pairs_checked": self.pairs_checked,
            "pairs_verified": self.pairs_verified,
            "inliers": self.inliers,
            "mirror_decided": self.mirrored is not None,
            "mirrored": bool(self.mirrored),
            "region": self.describe(),
            "query_in_source": self.query_in_source.to_dict() if self.query_in_source else None,
            "source_in_query": self.source_in_query.to_dict() if self.source_in_query else None,
            "aligned_similarity": None if self.agreement is None else round(self.agreement, 4),
            "cells_compared": self.cells_textured,
            "picture_agreement": None if self.picture_agreement is None else round(self.picture_agreement, 4),
        }


MIRROR_RATIO = 1.5  # the winning view must beat the other by this factor...
MIRROR_MARGIN = 10  # ...and by this many inliers, on a frame pair
MIN_MIRROR_PAIRS = 2  # a flag (mirrored or not) needs this many pairs agreeing (fewer if fewer were checked)


def flipped_wins(shown_inliers: int, flipped_inliers: int) -> bool:
    return flipped_inliers >= MIRROR_RATIO * shown_inliers and flipped_inliers >= shown_inliers + MIRROR_MARGIN


def summarise(pairs: list[PairEvidence]) -> SegmentEvidence:
    """Combine pair evidence. Mirroring is decided only by several verified pairs agreeing by
    a clear margin: a symmetric or textureless scene, where the two views tie, makes no claim."""
    verified = [e for e in pairs if e.verified]
    if not verified:
        return SegmentEvidence(len(pairs), 0, 0, None, None, None)
    needed = min(MIN_MIRROR_PAIRS, len(pairs))
    flipped = sum(e.flipped for e in verified)
    clear_shown = sum(
        1
        for e in verified
        if not e.flipped and e.flipped_inliers >= 0 and flipped_wins(e.flipped_inliers, e.shown_inliers)
    )
    mirrored = (
        True
        if flipped >= needed and flipped > len(verified) / 2
        else False
        if clear_shown >= needed and clear_shown > len(verified) / 2
        else None
    )
    return SegmentEvidence(
        len(pairs),
        len(verified),
        sum(e.inliers for e in verified),
        mirrored,
        _median_region([e.query_in_source for e in verified]),
        _median_region([e.source_in_query for e in verified]),
        cells_textured=sum(e.cells_textured for e in verified),
        cells_agreeing=sum(e.cells_agreeing for e in verified),
    )


def _median_region(regions: list[Region | None]) -> Region | None:
    boxes = np.array([[r.x, r.y, r.x + r.w, r.y + r.h] for r in regions if r is not None])
    if len(boxes) == 0:
        return None
    x0, y0, x1, y1 = np.median(boxes, axis=0)
    return Region(float(x0), float(y0), float(x1 - x0), float(y1 - y0))
