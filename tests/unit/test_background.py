"""The background for score normalisation: the k-th neighbour similarity; a background not calibrated on is refused."""

from __future__ import annotations

import numpy as np
import pytest

from firstseen.search.background import (
    BackgroundError,
    load_background,
    save_background,
    vectors_sha256,
    vectors_signature,
)
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


def test_only_a_calibration_that_measured_the_rescue_enables_it_and_old_files_still_load(tmp_path):
    from firstseen.search.calibration import load_calibration

    path = tmp_path / "calibration.json"
    path.write_text(
        '{"toy/3": {"config_id": "toy/3", "similarity_floor": 0.1, "bias": 0.0, '
        '"weight_similarity": 1.0, "weight_log_frames": 1.0, "threshold": 0.5}}'
    )
    assert load_calibration("toy/3", path).rescue_near_misses is False  # written before the rescue existed
    save_calibration(Calibration("toy/3", 0.1, 0.0, 1.0, 1.0, 0.5, rescue_near_misses=True), path)
    assert load_calibration("toy/3", path).rescue_near_misses is True


def test_the_same_pictures_described_on_another_cpu_are_the_calibrations_background(tmp_path):
    """onnxruntime's kernels differ between CPUs in the last bits, and a float16 rounds the other
    way: the bytes' checksum changes, the pictures described and the vectors' signature do not."""
    vectors = _unit(400, d=64)
    save_background(tmp_path, "toy/1", vectors, {"inputs_sha256": "pictures-a"})
    fitted = load_background(tmp_path, "toy/1", vectors_sha256(vectors))
    assert fitted.inputs_sha256 == "pictures-a"
    calibration = Calibration(
        "toy/1", 0.1, 0.0, 1.0, 1.0, 0.5,
        background_sha256=fitted.sha256, background_inputs_sha256="pictures-a",
        background_signature=vectors_signature(fitted.vectors),
    )  # fmt: skip
    path = tmp_path / "calibration.json"
    save_calibration(calibration, path)
    noise = np.random.default_rng(3).normal(0, 2e-4, vectors.shape).astype(np.float32)
    save_background(tmp_path, "toy/1", vectors + noise, {"inputs_sha256": "pictures-a"})  # another CPU
    background = load_scoring("toy/1", path, tmp_path)[1]
    assert background.sha256 != calibration.background_sha256 and background.inputs_sha256 == "pictures-a"

    save_background(tmp_path, "toy/1", vectors + noise, {"inputs_sha256": "pictures-b"})
    with pytest.raises(BackgroundError, match="other pictures"):
        load_scoring("toy/1", path, tmp_path)
    save_background(tmp_path, "toy/1", vectors + noise, {})  # built before the build recorded its pictures
    with pytest.raises(BackgroundError, match="other pictures"):
        load_scoring("toy/1", path, tmp_path)
    other_model = _unit(400, d=64, seed=11) * 0.3 + vectors
    save_background(tmp_path, "toy/1", other_model, {"inputs_sha256": "pictures-a"})
    with pytest.raises(BackgroundError, match="describe differently"):
        load_scoring("toy/1", path, tmp_path)
    # an older calibration knows only the bytes: a background described on another CPU is refused
    save_calibration(Calibration("toy/1", 0.1, 0.0, 1.0, 1.0, 0.5, background_sha256=fitted.sha256), path)
    save_background(tmp_path, "toy/1", vectors + noise, {"inputs_sha256": "pictures-a"})
    with pytest.raises(BackgroundError, match="nothing finer"):
        load_scoring("toy/1", path, tmp_path)
