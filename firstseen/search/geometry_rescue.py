"""A last chance for a near miss: a candidate the descriptor scores under the threshold, proved by its geometry alone.

SSCD describes a whole frame, so a tight crop or a 9:16 re-framing of a wide shot (a third of
the picture cut away) can fall under the calibrated score although its frame pairs match point
for point (the evaluation's 60% crop of the diver: score 0.24, two pairs verified with 132
inliers). For a query with no match by any other path, the best few candidates the alignment
found are checked by geometry, and a verified one is a match with the score the calibration
measured for verified near misses (Calibration.near_miss_verified_score: the Wilson 95% lower
bound of their precision on the calibration side, fitted by scripts/calibrate.py), held to the
same threshold and the same false-match budget as every other match."""

from __future__ import annotations

import logging
from dataclasses import replace

from firstseen.archive import Archive
from firstseen.errors import MediaError
from firstseen.search.calibration import Calibration
from firstseen.search.candidates import CandidateMatch, NearMiss, VerifyPolicy, confirm_aligned
from firstseen.search.confirm import Unverifiable
from firstseen.search.query import QueryVectors
from firstseen.search.results import MatchSegment
from firstseen.search.verification import Verifier

log = logging.getLogger(__name__)

RESCUE_VIDEOS = 3  # near misses checked per query: each costs two to four frame pairs
RESCUE_MIN_SCORE = 0.05  # a candidate the descriptor all but rules out is not worth a check


def near_misses_worth_checking(near: list[NearMiss]) -> list[NearMiss]:
    ranked = sorted((n for n in near if n.score >= RESCUE_MIN_SCORE), key=lambda n: -n.score)
    return ranked[:RESCUE_VIDEOS]


def rescue_by_geometry(
    archive: Archive,
    query: QueryVectors,
    near: list[NearMiss],
    calibration: Calibration,
    verify: VerifyPolicy,
) -> tuple[list[CandidateMatch], list[Unverifiable]]:
    """The near misses whose geometry alone scores at the threshold, best first, each segment
    scored by its geometry; candidates whose frames cannot be read are returned apart."""
    if calibration.near_miss_score(True) is None:
        return [], []
    verifier = Verifier(verify.params)
    found, unverifiable = [], []
    for miss in near_misses_worth_checking(near):
        try:
            confirmed = confirm_aligned(archive, query, miss.aligned, list(miss.segments), verifier, verify)
        except (MediaError, OSError) as exc:
            log.warning("cannot verify near miss %s: %s", miss.aligned.video_id, exc)
            unverifiable.append(Unverifiable(miss.aligned.video_id, f"archived frames unreadable: {exc}"))
            continue
        kept = []
        for segment in confirmed:
            score = geometry_score(segment, calibration)
            if score >= calibration.threshold:
                kept.append(replace(segment, score=score))
        if kept:
            kept.sort(key=lambda s: -s.score)
            found.append(CandidateMatch(miss.aligned.video_id, kept[0].score, tuple(kept)))
    return sorted(found, key=lambda m: -m.score), unverifiable


def geometry_score(segment: MatchSegment, calibration: Calibration) -> float:
    return calibration.near_miss_score(segment.evidence is not None and segment.evidence.verified) or 0.0
