"""Aligned pictures agree cell by cell: copies through edits do, pictures sharing only graphics do not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from firstseen.search.cell_agreement import CELL_PX, CellAgreement, cell_agreement
from firstseen.search.overlay import GRID_H, GRID_W, OverlayMask
from firstseen.search.verification import Verifier, VerifyParams
from tests.unit.test_aligned_agreement import with_chrome
from tests.unit.test_verification import resize, scene


def grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def test_a_picture_agrees_with_itself_and_through_photometric_edits():
    source = grey(scene(1))
    same = cell_agreement(source, source, IDENTITY)
    assert same.textured > 200 and same.share == 1.0
    edited = np.clip(source.astype(np.float32) * 0.6 + 70, 0, 255)  # darker, flatter
    edited = cv2.GaussianBlur(edited, (0, 0), 1.2) + np.random.default_rng(0).normal(0, 6, source.shape)
    assert cell_agreement(np.clip(edited, 0, 255).astype(np.uint8), source, IDENTITY).share > 0.85


def test_a_different_picture_does_not_agree():
    result = cell_agreement(grey(scene(2)), grey(scene(3)), IDENTITY)
    assert result.textured > 200 and result.share < 0.15


def test_the_transform_places_a_scaled_crop():
    source = scene(4)
    crop = resize(np.ascontiguousarray(source[27:189, 96:384]), 480, 270)  # 60% of it, scaled up
    # query (crop) pixels -> source pixels: scale 0.6, then the crop's corner
    transform = np.array([[0.6, 0.0, 96.0], [0.0, 0.6, 27.0]])
    right = cell_agreement(grey(crop), grey(source), transform)
    wrong = cell_agreement(grey(crop), grey(source), np.array([[0.6, 0.0, 0.0], [0.0, 0.6, 0.0]]))
    assert right.share > 0.8 and wrong.share < 0.3
    # only cells the crop covers count: about 60% x 60% of the source's
    assert right.textured <= 0.45 * (270 // CELL_PX) * (480 // CELL_PX)


def test_a_window_offset_is_the_windows_place_in_the_frame():
    """Features of a window carry whole-frame coordinates; its pixels start at the window's corner."""
    source = grey(scene(5))
    window = np.ascontiguousarray(source[60:200, 100:400])
    result = cell_agreement(window, source, IDENTITY, query_offset=(100.0, 60.0))
    assert result.textured > 100 and result.share > 0.95
    assert cell_agreement(window, source, IDENTITY).share < 0.3  # without the offset it lands elsewhere


def test_cells_on_a_static_overlay_count_for_nothing():
    first, second = with_chrome(scene(6)), with_chrome(scene(7))
    unmasked = cell_agreement(grey(first), grey(second), IDENTITY)
    cells = np.zeros((GRID_H, GRID_W), bool)
    row, col = GRID_H / 270, GRID_W / 480  # cells per pixel
    cells[int(80 * row) : int(190 * row) + 2, int(165 * col) : int(315 * col) + 2] = True  # the panel
    cells[: int(95 * row), int(325 * col) : int(405 * col)] = True  # the compass
    mask = OverlayMask(cells)
    masked = cell_agreement(grey(first), grey(second), IDENTITY, source_overlay=mask)
    chance = cell_agreement(grey(scene(6)), grey(scene(7)), IDENTITY).agreeing  # the pictures without the chrome
    assert unmasked.agreeing > chance + 40  # the shared panel and compass agree...
    assert masked.agreeing <= chance + 3 and masked.textured < unmasked.textured  # ...and count for nothing masked
    # a steady shot's mask masks nothing (its still parts are footage)
    steady = cell_agreement(grey(first), grey(second), IDENTITY, source_overlay=OverlayMask.steady_shot())
    assert steady == unmasked
    assert cell_agreement(grey(first), grey(second), IDENTITY, query_overlay=mask).agreeing <= chance + 3


def test_a_cell_with_detail_on_one_side_only_is_a_disagreement():
    source = grey(scene(8))
    patched = source.copy()
    patched[64:208, 96:384] = 128  # a flat patch over the middle of the picture (9 x 18 cells)
    whole = cell_agreement(source, source, IDENTITY)
    result = cell_agreement(patched, source, IDENTITY)
    assert result.textured >= whole.textured  # the flat cells still count, against
    assert whole.agreeing - result.agreeing > 100 and result.share < 0.65  # of 162 cells, those with source detail
    flat = np.full_like(source, 128)
    assert cell_agreement(flat, flat, IDENTITY) == CellAgreement(0, 0)


def test_counts_are_checked():
    with pytest.raises(ValueError):
        CellAgreement(3, 4)
    assert CellAgreement(0, 0).share == 0.0


def test_pictures_sharing_only_graphics_verify_on_keypoints_but_not_as_pictures():
    """The failure this guards against: keypoints alone verify two different pictures on the
    panel and compass they share; the pictures around them do not agree."""
    first, second = with_chrome(scene(9)), with_chrome(scene(10))
    keypoints_alone = Verifier(VerifyParams(min_agreement=0.0)).verify(first, second)
    assert keypoints_alone.verified and keypoints_alone.cells_agreeing < 0.4 * keypoints_alone.cells_textured
    checked = Verifier().verify(first, second)
    assert not checked.verified
    # a copy under the same graphics still verifies, and says how much of it agrees
    copy = resize(resize(first, 320, 180), 480, 270)
    evidence = Verifier().verify(copy, first)
    assert evidence.verified and evidence.cells_agreeing > 0.8 * evidence.cells_textured


def test_a_mirrored_copy_agrees_in_the_flipped_view():
    source = scene(11)
    evidence = Verifier().verify(np.ascontiguousarray(source[:, ::-1]), source)
    assert evidence.verified and evidence.flipped
    assert evidence.cells_agreeing > 0.9 * evidence.cells_textured


def test_too_little_picture_to_compare_is_no_verified_pair():
    """Two small emblems on a flat field (a studio card): keypoints alone verify two such cards,
    but a few cells of detail are no picture to compare, whoever made the card."""
    card = np.full((270, 480, 3), 60, np.uint8)
    card[96:116, 176:196], card[160:180, 288:308] = scene(12, 20, 20), scene(13, 20, 20)
    keypoints_alone = Verifier(VerifyParams(min_agreement=0.0)).verify(card, card.copy())
    assert keypoints_alone.verified and 0 < keypoints_alone.cells_textured < 12
    assert not Verifier().verify(card, card.copy()).verified


def test_bars_around_either_picture_are_no_disagreement():
    """A pillarboxed copy shows the middle of its source between black sides, which the
    transform lays over the source's own picture: bars are not picture, so they count for nothing."""
    source = grey(scene(14))
    pillarboxed = source.copy()
    pillarboxed[:, :60], pillarboxed[:, -60:] = 0, 0
    result = cell_agreement(pillarboxed, source, IDENTITY)
    assert result.share > 0.95 and result.textured < 0.8 * cell_agreement(source, source, IDENTITY).textured
    assert cell_agreement(source, pillarboxed, IDENTITY).share > 0.95  # the source in bars, the copy full
    keypoints = Verifier().verify(np.repeat(pillarboxed[:, :, None], 3, axis=2), scene(14))
    assert keypoints.verified and keypoints.cells_agreeing > 0.9 * keypoints.cells_textured


def test_a_copy_squeezed_to_another_aspect_ratio_agrees_once_registered_by_an_affine_transform():
    """A 16:9 picture squeezed into a 4:3-ish box inside a 16:9 frame (a wrongly boxed re-upload):
    keypoints still fit a similarity near the middle, but only an affine registration lays
    its pixels over the source's."""
    source = scene(15)
    squeezed = np.zeros_like(source)
    squeezed[:, 48:432] = resize(source, 384, 270)
    evidence = Verifier().verify(squeezed, source)
    assert evidence.verified and evidence.cells_agreeing > 0.9 * evidence.cells_textured
