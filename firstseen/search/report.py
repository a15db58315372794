"""The human-readable search report: earliest known source first, then every match with its badges."""

from __future__ import annotations

from firstseen.search.results import MatchSegment, SearchResult, VideoMatch


def badges(segment: MatchSegment) -> list[str]:
    out = []
    if segment.timing_known and segment.reversed:
        out.append("REVERSED")
    if segment.timing_known and abs(segment.speed - 1.0) >= 0.08:  # within 8%: normal playback
        out.append(f"{segment.speed:.2g}x")
    if segment.mirrored:
        out.append("MIRRORED")
    return out


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


def describe_segment(segment: MatchSegment, kind: str) -> str:
    where = (
        f"{_clock(segment.source_start)}"
        if segment.source_start == segment.source_end
        else f"{_clock(segment.source_start)}-{_clock(segment.source_end)}"
    )
    query = "image" if kind == "image" else f"{_clock(segment.query_start)}-{_clock(segment.query_end)}"
    tags = " ".join(badges(segment))
    region = segment.evidence.describe() if segment.evidence else None
    return (
        f"query {query} -> source {where}  score {segment.score:.2f}"
        + (f"  [{tags}]" if tags else "")
        + (f"  ({region})" if region else "")
    )


def _date(match: VideoMatch) -> str:
    return match.video.published_at.date().isoformat() if match.video.published_at else "undated"


def _name(match: VideoMatch) -> str:
    v = match.video
    return f"{v.source or 'unknown outlet'}: {v.title or v.path}"


def format_result(result: SearchResult) -> str:
    q = result.query
    lines = [f"Query {q.filename} ({q.kind}, {q.duration_s:.1f} s, {q.frames_sampled} frames sampled)"]
    lines += [f"NOT VERIFIED: {u.video_id}: {u.reason}" for u in result.unverifiable]
    if result.reason == "too_little_picture":
        lines.append("NO MATCH: too little in the picture to search (black, flat or a plain card).")
        return "\n".join(lines)
    e = result.earliest
    if not result.matches or e is None:
        lines.append("NO MATCH: this footage was not found in the archive.")
        return "\n".join(lines)
    lines += [
        "",
        "EARLIEST KNOWN SOURCE",
        f"  {_date(e)}  {_name(e)}",
        f"  id {e.video.external_id or e.video_id}  {e.video.uri or ''}  {e.video.location or ''}".rstrip(),
        *(f"  {describe_segment(s, q.kind)}" for s in e.segments[:3]),
        "",
        f"ALL MATCHES ({len(result.matches)}, best first)",
    ]
    for rank, m in enumerate(result.matches, 1):
        via = f"  (copy of {m.via}, via copy links)" if m.via else ""
        lines.append(f"{rank:>2}. {m.score:.2f}  {_date(m)}  {_name(m)}  [{m.video.external_id or m.video_id}]{via}")
        lines += [f"      {describe_segment(s, q.kind)}" for s in m.segments]
    return "\n".join(lines)
