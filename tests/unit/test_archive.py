"""The archive write protocol: visibility, removal, recovery from a crash at each step, locking."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from firstseen.archive import Archive, DescriptorSpec, open_archive
from firstseen.errors import ArchiveLockedError, ArchiveMismatchError, BadInputError, DuplicateVideoError
from firstseen.records import FrameVectors, VideoInfo, VideoMetadata
from firstseen.storage.catalog import SqlCatalog

SPEC = DescriptorSpec("toy", 16, "inner_product", "toy/1")
INFO = VideoInfo(duration_s=3.0, width=160, height=120, codec="h264", avg_fps=25.0, rotation=0, container="mp4")


def _frames(seed: int, n: int = 4) -> FrameVectors:
    v = np.random.default_rng(seed).standard_normal((n, SPEC.dim)).astype(np.float32)
    return FrameVectors("toy", np.arange(n, dtype=np.float64), v / np.linalg.norm(v, axis=1, keepdims=True))


def _open(tmp_path, spec=SPEC) -> Archive:
    return open_archive(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite'}", spec, writable=True)


def _stage(archive: Archive, n: int, **meta) -> FrameVectors:
    frames = _frames(n)
    archive.stage(
        VideoMetadata(path=f"/videos/{n}.mp4", **meta),
        video_id=f"vid{n:04d}",
        sha256=f"{n:064x}",
        info=INFO,
        frames=frames,
    )
    return frames


def _visible(archive: Archive, frames: FrameVectors) -> list[str]:
    hits = archive.search_frames(frames.vectors.astype(np.float32), k=1)
    return [row[0].video_id for row in hits if row]


def test_staged_video_is_invisible_until_commit(tmp_path):
    with _open(tmp_path) as archive:
        frames = _stage(archive, 1)
        assert _visible(archive, frames) == []
        assert archive.video("vid0001").status == "pending"
        archive.commit()
        assert _visible(archive, frames) == ["vid0001"] * 4
        hit = archive.search_frames(frames.vectors[2:3], k=1)[0][0]
        assert hit.pts_s == 2.0 and hit.score == pytest.approx(1.0, abs=1e-3)
        assert archive.verify() == []


def test_remove_takes_the_video_out_everywhere(tmp_path):
    with _open(tmp_path) as archive:
        frames = _stage(archive, 1, external_id="ext-1")
        _stage(archive, 2)
        archive.commit()
        archive.remove("ext-1")
        assert "vid0001" not in _visible(archive, frames)
        assert archive.video("vid0001") is None
        assert archive.raw_vectors("vid0001") is None
        assert archive.verify() == []
        with pytest.raises(BadInputError, match="no video"):
            archive.remove("ext-1")
    with _open(tmp_path) as reopened:
        assert len(reopened._index) == 4 and reopened.verify() == []


def test_duplicate_external_id_writes_nothing(tmp_path):
    with _open(tmp_path) as archive:
        _stage(archive, 1, external_id="same")
        with pytest.raises(DuplicateVideoError):
            _stage(archive, 2, external_id="same")
        archive.commit()
        assert archive.raw_vectors("vid0002") is None and archive.verify() == []


class Crash(BaseException):
    """The process dies here: nothing after it runs, no cleanup either."""


class Dying:
    """A store that works until one named call, where the process "dies" (a fault injected through
    the storage interface, not by patching the implementation)."""

    def __init__(self, store, dies_at: str, *, then_noop: tuple[str, ...] = ()):
        self._store, self._dies_at, self._noop = store, dies_at, then_noop

    def __getattr__(self, name):
        if name == self._dies_at:

            def die(*args, **kwargs):
                raise Crash(name)

            return die
        if name in self._noop:  # a dead process runs no cleanup
            return lambda *args, **kwargs: None
        return getattr(self._store, name)


def _open_with(tmp_path, **wrap) -> Archive:
    """A writable archive over the real SQLite and file stores, some of them wrapped."""
    from dataclasses import replace

    from firstseen.archive import DataDirLock, sql_stores
    from firstseen.datadir import DataDir

    where = DataDir(tmp_path / "data")
    lock = DataDirLock(where)
    lock.acquire()
    stores = sql_stores(SqlCatalog.open(where.catalog_url(f"sqlite:///{where.sqlite_catalog}")), where)
    stores = replace(stores, **{name: wrapper(getattr(stores, name)) for name, wrapper in wrap.items()})
    return Archive(stores, SPEC, writable=True, lock=lock)


class _DyingIndexFiles(Dying):
    """Index saves work; the loaded index dies when the next video is added to it."""

    def load(self, *args, **kwargs):
        index, checkpoint = self._store.load(*args, **kwargs)
        return Dying(index, "add"), checkpoint


@pytest.mark.parametrize("crash_after", ["raw_written", "catalog_pending", "index_saved"])
def test_recovery_after_a_crash_at_each_step(tmp_path, crash_after):
    with _open(tmp_path) as archive:
        committed = _stage(archive, 1)
        archive.commit()
    wrap = {
        "raw_written": {
            "catalog": lambda c: Dying(c, "add_pending_video"),
            "vectors": lambda v: Dying(v, "", then_noop=("delete",)),
        },
        "catalog_pending": {"index_files": lambda f: _DyingIndexFiles(f, "")},
        "index_saved": {"catalog": lambda c: Dying(c, "mark_committed")},
    }[crash_after]
    archive = _open_with(tmp_path, **wrap)
    with pytest.raises(Crash):
        _stage(archive, 2)
        archive.commit()
    archive._lock.release()  # the process "died": the kernel would drop the lock
    archive._catalog.close()

    with _open(tmp_path) as recovered:
        assert recovered.verify() == []
        assert _visible(recovered, committed) == ["vid0001"] * 4, "nothing committed is lost"
        second = recovered.video("vid0002")
        if crash_after == "raw_written":
            assert second is None and recovered.raw_vectors("vid0002") is None
        else:
            assert second.status == "committed", "whole staged videos are rolled forward"


def test_interrupted_removal_is_finished_and_orphans_dropped(tmp_path):
    with _open(tmp_path) as archive:
        _stage(archive, 1)
        _stage(archive, 2)
        archive.commit()
        archive._catalog.mark_removing("vid0002")
        archive._vectors.put("stray0001", _frames(9))  # a raw file whose catalog row never came
        archive._index.add(np.array([10_000, 10_001]), _frames(8, 2).vectors)  # ids nobody owns
        archive._index_store.save(archive._index, archive.checkpoint + 1)
        archive._index_dirty = False
        archive._lock.release()
    with _open(tmp_path) as recovered:
        assert recovered._catalog.get_video("vid0002") is None
        assert recovered._vectors.video_ids() == {"vid0001"}
        assert set(recovered._index.ids().tolist()) == set(range(4))
        assert recovered.verify() == []


def test_another_descriptor_is_refused(tmp_path):
    with _open(tmp_path) as archive:
        _stage(archive, 1)
    other = DescriptorSpec("toy", 16, "inner_product", "toy/2")
    with pytest.raises(ArchiveMismatchError, match="toy/1"):
        _open(tmp_path, other)
    with pytest.raises(ArchiveMismatchError):
        _open(tmp_path, DescriptorSpec("pdq", 256, "hamming", "pdq/pdqhash"))


def test_readers_see_only_the_last_checkpoint(tmp_path):
    with _open(tmp_path) as writer:
        first = _stage(writer, 1)
        writer.commit()
        second = _stage(writer, 2)
        reader = open_archive(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite'}")
        assert _visible(reader, first) == ["vid0001"] * 4
        assert "vid0002" not in _visible(reader, second)
        reader.close()


def test_only_one_writer_and_a_dead_writer_leaves_no_lock(tmp_path):
    data = tmp_path / "data"
    with _open(tmp_path):
        with pytest.raises(ArchiveLockedError, match="pid"):
            _open(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; sys.path.insert(0, sys.argv[1]);"
                "from firstseen.archive import DataDirLock; DataDirLock(sys.argv[2]).acquire();"
                "print('locked', flush=True); time.sleep(60)"
            ),
            os.getcwd(),
            str(data),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ArchiveLockedError, match=str(holder.pid)):
            _open(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.05)
    _open(tmp_path).close()


def test_in_memory_stores_follow_the_same_protocol(tmp_path):
    from firstseen.archive import memory_archive

    archive = memory_archive(SPEC)  # catalog, links, runs, vectors and index files all in memory
    frames = _stage(archive, 1)
    assert _visible(archive, frames) == []
    archive.commit()
    assert _visible(archive, frames) == ["vid0001"] * 4 and archive.verify() == []
    archive.remove("vid0001")
    assert len(archive._index) == 0 and archive.verify() == []
    archive.close()


def test_reopening_a_healthy_archive_reads_no_raw_vectors(tmp_path):
    with _open(tmp_path) as archive:
        for n in range(3):
            _stage(archive, n)
        archive.commit()
    # recovery runs at this open, as at the start of every ingest; a read of raw vectors "dies"
    with _open_with(tmp_path, vectors=lambda v: Dying(v, "get")) as reopened:
        assert reopened.index_size == 12 and reopened.videos("committed")


def test_a_reader_refreshes_to_the_newest_checkpoint(tmp_path):
    with _open(tmp_path) as writer:
        first = _stage(writer, 1)
        writer.commit()
        reader = open_archive(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite'}")
        held = reader._index  # what a search in flight is using
        assert reader.refresh() is False
        second = _stage(writer, 2)
        writer.commit()
        assert "vid0002" not in _visible(reader, second)
        assert reader.refresh() is True and reader.checkpoint == writer.checkpoint
        assert _visible(reader, second) == ["vid0002"] * 4 and _visible(reader, first) == ["vid0001"] * 4
        assert len(held) == 4  # the old index object is untouched, not rebuilt in place
        with pytest.raises(Exception, match="readers"):
            writer.refresh()
        reader.close()
