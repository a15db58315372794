"""The archive (catalog + raw vectors + vector index): the one place a video is written, read or removed.

Write protocol, which crash recovery relies on:
  stage:  raw vectors file -> catalog rows (status pending) -> vectors into the in-memory index
  commit: index saved as checkpoint N (atomic rename) -> catalog rows marked committed
  remove: catalog row marked removing -> index saved without its ids -> raw file and rows deleted
Search only sees committed videos, so a video is visible only when all three are written.
On Milvus the index keeps the vectors too and is read back as the raw store (VectorsInIndex);
the files then hold what this machine staged, with its thumbnails.
Callers get what they need by method; the stores themselves stay private to the archive."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from firstseen.archive.maintenance import IndexMaintenance
from firstseen.archive.records import ArchiveStores, CopyLinkFound, DescriptorSpec, FrameHit, frame_ids, index_vectors
from firstseen.archive.recovery import Recovery
from firstseen.errors import ArchiveMismatchError, BadInputError, FirstSeenError
from firstseen.media.informative import GATE_VERSION
from firstseen.records import CatalogStats, CopyLinkRecord, FrameVectors, VideoInfo, VideoMetadata, VideoRecord
from firstseen.storage.faiss_index import IndexShape
from firstseen.storage.index_store import IndexManifest
from firstseen.storage.lock import DataDirLock, WriterLock
from firstseen.storage.protocols import FailureLedger
from firstseen.storage.stored_searches import SearchStore
from firstseen.storage.text_store import TextStore
from firstseen.storage.vectorstore import VectorsInIndex, to_storage

DESCRIPTOR_META_KEY = "descriptor"
INDEX_HOME_META_KEY = "index_home"  # where the vectors were last published: faiss, or a Milvus address
GATE_META_KEY = "informative_gate"  # which uninformative-frame test flagged the stored frames


class Archive(Recovery, IndexMaintenance):
    def __init__(
        self,
        stores: ArchiveStores,
        spec: DescriptorSpec,
        *,
        writable: bool,
        lock: WriterLock | DataDirLock | None = None,
        nprobe: int = 0,
        index_home: str = "faiss",
    ):
        self._catalog, self._index_store, self._vectors = stores.catalog, stores.index_files, stores.vectors
        self._links, self._runs, self._failures, self._text = stores.links, stores.runs, stores.failures, stores.text
        self._searches = stores.searches
        self.spec = spec
        self.writable = writable
        self._lock = lock
        self.nprobe = nprobe  # 0: the value the IVF was built with
        self._check_spec()
        self._index, self.checkpoint = self._index_store.load(spec.name, spec.dim, spec.metric)
        self._index.set_nprobe(nprobe)
        self._staged: list[str] = []
        self._index_dirty = False
        moving = self._index_moves_to(index_home)
        # Where the index keeps the vectors (Milvus), they are read back from it, except while
        # a move there is filled from the files (the recovery below).
        keeps_vectors = hasattr(self._index, "frames_of")
        if keeps_vectors and not moving:
            self._vectors = VectorsInIndex(stores.vectors, lambda: self._index)
        if writable:
            self.recover()  # a new index home is filled from the raw vectors here
            if moving:
                self._catalog.set_meta(INDEX_HOME_META_KEY, index_home)
        if keeps_vectors and moving:
            self._vectors = VectorsInIndex(stores.vectors, lambda: self._index)

    def _index_moves_to(self, home: str) -> bool:
        """Whether the vectors are to live somewhere new (FAISS files to Milvus, say). A writer
        moves them from the raw vectors at its recovery; a reader is told to let one do so."""
        stored = self._catalog.get_meta(INDEX_HOME_META_KEY) or "faiss"
        if stored == home:
            return False
        if not self.writable and self._catalog.videos("committed"):
            raise ArchiveMismatchError(
                f"this archive's vectors were published to {stored}, not to {home}; run one writer "
                "(`firstseen ingest` or `firstseen reindex`) with this FIRSTSEEN_INDEX_URL to move them"
            )
        return True

    def _check_spec(self) -> None:
        stored = self._catalog.get_meta(DESCRIPTOR_META_KEY)
        if stored is None:
            if self.writable:  # a new archive: every frame it stores is flagged by today's test
                self._catalog.set_meta(DESCRIPTOR_META_KEY, json.dumps(self.spec.to_dict()))
                self._catalog.set_meta(GATE_META_KEY, GATE_VERSION)
            return
        if json.loads(stored) != self.spec.to_dict():
            raise ArchiveMismatchError(
                f"this archive was built with descriptor {json.loads(stored)}; it cannot be used "
                f"with {self.spec.to_dict()}. Use the archive's descriptor settings or a new data directory."
            )

    # ---- reading -------------------------------------------------------------------------
    def video(self, ref: str) -> VideoRecord | None:
        """A video by its id, or else by its external id."""
        return self._catalog.get_video(ref)

    def video_by_sha256(self, sha256: str) -> VideoRecord | None:
        return self._catalog.find_by_sha256(sha256)

    def videos(self, status: str | None = None) -> list[VideoRecord]:
        """Videos in frame-id order, all or those of one status (pending, committed, removing)."""
        return self._catalog.videos(status)

    def raw_vectors(self, video_id: str, *, thumbnails: bool = False) -> FrameVectors | None:
        """A video's stored vectors with their timestamps and flags (and thumbnails on request,
        where this machine holds them). On Milvus they are read back from the index by video
        id, so no shared file system is needed; without thumbnails, verification reads the
        archived file's frames."""
        return self._vectors.get(video_id, thumbnails=thumbnails)

    def copy_links(self, video_id: str) -> list[CopyLinkRecord]:
        """Verified links from this video to others holding the same footage, best first."""
        return self._links.copy_links(video_id)

    def stats(self) -> CatalogStats:
        by_status, footage_s, frames = self._catalog.video_totals()
        return CatalogStats(by_status, footage_s, frames, self._links.count(), self._runs.last())

    def runs(self, limit: int = 10) -> list:
        return self._runs.runs(limit)

    def unchanged_paths(self, stats: dict[str, tuple[int, int]]) -> dict[str, str]:
        """path -> video_id for archived files whose size and mtime are still those of ingest."""
        return self._catalog.unchanged_paths(stats)

    @property
    def metric(self) -> str:
        return self.spec.metric

    @property
    def binary(self) -> bool:
        """Whether the index holds binary codes (PDQ) rather than float vectors."""
        return self._index.binary

    @property
    def index_size(self) -> int:
        return len(self._index)

    def index_shape(self) -> IndexShape:
        """What the loaded index is: its kind, vectors in all and in the delta, its IVF lists."""
        return self._index.shape()

    def published_manifest(self) -> IndexManifest | None:
        """The newest checkpoint a writer has published (it may be newer than the one loaded)."""
        return self._index_store.read_manifest()

    @property
    def onscreen_text(self) -> TextStore:
        """The text read from the archive's footage (the text pass writes it)."""
        if self._text is None:
            raise FirstSeenError("this archive keeps no on-screen text (it has no SQL catalog)")
        return self._text

    @property
    def kept_searches(self) -> SearchStore | None:
        return self._searches

    def search_frames(self, vectors: np.ndarray, k: int) -> list[list[FrameHit]]:
        """k nearest archived frames for each query vector, committed videos only."""
        index = self._index  # refresh() may swap it meanwhile; one search uses one index
        if len(index) == 0:
            return [[] for _ in range(len(vectors))]
        scores, ids = index.search(vectors, k)
        resolved = self._catalog.resolve_frames(np.unique(ids[ids >= 0]).tolist())
        hits: list[list[FrameHit]] = []
        for row_scores, row_ids in zip(scores, ids):
            row = []
            for score, frame_id in zip(row_scores.tolist(), row_ids.tolist()):
                where = resolved.get(frame_id)
                if where is not None:
                    row.append(FrameHit(frame_id, where[0], where[1], float(score)))
            hits.append(row)
        return hits

    def refresh(self) -> bool:
        """Load the newest checkpoint a writer has published, if it is newer than ours (for a
        long-lived reader such as the API). The new index is built aside and swapped in by
        one assignment, so searches in flight finish on the index they started with."""
        if self.writable:
            raise FirstSeenError("a writer's index is always current; refresh is for readers")
        manifest = self._index_store.read_manifest()
        if manifest is None or manifest.checkpoint == self.checkpoint:
            return False
        index, checkpoint = self._index_store.load(self.spec.name, self.spec.dim, self.spec.metric, reuse=self._index)
        index.set_nprobe(self.nprobe)
        self._index, self.checkpoint = index, checkpoint
        return True

    # ---- writing -------------------------------------------------------------------------
    def _require_writable(self) -> None:
        if not self.writable:
            raise FirstSeenError("the archive was opened read-only")

    def stage(
        self,
        meta: VideoMetadata,
        *,
        video_id: str,
        sha256: str,
        info: VideoInfo,
        frames: FrameVectors,
        run_id: int | None = None,
        file_stat: tuple[int, int] | None = None,
    ) -> VideoRecord:
        """Write a video's raw vectors and catalog rows and add it to the in-memory index.
        It stays invisible to search until commit()."""
        self._require_writable()
        if frames.descriptor != self.spec.name:
            raise ArchiveMismatchError(f"vectors from {frames.descriptor!r}, archive uses {self.spec.name!r}")
        stored = to_storage(frames, self.spec.metric)
        self._vectors.put(video_id, stored)
        try:
            record = self._catalog.add_pending_video(
                meta,
                video_id=video_id,
                sha256=sha256,
                duration_s=info.duration_s,
                width=info.width,
                height=info.height,
                codec=info.codec,
                descriptor=self.spec.name,
                frame_pts=frames.pts_s,
                run_id=run_id,
                file_stat=file_stat,
            )
        except BaseException:
            self._vectors.delete(video_id)
            raise
        self._add_to_index(record, stored)
        self._staged.append(video_id)
        return record

    def _add_to_index(self, record: VideoRecord, stored: FrameVectors) -> None:
        # The index gets exactly what is stored (float16 rounded), so a rebuild from raw
        # vectors reproduces it bit for bit.
        self._index.add(
            frame_ids(record),
            index_vectors(stored, self._index.binary),
            video_id=record.video_id,
            pts_s=stored.pts_s,
            informative=stored.informative_mask(),
        )
        self._index_dirty = True

    def commit(self) -> int:
        """Save the index as a new checkpoint, then make staged videos visible."""
        self._require_writable()
        if not self._index_dirty and not self._staged:
            return self.checkpoint
        checkpoint = self.checkpoint + 1
        self._index_store.save(self._index, checkpoint)
        self.checkpoint = checkpoint
        self._index_dirty = False
        if self._staged:
            self._catalog.mark_committed(self._staged, checkpoint)
            self._staged = []
        return checkpoint

    def remove(self, ref: str) -> VideoRecord:
        """Take a video out of search, the index, the raw store, the catalog, its on-screen
        text and copy links, and every kept search that shows it (a takedown)."""
        self._require_writable()
        record = self._catalog.get_video(ref)
        if record is None:
            raise BadInputError(f"no video with id or external id {ref!r} in the archive")
        self.commit()  # never mix a removal into an unsaved batch
        self._catalog.mark_removing(record.video_id)
        self._finish_removal(record)
        return record

    def _finish_removal(self, record: VideoRecord) -> None:
        self._index.remove(frame_ids(record))
        self._index_dirty = True
        self.commit()
        self._vectors.delete(record.video_id)
        self._links.delete_video(record.video_id)
        if self._text is not None:
            self._text.delete_video(record.video_id)
        self._catalog.delete_video(record.video_id)
        if self._searches is not None:
            self._searches.purge_video(record.video_id)

    def update_file_stat(self, video_id: str, file_stat: tuple[int, int]) -> None:
        """Remember an archived file's new size and mtime (touched, same bytes)."""
        self._require_writable()
        self._catalog.update_file_stat(video_id, file_stat)

    def replace_raw_vectors(self, video_id: str, stored: FrameVectors) -> None:
        """Rewrite a video's stored vectors in place with new flags or thumbnails; the vectors
        and timestamps themselves must not change (the index holds them)."""
        self._require_writable()
        old = self._vectors.get(video_id)
        if old is None or len(old) != len(stored) or not np.array_equal(old.pts_s, stored.pts_s):
            raise FirstSeenError(f"raw vectors of {video_id} can only be refreshed with the same frames")
        stored = to_storage(stored, self.spec.metric)
        if isinstance(self._vectors, VectorsInIndex):
            record = self._catalog.get_video(video_id)
            assert record is not None
            self._vectors.replace(video_id, frame_ids(record), stored)
            self._index_dirty = True
        else:
            self._vectors.put(video_id, stored)

    # ---- copy links and ingest bookkeeping ----------------------------------------------
    def flags_are_current(self) -> bool:
        """Whether every stored frame flag comes from today's uninformative-frame test."""
        return self._catalog.get_meta(GATE_META_KEY) == GATE_VERSION

    def mark_flags_current(self) -> None:
        self._require_writable()
        self._catalog.set_meta(GATE_META_KEY, GATE_VERSION)

    def videos_awaiting_copy_links(self) -> list[str]:
        return self._catalog.videos_awaiting_copy_links()

    def record_copy_links(self, video_id: str, found: Sequence[CopyLinkFound]) -> None:
        """Store the verified links of one video and mark it searched for copies."""
        self._require_writable()
        for link in found:
            self._links.add_copy_link(video_id, link.other_video_id, link.score, link.segments)
        self._catalog.mark_copies_linked([video_id])

    def forget_copy_links(self) -> None:
        """Drop every copy link, so that every video is searched for copies again."""
        self._require_writable()
        # marked first: a crash between the two leaves links that the next pass replaces, not lost ones
        self._catalog.mark_copies_linked(None)
        self._links.delete_all()

    def failure_ledger(self, max_attempts: int) -> FailureLedger:
        return self._failures(max_attempts)

    def start_run(self, params: dict) -> int:
        self._require_writable()
        return self._runs.start_run(params)

    def finish_run(self, run_id: int, **outcome) -> None:
        self._require_writable()
        self._runs.finish_run(run_id, **outcome)

    def close(self) -> None:
        try:
            if self.writable and (self._staged or self._index_dirty):
                self.commit()
        finally:
            self._index_store.close()
            self._catalog.close()
            if self._lock:
                self._lock.release()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
