"""Typed records passed between the core's modules; each checks its own invariants on creation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np


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

    def __len__(self) -> int:
        return int(self.pts_s.shape[0])


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
