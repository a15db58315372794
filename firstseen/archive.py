"""The archive (catalog + raw vectors + FAISS index): the one place a video is written or removed.

Write protocol, which crash recovery relies on:
  stage:  raw vectors file -> catalog rows (status pending) -> vectors into the in-memory index
  commit: index saved as checkpoint N (atomic rename) -> catalog rows marked committed
  remove: catalog row marked removing -> index saved without its ids -> raw file and rows deleted
Search only sees committed videos, so a video is visible only when all three are written."""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firstseen.catalog import SqlCatalog, VideoRecord
from firstseen.errors import ArchiveLockedError, ArchiveMismatchError, BadInputError, FirstSeenError
from firstseen.index import TieredIndex, VectorIndex
from firstseen.index_store import IndexStore, MemoryIndexStore
from firstseen.stored_searches import SearchStore
from firstseen.records import FrameVectors, VideoInfo, VideoMetadata
from firstseen.vectorstore import FileVectorStore, MemoryVectorStore, VectorStore, to_storage

DESCRIPTOR_META_KEY = "descriptor"


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
        return cls(descriptor.name, descriptor.dim, descriptor.metric,
                   getattr(descriptor, "config_id", descriptor.name))


@dataclass(frozen=True, slots=True)
class FrameHit:
    frame_id: int
    video_id: str
    pts_s: float
    score: float


class DataDirLock:
    """An exclusive flock on the data directory. The kernel drops it when the process dies,
    so a crashed ingest never leaves a stale lock behind."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / "ingest.lock"
        self._fd: int | None = None

    def acquire(self, wait_s: float = 0.0) -> None:
        """Take the lock, waiting up to wait_s for another writer to finish."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(min(0.5, max(0.01, deadline - time.monotonic())))
                    continue
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise ArchiveLockedError(
                    f"another writer (pid {holder}) is using the archive in {self.path.parent}; "
                    "wait for it to finish"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Archive:
    def __init__(self, catalog: SqlCatalog, index_store: IndexStore | MemoryIndexStore,
                 vectors: VectorStore, spec: DescriptorSpec, *, writable: bool,
                 lock: DataDirLock | None = None, nprobe: int = 0, searches: SearchStore | None = None):
        self.catalog, self.index_store, self.vectors, self.spec = catalog, index_store, vectors, spec
        self.searches = searches  # stored searches (the API's), purged of a video at its takedown
        self.writable = writable
        self._lock = lock
        self.nprobe = nprobe  # 0: the value the IVF was built with
        self._check_spec()
        self.index, self.checkpoint = index_store.load(spec.name, spec.dim, spec.metric)
        self.index.set_nprobe(nprobe)
        self._staged: list[str] = []
        self._index_dirty = False
        if writable:
            self.recover()

    def _check_spec(self) -> None:
        stored = self.catalog.get_meta(DESCRIPTOR_META_KEY)
        if stored is None:
            if self.writable:
                self.catalog.set_meta(DESCRIPTOR_META_KEY, json.dumps(_spec_dict(self.spec)))
            return
        if json.loads(stored) != _spec_dict(self.spec):
            raise ArchiveMismatchError(
                f"this archive was built with descriptor {json.loads(stored)}; it cannot be used "
                f"with {_spec_dict(self.spec)}. Use the archive's descriptor settings or a new data directory."
            )

    # ---- writing -------------------------------------------------------------------------
    def _require_writable(self) -> None:
        if not self.writable:
            raise FirstSeenError("the archive was opened read-only")

    def stage(self, meta: VideoMetadata, *, video_id: str, sha256: str, info: VideoInfo,
              frames: FrameVectors, run_id: int | None = None,
              file_stat: tuple[int, int] | None = None) -> VideoRecord:
        """Write a video's raw vectors and catalog rows and add it to the in-memory index.
        It stays invisible to search until commit()."""
        self._require_writable()
        if frames.descriptor != self.spec.name:
            raise ArchiveMismatchError(f"vectors from {frames.descriptor!r}, archive uses {self.spec.name!r}")
        stored = to_storage(frames, self.spec.metric)
        self.vectors.put(video_id, stored)
        try:
            record = self.catalog.add_pending_video(
                meta, video_id=video_id, sha256=sha256, duration_s=info.duration_s,
                width=info.width, height=info.height, codec=info.codec,
                descriptor=self.spec.name, frame_pts=frames.pts_s, run_id=run_id, file_stat=file_stat)
        except BaseException:
            self.vectors.delete(video_id)
            raise
        self._add_to_index(record, stored)
        self._staged.append(video_id)
        return record

    def _add_to_index(self, record: VideoRecord, stored: FrameVectors) -> None:
        # The index gets exactly what is stored (float16 rounded), so a rebuild from raw
        # vectors reproduces it bit for bit.
        self.index.add(_frame_ids(record), _index_vectors(stored, self.index.binary))
        self._index_dirty = True

    def commit(self) -> int:
        """Save the index as a new checkpoint, then make staged videos visible."""
        self._require_writable()
        if not self._index_dirty and not self._staged:
            return self.checkpoint
        checkpoint = self.checkpoint + 1
        self.index_store.save(self.index, checkpoint)
        self.checkpoint = checkpoint
        self._index_dirty = False
        if self._staged:
            self.catalog.mark_committed(self._staged, checkpoint)
            self._staged = []
        return checkpoint

    def remove(self, ref: str) -> VideoRecord:
        """Take a video out of search, the index, the raw store and the catalog (takedown)."""
        self._require_writable()
        record = self.catalog.get_video(ref)
        if record is None:
            raise BadInputError(f"no video with id or external id {ref!r} in the archive")
        self.commit()  # never mix a removal into an unsaved batch
        self.catalog.mark_removing(record.video_id)
        self._finish_removal(record)
        return record

    def _finish_removal(self, record: VideoRecord) -> None:
        self.index.remove(_frame_ids(record))
        self._index_dirty = True
        self.commit()
        self.vectors.delete(record.video_id)
        self.catalog.delete_video(record.video_id)
        if self.searches is not None:
            self.searches.purge_video(record.video_id)

    # ---- index maintenance ---------------------------------------------------------------
    def adopt_main(self, main: VectorIndex, covered: dict[str, tuple[int, int]], built_for: int) -> int:
        """Publish a main index rebuilt from raw vectors as the next checkpoint.

        covered maps each video the build read to its (first_frame_id, frame_count). The
        build ran without the lock, so the archive may have moved on: videos removed since
        leave the main, videos added since go to the new delta, straight from raw storage."""
        self._require_writable()
        self.commit()
        records = {r.video_id: r for r in self.catalog.videos()}
        for video_id, (first, count) in covered.items():
            record = records.get(video_id)
            if record is None or (record.first_frame_id, record.frame_count) != (first, count):
                main.remove(np.arange(first, first + count, dtype=np.int64))
        delta = VectorIndex(self.spec.name, self.spec.dim, self.spec.metric)
        for record in records.values():
            if covered.get(record.video_id) == (record.first_frame_id, record.frame_count):
                continue
            stored = self.vectors.get(record.video_id)
            if stored is None or len(stored) != record.frame_count:
                raise FirstSeenError(f"raw vectors of video {record.video_id} are missing or damaged; "
                                     "restore them from a backup")
            delta.add(_frame_ids(record), _index_vectors(stored, self.index.binary))
        self.index = TieredIndex(self.spec.name, self.spec.dim, self.spec.metric, main=main, delta=delta,
                                 main_built_for=built_for)
        self.index.set_nprobe(self.nprobe)
        self._index_dirty = True
        return self.commit()

    def merge_delta(self) -> int:
        """Fold the delta into an IVF main (no retraining) and publish; returns vectors moved."""
        self._require_writable()
        moved = self.index.merge_delta()
        if moved:
            self._index_dirty = True
            self.commit()
        return moved

    # ---- recovery ------------------------------------------------------------------------
    def recover(self) -> dict[str, int]:
        """Bring catalog, raw vectors and index back into agreement after a crash: staged
        videos whose vectors are whole are rolled forward, half-written ones rolled back,
        interrupted removals finished, orphans dropped. Idempotent."""
        self._require_writable()
        report = {"rolled_forward": 0, "rolled_back": 0, "removals_finished": 0, "orphans_dropped": 0}
        # This runs at every writable open (each nightly ingest), so the common case, a
        # committed video whose ids are all in the index and whose raw file exists, reads
        # nothing: a video's ids are one contiguous range, counted in the sorted id array.
        index_ids = np.sort(self.index.ids())
        accounted = np.zeros(len(index_ids), dtype=bool)
        on_disk = self.vectors.video_ids()
        for record in self.catalog.videos():
            ids = _frame_ids(record)
            lo, hi = np.searchsorted(index_ids, [record.first_frame_id, record.first_frame_id + record.frame_count])
            accounted[lo:hi] = True
            whole_in_index = hi - lo == record.frame_count
            if record.status == "removing":
                self._finish_removal(record)
                report["removals_finished"] += 1
                continue
            if record.status == "committed" and whole_in_index and record.video_id in on_disk:
                continue
            stored = self.vectors.get(record.video_id)
            if stored is None or len(stored) != record.frame_count:
                if record.status == "committed":
                    raise FirstSeenError(
                        f"raw vectors of committed video {record.video_id} are missing or damaged; "
                        "restore them from a backup"
                    )
                self.index.remove(ids)
                self._index_dirty = True
                self.vectors.delete(record.video_id)
                self.catalog.delete_video(record.video_id)
                report["rolled_back"] += 1
                continue
            if not whole_in_index:
                self.index.remove(ids)  # a partial add must not leave duplicates
                self._add_to_index(record, stored)
            if record.status == "pending":
                self._staged.append(record.video_id)
                report["rolled_forward"] += 1
        orphans = index_ids[~accounted]
        if orphans.size:
            self.index.remove(orphans)
            self._index_dirty = True
            report["orphans_dropped"] += int(orphans.size)
        known = {r.video_id for r in self.catalog.videos()}
        for video_id in on_disk - known:
            self.vectors.delete(video_id)
            report["orphans_dropped"] += 1
        self.commit()
        self.catalog.mark_stale_runs_crashed()
        return report

    def verify(self) -> list[str]:
        """Problems that would mean the archive is inconsistent; empty when all agree."""
        problems = []
        records = self.catalog.videos()
        index_ids = self.index.ids()
        if len(np.unique(index_ids)) != len(index_ids):
            problems.append("duplicate ids in the index")
        expected = np.concatenate([_frame_ids(r) for r in records]) if records else np.empty(0, np.int64)
        if set(index_ids.tolist()) != set(expected.tolist()):
            problems.append(f"index holds {len(index_ids)} ids, catalog expects {len(expected)}")
        for r in records:
            if r.status != "committed":
                problems.append(f"video {r.video_id} is {r.status}")
            stored = self.vectors.get(r.video_id)
            if stored is None or len(stored) != r.frame_count:
                problems.append(f"raw vectors of {r.video_id} missing or wrong length")
        extra = self.vectors.video_ids() - {r.video_id for r in records}
        if extra:
            problems.append(f"raw vectors without catalog rows: {sorted(extra)}")
        return problems

    # ---- reading -------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Load the newest checkpoint a writer has published, if it is newer than ours (for a
        long-lived reader such as the API). The new index is built aside and swapped in by
        one assignment, so searches in flight finish on the index they started with."""
        if self.writable:
            raise FirstSeenError("a writer's index is always current; refresh is for readers")
        manifest = self.index_store.read_manifest()
        if manifest is None or manifest.checkpoint == self.checkpoint:
            return False
        index, checkpoint = self.index_store.load(self.spec.name, self.spec.dim, self.spec.metric,
                                                  reuse=self.index)
        index.set_nprobe(self.nprobe)
        self.index, self.checkpoint = index, checkpoint
        return True

    def search_frames(self, vectors: np.ndarray, k: int) -> list[list[FrameHit]]:
        """k nearest archived frames for each query vector, committed videos only."""
        index = self.index  # refresh() may swap it meanwhile; one search uses one index
        if len(index) == 0:
            return [[] for _ in range(len(vectors))]
        scores, ids = index.search(vectors, k)
        resolved = self.catalog.resolve_frames(np.unique(ids[ids >= 0]).tolist())
        hits: list[list[FrameHit]] = []
        for row_scores, row_ids in zip(scores, ids):
            row = []
            for score, frame_id in zip(row_scores.tolist(), row_ids.tolist()):
                where = resolved.get(frame_id)
                if where is not None:
                    row.append(FrameHit(frame_id, where[0], where[1], float(score)))
            hits.append(row)
        return hits

    def known(self, sha256: str) -> VideoRecord | None:
        return self.catalog.find_by_sha256(sha256)

    def close(self) -> None:
        try:
            if self.writable and (self._staged or self._index_dirty):
                self.commit()
        finally:
            self.catalog.close()
            if self._lock:
                self._lock.release()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _spec_dict(spec: DescriptorSpec) -> dict:
    return {"name": spec.name, "dim": spec.dim, "metric": spec.metric, "config_id": spec.config_id}


def _index_vectors(stored: FrameVectors, binary: bool) -> np.ndarray:
    return stored.vectors if binary else stored.vectors.astype(np.float32)


def _frame_ids(record: VideoRecord) -> np.ndarray:
    return np.arange(record.first_frame_id, record.first_frame_id + record.frame_count, dtype=np.int64)


def stored_spec(catalog: SqlCatalog) -> DescriptorSpec | None:
    raw = catalog.get_meta(DESCRIPTOR_META_KEY)
    return DescriptorSpec(**json.loads(raw)) if raw else None


_NO_ARCHIVE = "no archive in {data_dir} (run `firstseen ingest` first)"
_EMPTY_ARCHIVE = "the archive in {data_dir} is empty (run `firstseen ingest` first)"


def _open_catalog(data_dir: Path, catalog_url: str, spec: DescriptorSpec | None) -> tuple[SqlCatalog, DescriptorSpec]:
    catalog = SqlCatalog.open(catalog_url)
    spec = spec or stored_spec(catalog)
    if spec is None:
        catalog.close()
        raise BadInputError(_EMPTY_ARCHIVE.format(data_dir=data_dir))
    return catalog, spec


def open_catalog_only(data_dir: Path, catalog_url: str) -> tuple[SqlCatalog, DescriptorSpec]:
    """An archive's catalog and descriptor without loading its index, which at ten million
    frames is gigabytes (stats reads the index manifest instead). The caller closes it."""
    if not Path(data_dir).exists():
        raise BadInputError(_NO_ARCHIVE.format(data_dir=data_dir))
    return _open_catalog(data_dir, catalog_url, None)


def open_archive(data_dir: Path, catalog_url: str, spec: DescriptorSpec | None = None, *,
                 writable: bool = False, nprobe: int = 0, lock_wait_s: float = 0.0) -> Archive:
    """Open the archive in data_dir. Writers take the lock and run recovery; readers do
    neither. Without a spec the archive's own descriptor is used (stats, remove)."""
    data_dir = Path(data_dir)
    lock = None
    if writable:
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = DataDirLock(data_dir)
        lock.acquire(wait_s=lock_wait_s)
    elif not data_dir.exists():
        raise BadInputError(_NO_ARCHIVE.format(data_dir=data_dir))
    try:
        catalog, spec = _open_catalog(data_dir, catalog_url, spec)
        return Archive(catalog, IndexStore(data_dir / "index"), FileVectorStore(data_dir / "vectors"),
                       spec, writable=writable, lock=lock, nprobe=nprobe, searches=SearchStore(data_dir / "searches"))
    except BaseException:
        if lock:
            lock.release()
        raise


def memory_archive(catalog: SqlCatalog, spec: DescriptorSpec) -> Archive:
    """An archive with in-memory index and vector storage, for tests of the write protocol."""
    return Archive(catalog, MemoryIndexStore(), MemoryVectorStore(), spec, writable=True)
