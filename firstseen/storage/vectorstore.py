"""Raw per-video descriptors kept beside the index, so it can be rebuilt without decoding video."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from firstseen.descriptors import storage_dtype
from firstseen.errors import FirstSeenError
from firstseen.records import FrameVectors, Thumbnails
from firstseen.storage.atomic import atomic_write_bytes
from firstseen.storage.protocols import VectorStore


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

    index_keeps_vectors = False

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
    index_keeps_vectors = False

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


class VectorsInIndex:
    """Raw vectors where the index itself keeps each frame's vector, time and flag (Milvus):
    read back from the index by video id, so writers and replicas on any machine see the same
    vectors and flags with no shared file system. The files beside it keep what the index
    cannot (thumbnails) for the videos this machine staged or refreshed; without them evidence
    is read from the archived footage. Flags are changed in both (Archive.replace_raw_vectors)."""

    index_keeps_vectors = True

    def __init__(self, files: VectorStore, index):
        self._files, self._index = files, index  # index: a callable giving the archive's current index

    def put(self, video_id: str, vectors: FrameVectors) -> None:
        """At staging: the files only (the archive adds the vectors to the index itself)."""
        self._files.put(video_id, vectors)

    def replace(self, video_id: str, frame_ids: np.ndarray, stored: FrameVectors) -> None:
        """A committed video's frames with new flags or thumbnails: the index's rows are
        replaced too, since every other machine reads the flags from there."""
        self._files.put(video_id, stored)
        self._index().add(
            frame_ids, stored.vectors, video_id=video_id, pts_s=stored.pts_s,
            informative=stored.informative_mask(), replace=True,
        )  # fmt: skip

    def get(self, video_id: str, *, thumbnails: bool = False) -> FrameVectors | None:
        index = self._index()
        _, pts, vectors, informative = index.frames_of(video_id)
        if not len(pts):
            return None
        local = self._files.get(video_id, thumbnails=True) if thumbnails else None
        thumbs = local.thumbnails if local is not None and np.array_equal(local.pts_s, pts) else None
        return FrameVectors(index.descriptor, pts, vectors, informative, thumbs)

    def delete(self, video_id: str) -> None:
        self._files.delete(video_id)

    def video_ids(self) -> set[str]:
        """The videos with files on this machine (recovery drops those the catalog forgot)."""
        return self._files.video_ids()
