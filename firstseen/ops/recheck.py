"""Bringing an archive made before verification up to date: frame flags and thumbnails, then every copy link re-checked.

Archives ingested before geometric verification hold raw vectors without uninformative-frame
flags or thumbnails, and copy links recorded on descriptor similarity alone (about half of
them false on a broad archive). `firstseen recheck` decodes each such video's archived file
once to flag its frames and keep their thumbnails (the vectors, and so the index, stay as
they are), then drops every copy link and records them again, verified. Each step is
recoverable: a video's raw file is replaced atomically, and links are re-made video by
video, each marked when done, so a run cut short is finished by the next ingest or recheck."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from firstseen.archive import Archive
from firstseen.errors import MediaError
from firstseen.ingest.copylinks import link_new_copies
from firstseen.media.decode import sample_frames
from firstseen.media.informative import informative_flags
from firstseen.params import IngestPolicy, SearchParams
from firstseen.records import FrameVectors, Thumbnails
from firstseen.search.background import Background
from firstseen.search.calibration import Calibration
from firstseen.search.candidates import VerifyPolicy
from firstseen.search.verification import encode_thumbnail
from firstseen.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class RecheckReport:
    videos: int = 0
    refreshed: int = 0  # videos given flags and thumbnails
    uninformative_frames: int = 0
    links_before: int = 0
    links_after: int = 0
    missing: list[dict] = field(default_factory=list)  # videos whose archived file could not be read

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def refresh_frames(
    archive: Archive, policy: IngestPolicy, video_id: str, path: str, *, reflag: bool = False
) -> FrameVectors | None:
    """Flags and thumbnails for a stored video, from its archived file decoded as at ingest;
    None when it already has both (and reflag, for flags from an older test, is not asked).
    Frames are matched to the stored timestamps, nearest first."""
    stored = archive.raw_vectors(video_id, thumbnails=True)
    if stored is None:
        return None
    if not reflag and stored.informative is not None and (stored.thumbnails or not policy.thumbnail_max_side):
        return None
    frames = list(
        sample_frames(
            path,
            fps=policy.archive_fps,
            max_side=policy.decode.max_side,
            threads=policy.decode.threads,
            max_truncation_s=policy.decode.max_truncation_s,
        )
    )
    if not frames:
        raise MediaError("no decodable video frames")
    times = np.array([f.pts_s for f in frames])
    nearest = [int(np.argmin(np.abs(times - t))) for t in stored.pts_s]
    pictures = [frames[i].rgb for i in nearest]
    thumbs = (
        Thumbnails.pack([encode_thumbnail(p, policy.thumbnail_max_side) for p in pictures])
        if policy.thumbnail_max_side
        else None
    )
    return FrameVectors(stored.descriptor, stored.pts_s, stored.vectors, informative_flags(pictures), thumbs)


def recheck_archive(
    archive: Archive,
    calibration: Calibration,
    settings: Settings,
    background: Background | None = None,
    *,
    progress=None,
) -> RecheckReport:
    policy = IngestPolicy.from_settings(settings)
    report = RecheckReport()
    reflag = not archive.flags_are_current()  # flagged by an older uninformative-frame test
    videos = archive.videos("committed")
    report.videos = len(videos)
    for record in videos:
        try:
            refreshed = refresh_frames(archive, policy, record.video_id, record.path, reflag=reflag)
        except MediaError as exc:
            log.warning("recheck: %s (%s) left unflagged: %s", record.video_id, record.path, exc)
            report.missing.append({"video_id": record.video_id, "path": record.path, "reason": str(exc)})
            refreshed = None
        if refreshed is not None:
            archive.replace_raw_vectors(record.video_id, refreshed)
            report.refreshed += 1
            if refreshed.informative is not None:
                report.uninformative_frames += int((~refreshed.informative).sum())
        if progress:
            progress(1)
    if reflag and not report.missing:
        archive.mark_flags_current()
    report.links_before = archive.stats().copy_links
    archive.forget_copy_links()
    link_new_copies(
        archive, calibration, SearchParams.from_settings(settings), VerifyPolicy.from_settings(settings), background
    )
    report.links_after = archive.stats().copy_links
    return report
