"""The frames of an evidence pack: read from the upload and each archived file in one pass, boxes drawn, text read."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from firstseen.errors import FirstSeenError
from firstseen.evidence.pack_records import PackFrame
from firstseen.media.decode import IMAGE_EXTENSIONS
from firstseen.media.frames import frame_at
from firstseen.media.seek import frames_at
from firstseen.media.stills import load_image
from firstseen.search.geometry import Region
from firstseen.search.results import MatchSegment, VideoMatch

FULL_SIDE = 4096  # frames are kept at their file's resolution up to this longer side
PREVIEW_SIDE = 480
QUERY_BOX, SOURCE_BOX = (255, 64, 32), (32, 200, 255)


def _jpeg(rgb: np.ndarray, boxes: list[tuple[Region, tuple[int, int, int]]]) -> tuple[bytes, bytes]:
    """The frame with its boxes drawn, as a JPEG at full size and as the report's smaller copy
    (a page of full-size frames, and its PDF, would be tens of MB)."""
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 240))
    for region, colour in boxes:
        x0, y0, x1, y1 = region.pixel_box(image.width, image.height)
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=colour, width=width)
    full, small = io.BytesIO(), io.BytesIO()
    image.save(full, format="JPEG", quality=88)
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), reducing_gap=2.0)
    image.save(small, format="JPEG", quality=82)
    return full.getvalue(), small.getvalue()


def _is_whole(region: Region | None) -> bool:
    return region is None or region.area > 0.97


class QueryFile:
    """The query's frames at the upload's own resolution, read from its file by seeking."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._still: np.ndarray | None = None

    def many(self, times: list[float]) -> dict[float, np.ndarray]:
        if self._still is None and self.path.suffix.lower() not in IMAGE_EXTENSIONS:
            try:
                return {t: f.rgb for t, f in frames_at(self.path, times, max_side=FULL_SIDE).items()}
            except FirstSeenError:  # an upload with an image's bytes under a video's name
                pass
        if self._still is None:
            self._still = load_image(self.path, max_side=FULL_SIDE).rgb
        return {t: self._still for t in times}

    def __call__(self, t: float) -> np.ndarray:
        return self.many([t])[t]


class FrameReader:
    """Reads pack frames: the query's (from its file, or a stored search's frames), an
    archived video's from its file, and the text on screen in them. prefetch reads every
    frame a pack needs from each file in one pass (seek.py)."""

    def __init__(
        self,
        query: Callable[[float], np.ndarray],
        source_path: Callable[[str], str | None],
        read_text: Callable[[np.ndarray], list[str]] | None = None,
    ):
        self._query, self.source_path, self.read_text = query, source_path, read_text
        self._queries: dict[float, np.ndarray] = {}
        self._sources: dict[tuple[str, float], np.ndarray] = {}
        self._failed: dict[str, str] = {}

    def prefetch(self, query_times: list[float], source_times: dict[str, list[float]]) -> None:
        many = getattr(self._query, "many", None)
        if many is not None:
            try:
                self._queries = many(query_times)
            except (FirstSeenError, OSError):
                self._queries = {}  # each frame is tried again alone, and named if it fails
        for video_id, times in source_times.items():
            try:
                path = self._path(video_id)
                for t, frame in frames_at(path, times, max_side=FULL_SIDE).items():
                    self._sources[(video_id, t)] = frame.rgb
            except (FirstSeenError, OSError) as exc:
                self._failed[video_id] = str(exc)

    def query(self, t: float) -> np.ndarray:
        return self._queries[t] if t in self._queries else self._query(t)

    def _path(self, video_id: str) -> str:
        path = self.source_path(video_id)
        if path is None:
            raise FirstSeenError(f"video {video_id} is no longer in the catalog", code="source_missing")
        if not Path(path).is_file():
            raise FirstSeenError(f"the archived file {path} is missing", code="source_file_missing")
        return path

    def source(self, video_id: str, t: float) -> np.ndarray:
        if video_id in self._failed:
            raise FirstSeenError(self._failed[video_id], code="source_file_missing")
        if (video_id, t) in self._sources:
            return self._sources[(video_id, t)]
        return frame_at(self._path(video_id), t, max_side=FULL_SIDE).rgb


def frame_of(
    reader,
    name: str,
    side: str,
    t: float,
    video_id: str | None,
    boxes: list[tuple[Region, tuple[int, int, int]]],
    missing: dict[str, str],
    *,
    read: bool,
) -> PackFrame:
    if video_id is not None and video_id in missing:
        return PackFrame(name, side, t, None, reason=missing[video_id])
    try:
        rgb = reader.query(t) if video_id is None else reader.source(video_id, t)
    except (FirstSeenError, OSError) as exc:
        if video_id is not None:
            missing[video_id] = str(exc)
        return PackFrame(name, side, t, None, reason=str(exc))
    text = reader.read_text(rgb) if read and reader.read_text else []
    full, preview = _jpeg(rgb, boxes)
    return PackFrame(name, side, t, full, text, preview=preview)


def source_time(segment: MatchSegment, t: float) -> float:
    return max(0.0, segment.source_at(t)) if segment.timing_known else segment.source_start


def frame_pairs(
    reader, match: VideoMatch, k: int, segment: MatchSegment, times: list[float], tag: str, missing: dict[str, str]
) -> list[tuple[PackFrame, PackFrame]]:
    """Query and archive frames at these query times; the text on screen is read in the
    segment's middle frame on both sides (a strip's frames repeat the segment's picture)."""
    evidence = segment.evidence
    query_boxes: list[tuple[Region, tuple[int, int, int]]] = []
    source_boxes: list[tuple[Region, tuple[int, int, int]]] = []
    if evidence is not None and evidence.source_in_query is not None and not _is_whole(evidence.source_in_query):
        query_boxes.append((evidence.source_in_query, QUERY_BOX))
    if evidence is not None and evidence.query_in_source is not None and not _is_whole(evidence.query_in_source):
        source_boxes.append((evidence.query_in_source, SOURCE_BOX))
    pairs = []
    for n, t in enumerate(times):
        # text is read in the middle frame: captions and chyrons stay on screen for seconds,
        # and each reading costs about as much as describing the whole clip
        read = tag == "frame" and n == len(times) // 2
        stem = f"segments/{k:02d}-{match.video_id}/{tag}{n}"
        pairs.append(
            (
                frame_of(reader, f"{stem}-query.jpg", "query", t, None, query_boxes, missing, read=read),
                frame_of(
                    reader,
                    f"{stem}-source.jpg",
                    "source",
                    source_time(segment, t),
                    match.video_id,
                    source_boxes,
                    missing,
                    read=read,
                ),
            )
        )
    return pairs
