"""Turning video files into archive content: hash, decode and describe (pipelined), stage."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firstseen.archive import Archive
from firstseen.descriptors import FrameDescriptor
from firstseen.errors import MediaError
from firstseen.fileid import video_id_for
from firstseen.media.decode import sample_frames
from firstseen.media.informative import informative_flags
from firstseen.params import IngestPolicy
from firstseen.records import FrameVectors, SampledFrame, Thumbnails, VideoInfo, VideoMetadata, VideoRecord
from firstseen.search.verification import encode_thumbnail


@dataclass(frozen=True, slots=True)
class Described:
    """One video's outcome from the pipeline: its vectors, or why it could not be used."""

    path: Path
    vectors: FrameVectors | None
    error: MediaError | None


ProgressFn = Callable[[Path, float], None]
_STOP = object()


def describe_batch(
    pictures: list[np.ndarray], descriptor: FrameDescriptor, thumbnail_side: int
) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """One batch of sampled frames: vectors, evidence flags and (thumbnail_side > 0) grey
    thumbnails, as every executor stores them."""
    thumbs = [encode_thumbnail(p, thumbnail_side) for p in pictures] if thumbnail_side else []
    return descriptor.describe(pictures), informative_flags(pictures), thumbs


def describe_videos(
    paths: Iterable[Path],
    descriptor: FrameDescriptor,
    policy: IngestPolicy,
    *,
    fps: float | None,
    on_progress: ProgressFn | None = None,
) -> Iterator[Described]:
    """Decode and describe videos one after another, in two threads.

    A decoder thread walks through all the videos, feeding sampled frames into a bounded
    queue; this thread batches them through the descriptor. FFmpeg and onnxruntime both
    release the GIL, so decoding the next video overlaps inference on this one, and memory
    stays bounded by the queue, not by the length of any video."""
    frames_q: queue.Queue = queue.Queue(maxsize=2 * policy.batch_size)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                frames_q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for path in paths:
                try:
                    for frame in sample_frames(
                        path,
                        fps=fps,
                        max_side=policy.decode.max_side,
                        threads=policy.decode.threads,
                        max_truncation_s=policy.decode.max_truncation_s,
                    ):
                        if not put((path, frame)):
                            return
                    outcome: object = None
                except MediaError as exc:
                    outcome = exc
                if not put((path, outcome)):  # end of this video: None, or its error
                    return
        except BaseException as exc:  # a bug, not bad media: re-raised in the caller's thread
            put((None, exc))
        finally:
            put(_STOP)

    producer = threading.Thread(target=produce, name="decode", daemon=True)
    producer.start()
    pts: list[float] = []
    chunks: list[np.ndarray] = []
    flags: list[np.ndarray] = []
    thumbs: list[bytes] = []
    batch: list[SampledFrame] = []
    current: Path | None = None
    thumb_side = policy.thumbnail_max_side

    def flush() -> None:
        if batch:
            vectors, informative, batch_thumbs = describe_batch([f.rgb for f in batch], descriptor, thumb_side)
            chunks.append(vectors)
            flags.append(informative)
            thumbs.extend(batch_thumbs)
            pts.extend(f.pts_s for f in batch)
            if on_progress and current is not None:
                on_progress(current, batch[-1].pts_s)
            batch.clear()

    try:
        while (item := frames_q.get()) is not _STOP:
            path, payload = item
            if path is None:
                raise payload
            current = path
            if isinstance(payload, SampledFrame):
                batch.append(payload)
                if len(batch) >= policy.batch_size:
                    flush()
                continue
            if payload is None:
                flush()
                if pts:
                    vectors = FrameVectors(
                        descriptor.name,
                        np.asarray(pts, dtype=np.float64),
                        np.concatenate(chunks),
                        np.concatenate(flags),
                        Thumbnails.pack(thumbs) if thumb_side else None,
                    )
                    yield Described(path, vectors, None)
                else:
                    yield Described(path, None, MediaError("no decodable video frames"))
            else:
                yield Described(path, None, payload)
            pts, chunks, flags, thumbs, batch = [], [], [], [], []
    finally:
        stop.set()
        producer.join(timeout=5)


def describe_frames(
    path: Path, descriptor: FrameDescriptor, policy: IngestPolicy, *, fps: float | None
) -> FrameVectors:
    """One video's vectors; raises MediaError when it cannot be used."""
    (result,) = list(describe_videos([Path(path)], descriptor, policy, fps=fps))
    if result.error is not None:
        raise result.error
    assert result.vectors is not None  # no error: vectors
    return result.vectors


@dataclass(frozen=True, slots=True)
class Staged:
    record: VideoRecord
    frames: int
    footage_s: float


def stage_described(
    archive: Archive,
    meta: VideoMetadata,
    sha256: str,
    info: VideoInfo,
    vectors: FrameVectors,
    *,
    run_id: int | None = None,
    file_stat: tuple[int, int] | None = None,
) -> Staged:
    """Stage a described video in the archive (visible after the caller's commit)."""
    record = archive.stage(
        meta,
        video_id=video_id_for(sha256),
        sha256=sha256,
        info=info,
        frames=vectors,
        run_id=run_id,
        file_stat=file_stat,
    )
    return Staged(record, len(vectors), info.duration_s)
