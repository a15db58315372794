"""Static overlays: chrome shared by unrelated screenshots is found and carries no evidence; footage still does."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from test_verification import resize, scene

from firstseen.search.overlay import GRID_H, GRID_W, OverlayMask, overlay_of, static_overlay
from firstseen.search.verification import Verifier, VerifyParams

W, H = 480, 270
TIMES = [float(t) for t in range(8)]


def panning(seed: int) -> list[np.ndarray]:
    """Eight frames a second apart, panning and zooming across one big picture."""
    big = scene(seed, 960, 540)
    frames = []
    for k in range(len(TIMES)):
        x, y, w = 30 * k, 18 * k, 720 - 20 * k
        frames.append(resize(np.ascontiguousarray(big[y : y + w * 9 // 16, x : x + w]), W, H))
    return frames


def chrome() -> np.ndarray:
    """One program's chrome as an RGBA layer: a toolbar, an overview inset, a play button."""
    layer = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.rectangle([0, 0, W, 26], fill=(50, 60, 70, 255))
    for i, label in enumerate(("File", "View", "Layers", "Search", "Share")):
        draw.text((8 + 58 * i, 8), label, fill=(235, 235, 235, 255))
    draw.rectangle([12, 150, 116, 226], fill=(150, 170, 140, 255))
    rng = np.random.default_rng(3)
    for _ in range(14):
        x, y = (int(v) for v in rng.integers(0, 90, 2))
        fill = tuple(int(c) for c in rng.integers(40, 160, 3)) + (255,)
        draw.polygon([(12 + x, 150 + y % 60), (30 + x, 159 + y % 60), (18 + x, 172 + y % 60)], fill=fill)
    draw.ellipse([W / 2 - 30, H / 2 - 30, W / 2 + 30, H / 2 + 30], fill=(250, 250, 250, 255), outline=(20, 20, 20, 255))
    draw.polygon([(W / 2 - 10, H / 2 - 16), (W / 2 - 10, H / 2 + 16), (W / 2 + 16, H / 2)], fill=(20, 20, 20, 255))
    return np.asarray(layer)


def under(layer: np.ndarray, frames: list[np.ndarray]) -> list[np.ndarray]:
    alpha = layer[..., 3:] / 255.0
    return [(f * (1 - alpha) + layer[..., :3] * alpha).astype(np.uint8) for f in frames]


def logo(seed: int, x: int, y: int) -> np.ndarray:
    layer = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.rectangle([x, y, x + 60, y + 30], fill=(200, 30 + seed * 40, 40, 255))
    draw.text((x + 8, y + 10), f"TV{seed}", fill=(255, 255, 255, 255))
    return np.asarray(layer)


@pytest.fixture(scope="module")
def screenshots() -> tuple[list[np.ndarray], list[np.ndarray]]:
    layer = chrome()
    return under(layer, panning(11)), under(layer, panning(12))


def test_a_programs_chrome_over_a_moving_picture_is_found(screenshots):
    mask = static_overlay(screenshots[0], TIMES)
    assert mask is not None
    toolbar, inset, button = mask.cells[1:5, 2:50], mask.cells[32:40, 5:20], mask.cells[25:29, 46:50]
    assert toolbar.mean() > 0.9 and inset.mean() > 0.9 and button.mean() > 0.9
    assert mask.share < 0.3  # the picture under it is not the overlay
    assert not mask.cells[8:20, 60:90].any()


def test_two_unrelated_screenshots_verify_on_chrome_alone_and_not_once_it_is_masked(screenshots):
    first, second = screenshots
    masks = static_overlay(first, TIMES), static_overlay(second, TIMES)
    # keypoints alone (without the cells' agreement, cell_agreement.py, which rejects these pairs
    # too), so that the masks are what is tested
    verifier = Verifier(VerifyParams(min_agreement=0.0))
    # without the masks the chrome alone verifies them: the failure this guards against
    assert any(verifier.verify(a, b).verified for a, b in zip(first, second))
    checked = [verifier.verify(a, b, query_overlay=masks[0], source_overlay=masks[1]) for a, b in zip(first, second)]
    assert not any(e.verified for e in checked)
    # either side's mask is enough: a still query has none, the archive video's does the work
    assert not any(verifier.verify(a, b, source_overlay=masks[1]).verified for a, b in zip(first, second))


def test_a_copy_under_the_same_chrome_still_verifies_on_its_footage(screenshots):
    first, _ = screenshots
    copy = [resize(resize(f, 320, 180), W, H) for f in first]  # re-encoded smaller and back
    masks = static_overlay(first, TIMES), static_overlay(copy, TIMES)
    assert masks[1] is not None
    evidence = Verifier().verify(copy[3], first[3], query_overlay=masks[1], source_overlay=masks[0])
    assert evidence.verified and evidence.inliers >= 20


def test_a_copy_with_a_new_logo_of_footage_with_its_own_logo_verifies():
    footage = panning(21)
    source = under(logo(1, 400, 10), footage)
    copy = under(logo(2, 12, 230), source)  # re-broadcast: the original bug stays, a new one is added
    masks = static_overlay(copy, TIMES), static_overlay(source, TIMES)
    assert masks[0] is not None and masks[1] is not None
    assert masks[0].cells[46:52, 5:12].any() and masks[1].cells[3:7, 82:90].any()
    evidence = Verifier().verify(copy[5], source[5], query_overlay=masks[0], source_overlay=masks[1])
    assert evidence.verified and evidence.query_in_source.whole


def steady_street() -> list[np.ndarray]:
    """A tripod shot: a still street, someone walking past."""
    street = scene(31)
    frames = []
    for k in range(len(TIMES)):
        frame = street.copy()
        frame[100:170, 40 + 50 * k : 90 + 50 * k] = scene(40 + k, 50, 70)
        frames.append(frame)
    return frames


def test_a_steady_shot_is_told_apart_and_its_still_parts_stay_evidence():
    """A tripod shot's still background is its footage, not an overlay: masking it would lose
    copies, a picture-in-picture of it above all (there the still inset looks like an overlay)."""
    frames = steady_street()
    mask = static_overlay(frames, TIMES)
    assert mask is not None and mask.steady and not mask.cells.any()
    # the same footage in a small inset over moving pictures: its still parts look like an overlay
    inset = [scene(50 + k, W, H).copy() for k in range(len(TIMES))]
    for frame, small in zip(inset, frames):
        frame[60:195, 120:360] = resize(small, 240, 135)
    pip_mask = static_overlay(inset, TIMES)
    assert pip_mask is not None and not pip_mask.steady and pip_mask.cells[15:36, 26:70].mean() > 0.5
    verifier = Verifier()
    masked = verifier.verify(inset[4], frames[4], query_overlay=pip_mask)
    kept = verifier.verify(inset[4], frames[4], query_overlay=pip_mask, source_overlay=mask)
    assert kept.verified and kept.inliers > masked.inliers


def letterboxed_9x16(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The frames re-framed for a phone: full width in a 9:16 frame, black bars above and below."""
    out = []
    for frame in frames:
        tall = np.zeros((W * 16 // 9, W, 3), np.uint8)
        top = (len(tall) - H) // 2
        tall[top : top + H] = frame
        out.append(tall)
    return out


def test_bars_around_the_picture_do_not_make_it_a_steady_shot(screenshots):
    """A 9:16 re-framing is two thirds black bars: counted over the whole frame, too little of it
    moved and the screenshots' chrome passed for a steady shot's scenery (the evaluation's
    9:16 re-framing of a screenshot slideshow then verified on the chrome)."""
    tall = letterboxed_9x16(screenshots[0])
    mask = static_overlay(tall, TIMES)
    assert mask is not None and not mask.steady
    rows = slice(int(0.34 * GRID_H), int(0.66 * GRID_H))  # the picture's band
    assert mask.cells[rows].any() and not mask.cells[: int(0.25 * GRID_H)].any()  # the bars are no overlay
    # a steady shot stays one in bars
    assert static_overlay(letterboxed_9x16(steady_street()), TIMES).steady


def test_a_still_or_flat_clip_tells_nothing():
    flat = [np.full((H, W, 3), 90 + k, np.uint8) for k in range(len(TIMES))]
    assert static_overlay(flat, TIMES) is None
    assert static_overlay([scene(60)] * len(TIMES), TIMES) is None  # a paused screen


def test_moving_footage_without_overlays_gets_an_empty_mask():
    mask = static_overlay(panning(70), TIMES)
    assert mask is not None and not mask.steady and not mask.cells.any()


def test_too_few_frames_or_seconds_tell_nothing(screenshots):
    first, _ = screenshots
    assert static_overlay(first[:5], TIMES[:5]) is None
    assert static_overlay(first, [t / 4 for t in TIMES]) is None  # two seconds: a still scene looks the same
    with pytest.raises(ValueError):
        static_overlay(first, TIMES[:3])


def test_overlay_of_reads_the_usable_frames_in_the_span(screenshots):
    first, _ = screenshots
    times = np.array(TIMES)
    assert overlay_of(first.__getitem__, times, np.ones(8, bool), 0.0, 7.0) is not None
    assert overlay_of(first.__getitem__, times, np.ones(8, bool), 0.0, 4.0) is None  # five frames
    assert overlay_of(first.__getitem__, times, np.arange(8) % 2 == 0, -np.inf, np.inf) is None


def test_a_mask_mirrors_and_covers_points_in_frame_coordinates():
    cells = np.zeros((GRID_H, GRID_W), bool)
    cells[0:5, 0:10] = True  # top left
    mask = OverlayMask(cells)
    points = np.array([[5.0, 5.0], [W - 5.0, 5.0], [W / 2, H / 2]])
    assert mask.covers(points, W, H).tolist() == [True, False, False]
    assert mask.mirrored().covers(points, W, H).tolist() == [False, True, False]
    assert mask.covers(points * 2, 2 * W, 2 * H).tolist() == [True, False, False]  # the frame's own size
    with pytest.raises(ValueError):
        OverlayMask(np.zeros((3, 3), bool))
