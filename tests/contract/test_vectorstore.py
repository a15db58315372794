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
