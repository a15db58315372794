"""Aligned parts of verified pairs, hand-made: a crop agrees with its source, pictures sharing only chrome do not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from firstseen.search.aligned_agreement import AgreementCheck, overlapping_parts
from firstseen.search.calibration import Calibration
from firstseen.search.confirm import verify_pairs
from firstseen.search.geometry import PairEvidence, Region, SegmentEvidence
from firstseen.search.geometry_rescue import aligned_score
from firstseen.search.results import MatchSegment
from firstseen.search.verification import Verifier, VerifyParams
from tests.unit.test_verification import resize, scene


def pixels(images: list[np.ndarray]) -> np.ndarray:
    """A stand-in descriptor that sees only pixels: 24x24 grey, zero mean, unit length."""
    out = []
    for image in images:
        grey = np.asarray(Image.fromarray(image).convert("L").resize((24, 24), Image.Resampling.BILINEAR), np.float32)
        v = (grey - grey.mean()).ravel()
        out.append(v / (np.linalg.norm(v) + 1e-6))
    return np.stack(out)


def with_chrome(picture: np.ndarray) -> np.ndarray:
    """The picture under one program's chrome: an overview panel and a compass, the same on every screenshot."""
    panel = scene(99, 150, 110)
    out = picture.copy()
    out[80:190, 165:315] = panel
    img = Image.fromarray(out)
    draw = ImageDraw.Draw(img)
    draw.ellipse([330, 20, 400, 90], outline=(255, 255, 255), width=3)
    draw.polygon([(365, 25), (355, 55), (375, 55)], fill=(220, 30, 30))
    return np.asarray(img)


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier()


def test_a_crop_agrees_with_the_part_of_the_source_it_shows(verifier):
    source = scene(3)
    crop = resize(np.ascontiguousarray(source[20:182, 100:388]), 480, 270)  # 60% of it, scaled up
    pair = verifier.verify(crop, source)
    assert pair.verified
    query_part, source_part = overlapping_parts(crop, source, pair)
    assert source_part.shape[1] < 0.7 * source.shape[1]  # the source cut down to what the crop shows
    agreement = AgreementCheck(pixels, None, 10)(crop, source, pair)
    vectors = pixels([crop, source])
    whole = float(vectors[0] @ vectors[1])  # whole against whole: what the descriptor compared
    assert agreement > 0.9 and agreement > whole + 0.3


def test_a_mirrored_crop_is_compared_the_right_way_round(verifier):
    source = scene(4)
    crop = np.ascontiguousarray(source[30:230, 40:400][:, ::-1])
    pair = verifier.verify(crop, source)
    assert pair.verified and pair.flipped
    assert AgreementCheck(pixels, None, 10)(crop, source, pair) > 0.9


def keypoints_alone() -> Verifier:
    """A verifier without the cells' agreement (cell_agreement.py): keypoints decide alone."""
    return Verifier(VerifyParams(min_agreement=0.0))


def test_two_pictures_sharing_only_chrome_verify_but_do_not_agree():
    """What keypoints alone would call a copy: the shared panel and compass verify the pair."""
    one, other = with_chrome(scene(5)), with_chrome(scene(6))
    pair = keypoints_alone().verify(one, other)
    assert pair.verified  # keypoints alone are fooled by the chrome
    assert AgreementCheck(pixels, None, 10)(one, other, pair) < 0.5


def test_the_evidence_carries_the_mean_agreement_of_its_verified_pairs():
    verifier = keypoints_alone()
    source = scene(7)
    frames = {0: resize(np.ascontiguousarray(source[0:200, 0:360]), 480, 270), 1: with_chrome(scene(8))}
    sources = {0: source, 1: with_chrome(scene(9))}
    agree = AgreementCheck(pixels, None, 10)
    evidence = verify_pairs(verifier, [(0, 0), (1, 1)], frames.__getitem__, sources.__getitem__, agree=agree)
    crop = verify_pairs(keypoints_alone(), [(0, 0)], frames.__getitem__, sources.__getitem__, agree=agree).agreement
    chrome = verify_pairs(keypoints_alone(), [(1, 1)], frames.__getitem__, sources.__getitem__, agree=agree).agreement
    assert crop > 0.9 and chrome < 0.5
    assert evidence.pairs_verified == 2 and evidence.agreement == pytest.approx((crop + chrome) / 2)
    assert verify_pairs(Verifier(), [(0, 0)], frames.__getitem__, sources.__getitem__).agreement is None


def test_a_near_miss_scores_on_its_aligned_parts_only_once_verified():
    calibration = Calibration("toy/1", 0.2, -10.0, 30.0, 0.3, 0.5)
    segment = MatchSegment(0.0, 2.0, 10.0, 12.0, 1.0, False, False, 0.2, True)
    box = Region(0, 0, 1, 1)
    agreeing = SegmentEvidence(2, 2, 80, None, box, box, agreement=0.6)
    assert aligned_score(segment, calibration) == 0.0  # no evidence: no score
    assert aligned_score(_with(segment, agreeing), calibration) > 0.99
    assert aligned_score(_with(segment, SegmentEvidence(2, 2, 80, None, box, box, agreement=0.2)), calibration) < 0.5
    assert aligned_score(_with(segment, SegmentEvidence(2, 0, 0, None, None, None, agreement=0.6)), calibration) == 0
    assert aligned_score(_with(segment, SegmentEvidence(2, 2, 80, None, box, box)), calibration) == 0.0


def test_a_pair_that_did_not_verify_has_no_parts():
    frame = scene(10)
    assert overlapping_parts(frame, frame, PairEvidence(5, 5, -1, False, None, None)) is None
    sliver = PairEvidence(30, 30, -1, False, Region(0, 0, 0.02, 1), Region(0, 0, 1, 1))
    assert overlapping_parts(frame, frame, sliver) is None


def _with(segment: MatchSegment, evidence: SegmentEvidence) -> MatchSegment:
    from dataclasses import replace

    return replace(segment, evidence=evidence)
