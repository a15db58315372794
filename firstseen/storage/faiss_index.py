"""FAISS indexes of frame vectors keyed by integer frame ids: exact (flat) or trained IVF, and
the tiered pair the archive searches (a large, rarely rewritten main index plus a small exact
delta that takes every new video)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import BinaryIO

# FAISS's OpenMP workers spin for a while after each search by default, and on two cores they
# spun against the BLAS and SIFT threads of the same query: a 120-frame search of a 5,000-frame
# archive took 45-60 ms in a query and 12 ms alone, 13 ms in a query with passive waiting (README,
# "A 30-second query"). Read once, when FAISS's OpenMP runtime loads; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

METRICS = ("inner_product", "hamming")


@dataclass(frozen=True, slots=True)
class IvfPlan:
    """How an IVF index is shaped for an archive of a given size."""

    nlist: int
    nprobe: int
    training_vectors: int

    @classmethod
    def for_size(cls, n_vectors: int, *, nlist: int = 0, nprobe: int = 0) -> IvfPlan:
        # About 8 sqrt(N) lists as a power of two (1M -> 8192, 10M -> 32768), the middle of
        # FAISS's advice, so that a list is about one video's size: with fewer, a list holds
        # several unrelated videos, its centroid sits far from each, and a heavily edited query
        # misses its own video's other shots (the README's "Index at scale" has the recall).
        # 10 training points a list and 10 k-means rounds keep training in minutes on two
        # cores. The coarse quantizer stays exact: BLAS assigns faster than an HNSW graph on
        # two cores, and finds the true lists.
        n_vectors = max(int(n_vectors), 1)
        if nlist <= 0:
            nlist = 1 << max(4, min(16, round(math.log2(8 * math.sqrt(n_vectors)))))
            while nlist > 1 and nlist > n_vectors // 4:  # a tiny archive: still a power of two
                nlist //= 2
        nlist = max(1, min(nlist, n_vectors // 4 or 1))
        return cls(
            nlist=nlist,
            nprobe=min(nlist, nprobe or DEFAULT_NPROBE),
            training_vectors=min(n_vectors, TRAINING_POINTS_PER_LIST * nlist),
        )


DEFAULT_NPROBE = 16
TRAINING_POINTS_PER_LIST = 10
KMEANS_ROUNDS = 10
# FAISS 1.15 computes float distances with BLAS only from 128,000 queries up and otherwise
# scans vector by vector, three times slower for a clip's frames against a large IVF's
# centroids (README, "Index at scale"). FAISS's own BLAS, not numpy's: numpy's threads fight
# FAISS's. All FAISS use goes through VectorIndex, so setting it here covers it all.
BLAS_MIN_QUERIES = 20


def _batch_distances_through_blas() -> None:
    faiss.cvar.distance_compute_blas_threshold = BLAS_MIN_QUERIES


class VectorIndex:
    """One FAISS index over float (inner product) or packed-binary (Hamming) vectors.

    Scores are similarities, higher is closer: the inner product for float vectors and
    1 - hamming/dim for bits, so callers need not know the metric."""

    def __init__(self, descriptor: str, dim: int, metric: str, faiss_index=None):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}")
        _batch_distances_through_blas()  # a FAISS-wide setting; set where FAISS is first used
        if metric == "hamming" and dim % 8:
            raise ValueError("binary vectors need a dimension that is a multiple of 8")
        self.descriptor, self.dim, self.metric = descriptor, dim, metric
        if faiss_index is None:
            if metric == "hamming":
                faiss_index = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(dim))
            else:
                faiss_index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._index = faiss_index

    @classmethod
    def train_ivf(cls, descriptor: str, dim: int, metric: str, plan: IvfPlan, training: np.ndarray) -> VectorIndex:
        """An empty IVF index whose coarse centroids (and SQ ranges) are learned from training."""
        if metric == "hamming":
            raw = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(dim), dim, plan.nlist)
        else:
            raw = faiss.index_factory(dim, f"IVF{plan.nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
        index = cls(descriptor, dim, metric, raw)
        training = index._check(training)
        if len(training) < plan.nlist:
            raise ValueError(f"{len(training)} training vectors cannot place {plan.nlist} centroids")
        ivf = index._ivf()
        if not index.binary:
            # SQ8 ranges come from the training sample; a margin keeps vectors outside it
            # from being clipped (which would pull even a frame's own score well below 1).
            faiss.downcast_index(raw).sq.rangestat_arg = 0.05
        ivf.cp.niter = KMEANS_ROUNDS
        ivf.cp.min_points_per_centroid = 1  # fewer than FAISS's 39 is deliberate (see IvfPlan)
        raw.train(training)
        index.set_nprobe(plan.nprobe)
        return index

    @property
    def binary(self) -> bool:
        return self.metric == "hamming"

    def _ivf(self):
        if isinstance(self._index, faiss.IndexBinaryIVF):
            return self._index
        if self.binary:
            return None
        return faiss.try_extract_index_ivf(self._index)

    @property
    def kind(self) -> str:
        return "flat" if self._ivf() is None else "ivf"

    @property
    def nlist(self) -> int:
        ivf = self._ivf()
        return 0 if ivf is None else int(ivf.nlist)

    @property
    def nprobe(self) -> int:
        ivf = self._ivf()
        return 0 if ivf is None else int(ivf.nprobe)

    def set_nprobe(self, nprobe: int) -> None:
        ivf = self._ivf()
        if ivf is None or nprobe <= 0:
            return
        ivf.nprobe = min(int(nprobe), int(ivf.nlist))

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
        if len(ids):
            self._index.add_with_ids(vectors, ids)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, ids), each (n, k); missing neighbours have id -1 and score -inf."""
        vectors = self._check(vectors)
        k = max(1, min(k, max(len(self), 1)))
        distances, ids = self._index.search(vectors, k)
        if self.binary:
            scores = 1.0 - distances.astype(np.float32) / self.dim
        else:
            scores = distances.astype(np.float32, copy=False)
        return np.where(ids < 0, -np.inf, scores).astype(np.float32), ids

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0 or len(self) == 0:
            return 0
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        return int(self._index.remove_ids(selector))

    def ids(self) -> np.ndarray:
        ivf = self._ivf()
        if ivf is None:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        lists = ivf.invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(ivf.nlist)
            if lists.list_size(i)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of a flat index, in insertion order: the delta's content for a merge."""
        if self.kind != "flat":
            raise ValueError("only a flat index can hand back its vectors exactly")
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        inner = (
            faiss.downcast_IndexBinary(self._index.index) if self.binary else faiss.downcast_index(self._index.index)
        )
        if self.binary:
            vectors = faiss.vector_to_array(inner.xb).reshape(len(ids), self.dim // 8)
        else:
            vectors = faiss.rev_swig_ptr(inner.get_xb(), len(ids) * self.dim).reshape(len(ids), self.dim).copy()
        return ids, vectors

    def write_to(self, file: BinaryIO) -> None:
        """Stream the index into an open binary file: the bytes serialize() returns, without
        holding them all in memory."""
        writer = faiss.PyCallbackIOWriter(file.write)
        try:
            (faiss.write_index_binary if self.binary else faiss.write_index)(self._index, writer)
        finally:
            del writer  # its last buffer is written when it is destroyed

    def serialize(self) -> np.ndarray:
        if self.binary:
            return faiss.serialize_index_binary(self._index)
        return faiss.serialize_index(self._index)

    @classmethod
    def deserialize(cls, descriptor: str, dim: int, metric: str, data: np.ndarray) -> VectorIndex:
        raw = faiss.deserialize_index_binary(data) if metric == "hamming" else faiss.deserialize_index(data)
        return cls(descriptor, dim, metric, raw)


def merge_results(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of several (scores, ids) result sets over disjoint id sets, best first."""
    if len(parts) == 1:
        return parts[0]
    scores = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


@dataclass(frozen=True, slots=True)
class IndexShape:
    """What an index is, without its vectors: enough to plan maintenance and report health."""

    kind: str
    vectors: int
    delta_vectors: int
    main_built_for: int
    nlist: int
    nprobe: int


class TieredIndex:
    """What the archive searches: an optional main index (flat or trained IVF, rebuilt or
    merged into by maintenance) and an exact delta that takes every new video.

    New videos only touch the delta, so an ingest checkpoint writes a file the size of the
    day's additions, not of the archive; main_file names the saved main while it is
    unchanged, and a removal from the main clears it so the next checkpoint rewrites it."""

    def __init__(
        self,
        descriptor: str,
        dim: int,
        metric: str,
        *,
        main: VectorIndex | None = None,
        delta: VectorIndex | None = None,
        main_file: str | None = None,
        main_built_for: int = 0,
    ):
        self.descriptor, self.dim, self.metric = descriptor, dim, metric
        self.main = main
        self.delta = delta if delta is not None else VectorIndex(descriptor, dim, metric)
        self.main_file = main_file
        self.main_built_for = main_built_for  # archive size the main's IVF was shaped for
        for part in self._parts():
            if (part.descriptor, part.dim, part.metric) != (descriptor, dim, metric):
                raise ValueError("main and delta must hold the same kind of vectors")
            if part is self.delta and part.kind != "flat":
                raise ValueError("the delta is always an exact (flat) index")

    def _parts(self) -> list[VectorIndex]:
        return [p for p in (self.main, self.delta) if p is not None]

    @property
    def binary(self) -> bool:
        return self.metric == "hamming"

    @property
    def kind(self) -> str:
        return self.main.kind if self.main is not None else "flat"

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts())

    def set_nprobe(self, nprobe: int) -> None:
        if self.main is not None:
            self.main.set_nprobe(nprobe)

    def add(
        self,
        ids: np.ndarray,
        vectors: np.ndarray,
        *,
        video_id: str = "",
        pts_s: np.ndarray | None = None,
        informative: np.ndarray | None = None,
    ) -> None:
        """New vectors go to the delta. FAISS keeps ids only (the catalog says which video and
        time each is); video_id, pts_s and informative are for backends that keep them as fields (Milvus)."""
        self.delta.add(ids, vectors)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        parts = [p for p in self._parts() if len(p)] or [self.delta]
        return merge_results([p.search(vectors, k) for p in parts], k)

    def remove(self, ids: np.ndarray) -> int:
        removed = self.delta.remove(ids)
        if self.main is not None:
            from_main = self.main.remove(ids)
            if from_main:
                self.main_file = None
            removed += from_main
        return removed

    def ids(self) -> np.ndarray:
        return np.concatenate([p.ids() for p in self._parts()])

    def shape(self) -> IndexShape:
        main = self.main
        return IndexShape(
            self.kind,
            len(self),
            len(self.delta),
            self.main_built_for,
            main.nlist if main is not None else 0,
            main.nprobe if main is not None else 0,
        )

    def merge_delta(self) -> int:
        """Move the delta's vectors into an IVF main (no retraining); returns how many moved."""
        if self.main is None or self.main.kind != "ivf" or len(self.delta) == 0:
            return 0
        ids, vectors = self.delta.export()
        self.main.add(ids, vectors)
        self.delta = VectorIndex(self.descriptor, self.dim, self.metric)
        self.main_file = None
        return len(ids)
