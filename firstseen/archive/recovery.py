"""The archive's crash recovery and consistency check: catalog, raw vectors and index brought back into agreement.

Kept apart from archive.py for its length; it works on the archive's own stores, which no
caller outside this package touches."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from firstseen.errors import FirstSeenError

if TYPE_CHECKING:
    from firstseen.archive.archive import Archive


def recover(archive: Archive) -> dict[str, int]:
    """Staged videos whose vectors are whole are rolled forward, half-written ones rolled
    back, interrupted removals finished, orphans dropped. Idempotent."""
    from firstseen.archive.archive import frame_ids

    catalog, vectors = archive._catalog, archive._vectors
    report = {"rolled_forward": 0, "rolled_back": 0, "removals_finished": 0, "orphans_dropped": 0}
    # This runs at every writable open (each nightly ingest), so the common case, a
    # committed video whose ids are all in the index and whose raw file exists, reads
    # nothing: a video's ids are one contiguous range, counted in the sorted id array.
    index_ids = np.sort(archive._index.ids())
    accounted = np.zeros(len(index_ids), dtype=bool)
    on_disk = vectors.video_ids()
    for record in catalog.videos():
        ids = frame_ids(record)
        lo, hi = np.searchsorted(index_ids, [record.first_frame_id, record.first_frame_id + record.frame_count])
        accounted[lo:hi] = True
        whole_in_index = hi - lo == record.frame_count
        if record.status == "removing":
            archive._finish_removal(record)
            report["removals_finished"] += 1
            continue
        if record.status == "committed" and whole_in_index and record.video_id in on_disk:
            continue
        stored = vectors.get(record.video_id)
        if stored is None or len(stored) != record.frame_count:
            if record.status == "committed":
                raise FirstSeenError(
                    f"raw vectors of committed video {record.video_id} are missing or damaged; "
                    "restore them from a backup"
                )
            archive._index.remove(ids)
            archive._index_dirty = True
            vectors.delete(record.video_id)
            catalog.delete_video(record.video_id)
            report["rolled_back"] += 1
            continue
        if not whole_in_index:
            archive._index.remove(ids)  # a partial add must not leave duplicates
            archive._add_to_index(record, stored)
        if record.status == "pending":
            archive._staged.append(record.video_id)
            report["rolled_forward"] += 1
    orphans = index_ids[~accounted]
    if orphans.size:
        archive._index.remove(orphans)
        archive._index_dirty = True
        report["orphans_dropped"] += int(orphans.size)
    known = {r.video_id for r in catalog.videos()}
    for video_id in on_disk - known:
        vectors.delete(video_id)
        report["orphans_dropped"] += 1
    archive.commit()
    archive._runs.mark_stale_runs_crashed()
    return report


def problems(catalog, index, vectors) -> list[str]:
    """What disagrees between the catalog, the index and the raw vectors; empty when all agree."""
    from firstseen.archive.archive import frame_ids

    found = []
    records = catalog.videos()
    index_ids = index.ids()
    if len(np.unique(index_ids)) != len(index_ids):
        found.append("duplicate ids in the index")
    expected = np.concatenate([frame_ids(r) for r in records]) if records else np.empty(0, np.int64)
    if set(index_ids.tolist()) != set(expected.tolist()):
        found.append(f"index holds {len(index_ids)} ids, catalog expects {len(expected)}")
    for r in records:
        if r.status != "committed":
            found.append(f"video {r.video_id} is {r.status}")
        stored = vectors.get(r.video_id)
        if stored is None or len(stored) != r.frame_count:
            found.append(f"raw vectors of {r.video_id} missing or wrong length")
    extra = vectors.video_ids() - {r.video_id for r in records}
    if extra:
        found.append(f"raw vectors without catalog rows: {sorted(extra)}")
    return found
