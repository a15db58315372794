"""Raw per-video descriptors kept beside the index, so it can be rebuilt without decoding video."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from firstseen.descriptors import storage_dtype
from firstseen.errors import FirstSeenError
from firstseen.records import FrameVectors, Thumbnails
from firstseen.storage.atomic import atomic_write_bytes


def to_storage(vectors: FrameVectors, metric: str) -> FrameVectors:
    dtype = storage_dtype(metric)  # type: ignore[arg-type]
    return FrameVectors(
        vectors.descriptor,
        vectors.pts_s,
        vectors.vectors.astype(dtype, copy=False),
        vectors.informative,
        vectors.thumbnails,
    )


class MemoryVectorStore:
    """For tests: same behaviour, no disk."""

    def __init__(self) -> None:
        self._items: dict[str, FrameVectors] = {}

    def put(self, video_id: str, vectors: FrameVectors) -> None:
        self._items[video_id] = vectors

    def get(self, video_id: str, *, thumbnails: bool = False) -> FrameVectors | None:
        stored = self._items.get(video_id)
        if stored is None or thumbnails or stored.thumbnails is None:
            return stored
        return FrameVectors(stored.descriptor, stored.pts_s, stored.vectors, stored.informative)

    def delete(self, video_id: str) -> None:
        self._items.pop(video_id, None)

    def video_ids(self) -> set[str]:
        return set(self._items)


class FileVectorStore:
    """One .npz file a video (numeric arrays only, so it loads with allow_pickle=False),
    written atomically: a file that exists is whole."""

    suffix = ".npz"

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, video_id: str) -> Path:
        if not video_id.isalnum():
            raise ValueError(f"video id {video_id!r} is not a safe file name")
        return self.folder / f"{video_id}{self.suffix}"

    def put(self, video_id: str, vectors: FrameVectors) -> None:
        buffer = io.BytesIO()
        extra: dict[str, np.ndarray] = {}
        if vectors.informative is not None:
            extra["informative"] = vectors.informative
        if vectors.thumbnails is not None:
            extra |= {"thumb_data": vectors.thumbnails.data, "thumb_offsets": vectors.thumbnails.offsets}
        arrays = {
            "pts_s": vectors.pts_s,
            "vectors": vectors.vectors,
            "descriptor": np.array(vectors.descriptor),
            **extra,
        }
        np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as its allow_pickle flag
        atomic_write_bytes(self._path(video_id), buffer.getbuffer())

    def get(self, video_id: str, *, thumbnails: bool = False) -> FrameVectors | None:
        """A video's stored frames; their thumbnails only when asked (a zip member is read
        only when touched, so rebuilds and searches do not pay for them)."""
        path = self._path(video_id)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                informative = data["informative"] if "informative" in data.files else None
                thumbs = (
                    Thumbnails(data["thumb_data"], data["thumb_offsets"])
                    if thumbnails and "thumb_data" in data.files
                    else None
                )
                return FrameVectors(str(data["descriptor"]), data["pts_s"], data["vectors"], informative, thumbs)
        except (OSError, ValueError, KeyError) as exc:
            raise FirstSeenError(f"raw vectors file {path} is unreadable: {exc}") from exc

    def delete(self, video_id: str) -> None:
        self._path(video_id).unlink(missing_ok=True)

    def video_ids(self) -> set[str]:
        return {p.stem for p in self.folder.glob(f"*{self.suffix}")}
