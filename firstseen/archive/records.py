"""The archive's records: what makes vectors comparable, a frame hit, a found copy link, the stores it is made of."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firstseen.records import FrameVectors, VideoRecord
from firstseen.storage.protocols import CopyLinkStore, FailureLedger, IndexFiles, RunLog, VectorStore, VideoCatalog
from firstseen.storage.stored_searches import SearchStore
from firstseen.storage.text_store import TextStore


@dataclass(frozen=True, slots=True)
class DescriptorSpec:
    """What must match for two vectors to be comparable: the plug-in, its size, its metric,
    and its configuration (model file, input size)."""

    name: str
    dim: int
    metric: str
    config_id: str

    @classmethod
    def of(cls, descriptor) -> DescriptorSpec:
        return cls(
            descriptor.name, descriptor.dim, descriptor.metric, getattr(descriptor, "config_id", descriptor.name)
        )

    def to_dict(self) -> dict:
        return {"name": self.name, "dim": self.dim, "metric": self.metric, "config_id": self.config_id}


@dataclass(frozen=True, slots=True)
class FrameHit:
    frame_id: int
    video_id: str
    pts_s: float
    score: float


@dataclass(frozen=True, slots=True)
class CopyLinkFound:
    """Footage a video shares with another, as copy-link search found and verified it."""

    other_video_id: str
    score: float
    segments: list[dict]


@dataclass(frozen=True, slots=True)
class ArchiveStores:
    """The stores an archive is made of: SQL and files (opening.py), or their in-memory twins."""

    catalog: VideoCatalog
    links: CopyLinkStore
    runs: RunLog
    failures: Callable[[int], FailureLedger]  # max_attempts -> the ledger
    vectors: VectorStore
    index_files: IndexFiles
    text: TextStore | None = None  # on-screen text: SQL only
    searches: SearchStore | None = None  # kept searches (the API's), purged of a video at its takedown


def index_vectors(stored: FrameVectors, binary: bool) -> np.ndarray:
    return stored.vectors if binary else stored.vectors.astype(np.float32)


def frame_ids(record: VideoRecord) -> np.ndarray:
    """The one spelling of a video's frame ids: a contiguous range from its first."""
    return np.arange(record.first_frame_id, record.first_frame_id + record.frame_count, dtype=np.int64)
