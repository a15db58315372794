"""Score normalisation against a background of unrelated descriptors, and the background's identity check.

Some query frames look like many things (a dark frame, a face, a skyline): their similarity
to anything is high. As in the ISC21 and VSC22 baselines, a frame's similarity to an archive
frame is taken relative to its similarity to its k-th nearest neighbour among descriptors of
pictures that are certainly unrelated (the background). The background is built by
scripts/build_background.py from pinned package versions; the calibration records its
checksum, and a search refuses to start on a background other than the one its scores were
fitted on (the scores would silently mean something else)."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firstseen.errors import FirstSeenError

FILE_NAME = "background.npz"


class BackgroundError(FirstSeenError):
    """The background descriptors are missing or are not the ones the calibration was fitted on."""

    code = "background_mismatch"


def vectors_sha256(vectors: np.ndarray) -> str:
    """The checksum the calibration records: of the float16 vectors' bytes and shape."""
    v = np.ascontiguousarray(vectors, dtype=np.float16)
    return hashlib.sha256(json.dumps(list(v.shape)).encode() + v.tobytes()).hexdigest()


@dataclass(frozen=True, slots=True)
class Background:
    config_id: str
    vectors: np.ndarray  # (n, d) float32, as the descriptor returns them
    sha256: str

    def kth_similarity(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Each query vector's similarity to its k-th nearest background descriptor (inner product)."""
        if not 1 <= k <= len(self.vectors):
            raise ValueError(f"k must lie in 1..{len(self.vectors)}, got {k}")
        sims = np.asarray(queries, np.float32) @ self.vectors.T
        return -np.partition(-sims, k - 1, axis=1)[:, k - 1]


def background_dir(root: Path, config_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in config_id)
    return Path(root).expanduser() / safe


def save_background(root: Path, config_id: str, vectors: np.ndarray, info: dict) -> Path:
    """Write the background and its description atomically; returns its file."""
    from firstseen.storage.atomic import atomic_write_bytes

    folder = background_dir(root, config_id)
    folder.mkdir(parents=True, exist_ok=True)
    v16 = np.ascontiguousarray(vectors, dtype=np.float16)
    buffer = io.BytesIO()
    np.savez(buffer, vectors=v16, config_id=np.array(config_id))
    atomic_write_bytes(folder / FILE_NAME, buffer.getbuffer())
    meta = dict(info, config_id=config_id, count=int(len(v16)), sha256=vectors_sha256(v16))
    atomic_write_bytes(folder / "background.json", (json.dumps(meta, indent=2) + "\n").encode())
    return folder / FILE_NAME


def load_background(root: Path, config_id: str, expected_sha256: str) -> Background:
    """The background for this descriptor configuration, checked against the calibration's checksum."""
    path = background_dir(root, config_id) / FILE_NAME
    hint = "run `make background` (scripts/build_background.py) to build it"
    try:
        with np.load(path, allow_pickle=False) as data:
            vectors, stored_config = data["vectors"], str(data["config_id"])
    except FileNotFoundError:
        raise BackgroundError(f"no background descriptors for {config_id!r} at {path}; {hint}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise BackgroundError(f"background descriptors at {path} are unreadable ({exc}); {hint}") from exc
    sha = vectors_sha256(vectors)
    if stored_config != config_id or sha != expected_sha256:
        raise BackgroundError(
            f"the background at {path} (descriptor {stored_config!r}, sha256 {sha[:12]}) is not the one the "
            f"calibration was fitted on (descriptor {config_id!r}, sha256 {expected_sha256[:12]}); scores would "
            f"change meaning. Rebuild it with `make background` at the pinned package versions, or recalibrate "
            f"with scripts/calibrate.py"
        )
    return Background(config_id, vectors.astype(np.float32), sha)
