"""Edited query clips (re-encodes, crops, overlays, speed changes, splices, stills) with exact ground truth."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from firstseen.media.decode import sample_frames

_HEADLINES = (
    "BREAKING: crowds gather as officials respond",
    "Eyewitness footage shared thousands of times",
    "Viral video: what we know so far",
    "Residents describe the scene",
    "Live coverage continues",
)
_BRANDS = ("N24", "TV5", "CNX", "W1", "K7")


@dataclass(frozen=True, slots=True)
class TruthSegment:
    source: str  # file name of the source video
    query_start: float
    query_end: float
    source_start: float
    source_end: float  # start <= end even when reversed
    speed: float  # source seconds per query second
    reversed: bool
    mirrored: bool
    # (x, y, w, h) as fractions: where the query's picture lies in the source frame (a crop),
    # and where the source's picture lies in the query frame (an inset); None: the whole frame
    query_in_source: tuple[float, float, float, float] | None = None
    source_in_query: tuple[float, float, float, float] | None = None


@dataclass(frozen=True, slots=True)
class EditedQuery:
    path: Path
    edit: str  # key of EDITS, or "negative:<edit>"
    kind: str  # "video" or "image"
    truth: tuple[TruthSegment, ...]  # empty for negatives


class FrameSource:
    """Decoded frames of one video (all frames, real pts), cached, with frame_at(t) -> rgb nearest-at-or-before t.

    Holds every frame in memory (vtest.avi at max_side=640 is ~0.7 GB): edits revisit frames
    out of order (reversed, speed changes), and the decoder cannot seek."""

    def __init__(self, path: Path, max_side: int = 640):
        self.path = Path(path)
        self.name = self.path.name
        frames = list(sample_frames(self.path, fps=None, max_side=max_side, skip_nonref=False))
        if not frames:
            raise ValueError(f"{self.name}: no frames decoded")
        self.pts = np.array([f.pts_s for f in frames], dtype=np.float64)
        self._frames = [f.rgb for f in frames]
        # the last frame is shown for as long as the one before it (no frame rate is assumed)
        gap = float(self.pts[-1] - self.pts[-2]) if len(frames) > 1 else 1 / 25
        self.duration_s = float(self.pts[-1]) + gap
        self.height, self.width = self._frames[0].shape[:2]

    def __len__(self) -> int:
        return len(self._frames)

    def index_at(self, t: float) -> int:
        # 1 us slack: a time computed as start + k/fps may land a hair before the frame it names
        i = int(np.searchsorted(self.pts, t + 1e-6, side="right")) - 1
        return min(max(i, 0), len(self._frames) - 1)

    def frame_at(self, t: float) -> np.ndarray:
        return self._frames[self.index_at(t)]


@dataclass(frozen=True, slots=True)
class _Job:
    """One query to build: the clamped source window and where the output goes."""

    source: FrameSource
    start: float
    end: float
    rng: np.random.Generator
    others: tuple[FrameSource, ...]  # unrelated footage, never the source itself
    fps: float
    stem: Path  # output path without suffix

    def out(self, suffix: str) -> Path:
        path, n = self.stem.with_name(self.stem.name + suffix), 1
        while path.exists():  # unique within out_dir
            n += 1
            path = self.stem.with_name(f"{self.stem.name}-{n}{suffix}")
        return path

    def unrelated(self, count: int) -> list[FrameSource]:
        """Up to `count` distinct unrelated sources (at least one), in random order."""
        if not self.others:
            raise ValueError("this edit needs unrelated footage: pass others=")
        order = self.rng.permutation(len(self.others))
        return [self.others[i] for i in order[:count]]


def _plan(
    src: FrameSource,
    s0: float,
    s1: float,
    fps: float,
    *,
    k0: int = 0,
    speed: float = 1.0,
    reverse: bool = False,
    mirrored: bool = False,
) -> tuple[TruthSegment, np.ndarray]:
    """Truth for playing src[s0, s1] at `speed` from output frame k0, and each output frame's source time."""
    n = max(1, math.floor((s1 - s0) / speed * fps + 1e-6))  # whole frames that fit in the window
    span = speed * n / fps
    steps = speed * np.arange(n) / fps
    if reverse:
        hi = s1
        lo, times = max(0.0, hi - span), hi - steps
    else:
        lo = s0
        hi, times = lo + span, lo + steps
    segment = TruthSegment(src.name, k0 / fps, (k0 + n) / fps, lo, hi, speed, reverse, mirrored)
    return segment, times


def _even(x: float) -> int:
    return max(2, int(x) // 2 * 2)


def _resize(rgb: np.ndarray, w: int, h: int) -> np.ndarray:
    if rgb.shape[:2] == (h, w):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR))


def _fit_into(rgb: np.ndarray, w: int, h: int) -> np.ndarray:
    """Scale to fit a w x h canvas keeping the aspect ratio, black bars around."""
    scale = min(w / rgb.shape[1], h / rgb.shape[0])
    rw, rh = min(w, max(1, round(rgb.shape[1] * scale))), min(h, max(1, round(rgb.shape[0] * scale)))
    if (rw, rh) == (w, h):
        return _resize(rgb, w, h)
    canvas = np.zeros((h, w, 3), np.uint8)
    y, x = (h - rh) // 2, (w - rw) // 2
    canvas[y : y + rh, x : x + rw] = _resize(rgb, rw, rh)
    return canvas


def _write_video(path: Path, frames: Iterable[np.ndarray], size: tuple[int, int], fps: float, crf: int = 23) -> None:
    """H.264/yuv420p mp4 whose frame k sits at exactly k/fps (explicit pts)."""
    rate = Fraction(fps).limit_denominator(1001000)
    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.time_base = stream.time_base = 1 / rate
        stream.codec_context.thread_count = 2
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for k, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(_resize(rgb, w, h)), format="rgb24")
            frame.pts, frame.time_base = k, 1 / rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _per_frame(
    job: _Job,
    transform: Callable[[np.ndarray, int], np.ndarray],
    size: tuple[int, int],
    *,
    crf: int = 23,
    speed: float = 1.0,
    reverse: bool = False,
    mirrored: bool = False,
):
    """The source window played through `transform(rgb, k)` into a w x h video."""
    segment, times = _plan(job.source, job.start, job.end, job.fps, speed=speed, reverse=reverse, mirrored=mirrored)
    path = job.out(".mp4")
    _write_video(path, (transform(job.source.frame_at(t), k) for k, t in enumerate(times)), size, job.fps, crf)
    return path, "video", (segment,)


def _base_size(src: FrameSource) -> tuple[int, int]:
    return _even(src.width), _even(src.height)


def _crop_even(job: _Job) -> Callable[[np.ndarray, int], np.ndarray]:
    w, h = _base_size(job.source)
    return lambda rgb, k: rgb[:h, :w]  # drops at most one odd row/column


def _font(px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=max(8, px))
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or no FreeType: the small bitmap font
        return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, max_w: float, px: int):
    """The largest font (<= px) at which `text` fits max_w, shortening the text if need be."""
    while px > 8 and draw.textlength(text, font=_font(px)) > max_w:
        px -= 1
    font = _font(px)
    while len(text) > 4 and draw.textlength(text, font=font) > max_w:
        text = text[:-2]
    return text, font


def _blender(overlay: Image.Image) -> Callable[[np.ndarray], np.ndarray]:
    """Alpha-composite a fixed RGBA overlay onto frames, precomputed once for speed."""
    rgba = np.asarray(overlay, np.float32)
    alpha = rgba[..., 3:] / 255
    ink = rgba[..., :3] * alpha
    return lambda rgb: (rgb * (1 - alpha) + ink + 0.5).astype(np.uint8)


def _caption_ticker(job: _Job):
    w, h = _base_size(job.source)
    rng = job.rng
    overlay = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    y0, y1 = int(h * 0.62), int(h * 0.80)
    draw.rectangle((int(w * 0.04), y0, int(w * 0.96), y1), fill=(10, 10, 10, 160))
    text, font = _fit_text(draw, str(rng.choice(_HEADLINES)), w * 0.88, int((y1 - y0) * 0.55))
    draw.text((int(w * 0.06), (y0 + y1) // 2), text, font=font, fill=(255, 255, 255, 255), anchor="lm")
    caption = _blender(overlay)
    # the ticker is pre-rendered once as a long strip (two copies, so it wraps) and slid per frame
    band_h, band_y = h - int(h * 0.88), int(h * 0.88)
    font = _font(int(band_h * 0.6))
    news = "   +++   ".join(str(t) for t in rng.permutation(_HEADLINES)) + "   +++   "
    period = max(w, int(draw.textlength(news, font=font)))
    strip = Image.new("RGB", (2 * period + w, band_h), (150, 20, 25))
    sdraw = ImageDraw.Draw(strip)
    for x in (0, period):
        sdraw.text((x, band_h // 2), news, font=font, fill=(255, 255, 255), anchor="lm")
    strip_px, step = np.asarray(strip), max(1, w // 120)

    def transform(rgb: np.ndarray, k: int) -> np.ndarray:
        out = caption(rgb[:h, :w])
        x = (k * step) % period
        out[band_y:] = strip_px[:, x : x + w]
        return out

    return _per_frame(job, transform, (w, h))


def _logo(job: _Job):
    w, h = _base_size(job.source)
    rng = job.rng
    overlay = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    margin = max(2, int(w * 0.03))
    corners = [(0, 0), (1, 0), (0, 1), (1, 1)]  # (right?, bottom?)
    logo_c, live_c = (corners[i] for i in rng.permutation(4)[:2])

    def box(corner, bw, bh, color, text):
        x = w - margin - bw if corner[0] else margin
        y = h - margin - bh if corner[1] else margin
        draw.rectangle((x, y, x + bw, y + bh), fill=(*color, 255))
        label, font = _fit_text(draw, text, bw * 0.85, int(bh * 0.7))
        draw.text((x + bw // 2, y + bh // 2), label, font=font, fill=(255, 255, 255, 255), anchor="mm")

    bw = max(24, int(w * 0.12))
    box(logo_c, bw, int(bw * 0.6), tuple(int(c) for c in rng.integers(30, 200, 3)), str(rng.choice(_BRANDS)))
    box(live_c, max(16, int(w * 0.07)), max(8, int(w * 0.03)), (200, 0, 0), "LIVE")
    blend = _blender(overlay)
    return _per_frame(job, lambda rgb, k: blend(rgb[:h, :w]), (w, h))


def _reencode(job: _Job):
    w, h = _base_size(job.source)
    scale = min(1.0, 480 / w)
    return _per_frame(job, _crop_even(job), (_even(w * scale), _even(h * scale)), crf=38)


def _resize_edit(job: _Job):
    w, h = _base_size(job.source)
    scale = min(1.0, max(0.4, 96 / min(w, h)))  # keep the short side >= 96 px
    return _per_frame(job, _crop_even(job), (_even(w * scale), _even(h * scale)))


def _crop60(job: _Job):
    w, h = job.source.width, job.source.height
    cw, ch = _even(w * 0.6), _even(h * 0.6)
    x, y = int(job.rng.integers(0, w - cw + 1)), int(job.rng.integers(0, h - ch + 1))
    path, kind, (segment,) = _per_frame(job, lambda rgb, k: rgb[y : y + ch, x : x + cw], (cw, ch))
    return path, kind, (replace(segment, query_in_source=(x / w, y / h, cw / w, ch / h)),)


def _letterbox_9x16(job: _Job):
    cw, ch = 360, 640
    w, h = job.source.width, job.source.height
    scale = min(cw / w, ch / h)  # the canvas width for landscape footage
    fw, fh = min(cw, round(w * scale)), min(ch, round(h * scale))
    x, y = (cw - fw) // 2, (ch - fh) // 2
    blurred = bool(job.rng.random() < 0.5)

    def transform(rgb: np.ndarray, k: int) -> np.ndarray:
        if blurred:  # phone re-framing: the frame enlarged to cover the canvas, blurred and dimmed
            cover = max(cw / w, ch / h) / 8  # blur at 1/8 size: same look, far cheaper
            small = Image.fromarray(rgb).resize((max(1, round(w * cover)), max(1, round(h * cover))))
            left, top = (small.width - cw // 8) // 2, (small.height - ch // 8) // 2
            small = small.crop((left, top, left + cw // 8, top + ch // 8)).filter(ImageFilter.GaussianBlur(2.5))
            canvas = (np.asarray(small.resize((cw, ch), Image.Resampling.BILINEAR)) * 0.6).astype(np.uint8)
        else:
            canvas = np.zeros((ch, cw, 3), np.uint8)
        canvas[y : y + fh, x : x + fw] = _resize(rgb, fw, fh)
        return canvas

    return _per_frame(job, transform, (cw, ch))


def _mirror(job: _Job):
    w, h = _base_size(job.source)
    return _per_frame(job, lambda rgb, k: rgb[:h, :w][:, ::-1], (w, h), mirrored=True)


def _noise_blur(job: _Job):
    w, h = _base_size(job.source)
    # one oversized noise field, read at a random offset per frame: fresh-looking grain without
    # drawing a million normals per frame (that alone took longer than encoding)
    pad = 64
    field = np.round(job.rng.standard_normal((h + pad, w + pad, 3), dtype=np.float32) * 12).astype(np.int16)

    def transform(rgb: np.ndarray, k: int) -> np.ndarray:
        blurred = np.asarray(Image.fromarray(rgb[:h, :w]).filter(ImageFilter.GaussianBlur(2)), np.int16)
        dy, dx = job.rng.integers(0, pad, 2)
        return np.clip(blurred + field[dy : dy + h, dx : dx + w], 0, 255).astype(np.uint8)

    return _per_frame(job, transform, (w, h))


def _brightness_contrast(job: _Job):
    w, h = _base_size(job.source)
    gain, contrast = job.rng.uniform(1.25, 1.4), job.rng.uniform(0.65, 0.75)
    lut = np.clip((np.arange(256) * gain - 128) * contrast + 128 + 0.5, 0, 255).astype(np.uint8)
    return _per_frame(job, lambda rgb, k: lut[rgb[:h, :w]], (w, h))


def _pip(job: _Job):
    (bg,) = job.unrelated(1)
    src, rng = job.source, job.rng
    # canvas as wide as the source, with the background's shape, so the inset is 40% of either
    w = _even(src.width)
    h = _even(w * bg.height / bg.width)
    iw = _even(w * 0.4)
    ih = min(_even(iw * src.height / src.width), h)
    x, y = int(rng.integers(0, w - iw + 1)), int(rng.integers(0, h - ih + 1))
    window = job.end - job.start
    bg_start = float(rng.uniform(0, max(0.0, bg.duration_s - window)))

    def transform(rgb: np.ndarray, k: int) -> np.ndarray:
        # the background plays at 1x from bg_start, looping if it is shorter than the query
        canvas = _resize(bg.frame_at((bg_start + k / job.fps) % bg.duration_s), w, h).copy()
        canvas[y : y + ih, x : x + iw] = _resize(rgb, iw, ih)
        return canvas

    path, kind, (segment,) = _per_frame(job, transform, (w, h))
    return path, kind, (replace(segment, source_in_query=(x / w, y / h, iw / w, ih / h)),)


def _speed(job: _Job, factor: float, reverse: bool = False):
    return _per_frame(job, _crop_even(job), _base_size(job.source), speed=factor, reverse=reverse)


def _pieces(job: _Job, parts: list[tuple[FrameSource, float, float]]):
    """Concatenate src[s0, s1] pieces at 1x on the source's canvas; truth for every piece."""
    w, h = _base_size(job.source)
    truth, plays, k = [], [], 0
    for src, s0, s1 in parts:
        segment, times = _plan(src, s0, s1, job.fps, k0=k)
        k += len(times)
        truth.append(segment)
        plays.append((src, times))
    path = job.out(".mp4")
    _write_video(path, (_fit_into(src.frame_at(t), w, h) for src, times in plays for t in times), (w, h), job.fps)
    return path, truth


def _random_span(rng: np.random.Generator, lo: float, hi: float, length: float) -> tuple[float, float]:
    length = min(length, hi - lo)
    s0 = float(rng.uniform(lo, hi - length))
    return s0, s0 + length


def _splice(job: _Job):
    rng = job.rng
    others = job.unrelated(int(rng.integers(1, 3)))  # 2-3 pieces, each from a different video
    sources = list(others)
    sources.insert(int(rng.integers(0, len(sources) + 1)), job.source)
    parts = []
    for src in sources:
        lo, hi = (job.start, job.end) if src is job.source else (0.0, src.duration_s)
        parts.append((src, *_random_span(rng, lo, hi, rng.uniform(3, 4))))
    path, truth = _pieces(job, parts)
    return path, "video", tuple(truth)


def _embedded(job: _Job):
    rng = job.rng
    before, after = (job.unrelated(2) * 2)[:2]  # one unrelated video serves both sides if it is all there is
    middle = _random_span(rng, job.start, job.end, rng.uniform(3, 4))
    around = rng.uniform(10, 12) - (middle[1] - middle[0])
    pre = around * rng.uniform(0.35, 0.65)
    parts = [(before, *_random_span(rng, 0, before.duration_s, pre)), (job.source, *middle),
             (after, *_random_span(rng, 0, after.duration_s, around - pre))]  # fmt: skip
    path, truth = _pieces(job, parts)
    return path, "video", (truth[1],)


def _pick_frame(job: _Job) -> tuple[np.ndarray, tuple[TruthSegment, ...]]:
    """A random frame of the window, and the truth of a still showing it (its real pts)."""
    src = job.source
    inside = np.flatnonzero((src.pts >= job.start) & (src.pts < job.end))
    pts = float(src.pts[int(job.rng.choice(inside)) if inside.size else src.index_at(job.start)])
    return src.frame_at(pts), (TruthSegment(src.name, 0.0, 0.0, pts, pts, 1.0, False, False),)


def _still(job: _Job):
    rgb, truth = _pick_frame(job)
    img = Image.fromarray(rgb)
    if job.rng.random() < 0.5:  # a social-media style caption strip under the picture
        strip = max(24, img.height // 7)
        framed = Image.new("RGB", (img.width, img.height + strip), (255, 255, 255))
        framed.paste(img, (0, 0))
        draw = ImageDraw.Draw(framed)
        text, font = _fit_text(draw, str(job.rng.choice(_HEADLINES)), img.width * 0.94, int(strip * 0.5))
        draw.text((int(img.width * 0.03), img.height + strip // 2), text, font=font, fill=(20, 20, 20), anchor="lm")
        img = framed
    path = job.out(".jpg")
    img.save(path, quality=85)
    return path, "image", truth


def _still_png_crop(job: _Job):
    rgb, truth = _pick_frame(job)
    h, w = rgb.shape[:2]
    cw, ch = max(1, round(w * 0.8)), max(1, round(h * 0.8))
    x, y = int(job.rng.integers(0, w - cw + 1)), int(job.rng.integers(0, h - ch + 1))
    path = job.out(".png")
    Image.fromarray(rgb[y : y + ch, x : x + cw]).save(path)
    return path, "image", tuple(replace(t, query_in_source=(x / w, y / h, cw / w, ch / h)) for t in truth)


_BUILDERS: dict[str, Callable[[_Job], tuple[Path, str, tuple[TruthSegment, ...]]]] = {
    "reencode": _reencode, "resize": _resize_edit, "crop60": _crop60, "letterbox_9x16": _letterbox_9x16,
    "mirror": _mirror, "caption_ticker": _caption_ticker, "logo": _logo, "noise_blur": _noise_blur,
    "brightness_contrast": _brightness_contrast, "pip": _pip,
    **{f"speed_{f:g}": functools.partial(_speed, factor=f) for f in (0.25, 0.5, 1.5, 2.0, 4.0)},
    "reversed": functools.partial(_speed, factor=1.0, reverse=True),
    "reversed_speed_2": functools.partial(_speed, factor=2.0, reverse=True),
    "splice": _splice, "embedded": _embedded, "still": _still, "still_png_crop": _still_png_crop,
}  # fmt: skip
NEEDS_OTHERS: frozenset[str] = frozenset({"pip", "splice", "embedded"})


def _build(
    edit: str,
    source: FrameSource,
    start_s: float,
    length_s: float,
    out_dir: Path,
    *,
    rng: np.random.Generator,
    others: Sequence[FrameSource],
    out_fps: float,
    prefix: str,
):
    if edit not in _BUILDERS:
        raise KeyError(f"unknown edit {edit!r}; known: {', '.join(_BUILDERS)}")
    if not (length_s > 0 and out_fps > 0):
        raise ValueError("length_s and out_fps must be positive")
    # clamp the window into the source, keeping its length where the source allows
    start = min(max(0.0, float(start_s)), max(0.0, source.duration_s - length_s))
    end = min(source.duration_s, start + length_s)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    job = _Job(
        source,
        start,
        end,
        rng,
        tuple(o for o in others if o.name != source.name),
        out_fps,
        out_dir / f"{prefix}{edit}-{source.path.stem}-{start:.2f}",
    )
    return _BUILDERS[edit](job)


def make_query(
    edit: str,
    source: FrameSource,
    start_s: float,
    length_s: float,
    out_dir: Path,
    *,
    rng: np.random.Generator,
    others: Sequence[FrameSource] = (),
    out_fps: float = 25.0,
) -> EditedQuery:
    """Apply `edit` to source[start_s, start_s + length_s] and write the query into out_dir."""
    path, kind, truth = _build(
        edit, source, start_s, length_s, out_dir, rng=rng, others=others, out_fps=out_fps, prefix=""
    )
    return EditedQuery(path, edit, kind, tuple(truth))


def make_negative(
    edit: str,
    source: FrameSource,
    start_s: float,
    length_s: float,
    out_dir: Path,
    *,
    rng: np.random.Generator,
    others: Sequence[FrameSource] = (),
    out_fps: float = 25.0,
) -> EditedQuery:
    """The same edit applied to held-out footage (source and others never indexed): nothing should match."""
    path, kind, _ = _build(
        edit, source, start_s, length_s, out_dir, rng=rng, others=others, out_fps=out_fps, prefix="negative-"
    )
    return EditedQuery(path, f"negative:{edit}", kind, ())


# name -> builder with make_query's signature minus the edit name
EDITS: dict[str, Callable[..., EditedQuery]] = {name: functools.partial(make_query, name) for name in _BUILDERS}
