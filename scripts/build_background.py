#!/usr/bin/env python3
"""Build the background descriptors that search similarities are normalised against (`make background`).

At least 20,000 descriptors: crops and scales of the 4,000-odd distinct pictures of the
"background" image pool (game art, portraits, terrain and textures from pinned Debian
packages; see image_pool.py), plus generated black, grey, colour bars, gradients, text cards,
lower thirds and flat walls. Deterministic (fixed seed, fixed package versions), so the same
versions describe the same pictures (their checksum, recorded as inputs_sha256) and give
the same vectors to within float noise, which the calibration checks. Written once per descriptor
configuration to FIRSTSEEN_BACKGROUND_DIR (default ~/.cache/firstseen/background); an existing
background with the expected checksum is kept."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import image_pool  # noqa: E402

from firstseen.descriptors import create_descriptor  # noqa: E402
from firstseen.search.background import background_dir, save_background  # noqa: E402
from firstseen.settings import get_settings  # noqa: E402

VIEWS_PER_IMAGE = 5
SIDE = 360  # frames are described at the size they are decoded at
SEED = 20_211  # the ISC21 year: any fixed number


def _fit(img: Image.Image, side: int = SIDE) -> Image.Image:
    img = img.copy()
    img.thumbnail((side, side), Image.Resampling.BILINEAR)
    return img


def image_views(img: Image.Image, rng: np.random.Generator) -> list[np.ndarray]:
    """The picture whole, cut to 16:9, and three random crops (about 60%, 35% and 20% of it)."""
    w, h = img.size
    views = [_fit(img)]
    ch = min(h, round(w * 9 / 16))
    cw = min(w, round(ch * 16 / 9))
    views.append(_fit(img.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))))
    for share in (0.6, 0.35, 0.2):
        f = np.sqrt(share)
        cw, ch = max(16, int(w * f)), max(16, int(h * f))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        views.append(_fit(img.crop((x, y, x + cw, y + ch))))
    return [np.asarray(v.convert("RGB")) for v in views[:VIEWS_PER_IMAGE]]


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def generated_frames(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """Low-information pictures a newsroom archive is full of: black, grey, bars, gradients,
    cards and slates, lower thirds, flat walls."""
    w, h = 640, 360
    font = ImageFont.load_default
    words = (
        "NEWS",
        "LIVE",
        "BREAKING",
        "WEATHER",
        "SPORT",
        "REPORT",
        "SUMMIT",
        "UPDATE",
        "CHANNEL",
        "WORLD",
        "Coming up",
        "Stay with us",
        "Special edition",
        "Press conference",
        "End of programme",
    )
    frames: list[np.ndarray] = []
    for k in range(count):
        kind = k % 7
        if kind == 0:
            frames.append(np.full((h, w, 3), int(rng.integers(0, 256)) if k % 3 else 0, np.uint8))
            continue
        img = Image.new("RGB", (w, h), _colour(rng))
        draw = ImageDraw.Draw(img)
        if kind == 1:  # colour bars
            n = int(rng.integers(5, 9))
            for i in range(n):
                draw.rectangle([i * w // n, 0, (i + 1) * w // n, h], fill=_colour(rng))
        elif kind == 2:  # gradient
            a, b = np.array(_colour(rng), float), np.array(_colour(rng), float)
            t = np.linspace(0, 1, w if rng.random() < 0.5 else h)
            ramp = (a[None] * (1 - t[:, None]) + b[None] * t[:, None]).astype(np.uint8)
            arr = np.broadcast_to(ramp[None] if len(t) == w else ramp[:, None], (h, w, 3))
            img = Image.fromarray(np.ascontiguousarray(arr))
        elif kind in (3, 4):  # text card / slate
            for line in range(int(rng.integers(1, 4))):
                text = " ".join(rng.choice(words, size=int(rng.integers(1, 4))))
                draw.text(
                    (int(rng.integers(10, 200)), 60 + 80 * line),
                    text,
                    fill=_colour(rng),
                    font=font(size=int(rng.integers(20, 56))),
                )
        elif kind == 5:  # lower third over a flat or graded background
            y = int(rng.integers(h // 2, h - 60))
            draw.rectangle([0, y, w, y + int(rng.integers(30, 70))], fill=_colour(rng))
            draw.text((20, y + 8), " ".join(rng.choice(words, size=3)), fill=(255, 255, 255), font=font(size=24))
        else:  # a flat wall, a little noise and light fall-off
            base = np.array(_colour(rng), float)
            arr = base[None, None] + rng.normal(0, 3, (h, w, 3)) + np.linspace(-15, 15, w)[None, :, None]
            img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        frames.append(np.asarray(_fit(img)))
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=0, help="use only the first N pictures (0: all; for tests)")
    parser.add_argument("--generated", type=int, default=1400)
    parser.add_argument("--cache", type=Path, default=image_pool.DEFAULT_CACHE)
    parser.add_argument("--force", action="store_true", help="rebuild even if a background is there")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning, module="PIL")

    settings = get_settings()
    descriptor = create_descriptor(settings.descriptor, settings)
    target = background_dir(settings.background_dir, descriptor.config_id)
    if (target / "background.npz").exists() and not args.force:
        print(f"background for {descriptor.config_id} already at {target} (use --force to rebuild)")
        return 0
    started = time.perf_counter()
    try:
        images = image_pool.pool("background", args.cache)
    except image_pool.PoolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.images:
        images = images[: args.images]
    rng = np.random.default_rng(SEED)
    chunks: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    inputs = hashlib.sha256()  # every picture described, in order: the same on any CPU

    def describe(frames: list[np.ndarray]) -> None:
        for frame in frames:
            inputs.update(json.dumps(list(frame.shape)).encode() + np.ascontiguousarray(frame).tobytes())
        chunks.append(descriptor.describe(frames))

    for path in tqdm(images, desc="background pictures", file=sys.stderr, disable=not sys.stderr.isatty()):
        with Image.open(path) as img:
            batch += image_views(img.convert("RGB"), rng)
        if len(batch) >= 256:
            describe(batch)
            batch = []
    batch += generated_frames(rng, args.generated)
    for start in range(0, len(batch), 256):
        describe(batch[start : start + 256])
    vectors = np.concatenate(chunks)
    info = {
        "pictures": len(images),
        "views_per_picture": VIEWS_PER_IMAGE,
        "generated": args.generated,
        "packages": image_pool.POOLS["background"],
        "seed": SEED,
        "side": SIDE,
        "inputs_sha256": inputs.hexdigest(),
    }
    path = save_background(settings.background_dir, descriptor.config_id, vectors, info)
    print(
        f"background: {len(vectors)} descriptors ({len(images)} pictures x {VIEWS_PER_IMAGE} views + "
        f"{args.generated} generated) for {descriptor.config_id} in {time.perf_counter() - started:.0f} s -> {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
