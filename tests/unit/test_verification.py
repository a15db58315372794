"""Geometric verification on hand-made pictures with known transforms: crop, scale, flip, inset, unrelated."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from firstseen.search.geometry import PairEvidence, Region, SegmentEvidence, summarise
from firstseen.search.verification import Verifier, decode_thumbnail, encode_thumbnail


def scene(seed: int, width: int = 480, height: int = 270) -> np.ndarray:
    """A busy, asymmetric picture: random shapes and lines over a gradient, like a street scene's texture."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (width, height), tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(160):
        x, y = rng.integers(0, width), rng.integers(0, height)
        w, h = rng.integers(4, 60, 2)
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.rectangle([x, y, x + w, y + h], fill=colour)
        elif kind == 1:
            draw.ellipse([x, y, x + w, y + h], fill=colour, outline=(0, 0, 0))
        else:
            draw.line([x, y, x + w, y - h], fill=colour, width=int(rng.integers(1, 4)))
    return np.asarray(img)


def resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR))


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier()


def test_an_identical_frame_verifies_with_the_whole_frame_as_region(verifier):
    source = scene(1)
    evidence = verifier.verify(source, source)
    assert evidence.verified and not evidence.flipped
    assert evidence.query_in_source.area > 0.95 and evidence.source_in_query.area > 0.95


def test_a_crop_is_placed_where_it_was_cut(verifier):
    source = scene(2)
    crop = np.ascontiguousarray(source[0:162, 0:288])  # the top-left 60% x 60%
    evidence = verifier.verify(crop, source)
    assert evidence.verified and not evidence.flipped
    truth = Region(0.0, 0.0, 0.6, 0.6)
    assert evidence.query_in_source.iou(truth) > 0.9
    assert evidence.source_in_query.whole  # the crop shows nothing the source does not
    assert (
        SegmentEvidence(1, 1, evidence.inliers, None, evidence.query_in_source, None).describe()
        == "shows 36% of the source frame, its top left part"
    )


def test_a_downscaled_copy_verifies(verifier):
    source = scene(3)
    small = resize(source, 160, 90)
    evidence = verifier.verify(small, source)
    assert evidence.verified and evidence.query_in_source.area > 0.9


def test_an_inset_is_located_inside_the_query_frame(verifier):
    source, background = scene(4), scene(5)
    query = background.copy()
    inset = resize(source, 240, 135)  # half the width, a quarter of the area, bottom right
    query[120:255, 220:460] = inset
    evidence = verifier.verify(query, source)
    assert evidence.verified
    truth = Region(220 / 480, 120 / 270, 240 / 480, 135 / 270)
    assert evidence.source_in_query.iou(truth) > 0.85
    assert evidence.query_in_source.whole
    assert "bottom right" in SegmentEvidence(1, 1, 1, None, None, evidence.source_in_query).describe()


def test_a_small_inset_verifies_in_a_window_with_the_whole_frames_box():
    source, background = scene(14), scene(15, width=640, height=360)
    query = background.copy()
    query[40:130, 400:560] = resize(source, 160, 90)  # a quarter of the width: 6% of the frame
    truth = Region(400 / 640, 40 / 360, 160 / 640, 90 / 360)
    window = Region(0.5, 0.0, 0.5, 0.5)  # the top right quarter holds the inset
    evidence = Verifier().verify(query, source, window=window)
    assert evidence.verified and evidence.source_in_query.iou(truth) > 0.85  # the whole frame's coordinates
    elsewhere = Verifier().verify(query, source, window=Region(0.0, 0.5, 0.5, 0.5))
    assert not elsewhere.verified  # a window without the inset has nothing to match


def test_a_mirrored_inset_is_boxed_where_it_sits_in_the_frame_shown(verifier):
    source, background = scene(16), scene(17)
    query = background.copy()
    query[20:155, 20:260] = resize(source, 240, 135)[:, ::-1]  # flipped, top left
    evidence = verifier.verify(query, source)
    assert evidence.verified and evidence.flipped
    assert evidence.source_in_query.iou(Region(20 / 480, 20 / 270, 240 / 480, 135 / 270)) > 0.85


def test_a_mirrored_copy_is_recognised_as_flipped(verifier):
    source = scene(6)
    evidence = verifier.verify(np.ascontiguousarray(source[:, ::-1]), source)
    assert evidence.verified and evidence.flipped
    assert evidence.flipped_inliers > 3 * max(evidence.shown_inliers, 1)


def test_unrelated_pictures_do_not_verify(verifier):
    for seed in range(10, 16):
        assert not verifier.verify(scene(seed), scene(seed + 100)).verified


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.zeros((270, 480, 3), np.uint8),
        lambda: np.full((270, 480, 3), 128, np.uint8),
        lambda: np.tile(np.linspace(0, 255, 480, dtype=np.uint8)[None, :, None], (270, 1, 3)),
    ],
    ids=["black", "grey", "gradient"],
)
def test_featureless_frames_never_verify_even_against_themselves(verifier, make):
    frame = make()
    evidence = verifier.verify(frame, frame)
    assert not evidence.verified and evidence.query_in_source is None


def test_a_symmetric_scene_makes_no_mirror_claim():
    half = scene(7, width=240)
    symmetric = np.concatenate([half, half[:, ::-1]], axis=1)
    pairs = [Verifier().verify(np.ascontiguousarray(symmetric[:, ::-1]), symmetric) for _ in range(3)]
    assert all(p.verified for p in pairs)
    assert summarise(pairs).mirrored is not True


def test_mirroring_needs_several_pairs_to_agree():
    flipped = PairEvidence(80, 5, 80, True, Region(0, 0, 1, 1), Region(0, 0, 1, 1))
    shown = PairEvidence(80, 80, 5, False, Region(0, 0, 1, 1), Region(0, 0, 1, 1))
    failed = PairEvidence(3, 3, 2, False, None, None)
    assert summarise([flipped, flipped, failed]).mirrored is True
    assert summarise([flipped, shown, failed]).mirrored is None  # a disagreement is no claim
    assert summarise([flipped, failed, failed]).mirrored is None  # one pair of three is not several
    assert summarise([flipped]).mirrored is True  # a single pair checked: it is all there is
    assert summarise([failed, failed]).verified is False


def test_a_segment_pools_the_cells_of_its_verified_pairs_and_round_trips():
    box = Region(0, 0, 1, 1)
    first = PairEvidence(80, 80, -1, False, box, box, cells_textured=100, cells_agreeing=90)
    second = PairEvidence(40, 40, -1, False, box, box, cells_textured=50, cells_agreeing=30)
    failed = PairEvidence(12, 12, 3, False, None, None, cells_textured=80, cells_agreeing=10)
    segment = summarise([first, second, failed])
    assert (segment.cells_textured, segment.cells_agreeing) == (150, 120)
    assert segment.picture_agreement == pytest.approx(0.8)
    data = segment.to_dict()
    assert data["cells_compared"] == 150 and data["picture_agreement"] == 0.8
    assert SegmentEvidence.from_dict(data) == segment
    old = {k: v for k, v in data.items() if k not in ("cells_compared", "picture_agreement")}  # stored before
    assert SegmentEvidence.from_dict(old).picture_agreement is None
    assert summarise([failed]).picture_agreement is None


def test_thumbnails_round_trip_as_grey_and_still_verify(verifier):
    source = scene(8)
    thumb = decode_thumbnail(encode_thumbnail(source, 320))
    assert thumb.ndim == 2 and max(thumb.shape) == 320
    assert verifier.verify(source, thumb).verified
    with pytest.raises(ValueError):
        decode_thumbnail(b"not a jpeg")


def test_region_rejects_boxes_outside_the_frame():
    with pytest.raises(ValueError):
        Region(0.5, 0.0, 0.6, 0.5)
    with pytest.raises(ValueError):
        Region(0.0, 0.0, 0.0, 0.5)
    assert Region.from_dict(Region(0.1, 0.2, 0.3, 0.4).to_dict()) == Region(0.1, 0.2, 0.3, 0.4)


def test_prefetched_features_give_the_same_evidence_as_features_computed_in_turn():
    source, crop = scene(21), np.ascontiguousarray(scene(21)[20:200, 40:400])
    other = scene(22)
    in_turn = Verifier()
    expected = [
        in_turn.verify(crop, source, query_key=0, source_key=("a", 0)),
        in_turn.verify(crop, other, query_key=0, source_key=("b", 0)),
    ]
    window = Region(0.0, 0.0, 0.8, 0.8)
    expected_window = Verifier().verify(crop, source, query_key=0, source_key=("a", 0), window=window)

    ahead = Verifier()
    ahead.prefetch([(crop, 0)], [(source, ("a", 0)), (other, ("b", 0))])
    assert len(ahead._cache) == 3  # computed up front, on worker threads
    assert [
        ahead.verify(crop, source, query_key=0, source_key=("a", 0)),
        ahead.verify(crop, other, query_key=0, source_key=("b", 0)),
    ] == expected
    assert len(ahead._cache) == 3 + (not expected[1].verified)  # only the failed pair's flipped view is new
    windowed = Verifier()
    windowed.prefetch([(crop, 0)], [(source, ("a", 0))], window)
    assert windowed.verify(crop, source, query_key=0, source_key=("a", 0), window=window) == expected_window
