"""The archive's crash recovery and consistency check: catalog, raw vectors and index brought back into agreement.

A mixin of Archive, kept apart for its length; it works on the archive's own stores, which no
caller outside this package touches."""

from __future__ import annotations

import numpy as np

from firstseen.archive.records import frame_ids
from firstseen.errors import FirstSeenError
from firstseen.records import FrameVectors, VideoRecord
from firstseen.storage.faiss_index import TieredIndex
from firstseen.storage.protocols import RunLog, VectorStore, VideoCatalog


class Recovery:
    """recover() and verify() over the stores Archive holds."""

    _catalog: VideoCatalog
    _vectors: VectorStore
    _runs: RunLog
    _index: TieredIndex
    _index_dirty: bool
    _staged: list[str]

    # Archive's own, which these methods call
    def _require_writable(self) -> None:
        raise NotImplementedError

    def _finish_removal(self, record: VideoRecord) -> None:
        raise NotImplementedError

    def _add_to_index(self, record: VideoRecord, stored: FrameVectors) -> None:
        raise NotImplementedError

    def commit(self) -> int:
        raise NotImplementedError

    def recover(self) -> dict[str, int]:
        """Staged videos whose vectors are whole are rolled forward, half-written ones rolled
        back, interrupted removals finished, orphans dropped. Idempotent."""
        self._require_writable()
        catalog, vectors = self._catalog, self._vectors
        report = {"rolled_forward": 0, "rolled_back": 0, "removals_finished": 0, "orphans_dropped": 0}
        # This runs at every writable open (each nightly ingest), so the common case, a
        # committed video whose ids are all in the index and whose raw file exists, reads
        # nothing: a video's ids are one contiguous range, counted in the sorted id array.
        # Where the index is the raw store (Milvus), a committed video's rows were flushed
        # before its checkpoint was published, so only unfinished videos are read back: every
        # id of a collection of hundreds of millions, at each commit of a shared ingest, would
        # hold the archive-wide lock for minutes. verify() still reads them all.
        records = catalog.videos()
        unfinished_only = vectors.index_keeps_vectors
        if unfinished_only:
            ranges = [(r.first_frame_id, r.frame_count) for r in records if r.status != "committed"]
            index_ids = self._index.ids_within(ranges)  # type: ignore[attr-defined]
        else:
            index_ids = np.sort(self._index.ids())
        accounted = np.zeros(len(index_ids), dtype=bool)
        on_disk = vectors.video_ids()
        for record in records:
            if unfinished_only and record.status == "committed":
                continue
            ids = frame_ids(record)
            lo, hi = np.searchsorted(index_ids, [record.first_frame_id, record.first_frame_id + record.frame_count])
            accounted[lo:hi] = True
            whole_in_index = hi - lo == record.frame_count
            if record.status == "removing":
                self._finish_removal(record)
                report["removals_finished"] += 1
                continue
            raw_whole = vectors.index_keeps_vectors or record.video_id in on_disk
            if record.status == "committed" and whole_in_index and raw_whole:
                continue
            stored = vectors.get(record.video_id)
            if stored is None or len(stored) != record.frame_count:
                if record.status == "committed":
                    raise FirstSeenError(
                        f"raw vectors of committed video {record.video_id} are missing or damaged; "
                        "restore them from a backup"
                    )
                self._index.remove(ids)
                self._index_dirty = True
                vectors.delete(record.video_id)
                catalog.delete_video(record.video_id)
                report["rolled_back"] += 1
                continue
            if not whole_in_index:
                self._index.remove(ids)  # a partial add must not leave duplicates
                self._add_to_index(record, stored)
            if record.status == "pending":
                self._staged.append(record.video_id)
                report["rolled_forward"] += 1
        orphans = index_ids[~accounted]
        if orphans.size:
            self._index.remove(orphans)
            self._index_dirty = True
            report["orphans_dropped"] += int(orphans.size)
        known = {r.video_id for r in catalog.videos()}
        for video_id in on_disk - known:
            vectors.delete(video_id)
            report["orphans_dropped"] += 1
        self.commit()
        self._runs.mark_stale_runs_crashed()
        return report

    def verify(self) -> list[str]:
        """What disagrees between the catalog, the index and the raw vectors; empty when all agree."""
        found = []
        records = self._catalog.videos()
        index_ids = self._index.ids()
        if len(np.unique(index_ids)) != len(index_ids):
            found.append("duplicate ids in the index")
        expected = np.concatenate([frame_ids(r) for r in records]) if records else np.empty(0, np.int64)
        if set(index_ids.tolist()) != set(expected.tolist()):
            found.append(f"index holds {len(index_ids)} ids, catalog expects {len(expected)}")
        for r in records:
            if r.status != "committed":
                found.append(f"video {r.video_id} is {r.status}")
            stored = self._vectors.get(r.video_id)
            if stored is None or len(stored) != r.frame_count:
                found.append(f"raw vectors of {r.video_id} missing or wrong length")
        extra = self._vectors.video_ids() - {r.video_id for r in records}
        if extra:
            found.append(f"raw vectors without catalog rows: {sorted(extra)}")
        return found
