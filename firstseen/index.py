"""FAISS index of frame vectors keyed by integer frame ids, with atomic checkpointed saves."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

from firstseen.errors import ArchiveMismatchError, FirstSeenError

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class IndexManifest:
    """What the saved index holds; the manifest is renamed into place last, so whatever it
    names is complete on disk."""

    format_version: int
    descriptor: str
    dim: int
    metric: str
    count: int
    checkpoint: int
    index_file: str
    saved_at: str


class VectorIndex:
    """Exact search over float (inner product) or packed-binary (Hamming) vectors.

    Scores are similarities, higher is closer: the inner product for float vectors and
    1 - hamming/dim for bits, so callers need not know the metric."""

    def __init__(self, descriptor: str, dim: int, metric: str, faiss_index=None):
        if metric not in ("inner_product", "hamming"):
            raise ValueError(f"unknown metric {metric!r}")
        if metric == "hamming" and dim % 8:
            raise ValueError("binary vectors need a dimension that is a multiple of 8")
        self.descriptor, self.dim, self.metric = descriptor, dim, metric
        if faiss_index is None:
            if metric == "hamming":
                faiss_index = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(dim))
            else:
                faiss_index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._index = faiss_index

    @property
    def binary(self) -> bool:
        return self.metric == "hamming"

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def _check(self, vectors: np.ndarray) -> np.ndarray:
        width = self.dim // 8 if self.binary else self.dim
        if vectors.ndim != 2 or vectors.shape[1] != width:
            raise ValueError(f"expected vectors of width {width}, got shape {vectors.shape}")
        dtype = np.uint8 if self.binary else np.float32
        return np.ascontiguousarray(vectors, dtype=dtype)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = self._check(vectors)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.shape != (vectors.shape[0],):
            raise ValueError(f"{ids.shape[0]} ids for {vectors.shape[0]} vectors")
        self._index.add_with_ids(vectors, ids)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, ids), each (n, k); missing neighbours have id -1."""
        vectors = self._check(vectors)
        k = max(1, min(k, max(len(self), 1)))
        distances, ids = self._index.search(vectors, k)
        if self.binary:
            scores = 1.0 - distances.astype(np.float32) / self.dim
        else:
            scores = distances
        return scores, ids

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        return int(self._index.remove_ids(selector))

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def serialize(self) -> np.ndarray:
        if self.binary:
            return faiss.serialize_index_binary(self._index)
        return faiss.serialize_index(self._index)

    @classmethod
    def deserialize(cls, manifest: IndexManifest, data: np.ndarray) -> VectorIndex:
        if manifest.metric == "hamming":
            raw = faiss.deserialize_index_binary(data)
        else:
            raw = faiss.deserialize_index(data)
        return cls(manifest.descriptor, manifest.dim, manifest.metric, raw)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write to a temporary file, fsync, rename over the target, fsync the folder: a reader
    sees the old file or the new one, never a torn one, even after SIGKILL or power loss."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class IndexStore:
    """The index folder on disk: one immutable index file per checkpoint, and a manifest
    naming the current one. Readers follow the manifest; old files are pruned after."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def read_manifest(self) -> IndexManifest | None:
        path = self.folder / MANIFEST_NAME
        if not path.exists():
            return None
        try:
            fields = json.loads(path.read_text())
            return IndexManifest(**fields)
        except (ValueError, TypeError) as exc:
            raise FirstSeenError(f"index manifest {path} is unreadable: {exc}") from exc

    def load(self, descriptor: str, dim: int, metric: str) -> tuple[VectorIndex, int]:
        """Load the current index, or an empty one for a new archive; returns it with its
        checkpoint number. A different descriptor or dimension is refused."""
        manifest = self.read_manifest()
        if manifest is None:
            return VectorIndex(descriptor, dim, metric), 0
        if (manifest.descriptor, manifest.dim, manifest.metric) != (descriptor, dim, metric):
            raise ArchiveMismatchError(
                f"the index in {self.folder} was built with descriptor {manifest.descriptor!r} "
                f"({manifest.dim}-d, {manifest.metric}); it cannot be opened with {descriptor!r} "
                f"({dim}-d, {metric}). Use the archive's descriptor or a new data directory."
            )
        data = np.fromfile(self.folder / manifest.index_file, dtype=np.uint8)
        index = VectorIndex.deserialize(manifest, data)
        if len(index) != manifest.count:
            raise FirstSeenError(
                f"index file {manifest.index_file} holds {len(index)} vectors, manifest says {manifest.count}"
            )
        return index, manifest.checkpoint

    def save(self, index: VectorIndex, checkpoint: int) -> IndexManifest:
        self.folder.mkdir(parents=True, exist_ok=True)
        index_file = f"index-{checkpoint:08d}.faiss"
        atomic_write_bytes(self.folder / index_file, index.serialize().tobytes())
        manifest = IndexManifest(
            format_version=FORMAT_VERSION,
            descriptor=index.descriptor,
            dim=index.dim,
            metric=index.metric,
            count=len(index),
            checkpoint=checkpoint,
            index_file=index_file,
            saved_at=datetime.now(UTC).isoformat(),
        )
        atomic_write_bytes(self.folder / MANIFEST_NAME, json.dumps(asdict(manifest), indent=2).encode())
        self._prune(keep=index_file)
        return manifest

    def _prune(self, keep: str) -> None:
        # A reader that read the previous manifest a moment ago may still be opening its
        # file, so the newest previous checkpoint is kept one more round.
        files = sorted(p for p in self.folder.glob("index-*.faiss") if p.name != keep)
        for stale in files[:-1]:
            stale.unlink(missing_ok=True)
        for tmp in self.folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


class MemoryIndexStore:
    """For tests: keeps the last saved index in memory, serialised as on disk."""

    def __init__(self) -> None:
        self._saved: tuple[IndexManifest, np.ndarray] | None = None

    def read_manifest(self) -> IndexManifest | None:
        return self._saved[0] if self._saved else None

    def load(self, descriptor: str, dim: int, metric: str) -> tuple[VectorIndex, int]:
        if self._saved is None:
            return VectorIndex(descriptor, dim, metric), 0
        manifest, data = self._saved
        if (manifest.descriptor, manifest.dim, manifest.metric) != (descriptor, dim, metric):
            raise ArchiveMismatchError(f"index was built with {manifest.descriptor!r}, not {descriptor!r}")
        return VectorIndex.deserialize(manifest, data.copy()), manifest.checkpoint

    def save(self, index: VectorIndex, checkpoint: int) -> IndexManifest:
        manifest = IndexManifest(FORMAT_VERSION, index.descriptor, index.dim, index.metric,
                                 len(index), checkpoint, "memory", datetime.now(UTC).isoformat())
        self._saved = (manifest, index.serialize().copy())
        return manifest
