"""The evidence pack's report: one self-contained HTML page (printable, readable on a phone) and its PDF.

Everything the page shows is inside it (frames as data URLs, the style inline), so it opens
from a zip, a mail attachment or an archive years later. The PDF is rendered from the same
HTML by WeasyPrint, a pure-Python layout engine on Pango (tens of MB installed, against
hundreds for a headless browser); where it is not installed the pack says so and keeps the HTML."""

from __future__ import annotations

import base64
import html
import logging

from firstseen.evidence.pack_records import EvidencePack, PackFrame, PackSegment

log = logging.getLogger(__name__)

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"DejaVu Sans",sans-serif;margin:0 auto;max-width:980px;padding:12px;
color:#111}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.4em}
h3{font-size:1em;margin:1em 0 .3em}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top;font-size:.92em}
.answer{background:#f3f7ff;border:1px solid #b9cdf5;padding:10px;border-radius:6px}
.flag{display:inline-block;background:#b00020;color:#fff;border-radius:4px;padding:0 6px;margin-right:4px;
font-weight:600}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:6px;margin:.4em 0}
.pair figure,.strip figure{margin:0}.pair img,.strip img{width:100%;height:auto;display:block;border:1px solid #ccc}
figcaption{font-size:.8em;color:#333}.strip{display:grid;grid-template-columns:repeat(6,1fr);gap:4px}
.text{font-style:italic}.missing{color:#b00020}code{font-size:.85em;word-break:break-all}
@media (max-width:600px){.strip{grid-template-columns:repeat(3,1fr)}body{padding:6px}}
@media print{body{max-width:none}h2{break-after:avoid}.pair,.strip{break-inside:avoid}}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _timecode(t: float) -> str:
    minutes, seconds = divmod(max(0.0, t), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:d}:{minutes:02d}:{seconds:06.3f}"


def _figure(frame: PackFrame, label: str) -> str:
    text = "".join(f'<div class="text">on screen: “{_e(t)}”</div>' for t in frame.text)
    if frame.jpeg is None:
        return (
            f'<figure><div class="missing">{_e(label)} {_timecode(frame.t)}: not available ({_e(frame.reason)})'
            f"</div></figure>"
        )
    src = "data:image/jpeg;base64," + base64.b64encode(frame.preview or frame.jpeg).decode()
    return (
        f'<figure><img src="{src}" alt="{_e(label)} at {_timecode(frame.t)}" title="{_e(frame.name)}">'
        f"<figcaption>{_e(label)} {_timecode(frame.t)}{text}</figcaption></figure>"
    )


def _claims(seg: PackSegment) -> str:
    s = seg.segment
    flags = []
    if s.reversed:
        flags.append("REVERSED")
    if s.mirrored:
        flags.append("MIRRORED")
    if s.timing_known and abs(s.speed - 1.0) > 0.1:
        flags.append(f"RE-TIMED x{s.speed:.2f}")
    region = s.evidence.describe() if s.evidence else None
    return "".join(f'<span class="flag">{f}</span>' for f in flags) + (f" {_e(region)}" if region else "")


def _segment(seg: PackSegment) -> str:
    m, s = seg.match, seg.segment
    out = [
        f"<h3>{seg.index}. {_e(m.video.title or m.video.external_id)}: query {_timecode(s.query_start)}–"
        f"{_timecode(s.query_end)} ↔ archive {_timecode(s.source_start)}–{_timecode(s.source_end)}</h3>",
        f"<p>{_claims(seg)} score {s.score:.3f}"
        + (
            f", {s.evidence.pairs_verified} of {s.evidence.pairs_checked} frame pairs verified, "
            f"{s.evidence.inliers} matched points"
            + (
                f", {s.evidence.picture_agreement:.0%} of the shared picture agrees once aligned"
                if s.evidence.picture_agreement is not None
                else ""
            )
            if s.evidence
            else ""
        )
        + "</p>",
    ]
    for label, (query, source) in zip(("start", "middle", "end"), seg.frames):
        out.append(f'<div class="pair">{_figure(query, f"clip {label}")}{_figure(source, "archive")}</div>')
    if seg.strip:
        direction = "runs backwards" if s.reversed else f"runs at {s.speed:.2f}x"
        out.append(
            f"<p>Strip: the clip's frames in its own order (top) over the archive frames they show "
            f"(bottom); the archive's time {direction}.</p>"
        )
        out.append(
            '<div class="strip">'
            + "".join(_figure(q, "clip") for q, _ in seg.strip)
            + "".join(_figure(a, "archive") for _, a in seg.strip)
            + "</div>"
        )
    if seg.archive_text:
        out.append(
            "<p>The archive's own on-screen text in this stretch: "
            + "; ".join(f"“{_e(t)}”" for t in seg.archive_text)
            + "</p>"
        )
    return "\n".join(out)


def _link(uri: str | None) -> str:
    return f'<a href="{_e(uri)}">{_e(uri)}</a>' if uri else ""


def _timeline(pack: EvidencePack) -> str:
    holders = sorted(pack.result.matches, key=lambda m: (m.video.published_at is None, m.video.published_at or 0))
    rows = "".join(
        f"<tr><td>{_e(m.video.published_at.date() if m.video.published_at else 'unknown')}</td>"
        f"<td>{_e(m.video.source)}</td><td>{_e(m.video.title)}</td><td>{_e(m.video.location)}</td>"
        f"<td>{_link(m.video.uri)}</td><td>{m.score:.3f}{' (via a copy link)' if m.via else ''}</td></tr>"
        for m in holders
    )
    return (
        "<table><tr><th>published</th><th>outlet</th><th>title</th><th>location</th><th>link</th>"
        f"<th>score</th></tr>{rows}</table>"
    )


def render_html(pack: EvidencePack) -> str:
    result, earliest = pack.result, pack.result.earliest
    if earliest is not None:
        v = earliest.video
        answer = (
            f"<p><b>Earliest known source:</b> {_e(v.title)} — {_e(v.source)}, published "
            f"<b>{_e(v.published_at.date() if v.published_at else 'date unknown')}</b>"
            f"{', ' + _e(v.location) if v.location else ''}. {len(result.matches)} archive "
            f"cop{'y' if len(result.matches) == 1 else 'ies'} hold this footage.</p>"
        )
    else:
        answer = (
            "<p><b>No source found in the archive.</b>"
            + (
                " The clip has too little in the picture to search."
                if result.reason == "too_little_picture"
                else " Not found is not a finding about the clip: the archive may not hold its footage."
            )
            + "</p>"
        )
    missing = "".join(f'<li class="missing">{_e(m)}</li>' for m in pack.missing)
    facts = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pack.query_facts.items())
    made = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pack.produced_by.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>FirstSeen evidence: {_e(result.query.filename)}</title><style>{STYLE}</style></head><body>
<h1>Evidence: {_e(result.query.filename)}</h1>
<div class="answer">{answer}</div>
{"<h2>Archived files not available</h2><ul>" + missing + "</ul>" if missing else ""}
{"<h2>Every known copy, by publish date</h2>" + _timeline(pack) if result.matches else ""}
{"<h2>Aligned footage</h2>" + "".join(_segment(s) for s in pack.segments) if pack.segments else ""}
<h2>The clip searched</h2><table>{facts}</table>
<h2>What produced this</h2><table>{made}</table>
<p>The frames at their files' own resolution are in <code>segments/</code> (each picture's title names
its file); the full result, as the API returns it, is in <code>result.json</code>; every file's sha256 in
<code>manifest.json</code>.</p>
</body></html>
"""


def render_pdf(page: str) -> bytes | None:
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: Pango missing
        log.warning("report.pdf not made: WeasyPrint is not usable here (%s)", exc)
        return None
    return HTML(string=page).write_pdf()
