"""Meta's PDQ perceptual hash as a 256-bit binary descriptor (fast tier for plain re-encodes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from firstseen.descriptors import register
from firstseen.errors import DescriptorUnavailableError


class PdqDescriptor:
    """PDQ bits packed eight to a byte, compared by Hamming distance. Weak on crops and
    overlays by design; it exists for cheap exact-copy checks."""

    name = "pdq"
    dim = 256
    metric = "hamming"
    config_id = "pdq/pdqhash"

    def __init__(self) -> None:
        try:
            import pdqhash
        except ImportError as exc:
            raise DescriptorUnavailableError("the pdq descriptor needs the pdqhash package") from exc
        self._pdqhash = pdqhash

    def describe(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty((len(frames), self.dim // 8), dtype=np.uint8)
        for i, rgb in enumerate(frames):
            bits, _quality = self._pdqhash.compute(np.ascontiguousarray(rgb))
            out[i] = np.packbits(bits.astype(np.uint8))
        return out


@register("pdq")
def _make_pdq(options: None, batch_size: int) -> PdqDescriptor:
    return PdqDescriptor()
