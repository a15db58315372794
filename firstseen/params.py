"""Small frozen parameter objects, built from settings at a use case's entry: functions get only the values they use.

A use case's entry point (run_ingest, Searcher, maintain_index, recheck_archive) turns the
settings into these once; everything below it takes the object it needs, so a caller (a
test, a benchmark, a distributed worker) can pass exactly those values and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from firstseen.settings import Settings


@dataclass(frozen=True, slots=True)
class DecodeParams:
    """How video is decoded wherever frames are sampled."""

    max_side: int = 360  # frames are downscaled while decoding
    threads: int = 0  # 0 lets FFmpeg choose
    max_truncation_s: float = 2.0  # decoded footage may fall short of the declared duration by this much

    @classmethod
    def from_settings(cls, s: Settings) -> DecodeParams:
        return cls(s.decode_max_side, s.decode_threads, s.max_truncation_s)


@dataclass(frozen=True, slots=True)
class QueryParams:
    """How a query clip or still is sampled and described."""

    decode: DecodeParams = DecodeParams()
    fps: float = 4.0
    dense_below_s: float = 3.0  # shorter clips: every frame is described
    max_frames: int = 480  # longer clips are sampled more sparsely to fit
    max_duration_s: float = 3600.0
    image_max_pixels: int = 50_000_000
    batch_size: int = 32

    @classmethod
    def from_settings(cls, s: Settings) -> QueryParams:
        return cls(
            DecodeParams.from_settings(s),
            s.query_fps,
            s.query_dense_below_s,
            s.query_max_frames,
            s.query_max_duration_s,
            s.image_max_pixels,
            s.descriptor_batch_size,
        )


@dataclass(frozen=True, slots=True)
class SearchParams:
    """How many neighbours and candidate videos a search weighs."""

    neighbours: int = 32  # k of the k-NN per query frame
    candidates: int = 20  # videos aligned per query

    @classmethod
    def from_settings(cls, s: Settings) -> SearchParams:
        return cls(s.search_neighbours, s.search_candidates)


@dataclass(frozen=True, slots=True)
class IngestPolicy:
    """How archive footage is sampled, described, kept and checkpointed."""

    decode: DecodeParams = DecodeParams()
    archive_fps: float = 1.0  # frames sampled per footage second
    batch_size: int = 32
    thumbnail_max_side: int = 320  # 0 keeps no thumbnails
    checkpoint_every_s: float = 30.0
    max_attempts: int = 3  # a file failing this often is quarantined

    @classmethod
    def from_settings(cls, s: Settings) -> IngestPolicy:
        return cls(
            DecodeParams.from_settings(s),
            s.archive_fps,
            s.descriptor_batch_size,
            s.thumbnail_max_side,
            s.checkpoint_every_s,
            s.ingest_max_attempts,
        )


@dataclass(frozen=True, slots=True)
class IndexPolicy:
    """When the index is exact, when it becomes an IVF, and when the IVF is retrained."""

    ivf_min_vectors: int = 200_000
    nlist: int = 0  # 0: about 8 sqrt(N), a power of two
    nprobe: int = 0  # 0: what the build chose
    retrain_growth: float = 2.0

    @classmethod
    def from_settings(cls, s: Settings) -> IndexPolicy:
        return cls(s.index_ivf_min_vectors, s.index_nlist, s.index_nprobe, s.index_retrain_growth)
