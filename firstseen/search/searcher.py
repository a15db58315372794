"""Where a clip or still came from: the query described, its verified candidates, provenance and the earliest source."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from firstseen.archive import Archive, DescriptorSpec, open_archive
from firstseen.descriptors import FrameDescriptor, create_descriptor
from firstseen.errors import BadInputError
from firstseen.params import QueryParams, SearchParams
from firstseen.search.background import Background
from firstseen.search.calibration import Calibration, load_scoring
from firstseen.search.candidates import NearMiss, VerifyPolicy, match_videos
from firstseen.search.geometry_rescue import rescue_near_misses
from firstseen.search.partial_frame import match_in_windows, searchable_in_windows
from firstseen.search.provenance import copies_through_links, earliest_source
from firstseen.search.query import QueryVectors, describe_query
from firstseen.search.results import SearchResult, VideoMatch
from firstseen.search.still_moment import match_still_moment, searchable_as_still
from firstseen.settings import Settings

log = logging.getLogger(__name__)


def find_sources(
    archive: Archive,
    query: QueryVectors,
    calibration: Calibration,
    params: SearchParams,
    *,
    top_k: int = 10,
    verify: VerifyPolicy | None = None,
    background: Background | None = None,
) -> SearchResult:
    """The archive videos holding the query's footage, best first, and the earliest of them
    (also among copies known only through verified copy links recorded at ingest)."""
    if top_k < 1:
        raise BadInputError(f"top-k must be at least 1, got {top_k}")
    started = time.perf_counter()
    if not query.usable.any():
        return SearchResult(
            query.info, (), None, {"match_s": time.perf_counter() - started}, reason="too_little_picture"
        )
    near: list[NearMiss] = []
    candidates, unverifiable = match_videos(
        archive,
        query,
        calibration,
        neighbours=params.neighbours,
        candidates=params.candidates,
        verify=verify,
        background=background,
        near_misses=near,
    )
    # nothing at the samples: a still may show a moment between them (still_moment.py), or the
    # source may fill only part of the frame (partial_frame.py)
    if not candidates and verify is not None and searchable_as_still(query, verify):
        candidates = match_still_moment(
            archive,
            query,
            calibration,
            verify,
            neighbours=params.neighbours,
            exclude=frozenset(u.video_id for u in unverifiable),
            background=background,
        )
    if not candidates and verify is not None and searchable_in_windows(query, verify):
        candidates, failed = match_in_windows(
            archive,
            query,
            calibration,
            verify,
            neighbours=params.neighbours,
            exclude=frozenset(u.video_id for u in unverifiable),
            background=background,
        )
        unverifiable = unverifiable + failed
    # last, a near miss proved by its geometry and its aligned parts (a tight crop, a 9:16 re-framing)
    if not candidates and verify is not None:
        candidates, failed = rescue_near_misses(archive, query, near, calibration, verify, background)
        unverifiable = unverifiable + failed
    direct = [VideoMatch(record, m.score, m.segments) for m in candidates if (record := archive.video(m.video_id))]
    via_links = copies_through_links(direct, archive.copy_links, archive.video, verified_only=verify is not None)
    holders = sorted(direct + via_links, key=lambda m: -m.score)
    earliest = earliest_source(holders)
    shown = holders[:top_k]
    if earliest is not None and earliest not in shown:
        shown.append(earliest)  # the answer a fact-checker came for is never cut off
    return SearchResult(
        query.info, tuple(shown), earliest, {"match_s": time.perf_counter() - started}, unverifiable=tuple(unverifiable)
    )


def search_file(
    archive: Archive,
    path: Path,
    descriptor: FrameDescriptor,
    calibration: Calibration,
    query_params: QueryParams,
    search_params: SearchParams,
    *,
    top_k: int = 10,
    verify: VerifyPolicy | None = None,
    background: Background | None = None,
) -> SearchResult:
    """Decode, describe and search one query file, timing each stage."""
    started = time.perf_counter()
    query = describe_query(path, descriptor, query_params)
    described = time.perf_counter()
    result = find_sources(archive, query, calibration, search_params, top_k=top_k, verify=verify, background=background)
    result.timings_s.update(describe_s=described - started, total_s=time.perf_counter() - started)
    log.info(
        "searched %s: %s, %d matches in %.2f s",
        query.info.filename,
        result.verdict,
        len(result.matches),
        result.timings_s["total_s"],
    )
    return result


class Searcher:
    """What a search needs, loaded once: the descriptor, its calibration and the archive
    (read-only, checked to have been built with that descriptor). The CLI opens one per
    command; a long-lived caller keeps one."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.descriptor = create_descriptor(settings.descriptor, settings)
        self.calibration, self.background = load_scoring(
            self.descriptor.config_id, settings.calibration_path, settings.background_dir
        )
        self.archive = open_archive(
            settings.data_dir,
            settings.resolved_catalog_url(),
            DescriptorSpec.of(self.descriptor),
            nprobe=settings.index_nprobe,
            index_url=settings.index_url,
        )
        self.verify = VerifyPolicy.from_settings(settings, self.descriptor.describe)
        self.query_params, self.search_params = (
            QueryParams.from_settings(settings),
            SearchParams.from_settings(settings),
        )

    def search(self, path: Path, *, top_k: int = 10) -> SearchResult:
        return search_file(
            self.archive,
            path,
            self.descriptor,
            self.calibration,
            self.query_params,
            self.search_params,
            top_k=top_k,
            verify=self.verify,
            background=self.background,
        )

    def close(self) -> None:
        self.archive.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
