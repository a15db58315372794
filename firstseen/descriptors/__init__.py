"""Frame descriptor plug-ins: the protocol every descriptor meets and the registry that builds them.

A plug-in registers a factory and, if it has knobs, its own pydantic-settings class: the
registry builds those settings from the environment (and from keyword arguments the core
settings were given but have no field for), so the core's settings hold no plug-in's knobs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic_settings import BaseSettings

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


def pairwise_similarity(metric: str, queries: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """(n, m) similarities on the scale the index reports: inner product for float vectors,
    1 - Hamming/bits for packed binary ones, so 1.0 means identical in both."""
    if metric == "hamming":
        bits = stored.shape[1] * 8
        xor = np.bitwise_xor(queries[:, None, :], stored[None, :, :])
        return 1.0 - np.unpackbits(xor, axis=2).sum(axis=2, dtype=np.float32) / bits
    return queries.astype(np.float32, copy=False) @ stored.astype(np.float32, copy=False).T


# (the plug-in's own settings or None, frames per inference batch) -> the descriptor
DescriptorFactory = Callable[[Any, int], Any]  # returns a FrameDescriptor (checked by the contract tests)
_FACTORIES: dict[str, tuple[DescriptorFactory, type[BaseSettings] | None]] = {}


def register(name: str, settings: type[BaseSettings] | None = None) -> Callable[[DescriptorFactory], DescriptorFactory]:
    """Register a plug-in's factory under name, with the settings class of its knobs if any."""

    def decorate(factory: DescriptorFactory) -> DescriptorFactory:
        if name in _FACTORIES:
            raise ValueError(f"descriptor {name!r} registered twice")
        _FACTORIES[name] = (factory, settings)
        return factory

    return decorate


def plugin_settings(name: str, settings: Settings) -> BaseSettings | None:
    """A plug-in's own settings: its FIRSTSEEN_* environment, with overrides given to the core's."""
    _load_builtins()
    own = _entry(name)[1]
    if own is None:
        return None
    given = {k: v for k, v in (settings.model_extra or {}).items() if k in own.model_fields}
    return own(**given)


def descriptor_names() -> list[str]:
    _load_builtins()
    return sorted(_FACTORIES)


def _entry(name: str) -> tuple[DescriptorFactory, type[BaseSettings] | None]:
    try:
        return _FACTORIES[name]
    except KeyError:
        raise DescriptorUnavailableError(
            f"unknown descriptor {name!r}; known: {', '.join(sorted(_FACTORIES))}"
        ) from None


def create_descriptor(name: str, settings: Settings) -> FrameDescriptor:
    """The named plug-in, built with its own settings and the core's inference batch size."""
    _load_builtins()
    factory, _ = _entry(name)
    return factory(plugin_settings(name, settings), settings.descriptor_batch_size)


def _load_builtins() -> None:
    # Importing registers them; the heavy libraries load only when a factory runs.
    from firstseen.descriptors import clip, pdq, sscd  # noqa: F401
