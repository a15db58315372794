"""Reading media files: probing videos, sampling their frames at real timestamps, loading stills."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from pathlib import Path

import av
import av.error
import numpy as np
from av.stream import Disposition
from av.video.reformatter import VideoReformatter

from firstseen.errors import MediaError
from firstseen.records import SampledFrame, VideoInfo

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    ".mp4 .mov .mkv .webm .avi .ogv .ogg .m4v .mpg .mpeg .ts .flv .wmv .3gp .mxf".split()
)
IMAGE_EXTENSIONS: frozenset[str] = frozenset(".jpg .jpeg .png .webp .bmp".split())

# FFmpeg's own threading choice: scripts/bench_decode.py found SLICE, FRAME and AUTO within
# run-to-run noise on two cores, and AUTO also scales on many-core servers.
THREAD_TYPE = "AUTO"  # module-level so the benchmark can try the others
# When sampling (fps given), frames no other frame depends on are not decoded: less decoding on
# B-frame codecs, and the frames sampled keep their real PTS (at most a frame after the target).
SKIP_NONREF_DEFAULT = True

# Timestamps are quantised to the container's time base (mp4 often 1/12800 or coarser), so a
# frame meant for a target time may land a few ticks before it; 1 ms is far below any frame gap.
_PTS_EPSILON_S = 1e-3

# Signatures of containers FFmpeg reads: a file that starts like one but won't open is corrupt
# rather than "not a video", which tells the operator to re-fetch it instead of ignoring it.
_CONTAINER_MAGIC = (
    (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"wide"), (4, b"free"),
    (0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"), (0, b"OggS"), (0, b"FLV"),
    (0, b"\x00\x00\x01\xba"), (0, b"\x00\x00\x01\xb3"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"), (0, b"\x06\x0e\x2b\x34"),
)  # fmt: skip


def _looks_like_container(head: bytes) -> bool:
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:  # MPEG-TS sync bytes
        return True
    return any(head[off : off + len(magic)] == magic for off, magic in _CONTAINER_MAGIC)


def _open(path: str | Path) -> av.container.InputContainer:
    """Open a file for decoding, or explain in MediaError why it is not usable as video."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise MediaError("empty file (0 bytes)", code="empty_file")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        if isinstance(exc, OSError):  # permission denied, I/O error: not the file's content
            raise MediaError(f"cannot read file: {reason}") from exc
        with p.open("rb") as fh:
            head = fh.read(512)
        if _looks_like_container(head):
            raise MediaError(f"corrupt or unreadable video container: {reason}") from exc
        raise MediaError(
            f"not a video file: FFmpeg does not recognise {p.name!r} ({reason})", code="not_media"
        ) from exc
    try:
        _video_stream(container)
    except MediaError:
        container.close()
        raise
    return container


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    # FFmpeg reads a lone .png/.jpg as a one-frame "video" (image2 / *_pipe demuxers); we reject
    # it so stills always go through load_image, which honours EXIF and guards against bombs.
    name = container.format.name
    if name == "image2" or name.endswith("_pipe"):
        raise MediaError(f"still image, not a video ({name}): load it as an image")
    for stream in container.streams.video:
        # cover art in music files shows up as a one-picture video stream
        if not stream.disposition & Disposition.attached_pic:
            return stream
    if container.streams.audio:
        raise MediaError("audio-only file: no video stream", code="no_video_stream")
    raise MediaError("no video stream in file", code="no_video_stream")


def _rotation_cw(frame: av.VideoFrame) -> int:
    # frame.rotation is the display matrix's counter-clockwise angle in [-180, 180]
    return (-round(frame.rotation / 90) * 90) % 360


def probe(path: str | Path) -> VideoInfo:
    """What a video file holds, decoding only its first frame (for the display rotation).

    width/height are the stored (coded) size; a player turns the picture `rotation` degrees
    clockwise, so a portrait phone clip reads e.g. 1920x1080 with rotation 90. Still images
    (FFmpeg's image2 demuxers) are rejected with MediaError: use load_image for them.
    """
    container = _open(path)
    with container:
        stream = _video_stream(container)
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        cc = stream.codec_context
        if not (cc.width > 0 and cc.height > 0):
            raise MediaError("corrupt video: the stream declares no frame size")
        rate = stream.average_rate
        rotation = 0
        cc.thread_type = "SLICE"  # frame threading would decode several frames before the first
        try:
            for packet in container.demux(stream):
                frames = stream.decode(packet)
                if frames:
                    rotation = _rotation_cw(frames[0])
                    break
        except av.error.FFmpegError as exc:
            raise MediaError(f"corrupt video: {exc} at ~0s") from exc
        return VideoInfo(
            duration_s=max(0.0, duration) if math.isfinite(duration) else 0.0,
            width=cc.width,
            height=cc.height,
            codec=cc.name,
            avg_fps=float(rate) if rate else None,
            rotation=rotation,
            container=container.format.name,
        )


def _target_size(width: int, height: int, sar: float, max_side: int) -> tuple[int, int]:
    shown_w = width * sar  # anamorphic video (DV, some broadcast) has non-square pixels
    scale = min(1.0, max_side / max(shown_w, height))
    return max(1, round(shown_w * scale)), max(1, round(height * scale))


def _declared_shortfall(container, stream, decoded_end: float, origin_s: float) -> float | None:
    """How many seconds of declared footage did not decode, or None if nothing is declared."""
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base) - decoded_end
    if container.duration is not None:
        # Some muxers (Matroska) count the container duration from 0 rather than from the
        # first timestamp: take the kinder reading so an offset start is not called truncated.
        declared = container.duration / av.time_base
        return min(declared - decoded_end, declared - (decoded_end + origin_s))
    return None


def _reorder_depth(codec_context) -> int:
    # How many frames the decoder may hold back to reorder B-frames, plus one to spare; a
    # codec without reordering needs no window (and saves the per-frame bookkeeping).
    delay = int(getattr(codec_context, "has_b_frames", 0) or 0)
    return delay + 1 if delay else 0


class _PacketSkipper:
    """Decodes only what sampling needs. For intra-only codecs (MJPEG, ProRes, ...) every
    packet is a whole picture, so packets before the next sampling target are never decoded.
    It also remembers where the demuxed data ends, which skipped packets still prove."""

    def __init__(self, stream, origin: int | None, intra_only: bool):
        self.tb = float(stream.time_base)  # floats: Fraction arithmetic per packet is slow
        self.origin = origin
        self.intra_only = intra_only
        self.next_target_s = 0.0
        self.data_end_s = 0.0
        self.packets = 0
        self.bad_packets = 0
        self.first_bad_s: float | None = None

    def frames(self, container, stream) -> Iterator[av.VideoFrame]:
        for packet in container.demux(stream):
            if packet.size and packet.pts is not None:
                if self.origin is None:
                    self.origin = packet.pts
                start = (packet.pts - self.origin) * self.tb
                self.data_end_s = max(self.data_end_s, start + (packet.duration or 0) * self.tb)
                if self.intra_only and start < self.next_target_s - _PTS_EPSILON_S:
                    continue
            self.packets += 1
            try:
                frames = packet.decode()  # the last, empty packet flushes the decoder
            except av.error.FFmpegError:
                # One damaged packet (often the last, partial one of a cut file) should not
                # hide the rest; the caller judges the damage once the stream ends.
                self.bad_packets += 1
                if self.first_bad_s is None:
                    self.first_bad_s = self.data_end_s
                continue
            yield from frames

    def too_damaged(self) -> bool:
        return self.bad_packets > max(3, self.packets // 100)


def _in_display_time(decoded: Iterator[av.VideoFrame], depth: int) -> Iterator[tuple[av.VideoFrame, int]]:
    """Pair each decoded frame with its presentation timestamp.

    Decoders emit frames in display order, but containers without presentation times (AVI with
    packed B-frames) give them their packets' decode times, which are permuted. The set of
    times is right, so the k-th frame out gets the k-th smallest time in a window as deep as
    the codec's reordering: on streams already in order this changes nothing."""
    pending: list[av.VideoFrame] = []
    times: list[int] = []
    while True:
        try:
            frame = next(decoded)
        except StopIteration:
            break
        except av.error.FFmpegError as exc:
            raise MediaError(f"corrupt video: {exc}") from exc
        # PyAV hides best_effort_timestamp; without a pts the packet's dts is the best guess
        ts = frame.pts if frame.pts is not None else frame.dts
        if ts is None:
            continue
        if not depth:
            yield frame, ts
            continue
        pending.append(frame)
        heapq.heappush(times, ts)
        if len(pending) > depth:
            yield pending.pop(0), heapq.heappop(times)
    while pending:
        yield pending.pop(0), heapq.heappop(times)


def sample_frames(
    path: str | Path,
    *,
    fps: float | None,
    max_side: int,
    threads: int = 0,
    skip_nonref: bool | None = None,
    max_truncation_s: float = 2.0,
) -> Iterator[SampledFrame]:
    """Decode the first video stream and yield upright RGB frames at their real timestamps.

    pts_s is the frame's presentation time minus the stream's start time. fps=None yields every
    frame; fps=r yields, for each target k/r, the first decoded frame at or after it (one frame
    covering several targets is yielded once). When sampling, non-reference frames are not
    decoded by default (skip_nonref), so a pick may land a frame or two after its target, always
    at its own real time. Only yielded frames are converted, straight to a size whose
    longer side is <= max_side. Raises MediaError (after yielding what decoded) for corrupt,
    truncated or frameless video; the file is opened on the first next().
    """
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive or None, got {fps}")
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    skip = (SKIP_NONREF_DEFAULT and fps is not None) if skip_nonref is None else skip_nonref
    eps = _PTS_EPSILON_S if fps is None else min(_PTS_EPSILON_S, 0.1 / fps)

    container = _open(path)
    try:
        stream = _video_stream(container)
        cc = stream.codec_context
        cc.thread_type = THREAD_TYPE
        cc.thread_count = threads
        if skip:
            cc.skip_frame = "NONREF"
        tb = stream.time_base
        tb_s = float(tb)
        origin = stream.start_time  # None for some raw streams: then the first frame's pts
        sar = float(stream.sample_aspect_ratio or 1) or 1.0
        reformatter = VideoReformatter()
        next_target = 0.0
        latest: float | None = None  # newest timestamp decoded, yielded or not
        gap = 0.0  # duration of the newest frame, for the truncation allowance
        count = timed = disordered = 0
        disorder_at = 0.0
        skipper = _PacketSkipper(stream, origin, intra_only=fps is not None and bool(cc.codec.intra_only))
        for frame, ts in _in_display_time(skipper.frames(container, stream), depth=_reorder_depth(cc)):
            if origin is None:
                origin = skipper.origin if skipper.origin is not None else ts
            t = (ts - origin) * tb_s
            timed += 1
            if latest is not None and t <= latest:
                # a duplicate, or a bogus jump forward that hides the frames after it
                if not disordered:
                    disorder_at = latest
                disordered += 1
                continue
            if t < -eps:
                continue  # before the stream start (edit list pre-roll)
            t = max(t, 0.0)
            gap = frame.duration * tb_s if frame.duration else (t - latest if latest is not None else 0.0)
            latest = t
            if fps is not None:
                if t < next_target - eps:
                    continue
                next_target = (math.floor((t + eps) * fps) + 1) / fps
                skipper.next_target_s = next_target
            w, h = _target_size(frame.width, frame.height, sar, max_side)
            small = reformatter.reformat(
                frame, width=w, height=h, format="rgb24", interpolation="BILINEAR"
            )  # antialiased, 3x faster than AREA
            rgb = small.to_ndarray()
            turns = _rotation_cw(frame) // 90
            if turns:
                rgb = np.ascontiguousarray(np.rot90(rgb, -turns))  # negative k turns clockwise
            count += 1
            yield SampledFrame(pts_s=t, rgb=rgb)

        if count == 0:
            raise MediaError("no decodable video frames")
        if disordered > max(5, timed // 4):
            raise MediaError(f"corrupt video: {disordered} of {timed} frames out of order at ~{disorder_at:.1f}s")
        assert latest is not None  # count > 0: a frame was decoded
        decoded_end = latest + gap
        if fps is not None:  # frames skipped on purpose still prove the data was there
            decoded_end = max(decoded_end, skipper.data_end_s)
        shortfall = _declared_shortfall(container, stream, decoded_end, float(origin * tb))
        # A short clip missing a quarter of its frames is as damaged as a long one missing
        # seconds, so the allowance shrinks with the duration (never below half a second).
        allowance = 0.0 if shortfall is None else min(max_truncation_s, max(0.5, 0.1 * (decoded_end + shortfall)))
        if shortfall is not None and shortfall > allowance:
            raise MediaError(
                f"truncated: decoded {decoded_end:.1f} s of {decoded_end + shortfall:.1f} s declared", code="truncated"
            )
        if skipper.too_damaged():
            raise MediaError(
                f"corrupt video: {skipper.bad_packets} of {skipper.packets} packets "
                f"could not be decoded, from ~{skipper.first_bad_s:.1f}s"
            )
    finally:
        container.close()
