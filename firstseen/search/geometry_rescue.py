"""A last chance for a near miss: a candidate scored under the threshold, proved by its geometry and aligned parts.

SSCD describes a whole frame, so a tight crop or a 9:16 re-framing of a wide shot (a third of
the picture cut away) can fall under the calibrated score although its frame pairs match point
for point (the evaluation's 60% crop of the diver: score 0.24, two pairs verified with 132
inliers). Geometry alone is not enough to name a source: keypoints also agree on graphics two
unrelated pictures share (two map screenshots with one program's overview inset and compass
verified with 84 inliers). So for a query with no match by any other path, the best few
candidates under the threshold are verified, the parts of each verified pair that the
geometry says overlap are described again (aligned_agreement.py), and the segment is scored
by the calibration on that similarity: a match only if the like-for-like pictures score at the
threshold, as the mean over the pairs that verified. Used only where the calibration measured this path on
its own negatives (Calibration.rescue_near_misses)."""

from __future__ import annotations

import logging
from dataclasses import replace

from firstseen.archive import Archive
from firstseen.errors import MediaError
from firstseen.search.aligned_agreement import AgreementCheck
from firstseen.search.background import Background
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


def rescue_near_misses(
    archive: Archive,
    query: QueryVectors,
    near: list[NearMiss],
    calibration: Calibration,
    verify: VerifyPolicy,
    background: Background | None,
) -> tuple[list[CandidateMatch], list[Unverifiable]]:
    """The near misses whose aligned parts score at the threshold, best first, each segment
    scored on its aligned parts; candidates whose frames cannot be read are returned apart."""
    if not calibration.rescue_near_misses or verify.describe is None:
        return [], []
    verifier = Verifier(verify.params)
    agree = AgreementCheck(verify.describe, background, calibration.background_k)
    found, unverifiable = [], []
    for miss in near_misses_worth_checking(near):
        try:
            confirmed = confirm_aligned(archive, query, miss.aligned, list(miss.segments), verifier, verify, agree)
        except (MediaError, OSError) as exc:
            log.warning("cannot verify near miss %s: %s", miss.aligned.video_id, exc)
            unverifiable.append(Unverifiable(miss.aligned.video_id, f"archived frames unreadable: {exc}"))
            continue
        kept = [
            replace(segment, score=score)
            for segment in confirmed
            if (score := aligned_score(segment, calibration)) >= calibration.threshold
        ]
        if kept:
            kept.sort(key=lambda s: -s.score)
            found.append(CandidateMatch(miss.aligned.video_id, kept[0].score, tuple(kept)))
    return sorted(found, key=lambda m: -m.score), unverifiable


def aligned_score(segment: MatchSegment, calibration: Calibration) -> float:
    """The calibrated score of a verified segment's aligned parts (0 where none were scored):
    their similarity, counted as the frame pairs that verified."""
    evidence = segment.evidence
    if evidence is None or not evidence.verified or evidence.agreement is None:
        return 0.0
    return calibration.score(evidence.agreement, evidence.pairs_verified)
