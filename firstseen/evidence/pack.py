"""The evidence pack of a search: frames, strips, region boxes, on-screen text and provenance a fact-check publishes.

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
from pathlib import Path

import numpy as np

from firstseen.errors import BadInputError, FirstSeenError
from firstseen.evidence.pack_frames import FrameReader, frame_pairs, source_time
from firstseen.evidence.pack_records import EvidencePack, PackSegment
from firstseen.evidence.report import render_html, render_pdf
from firstseen.media.decode import IMAGE_EXTENSIONS, probe
from firstseen.search.results import MatchSegment, SearchResult, VideoMatch

log = logging.getLogger(__name__)

STRIP_FRAMES = 6
MAX_SEGMENTS = 3  # per match, best first
MAX_MATCHES = 6  # matches given frames (every match stays in result.json and the timeline)


def pack_files(pack: EvidencePack) -> dict[str, bytes]:
    """Every file of the pack by name, the HTML and PDF reports included."""
    out: dict[str, bytes] = {"result.json": json.dumps(pack.result_dict, indent=2, ensure_ascii=False).encode()}
    for seg in pack.segments:
        for pair in seg.frames + (seg.strip or []):
            for frame in pair:
                if frame.jpeg is not None:
                    out[frame.name] = frame.jpeg
    html = render_html(pack)
    out["report.html"] = html.encode()
    pdf = render_pdf(html)
    if pdf is not None:
        out["report.pdf"] = pdf
    out["manifest.json"] = json.dumps(
        {name: hashlib.sha256(data).hexdigest() for name, data in sorted(out.items())}, indent=2
    ).encode()
    return out


def pack_zip(pack: EvidencePack, files: dict[str, bytes] | None = None) -> bytes:
    """The pack as a zip, its entries in name order with one fixed timestamp."""
    files = pack_files(pack) if files is None else files
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), files[name])
    return buffer.getvalue()


def write_pack(pack: EvidencePack, dest: Path) -> Path:
    """To a folder, or to a .zip; written beside and renamed, so a pack is whole or absent."""
    dest = Path(dest)
    check_destination(dest)
    files = pack_files(pack)
    if dest.suffix.lower() == ".zip":
        temporary = dest.with_name(dest.name + ".part")
        temporary.write_bytes(pack_zip(pack, files))
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
        raise BadInputError(
            f"{dest} exists and is not an empty folder: an evidence pack needs a new folder", code="pack_exists"
        )


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


def build_pack(
    result: SearchResult,
    result_dict: dict,
    reader,
    *,
    query_facts: dict,
    produced_by: dict,
    archive_text: Callable[[str, float, float], list[str]] | None = None,
) -> EvidencePack:
    """The pack of one search: its frames read, its strips made, its text quoted. The reader
    gives query(t), source(video_id, t) and read_text (FrameReader, or a stored search's)."""
    missing: dict[str, str] = {}
    segments = []
    plan = pack_plan(result)
    if hasattr(reader, "prefetch"):
        source_times: dict[str, list[float]] = {}
        for match, _, segment, key, strip_times in plan:
            source_times.setdefault(match.video_id, []).extend(
                source_time(segment, t) for t in key + (strip_times or [])
            )
        reader.prefetch(sorted({t for *_, key, strip in plan for t in key + (strip or [])}), source_times)
    for match, k, segment, key, strip_times in plan:
        frames = frame_pairs(reader, match, k, segment, key, "frame", missing)
        strip = frame_pairs(reader, match, k, segment, strip_times, "strip", missing) if strip_times else None
        text = archive_text(match.video_id, segment.source_start, segment.source_end) if archive_text else []
        segments.append(PackSegment(match, k, segment, frames, strip, text))
    return EvidencePack(
        result,
        result_dict,
        segments,
        query_facts,
        produced_by,
        [f"{vid}: {reason}" for vid, reason in sorted(missing.items())],
    )


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
            facts.update(
                container=container.format.name,
                creation_time=meta.get("creation_time"),
                encoder=meta.get("encoder"),
                duration_s=round(container.duration / av.time_base, 3) if container.duration else None,
            )
            if stream is not None:
                facts.update(
                    width=stream.codec_context.width,
                    height=stream.codec_context.height,
                    codec=stream.codec_context.name,
                )
    except (av.error.FFmpegError, IndexError, ValueError) as exc:
        facts["container_error"] = str(exc)
    if path.suffix.lower() not in IMAGE_EXTENSIONS and "container_error" not in facts:
        try:
            facts["rotation"] = probe(path).rotation
        except FirstSeenError:
            pass  # an image under a video's name: the container facts above say what it is
    return facts


def pack_of_search(
    archive,
    result: SearchResult,
    query: Callable[[float], np.ndarray],
    *,
    query_facts: dict,
    descriptor_config: str,
    calibration,
    searched_at: str,
    text_reader=None,
    text_note: str | None = None,
) -> EvidencePack:
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
    produced_by = {
        "firstseen": __version__,
        "descriptor": descriptor_config,
        "calibration": f"{calibration.config_id}, fitted {measured.get('date', 'date unknown')}, "
        f"threshold {calibration.threshold}",
        "background": calibration.background_sha256 or "none",
        "index_checkpoint": archive.checkpoint,
        "searched_at_utc": searched_at,
        "on_screen_text": text_note or (getattr(text_reader, "config_id", None) or "not read"),
    }
    return build_pack(
        result,
        result.to_dict(),
        FrameReader(query, source_path, read),
        query_facts=query_facts,
        produced_by=produced_by,
        archive_text=archive_text,
    )
