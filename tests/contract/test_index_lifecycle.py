"""The index lifecycle: trained IVF mains, the tiered main + delta pair, checkpoints that rewrite
the main only when it changed, and maintenance (rebuild / merge) of a live archive."""

from __future__ import annotations

import io
import json

import faiss
import numpy as np
import pytest

from firstseen.archive import Archive, DescriptorSpec, open_archive
from firstseen.errors import ArchiveLockedError, BadInputError
from firstseen.ops.reindex import build_main, maintain_index, plan_maintenance
from firstseen.params import IndexPolicy
from firstseen.records import FrameVectors, VideoInfo, VideoMetadata
from firstseen.settings import get_settings
from firstseen.storage.faiss_index import DEFAULT_NPROBE, IvfPlan, TieredIndex, VectorIndex, merge_results
from firstseen.storage.index_store import MANIFEST_NAME, IndexStore, MemoryIndexStore

FLOAT_DIM, BITS = 64, 256
NLIST = 32  # above the default nprobe (16), so "the build's nprobe" differs from "all lists"


@pytest.fixture(autouse=True, scope="module")
def _one_faiss_thread():
    """On a shared two-core machine FAISS's OpenMP threads spin against each other (3-5x slower)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


# ---- synthetic data ----------------------------------------------------------------------------
def _float_vectors(n: int, seed: int, clusters: int = 20) -> np.ndarray:
    """Unit vectors in loose clusters: members of a cluster are alike (cos ~0.5), never equal."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, FLOAT_DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    v = centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, FLOAT_DIM)) / np.sqrt(FLOAT_DIM)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _binary_vectors(n: int, seed: int, clusters: int = 20) -> np.ndarray:
    """256-bit codes: cluster centres with 20% of the bits flipped (~80 bits between members)."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2, (clusters, BITS), dtype=np.uint8)
    flips = (rng.random((n, BITS)) < 0.2).astype(np.uint8)
    return np.packbits(centres[rng.integers(0, clusters, n)] ^ flips, axis=1)


CASES = {
    "float": ("inner_product", FLOAT_DIM),
    "binary": ("hamming", BITS),
}


def _data(metric: str, n: int, seed: int = 0) -> np.ndarray:
    return _binary_vectors(n, seed) if metric == "hamming" else _float_vectors(n, seed)


def _ids(n: int, seed: int = 1) -> np.ndarray:
    """Unique, non-contiguous, unordered ids."""
    return np.random.default_rng(seed).choice(10_000_000, size=n, replace=False).astype(np.int64) * 3 + 11


def _ivf(metric: str, dim: int, training: np.ndarray, *, nprobe: int = NLIST) -> VectorIndex:
    plan = IvfPlan(nlist=NLIST, nprobe=nprobe, training_vectors=len(training))
    return VectorIndex.train_ivf("toy", dim, metric, plan, training)


# ---- 1. IVF VectorIndex ------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(CASES))
def test_ivf_finds_every_vector_removes_and_round_trips(case):
    metric, dim = CASES[case]
    vectors, ids = _data(metric, 2000), _ids(2000)
    index = _ivf(metric, dim, vectors[::5])
    assert (index.kind, index.nlist, index.nprobe, len(index)) == ("ivf", NLIST, NLIST, 0)
    index.add(ids, vectors)
    assert len(index) == 2000

    scores, found = index.search(vectors, k=3)
    np.testing.assert_array_equal(found[:, 0], ids, err_msg="own id at rank 1 when nprobe == nlist")
    assert np.all(np.diff(scores, axis=1) <= 1e-5), "best first"
    if metric == "hamming":
        np.testing.assert_allclose(scores[:, 0], 1.0)
    np.testing.assert_array_equal(np.sort(index.ids()), np.sort(ids))

    gone = ids[::7]
    assert index.remove(gone) == len(gone)
    assert index.remove(gone) == 0, "removing twice removes nothing"
    assert len(index) == 2000 - len(gone)
    _, found = index.search(vectors, k=5)
    assert not np.isin(found, gone).any()
    kept = ~np.isin(ids, gone)
    np.testing.assert_array_equal(found[kept, 0], ids[kept])
    np.testing.assert_array_equal(np.sort(index.ids()), np.sort(ids[kept]))

    index.set_nprobe(5)
    streamed = io.BytesIO()
    index.write_to(streamed)
    assert streamed.getvalue() == index.serialize().tobytes(), "streaming writes what serialize returns"
    copy = VectorIndex.deserialize("toy", dim, metric, index.serialize())
    assert (copy.kind, copy.nlist, copy.nprobe, len(copy)) == ("ivf", NLIST, 5, len(index))
    for a, b in zip(index.search(vectors[:300], k=4), copy.search(vectors[:300], k=4)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.sort(copy.ids()), np.sort(ids[kept]))


def test_batches_of_query_frames_go_through_blas():
    """A clip's frames (tens to hundreds) must be scored by one BLAS product, not one by one:
    the difference between 67 ms and 222 ms at 10M vectors."""
    faiss.cvar.distance_compute_blas_threshold = 128_000  # FAISS 1.15's own default
    VectorIndex("toy", FLOAT_DIM, "inner_product")
    assert faiss.cvar.distance_compute_blas_threshold <= 120


def test_set_nprobe_clamps():
    vectors = _data("inner_product", 400)
    index = _ivf("inner_product", FLOAT_DIM, vectors, nprobe=4)
    assert isinstance(faiss.downcast_index(index._ivf().quantizer), faiss.IndexFlat), "exact coarse quantizer"
    assert index.nprobe == 4
    index.set_nprobe(10_000)
    assert index.nprobe == NLIST, "never more lists than there are"
    index.set_nprobe(0)
    assert index.nprobe == NLIST, "0 keeps the current value"
    flat = VectorIndex("toy", FLOAT_DIM, "inner_product")
    flat.set_nprobe(8)
    assert (flat.kind, flat.nlist, flat.nprobe) == ("flat", 0, 0)


def test_ivf_training_needs_enough_vectors_and_export_is_flat_only():
    vectors = _data("inner_product", 10)
    with pytest.raises(ValueError, match="training"):
        _ivf("inner_product", FLOAT_DIM, vectors)
    index = _ivf("inner_product", FLOAT_DIM, _data("inner_product", 64))
    with pytest.raises(ValueError, match="flat"):
        index.export()


@pytest.mark.parametrize("metric", ["inner_product", "hamming"])
def test_export_returns_a_flat_index_content_after_removals(metric):
    dim = BITS if metric == "hamming" else FLOAT_DIM
    vectors, ids = _data(metric, 50), _ids(50)
    flat = VectorIndex("toy", dim, metric)
    flat.add(ids, vectors)
    flat.remove(ids[10:20])
    got_ids, got_vectors = flat.export()
    want = {int(i): v for i, v in zip(ids, vectors) if i not in set(ids[10:20].tolist())}
    assert sorted(got_ids.tolist()) == sorted(want)
    for i, v in zip(got_ids.tolist(), got_vectors):
        np.testing.assert_array_equal(v, want[i])


# ---- 2. IvfPlan.for_size -----------------------------------------------------------------------
SIZES = [64, 100, 500, 1_000, 5_000, 20_000, 100_000, 1_000_000, 4_000_000, 10_000_000, 100_000_000, 10**10]


def test_ivf_plan_for_size():
    previous = 0
    for n in SIZES:
        plan = IvfPlan.for_size(n)
        assert plan.nlist & (plan.nlist - 1) == 0, f"nlist {plan.nlist} for {n} is not a power of two"
        assert plan.nlist >= previous, "nlist grows with N"
        assert 1 <= plan.nlist <= n // 4
        assert plan.training_vectors <= n and plan.training_vectors >= plan.nlist
        assert 1 <= plan.nprobe <= plan.nlist
        previous = plan.nlist
    assert IvfPlan.for_size(1_000_000).nlist == 8192
    assert IvfPlan.for_size(10_000_000).nlist == 32768
    assert IvfPlan.for_size(10_000_000).nprobe == 16
    for n in range(1, 64):  # tiny archives: clamped to N // 4 (not necessarily a power of two)
        plan = IvfPlan.for_size(n)
        assert 1 <= plan.nlist <= max(1, n // 4) and plan.training_vectors <= n
    forced = IvfPlan.for_size(100, nlist=64, nprobe=100)
    assert forced.nlist == 25 and forced.nprobe == 25 and forced.training_vectors <= 100


# ---- 3. TieredIndex ----------------------------------------------------------------------------
def _tiered_pair(metric: str, dim: int, n: int = 2000):
    vectors, ids = _data(metric, n), _ids(n)
    half = n // 2
    main = _ivf(metric, dim, vectors[:half:2])
    main.add(ids[:half], vectors[:half])
    tiered = TieredIndex("toy", dim, metric, main=main, main_file="main-00000001.faiss", main_built_for=half)
    tiered.add(ids[half:], vectors[half:])
    flat = VectorIndex("toy", dim, metric)
    flat.add(ids, vectors)
    return tiered, flat, vectors, ids


def _queries(metric: str, vectors: np.ndarray, seed: int = 5) -> np.ndarray:
    """The vectors themselves, slightly disturbed: each still has one clear nearest neighbour."""
    rng = np.random.default_rng(seed)
    if metric == "hamming":
        bits = np.unpackbits(vectors, axis=1)
        return np.packbits(bits ^ (rng.random(bits.shape) < 0.03).astype(np.uint8), axis=1)
    q = vectors + 0.1 * rng.standard_normal(vectors.shape).astype(np.float32) / np.sqrt(vectors.shape[1])
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("metric", ["inner_product", "hamming"])
def test_tiered_search_matches_one_flat_index(metric):
    dim = BITS if metric == "hamming" else FLOAT_DIM
    tiered, flat, vectors, ids = _tiered_pair(metric, dim)
    assert (tiered.kind, len(tiered), len(tiered.main), len(tiered.delta)) == ("ivf", 2000, 1000, 1000)
    assert tiered.delta.kind == "flat"
    np.testing.assert_array_equal(np.sort(tiered.ids()), np.sort(ids))
    queries = np.concatenate([vectors, _queries(metric, vectors)])
    scores, found = tiered.search(queries, k=10)
    assert found.shape == (len(queries), 10)
    np.testing.assert_array_equal(found[:, 0], flat.search(queries, k=1)[1][:, 0])
    assert np.all(np.diff(scores, axis=1) <= 1e-5), "merged scores are best first"
    assert np.isin(found, ids).all(), "every one of 10 slots holds a real id when 2000 are indexed"
    assert len(np.unique(found[0])) == 10


def test_merge_results_never_ranks_a_missing_neighbour_above_a_real_one():
    inf = -np.inf
    main = (np.array([[0.9, inf, inf], [inf, inf, inf]], np.float32), np.array([[5, -1, -1], [-1, -1, -1]]))
    delta = (np.array([[0.95, 0.1], [0.2, -0.5]], np.float32), np.array([[7, 8], [9, 10]]))
    scores, ids = merge_results([main, delta], k=3)
    np.testing.assert_array_equal(ids, [[7, 5, 8], [9, 10, -1]])
    np.testing.assert_allclose(scores, [[0.95, 0.9, 0.1], [0.2, -0.5, inf]])


def test_tiered_search_with_few_lists_probed_pads_after_real_ids():
    metric = "inner_product"
    tiered, _, vectors, ids = _tiered_pair(metric, FLOAT_DIM, n=400)
    tiered.set_nprobe(1)
    assert tiered.main.nprobe == 1
    scores, found = tiered.search(vectors[:50], k=300)  # more than one probed list holds
    for row_scores, row_ids in zip(scores, found):
        real = row_ids >= 0
        assert np.all(np.diff(real.astype(int)) <= 0), "-1 ids only after every real one"
        assert np.all(np.isneginf(row_scores[~real]))
        assert np.all(np.diff(row_scores[real]) <= 1e-5)
    assert (found[:, 0] == ids[:50]).all()


def test_tiered_remove_clears_main_file_only_when_the_main_changed():
    tiered, _, vectors, ids = _tiered_pair("inner_product", FLOAT_DIM, n=400)
    assert tiered.remove(ids[300:310]) == 10  # delta only
    assert tiered.main_file == "main-00000001.faiss"
    assert tiered.remove(np.array([123456789], np.int64)) == 0
    assert tiered.main_file == "main-00000001.faiss"
    assert tiered.remove(ids[[0, 1, 350]]) == 3  # main and delta
    assert tiered.main_file is None
    assert len(tiered) == 400 - 13
    _, found = tiered.search(vectors[[0, 1, 350, 300]], k=5)
    assert not np.isin(found, ids[[0, 1, 350, 300]]).any()


@pytest.mark.parametrize("case", list(CASES))
def test_merge_delta_moves_everything_into_the_ivf(case):
    metric, dim = CASES[case]
    tiered, flat, vectors, ids = _tiered_pair(metric, dim)
    queries = _queries(metric, vectors)
    before = tiered.search(queries, k=1)[1]
    assert tiered.merge_delta() == 1000
    assert (len(tiered), len(tiered.main), len(tiered.delta)) == (2000, 2000, 0)
    assert tiered.main_file is None and tiered.main_built_for == 1000
    assert tiered.merge_delta() == 0, "nothing left to move"
    np.testing.assert_array_equal(np.sort(tiered.main.ids()), np.sort(ids))
    np.testing.assert_array_equal(tiered.search(queries, k=1)[1], before)
    np.testing.assert_array_equal(tiered.search(vectors, k=1)[1][:, 0], ids)


def test_merge_delta_leaves_a_flat_main_alone():
    vectors, ids = _data("inner_product", 40), _ids(40)
    main = VectorIndex("toy", FLOAT_DIM, "inner_product")
    main.add(ids[:20], vectors[:20])
    tiered = TieredIndex("toy", FLOAT_DIM, "inner_product", main=main, main_file="m")
    tiered.add(ids[20:], vectors[20:])
    assert tiered.merge_delta() == 0
    assert (len(tiered.main), len(tiered.delta), tiered.main_file) == (20, 20, "m")
    with pytest.raises(ValueError):
        TieredIndex(
            "toy",
            FLOAT_DIM,
            "inner_product",
            delta=VectorIndex.train_ivf("toy", FLOAT_DIM, "inner_product", IvfPlan(4, 4, 40), vectors),
        )
    with pytest.raises(ValueError):
        TieredIndex("other", FLOAT_DIM, "inner_product", main=main)


# ---- 4. IndexStore -----------------------------------------------------------------------------
def _faiss_files(folder) -> list[str]:
    return sorted(p.name for p in folder.glob("*.faiss"))


def test_store_writes_the_main_only_when_it_changed(tmp_path):
    store = IndexStore(tmp_path)
    metric = "inner_product"
    vectors, ids = _data(metric, 900), _ids(900)
    main = _ivf(metric, FLOAT_DIM, vectors[:400])
    main.add(ids[:400], vectors[:400])
    tiered = TieredIndex("toy", FLOAT_DIM, metric, main=main, main_built_for=400)  # main_file None: new
    reader, _ = store.load("toy", FLOAT_DIM, metric)
    assert reader.main is None and len(reader) == 0

    for checkpoint in (1, 2, 3, 4):
        batch = slice(300 + 100 * checkpoint, 400 + 100 * checkpoint)
        tiered.add(ids[batch], vectors[batch])
        manifest = store.save(tiered, checkpoint)
        assert tiered.main_file == "main-00000001.faiss" == manifest.main_file
        assert manifest.kind == "ivf" and manifest.main_count == 400 and manifest.main_built_for == 400
        if checkpoint == 2:
            first_reader, _ = store.load("toy", FLOAT_DIM, metric)
    assert _faiss_files(tmp_path) == ["delta-00000003.faiss", "delta-00000004.faiss", "main-00000001.faiss"]
    on_disk = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert on_disk["format_version"] == 2 and on_disk["count"] == 800 and on_disk["main_file"] == "main-00000001.faiss"

    loaded, checkpoint = store.load("toy", FLOAT_DIM, metric, reuse=first_reader)
    assert checkpoint == 4 and len(loaded) == 800 and len(loaded.delta) == 400
    assert loaded.main is first_reader.main, "an unchanged main is shared, not read again"
    assert (loaded.kind, loaded.main_file, loaded.main_built_for) == ("ivf", "main-00000001.faiss", 400)
    fresh, _ = store.load("toy", FLOAT_DIM, metric)
    assert fresh.main is not first_reader.main
    for a, b in zip(loaded.search(vectors[:800], 3), fresh.search(vectors[:800], 3)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fresh.search(vectors[:800], 1)[1][:, 0], ids[:800])

    tiered.remove(ids[:5])  # from the main
    assert tiered.main_file is None
    manifest = store.save(tiered, 5)
    assert manifest.main_file == "main-00000005.faiss" == tiered.main_file and manifest.main_count == 395
    assert _faiss_files(tmp_path) == [
        "delta-00000004.faiss",
        "delta-00000005.faiss",
        "main-00000001.faiss",
        "main-00000005.faiss",
    ], "the previous main is kept one save more"
    changed, _ = store.load("toy", FLOAT_DIM, metric, reuse=loaded)
    assert changed.main is not loaded.main and len(changed.main) == 395
    assert len(loaded.main) == 400, "the reader's old main was not changed under it"
    assert not np.isin(changed.search(vectors[:5], 3)[1], ids[:5]).any()

    store.save(tiered, 6)
    assert _faiss_files(tmp_path) == ["delta-00000005.faiss", "delta-00000006.faiss", "main-00000005.faiss"]
    again, _ = store.load("toy", FLOAT_DIM, metric, reuse=changed)
    assert again.main is changed.main

    tiered.main = None  # back to exact search only (e.g. a flat rebuild folded everything into the delta)
    tiered.main_file = "stale"
    manifest = store.save(tiered, 7)
    assert manifest.main_file is None and manifest.kind == "flat" and tiered.main_file is None
    store.save(tiered, 8)
    assert _faiss_files(tmp_path) == ["delta-00000007.faiss", "delta-00000008.faiss"]
    flat_only, _ = store.load("toy", FLOAT_DIM, metric, reuse=again)
    assert flat_only.main is None and flat_only.kind == "flat" and len(flat_only) == len(tiered.delta)


@pytest.mark.parametrize("metric", ["inner_product", "hamming"])
def test_a_format_1_manifest_still_loads_as_the_delta(tmp_path, metric):
    dim = BITS if metric == "hamming" else FLOAT_DIM
    vectors, ids = _data(metric, 60), _ids(60)
    old = VectorIndex("toy", dim, metric)  # what version 1 saved: one flat IDMap2 file
    old.add(ids, vectors)
    old.serialize().tofile(tmp_path / "index-00000003.faiss")
    (tmp_path / MANIFEST_NAME).write_text(
        json.dumps(
            {
                "format_version": 1,
                "descriptor": "toy",
                "dim": dim,
                "metric": metric,
                "count": 60,
                "checkpoint": 3,
                "index_file": "index-00000003.faiss",
                "saved_at": "2024-01-01T00:00:00+00:00",
            }
        )
    )
    store = IndexStore(tmp_path)
    manifest = store.read_manifest()
    assert manifest.files == ["index-00000003.faiss"] and manifest.kind == "flat"
    loaded, checkpoint = store.load("toy", dim, metric)
    assert checkpoint == 3 and loaded.main is None and len(loaded.delta) == 60 and loaded.kind == "flat"
    np.testing.assert_array_equal(loaded.search(vectors, 1)[1][:, 0], ids)

    store.save(loaded, 4)
    assert json.loads((tmp_path / MANIFEST_NAME).read_text())["format_version"] == 2
    assert _faiss_files(tmp_path) == ["delta-00000004.faiss", "index-00000003.faiss"]
    store.save(loaded, 5)
    assert _faiss_files(tmp_path) == ["delta-00000004.faiss", "delta-00000005.faiss"]
    reloaded, checkpoint = store.load("toy", dim, metric)
    assert checkpoint == 5 and len(reloaded) == 60


def test_memory_store_names_mains_like_the_disk_store():
    store = MemoryIndexStore()
    vectors, ids = _data("hamming", 600), _ids(600)
    main = _ivf("hamming", BITS, vectors[:300])
    main.add(ids[:300], vectors[:300])
    tiered = TieredIndex("toy", BITS, "hamming", main=main, main_built_for=300)
    tiered.add(ids[300:], vectors[300:])
    assert store.save(tiered, 1).main_file == "main-00000001"
    assert store.save(tiered, 2).main_file == "main-00000001"
    loaded, checkpoint = store.load("toy", BITS, "hamming")
    assert checkpoint == 2 and loaded.kind == "ivf" and loaded.main_file == "main-00000001"
    assert loaded.main_built_for == 300 and loaded.main.nprobe == NLIST
    np.testing.assert_array_equal(loaded.search(vectors, 1)[1][:, 0], ids)
    tiered.remove(ids[:3])
    assert store.save(tiered, 3).main_file == "main-00000003"
    assert len(store.load("toy", BITS, "hamming")[0].main) == 297


# ---- 5-7. the archive and maintenance ------------------------------------------------------------
SPECS = {
    "inner_product": DescriptorSpec("toy64", FLOAT_DIM, "inner_product", "toy64/1"),
    "hamming": DescriptorSpec("toybits", BITS, "hamming", "toybits/1"),
}
INFO = VideoInfo(duration_s=100.0, width=160, height=120, codec="h264", avg_fps=25.0, rotation=0, container="mp4")
FRAMES = 100


def _video(n: int, spec: DescriptorSpec) -> FrameVectors:
    """A video's frames: one scene (its own centre) with frame-to-frame variation."""
    rng = np.random.default_rng(1000 + n)
    pts = np.arange(FRAMES, dtype=np.float64)
    if spec.metric == "hamming":
        centre = rng.integers(0, 2, BITS, dtype=np.uint8)
        flips = (rng.random((FRAMES, BITS)) < 0.2).astype(np.uint8)
        return FrameVectors(spec.name, pts, np.packbits(centre ^ flips, axis=1))
    centre = rng.standard_normal(FLOAT_DIM)
    centre /= np.linalg.norm(centre)
    v = centre + rng.standard_normal((FRAMES, FLOAT_DIM)) / np.sqrt(FLOAT_DIM)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return FrameVectors(spec.name, pts, v.astype(np.float32))


def _stage(archive: Archive, *numbers: int) -> None:
    for n in numbers:
        archive.stage(
            VideoMetadata(path=f"/videos/{n}.mp4"),
            video_id=f"vid{n:04d}",
            sha256=f"{n:064x}",
            info=INFO,
            frames=_video(n, archive.spec),
        )


@pytest.fixture(params=list(SPECS))
def env(request, tmp_path):
    """An on-disk archive of 20 committed videos of 100 frames (2000 vectors, exact index)."""
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'catalog.sqlite'}"
    settings = get_settings(
        data_dir=data,
        catalog_url=url,
        index_nlist=NLIST,
        index_ivf_min_vectors=1000,
        index_nprobe=0,
        index_retrain_growth=2.0,
        lock_wait_s=0,
    )
    spec = SPECS[request.param]

    class Env:
        def writer(self) -> Archive:
            return open_archive(data, url, spec, writable=True)

        def reader(self) -> Archive:
            return open_archive(data, url)

    e = Env()
    e.data, e.url, e.settings, e.spec = data, url, settings, spec
    with e.writer() as archive:
        _stage(archive, *range(20))
        archive.commit()
    return e


def _frame_range(archive: Archive, n: int) -> np.ndarray:
    record = archive.video(f"vid{n:04d}")
    return np.arange(record.first_frame_id, record.first_frame_id + record.frame_count)


def _assert_found(archive: Archive, numbers) -> None:
    """Each video's first frame finds exactly that frame first."""
    numbers = list(numbers)
    hits = archive.search_frames(np.stack([_video(n, archive.spec).vectors[0] for n in numbers]), k=3)
    for n, row in zip(numbers, hits):
        record = archive.video(f"vid{n:04d}")
        assert row and (row[0].video_id, row[0].frame_id) == (record.video_id, record.first_frame_id), n
        # SQ8 codes clip components outside the ranges seen in the (small) training sample,
        # so an IVF's self-similarity can fall well below 1 (0.84 seen); the rank must not.
        assert 0.8 <= row[0].score <= 1.02


def test_maintenance_rebuilds_removes_merges_and_retrains(env):
    with env.reader() as reader:
        assert reader._index.kind == "flat" and len(reader._index) == 2000
        small = env.settings.model_copy(update={"index_ivf_min_vectors": 5000})
        assert plan_maintenance(reader.index_shape(), IndexPolicy.from_settings(small))[0] == "none"
        assert plan_maintenance(reader.index_shape(), IndexPolicy.from_settings(env.settings))[0] == "rebuild"
        assert plan_maintenance(reader.index_shape(), IndexPolicy.from_settings(env.settings), "ivf")[0] == "rebuild"

    with pytest.raises(BadInputError):
        plan_maintenance(TieredIndex("toy", FLOAT_DIM, "inner_product").shape(), env.settings, "hnsw")
    with env.writer():  # an ingest holds the lock: the build runs, publishing gives up (lock_wait_s=0)
        with pytest.raises(ArchiveLockedError):
            maintain_index(env.settings, kind="ivf", spec=env.spec)
    with env.reader() as reader:
        assert reader._index.kind == "flat" and reader.checkpoint == 1

    report = maintain_index(env.settings, kind="ivf", spec=env.spec)
    assert (report.action, report.kind, report.vectors, report.nlist) == ("rebuilt", "ivf", 2000, NLIST)
    assert report.nprobe == DEFAULT_NPROBE  # the plan's default
    with env.reader() as reader:
        assert reader._index.kind == "ivf" and len(reader._index.main) == 2000 and len(reader._index.delta) == 0
        assert reader._index.main_built_for == 2000 and reader.checkpoint == report.checkpoint
        _assert_found(reader, range(20))
        assert plan_maintenance(reader.index_shape(), IndexPolicy.from_settings(env.settings))[0] == "none"
    with env.writer() as writer:
        assert writer.verify() == []
        removed = _frame_range(writer, 4)
        writer.remove("vid0004")
        assert not np.isin(writer._index.main.ids(), removed).any()
        assert len(writer._index.main) == 1900 and writer.verify() == []
    with env.writer() as writer:
        assert writer.verify() == [] and not np.isin(writer._index.ids(), removed).any()
        _stage(writer, 20, 21, 22)
        writer.commit()
        assert (len(writer._index.main), len(writer._index.delta)) == (1900, 300)
        assert writer._index.main_file is not None, "new videos leave the main file as it was"

    with env.reader() as reader:
        assert plan_maintenance(reader.index_shape(), IndexPolicy.from_settings(env.settings))[0] == "merge"
        _assert_found(reader, [0, 1, 20, 21, 22])
    report = maintain_index(env.settings, spec=env.spec)
    assert (report.action, report.kind, report.vectors) == ("merged", "ivf", 2200)
    with env.reader() as reader:
        assert (len(reader._index.main), len(reader._index.delta)) == (2200, 0)
        assert reader._index.main_built_for == 2000
        _assert_found(reader, [0, 3, 5, 19, 20, 21, 22])
        assert plan_maintenance(reader.index_shape(), IndexPolicy.from_settings(env.settings)) == (
            "none",
            "the IVF is current",
        )
        eager = env.settings.model_copy(update={"index_retrain_growth": 1.05})
        assert plan_maintenance(reader.index_shape(), IndexPolicy.from_settings(eager))[0] == "rebuild", (
            "2200 > 1.05 * 2000"
        )
    assert maintain_index(env.settings, spec=env.spec).action == "none"
    with env.writer() as writer:
        assert writer.verify() == []

    report = maintain_index(eager, spec=env.spec)
    assert (report.action, report.kind, report.vectors) == ("rebuilt", "ivf", 2200)
    with env.writer() as writer:
        assert writer._index.main_built_for == 2200 and writer.verify() == []
        _assert_found(writer, [0, 22])
    assert len(list((env.data / "index").glob("main-*.faiss"))) <= 2

    report = maintain_index(env.settings, kind="flat", spec=env.spec)
    assert (report.action, report.kind, report.vectors, report.nlist) == ("rebuilt", "flat", 2200, 0)
    with env.writer() as writer:
        index = writer._index
        assert (index.main.kind, len(index.main), len(index.delta), index.main_built_for) == ("flat", 2200, 0, 0)
        assert writer.verify() == []
        _assert_found(writer, [0, 22])
        assert plan_maintenance(index.shape(), IndexPolicy.from_settings(env.settings))[0] == "rebuild", (
            "a flat main over the IVF threshold"
        )


def test_a_rebuild_publishes_correctly_when_the_archive_moved_on(env):
    with env.reader() as reader:
        main, covered, plan, _, _ = build_main(reader, "ivf", IndexPolicy.from_settings(env.settings))
        assert plan.nlist == NLIST and len(main) == 2000 and len(covered) == 20
        built_for = sum(count for _, count in covered.values())
        with env.writer() as writer:  # ingest and a takedown while the build was running
            removed = _frame_range(writer, 7)
            _stage(writer, 30, 31)
            writer.commit()
            writer.remove("vid0007")
        with env.writer() as writer:
            checkpoint = writer.adopt_main(main, covered, built_for)
            assert checkpoint == writer.checkpoint
            assert writer.verify() == []
            assert not np.isin(writer._index.main.ids(), removed).any()
            assert not np.isin(writer._index.delta.ids(), removed).any()
            new = np.concatenate([_frame_range(writer, 30), _frame_range(writer, 31)])
            np.testing.assert_array_equal(np.sort(writer._index.delta.ids()), np.sort(new))
            assert len(writer._index.main) == 1900 and writer._index.kind == "ivf"
            _assert_found(writer, [0, 6, 8, 30, 31])
            hits = writer.search_frames(_video(7, writer.spec).vectors[:5], k=5)
            assert all(h.video_id != "vid0007" for row in hits for h in row)
        assert reader.refresh() is True and reader._index.kind == "ivf"
        _assert_found(reader, [30, 31])
    with env.writer() as writer:  # reopening (recovery) agrees with what was published
        assert writer.verify() == [] and (len(writer._index.main), len(writer._index.delta)) == (1900, 200)


def test_a_reader_refresh_swaps_to_the_ivf_and_then_shares_it(env):
    with env.reader() as reader, open_archive(env.data, env.url, nprobe=3) as tuned:
        assert reader._index.kind == "flat" and reader.refresh() is False
        maintain_index(env.settings, kind="ivf", spec=env.spec)
        assert reader.refresh() is True and reader._index.kind == "ivf"
        assert reader._index.main.nprobe == DEFAULT_NPROBE, "nprobe 0 keeps what the build chose"
        assert tuned.refresh() is True and tuned._index.main.nprobe == 3, "a reader's own nprobe applies to a new main"
        main = reader._index.main
        with env.writer() as writer:
            _stage(writer, 40)
            writer.commit()
        assert reader.refresh() is True
        assert reader._index.main is main, "a delta-only checkpoint keeps the main object"
        assert len(reader._index.delta) == FRAMES
        _assert_found(reader, [0, 40])
        with env.writer() as writer:
            writer.remove("vid0002")
        assert reader.refresh() is True
        assert reader._index.main is not main and len(reader._index.main) == 1900
        assert len(main) == 2000, "the main a search in flight holds is untouched"
        hits = reader.search_frames(_video(2, reader.spec).vectors[:3], k=3)
        assert all(h.video_id != "vid0002" for row in hits for h in row)
