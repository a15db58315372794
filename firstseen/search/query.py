"""The query side of a search: a clip or still decoded at real timestamps, described, its frames kept for verifying."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firstseen.descriptors import FrameDescriptor
from firstseen.errors import BadInputError, MediaError
from firstseen.media.decode import IMAGE_EXTENSIONS, probe, sample_frames
from firstseen.media.informative import informative_flags, measure
from firstseen.media.stills import load_image
from firstseen.params import QueryParams
from firstseen.records import FrameVectors, SampledFrame
from firstseen.search.confirm import ImageOf
from firstseen.search.geometry import Region
from firstseen.search.overlay import OverlayMask, overlay_of
from firstseen.search.results import QueryInfo


@dataclass(frozen=True, slots=True)
class QueryVectors:
    """A query's sampled frames, described as shown and mirrored; timestamps travel with them."""

    info: QueryInfo
    pts_s: np.ndarray  # (n,) float64
    vectors: np.ndarray  # (n, d) as the descriptor returns them
    mirrored: np.ndarray | None  # (n, d) of the horizontally flipped frames, or None
    informative: np.ndarray | None = None  # (n,) bool: frames that may carry evidence; None: all
    image: ImageOf | None = None  # frame index -> pixels, for geometric verification
    # a region of every frame -> that region's vectors and pixels (a picture inside the picture)
    describe_region: Callable[[Region], tuple[np.ndarray, list[np.ndarray]]] | None = None
    # the part of each frame the vectors describe (None: the whole frame); image stays whole frames
    window: Region | None = None
    # what is worked out once from the frames themselves, shared with the query's windows
    frames_memo: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.pts_s)
        if n == 0 or len(self.vectors) != n or (self.mirrored is not None and len(self.mirrored) != n):
            raise ValueError("a query needs one vector (and one mirrored vector) per sampled frame")
        if self.informative is not None and self.informative.shape != (n,):
            raise ValueError("a query needs one informative flag per sampled frame")
        if n > 1 and np.any(np.diff(self.pts_s) <= 0):
            raise ValueError("query timestamps must increase")

    def within(self, window: Region) -> QueryVectors:
        """The same frames described in one window of each: a source filling only that part."""
        if self.describe_region is None:
            raise ValueError("this query cannot describe regions of its frames")
        vectors, crops = self.describe_region(window)
        self.static_overlay()  # of the whole frames, judged by their own flags: worked out before the window's
        return QueryVectors(
            self.info,
            self.pts_s,
            vectors,
            None,
            informative_flags(crops),
            self.image,
            self.describe_region,
            window,
            self.frames_memo,
        )

    def static_overlay(self) -> OverlayMask | None:
        """The static overlay of the kept frames (overlay.py: a logo, a program's chrome), once."""
        if self.image is None:
            return None
        if "overlay" not in self.frames_memo:
            self.frames_memo["overlay"] = overlay_of(self.image, self.pts_s, self.usable, -np.inf, np.inf)
        return self.frames_memo["overlay"]

    @property
    def usable(self) -> np.ndarray:
        return np.ones(len(self.pts_s), bool) if self.informative is None else self.informative

    @classmethod
    def of_stored(cls, name: str, stored: FrameVectors, image: ImageOf | None = None) -> QueryVectors:
        """An archived video as a query (copy links): its stored vectors, flags and frames."""
        vectors = stored.vectors if stored.vectors.dtype == np.uint8 else stored.vectors.astype(np.float32)
        duration = float(stored.pts_s[-1]) if len(stored.pts_s) else 0.0
        return cls(
            QueryInfo(name, "video", duration, len(stored.pts_s)),
            stored.pts_s,
            vectors,
            None,
            stored.informative,
            image,
        )


def sample_query(path: Path, params: QueryParams) -> tuple[QueryInfo, list[SampledFrame]]:
    """Decode a query file: a still image gives one frame; a video gives frames at real
    timestamps, every frame of a short clip, otherwise query_fps (fewer for very long clips)."""
    info, frames, fps = _open_query(Path(path), params)
    if frames is not None:
        return info, frames
    return _finish(info, list(_video_frames(Path(path), params, fps)), params)


def _open_query(path: Path, params: QueryParams) -> tuple[QueryInfo, list[SampledFrame] | None, float | None]:
    """What the file is: a still (its one frame), or a video and the rate to sample it at."""
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return _image_query(path, params) + (None,)
    try:
        info = probe(path)
    except MediaError as video_error:
        try:  # uploads arrive under any name: a screenshot called clip.mp4 is still a screenshot
            return _image_query(path, params) + (None,)
        except MediaError as image_error:
            # Pillow knew the format (an image bomb, a broken PNG): its reason is the one that fits
            raise (video_error if image_error.code == "not_media" else image_error) from None
    if info.duration_s > params.max_duration_s:
        raise BadInputError(
            f"clip is {info.duration_s:.0f} s long; the limit is {params.max_duration_s:.0f} s", code="too_long"
        )
    dense = info.duration_s <= params.dense_below_s
    fps = None if dense else min(params.fps, params.max_frames / max(info.duration_s, 1e-6))
    return QueryInfo(path.name, "video", info.duration_s, 1), None, fps


def _video_frames(path: Path, params: QueryParams, fps: float | None, *, threads: int | None = None):
    # Sampled at a rate (not every frame), non-reference frames go undecoded as at ingest: a
    # pick lands at most a frame or two after its target, at its own real time, for about a
    # third less decoding on B-frame codecs.
    return sample_frames(
        path,
        fps=fps,
        max_side=params.decode.max_side,
        threads=params.decode.threads if threads is None else threads,
        max_truncation_s=params.decode.max_truncation_s,
    )


def _finish(info: QueryInfo, frames: list[SampledFrame], params: QueryParams) -> tuple[QueryInfo, list[SampledFrame]]:
    if len(frames) > params.max_frames:  # a short clip at a very high frame rate
        keep = np.linspace(0, len(frames) - 1, params.max_frames).round().astype(int)
        frames = [frames[i] for i in np.unique(keep)]
    if not frames:
        raise MediaError("no decodable video frames")
    duration = max(info.duration_s, frames[-1].pts_s)
    return QueryInfo(info.filename, "video", duration, len(frames)), frames


def _decode_while_describing(
    path: Path, params: QueryParams, fps: float | None, descriptor: FrameDescriptor
) -> tuple[list[SampledFrame], np.ndarray | None, np.ndarray | None]:
    """Frames decoded (and judged informative or not) on a thread while this one describes
    them in batches, as at ingest: FFmpeg, OpenCV and onnxruntime release the GIL, so decoding
    hides behind description. A dense clip (every frame, thinned afterwards) is decoded first
    and described after."""
    if fps is None:
        return list(_video_frames(path, params, fps)), None, None
    frames_q: queue.Queue = queue.Queue(maxsize=4 * params.batch_size)
    failure: list[BaseException] = []
    flags: list[bool] = []

    # Beside inference the decoder gets one thread unless told otherwise: the descriptor's
    # threads hold the cores, and FFmpeg's own pool only contends with them (the README's
    # 30-second query measures both).
    threads = params.decode.threads or 1

    def produce() -> None:
        try:
            for frame in _video_frames(path, params, fps, threads=threads):
                flags.append(measure(frame.rgb).informative)
                frames_q.put(frame)
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)
        finally:
            frames_q.put(None)

    threading.Thread(target=produce, name="query-decode", daemon=True).start()
    frames: list[SampledFrame] = []
    chunks: list[np.ndarray] = []
    batch: list[SampledFrame] = []
    # a small first batch: inference starts after a few frames, not after a full batch's decoding
    wanted = max(1, params.batch_size // 4)
    while (frame := frames_q.get()) is not None:
        batch.append(frame)
        if len(batch) >= wanted:
            chunks.append(descriptor.describe([f.rgb for f in batch]))
            frames += batch
            batch, wanted = [], params.batch_size
    if failure:
        raise failure[0]
    if batch:
        chunks.append(descriptor.describe([f.rgb for f in batch]))
        frames += batch
    return frames, np.concatenate(chunks) if chunks else None, np.array(flags, bool)


def _image_query(path: Path, params: QueryParams) -> tuple[QueryInfo, list[SampledFrame]]:
    frame = load_image(path, max_side=params.decode.max_side, max_pixels=params.image_max_pixels)
    return QueryInfo(path.name, "image", 0.0, 1), [frame]


def describe_query(
    path: Path, descriptor: FrameDescriptor, params: QueryParams, *, mirrored_views: bool = False
) -> QueryVectors:
    """The query's frames described as shown. SSCD finds a flipped copy from the shown view
    (cosine about 0.95 under a flip) and the geometry decides MIRRORED, so the flipped views
    are described only on request (mirrored_views), which doubles the cost."""
    path = Path(path)
    info, frames, fps = _open_query(path, params)
    described = flags = None
    if frames is None:
        decoded, described, flags = _decode_while_describing(path, params, fps, descriptor)
        if described is not None and len(decoded) > params.max_frames:
            described = flags = None  # thinned below: describe what is kept
        info, frames = _finish(info, decoded, params)
    shown = [f.rgb for f in frames]
    if mirrored_views or described is None:
        views = shown + [np.ascontiguousarray(f.rgb[:, ::-1]) for f in frames] if mirrored_views else shown
        vectors = descriptor.describe(views)  # one call: batches stay full
    else:
        vectors = described
    n = len(frames)
    return QueryVectors(
        info,
        np.array([f.pts_s for f in frames], dtype=np.float64),
        vectors[:n],
        vectors[n:] if mirrored_views else None,
        flags if flags is not None else informative_flags(shown),
        shown.__getitem__,
        _region_describer(descriptor, shown),
    )


def _region_describer(descriptor: FrameDescriptor, frames: list[np.ndarray]):
    """Describe one region of every frame, once per region (boxes rounded to 2% of the frame)."""
    cache: dict[tuple, tuple[np.ndarray, list[np.ndarray]]] = {}

    def describe(region: Region) -> tuple[np.ndarray, list[np.ndarray]]:
        key = tuple(round(v * 50) for v in (region.x, region.y, region.w, region.h))
        if key not in cache:
            crops = [region.crop(f) for f in frames]
            cache[key] = (descriptor.describe(crops), crops)
        return cache[key]

    return describe
