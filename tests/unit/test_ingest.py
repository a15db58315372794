"""The decode + describe pipeline: real timestamps on real footage, bad files isolated mid-stream."""

from __future__ import annotations

import numpy as np
import pytest
from clips import make_distinct_clip

from firstseen.descriptors import create_descriptor
from firstseen.errors import MediaError
from firstseen.ingest.pipeline import describe_frames, describe_videos
from firstseen.media.decode import sample_frames
from firstseen.params import IngestPolicy


@pytest.fixture(scope="module")
def pdq():
    from firstseen.settings import get_settings

    return create_descriptor("pdq", get_settings())


def test_describe_frames_keeps_real_timestamps(footage, settings, pdq):
    vectors = describe_frames(footage / "tree.avi", pdq, IngestPolicy.from_settings(settings), fps=1.0)
    expected = [f.pts_s for f in sample_frames(footage / "tree.avi", fps=1.0, max_side=settings.decode_max_side)]
    assert vectors.pts_s.tolist() == expected and len(expected) == 30
    assert vectors.vectors.shape == (30, 32) and vectors.descriptor == "pdq"
    assert not np.allclose(np.diff(vectors.pts_s), 1.0), "tree.avi's frames are irregular; times must show it"


def test_a_bad_file_in_the_middle_does_not_stop_the_others(tmp_path, settings, pdq):
    good = [make_distinct_clip(tmp_path / f"g{i}.mp4", i, seconds=3.0) for i in range(2)]
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    settings = settings.model_copy(update={"descriptor_batch_size": 2})  # batches span the boundaries
    results = list(describe_videos([good[0], bad, good[1]], pdq, IngestPolicy.from_settings(settings), fps=2.0))
    assert [r.path for r in results] == [good[0], bad, good[1]]
    assert isinstance(results[1].error, MediaError) and results[1].vectors is None
    for r in (results[0], results[2]):
        expected = [f.pts_s for f in sample_frames(r.path, fps=2.0, max_side=settings.decode_max_side)]
        assert r.error is None and r.vectors.pts_s.tolist() == expected and len(expected) == 6
    assert not np.array_equal(results[0].vectors.vectors, results[2].vectors.vectors)
    with pytest.raises(MediaError):
        describe_frames(bad, pdq, IngestPolicy.from_settings(settings), fps=1.0)
