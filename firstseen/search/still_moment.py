"""A still that shows a moment between the archive's samples: that moment found in the archived file and scored there.

The archive keeps about a frame a second. A screen grab of moving footage mostly shows a
moment between two samples, and the nearest sample can look too unlike it to clear the
calibrated score (a bikes grab: 0.27 normalised similarity at the sample, 0.49 at its own
frame). For a still with no verified match, the videos whose samples came nearest are
opened around that sample, their frames described, and the best moment scored as any
one-frame match is; it is a match only if it also verifies against that very frame. A clip
never takes this path: its many frames span the samples."""

from __future__ import annotations

import logging
import math

import numpy as np

from firstseen.archive import Archive
from firstseen.descriptors import pairwise_similarity
from firstseen.errors import MediaError
from firstseen.media.frames import frames_between
from firstseen.media.informative import informative_flags
from firstseen.records import sample_step
from firstseen.search.background import Background
from firstseen.search.calibration import Calibration
from firstseen.search.candidates import CandidateMatch, VerifyPolicy
from firstseen.search.confirm import ArchiveFrames
from firstseen.search.geometry import summarise
from firstseen.search.query import QueryVectors
from firstseen.search.results import MatchSegment
from firstseen.search.verification import Verifier

log = logging.getLogger(__name__)

NEAR_MISS = 0.1  # how far under the similarity floor (normalised) a video's nearest sample may fall
LEAD_VIDEOS = 2  # videos opened per still: each costs a short decode and a few descriptors
MOMENTS = 3  # best moments of a video checked by geometry, best first
MAX_FRAMES = 64  # frames described around a sample, at most


def searchable_as_still(query: QueryVectors, verify: VerifyPolicy | None) -> bool:
    return (
        len(query.pts_s) == 1
        and bool(query.usable[0])
        and query.window is None
        and query.image is not None
        and verify is not None
        and verify.describe is not None
    )


def match_still_moment(
    archive: Archive,
    query: QueryVectors,
    calibration: Calibration,
    verify: VerifyPolicy,
    *,
    neighbours: int,
    exclude: frozenset[str] = frozenset(),
    background: Background | None = None,
) -> list[CandidateMatch]:
    """Verified matches of a still at the archived moment it shows, best first. A video whose
    file cannot be read is passed over (logged): its sample fell short of the floor, so it was
    never a candidate that the result must account for."""
    vector = query.vectors[:1]
    offset = 0.0 if background is None else float(background.kth_similarity(vector, calibration.background_k)[0])
    nearest: dict[str, tuple[float, float]] = {}  # video -> (normalised similarity, sample time)
    for hit in archive.search_frames(vector, neighbours)[0]:
        similarity = hit.score - offset
        if (
            hit.video_id not in exclude
            and similarity > calibration.similarity_floor - NEAR_MISS
            and similarity > nearest.get(hit.video_id, (-np.inf, 0.0))[0]
        ):
            nearest[hit.video_id] = (similarity, hit.pts_s)
    found = []
    verifier = Verifier(verify.params)
    for video_id, (_, t) in sorted(nearest.items(), key=lambda kv: -kv[1][0])[:LEAD_VIDEOS]:
        try:
            segment = _at_its_moment(archive, query, video_id, t, vector, offset, calibration, verify, verifier)
        except (MediaError, OSError) as exc:
            log.warning("cannot look for a still's moment in %s: %s", video_id, exc)
            continue
        if segment is not None:
            found.append(CandidateMatch(video_id, segment.score, (segment,)))
    return sorted(found, key=lambda m: -m.score)


def _at_its_moment(
    archive: Archive,
    query: QueryVectors,
    video_id: str,
    t: float,
    vector: np.ndarray,
    offset: float,
    calibration: Calibration,
    verify: VerifyPolicy,
    verifier: Verifier,
) -> MatchSegment | None:
    """The still scored and verified at the best of the file's frames within a sample of t."""
    record, stored = archive.video(video_id), archive.raw_vectors(video_id, thumbnails=True)
    if record is None or stored is None or verify.describe is None or query.image is None:
        return None
    step = sample_step(stored.pts_s)
    frames = frames_between(record.path, max(0.0, t - step), t + step, max_side=verify.frame_side)
    if len(frames) > MAX_FRAMES:  # a high frame rate: neighbours differ little, so every other one will do
        frames = frames[:: math.ceil(len(frames) / MAX_FRAMES)]
    frames = [f for f, ok in zip(frames, informative_flags([f.rgb for f in frames])) if ok]
    if not frames:
        return None
    sims = pairwise_similarity(archive.spec.metric, vector, verify.describe([f.rgb for f in frames]))[0] - offset
    best = np.argsort(-sims)[:MOMENTS]
    similarity = float(sims[best[0]])
    score = calibration.score(similarity, 1)
    if similarity <= calibration.similarity_floor or score < calibration.threshold:
        return None
    # a still shows no overlay of its own; the archive video's (a logo, chrome) counts for nothing
    overlay = ArchiveFrames(stored, record.path, verify.frame_side).overlay_near(t, t)
    checked = [
        (round(frames[k].pts_s, 3), verifier.verify(query.image(0), frames[k].rgb, query_key=0, source_overlay=overlay))
        for k in best
    ]
    verified = [moment for moment, pair in checked if pair.verified]
    if not verified:
        return None
    evidence, moment = summarise([pair for _, pair in checked]), verified[0]
    return MatchSegment(
        query_start=0.0,
        query_end=0.0,
        source_start=moment,
        source_end=moment,
        speed=1.0,
        reversed=False,
        mirrored=evidence.mirrored is True,
        score=score,
        timing_known=False,
        evidence=evidence,
    )
