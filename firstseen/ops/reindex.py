"""Index maintenance: rebuild the main index from the stored raw descriptors (never by decoding
video again) without holding the writer lock, then publish it as one new checkpoint."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from firstseen.archive import Archive, DescriptorSpec, frame_ids, open_archive
from firstseen.errors import BadInputError, FirstSeenError
from firstseen.params import IndexPolicy
from firstseen.settings import Settings
from firstseen.storage.faiss_index import IndexShape, IvfPlan, VectorIndex
from firstseen.storage.milvus_target import index_plan, parse_index_url

log = logging.getLogger(__name__)

KINDS = ("auto", "ivf", "flat")
ProgressFn = Callable[[int, int], None]  # (vectors done, vectors in all)


@dataclass
class MaintenanceReport:
    action: str  # "none", "rebuilt" or "merged"
    reason: str
    kind: str
    vectors: int
    checkpoint: int
    nlist: int = 0
    nprobe: int = 0
    train_s: float = 0.0
    add_s: float = 0.0
    publish_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def plan_maintenance(index: IndexShape, policy: IndexPolicy, kind: str = "auto") -> tuple[str, str]:
    """What the index needs now: ("rebuild" | "merge" | "none", why)."""
    if kind not in KINDS:
        raise BadInputError(f"unknown index kind {kind!r}; expected one of {', '.join(KINDS)}")
    n = index.vectors
    if kind == "flat":
        return "rebuild", "an exact index was asked for"
    if kind == "ivf":
        return "rebuild", "an IVF index was asked for"
    if index.kind != "ivf":
        if n >= policy.ivf_min_vectors:
            return "rebuild", f"{n} vectors reached the IVF threshold of {policy.ivf_min_vectors}"
        return "none", f"{n} vectors: exact search while under {policy.ivf_min_vectors}"
    if n > policy.retrain_growth * max(index.main_built_for, 1):
        return "rebuild", f"{n} vectors outgrew an IVF built for {index.main_built_for}"
    if index.delta_vectors:
        return "merge", f"{index.delta_vectors} new vectors to fold into the IVF"
    return "none", "the IVF is current"


def _training_sample(archive: Archive, records, n_wanted: int, rng: np.random.Generator) -> np.ndarray:
    """An even share of frames from every video. Centroids learned from a few whole videos
    would sit on those videos only: SSCD spreads unrelated footage almost uniformly, so the
    other videos' frames and their edited copies would then land in lists at random, and
    bench_scale.py measured recall falling from 0.94 to 0.53 that way at 1M vectors."""
    per_video = max(1, -(-2 * n_wanted // max(len(records), 1)))
    chunks = []
    for record in records:
        stored = archive.raw_vectors(record.video_id)
        if stored is None:
            continue
        take = rng.choice(len(stored), size=min(per_video, len(stored)), replace=False)
        chunks.append(stored.vectors[np.sort(take)])
    if not chunks:
        raise FirstSeenError("no raw vectors to train on")
    sample = np.concatenate(chunks)
    keep = np.sort(rng.choice(len(sample), size=min(n_wanted, len(sample)), replace=False))
    return sample[keep] if archive.binary else sample[keep].astype(np.float32)


def build_main(
    archive: Archive,
    kind: str,
    policy: IndexPolicy,
    progress: ProgressFn | None = None,
) -> tuple[VectorIndex, dict[str, tuple[int, int]], IvfPlan | None, float, float]:
    """Build a main index over every committed video, read from raw storage through a reader.

    Returns (index, covered videos, plan, train seconds, add seconds)."""
    spec = archive.spec
    records = archive.videos("committed")
    total = sum(r.frame_count for r in records)
    plan = None
    train_s = 0.0
    if kind == "ivf":
        plan = IvfPlan.for_size(total, nlist=policy.nlist, nprobe=policy.nprobe)
        started = time.perf_counter()
        sample = _training_sample(archive, records, plan.training_vectors, np.random.default_rng(0))
        if len(sample) < plan.nlist:
            raise BadInputError(
                f"{len(sample)} vectors are too few for an IVF of {plan.nlist} lists; "
                "use the exact index until the archive grows"
            )
        main = VectorIndex.train_ivf(spec.name, spec.dim, spec.metric, plan, sample)
        train_s = time.perf_counter() - started
    else:
        main = VectorIndex(spec.name, spec.dim, spec.metric)
    started = time.perf_counter()
    covered: dict[str, tuple[int, int]] = {}
    done = 0
    for record in records:
        stored = archive.raw_vectors(record.video_id)
        if stored is None:  # removed while we read; publishing reconciles
            continue
        if len(stored) != record.frame_count:
            raise FirstSeenError(
                f"raw vectors of video {record.video_id} hold {len(stored)} frames, "
                f"the catalog says {record.frame_count}"
            )
        main.add(frame_ids(record), stored.vectors if main.binary else stored.vectors.astype(np.float32))
        covered[record.video_id] = (record.first_frame_id, record.frame_count)
        done += record.frame_count
        if progress:
            progress(done, total)
    return main, covered, plan, train_s, time.perf_counter() - started


def _publisher(settings: Settings, spec: DescriptorSpec | None, policy: IndexPolicy) -> Archive:
    """The archive opened to publish: the writer's lock, waited for up to FIRSTSEEN_LOCK_WAIT_S."""
    return open_archive(
        settings.data_dir,
        settings.resolved_catalog_url(),
        spec,
        writable=True,
        nprobe=policy.nprobe,
        lock_wait_s=settings.lock_wait_s,
        index_url=settings.index_url,
    )


def _maintain_in_milvus(
    settings: Settings, kind: str, spec: DescriptorSpec | None, lite: bool, policy: IndexPolicy
) -> MaintenanceReport:
    """On Milvus a reindex is Milvus's own index build, chosen by the archive's size
    (milvus_index.index_plan), under the writer's lock like every publish."""
    if kind not in KINDS:
        raise BadInputError(f"unknown index kind {kind!r}; expected one of {', '.join(KINDS)}")
    started = time.perf_counter()
    with _publisher(settings, spec, policy) as archive:
        shape = archive.index_shape()
        floor = {"flat": 2**62, "ivf": 0}.get(kind, policy.ivf_min_vectors)
        index_type, build = index_plan(shape.vectors, archive.metric, lite=lite, exact_below=floor)
        if shape.kind == f"milvus-{index_type.lower()}" and kind == "auto":
            return MaintenanceReport("none", f"{shape.vectors} vectors: {index_type} is current", shape.kind,
                                     shape.vectors, archive.checkpoint)  # fmt: skip
        log.info("Milvus builds %s over %d vectors", index_type, shape.vectors)
        checkpoint = archive.rebuild_in_engine(index_type, build)
        shape = archive.index_shape()
        return MaintenanceReport(
            "rebuilt",
            f"{shape.vectors} vectors: Milvus built {index_type}",
            shape.kind,
            shape.vectors,
            checkpoint,
            nlist=int(build.get("nlist", 0)),
            publish_s=round(time.perf_counter() - started, 3),
        )


def maintain_index(
    settings: Settings, kind: str = "auto", *, spec: DescriptorSpec | None = None, progress: ProgressFn | None = None
) -> MaintenanceReport:
    """Bring the index to the shape the archive's size calls for (or to kind, when forced).

    A rebuild reads a snapshot as a reader, so ingest and search go on meanwhile; only the
    publish step takes the writer lock (waiting up to FIRSTSEEN_LOCK_WAIT_S for a run)."""
    data_dir, url = Path(settings.data_dir), settings.resolved_catalog_url()
    policy = IndexPolicy.from_settings(settings)
    milvus = parse_index_url(settings.index_url)
    if milvus is not None:
        return _maintain_in_milvus(settings, kind, spec, milvus.lite, policy)
    with open_archive(data_dir, url, spec, nprobe=policy.nprobe, index_url=settings.index_url) as reader:
        shape = reader.index_shape()
        action, reason = plan_maintenance(shape, policy, kind)
        if action == "none":
            return MaintenanceReport("none", reason, shape.kind, shape.vectors, reader.checkpoint)
        if action == "rebuild":
            target = "flat" if kind == "flat" or (kind == "auto" and shape.vectors < policy.ivf_min_vectors) else "ivf"
            log.info("rebuilding the index as %s: %s", target, reason)
            main, covered, plan, train_s, add_s = build_main(reader, target, policy, progress)
        spec = reader.spec
    started = time.perf_counter()
    with _publisher(settings, spec, policy) as archive:
        if action == "merge":
            moved = archive.merge_delta()
            log.info("merged %d delta vectors into the IVF", moved)
            shape = archive.index_shape()
            return MaintenanceReport(
                "merged",
                reason,
                shape.kind,
                shape.vectors,
                archive.checkpoint,
                nlist=shape.nlist,
                nprobe=shape.nprobe,
                publish_s=round(time.perf_counter() - started, 3),
            )
        built_for = sum(count for _, count in covered.values())
        checkpoint = archive.adopt_main(main, covered, built_for if plan else 0)
        shape = archive.index_shape()
        return MaintenanceReport(
            "rebuilt",
            reason,
            shape.kind,
            shape.vectors,
            checkpoint,
            nlist=main.nlist,
            nprobe=main.nprobe,
            train_s=round(train_s, 3),
            add_s=round(add_s, 3),
            publish_s=round(time.perf_counter() - started, 3),
        )
