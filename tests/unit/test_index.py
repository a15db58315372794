"""FAISS wrapper: add, search, remove, and atomic checkpointed saves for float and binary vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from firstseen.errors import ArchiveMismatchError
from firstseen.storage.faiss_index import TieredIndex, VectorIndex
from firstseen.storage.index_store import MANIFEST_NAME, IndexStore, MemoryIndexStore


def _vectors(metric: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if metric == "hamming":
        return rng.integers(0, 256, (n, 32), dtype=np.uint8)
    v = rng.standard_normal((n, 64)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(params=["inner_product", "hamming"])
def index(request):
    dim = 256 if request.param == "hamming" else 64
    return VectorIndex("test", dim, request.param)


def test_search_finds_each_vector_under_its_own_id(index):
    vectors = _vectors(index.metric, 200)
    ids = np.arange(1000, 1200, dtype=np.int64)
    index.add(ids, vectors)
    scores, found = index.search(vectors[:20], k=5)
    assert found.shape == (20, 5)
    np.testing.assert_array_equal(found[:, 0], ids[:20])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "scores are similarities, best first"


def test_remove_takes_ids_out_of_results(index):
    vectors = _vectors(index.metric, 50)
    index.add(np.arange(50), vectors)
    assert index.remove(np.arange(10)) == 10
    assert len(index) == 40
    _, found = index.search(vectors[:10], k=3)
    assert not np.isin(found, np.arange(10)).any()
    assert set(index.ids().tolist()) == set(range(10, 50))


def test_rejects_wrong_width_and_mismatched_ids(index):
    with pytest.raises(ValueError):
        index.add(np.arange(3), np.zeros((3, 7), dtype=np.float32))
    with pytest.raises(ValueError):
        index.add(np.arange(2), _vectors(index.metric, 3))


def _tiered(index: VectorIndex) -> TieredIndex:
    return TieredIndex(index.descriptor, index.dim, index.metric, delta=index)


def test_save_load_roundtrip_and_prunes_old_checkpoints(index, tmp_path):
    store = IndexStore(tmp_path)
    vectors = _vectors(index.metric, 30)
    index.add(np.arange(30), vectors)
    for checkpoint in (1, 2, 3):
        store.save(_tiered(index), checkpoint)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["checkpoint"] == 3 and manifest["count"] == 30 and manifest["descriptor"] == "test"
    assert sorted(p.name for p in tmp_path.glob("*.faiss")) == ["delta-00000002.faiss", "delta-00000003.faiss"]
    loaded, checkpoint = store.load("test", index.dim, index.metric)
    assert checkpoint == 3
    np.testing.assert_array_equal(loaded.search(vectors[:5], 1)[1], index.search(vectors[:5], 1)[1])


def test_opening_with_another_descriptor_is_a_clear_error(tmp_path):
    store = IndexStore(tmp_path)
    store.save(TieredIndex("sscd", 512, "inner_product"), 1)
    with pytest.raises(ArchiveMismatchError, match="sscd"):
        store.load("pdq", 256, "hamming")
    memory = MemoryIndexStore()
    memory.save(TieredIndex("sscd", 512, "inner_product"), 1)
    with pytest.raises(ArchiveMismatchError):
        memory.load("pdq", 256, "hamming")


def test_a_torn_write_never_replaces_the_current_index(tmp_path, monkeypatch):
    store = IndexStore(tmp_path)
    index = TieredIndex("t", 64, "inner_product")
    index.add(np.arange(5), _vectors("inner_product", 5))
    store.save(index, 1)
    index.add(np.arange(5, 10), _vectors("inner_product", 5, seed=1))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("firstseen.storage.atomic.os.replace", crash)
    with pytest.raises(OSError):
        store.save(index, 2)
    monkeypatch.undo()
    loaded, checkpoint = store.load("t", 64, "inner_product")
    assert (checkpoint, len(loaded)) == (1, 5)
    assert not list(tmp_path.glob(".*.tmp")), "temporary files are cleaned up"
