"""Typed records passed between the core's modules; each checks its own invariants on creation."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np


def sample_step(pts_s: np.ndarray) -> float:
    """The usual gap between a video's sampled frames (1 s where there is only one frame)."""
    return float(np.median(np.diff(pts_s))) if len(pts_s) > 1 else 1.0


@dataclass(frozen=True, slots=True)
class SampledFrame:
    """One decoded frame: its presentation time in seconds from the start of the video, and
    its pixels as an HxWx3 uint8 RGB array (already rotated upright and downscaled)."""

    pts_s: float
    rgb: np.ndarray

    def __post_init__(self) -> None:
        if not math.isfinite(self.pts_s) or self.pts_s < 0:
            raise ValueError(f"frame timestamp must be finite and >= 0, got {self.pts_s}")
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(f"frame must be HxWx3 uint8, got {self.rgb.shape} {self.rgb.dtype}")


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What probing a file found out, before any frame is decoded."""

    duration_s: float
    width: int
    height: int
    codec: str
    avg_fps: float | None  # informative only: sampling always uses the frames' own timestamps
    rotation: int  # degrees clockwise to display upright: 0, 90, 180 or 270
    container: str

    def __post_init__(self) -> None:
        if self.duration_s < 0 or not math.isfinite(self.duration_s):
            raise ValueError(f"duration must be finite and >= 0, got {self.duration_s}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"frame size must be positive, got {self.width}x{self.height}")
        if self.rotation not in (0, 90, 180, 270):
            raise ValueError(f"rotation must be a multiple of 90, got {self.rotation}")


@dataclass(frozen=True, slots=True)
class FrameVectors:
    """Descriptors of a video's sampled frames, with the timestamps they belong to.

    Timestamps travel with vectors everywhere (raw files, index adds) so a vector can never
    be attached to the wrong moment of a video."""

    descriptor: str
    pts_s: np.ndarray  # float64, shape (n,), non-decreasing
    vectors: np.ndarray  # (n, dim) float32/float16, or (n, dim/8) uint8 packed bits
    # Per frame: False for a frame with too little picture to be evidence (black, flat, a card);
    # None for an archive made before the flag existed (every frame then counts).
    informative: np.ndarray | None = None
    # Small grey JPEGs of the sampled frames, for geometric verification without decoding the
    # archived file again; None where they were not kept.
    thumbnails: Thumbnails | None = None

    def __post_init__(self) -> None:
        pts = self.pts_s
        if pts.ndim != 1 or pts.dtype != np.float64:
            raise ValueError(f"pts_s must be a 1-d float64 array, got {pts.shape} {pts.dtype}")
        if self.vectors.ndim != 2 or self.vectors.shape[0] != pts.shape[0]:
            raise ValueError(
                f"{self.vectors.shape[0] if self.vectors.ndim else 0} vectors for {pts.shape[0]} timestamps"
            )
        if pts.size and (not np.all(np.isfinite(pts)) or np.any(np.diff(pts) < 0) or pts[0] < 0):
            raise ValueError("timestamps must be finite, >= 0 and non-decreasing")
        if self.informative is not None and (self.informative.dtype != np.bool_ or self.informative.shape != pts.shape):
            raise ValueError("informative must be one bool per timestamp")
        if self.thumbnails is not None and len(self.thumbnails) != len(pts):
            raise ValueError(f"{len(self.thumbnails)} thumbnails for {pts.shape[0]} timestamps")

    def __len__(self) -> int:
        return int(self.pts_s.shape[0])

    def informative_mask(self) -> np.ndarray:
        return np.ones(len(self), bool) if self.informative is None else self.informative


@dataclass(frozen=True, slots=True)
class Thumbnails:
    """Encoded images, one per sampled frame, packed into one byte array with offsets (so they
    are stored without pickle). offsets has one more entry than there are images."""

    data: np.ndarray  # uint8, 1-d
    offsets: np.ndarray  # int64, 1-d, non-decreasing, offsets[0] == 0, offsets[-1] == len(data)

    def __post_init__(self) -> None:
        o = self.offsets
        if (
            self.data.dtype != np.uint8
            or self.data.ndim != 1
            or o.dtype != np.int64
            or o.ndim != 1
            or o.size < 1
            or o[0] != 0
            or o[-1] != self.data.size
            or np.any(np.diff(o) < 0)
        ):
            raise ValueError("thumbnails need uint8 data and int64 offsets from 0 to its length")

    @classmethod
    def pack(cls, images: list[bytes]) -> Thumbnails:
        offsets = np.zeros(len(images) + 1, np.int64)
        offsets[1:] = np.cumsum([len(b) for b in images])
        return cls(np.frombuffer(b"".join(images), np.uint8).copy(), offsets)

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    def get(self, index: int) -> bytes:
        return self.data[self.offsets[index] : self.offsets[index + 1]].tobytes()


@dataclass(frozen=True, slots=True)
class VideoMetadata:
    """What the newsroom knows about a video: the fields of a manifest line."""

    path: Path
    external_id: str | None = None
    title: str | None = None
    source: str | None = None
    published_at: datetime | None = None
    uri: str | None = None
    location: str | None = None
    manifest_line: int | None = field(default=None, compare=False)


# ---- what the catalog holds about each video, run and copy link --------------------------
@dataclass(frozen=True, slots=True)
class VideoRecord:
    video_id: str
    sha256: str
    status: str
    path: str
    external_id: str | None
    title: str | None
    source: str | None
    published_at: datetime | None
    uri: str | None
    location: str | None
    duration_s: float
    width: int
    height: int
    codec: str
    descriptor: str
    first_frame_id: int
    frame_count: int
    ingested_at: datetime
    committed_checkpoint: int | None
    run_id: int | None

    @property
    def frame_ids(self) -> range:
        return range(self.first_frame_id, self.first_frame_id + self.frame_count)


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    added: int
    skipped: int
    failed: int
    footage_s: float
    frames: int
    errors: list[dict[str, Any]]
    params: dict[str, Any]
    quarantined: int = 0


@dataclass(frozen=True, slots=True)
class CopyLinkRecord:
    video_id: str
    other_video_id: str
    score: float
    segments: list[dict[str, Any]]  # seen from video_id: "query_*" is video_id, "source_*" the other
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CatalogStats:
    videos_by_status: dict[str, int]  # every status present, zero included
    committed_footage_s: float
    committed_frames: int
    copy_links: int  # links between two videos, each counted once although stored both ways
    last_run: RunRecord | None


_SHA256 = re.compile(r"[0-9a-f]{64}")


def checked_new_video(video_id: str, sha256: str, frame_pts: np.ndarray) -> tuple[np.ndarray, str]:
    """What every catalog checks before it adds a video: its frame times as float64, its sha256
    in lower case. Raises ValueError for an empty or long id, a malformed hash, bad times."""
    pts = np.asarray(frame_pts, dtype=np.float64)
    if pts.ndim != 1 or not np.all(np.isfinite(pts)) or np.any(pts < 0):
        raise ValueError("frame_pts must be a 1-d array of finite timestamps >= 0")
    if not video_id or len(video_id) > 32:
        raise ValueError(f"video_id must be 1 to 32 characters, got {video_id!r}")
    sha256 = sha256.lower()
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    return pts, sha256


def check_run_outcome(status: str) -> None:
    """A run finishes as ok, failed or crashed (the run log's rule, whatever the backend)."""
    if status not in ("ok", "failed", "crashed"):
        raise ValueError(f"a run finishes as ok, failed or crashed, not {status!r}")
