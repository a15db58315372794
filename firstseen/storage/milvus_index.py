"""The vector index in Milvus (a server, or Milvus Lite in one process): frame ids, vectors, video ids and times.

The same surface as the FAISS TieredIndex and its IndexStore, so the archive, its recovery and
search run unchanged: the collection is keyed by the integer frame id and carries the video id
and pts as scalar fields for filtering and read-back; the catalog stays the authority on what
they mean (a search resolves hits through it, committed videos only). A checkpoint is a flush
and one row of a small state collection, so readers see which checkpoint a writer published.

Where the index lives and how it is reached (FIRSTSEEN_INDEX_URL, the client, the index type
by size) is milvus_target.py."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np

from firstseen.errors import ArchiveMismatchError, BadInputError, FirstSeenError
from firstseen.storage.faiss_index import METRICS, IndexShape
from firstseen.storage.index_store import FORMAT_VERSION, IndexManifest
from firstseen.storage.milvus_target import (
    LITE_INDEX_TYPES,
    MilvusTarget,
    connect,
    index_plan,
    metric_type,
)

log = logging.getLogger(__name__)

FRAMES = "firstseen_frames"
STATE = "firstseen_index_state"
_STATE_ROW = 0
_BATCH = 2000  # rows per insert or delete call: gRPC messages stay far under their 64 MB cap


class MilvusIndex:
    """One archive's frames in a Milvus collection: what TieredIndex is over FAISS files.
    Reads that recovery and checkpoints rely on ask for strong consistency, so a writer
    always sees its own inserts and deletes."""

    def __init__(self, client, collection: str, descriptor: str, dim: int, metric: str, *, index_type: str, lite: bool):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}")
        self._client, self.collection, self.lite = client, collection, lite
        self.descriptor, self.dim, self.metric = descriptor, dim, metric
        self.index_type = index_type
        self.main_built_for = 0
        self._nprobe = 0
        self._count: int | None = None

    @property
    def binary(self) -> bool:
        return self.metric == "hamming"

    @property
    def kind(self) -> str:
        return f"milvus-{self.index_type.lower()}"

    def __len__(self) -> int:
        """Frames held: counted by the server once, then kept by this handle's adds and removes
        (a search asks on every call; a reader gets a new handle at each checkpoint it loads)."""
        if self._count is None:
            rows = self._client.query(
                self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
            )
            self._count = int(rows[0]["count(*)"]) if rows else 0
        return self._count

    def set_nprobe(self, nprobe: int) -> None:
        self._nprobe = nprobe

    def _vector_rows(self, vectors: np.ndarray) -> list:
        width = self.dim // 8 if self.binary else self.dim
        if vectors.ndim != 2 or vectors.shape[1] != width:
            raise ValueError(f"expected vectors of width {width}, got shape {vectors.shape}")
        if self.binary:
            return [bytes(v) for v in np.ascontiguousarray(vectors, dtype=np.uint8)]
        return np.ascontiguousarray(vectors, dtype=np.float32).tolist()

    def add(
        self,
        ids: np.ndarray,
        vectors: np.ndarray,
        *,
        video_id: str,
        pts_s: np.ndarray,
        informative: np.ndarray | None = None,
        replace: bool = False,
    ) -> None:
        """Insert one video's frames, keyed by their frame ids, with its id, their times and
        their evidence flags (so its vectors can be read back whole: frames_of); replace:
        frames already held get the rows given (new flags), by upsert."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        rows = self._vector_rows(vectors)
        flags = np.ones(len(ids), bool) if informative is None else np.asarray(informative, bool)
        if not (len(ids) == len(rows) == len(pts_s) == len(flags)):
            raise ValueError(f"{len(ids)} ids, {len(rows)} vectors, {len(pts_s)} times and {len(flags)} flags")
        write = self._client.upsert if replace else self._client.insert
        for start in range(0, len(ids), _BATCH):
            write(
                self.collection,
                [
                    {"frame_id": int(i), "video_id": video_id, "pts_s": float(t), "informative": bool(f), "vector": v}
                    for i, t, f, v in zip(
                        ids[start : start + _BATCH],
                        pts_s[start : start + _BATCH],
                        flags[start : start + _BATCH],
                        rows[start : start + _BATCH],
                    )
                ],
            )
        if self._count is not None and not replace:
            self._count += len(ids)

    def _search_params(self, k: int) -> dict:
        params: dict = {}
        if self.index_type.startswith(("IVF", "BIN_IVF")) and self._nprobe:
            params["nprobe"] = self._nprobe
        elif self.index_type.startswith("HNSW"):
            params["ef"] = max(k, 64)
        return {"metric_type": metric_type(self.metric), "params": params}

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n, k), similarities (higher is closer); missing: -inf and -1."""
        data = self._vector_rows(np.asarray(vectors))
        scores = np.full((len(data), k), -np.inf, np.float32)
        ids = np.full((len(data), k), -1, np.int64)
        if not data:
            return scores, ids
        results = self._client.search(
            self.collection,
            data=data,
            limit=k,
            search_params=self._search_params(k),
            consistency_level="Strong",
        )
        for row, hits in enumerate(results):
            for col, hit in enumerate(list(hits)[:k]):
                distance = float(hit["distance"])
                scores[row, col] = 1.0 - distance / self.dim if self.binary else distance
                ids[row, col] = int(hit["id"] if "id" in hit else hit["frame_id"])
        order = np.argsort(-scores, axis=1, kind="stable")  # the engine's order, made sure of
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)

    def remove(self, ids: np.ndarray) -> int:
        """Delete frames by id, one contiguous run at a time (a video's ids are one run)."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        if ids.size == 0:
            return 0
        breaks = np.flatnonzero(np.diff(ids) != 1) + 1
        removed = 0
        for run in np.split(ids, breaks):
            result = self._client.delete(
                self.collection, filter=f"frame_id >= {int(run[0])} and frame_id <= {int(run[-1])}"
            )
            removed += int(result.get("delete_count", 0)) if isinstance(result, dict) else len(result)
        self._count = None  # a delete may name ids that were not there: count again when asked
        return removed

    def ids(self) -> np.ndarray:
        """Every frame id held, for recovery and the consistency check. A server pages through
        a query iterator (a query's offset + limit is capped at 16,384 there); Milvus Lite has
        no iterator (no timestamp allocation) and answers one query uncapped."""
        if self.lite:
            rows = self._client.query(self.collection, filter="", output_fields=["frame_id"], limit=max(1, len(self)))
            return np.array(sorted(int(r["frame_id"]) for r in rows), dtype=np.int64)
        found: list[int] = []
        iterator = self._client.query_iterator(
            self.collection, batch_size=10_000, output_fields=["frame_id"], consistency_level="Strong"
        )
        try:
            while batch := iterator.next():
                found.extend(int(r["frame_id"]) for r in batch)
        finally:
            iterator.close()
        return np.array(found, dtype=np.int64)

    def ids_within(self, ranges: list[tuple[int, int]]) -> np.ndarray:
        """The frame ids held in each (first, count) range, sorted: what recovery reads of the
        videos left unfinished, instead of every id of the collection (minutes at a billion)."""
        found: list[int] = []
        for first, count in ranges:
            if count > 0:
                rows = self._client.query(
                    self.collection, filter=f"frame_id >= {int(first)} and frame_id < {int(first + count)}",
                    output_fields=["frame_id"], consistency_level="Strong", limit=int(count),
                )  # fmt: skip
                found.extend(int(r["frame_id"]) for r in rows)
        return np.array(sorted(found), dtype=np.int64)

    def frames_of(self, video_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One video's (frame ids, pts, vectors, evidence flags) read back from Milvus, in frame
        order: a search replica with no shared file system aligns on these."""
        rows = self._client.query(
            self.collection,
            filter=f'video_id == "{_quoted(video_id)}"',
            output_fields=["frame_id", "pts_s", "informative", "vector"],
            consistency_level="Strong",
            limit=16384,  # a server's cap on one query: 4.5 hours at 1 frame a second
        )
        rows.sort(key=lambda r: r["frame_id"])
        vectors = np.array([r["vector"] for r in rows], dtype=np.uint8 if self.binary else np.float32)
        return (
            np.array([r["frame_id"] for r in rows], np.int64),
            np.array([r["pts_s"] for r in rows], np.float64),
            vectors.reshape(len(rows), self.dim // 8 if self.binary else self.dim),
            np.array([bool(r["informative"]) for r in rows], bool),
        )

    def shape(self) -> IndexShape:
        return IndexShape(self.kind, len(self), 0, self.main_built_for, 0, self._nprobe)

    def merge_delta(self) -> int:
        return 0  # Milvus seals and indexes its own growing segments

    def rebuild(self, index_type: str, build: dict) -> None:
        """Milvus's own index build, in place: the collection is released, re-indexed and
        loaded again (searches wait meanwhile; the vectors never leave Milvus)."""
        if self.lite and index_type not in LITE_INDEX_TYPES:
            raise FirstSeenError(f"Milvus Lite cannot build {index_type}; it has {', '.join(sorted(LITE_INDEX_TYPES))}")
        from pymilvus import MilvusClient

        params = MilvusClient.prepare_index_params()
        params.add_index("vector", index_type=index_type, metric_type=metric_type(self.metric), params=build)
        self._client.release_collection(self.collection)
        self._client.drop_index(self.collection, "vector")
        self._client.create_index(self.collection, params)
        self._client.load_collection(self.collection)
        self.index_type, self.main_built_for = index_type, len(self)


def _quoted(value: str) -> str:
    if not all(c.isalnum() or c in "-_." for c in value):
        raise BadInputError(f"a video id holds only letters, digits, '-', '_' and '.', got {value!r}")
    return value


class MilvusIndexStore:
    """The index files' counterpart on Milvus: the frames collection, created on first use,
    and a one-row state collection naming the checkpoint a writer last published."""

    def __init__(self, target: MilvusTarget, *, collection: str = FRAMES, client=None):
        self.target, self.collection = target, collection
        self.state = f"{collection}_state"
        self._client = client if client is not None else connect(target)

    def read_manifest(self) -> IndexManifest | None:
        if not self._client.has_collection(self.state):
            return None
        rows = self._client.query(
            self.state, filter=f"id == {_STATE_ROW}", output_fields=["*"], consistency_level="Strong"
        )
        if not rows:
            return None
        row = rows[0]
        return IndexManifest(
            format_version=FORMAT_VERSION, descriptor=row["descriptor"], dim=int(row["dim"]), metric=row["metric"],
            count=int(row["count"]), checkpoint=int(row["checkpoint"]), saved_at=row["saved_at"], delta_file="",
            main_kind=f"milvus-{row['index_type'].lower()}", main_count=int(row["count"]),
            main_built_for=int(row["built_for"]), backend="milvus",
        )  # fmt: skip

    def load(self, descriptor: str, dim: int, metric: str, *, reuse=None) -> tuple[MilvusIndex, int]:
        manifest = self.read_manifest()
        if manifest is not None and (manifest.descriptor, manifest.dim, manifest.metric) != (descriptor, dim, metric):
            raise ArchiveMismatchError(
                f"the Milvus collection {self.collection} at {self.target.uri} holds {manifest.descriptor!r} "
                f"vectors ({manifest.dim}-d, {manifest.metric}); it cannot be opened with {descriptor!r} "
                f"({dim}-d, {metric}). Use the archive's descriptor or another collection."
            )
        index_type = self._ensure_collections(dim, metric)
        index = MilvusIndex(
            self._client, self.collection, descriptor, dim, metric, index_type=index_type, lite=self.target.lite
        )
        index.main_built_for = manifest.main_built_for if manifest else 0
        return index, manifest.checkpoint if manifest else 0

    def _ensure_collections(self, dim: int, metric: str) -> str:
        from pymilvus import DataType

        if metric == "hamming" and self.target.lite:
            index_plan(0, metric, lite=True)  # raises: Milvus Lite has no binary vectors
        if not self._client.has_collection(self.collection):
            schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("frame_id", DataType.INT64, is_primary=True)
            schema.add_field("video_id", DataType.VARCHAR, max_length=64)
            schema.add_field("pts_s", DataType.DOUBLE)
            schema.add_field("informative", DataType.BOOL)
            if metric == "hamming":
                schema.add_field("vector", DataType.BINARY_VECTOR, dim=dim)
            else:
                schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            index_type, build = index_plan(0, metric, lite=self.target.lite)
            params = self._client.prepare_index_params()
            params.add_index("vector", index_type=index_type, metric_type=metric_type(metric), params=build)
            self._client.create_collection(self.collection, schema=schema, index_params=params)
            log.info("created Milvus collection %s (%s) at %s", self.collection, index_type, self.target.uri)
        if not self._client.has_collection(self.state):
            schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            for name in ("descriptor", "metric", "saved_at", "index_type"):
                schema.add_field(name, DataType.VARCHAR, max_length=128)
            for name in ("dim", "count", "checkpoint", "built_for"):
                schema.add_field(name, DataType.INT64)
            schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in each collection
            params = self._client.prepare_index_params()
            params.add_index("unused", index_type="FLAT", metric_type="L2")
            self._client.create_collection(self.state, schema=schema, index_params=params)
        return self.index_type()

    def index_type(self) -> str:
        described = self._client.describe_index(self.collection, "vector") or {}
        return str(described.get("index_type", "FLAT"))

    def save(self, index: MilvusIndex, checkpoint: int) -> IndexManifest:
        """Publish a checkpoint: the frames flushed, then the state row naming it."""
        self._client.flush(self.collection)
        self._client.upsert(
            self.state,
            [
                {
                    "id": _STATE_ROW, "descriptor": index.descriptor, "metric": index.metric,
                    "saved_at": datetime.now(UTC).isoformat(), "index_type": index.index_type,
                    "dim": index.dim, "count": len(index), "checkpoint": checkpoint,
                    "built_for": index.main_built_for, "unused": [0.0, 0.0],
                }
            ],
        )  # fmt: skip
        self._client.flush(self.state)
        manifest = self.read_manifest()
        assert manifest is not None
        return manifest

    def close(self) -> None:
        self._client.close()
