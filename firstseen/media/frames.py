"""Random access into a video: the frame on screen at a time, and every frame of a short stretch, upright."""

from __future__ import annotations

import math
from pathlib import Path

import av
import av.error
import numpy as np

from firstseen.errors import BadInputError, MediaError
from firstseen.media.decode import (
    _PTS_EPSILON_S,
    _in_display_time,
    _open,
    _reorder_depth,
    _rotation_cw,
    _target_size,
    _video_stream,
)
from firstseen.records import SampledFrame


def frame_at(path: str | Path, t: float, *, max_side: int) -> SampledFrame:
    """The frame on screen at t seconds (timed like sample_frames: from the stream's start):
    the last frame presented at or before t, upright, longer side <= max_side. Decodes from
    the keyframe before t, so the cost does not grow with t. Evidence for a search result."""
    if not (math.isfinite(t) and t >= 0):
        raise BadInputError(f"time must be a finite number of seconds >= 0, got {t}", code="bad_time")
    container = _open(path)
    with container:
        stream = _video_stream(container)
        tb_s = float(stream.time_base)
        origin = stream.start_time or 0
        stream.codec_context.thread_type = "AUTO"
        frame, ts, clean = _shown_at(container, stream, origin, tb_s, t, seek=True)
        if frame is None or not clean:
            # The seek overshot t, or landed on a "keyframe" the decoder could not start from
            # (a container's sync-sample table can lie): decode from the start instead.
            container.seek(0)
            frame, ts, _ = _shown_at(container, stream, origin, tb_s, t, seek=False)
        if frame is None:
            raise MediaError("no decodable video frames")
        sar = float(stream.sample_aspect_ratio or 1) or 1.0
        return upright_frame(frame, (ts - origin) * tb_s, sar, max_side)


def upright_frame(frame: av.VideoFrame, t: float, sar: float, max_side: int) -> SampledFrame:
    """A decoded frame as evidence: RGB, longer side <= max_side (square pixels), turned upright."""
    w, h = _target_size(frame.width, frame.height, sar, max_side)
    rgb = frame.reformat(width=w, height=h, format="rgb24", interpolation="BILINEAR").to_ndarray()
    turns = _rotation_cw(frame) // 90
    if turns:
        rgb = np.ascontiguousarray(np.rot90(rgb, -turns))
    return SampledFrame(pts_s=max(0.0, t), rgb=rgb)


def frames_between(path: str | Path, t0: float, t1: float, *, max_side: int, limit: int = 120) -> list[SampledFrame]:
    """Every frame presented from t0 to t1 (at most `limit`), upright, longer side <= max_side,
    decoded from the keyframe before t0: the moments around an aligned time, for a still's
    exact match. Timed like sample_frames."""
    if not (math.isfinite(t0) and math.isfinite(t1) and 0 <= t0 <= t1):
        raise BadInputError(f"need 0 <= t0 <= t1, got {t0}, {t1}", code="bad_time")
    container = _open(path)
    with container:
        stream = _video_stream(container)
        stream.codec_context.thread_type = "AUTO"
        out, clean = _decoded_between(container, stream, t0, t1, max_side, limit, seek=t0 > 0)
        if not clean:
            # A "keyframe" the decoder could not start from (as in frame_at): from the start instead.
            container.seek(0)
            out, _ = _decoded_between(container, stream, t0, t1, max_side, limit, seek=False)
    return out


def _decoded_between(
    container, stream, t0: float, t1: float, max_side: int, limit: int, *, seek: bool
) -> tuple[list[SampledFrame], bool]:
    """The frames presented from t0 to t1, and whether every frame decoded on the way was whole."""
    tb_s = float(stream.time_base)
    origin = stream.start_time or 0
    if seek:
        container.seek(origin + int(t0 / tb_s), stream=stream, backward=True, any_frame=False)
    sar = float(stream.sample_aspect_ratio or 1) or 1.0
    out: list[SampledFrame] = []
    clean, decoded_any = True, False
    try:
        for frame, ts in _in_display_time(container.decode(stream), depth=_reorder_depth(stream.codec_context)):
            clean = clean and not frame.is_corrupt
            t = (ts - origin) * tb_s
            first, decoded_any = not decoded_any, True
            if seek and first and t > t0 + _PTS_EPSILON_S:
                # the decoder withheld the frames at t0 (intra refresh: it shows none until the
                # picture is whole again) or the seek went past t0
                return [], False
            if t > t1 + _PTS_EPSILON_S or len(out) >= limit:
                break
            if t < t0 - _PTS_EPSILON_S:
                continue
            out.append(upright_frame(frame, t, sar, max_side))
    except MediaError as exc:
        if not out:
            raise MediaError(f"{exc} near {t0:.1f}s") from exc
    return out, clean


def _shown_at(
    container, stream, origin: int, tb_s: float, t: float, *, seek: bool
) -> tuple[av.VideoFrame | None, int, bool]:
    """The last frame presented at or before t, its presentation time (in display order, as
    sample_frames times it), and whether every frame decoded on the way was whole. None when
    a seek went past t."""
    if seek and t > 0:
        container.seek(origin + int(t / tb_s), stream=stream, backward=True, any_frame=False)
    shown, shown_ts, clean = None, 0, True
    try:
        for frame, ts in _in_display_time(container.decode(stream), depth=_reorder_depth(stream.codec_context)):
            if (ts - origin) * tb_s > t + _PTS_EPSILON_S:
                # A first frame past t is the one on screen only when t precedes the video.
                return (
                    (frame, ts, clean and not frame.is_corrupt)
                    if shown is None and (not seek or t <= 0)
                    else (shown, shown_ts, clean)
                )
            shown, shown_ts = frame, ts
            clean = clean and not frame.is_corrupt
    except MediaError as exc:
        if shown is None:
            raise MediaError(f"{exc} near {t:.1f}s") from exc
    return shown, shown_ts, clean  # t at or past the last frame: the last frame stays on screen
