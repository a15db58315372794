"""Score normalisation against a background of unrelated descriptors, and the background's identity check.

Some query frames look like many things (a dark frame, a face, a skyline): their similarity
to anything is high. As in the ISC21 and VSC22 baselines, a frame's similarity to an archive
frame is taken relative to its similarity to its k-th nearest neighbour among descriptors of
pictures that are certainly unrelated (the background). The background is built by
scripts/build_background.py from pinned package versions; the calibration records its
identity, and a search refuses to start on a background other than the one its scores were
fitted on (the scores would silently mean something else). The identity is the checksum of
the vectors' bytes, or, where those differ (onnxruntime's kernels differ from one CPU to the
next in the last bits, and a float16 can round the other way), the checksum of every picture
described, in order, and a signature of the vectors that must agree within float noise."""

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


SIGNATURE_ROWS, SIGNATURE_DIRECTIONS = 32, 4
# Another CPU moves a projection by about 1e-4 (float16 storage); another model, other
# pictures or another preprocessing move it by 0.05 and more.
SIGNATURE_TOLERANCE = 0.005


def vectors_signature(vectors: np.ndarray) -> list[float]:
    """Rows spread over the background, projected on fixed random directions: 128 numbers
    the calibration records, compared within SIGNATURE_TOLERANCE."""
    v = np.asarray(vectors, np.float32)
    rows = np.linspace(0, len(v) - 1, SIGNATURE_ROWS).round().astype(int)
    directions = np.random.default_rng(0).standard_normal((v.shape[1], SIGNATURE_DIRECTIONS)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=0)
    return [round(float(x), 5) for x in (v[rows] @ directions).ravel()]


@dataclass(frozen=True, slots=True)
class BackgroundIdentity:
    """What a calibration knows of the background it was fitted on."""

    sha256: str  # the vectors' bytes, as built where the calibration was fitted
    inputs_sha256: str | None = None  # every picture described, in order (the same on any CPU)
    signature: tuple[float, ...] | None = None  # vectors_signature of those vectors


@dataclass(frozen=True, slots=True)
class Background:
    config_id: str
    vectors: np.ndarray  # (n, d) float32, as the descriptor returns them
    sha256: str
    inputs_sha256: str | None = None  # from background.json, where the build recorded it

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


def load_background(root: Path, config_id: str, expected: str | BackgroundIdentity) -> Background:
    """The background for this descriptor configuration, checked against the calibration's identity of it."""
    expected = expected if isinstance(expected, BackgroundIdentity) else BackgroundIdentity(expected)
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
    meta = _sidecar(path)
    inputs = meta.get("inputs_sha256") if meta.get("sha256") == sha else None  # a sidecar of another file says nothing
    mismatch = _mismatch(stored_config, config_id, sha, inputs, vectors, expected)
    if mismatch:
        raise BackgroundError(
            f"the background at {path} (descriptor {stored_config!r}, sha256 {sha[:12]}) is not the one the "
            f"calibration was fitted on (descriptor {config_id!r}, sha256 {expected.sha256[:12]}): {mismatch}; "
            f"scores would change meaning. Rebuild it at the pinned package versions with "
            f"`python scripts/build_background.py --force`, or recalibrate with scripts/calibrate.py"
        )
    return Background(config_id, vectors.astype(np.float32), sha, inputs)


def _sidecar(path: Path) -> dict:
    try:
        return json.loads(path.with_name("background.json").read_text())
    except (OSError, ValueError):
        return {}


def _mismatch(
    stored_config: str, config_id: str, sha: str, inputs: str | None, vectors: np.ndarray, expected: BackgroundIdentity
) -> str | None:
    """Why this background is not the calibration's, or None where it is: the same bytes, or
    the same pictures described to within float noise (another CPU)."""
    if stored_config != config_id:
        return "it was built for another descriptor"
    if sha == expected.sha256:
        return None
    if expected.inputs_sha256 is None or expected.signature is None:
        return "its vectors differ and the calibration records nothing finer to compare"
    if inputs != expected.inputs_sha256:
        return "it was built from other pictures, or its build recorded none (rebuild it)"
    signature = vectors_signature(vectors)
    if len(signature) != len(expected.signature):
        return "its signature has another length"
    drift = max(abs(a - b) for a, b in zip(signature, expected.signature))
    if drift > SIGNATURE_TOLERANCE:
        return f"the same pictures describe differently (signature off by {drift:.4f}, more than float noise)"
    return None
