"""Unrelated footage of the kinds a newsroom archive is full of, made from still pictures and code.

Distractor videos for the evaluation archive and sources of negative queries: slideshows
of real photos with pans and zooms (some letterboxed or pillarboxed, some under a news
ticker and a channel logo, some under one program's chrome: a toolbar, an overview inset, a
compass and a paused player's play button, the same on every screenshot of one side),
flat-shaded animation, dark animation, studio idents and slates, title cards, colour bars,
flat walls and floors, fades to black. Every kind holds the
look-alikes that fooled the search before verification: flat surfaces, dark frames, cards,
gradients, letterbox bars. Each video is made by one function of (pictures, seed), so a
source is reproducible and two seeds give two unrelated sources."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from edits import _fit_into, _font, _write_video
from PIL import Image, ImageDraw

W, H = 480, 270
FPS = 12.5
_WORDS = (
    "SUMMIT",
    "LIVE",
    "BREAKING",
    "WORLD",
    "NEWS",
    "TONIGHT",
    "REPORT",
    "MARKETS",
    "WEATHER",
    "SPORT",
    "Leaders meet",
    "Talks continue",
    "Officials say",
    "More to follow",
    "Exclusive",
)


def _words(rng: np.random.Generator, count: int) -> str:
    """Words for a card or a ticker, with a number, so that two sources never show the same text."""
    return " ".join([*rng.choice(_WORDS, size=count), str(int(rng.integers(10, 10_000)))])


def _colour(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(lo, hi, 3))


def _ken_burns(picture: Image.Image, n: int, rng: np.random.Generator, size=(W, H)) -> Iterator[np.ndarray]:
    """n frames panning and zooming across a picture (16:9 window, zoom 1.0 -> 1.35 or back)."""
    pw, ph = picture.size
    z0, z1 = (1.0, 1.35) if rng.random() < 0.5 else (1.35, 1.0)
    base_w = min(pw, ph * size[0] / size[1])
    x0, y0 = rng.random(2)
    x1, y1 = rng.random(2)
    for k in range(n):
        t = k / max(n - 1, 1)
        z = z0 + (z1 - z0) * t
        cw, ch = base_w / z, base_w / z * size[1] / size[0]
        cx = (x0 + (x1 - x0) * t) * (pw - cw)
        cy = (y0 + (y1 - y0) * t) * (ph - ch)
        box = (cx, cy, cx + cw, cy + ch)
        yield np.asarray(picture.resize(size, Image.Resampling.BILINEAR, box=box))


def slideshow(pictures: Sequence[Path], rng: np.random.Generator, seconds: float) -> Iterator[np.ndarray]:
    per = max(1, int(seconds * FPS / max(len(pictures), 1)))
    for path in pictures:
        with Image.open(path) as img:
            yield from _ken_burns(img.convert("RGB"), per, rng)


def boxed(frames: Iterator[np.ndarray], rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Letterboxed (a 2.35:1 picture) or pillarboxed (a 4:3 or 9:16 one) inside the 16:9 frame."""
    aspect = float(rng.choice([2.35, 4 / 3, 9 / 16]))
    inner = (W, round(W / aspect)) if aspect > W / H else (round(H * aspect), H)
    for rgb in frames:
        small = np.asarray(Image.fromarray(rgb).resize(inner, Image.Resampling.BILINEAR))
        yield _fit_into(small, W, H)


def tickered(frames: Iterator[np.ndarray], rng: np.random.Generator) -> Iterator[np.ndarray]:
    """A news ticker scrolling along the bottom and a channel logo in a corner."""
    text = "   +++   ".join(_words(rng, 3) for _ in range(6))
    bar, ink, logo_colour = _colour(rng, 0, 120), _colour(rng, 200, 256), _colour(rng)
    brand = "".join(rng.choice(list("ABCDEFGHKLMNPRSTVWXZ"), size=3))
    strip = Image.new("RGB", (W * 5, 34), bar)  # drawn once, read through a moving window
    ImageDraw.Draw(strip).text((W, 4), text, fill=ink, font=_font(20))
    strip = np.asarray(strip)
    logo = Image.new("RGB", (60, 30), logo_colour)
    ImageDraw.Draw(logo).text((6, 4), brand, fill=(255, 255, 255), font=_font(20))
    logo = np.asarray(logo)
    for k, rgb in enumerate(frames):
        out = rgb.copy()
        x = (k * 6) % (W * 4)
        out[H - 34 :] = strip[:, x : x + W]
        out[10:40, 12:72] = logo
        yield out


def app_chrome(frames: Iterator[np.ndarray], design: int) -> Iterator[np.ndarray]:
    """Screenshots of one program over different pictures: the same toolbar, overview inset,
    compass and play button on every source of a design. Two unrelated screenshots share
    dozens of keypoints there (a map application's inset and compass once verified two
    different regions with 84 inliers), in the middle of the frame as well as at its edges."""
    rng = np.random.default_rng(design)
    toolbar = Image.new("RGB", (W, 26), _colour(rng, 30, 90))
    draw = ImageDraw.Draw(toolbar)
    for i, label in enumerate(("File", "View", "Layers", "Search", "Share")):
        draw.text((8 + 58 * i, 4), label, fill=(235, 235, 235), font=_font(14))
    inset = Image.new("RGB", (104, 76), _colour(rng, 120, 200))
    draw = ImageDraw.Draw(inset)
    for _ in range(14):  # an overview map: land masses and roads
        x, y = (int(v) for v in rng.integers(0, 96, 2))
        draw.polygon([(x, y % 70), (x + 18, (y + 9) % 76), (x + 6, (y + 22) % 76)], fill=_colour(rng, 40, 160))
    draw.rectangle([38, 26, 62, 46], outline=(220, 20, 20), width=2)
    toolbar, inset = np.asarray(toolbar), np.asarray(inset)
    for rgb in frames:
        img = Image.fromarray(rgb.copy())
        draw = ImageDraw.Draw(img)
        draw.ellipse([W / 2 - 30, H / 2 - 30, W / 2 + 30, H / 2 + 30], fill=(250, 250, 250), outline=(20, 20, 20))
        draw.polygon([(W / 2 - 10, H / 2 - 16), (W / 2 - 10, H / 2 + 16), (W / 2 + 16, H / 2)], fill=(20, 20, 20))
        draw.ellipse([W - 70, 80, W - 14, 136], outline=(255, 255, 255), width=3)
        draw.polygon([(W - 42, 84), (W - 50, 108), (W - 34, 108)], fill=(220, 30, 30))
        draw.text((W - 47, 112), "N", fill=(255, 255, 255), font=_font(14))
        out = np.asarray(img).copy()
        out[:26] = toolbar
        out[150 : 150 + 76, 12:116] = inset
        yield out


def animation(rng: np.random.Generator, seconds: float, *, dark: bool = False) -> Iterator[np.ndarray]:
    """Flat-shaded shapes moving over a flat background (dark: dim shapes on near-black)."""
    background = _colour(rng, 0, 30) if dark else _colour(rng)
    shapes = []
    for _ in range(int(rng.integers(3, 9))):
        shapes.append(
            (
                _colour(rng, 20, 90) if dark else _colour(rng),
                rng.uniform(0, W, 2),
                rng.uniform(-40, 40, 2),
                float(rng.uniform(15, 70)),
                int(rng.integers(0, 3)),
            )
        )
    for k in range(int(seconds * FPS)):
        img = Image.new("RGB", (W, H), background)
        draw = ImageDraw.Draw(img)
        t = k / FPS
        for colour, (x, y), (vx, vy), r, kind in shapes:
            cx, cy = (x + vx * t) % (W + 2 * r) - r, (y + vy * t) % (H + 2 * r) - r
            box = [cx - r, cy - r, cx + r, cy + r]
            if kind == 0:
                draw.ellipse(box, fill=colour)
            elif kind == 1:
                draw.rectangle(box, fill=colour)
            else:
                a = t * 1.5
                draw.polygon(
                    [(cx + r * math.cos(a + i * 2.1), cy + r * math.sin(a + i * 2.1)) for i in range(3)], fill=colour
                )
        yield np.asarray(img)


def card(rng: np.random.Generator, seconds: float, *, ident: bool = False) -> Iterator[np.ndarray]:
    """A title card or slate (text on a flat or graded colour), or a studio ident (a logo zooming in)."""
    a, b = np.array(_colour(rng), float), np.array(_colour(rng), float)
    ramp = np.linspace(0, 1, H)[:, None, None]
    base = (
        Image.fromarray((a * (1 - ramp) + b * ramp).repeat(W, axis=1).astype(np.uint8))
        if rng.random() < 0.5
        else Image.new("RGB", (W, H), tuple(int(c) for c in a))
    )
    lines = [_words(rng, int(rng.integers(1, 3))) for _ in range(int(rng.integers(1, 4)))]
    ink = _colour(rng)
    n = int(seconds * FPS)
    for k in range(n):
        img = base.copy()
        draw = ImageDraw.Draw(img)
        if ident:
            r = 20 + 60 * min(1.0, k / (n / 2))
            draw.ellipse([W / 2 - r, H / 2 - r, W / 2 + r, H / 2 + r], outline=ink, width=6)
            draw.text((W / 2 - r / 2, H / 2 - 10), lines[0].split()[-1], fill=ink, font=_font(int(r / 3) + 8))
        else:
            for i, line in enumerate(lines):
                draw.text((40, 70 + 50 * i), line, fill=ink, font=_font(34))
        yield np.asarray(img)


def flat_scene(rng: np.random.Generator, seconds: float) -> Iterator[np.ndarray]:
    """A wall or floor: near-uniform colour, sensor noise, slow light change and a little shake."""
    colour = np.array(_colour(rng, 40, 220), np.float32)
    falloff = np.linspace(-20, 20, W + 40, dtype=np.float32)[None, :, None]
    grain = rng.normal(0, 2.5, (H + 16, W + 16, 3)).astype(np.float32)  # one field, read at moving offsets
    for k in range(int(seconds * FPS)):
        light = 10 * math.sin(k / FPS * 0.8)
        dx, gx, gy = (int(v) for v in rng.integers(0, 16, 3))
        frame = colour[None, None] + falloff[:, dx : dx + W] + light + grain[gy : gy + H, gx : gx + W]
        yield np.clip(frame, 0, 255).astype(np.uint8)


def bars_and_fade(rng: np.random.Generator, seconds: float, picture: Path | None) -> Iterator[np.ndarray]:
    """Colour bars, then a picture fading in from black and out again."""
    n = int(seconds * FPS)
    bars = np.zeros((H, W, 3), np.uint8)
    count = int(rng.integers(6, 9))
    for i in range(count):
        bars[:, i * W // count : (i + 1) * W // count] = _colour(rng)
    frames = list(slideshow([picture], rng, seconds / 2)) if picture else [bars] * (n // 2)
    for _ in range(n - len(frames)):
        yield bars
    for k, rgb in enumerate(frames):
        level = math.sin(math.pi * k / max(len(frames) - 1, 1))
        yield (rgb * level).astype(np.uint8)


KINDS = (
    "slideshow",
    "letterboxed",
    "tickered",
    "animation",
    "dark_animation",
    "card",
    "ident",
    "flat",
    "bars_fade",
    "chrome",
)


def make_unrelated(
    kind: str, pictures: Sequence[Path], seed: int, out: Path, seconds: float = 16.0, *, design: int = 0
) -> Path:
    """Write one unrelated video of `kind` (pictures are used by the photo kinds) to out (.mp4);
    design picks the program whose chrome the "chrome" kind shows."""
    rng = np.random.default_rng(seed)
    makers: dict[str, Callable[[], Iterator[np.ndarray]]] = {
        "slideshow": lambda: slideshow(pictures, rng, seconds),
        "letterboxed": lambda: boxed(slideshow(pictures, rng, seconds), rng),
        "tickered": lambda: tickered(slideshow(pictures, rng, seconds), rng),
        "animation": lambda: animation(rng, seconds),
        "dark_animation": lambda: animation(rng, seconds, dark=True),
        "card": lambda: card(rng, seconds),
        "ident": lambda: card(rng, seconds, ident=True),
        "flat": lambda: flat_scene(rng, seconds),
        "bars_fade": lambda: bars_and_fade(rng, seconds, pictures[0] if pictures else None),
        "chrome": lambda: app_chrome(slideshow(pictures, rng, seconds), design),
    }
    if kind not in makers:
        raise KeyError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    # written beside and renamed: a run killed halfway leaves no truncated video that a later
    # run, finding the file there, would take for a whole one
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")
    _write_video(partial, makers[kind](), (W, H), FPS)
    os.replace(partial, out)
    return out


PHOTO_KINDS = frozenset({"slideshow", "letterboxed", "tickered", "bars_fade", "chrome"})


def plan_sources(
    kinds_count: int, pictures: Sequence[Path], seed: int, *, per_slideshow: int = 3, kinds: Sequence[str] = KINDS
) -> list[tuple[str, list[Path], int]]:
    """kinds_count (kind, pictures, seed) triples cycling through the kinds; photo kinds take the
    next pictures in order, so no two sources share a picture while pictures last."""
    plan, cursor = [], 0
    for k in range(kinds_count):
        kind = kinds[k % len(kinds)]
        take = per_slideshow if kind != "bars_fade" else 1
        chosen = []
        if kind in PHOTO_KINDS and pictures:
            chosen = [pictures[(cursor + i) % len(pictures)] for i in range(take)]
            cursor += take
        plan.append((kind, chosen, seed * 100_003 + k))
    return plan
