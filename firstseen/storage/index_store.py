"""The index folder on disk: immutable index files per checkpoint and a manifest naming the
current ones, written so that a reader or a crash only ever sees a whole checkpoint."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from firstseen.errors import ArchiveMismatchError, FirstSeenError
from firstseen.storage.atomic import atomic_write_bytes
from firstseen.storage.faiss_index import TieredIndex, VectorIndex

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 2


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
    saved_at: str
    delta_file: str
    main_file: str | None = None
    main_kind: str = "flat"
    main_count: int = 0
    main_built_for: int = 0
    main_nlist: int = 0  # with main_nprobe, lets `firstseen stats` describe the IVF unloaded
    main_nprobe: int = 0
    backend: str = "faiss"  # or "milvus": then the vectors live in a collection, not in files

    @property
    def files(self) -> list[str]:
        return [f for f in (self.main_file, self.delta_file) if f]

    @property
    def kind(self) -> str:
        return self.main_kind if self.main_file or self.backend != "faiss" else "flat"

    @classmethod
    def from_json(cls, fields: dict) -> IndexManifest:
        if fields.get("format_version") == 1:  # one flat index file, which is now the delta
            fields = {k: v for k, v in fields.items() if k != "index_file"} | {"delta_file": fields["index_file"]}
        return cls(**fields)


def _check_kind(manifest: IndexManifest, descriptor: str, dim: int, metric: str, where: str) -> None:
    if (manifest.descriptor, manifest.dim, manifest.metric) != (descriptor, dim, metric):
        raise ArchiveMismatchError(
            f"the index in {where} was built with descriptor {manifest.descriptor!r} "
            f"({manifest.dim}-d, {manifest.metric}); it cannot be opened with {descriptor!r} "
            f"({dim}-d, {metric}). Use the archive's descriptor or a new data directory."
        )


def _manifest_for(index: TieredIndex, checkpoint: int, main_file: str | None, delta_file: str) -> IndexManifest:
    return IndexManifest(
        format_version=FORMAT_VERSION, descriptor=index.descriptor, dim=index.dim, metric=index.metric,
        count=len(index), checkpoint=checkpoint, saved_at=datetime.now(UTC).isoformat(),
        delta_file=delta_file, main_file=main_file,
        main_kind=index.main.kind if index.main is not None else "flat",
        main_count=len(index.main) if index.main is not None else 0,
        main_built_for=index.main_built_for,
        main_nlist=index.main.nlist if index.main is not None else 0,
        main_nprobe=index.main.nprobe if index.main is not None else 0,
    )  # fmt: skip


class IndexStore:
    """The index folder: per checkpoint a delta file, and a main file only when the main
    changed. Readers follow the manifest; files no manifest names are pruned after."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def close(self) -> None:
        pass  # files: nothing held open

    def read_manifest(self) -> IndexManifest | None:
        path = self.folder / MANIFEST_NAME
        if not path.exists():
            return None
        try:
            return IndexManifest.from_json(json.loads(path.read_text()))
        except (ValueError, TypeError, KeyError) as exc:
            raise FirstSeenError(f"index manifest {path} is unreadable: {exc}") from exc

    def _read(self, manifest: IndexManifest, name: str) -> VectorIndex:
        data = np.fromfile(self.folder / name, dtype=np.uint8)
        return VectorIndex.deserialize(manifest.descriptor, manifest.dim, manifest.metric, data)

    def load(
        self, descriptor: str, dim: int, metric: str, *, reuse: TieredIndex | None = None
    ) -> tuple[TieredIndex, int]:
        """Load the current index (or an empty one for a new archive) and its checkpoint.

        A reader passes the index it holds as reuse: its main, when the manifest still
        names the same file, is shared rather than read again (mains are never changed in
        place by readers), so a reload costs the size of the delta."""
        manifest = self.read_manifest()
        if manifest is None:
            return TieredIndex(descriptor, dim, metric), 0
        _check_kind(manifest, descriptor, dim, metric, str(self.folder))
        main = None
        if manifest.main_file:
            if reuse is not None and reuse.main is not None and reuse.main_file == manifest.main_file:
                main = reuse.main
            else:
                main = self._read(manifest, manifest.main_file)
        delta = self._read(manifest, manifest.delta_file)
        index = TieredIndex(
            descriptor,
            dim,
            metric,
            main=main,
            delta=delta,
            main_file=manifest.main_file,
            main_built_for=manifest.main_built_for,
        )
        if len(index) != manifest.count:
            raise FirstSeenError(
                f"index files {manifest.files} hold {len(index)} vectors, manifest says {manifest.count}"
            )
        return index, manifest.checkpoint

    def save(self, index: TieredIndex, checkpoint: int) -> IndexManifest:
        self.folder.mkdir(parents=True, exist_ok=True)
        main_file = index.main_file
        if index.main is not None and main_file is None:
            main_file = f"main-{checkpoint:08d}.faiss"
            # Streamed to disk: serialising a 10M-vector main in memory would hold two more
            # copies of it (11 GB) beside the index itself.
            atomic_write_bytes(self.folder / main_file, index.main.write_to)
        elif index.main is None:
            main_file = None
        delta_file = f"delta-{checkpoint:08d}.faiss"
        atomic_write_bytes(self.folder / delta_file, index.delta.serialize().tobytes())
        previous = self.read_manifest()
        manifest = _manifest_for(index, checkpoint, main_file, delta_file)
        atomic_write_bytes(self.folder / MANIFEST_NAME, json.dumps(asdict(manifest), indent=2).encode())
        index.main_file = main_file
        self._prune(keep=set(manifest.files) | set(previous.files if previous else []))
        return manifest

    def _prune(self, keep: set[str]) -> None:
        # A reader that read the previous manifest a moment ago may still be opening its
        # files, so those are kept one more round.
        for path in self.folder.glob("*.faiss"):
            if path.name not in keep:
                path.unlink(missing_ok=True)
        for tmp in self.folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


class MemoryIndexStore:
    """For tests: keeps the last saved index in memory, serialised as on disk."""

    def __init__(self) -> None:
        self._saved: tuple[IndexManifest, np.ndarray | None, np.ndarray] | None = None

    def read_manifest(self) -> IndexManifest | None:
        return self._saved[0] if self._saved else None

    def close(self) -> None:
        pass

    def load(
        self, descriptor: str, dim: int, metric: str, *, reuse: TieredIndex | None = None
    ) -> tuple[TieredIndex, int]:
        if self._saved is None:
            return TieredIndex(descriptor, dim, metric), 0
        manifest, main, delta = self._saved
        _check_kind(manifest, descriptor, dim, metric, "memory")
        load = lambda data: VectorIndex.deserialize(descriptor, dim, metric, data.copy())  # noqa: E731
        return TieredIndex(
            descriptor,
            dim,
            metric,
            main=None if main is None else load(main),
            delta=load(delta),
            main_file=manifest.main_file,
            main_built_for=manifest.main_built_for,
        ), manifest.checkpoint

    def save(self, index: TieredIndex, checkpoint: int) -> IndexManifest:
        main = None if index.main is None else index.main.serialize().copy()
        main_file = None if index.main is None else (index.main_file or f"main-{checkpoint:08d}")
        manifest = _manifest_for(index, checkpoint, main_file, f"delta-{checkpoint:08d}")
        self._saved = (manifest, main, index.delta.serialize().copy())
        index.main_file = main_file
        return manifest
