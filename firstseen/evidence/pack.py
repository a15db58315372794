"""The evidence pack of a search: the frames, strips, region boxes, on-screen text and provenance a fact-check publishes.

Results and frames in, files out. For each segment: the query frame (at the upload's own
resolution) and the archive frame (at the archived file's) at its start, middle and end;
for a reversed or re-timed segment, a strip of six query frames in query order over the
archive frames they match, so a reader sees the source run the other way (or faster); the
verified region drawn on both; the text on screen in those frames, quoted as read. Only
those few frames are decoded (seeking), never the whole clip again. An archived file that
has gone is named in the pack, whose other parts still stand. The content is deterministic
apart from the search time and the file timestamps inside the zip and the PDF."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from firstseen.errors import BadInputError, FirstSeenError
from firstseen.search.geometry import Region
from firstseen.media.decode import IMAGE_EXTENSIONS, probe
from firstseen.media.frames import frame_at
from firstseen.media.stills import load_image
from firstseen.media.seek import frames_at
from firstseen.search.results import MatchSegment, SearchResult, VideoMatch

log = logging.getLogger(__name__)

FULL_SIDE = 4096  # frames are kept at their file's resolution up to this longer side
PREVIEW_SIDE = 480
STRIP_FRAMES = 6
MAX_SEGMENTS = 3  # per match, best first
MAX_MATCHES = 6  # matches given frames (every match stays in result.json and the timeline)
QUERY_BOX, SOURCE_BOX = (255, 64, 32), (32, 200, 255)


@dataclass
class PackFrame:
    """One frame of the pack: which side, when, its JPEG, the text read in it."""

    name: str  # file name inside the pack
    side: str  # "query" or "source"
    t: float
    jpeg: bytes | None  # None: the frame could not be read (reason says why)
    text: list[str] = field(default_factory=list)
    reason: str | None = None
    preview: bytes | None = None  # the report's copy, at most PREVIEW_SIDE pixels


@dataclass
class PackSegment:
    match: VideoMatch
    index: int
    segment: MatchSegment
    frames: list[tuple[PackFrame, PackFrame]]  # (query, source) at start, middle, end
    strip: list[tuple[PackFrame, PackFrame]] | None  # reversed or re-timed: six pairs in query order
    archive_text: list[str] = field(default_factory=list)  # the archive's stored chyrons for that stretch


@dataclass
class EvidencePack:
    result: SearchResult
    result_dict: dict
    segments: list[PackSegment]
    query_facts: dict
    produced_by: dict
    missing: list[str]  # "video_id: reason" for archived files that could not be read

    def files(self) -> dict[str, bytes]:
        """Every file of the pack by name, the HTML and PDF reports included."""
        from firstseen.evidence.report import render_html, render_pdf

        out: dict[str, bytes] = {"result.json": json.dumps(self.result_dict, indent=2, ensure_ascii=False).encode()}
        for seg in self.segments:
            for pair in seg.frames + (seg.strip or []):
                for frame in pair:
                    if frame.jpeg is not None:
                        out[frame.name] = frame.jpeg
        html = render_html(self)
        out["report.html"] = html.encode()
        pdf = render_pdf(html)
        if pdf is not None:
            out["report.pdf"] = pdf
        out["manifest.json"] = json.dumps({name: hashlib.sha256(data).hexdigest() for name, data in sorted(out.items())},
                                          indent=2).encode()
        return out

    def zip_bytes(self, files: dict[str, bytes] | None = None) -> bytes:
        """The pack as a zip, its entries in name order with one fixed timestamp."""
        files = self.files() if files is None else files
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(files):
                zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), files[name])
        return buffer.getvalue()

    def write(self, dest: Path) -> Path:
        """To a folder, or to a .zip; written beside and renamed, so a pack is whole or absent."""
        dest = Path(dest)
        check_destination(dest)
        files = self.files()
        if dest.suffix.lower() == ".zip":
            temporary = dest.with_name(dest.name + ".part")
            temporary.write_bytes(self.zip_bytes(files))
            temporary.replace(dest)
            return dest
        check_destination(dest)
        temporary = dest.with_name(dest.name + ".part")
        for name, data in files.items():
            (temporary / name).parent.mkdir(parents=True, exist_ok=True)
            (temporary / name).write_bytes(data)
        if dest.exists():
            dest.rmdir()
        temporary.replace(dest)
        return dest


def check_destination(dest: Path) -> None:
    """Where a pack may go: a .zip or a new (or empty) folder, in a folder that exists."""
    dest = Path(dest)
    if not dest.parent.is_dir():
        raise BadInputError(f"no folder {dest.parent} to write the evidence pack in", code="pack_destination")
    if dest.suffix.lower() != ".zip" and dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BadInputError(f"{dest} exists and is not an empty folder: an evidence pack needs a new folder",
                            code="pack_exists")


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

    def __init__(self, query: Callable[[float], np.ndarray], source_path: Callable[[str], str | None],
                 read_text: Callable[[np.ndarray], list[str]] | None = None):
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


def _frame(reader, name: str, side: str, t: float, video_id: str | None,
           boxes: list[tuple[Region, tuple[int, int, int]]], missing: dict[str, str], *, read: bool) -> PackFrame:
    if side == "source" and video_id in missing:
        return PackFrame(name, side, t, None, reason=missing[video_id])
    try:
        rgb = reader.query(t) if side == "query" else reader.source(video_id, t)
    except (FirstSeenError, OSError) as exc:
        if side == "source":
            missing[video_id] = str(exc)
        return PackFrame(name, side, t, None, reason=str(exc))
    text = reader.read_text(rgb) if read and reader.read_text else []
    full, preview = _jpeg(rgb, boxes)
    return PackFrame(name, side, t, full, text, preview=preview)


def _source_time(segment: MatchSegment, t: float) -> float:
    return max(0.0, segment.source_at(t)) if segment.timing_known else segment.source_start


def _pairs(reader, match: VideoMatch, k: int, segment: MatchSegment, times: list[float], tag: str,
           missing: dict[str, str]) -> list[tuple[PackFrame, PackFrame]]:
    """Query and archive frames at these query times; the text on screen is read in the
    segment's middle frame on both sides (a strip's frames repeat the segment's picture)."""
    evidence = segment.evidence
    query_boxes = [] if evidence is None or _is_whole(evidence.source_in_query) else \
        [(evidence.source_in_query, QUERY_BOX)]
    source_boxes = [] if evidence is None or _is_whole(evidence.query_in_source) else \
        [(evidence.query_in_source, SOURCE_BOX)]
    pairs = []
    for n, t in enumerate(times):
        # text is read in the middle frame: captions and chyrons stay on screen for seconds,
        # and each reading costs about as much as describing the whole clip
        read = tag == "frame" and n == len(times) // 2
        stem = f"segments/{k:02d}-{match.video_id}/{tag}{n}"
        pairs.append((_frame(reader, f"{stem}-query.jpg", "query", t, None, query_boxes, missing, read=read),
                      _frame(reader, f"{stem}-source.jpg", "source", _source_time(segment, t), match.video_id,
                             source_boxes, missing, read=read)))
    return pairs


def pack_plan(result: SearchResult) -> list[tuple[VideoMatch, int, MatchSegment, list[float], list[float] | None]]:
    """Which segments get frames, and at which query times: (match, number, segment, the
    start/middle/end times, the strip's times or None). A stored search keeps exactly these
    query frames, so its pack can be made after the upload is gone."""
    ordered = list(result.matches[:MAX_MATCHES])
    if result.earliest is not None and result.earliest not in ordered:
        ordered.append(result.earliest)
    plan, k = [], 0
    for match in ordered:
        for segment in match.segments[:MAX_SEGMENTS]:
            k += 1
            q0, q1 = segment.query_start, segment.query_end
            key = [q0, (q0 + q1) / 2, max(q0, q1 - 1e-3)] if q1 > q0 else [q0]
            retimed = segment.timing_known and (segment.reversed or abs(segment.speed - 1.0) > 0.1) and q1 > q0
            strip = [float(t) for t in np.linspace(q0, max(q0, q1 - 1e-3), STRIP_FRAMES)] if retimed else None
            plan.append((match, k, segment, [float(t) for t in key], strip))
    return plan


def query_times(result: SearchResult) -> list[float]:
    """Every query time a pack of this result shows, rounded to the millisecond."""
    return sorted({round(t, 3) for _, _, _, key, strip in pack_plan(result) for t in key + (strip or [])})


def build_pack(result: SearchResult, result_dict: dict, reader, *, query_facts: dict,
               produced_by: dict, archive_text: Callable[[str, float, float], list[str]] | None = None
               ) -> EvidencePack:
    """The pack of one search: its frames read, its strips made, its text quoted. The reader
    gives query(t), source(video_id, t) and read_text (FrameReader, or a stored search's)."""
    missing: dict[str, str] = {}
    segments = []
    plan = pack_plan(result)
    if hasattr(reader, "prefetch"):
        source_times: dict[str, list[float]] = {}
        for match, _, segment, key, strip_times in plan:
            source_times.setdefault(match.video_id, []).extend(_source_time(segment, t) for t in key + (strip_times or []))
        reader.prefetch(sorted({t for *_, key, strip in plan for t in key + (strip or [])}), source_times)
    for match, k, segment, key, strip_times in plan:
        frames = _pairs(reader, match, k, segment, key, "frame", missing)
        strip = _pairs(reader, match, k, segment, strip_times, "strip", missing) if strip_times else None
        text = archive_text(match.video_id, segment.source_start, segment.source_end) if archive_text else []
        segments.append(PackSegment(match, k, segment, frames, strip, text))
    return EvidencePack(result, result_dict, segments, query_facts, produced_by,
                        [f"{vid}: {reason}" for vid, reason in sorted(missing.items())])


def query_facts(path: Path) -> dict:
    """The uploaded file as a reader can check it: sha256, size, container metadata."""
    import av

    path = Path(path)
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    facts: dict = {"filename": path.name, "sha256": digest.hexdigest(), "size_bytes": path.stat().st_size}
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = container.streams.video[0] if container.streams.video else None
            meta = {k.lower(): v for k, v in container.metadata.items()}
            facts.update(container=container.format.name, creation_time=meta.get("creation_time"),
                         encoder=meta.get("encoder"),
                         duration_s=round(container.duration / av.time_base, 3) if container.duration else None)
            if stream is not None:
                facts.update(width=stream.codec_context.width, height=stream.codec_context.height,
                             codec=stream.codec_context.name)
    except (av.error.FFmpegError, IndexError, ValueError) as exc:
        facts["container_error"] = str(exc)
    if path.suffix.lower() not in IMAGE_EXTENSIONS and "container_error" not in facts:
        try:
            facts["rotation"] = probe(path).rotation
        except FirstSeenError:
            pass  # an image under a video's name: the container facts above say what it is
    return facts


def pack_of_search(archive, result: SearchResult, query: Callable[[float], np.ndarray], *, query_facts: dict,
                   descriptor_config: str, calibration, searched_at: str, text_reader=None,
                   text_note: str | None = None) -> EvidencePack:
    """The pack of a search run on this archive (the shells' one call): query frames from
    `query` (QueryFile, or a stored search), archive frames from the archived files, the
    archive's stored chyrons, and what produced it."""
    from firstseen import __version__

    store = archive.onscreen_text

    def source_path(video_id: str) -> str | None:
        record = archive.video(video_id)
        return record.path if record is not None else None

    def archive_text(video_id: str, t0: float, t1: float) -> list[str]:
        return [span.text for span in store.text_between(video_id, t0, t1)]

    read = (lambda rgb: [line.text for line in text_reader.read(rgb)]) if text_reader is not None else None
    measured = calibration.measured or {}
    produced_by = {"firstseen": __version__, "descriptor": descriptor_config,
                   "calibration": f"{calibration.config_id}, fitted {measured.get('date', 'date unknown')}, "
                                  f"threshold {calibration.threshold}",
                   "background": calibration.background_sha256 or "none",
                   "index_checkpoint": archive.checkpoint, "searched_at_utc": searched_at,
                   "on_screen_text": text_note or (getattr(text_reader, "config_id", None) or "not read")}
    return build_pack(result, result.to_dict(), FrameReader(query, source_path, read), query_facts=query_facts,
                      produced_by=produced_by, archive_text=archive_text)
