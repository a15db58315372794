"""The contract every frame descriptor plug-in must meet, run against each registered one."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image

from firstseen.descriptors import create_descriptor, descriptor_names
from firstseen.errors import DescriptorUnavailableError
from firstseen.settings import get_settings


def _frame_at(path, seconds: float) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is not None and frame.time >= seconds:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"{path} has no frame at {seconds}s")


def _edited_copy(rgb: np.ndarray) -> np.ndarray:
    """What a re-upload does to a frame: light crop, resize, lossy re-encode."""
    h, w = rgb.shape[:2]
    dy, dx = h // 16, w // 16
    cropped = Image.fromarray(rgb[dy : h - dy, dx : w - dx])
    resized = cropped.resize((int(cropped.width * 0.6), int(cropped.height * 0.6)), Image.BILINEAR)
    buffer = io.BytesIO()
    resized.save(buffer, format="JPEG", quality=30)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def _similarity(descriptor, a: np.ndarray, b: np.ndarray) -> float:
    if descriptor.metric == "hamming":
        bits = np.unpackbits(np.bitwise_xor(a, b))
        return 1.0 - bits.sum() / descriptor.dim
    return float(a @ b)


@pytest.fixture(scope="module", params=descriptor_names())
def descriptor(request):
    try:
        return create_descriptor(request.param, get_settings())
    except DescriptorUnavailableError as exc:
        pytest.skip(f"{request.param} cannot run here: {exc}")


@pytest.fixture(scope="module")
def real_frames(footage):
    return {
        "bikes": _frame_at(footage / "bikes.mp4", 4.0),
        "diver": _frame_at(footage / "diver.mov", 6.0),
        "cockatoo": _frame_at(footage / "cockatoo.mp4", 3.0),
    }


def test_declares_name_dimension_and_metric(descriptor):
    assert descriptor.name in descriptor_names()
    assert descriptor.dim > 0
    assert descriptor.metric in ("inner_product", "hamming")
    assert isinstance(descriptor.config_id, str) and descriptor.config_id


def test_output_shape_and_dtype(descriptor, real_frames):
    out = descriptor.describe(list(real_frames.values()))
    if descriptor.metric == "hamming":
        assert out.dtype == np.uint8 and out.shape == (3, descriptor.dim // 8)
    else:
        assert out.dtype == np.float32 and out.shape == (3, descriptor.dim)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)


def test_deterministic_and_independent_of_batching(descriptor, real_frames):
    frames = list(real_frames.values())
    first = descriptor.describe(frames)
    again = descriptor.describe(frames)
    np.testing.assert_array_equal(first, again)
    alone = descriptor.describe(frames[1:2])
    if descriptor.metric == "hamming":
        np.testing.assert_array_equal(alone[0], first[1])
    else:
        assert float(alone[0] @ first[1]) > 0.999


def test_handles_an_empty_batch_and_odd_shapes(descriptor, real_frames):
    tall = np.ascontiguousarray(real_frames["bikes"][:, :90])
    out = descriptor.describe([tall, real_frames["diver"]])
    assert out.shape[0] == 2


@pytest.mark.parametrize("name", ["bikes", "diver", "cockatoo"])
def test_edited_copy_is_nearer_than_unrelated_footage(descriptor, real_frames, name):
    original = real_frames[name]
    others = [f for k, f in real_frames.items() if k != name]
    vectors = descriptor.describe([original, _edited_copy(original), *others])
    copy_sim = _similarity(descriptor, vectors[0], vectors[1])
    unrelated_sim = max(_similarity(descriptor, vectors[0], v) for v in vectors[2:])
    assert copy_sim > unrelated_sim, (copy_sim, unrelated_sim)
    if descriptor.metric == "inner_product":
        assert copy_sim - unrelated_sim > 0.2, (copy_sim, unrelated_sim)
