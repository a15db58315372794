"""Turning raw alignment evidence into a 0..1 match score, with parameters measured per descriptor.

A segment's evidence is how similar its frames are and how many frames agree on one time
line. Those numbers mean different things for different descriptors, so each descriptor
configuration (its config_id) gets its own measured calibration: the frame-similarity floor
under which unrelated footage lies, a logistic model fitted on true matches and on queries
of footage kept out of the archive, and the score threshold for a match. The file is written
by scripts/calibrate.py, never edited by hand, and records what it was measured on."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from firstseen.errors import FirstSeenError

DEFAULT_PATH = Path(__file__).with_name("calibration.json")


class CalibrationMissingError(FirstSeenError):
    """No measured calibration for this descriptor configuration."""


@dataclass(frozen=True, slots=True)
class Calibration:
    config_id: str
    similarity_floor: float  # frame similarities at or below this are what unrelated footage scores
    bias: float
    weight_similarity: float
    weight_log_frames: float
    threshold: float  # calibrated score at or above which a video is reported as a match
    measured: dict = field(default_factory=dict)  # where the numbers came from
    # Similarities are normalised against this background (firstseen.search.background); None: raw.
    background_sha256: str | None = None
    background_k: int = 10
    # ...and, to recognise that background built on another CPU (background.py): the checksum
    # of the pictures it describes and a signature of its vectors. None in older files.
    background_inputs_sha256: str | None = None
    background_signature: list[float] | None = None
    # Near misses may be proved by their aligned parts (geometry_rescue.py) only where the
    # calibration measured that path on its own negatives; older files never rescue.
    rescue_near_misses: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {self.threshold}")
        if not all(
            math.isfinite(v) for v in (self.similarity_floor, self.bias, self.weight_similarity, self.weight_log_frames)
        ):
            raise ValueError("calibration parameters must be finite")
        if self.background_k < 1:
            raise ValueError(f"background_k must be at least 1, got {self.background_k}")

    def score(self, similarity: float, frames: int) -> float:
        """Probability-like score of a segment: mean similarity of its frames and their count."""
        z = self.bias + self.weight_similarity * similarity + self.weight_log_frames * math.log(max(frames, 1))
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def evidence_features(similarity: np.ndarray, frames: np.ndarray) -> np.ndarray:
    return np.column_stack([np.asarray(similarity, float), np.log(np.maximum(np.asarray(frames, float), 1.0))])


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, *, l2: float = 1.0, iterations: int = 100
) -> tuple[float, np.ndarray]:
    """Ridge-regularised logistic regression by Newton's method. The ridge matters: true
    matches and negatives are often perfectly separable, where the unregularised fit has no
    finite answer and the scores would collapse to 0 or 1."""
    x = np.column_stack([np.ones(len(features)), features])
    y = np.asarray(labels, float)
    beta = np.zeros(x.shape[1])
    penalty = np.diag([0.0] + [l2] * features.shape[1])  # the intercept is not shrunk
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -50, 50)))
        gradient = x.T @ (p - y) + penalty @ beta
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(beta[0]), beta[1:]


def load_calibration(config_id: str, path: Path | None = None) -> Calibration:
    path = Path(path) if path else DEFAULT_PATH
    try:
        table = json.loads(path.read_text())
    except FileNotFoundError:
        table = {}
    except (OSError, ValueError) as exc:
        raise CalibrationMissingError(f"cannot read calibration file {path}: {exc}") from exc
    entry = table.get(config_id)
    if entry is None:
        known = ", ".join(sorted(table)) or "none"
        raise CalibrationMissingError(
            f"no calibration for descriptor {config_id!r} in {path} (calibrated: {known}); "
            f"run `python scripts/calibrate.py` with this descriptor to measure one"
        )
    return Calibration(**entry)


def load_scoring(config_id: str, calibration_path: Path | None, background_root: Path):
    """The calibration and, where it was fitted on normalised similarities, its background
    (checked to be the same one): what turns similarities into scores."""
    from firstseen.search.background import BackgroundIdentity, load_background

    calibration = load_calibration(config_id, calibration_path)
    background = None
    if calibration.background_sha256:
        signature = tuple(calibration.background_signature) if calibration.background_signature else None
        identity = BackgroundIdentity(calibration.background_sha256, calibration.background_inputs_sha256, signature)
        background = load_background(background_root, config_id, identity)
    return calibration, background


def save_calibration(calibration: Calibration, path: Path | None = None) -> None:
    """Add or replace one descriptor's entry, atomically."""
    from firstseen.storage.atomic import atomic_write_bytes

    path = Path(path) if path else DEFAULT_PATH
    table = json.loads(path.read_text()) if path.exists() else {}
    table[calibration.config_id] = asdict(calibration)
    atomic_write_bytes(path, (json.dumps(table, indent=2, sort_keys=True) + "\n").encode())
