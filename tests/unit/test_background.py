"""The background for score normalisation: the k-th neighbour similarity; a background not calibrated on is refused."""

from __future__ import annotations

import numpy as np
import pytest

from firstseen.search.background import BackgroundError, load_background, save_background, vectors_sha256
from firstseen.search.calibration import Calibration, load_scoring, save_calibration


def _unit(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_kth_similarity_is_the_kth_largest_inner_product(tmp_path):
    vectors = _unit(50)
    save_background(tmp_path, "toy/1", vectors, {"pictures": 50})
    background = load_background(tmp_path, "toy/1", vectors_sha256(vectors))
    queries = _unit(3, seed=1)
    expected = np.sort(queries @ background.vectors.T, axis=1)[:, ::-1][:, 4]
    assert np.allclose(background.kth_similarity(queries, 5), expected, atol=1e-6)
    with pytest.raises(ValueError):
        background.kth_similarity(queries, 51)


def test_a_background_other_than_the_calibrations_is_refused(tmp_path):
    vectors = _unit(20)
    save_background(tmp_path, "toy/1", vectors, {})
    calibration = Calibration("toy/1", 0.1, 0.0, 1.0, 1.0, 0.5, background_sha256=vectors_sha256(vectors))
    path = tmp_path / "calibration.json"
    save_calibration(calibration, path)
    assert load_scoring("toy/1", path, tmp_path)[1].sha256 == calibration.background_sha256

    save_background(tmp_path, "toy/1", _unit(20, seed=7), {})  # rebuilt from other pictures
    with pytest.raises(BackgroundError, match="not the one the calibration was fitted on"):
        load_scoring("toy/1", path, tmp_path)
    with pytest.raises(BackgroundError, match="make background"):
        load_scoring("toy/1", path, tmp_path / "empty")
    # a calibration fitted without normalisation needs no background
    save_calibration(Calibration("toy/2", 0.1, 0.0, 1.0, 1.0, 0.5), path)
    assert load_scoring("toy/2", path, tmp_path / "empty")[1] is None
