"""Sources filling part of the clip's frame, found through windows when the whole frame finds nothing.

windows.py proposes archive videos from windows of a few query frames; here a proposal's
leads must verify first, and the picture the geometry locates (the inset, else the proposing
window) is described in every frame, aligned, scored against the same calibrated threshold
and confirmed like any candidate. A full-frame copy never pays for this."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import numpy as np

from firstseen.archive import Archive
from firstseen.errors import MediaError
from firstseen.records import FrameVectors, sample_step
from firstseen.search.background import Background
from firstseen.search.calibration import Calibration
from firstseen.search.candidates import (
    INSET_MAX_AREA,
    CandidateMatch,
    VerifyPolicy,
    align_within,
    confirm_aligned,
    distinct_segments,
)
from firstseen.search.confirm import ArchiveFrames, Unverifiable
from firstseen.search.geometry import Region
from firstseen.search.overlay import OverlayMask
from firstseen.search.query import QueryVectors
from firstseen.search.verification import Verifier
from firstseen.search.windows import Lead, Proposal, propose

log = logging.getLogger(__name__)


def searchable_in_windows(query: QueryVectors, verify: VerifyPolicy | None) -> bool:
    """A clip's own frames (not an archived video's stored ones, as copy links search), with a
    descriptor to describe windows, not already a window's description."""
    return (
        verify is not None
        and verify.describe is not None
        and query.window is None
        and query.describe_region is not None
        and query.image is not None
    )


def match_in_windows(
    archive: Archive,
    query: QueryVectors,
    calibration: Calibration,
    verify: VerifyPolicy,
    *,
    neighbours: int,
    exclude: frozenset[str] = frozenset(),
    background: Background | None = None,
) -> tuple[list[CandidateMatch], list[Unverifiable]]:
    """The second chance for a source filling only part of the frame (windows.py): each
    proposal's frame pair must verify first; the picture it locates (the inset, else the
    proposing window) is then described in every frame, aligned, scored against the same
    calibrated threshold and confirmed like any candidate."""
    found: list[CandidateMatch] = []
    unverifiable: list[Unverifiable] = []
    if verify.describe is None or query.image is None:  # searchable_in_windows says no
        return found, unverifiable
    verifier = Verifier(verify.params)
    shown_overlay = query.static_overlay()
    proposals = propose(
        query.image,
        query.usable,
        verify.describe,
        archive.search_frames,
        neighbours=neighbours,
        background=background,
        background_k=calibration.background_k,
        exclude=exclude,
    )
    for proposal in proposals:
        try:
            stored = archive.raw_vectors(proposal.video_id, thumbnails=True)  # read once: located, aligned, confirmed
            if stored is None:
                continue
            located = _locate(archive, query, proposal, stored, verifier, verify, shown_overlay)
            if located is None:
                continue
            inner = query.within(located)
            aligned, kept = align_within(inner, proposal.video_id, stored, archive.spec.metric, calibration, background)
            confirmed = (
                distinct_segments(confirm_aligned(archive, inner, aligned, kept, verifier, verify)) if kept else []
            )
        except (MediaError, OSError) as exc:
            log.warning("cannot verify %s: %s", proposal.video_id, exc)
            unverifiable.append(Unverifiable(proposal.video_id, f"archived frames unreadable: {exc}"))
            continue
        if confirmed:
            found.append(CandidateMatch(proposal.video_id, confirmed[0].score, tuple(confirmed)))
    return found, unverifiable


def _locate(
    archive: Archive,
    query: QueryVectors,
    proposal: Proposal,
    stored: FrameVectors,
    verifier: Verifier,
    verify: VerifyPolicy,
    overlay: OverlayMask | None,
) -> Region | None:
    """Where the proposed source sits in the query frame, if one of the proposal's leads
    verifies (stored thumbnails first, then the archived file's frames at and around the lead's
    time): the inset the geometry found, or (a source filling the frame under overlays) the window."""
    if not len(stored.pts_s):
        return None
    record = archive.video(proposal.video_id)
    frames = ArchiveFrames(stored, record.path if record else "", verify.frame_side)
    step = sample_step(stored.pts_s)
    tries: list[tuple[Lead, Callable[[], np.ndarray], tuple]] = []
    if frames.has_thumbnails:
        for lead in proposal.leads:
            j = int(np.argmin(np.abs(stored.pts_s - lead.source_pts)))
            tries.append((lead, partial(frames.sample, j), (proposal.video_id, j)))
    for lead in proposal.leads[:1]:  # the archive samples a second apart: the moment may lie between
        for t in (lead.source_pts + f * step for f in (0, -0.25, 0.25, -0.5, 0.5)):
            tries.append((lead, partial(frames.at, max(0.0, t)), (proposal.video_id, "t", round(t, 3))))
    if query.image is None:
        return None
    for lead, source_image, key in tries:
        evidence = verifier.verify(
            query.image(lead.query_frame),
            source_image(),
            query_key=lead.query_frame,
            window=lead.window,
            source_key=key,
            query_overlay=overlay,
            source_overlay=frames.overlay_near(lead.source_pts, lead.source_pts),
        )
        if evidence.verified:
            inset = evidence.source_in_query
            return inset if inset is not None and inset.area <= INSET_MAX_AREA else lead.window
    return None
