"""Provenance: which archive videos hold the query's footage (directly or through copy links), and the earliest."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime

from firstseen.records import CopyLinkRecord, VideoRecord
from firstseen.search.results import MatchSegment, VideoMatch

# Archive frames are about a second apart, so a link's range is only known to about that.
LINK_SLACK_S = 0.5


def follow_link(
    segment: MatchSegment, link_segment: dict, link_score: float, *, min_query_s: float = 0.5
) -> MatchSegment | None:
    """Carry a query->V segment through one segment of a V->O copy link (query_* are V's
    times, source_* O's): the part of the query that O also holds, mapped into O's time.
    None when O holds less than half of what the query shows of V."""
    link = MatchSegment.from_dict(link_segment, score=0.0)
    lo, hi = link.query_start - LINK_SLACK_S, link.query_end + LINK_SLACK_S
    slope = segment.slope
    if slope == 0.0:  # one frame, or no measurable motion: in or out as a whole
        # inside the link by the slack: at an end, the frame may show what the link's video
        # has just before or after the shared footage (a compilation's next clip)
        if (
            not link.query_start + LINK_SLACK_S
            <= segment.source_at(segment.query_start)
            <= link.query_end - LINK_SLACK_S
        ):
            return None
        q0, q1 = segment.query_start, segment.query_end
    elif not segment.timing_known:
        # A stretch too still to time says which span of V it shows, not which moment maps
        # where: in or out as a whole too. A span reaching past the link (a compilation's
        # clips on both sides of a cut) does not show the linked video's footage.
        if not (lo <= segment.source_start and segment.source_end <= hi):
            return None
        q0, q1 = segment.query_start, segment.query_end
    else:
        a = segment.query_start + (lo - segment.source_at(segment.query_start)) / slope
        b = segment.query_start + (hi - segment.source_at(segment.query_start)) / slope
        q0, q1 = max(min(a, b), segment.query_start), min(max(a, b), segment.query_end)
        # Link ends are only known to about an archive step, so a sliver of overlap at an
        # end is noise: the linked video must share most of what the query shows.
        span = segment.query_end - segment.query_start
        needed = max(min(min_query_s, span), 0.5 * span)
        if q1 - q0 < needed or q1 < q0:
            return None

    def to_other(q: float) -> float:
        v = min(max(segment.source_at(q), link.query_start), link.query_end)
        return max(link.source_at(v), 0.0)

    o0, o1 = sorted((to_other(q0), to_other(q1)))
    combined = slope * link.slope
    timing_known = segment.timing_known and link.timing_known and combined != 0.0
    return MatchSegment(
        query_start=q0, query_end=q1, source_start=o0, source_end=o1,
        speed=abs(combined) if timing_known else 1.0, reversed=timing_known and combined < 0,
        mirrored=segment.mirrored, score=min(segment.score, link_score), timing_known=timing_known,
        evidence=segment.evidence,
    )  # fmt: skip


def copies_through_links(
    direct: Sequence[VideoMatch],
    links_of: Callable[[str], list[CopyLinkRecord]],
    record_of: Callable[[str], VideoRecord | None],
    *,
    max_hops: int = 3,
    verified_only: bool = True,
) -> list[VideoMatch]:
    """Videos the query did not match directly but which hold its footage according to the
    copy links recorded at ingest, best first. Following a link keeps only the part of the
    query the linked video shares, so a copy that shares other footage is not pulled in.
    With verified_only, a link segment counts only if the geometry confirmed it at ingest
    (links recorded before verification existed count once `firstseen recheck` confirms them)."""
    found: dict[str, VideoMatch] = {}
    seen = {m.video_id for m in direct}
    frontier = deque((m, 0) for m in direct)
    while frontier:
        match, hops = frontier.popleft()
        if hops >= max_hops:
            continue
        for link in links_of(match.video_id):
            if link.other_video_id in seen:
                continue
            usable = [ls for ls in link.segments if not verified_only or _verified(ls)]
            carried = [
                c
                for seg in match.segments
                for link_seg in usable
                if (c := follow_link(seg, link_seg, link.score)) is not None
            ]
            if not carried:
                continue
            record = record_of(link.other_video_id)
            if record is None or record.status != "committed":
                continue
            carried.sort(key=lambda s: -s.score)
            copy = VideoMatch(record, max(s.score for s in carried), tuple(carried), via=match.video_id)
            seen.add(copy.video_id)
            found[copy.video_id] = copy
            frontier.append((copy, hops + 1))
    return sorted(found.values(), key=lambda m: -m.score)


def _verified(link_segment: dict) -> bool:
    evidence = link_segment.get("evidence")
    return isinstance(evidence, dict) and int(evidence.get("pairs_verified", 0)) > 0


def earliest_source(matches: Sequence[VideoMatch]) -> VideoMatch | None:
    """The earliest-published video among those holding the footage; ties go to the better
    match. Undated videos cannot be placed in time, so they count only when none is dated."""
    dated = [m for m in matches if m.video.published_at is not None]
    if dated:
        return min(dated, key=lambda m: (_sort_key(m.video.published_at), -m.score))
    return matches[0] if matches else None


def _sort_key(value: datetime | None) -> float:
    return value.timestamp() if value is not None else float("inf")
