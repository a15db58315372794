"""The index contract: FAISS files, the in-memory twin and Milvus Lite hold, search, remove,
publish and reopen an archive's frames the same way, alone and under an archive with its recovery.
A new backend subclasses IndexBackendContract and provides `store`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import require_scale

from firstseen.archive import ArchiveStores, DescriptorSpec, memory_stores
from firstseen.archive.archive import Archive
from firstseen.errors import ArchiveMismatchError
from firstseen.records import FrameVectors, VideoInfo, VideoMetadata
from firstseen.storage.index_store import IndexStore, MemoryIndexStore

DIM = 16
SPEC = DescriptorSpec("toy", DIM, "inner_product", "toy/16")


def unit_vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def frames(n: int, seed: int) -> FrameVectors:
    return FrameVectors("toy", np.arange(n, dtype=np.float64), unit_vectors(n, seed))


class IndexBackendContract:
    """Each backend: `store(tmp_path)` gives its index store; a second call on the same path
    gives one over the same saved index (a reopen)."""

    def store(self, tmp_path: Path):
        raise NotImplementedError

    def test_an_empty_index_loads_at_checkpoint_zero(self, tmp_path):
        store = self.store(tmp_path)
        index, checkpoint = store.load("toy", DIM, "inner_product")
        assert (len(index), checkpoint, store.read_manifest()) == (0, 0, None)
        assert not index.binary and index.ids().size == 0
        store.close()

    def test_frames_are_found_nearest_first_and_missing_neighbours_padded(self, tmp_path):
        store = self.store(tmp_path)
        index, _ = store.load("toy", DIM, "inner_product")
        vectors = unit_vectors(30, 1)
        index.add(np.arange(100, 130), vectors, video_id="a", pts_s=np.arange(30.0))
        scores, ids = index.search(vectors[[0, 7]], 5)
        assert ids[:, 0].tolist() == [100, 107]
        assert np.allclose(scores[:, 0], 1.0, atol=1e-4)
        assert np.all(np.diff(scores, axis=1) <= 1e-6)  # nearest first
        scores, ids = index.search(vectors[:1], 40)
        assert (ids[0] >= 0).sum() == 30 and np.all(ids[0, 30:] == -1) and np.all(np.isneginf(scores[0, 30:]))
        store.close()

    def test_removed_frames_are_gone_from_ids_and_results(self, tmp_path):
        store = self.store(tmp_path)
        index, _ = store.load("toy", DIM, "inner_product")
        vectors = unit_vectors(20, 2)
        index.add(np.arange(10), vectors[:10], video_id="a", pts_s=np.arange(10.0))
        index.add(np.arange(20, 30), vectors[10:], video_id="b", pts_s=np.arange(10.0))
        assert index.remove(np.array([3, 4, 5, 21, 29])) == 5
        assert sorted(index.ids().tolist()) == sorted(set(range(30)) - {3, 4, 5, 21, 29} - set(range(10, 20)))
        _, ids = index.search(vectors[[3, 11]], 3)
        assert 3 not in ids[0] and 21 not in ids[1]
        assert len(index) == 15
        store.close()

    def test_a_published_checkpoint_reopens_with_its_frames(self, tmp_path):
        store = self.store(tmp_path)
        index, _ = store.load("toy", DIM, "inner_product")
        index.add(np.arange(12), unit_vectors(12, 3), video_id="a", pts_s=np.arange(12.0))
        manifest = store.save(index, 1)
        assert (manifest.checkpoint, manifest.count, manifest.descriptor) == (1, 12, "toy")
        store.close()
        again = self.store(tmp_path)
        assert again.read_manifest().checkpoint == 1
        reopened, checkpoint = again.load("toy", DIM, "inner_product")
        assert checkpoint == 1 and sorted(reopened.ids().tolist()) == list(range(12))
        with pytest.raises(ArchiveMismatchError):
            again.load("toy", 8, "inner_product")
        again.close()

    def _archive(self, tmp_path: Path, stores: ArchiveStores | None = None) -> tuple[Archive, ArchiveStores]:
        base = stores or memory_stores()
        stores = ArchiveStores(
            base.catalog, base.links, base.runs, base.failures, base.vectors, self.store(tmp_path), base.text
        )
        return Archive(stores, SPEC, writable=True), stores

    def _stage(self, archive: Archive, name: str, n: int, seed: int):
        meta = VideoMetadata(path=Path(f"/f/{name}.mp4"), published_at=datetime(2020, 1, 1, tzinfo=UTC))
        return archive.stage(
            meta,
            video_id=name,
            sha256=name * 8,
            info=VideoInfo(float(n), 64, 64, "h264", None, 0, "mp4"),
            frames=frames(n, seed),
        )

    def test_an_archive_searches_commits_removes_and_recovers_on_it(self, tmp_path):
        archive, stores = self._archive(tmp_path)
        self._stage(archive, "a" * 8, 10, 10)
        self._stage(archive, "b" * 8, 6, 11)
        assert archive.search_frames(frames(10, 10).vectors[:1], 3) == [[]]  # pending: not visible
        archive.commit()
        hit = archive.search_frames(frames(6, 11).vectors[2:3], 1)[0][0]
        assert (hit.video_id, hit.pts_s) == ("b" * 8, 2.0)
        archive.remove("a" * 8)
        assert all(h.video_id == "b" * 8 for h in archive.search_frames(frames(10, 10).vectors[:2], 5)[0])
        self._stage(archive, "c" * 8, 4, 12)  # staged, never committed: the process dies here
        stores.index_files.close()

        reopened, _ = self._archive(tmp_path, stores)  # recovery rolls the whole staged video forward
        assert reopened.verify() == []
        assert reopened.search_frames(frames(4, 12).vectors[:1], 1)[0][0].video_id == "c" * 8
        reopened.close()


class TestFaissFiles(IndexBackendContract):
    def store(self, tmp_path):
        return IndexStore(tmp_path / "index")


class TestMemoryIndex(IndexBackendContract):
    _stores: dict[Path, MemoryIndexStore] = {}

    def store(self, tmp_path):
        return self._stores.setdefault(tmp_path, MemoryIndexStore())


class TestMilvusLite(IndexBackendContract):
    def store(self, tmp_path):
        require_scale("pymilvus")
        from firstseen.storage.milvus_index import MilvusIndexStore
        from firstseen.storage.milvus_target import parse_index_url

        return MilvusIndexStore(parse_index_url(f"milvus-lite://{tmp_path}/index.db"))

    def test_recovery_reads_back_only_the_unfinished_videos(self, tmp_path, monkeypatch):
        """On Milvus the index is the raw store: a writer's open reads the rows of pending and
        removing videos, never every id of the collection (the lock is held meanwhile)."""
        from firstseen.storage.milvus_index import MilvusIndex

        archive, stores = self._archive(tmp_path)
        self._stage(archive, "a" * 8, 10, 10)
        archive.commit()
        self._stage(archive, "b" * 8, 6, 11)  # staged, never committed: the process dies here
        stores.index_files.close()

        def every_id(self):
            raise AssertionError("recovery read every id of the collection")

        with monkeypatch.context() as patched:
            patched.setattr(MilvusIndex, "ids", every_id)
            reopened, _ = self._archive(tmp_path, stores)
        assert reopened.verify() == []
        assert reopened.search_frames(frames(6, 11).vectors[:1], 1)[0][0].video_id == "b" * 8
        reopened.close()
