"""A toy frame descriptor for tests only: deterministic, model-free, about a thousand times cheaper than SSCD.

Each frame becomes its 12x12 grey thumbnail with the mean taken out, L2-normalised: re-encodes
and rescales keep it, crops and flips do not. Unit and contract tests that exercise ingest,
storage and the API shells use it, so that they run without the ONNX model."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from firstseen.descriptors import register

SIDE = 12


class ToyDescriptor:
    name = "toy"
    dim = SIDE * SIDE
    metric = "inner_product"
    config_id = "toy/grey12"

    def describe(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(frames), self.dim), dtype=np.float32)
        for i, rgb in enumerate(frames):
            grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
            small = cv2.resize(grey, (SIDE, SIDE), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
            small -= small.mean()
            norm = float(np.linalg.norm(small))
            # a flat frame has no direction of its own: a fixed unit vector keeps the output normalised
            out[i] = small / norm if norm > 1e-6 else np.eye(1, self.dim, 0, dtype=np.float32)[0]
        return out


@register("toy")
def _make_toy(options: None, batch_size: int) -> ToyDescriptor:
    return ToyDescriptor()
