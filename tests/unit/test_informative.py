"""Uninformative frames (black, flat, fades, bars, cards) are flagged; real footage and textured scenes are not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from test_verification import scene

from firstseen.media.decode import sample_frames
from firstseen.media.informative import informative_flags, measure

H, W = 202, 360


def card(background, lines, colour=(255, 255, 255)) -> np.ndarray:
    img = Image.new("RGB", (W, H), background)
    draw = ImageDraw.Draw(img)
    for k, line in enumerate(lines):
        draw.text((30, 70 + 30 * k), line, fill=colour, font=ImageFont.load_default(size=22))
    return np.asarray(img)


def colour_bars() -> np.ndarray:
    bars = np.zeros((H, W, 3), np.uint8)
    colours = [(192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192)]
    for i, c in enumerate(colours):
        bars[:, i * W // 7 : (i + 1) * W // 7] = c
    return bars


def lower_third() -> np.ndarray:
    frame = np.full((H, W, 3), 40, np.uint8)
    frame[150:190] = (200, 30, 30)
    return frame


def fade(level: int) -> np.ndarray:
    return (scene(3, W, H).astype(np.float32) * level / 255).astype(np.uint8)


UNINFORMATIVE = {
    "black": lambda: np.zeros((H, W, 3), np.uint8),
    "grey": lambda: np.full((H, W, 3), 128, np.uint8),
    "gradient": lambda: np.tile(np.linspace(0, 255, W, dtype=np.uint8)[None, :, None], (H, 1, 3)),
    "noisy_wall": lambda: np.clip(np.random.default_rng(0).normal(120, 3, (H, W, 3)), 0, 255).astype(np.uint8),
    "colour_bars": colour_bars,
    "title_card": lambda: card((10, 20, 90), ["BREAKING NEWS"]),
    "slate": lambda: card((250, 250, 250), ["Take 3", "Scene 12"], (0, 0, 0)),
    "lower_third": lower_third,
    "fade_to_black": lambda: fade(6),
}


@pytest.mark.parametrize("name", UNINFORMATIVE)
def test_frames_with_too_little_picture_are_flagged(name):
    assert not measure(UNINFORMATIVE[name]()).informative


def test_a_textured_scene_is_informative_even_letterboxed_or_pillarboxed():
    picture = scene(1, W, H)
    assert measure(picture).informative
    letterboxed = np.zeros((H, W, 3), np.uint8)
    letterboxed[40:162] = np.asarray(Image.fromarray(picture).resize((W, 122)))
    pillarboxed = np.zeros((H, W, 3), np.uint8)
    pillarboxed[:, 120:240] = picture[:, 120:240]
    assert measure(letterboxed).informative and measure(pillarboxed).informative
    # the bars are not counted as picture
    assert measure(letterboxed).picture_share == pytest.approx(122 / H, abs=0.05)


def test_real_footage_is_almost_all_informative(footage):
    for name in ("vtest.avi", "calais_1906.ogv", "bikes.mp4", "diver.mov", "cockatoo.mp4"):
        frames = [f.rgb for f in sample_frames(footage / name, fps=1.0, max_side=360)]
        flags = informative_flags(frames)
        assert flags.mean() >= 0.9, f"{name}: {np.flatnonzero(~flags)} flagged"


def test_a_hazy_or_blurred_picture_is_informative_where_flat_look_alikes_are_not():
    import cv2

    hazy = cv2.GaussianBlur(scene(2, W, H), (0, 0), 4.0)  # murky water, a crop scaled up
    hazy = (hazy.astype(np.float32) * 0.6 + 51).astype(np.uint8)  # and low in contrast
    judged = measure(hazy)
    assert judged.textured_share < 0.04, "too few sharp edges at the judging size"
    assert judged.informative and judged.coarse_textured_share >= 0.04, "at half the size its edges show"
    for name, make in UNINFORMATIVE.items():  # the same second look finds nothing in the look-alikes
        blurred = cv2.GaussianBlur(make(), (0, 0), 4.0)
        assert not measure(blurred).informative, name


def test_a_crop_of_real_hazy_footage_scaled_up_keeps_its_frames(footage):
    import cv2

    frames = [f.rgb for f in sample_frames(footage / "diver.mov", fps=1.0, max_side=360)]
    h, w = frames[0].shape[:2]
    crops = [cv2.resize(f[int(0.2 * h) : int(0.8 * h), int(0.2 * w) : int(0.8 * w)], (w, h)) for f in frames]
    judged = [measure(c) for c in crops]
    sharp_enough = sum(j.textured_share >= 0.04 for j in judged)  # what the judging size alone lets in
    assert sum(j.informative for j in judged) >= max(0.8 * len(crops), sharp_enough + 3)
