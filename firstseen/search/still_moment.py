"""A still that shows a moment between the archive's samples: that moment found in the archived file and scored there.

The archive keeps about a frame a second. A screen grab of moving footage mostly shows a
moment between two samples, and the nearest sample can look too unlike it to clear the
calibrated score (a bikes grab: 0.27 normalised similarity at the sample, 0.49 at its own
frame). For a still with no verified match, the videos whose samples came nearest are
opened around their few nearest samples, their frames described, and the best moment scored
as any one-frame match is; it is a match only if it also verifies against that very frame.
Not only the nearest sample: in fast motion it can lie seconds from the moment (a blurred
cockatoo grab of 7.85 s came nearest at 5 s; the samples at 7 and 8 s came second and third).
A clip never takes this path: its many frames span the samples."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

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
SAMPLES = 3  # a video's nearest samples opened around, nearest first
MOMENTS = 3  # best moments of a video checked by geometry, best first
MAX_FRAMES = 64  # frames described around one sample in the first round, at most
DECODED = 120  # frames decoded around one sample, at most (two seconds at 60 fps)


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
    file cannot be read is passed over (logged): its samples fell short of the floor, so it was
    never a candidate that the result must account for."""
    vector = query.vectors[:1]
    offset = 0.0 if background is None else float(background.kth_similarity(vector, calibration.background_k)[0])
    near: dict[str, list[float]] = {}  # video -> times of its samples near enough, nearest first
    nearest: dict[str, float] = {}  # video -> its nearest sample's normalised similarity
    for hit in archive.search_frames(vector, neighbours)[0]:  # nearest first
        similarity = hit.score - offset
        if hit.video_id not in exclude and similarity > calibration.similarity_floor - NEAR_MISS:
            near.setdefault(hit.video_id, []).append(hit.pts_s)
            nearest.setdefault(hit.video_id, similarity)
    found = []
    verifier = Verifier(verify.params)
    for video_id in sorted(near, key=lambda v: -nearest[v])[:LEAD_VIDEOS]:
        times = near[video_id][:SAMPLES]
        try:
            segment = _at_its_moment(archive, query, video_id, times, vector, offset, calibration, verify, verifier)
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
    times: list[float],
    vector: np.ndarray,
    offset: float,
    calibration: Calibration,
    verify: VerifyPolicy,
    verifier: Verifier,
) -> MatchSegment | None:
    """The still scored and verified at the best of the file's frames within a sample of one of `times`."""
    record, stored = archive.video(video_id), archive.raw_vectors(video_id, thumbnails=True)
    if record is None or stored is None or verify.describe is None or query.image is None:
        return None
    step = sample_step(stored.pts_s)
    frames = [
        frame
        for t0, t1 in spans_around(times, step)  # merged spans: as many decoded frames as their samples allow
        for frame in frames_between(record.path, t0, t1, max_side=verify.frame_side, limit=DECODED * len(times))
    ]
    frames = [f for f, ok in zip(frames, informative_flags([f.rgb for f in frames])) if ok]
    if not frames:
        return None
    stride = math.ceil(len(frames) / (MAX_FRAMES * len(times)))
    sims = best_moment_similarities([f.rgb for f in frames], vector, archive.spec.metric, verify.describe, stride)
    sims -= offset
    best = np.argsort(-sims)[:MOMENTS]
    similarity = float(sims[best[0]])
    score = calibration.score(similarity, 1)
    if similarity <= calibration.similarity_floor or score < calibration.threshold:
        return None
    moment_s = frames[best[0]].pts_s
    # a still shows no overlay of its own; the archive video's (a logo, chrome) counts for nothing
    overlay = ArchiveFrames(stored, record.path, verify.frame_side).overlay_near(moment_s, moment_s)
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


def spans_around(times: Sequence[float], step: float) -> list[tuple[float, float]]:
    """The stretches within one sample step of any of `times`, overlapping ones merged, in time order."""
    spans: list[tuple[float, float]] = []
    for t in sorted(times):
        t0, t1 = max(0.0, t - step), t + step
        if spans and t0 <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], t1))
        else:
            spans.append((t0, t1))
    return spans


def best_moment_similarities(
    frames: Sequence[np.ndarray],
    vector: np.ndarray,
    metric: str,
    describe: Callable[[list[np.ndarray]], np.ndarray],
    stride: int,
) -> np.ndarray:
    """The still's similarity to every stride-th frame, then to the frames beside the best few
    of those; a frame never described stays at -inf. A grab of fast motion can match its own
    frame only (in the cockatoo grab the frame beside it scored 0.47 against 0.63 normalised,
    and did not verify), so the stride that bounds the cost must not skip the best moments'
    neighbours."""
    sims = np.full(len(frames), -np.inf)
    first = list(range(0, len(frames), stride))
    sims[first] = pairwise_similarity(metric, vector, describe([frames[i] for i in first]))[0]
    if stride > 1:
        beside = {j for i in np.argsort(-sims)[:MOMENTS] for j in range(i - stride + 1, i + stride)}
        rest = sorted(j for j in beside if 0 <= j < len(frames) and not np.isfinite(sims[j]))
        if rest:
            sims[rest] = pairwise_similarity(metric, vector, describe([frames[j] for j in rest]))[0]
    return sims
