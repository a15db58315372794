"""The archive's index maintenance: a rebuilt main adopted, the delta merged, the engine's own rebuild.

A mixin of Archive, kept apart for its length; it works on the archive's own stores, which no
caller outside this package touches."""

from __future__ import annotations

import numpy as np

from firstseen.archive.records import DescriptorSpec, frame_ids, index_vectors
from firstseen.errors import FirstSeenError
from firstseen.storage.faiss_index import TieredIndex, VectorIndex
from firstseen.storage.protocols import VectorStore, VideoCatalog


class IndexMaintenance:
    """adopt_main(), merge_delta() and rebuild_in_engine() over the stores Archive holds."""

    _catalog: VideoCatalog
    _vectors: VectorStore
    _index: TieredIndex
    _index_dirty: bool
    spec: DescriptorSpec
    nprobe: int

    # Archive's own, which these methods call
    def _require_writable(self) -> None:
        raise NotImplementedError

    def commit(self) -> int:
        raise NotImplementedError

    def adopt_main(self, main: VectorIndex, covered: dict[str, tuple[int, int]], built_for: int) -> int:
        """Publish a main index rebuilt from raw vectors as the next checkpoint.

        covered maps each video the build read to its (first_frame_id, frame_count). The
        build ran without the lock, so the archive may have moved on: videos removed since
        leave the main, videos added since go to the new delta, straight from raw storage."""
        self._require_writable()
        self.commit()
        records = {r.video_id: r for r in self._catalog.videos()}
        for video_id, (first, count) in covered.items():
            record = records.get(video_id)
            if record is None or (record.first_frame_id, record.frame_count) != (first, count):
                main.remove(np.arange(first, first + count, dtype=np.int64))
        delta = VectorIndex(self.spec.name, self.spec.dim, self.spec.metric)
        for record in records.values():
            if covered.get(record.video_id) == (record.first_frame_id, record.frame_count):
                continue
            stored = self._vectors.get(record.video_id)
            if stored is None or len(stored) != record.frame_count:
                raise FirstSeenError(
                    f"raw vectors of video {record.video_id} are missing or damaged; restore them from a backup"
                )
            delta.add(frame_ids(record), index_vectors(stored, self._index.binary))
        self._index = TieredIndex(
            self.spec.name, self.spec.dim, self.spec.metric, main=main, delta=delta, main_built_for=built_for
        )
        self._index.set_nprobe(self.nprobe)
        self._index_dirty = True
        return self.commit()

    def rebuild_in_engine(self, index_type: str, build: dict) -> int:
        """Have the index engine rebuild its own index (Milvus) and publish the checkpoint."""
        self._require_writable()
        rebuild = getattr(self._index, "rebuild", None)
        if rebuild is None:
            raise FirstSeenError("this archive's index is FAISS files; it is rebuilt from the raw vectors")
        self.commit()
        rebuild(index_type, build)
        self._index_dirty = True
        return self.commit()

    def merge_delta(self) -> int:
        """Fold the delta into an IVF main (no retraining) and publish; returns vectors moved."""
        self._require_writable()
        moved = self._index.merge_delta()
        if moved:
            self._index_dirty = True
            self.commit()
        return moved
