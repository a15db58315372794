"""Helpers that synthesise small test videos with PyAV whose pixels encode the frame index.

Every frame carries its index as a row of black/white cells across the top third (framed by a
white start cell and a black stop cell, so a frame read in the wrong orientation is detected),
and a green bar whose position moves with the index. `read_index` recovers the index from a
decoded (and possibly downscaled) RGB frame, so tests can check which frame came out.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BITS = 10  # up to 1023 frames, plenty for clips of a few seconds
_CELLS = BITS + 2  # start marker + bits + stop marker


def draw_frame(index: int, width: int, height: int, pattern: str = "moving") -> np.ndarray:
    """An upright HxWx3 uint8 frame encoding `index` (see module docstring)."""
    img = np.full((height, width, 3), 60, np.uint8)
    top = height // 3
    edges = np.linspace(0, width, _CELLS + 1).round().astype(int)
    values = [255] + [255 if (index >> b) & 1 else 0 for b in range(BITS)] + [0]
    for cell, value in enumerate(values):
        img[:top, edges[cell] : edges[cell + 1]] = value
    if pattern == "moving":
        bar = max(2, width // 16)
        x = (index * max(1, width // 40)) % (width - bar)
        img[top + height // 6 :, x : x + bar] = (0, 220, 0)
    elif pattern != "static":
        raise ValueError(f"unknown pattern {pattern!r}")
    return img


def read_index(rgb: np.ndarray) -> int:
    """The frame index drawn by `draw_frame`; ValueError when the markers are not where expected
    (e.g. the frame came out rotated or flipped)."""
    h, w = rgb.shape[:2]
    gray = rgb.astype(np.float32).mean(axis=2)
    rows = gray[int(h * 0.06) : max(int(h * 0.27), int(h * 0.06) + 1)]
    edges = np.linspace(0, w, _CELLS + 1)
    means = []
    for cell in range(_CELLS):
        a, b = edges[cell], edges[cell + 1]
        lo, hi = int(a + (b - a) * 0.3), int(np.ceil(a + (b - a) * 0.7))
        means.append(float(rows[:, lo : max(hi, lo + 1)].mean()))
    if means[0] < 170 or means[-1] > 85 or any(85 < m < 170 for m in means):
        raise ValueError(f"no index pattern found (cell means {[round(m) for m in means]})")
    return sum(1 << b for b, m in enumerate(means[1:-1]) if m >= 128)


def make_clip(
    path: str | Path,
    *,
    fps: float | Fraction = 25,
    seconds: float = 3.0,
    size: tuple[int, int] = (160, 120),
    codec: str = "libx264",
    pattern: str = "moving",
    vfr_times: list[float] | None = None,
    rotation: int = 0,
    time_base: Fraction | None = None,
    audio: bool = False,
    start_s: float = 0.0,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    threads: int = 0,
) -> Path:
    """Encode a clip whose frame i shows `draw_frame(i)`; the container follows the suffix.

    Frames sit at i/fps (CFR) or at `vfr_times` (seconds, explicit pts in `time_base`, 1/1000 by
    default), shifted by `start_s`. `rotation` is the clockwise turn a player must apply to show
    it upright (VideoInfo.rotation): the pixels are stored turned the other way and the stream
    carries a display matrix saying so. `size` is (width, height) of the upright picture.
    threads=1 makes the bytes identical on every machine (encoders slice by thread count).
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1_000_000)
    if vfr_times is not None:
        tb = time_base or Fraction(1, 1000)
        times = [Fraction(t).limit_denominator(1_000_000) for t in vfr_times]
    else:
        tb = time_base or 1 / rate
        times = [i / rate for i in range(round(seconds * rate))]
    width, height = size
    turns = (rotation // 90) % 4
    stored_w, stored_h = (height, width) if turns % 2 else (width, height)

    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=rate if vfr_times is None else None)
        stream.width, stream.height = stored_w, stored_h
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.codec_context.time_base = tb
        stream.time_base = tb
        stream.codec_context.thread_count = threads
        if options:
            stream.options = options
        if rotation:
            stream.set_display_rotation(-rotation)  # PyAV takes counter-clockwise degrees
        astream = out.add_stream("aac", rate=48000, layout="mono") if audio else None

        offset = round(Fraction(start_s).limit_denominator(1_000_000) / tb)  # whole ticks
        for i, t in enumerate(times):
            upright = draw_frame(i, width, height, pattern)
            # np.rot90 turns counter-clockwise: store it so that turning clockwise restores it
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(upright, turns)), format="rgb24")
            frame.pts = round(t / tb) + offset
            frame.time_base = tb
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))

        if astream is not None:
            _encode_silence(out, astream, float(times[-1]) if times else seconds)
    return path


def _encode_silence(out: av.container.OutputContainer, astream, seconds: float) -> None:
    n = astream.codec_context.frame_size or 1024
    for k in range(int(seconds * 48000 / n) + 1):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, n), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 48000
        frame.pts = k * n
        out.mux(astream.encode(frame))
    out.mux(astream.encode(None))


def make_audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    """A valid media file (AAC in an mp4-family container, whatever the suffix) with no video."""
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as out:
        _encode_silence(out, out.add_stream("aac", rate=48000, layout="mono"), seconds)
    return path


def make_truncated(src: str | Path, dst: str | Path, keep_fraction: float) -> Path:
    """Copy only the first `keep_fraction` of `src`'s bytes, as an interrupted download would.

    Use a container whose header states the duration (mkv, or mp4 written with
    container_options={"movflags": "faststart"}); a plain mp4 loses its index and won't open."""
    dst = Path(dst)
    data = Path(src).read_bytes()
    dst.write_bytes(data[: int(len(data) * keep_fraction)])
    return dst


def copy_clip(src: str | Path, dst: str | Path) -> Path:
    """Copy a clip (e.g. to give it another suffix)."""
    return Path(shutil.copyfile(src, dst))


def make_distinct_clip(
    path: str | Path, seed: int, *, seconds: float = 4.0, fps: int = 10, size: tuple[int, int] = (128, 96)
) -> Path:
    """A clip whose frames look like no other seed's: a smooth random colour field that drifts
    over time, so a descriptor tells clips (and moments) apart."""
    rng = np.random.default_rng(seed)
    width, height = size
    field = rng.integers(0, 256, (8, 12, 3)).astype(np.uint8)
    big = np.kron(field, np.ones((height // 4, width // 6, 1), np.uint8))  # twice the frame
    path = Path(path)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        for i in range(int(seconds * fps)):
            dx, dy = (i * 3) % width, (i * 2) % height
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(big[dy : dy + height, dx : dx + width]), format="rgb24"
            )
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
