"""Geometric verification of a frame pair: local features + RANSAC decide whether two pictures show the same scene.

Descriptor similarity says two frames look alike; it cannot tell a copy from two unrelated
flat walls or two dark frames. Local features matched under one geometric transform can:
unrelated pictures do not put a dozen distinctive points where one crop, scale and shift
would put them. The same match, run on the horizontally flipped query, says whether the
clip was mirrored, and the transform says where each picture sits in the other (a crop
shows part of the source; a picture-in-picture or a screenshot holds the source inside
a larger frame). Pure: frames in, evidence out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from firstseen.search.cell_agreement import CellAgreement, cell_agreement
from firstseen.search.geometry import PairEvidence, Region, flipped_wins
from firstseen.search.overlay import OverlayMask, masks_apply

# One thread inside OpenCV: searches run side by side in the API, and the frames here are
# small. A search instead describes the frames of its first pairs two at a time (prefetch).
cv2.setNumThreads(1)


@dataclass(frozen=True, slots=True)
class VerifyParams:
    max_side: int = 360  # frames are matched at this size at most: cost stays bounded
    features: int = 600  # SIFT keypoints kept per frame
    # Below SIFT's default 0.04, so that low-contrast footage (white feathers on a white wall,
    # underwater haze) still yields points: crops of such frames verify at 0.01 and not at 0.04.
    contrast_threshold: float = 0.01
    ratio: float = 0.8  # Lowe's ratio test
    ransac_px: float = 4.0  # reprojection error allowed, at max_side
    min_inliers: int = 12  # fewer than this is not a verified pair
    min_inlier_ratio: float = 0.2  # inliers among the ratio-tested matches
    max_scale: float = 8.0  # a source shown at more than 8x or under 1/8 is not a plausible copy
    sure_inliers: int = 60  # a shown view this well verified needs no flipped try: a flip cannot beat it
    # Aligned by the transform, at least this share of the overlap's cells with detail must agree
    # as pictures (cell_agreement.py: graphics two different pictures share verify on keypoints
    # alone), and there must be min_textured_cells such cells to compare. Both measured on the
    # calibration side's true pairs (README): 365 of 366 agree on half their cells or more, and
    # none has under 22 cells with detail. min_agreement 0: keypoints decide alone.
    min_agreement: float = 0.5
    min_textured_cells: int = 12

    def __post_init__(self) -> None:
        if self.max_side < 32 or self.features < 8 or not 0 < self.ratio < 1 or self.min_inliers < 4:
            raise ValueError("max_side >= 32, features >= 8, 0 < ratio < 1 and min_inliers >= 4 are required")
        if not 0 <= self.min_agreement <= 1 or self.min_textured_cells < 1:
            raise ValueError("0 <= min_agreement <= 1 and min_textured_cells >= 1 are required")


class _Features:
    """Keypoints and descriptors of one frame (and its size), computed once. Features of a
    window of a frame carry the whole frame's size and their points in its coordinates, so
    the regions found are regions of the whole frame."""

    __slots__ = ("points", "descriptors", "width", "height", "gray", "offset")

    def __init__(
        self,
        gray: np.ndarray,
        detector: cv2.SIFT,
        frame_size: tuple[float, float] | None = None,
        offset: tuple[float, float] = (0.0, 0.0),
    ):
        self.height, self.width = gray.shape if frame_size is None else frame_size
        keypoints, descriptors = detector.detectAndCompute(gray, None)
        self.points = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2) + np.asarray(offset, np.float32)
        self.descriptors = descriptors
        self.gray, self.offset = gray, offset  # for the pictures' agreement once aligned


def _gray(image: np.ndarray, max_side: int) -> np.ndarray:
    """Grey at max_side at most; a 2-d array is grey already (a stored thumbnail)."""
    gray = (
        np.ascontiguousarray(image)
        if image.ndim == 2
        else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    )
    h, w = gray.shape
    scale = max_side / max(h, w)
    if scale < 1:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return gray


def encode_thumbnail(rgb: np.ndarray, max_side: int, quality: int = 80) -> bytes:
    """A grey JPEG of a sampled frame, kept at ingest so verification needs no second decode."""
    ok, data = cv2.imencode(".jpg", _gray(rgb, max_side), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding of a thumbnail failed")
    return data.tobytes()


def decode_thumbnail(data: bytes) -> np.ndarray:
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise ValueError("a stored thumbnail is not a readable JPEG")
    return gray


class Verifier:
    """Matches frame pairs. Holds the detector, the matcher and the features of the frames it
    was given under a key, so a query frame checked against several candidates is described
    once. Not shared between threads (OpenCV's detectors are not): one per search."""

    def __init__(self, params: VerifyParams | None = None):
        self.params = params or VerifyParams()
        self._detector = cv2.SIFT_create(
            nfeatures=self.params.features, contrastThreshold=self.params.contrast_threshold
        )
        self._matcher = cv2.BFMatcher(cv2.NORM_L2)
        self._cache: dict[tuple, _Features] = {}

    def _detector_for_thread(self) -> cv2.SIFT:
        return cv2.SIFT_create(nfeatures=self.params.features, contrastThreshold=self.params.contrast_threshold)

    def features(self, image: np.ndarray, key: tuple | None = None, window: Region | None = None) -> _Features:
        """Features of a frame, or of one window of it (the window alone fills max_side, so a
        small inset gets its share of keypoints), in the whole frame's coordinates."""
        key = key if key is None or window is None else (*key, window)
        if key is not None and key in self._cache:
            return self._cache[key]
        found = self._compute(image, window, self._detector)
        if key is not None:
            self._cache[key] = found
        return found

    def _compute(self, image: np.ndarray, window: Region | None, detector: cv2.SIFT) -> _Features:
        if window is None:
            return _Features(_gray(image, self.params.max_side), detector)
        h, w = image.shape[:2]
        x0, y0, x1, _ = window.pixel_box(w, h)
        gray = _gray(window.crop(image), self.params.max_side)
        scale = gray.shape[1] / max(1, min(x1, w) - x0)
        return _Features(gray, detector, (h * scale, w * scale), (x0 * scale, y0 * scale))

    def prefetch(
        self,
        queries: Sequence[tuple[np.ndarray, object]],
        sources: Sequence[tuple[np.ndarray, object]],
        window: Region | None = None,
    ) -> None:
        """Compute, two at a time, the features that verify() will ask for under these keys
        (query frames as shown, in the window where given; source frames whole). SIFT holds
        no lock on Python while it works, so on two cores the first pairs of a search cost
        half; each thread has its own detector, since OpenCV's are not shared."""
        wanted: dict[tuple, tuple[np.ndarray, Region | None]] = {}
        for image, key in queries:
            full = ("query", key, False) if window is None else ("query", key, False, window)
            wanted.setdefault(full, (image, window))
        for image, key in sources:
            wanted.setdefault(("source", key), (image, None))
        missing = [(k, v) for k, v in wanted.items() if k not in self._cache]
        if len(missing) < 2:
            return
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify") as pool:
            found = pool.map(lambda item: self._compute(item[1][0], item[1][1], self._detector_for_thread()), missing)
            self._cache.update(zip((k for k, _ in missing), found))

    def verify(
        self,
        query_image: np.ndarray,
        source_image: np.ndarray,
        *,
        flipped: bool = True,
        query_key: object = None,
        source_key: object = None,
        window: Region | None = None,
        query_overlay: OverlayMask | None = None,
        source_overlay: OverlayMask | None = None,
    ) -> PairEvidence:
        """Match the query frame as shown (and, with flipped, mirrored) against the source frame;
        with a window, only that part of the query frame (the regions stay the whole frame's).
        Keys, where given, name the frames so that their features are computed once. Regions
        are given in the query frame as shown, whichever view won. Matches on either frame's
        static overlay (overlay.py: a program's chrome, a logo) count for nothing."""
        qk = None if query_key is None else ("query", query_key)
        src = self.features(source_image, None if source_key is None else ("source", source_key))
        shown = self._match(self.features(query_image, qk and (*qk, False), window), src, query_overlay, source_overlay)
        if not flipped or shown.inliers >= self.params.sure_inliers and shown.verified:
            return shown.evidence(shown.inliers, -1, flipped=False)
        mirror_window = (
            None if window is None else Region(max(0.0, 1 - window.x - window.w), window.y, window.w, window.h)
        )
        mirrored = self._match(
            self.features(np.ascontiguousarray(query_image[:, ::-1]), qk and (*qk, True), mirror_window),
            src,
            None if query_overlay is None else query_overlay.mirrored(),
            source_overlay,
        )
        use_flipped = flipped_wins(shown.inliers, mirrored.inliers)
        best = mirrored if use_flipped else shown
        return best.evidence(shown.inliers, mirrored.inliers, flipped=use_flipped)

    def _match(
        self,
        query: _Features,
        source: _Features,
        query_overlay: OverlayMask | None = None,
        source_overlay: OverlayMask | None = None,
    ) -> _View:
        p = self.params
        if query.descriptors is None or source.descriptors is None or len(query.points) < 2 or len(source.points) < 2:
            return _View(0)
        pairs = self._matcher.knnMatch(query.descriptors, source.descriptors, k=2)
        good = [m for m, n in (pair for pair in pairs if len(pair) == 2) if m.distance < p.ratio * n.distance]
        # Before the fit: chrome shared by two unrelated screenshots would win RANSAC on its own
        # (identity, dozens of inliers) and hide the footage's true transform in a real copy.
        good = _off_overlays(good, query, source, query_overlay, source_overlay)
        if len(good) < p.min_inliers:
            return _View(len(good) // 4)  # too few to fit: report a token count, never verified
        q = query.points[[m.queryIdx for m in good]]
        s = source.points[[m.trainIdx for m in good]]
        # A similarity (scale, rotation, shift) covers crops, resizes, letterboxes and insets;
        # it has 4 degrees of freedom, so chance agreements among few points are rare.
        transform, mask = cv2.estimateAffinePartial2D(
            q, s, method=cv2.RANSAC, ransacReprojThreshold=p.ransac_px, maxIters=2000, confidence=0.995
        )
        if transform is None or mask is None:
            return _View(0)
        inliers = int(mask.sum())
        # Inliers must be distinct points, not one corner matched many times.
        inlier_q = q[mask.ravel() == 1]
        distinct = len(np.unique(np.round(inlier_q / 3.0), axis=0))
        scale = math.hypot(transform[0, 0], transform[1, 0])
        inlier_s = s[mask.ravel() == 1]
        if (
            distinct < p.min_inliers
            or inliers < p.min_inlier_ratio * len(good)
            or not 1 / p.max_scale <= scale <= p.max_scale
            or not _spread(inlier_q, query)
            or not (_central(inlier_q, query) or _central(inlier_s, source))
        ):
            return _View(min(inliers, distinct))
        cells = self._agreement(query, source, transform, query_overlay, source_overlay)
        if not self._agrees(cells):
            # A copy stretched to another aspect ratio (4:3 shown as 16:9, a squeezed letterbox)
            # keeps its keypoints near the similarity but not its pixels: registered by the
            # affine transform of the same matches, its picture agrees again; two pictures
            # sharing only graphics do not, however they are registered.
            stretched, _ = cv2.estimateAffine2D(
                q, s, method=cv2.RANSAC, ransacReprojThreshold=p.ransac_px, maxIters=2000, confidence=0.995
            )
            if stretched is not None:
                again = self._agreement(query, source, stretched, query_overlay, source_overlay)
                cells = max(cells, again, key=lambda c: (c.share, c.textured))
        if not self._agrees(cells):
            return _View(min(inliers, distinct), cells=cells)  # the points agree, the pictures do not
        return _View(inliers, *_regions(transform, query, source), cells)

    def _agreement(
        self,
        query: _Features,
        source: _Features,
        transform: np.ndarray,
        query_overlay: OverlayMask | None,
        source_overlay: OverlayMask | None,
    ) -> CellAgreement:
        return cell_agreement(
            query.gray,
            source.gray,
            transform,
            query_offset=query.offset,
            query_frame=(query.width, query.height),
            query_overlay=query_overlay,
            source_overlay=source_overlay,
        )

    def _agrees(self, cells: CellAgreement) -> bool:
        p = self.params
        return p.min_agreement <= 0 or cells.textured >= p.min_textured_cells and cells.share >= p.min_agreement


class _View(NamedTuple):
    """What matching one view of the query frame found: verified where the regions are set."""

    inliers: int
    query_in_source: Region | None = None
    source_in_query: Region | None = None
    cells: CellAgreement | None = None

    @property
    def verified(self) -> bool:
        return self.query_in_source is not None

    def evidence(self, shown_inliers: int, flipped_inliers: int, *, flipped: bool) -> PairEvidence:
        """This view as the pair's evidence (flipped: it is the mirrored view, and its inset is
        given back as it sits in the frame shown)."""
        inset = self.source_in_query
        if flipped and inset is not None:
            inset = Region(max(0.0, 1 - inset.x - inset.w), inset.y, inset.w, inset.h)
        cells = self.cells or CellAgreement(0, 0)
        return PairEvidence(
            self.inliers,
            shown_inliers,
            flipped_inliers,
            flipped and self.verified,
            self.query_in_source,
            inset,
            cells.textured,
            cells.agreeing,
        )


def _off_overlays(
    good: list,
    query: _Features,
    source: _Features,
    query_overlay: OverlayMask | None,
    source_overlay: OverlayMask | None,
) -> list:
    """The matches whose points lie on neither frame's static overlay (all of them where either
    clip is a steady shot: still parts are then scene on both sides)."""
    if not good or query_overlay is None and source_overlay is None:
        return good
    if not masks_apply(query_overlay, source_overlay):
        return good
    keep = np.ones(len(good), bool)
    if query_overlay is not None:
        keep &= ~query_overlay.covers(query.points[[m.queryIdx for m in good]], query.width, query.height)
    if source_overlay is not None:
        keep &= ~source_overlay.covers(source.points[[m.trainIdx for m in good]], source.width, source.height)
    return [m for m, k in zip(good, keep) if k]


def _spread(points: np.ndarray, frame: _Features) -> bool:
    """Inliers spread over more than a sliver of the frame (a line of text or one logo is not a scene)."""
    span = points.max(axis=0) - points.min(axis=0)
    return span[0] >= 0.12 * frame.width and span[1] >= 0.12 * frame.height


def _central(points: np.ndarray, frame: _Features) -> bool:
    """Some inliers lie in the middle of the frame. Tickers, lower thirds, logos and bars sit at
    the edges, and two unrelated clips under the same ticker match only there; a real copy
    matches the scene, whose middle is in the middle of the frame it fills (the source frame
    for a picture-in-picture, the query frame for a crop)."""
    x, y = points[:, 0] / frame.width, points[:, 1] / frame.height
    inside = (x > 0.25) & (x < 0.75) & (y > 0.25) & (y < 0.75)
    return int(inside.sum()) >= max(4, 0.1 * len(points))


def _regions(transform: np.ndarray, query: _Features, source: _Features) -> tuple[Region | None, Region | None]:
    """Map each frame's rectangle into the other through the transform, clipped to the frame."""
    forward = np.vstack([transform, [0, 0, 1]])
    try:
        backward = np.linalg.inv(forward)
    except np.linalg.LinAlgError:
        return None, None
    return (
        _box(forward, query.width, query.height, source.width, source.height),
        _box(backward, source.width, source.height, query.width, query.height),
    )


def _box(matrix: np.ndarray, from_w: int, from_h: int, to_w: int, to_h: int) -> Region | None:
    corners = np.array([[0, 0, 1], [from_w, 0, 1], [0, from_h, 1], [from_w, from_h, 1]], float).T
    mapped = (matrix @ corners)[:2]
    x0, y0 = max(0.0, mapped[0].min()), max(0.0, mapped[1].min())
    x1, y1 = min(float(to_w), mapped[0].max()), min(float(to_h), mapped[1].max())
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return Region(x0 / to_w, y0 / to_h, (x1 - x0) / to_w, (y1 - y0) / to_h)
