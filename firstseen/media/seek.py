"""A few frames of a file at chosen times, read in one pass: no seek and keyframe decode for each (evidence packs).

frame_at opens the file and decodes from the keyframe before t for every frame; a pack asks
for a dozen moments of one video (a segment's start, middle and end, a six-frame strip),
often inside one group of pictures. Here the times are sorted, nearby ones (GROUP_S apart at
most) share one seek, and each is given the frame on screen at it, timed as sample_frames
times it. A seek onto a keyframe the decoder cannot start from is redone from the start, as
frame_at does."""

from __future__ import annotations

from pathlib import Path

from firstseen.errors import MediaError
from firstseen.media.decode import _PTS_EPSILON_S, _in_display_time, _open, _reorder_depth, _video_stream
from firstseen.media.frames import frame_at, upright_frame
from firstseen.records import SampledFrame

GROUP_S = (
    30.0  # times closer than this are read after one seek (decoding on is cheaper than seeking back to a keyframe)
)


def frames_at(path: str | Path, times: list[float], *, max_side: int) -> dict[float, SampledFrame]:
    """The frame on screen at each time (the last presented at or before it; past the end, the last frame)."""
    wanted = sorted({float(t) for t in times if t >= 0})
    out: dict[float, SampledFrame] = {}
    groups: list[list[float]] = []
    for t in wanted:
        if groups and t - groups[-1][0] <= GROUP_S:
            groups[-1].append(t)
        else:
            groups.append([t])
    for group in groups:
        got = _read_group(path, group, max_side, seek=True)
        if got is None:  # the seek overshot, or landed where the decoder cannot start
            got = _read_group(path, group, max_side, seek=False)
        if got is None:
            got = {t: frame_at(path, t, max_side=max_side) for t in group}
        out.update(got)
    return out


def _read_group(path, group: list[float], max_side: int, *, seek: bool) -> dict[float, SampledFrame] | None:
    container = _open(path)
    with container:
        stream = _video_stream(container)
        stream.codec_context.thread_type = "AUTO"
        tb_s, origin = float(stream.time_base), stream.start_time or 0
        if seek and group[0] > 0:
            container.seek(origin + int(group[0] / tb_s), stream=stream, backward=True, any_frame=False)
        sar = float(stream.sample_aspect_ratio or 1) or 1.0
        pending, out = list(group), {}
        shown, shown_t = None, 0.0
        try:
            for frame, ts in _in_display_time(container.decode(stream), depth=_reorder_depth(stream.codec_context)):
                if frame.is_corrupt and seek:
                    return None
                t = (ts - origin) * tb_s
                if shown is None and seek and t > pending[0] + _PTS_EPSILON_S and pending[0] > 0:
                    return None
                while pending and t > pending[0] + _PTS_EPSILON_S:
                    out[pending.pop(0)] = upright_frame(
                        shown if shown is not None else frame, shown_t if shown is not None else t, sar, max_side
                    )
                if not pending:
                    break
                shown, shown_t = frame, t
        except MediaError:
            if shown is None:
                raise
        for t in pending:  # past the last frame: it stays on screen
            if shown is None:
                raise MediaError("no decodable video frames")
            out[t] = upright_frame(shown, shown_t, sar, max_side)
        return out
