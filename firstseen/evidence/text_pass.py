"""The on-screen text pass: reading the text burned into archived footage, once per video, after ingest.

Ingest samples frames at 360 pixels for the descriptor, too small for text. This pass decodes
a frame every `every_s` seconds at a size fit for text (`max_side`), reads it (onscreen_text.py)
and keeps each line as a span of time: the same line read again in the next frames extends
its span. It runs after ingest (`firstseen text-pass`, and the nightly job after its ingest),
so ingest's own throughput is untouched, and it backfills an archive that has never been read.
A video read once is not read again unless asked (`--again`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from firstseen.archive import open_catalog_only
from firstseen.errors import FirstSeenError
from firstseen.evidence.onscreen_text import TextLine
from firstseen.media.decode import sample_frames
from firstseen.records import VideoRecord
from firstseen.storage.catalog import SqlCatalog
from firstseen.storage.text_store import TextSpan, TextStore, fold

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TextPassParams:
    every_s: float = 2.0  # a frame read this often
    max_side: int = 1280  # longer side of the frames read

    def __post_init__(self) -> None:
        if not self.every_s > 0 or self.max_side < 320:
            raise ValueError("every_s must be > 0 and max_side >= 320")


@dataclass(frozen=True, slots=True)
class TextPassSummary:
    videos: int
    frames_read: int
    lines: int
    failed: int
    wall_s: float
    footage_s: float

    def to_dict(self) -> dict:
        return {
            "videos": self.videos,
            "frames_read": self.frames_read,
            "lines": self.lines,
            "failed": self.failed,
            "wall_s": round(self.wall_s, 2),
            "footage_s": round(self.footage_s, 1),
        }


def _same_line(a: str, b: str) -> bool:
    """Two reads of one line: equal once folded, or one holding the other (a word lost in one read)."""
    fa, fb = fold(a), fold(b)
    return fa == fb or (min(len(fa), len(fb)) >= 4 and (fa in fb or fb in fa))


def spans_from_reads(video_id: str, reads: Iterable[tuple[float, list[TextLine]]], every_s: float) -> list[TextSpan]:
    """Lines read at successive times, joined into spans: a line read again within two reading
    intervals extends its span (keeping the surer reading); a line not read for longer ends."""
    open_spans: list[dict] = []
    done: list[dict] = []
    for t, lines in reads:
        still_open = []
        for span in open_spans:
            if t - span["last"] > 2 * every_s + 1e-6:
                done.append(span)
            else:
                still_open.append(span)
        open_spans = still_open
        for line in lines:
            match = next((s for s in open_spans if _same_line(s["text"], line.text)), None)
            if match is None:
                open_spans.append(
                    {
                        "start": t,
                        "last": t,
                        "text": line.text,
                        "confidence": line.confidence,
                        "box": {"x": line.x, "y": line.y, "w": line.w, "h": line.h},
                    }
                )
                continue
            match["last"] = t
            if line.confidence > match["confidence"]:
                match.update(text=line.text, confidence=line.confidence)
    done += open_spans
    return sorted(
        (
            TextSpan(
                video_id,
                s["start"],
                s["last"] + every_s,
                s["text"],
                s["confidence"],
                {k: round(v, 4) for k, v in s["box"].items()},
            )
            for s in done
        ),
        key=lambda s: (s.start_s, s.text),
    )


def read_video(record: VideoRecord, reader, params: TextPassParams) -> tuple[list[TextSpan], int]:
    """The text spans of one archived video and the number of frames read."""
    reads = []
    for frame in sample_frames(record.path, fps=1.0 / params.every_s, max_side=params.max_side):
        reads.append((frame.pts_s, reader.read(frame.rgb)))
    return spans_from_reads(record.video_id, reads, params.every_s), len(reads)


def run_text_pass(
    catalog: SqlCatalog,
    reader,
    params: TextPassParams,
    *,
    again: bool = False,
    video_ids: Iterable[str] | None = None,
    progress: Callable[[VideoRecord], None] | None = None,
) -> TextPassSummary:
    """Read every committed video not read yet (all of them with again; or those named). A
    video that cannot be decoded is logged and counted, and the others are read."""
    store = TextStore(catalog)
    started = time.perf_counter()
    done = set() if again else store.videos_read()
    wanted = None if video_ids is None else set(video_ids)
    todo = [
        v for v in catalog.videos("committed") if v.video_id not in done and (wanted is None or v.video_id in wanted)
    ]
    frames = lines = failed = 0
    footage = 0.0
    for record in todo:
        try:
            spans, read = read_video(record, reader, params)
        except (FirstSeenError, OSError) as exc:
            log.warning("on-screen text of %s not read: %s", record.video_id, exc)
            failed += 1
            continue
        store.replace_video_text(
            record.video_id, spans, reader=getattr(reader, "config_id", "reader"), frames_read=read
        )
        frames, lines, footage = frames + read, lines + len(spans), footage + (record.duration_s or 0.0)
        if progress:
            progress(record)
    return TextPassSummary(len(todo) - failed, frames, lines, failed, time.perf_counter() - started, footage)


def read_archive_text(
    data_dir: Path, catalog_url: str, reader, params: TextPassParams, *, again: bool = False
) -> TextPassSummary:
    """The text pass over the archive in data_dir (the CLI's and the nightly job's one call). It
    needs only the catalog: the index is never loaded. No archive there is bad input."""
    catalog, _ = open_catalog_only(data_dir, catalog_url)
    with catalog:
        return run_text_pass(catalog, reader, params, again=again)


def find_archive_text(
    data_dir: Path, catalog_url: str, query: str, *, limit: int
) -> list[tuple[TextSpan, VideoRecord]]:
    """Spans of committed footage whose on-screen text holds every word of query, with their videos."""
    catalog, _ = open_catalog_only(data_dir, catalog_url)
    with catalog:
        spans = TextStore(catalog).search(query, limit=limit)
        videos = {s.video_id: catalog.get_video(s.video_id) for s in spans}
    return [(s, v) for s in spans if (v := videos[s.video_id]) is not None and v.status == "committed"]
