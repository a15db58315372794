"""Copy links: at ingest, each new video is searched against the archive and shared footage is recorded.

Provenance is then known before anyone asks: a search that matches a late re-upload also
reaches the original through its links. A video is marked once its search is done; a run cut
short leaves it unmarked, and the next run (or the next commit) picks it up again."""

from __future__ import annotations

import logging

from firstseen.archive import Archive, CopyLinkFound
from firstseen.params import SearchParams
from firstseen.search.background import Background
from firstseen.search.calibration import Calibration
from firstseen.search.candidates import VerifyPolicy, match_videos
from firstseen.search.confirm import ArchiveFrames
from firstseen.search.query import QueryVectors
from firstseen.search.results import MatchSegment

log = logging.getLogger(__name__)


# Both sides of a link are archive samples about a second apart, so a stretch under two
# seconds whose direction could not even be told is too thin to carry provenance.
MIN_UNTIMED_LINK_S = 2.0


def _solid(segment: MatchSegment) -> bool:
    return segment.timing_known or segment.query_end - segment.query_start >= MIN_UNTIMED_LINK_S


def link_new_copies(
    archive: Archive,
    calibration: Calibration,
    search: SearchParams,
    verify: VerifyPolicy,
    background: Background | None = None,
) -> int:
    """Search every committed video not yet linked against the rest of the archive, using
    its stored vectors (nothing is decoded again), and record each shared stretch of footage
    in both directions. Returns the number of links written."""
    return link_videos(archive, calibration, search, verify, archive.videos_awaiting_copy_links(), background)


def link_videos(
    archive: Archive,
    calibration: Calibration,
    search: SearchParams,
    verify: VerifyPolicy,
    video_ids: list[str],
    background: Background | None = None,
) -> int:
    """Search each of these committed videos against the rest of the archive and record
    the footage it shares, verified by geometry on the stored thumbnails (or the archived
    files). Each link segment keeps its evidence."""
    written = 0
    # Pairs linked in this pass, from either side. Only those are not searched again: a pair
    # that failed from one side may verify from the other (its frames sampled at other moments:
    # a compilation's hazy diver stretch verified from the original, not from the compilation),
    # and excluding every video searched earlier lost such links whenever the copy came first.
    linked: set[frozenset[str]] = set()
    for video_id in video_ids:
        stored = archive.raw_vectors(video_id, thumbnails=True)
        record = archive.video(video_id)
        if stored is None or record is None:
            log.warning("copy links: raw vectors of %s are missing; left for verify/recovery", video_id)
            continue
        frames = ArchiveFrames(stored, record.path, verify.frame_side)
        query = QueryVectors.of_stored(video_id, stored, frames.sample)
        already = {other for pair in linked if video_id in pair for other in pair}
        matches, unverifiable = match_videos(
            archive,
            query,
            calibration,
            neighbours=search.neighbours,
            candidates=search.candidates,
            exclude=frozenset(already | {video_id}),
            verify=verify,
            background=background,
        )
        for missing in unverifiable:
            log.warning("copy links: %s against %s not verified: %s", video_id, missing.video_id, missing.reason)
        found = [
            CopyLinkFound(match.video_id, match.score, segments)
            for match in matches
            if (segments := [s.to_dict() for s in match.segments if _solid(s)])
        ]
        archive.record_copy_links(video_id, found)
        written += len(found)
        linked.update(frozenset((video_id, link.other_video_id)) for link in found)
        if matches:
            log.info("copy links: %s shares footage with %s", video_id, ", ".join(m.video_id for m in matches))
    return written
