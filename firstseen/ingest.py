"""Turning one video file into archive content: hash, probe, sample, describe, stage."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firstseen.archive import Archive
from firstseen.catalog import VideoRecord
from firstseen.descriptors import FrameDescriptor
from firstseen.errors import MediaError
from firstseen.media import probe, sample_frames
from firstseen.records import FrameVectors, SampledFrame, VideoInfo, VideoMetadata
from firstseen.settings import Settings


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def video_id_for(sha256: str) -> str:
    """Content-addressed: the same file always gets the same id, in any archive."""
    return sha256[:16]


_END = object()


def describe_frames(path: Path, descriptor: FrameDescriptor, settings: Settings, *,
                    fps: float | None, on_progress: Callable[[float], None] | None = None) -> FrameVectors:
    """Decode and describe in two threads: FFmpeg and onnxruntime both release the GIL, so
    decoding the next frames overlaps inference on the current batch. The queue is bounded
    so memory stays flat however long the video is."""
    frames_q: queue.Queue = queue.Queue(maxsize=2 * settings.descriptor_batch_size)
    failure: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        try:
            for frame in sample_frames(path, fps=fps, max_side=settings.decode_max_side,
                                       threads=settings.decode_threads,
                                       max_truncation_s=settings.max_truncation_s):
                while not stop.is_set():
                    try:
                        frames_q.put(frame, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            failure.append(exc)
        finally:
            frames_q.put(_END)

    producer = threading.Thread(target=produce, name="decode", daemon=True)
    producer.start()
    pts: list[float] = []
    chunks: list[np.ndarray] = []
    batch: list[SampledFrame] = []

    def flush() -> None:
        chunks.append(descriptor.describe([f.rgb for f in batch]))
        pts.extend(f.pts_s for f in batch)
        if on_progress:
            on_progress(batch[-1].pts_s)
        batch.clear()

    try:
        while (item := frames_q.get()) is not _END:
            batch.append(item)
            if len(batch) >= settings.descriptor_batch_size:
                flush()
        if failure:
            raise failure[0]
        if batch:
            flush()
    finally:
        stop.set()
        producer.join(timeout=5)
    if not pts:
        raise MediaError("no decodable video frames")
    return FrameVectors(descriptor.name, np.asarray(pts, dtype=np.float64), np.concatenate(chunks))


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    status: str  # "added" or "skipped"
    record: VideoRecord
    info: VideoInfo | None
    frames: int
    footage_s: float


def ingest_file(archive: Archive, descriptor: FrameDescriptor, meta: VideoMetadata,
                settings: Settings, *, run_id: int | None = None, info: VideoInfo | None = None,
                on_progress: Callable[[float], None] | None = None) -> IngestOutcome:
    """Add one file to the archive (staged; the caller commits), or skip it when a file with
    the same content is already there. Bad media raises MediaError and writes nothing."""
    path = Path(meta.path)
    if not path.is_file():
        raise MediaError(f"file not found: {path}")
    sha256 = sha256_file(path)
    existing = archive.known(sha256)
    if existing is not None and existing.status != "removing":
        return IngestOutcome("skipped", existing, None, 0, 0.0)
    info = info or probe(path)
    vectors = describe_frames(path, descriptor, settings, fps=settings.archive_fps, on_progress=on_progress)
    record = archive.stage(meta, video_id=video_id_for(sha256), sha256=sha256, info=info,
                           frames=vectors, run_id=run_id)
    return IngestOutcome("added", record, info, len(vectors), info.duration_s)
