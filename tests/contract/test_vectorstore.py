"""Raw descriptor storage: both implementations behave alike; files load without pickle."""

from __future__ import annotations

import numpy as np
import pytest

from firstseen.records import FrameVectors
from firstseen.storage.vectorstore import FileVectorStore, MemoryVectorStore, to_storage


@pytest.fixture(params=["memory", "file"])
def store(request, tmp_path):
    return MemoryVectorStore() if request.param == "memory" else FileVectorStore(tmp_path)


def test_roundtrip_keeps_timestamps_with_vectors(store):
    vectors = FrameVectors("sscd", np.array([0.0, 1.04, 2.0]), np.random.rand(3, 8).astype(np.float32))
    store.put("abc123", to_storage(vectors, "inner_product"))
    back = store.get("abc123")
    np.testing.assert_array_equal(back.pts_s, vectors.pts_s)
    assert back.vectors.dtype == np.float16 and back.descriptor == "sscd"
    np.testing.assert_allclose(back.vectors, vectors.vectors, atol=1e-3)
    assert store.video_ids() == {"abc123"}
    store.delete("abc123")
    assert store.get("abc123") is None and store.video_ids() == set()


def test_file_store_refuses_unsafe_names(tmp_path):
    with pytest.raises(ValueError):
        FileVectorStore(tmp_path).get("../etc")


def test_records_check_their_invariants():
    with pytest.raises(ValueError):
        FrameVectors("x", np.array([1.0, 0.5]), np.zeros((2, 4), np.float32))  # time going backwards
    with pytest.raises(ValueError):
        FrameVectors("x", np.array([0.0, 1.0]), np.zeros((3, 4), np.float32))  # 3 vectors, 2 times


def test_vectors_in_a_milvus_index_are_read_back_from_it(tmp_path):
    """On Milvus the index is the raw store: a video's vectors, times and flags come back from
    the collection whatever this machine's files hold; the files add only the thumbnails, and
    a replacement changes the flags in the collection as well."""
    from conftest import require_scale

    require_scale("pymilvus")
    from firstseen.records import Thumbnails
    from firstseen.storage.milvus_index import MilvusIndexStore
    from firstseen.storage.milvus_target import parse_index_url
    from firstseen.storage.vectorstore import VectorsInIndex

    store = MilvusIndexStore(parse_index_url(f"milvus-lite://{tmp_path}/index.db"))
    try:
        index, _ = store.load("sscd", 8, "inner_product")
        rng = np.random.default_rng(3)
        vectors = FrameVectors(
            "sscd", np.array([0.0, 0.5, 1.0]), rng.random((3, 8), dtype=np.float32), np.array([True, False, True]),
            Thumbnails.pack([b"a", b"bb", b"ccc"]),
        )  # fmt: skip
        stored = to_storage(vectors, "inner_product")
        here, elsewhere = FileVectorStore(tmp_path / "here"), FileVectorStore(tmp_path / "elsewhere")
        on_here, on_elsewhere = VectorsInIndex(here, lambda: index), VectorsInIndex(elsewhere, lambda: index)
        on_here.put("abc123", stored)
        assert on_here.get("abc123") is None  # staged files alone: nothing is in the index yet
        ids = np.arange(10, 13, dtype=np.int64)
        index.add(ids, stored.vectors.astype(np.float32), video_id="abc123", pts_s=stored.pts_s,
                  informative=stored.informative_mask())  # fmt: skip
        for reader in (on_here, on_elsewhere):
            back = reader.get("abc123", thumbnails=True)
            np.testing.assert_array_equal(back.pts_s, stored.pts_s)
            np.testing.assert_array_equal(back.vectors, stored.vectors.astype(np.float32))
            np.testing.assert_array_equal(back.informative, [True, False, True])
        assert on_here.get("abc123", thumbnails=True).thumbnails.get(2) == b"ccc"
        assert on_elsewhere.get("abc123", thumbnails=True).thumbnails is None
        assert on_elsewhere.video_ids() == set() and on_here.video_ids() == {"abc123"}
        flagged = FrameVectors("sscd", stored.pts_s, stored.vectors, np.zeros(3, bool), stored.thumbnails)
        on_here.replace("abc123", ids, flagged)
        assert not on_elsewhere.get("abc123").informative.any() and len(index) == 3
    finally:
        store.close()
