"""Frame descriptor plug-ins: the protocol every descriptor meets and the registry that builds them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np

from firstseen.errors import DescriptorUnavailableError

if TYPE_CHECKING:
    from firstseen.settings import Settings

Metric = Literal["inner_product", "hamming"]


@runtime_checkable
class FrameDescriptor(Protocol):
    """Turns RGB frames into vectors that the index can compare.

    Float descriptors return L2-normalised float32 rows of `dim` values (compared by inner
    product); binary ones return uint8 rows of `dim // 8` packed bits (compared by Hamming)."""

    name: str
    dim: int
    metric: Metric
    config_id: str  # what else must match for two vectors to be comparable (model, input size)

    def describe(self, frames: Sequence[np.ndarray]) -> np.ndarray: ...


def storage_dtype(metric: Metric) -> np.dtype:
    """How raw descriptors are kept on disk for rebuilds: float16 halves the size of float
    vectors at no measurable cost in ranking; bits are already packed."""
    return np.dtype(np.uint8) if metric == "hamming" else np.dtype(np.float16)


def pairwise_similarity(metric: Metric, queries: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """(n, m) similarities on the scale the index reports: inner product for float vectors,
    1 - Hamming/bits for packed binary ones, so 1.0 means identical in both."""
    if metric == "hamming":
        bits = stored.shape[1] * 8
        xor = np.bitwise_xor(queries[:, None, :], stored[None, :, :])
        return 1.0 - np.unpackbits(xor, axis=2).sum(axis=2, dtype=np.float32) / bits
    return queries.astype(np.float32, copy=False) @ stored.astype(np.float32, copy=False).T


DescriptorFactory = Callable[["Settings"], FrameDescriptor]
_FACTORIES: dict[str, DescriptorFactory] = {}


def register(name: str) -> Callable[[DescriptorFactory], DescriptorFactory]:
    def decorate(factory: DescriptorFactory) -> DescriptorFactory:
        if name in _FACTORIES:
            raise ValueError(f"descriptor {name!r} registered twice")
        _FACTORIES[name] = factory
        return factory

    return decorate


def descriptor_names() -> list[str]:
    _load_builtins()
    return sorted(_FACTORIES)


def create_descriptor(name: str, settings: Settings) -> FrameDescriptor:
    _load_builtins()
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise DescriptorUnavailableError(
            f"unknown descriptor {name!r}; known: {', '.join(sorted(_FACTORIES))}"
        ) from None
    return factory(settings)


def _load_builtins() -> None:
    # Importing registers them; the heavy libraries load only when a factory runs.
    from firstseen.descriptors import clip, pdq, sscd  # noqa: F401
