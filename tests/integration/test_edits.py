"""Tests for scripts/edits.py: every edit decodes, and its truth names the source frames actually shown."""

from __future__ import annotations

import numpy as np
import pytest
from clips import make_clip, read_index
from edits import EDITS, FrameSource, TruthSegment, make_negative, make_query
from PIL import Image

from firstseen.media.decode import sample_frames

FPS = 25.0
WINDOW = (1.0, 2.4)  # start, length: short, so the whole file stays fast


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, FrameSource]:
    """Index-drawing clips: a VFR main source (so nothing may assume a frame rate) and two CFR others."""
    folder = tmp_path_factory.mktemp("sources")
    gaps = np.random.default_rng(7).uniform(0.05, 0.15, 60)
    main = make_clip(folder / "main.mp4", vfr_times=list(np.round(np.cumsum(gaps) - gaps[0], 3)), size=(320, 240))
    a = make_clip(folder / "other_a.mp4", fps=5, seconds=6, size=(320, 240))
    b = make_clip(folder / "other_b.mkv", fps=8, seconds=6, size=(320, 240))
    return {p.name: FrameSource(p) for p in (main, a, b)}


def build(sources, edit, out_dir, seed=0, negative=False):
    main, *others = sources.values()
    maker = make_negative if negative else make_query
    return maker(edit, main, *WINDOW, out_dir, rng=np.random.default_rng(seed), others=others, out_fps=FPS)


def decode(path, max_side=1280):
    return list(sample_frames(path, fps=None, max_side=max_side, skip_nonref=False))


def source_time(seg: TruthSegment, q: float) -> float:
    offset = seg.speed * (q - seg.query_start)
    return seg.source_end - offset if seg.reversed else seg.source_start + offset


def expected_index(seg: TruthSegment, q: float, source_pts: dict[str, np.ndarray]) -> int:
    """The source frame shown at query time q, found via the source's own decoded pts."""
    pts = source_pts[seg.source]
    i = int(np.searchsorted(pts, source_time(seg, q) + 1e-6, side="right")) - 1
    return min(max(i, 0), len(pts) - 1)


@pytest.fixture(scope="module")
def source_pts(sources) -> dict[str, np.ndarray]:
    # decoded independently of FrameSource, so a FrameSource timing bug cannot hide itself
    return {name: np.array([f.pts_s for f in decode(src.path)]) for name, src in sources.items()}


def _unflip(rgb):
    return rgb[:, ::-1]


def _letterbox_center(rgb):
    # 320x240 scaled to the 360 wide canvas is 360x270, centred vertically
    top = (rgb.shape[0] - 270) // 2
    return rgb[top : top + 270]


@pytest.mark.parametrize(
    ("edit", "unwarp"),
    [("reencode", None), ("speed_0.5", None), ("speed_2", None), ("reversed", None), ("reversed_speed_2", None),
     ("splice", None), ("embedded", None), ("brightness_contrast", None), ("mirror", _unflip),
     ("letterbox_9x16", _letterbox_center)],
)  # fmt: skip
def test_query_frames_follow_the_truth_mapping(tmp_path, sources, source_pts, edit, unwarp):
    query = build(sources, edit, tmp_path)
    frames = decode(query.path)
    extent = max(s.query_end for s in query.truth) if edit != "embedded" else None
    if extent is not None:
        assert len(frames) == round(extent * FPS)
    checked = 0
    for k, frame in enumerate(frames):
        assert frame.pts_s == pytest.approx(k / FPS, abs=1e-3)  # frame k at k/out_fps
        seg = next((s for s in query.truth if s.query_start - 1e-6 <= frame.pts_s < s.query_end - 1e-6), None)
        if seg is None:
            assert edit == "embedded"  # only its unrelated footage lies outside the truth
            continue
        rgb = unwarp(frame.rgb) if unwarp else frame.rgb
        got, want = read_index(rgb), expected_index(seg, frame.pts_s, source_pts)
        assert abs(got - want) <= 1, f"{edit} frame {k} at {frame.pts_s:.3f}s shows {got}, truth says {want}"
        checked += 1
    assert checked >= 10
    if edit == "splice":
        names = [s.source for s in query.truth]
        assert 2 <= len(names) <= 3 and len(set(names)) == len(names) and "main.mp4" in names


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_every_edit_decodes_with_consistent_truth(tmp_path, sources, edit):
    query = build(sources, edit, tmp_path, seed=3)
    assert query.edit == edit and query.path.exists() and query.path.parent == tmp_path
    assert query.path.name.startswith(f"{edit}-main-")
    assert query.truth, "a positive query needs truth"
    for seg in query.truth:
        src = sources[seg.source]
        assert seg.query_end >= seg.query_start >= 0
        assert 0 <= seg.source_start <= seg.source_end <= src.duration_s + 1e-6
        assert seg.speed > 0
        if query.kind == "video":
            span = (seg.query_end - seg.query_start) * seg.speed
            assert seg.source_end - seg.source_start == pytest.approx(span, abs=1e-6)
    assert sum(s.source == "main.mp4" for s in query.truth) == 1
    main_seg = next(s for s in query.truth if s.source == "main.mp4")
    assert main_seg.source_start >= WINDOW[0] - 1e-6 and main_seg.source_end <= sum(WINDOW) + 1e-6
    assert main_seg.mirrored == (edit == "mirror")
    assert main_seg.reversed == edit.startswith("reversed")
    if edit.startswith(("speed_", "reversed_speed_")):
        assert main_seg.speed == float(edit.rsplit("_", 1)[1])

    if query.kind == "image":
        assert edit.startswith("still")
        with Image.open(query.path) as img:
            img.load()
            assert img.format == ("JPEG" if edit == "still" else "PNG")
        assert main_seg.query_start == main_seg.query_end == 0
        assert main_seg.source_start in sources["main.mp4"].pts  # a real frame's pts
        return
    frames = decode(query.path)
    segments = sorted(query.truth, key=lambda s: s.query_start)
    for before, after in zip(segments, segments[1:]):
        assert after.query_start >= before.query_end - 1e-9  # pieces do not overlap in the query
    duration = frames[-1].pts_s + 1 / FPS
    if edit == "embedded":
        assert 9.5 <= duration <= 12.5 and 0 < main_seg.query_start and main_seg.query_end < duration
    else:
        assert segments[0].query_start == 0
        assert duration == pytest.approx(segments[-1].query_end, abs=1 / FPS + 1e-3)
    h, w = frames[0].rgb.shape[:2]
    assert w % 2 == 0 and h % 2 == 0


def test_mirror_and_crop_geometry(tmp_path, sources):
    main = sources["main.mp4"]
    mirrored = build(sources, "mirror", tmp_path)
    seg = mirrored.truth[0]
    for frame in decode(mirrored.path)[::7]:
        flipped = main.frame_at(source_time(seg, frame.pts_s))[:, ::-1]
        assert np.abs(frame.rgb.astype(int) - flipped).mean() < 6  # only coding noise differs

    cropped = decode(build(sources, "crop60", tmp_path).path)
    assert cropped[0].rgb.shape[:2] == (144, 192)  # 60% of 240x320
    resized = decode(build(sources, "resize", tmp_path).path)
    assert resized[0].rgb.shape[:2] == (96, 128)  # 40% of 320x240
    assert decode(build(sources, "letterbox_9x16", tmp_path).path)[0].rgb.shape[:2] == (640, 360)


def test_stills_open_and_show_the_truth_frame(tmp_path, sources):
    for edit in ("still", "still_png_crop"):
        query = build(sources, edit, tmp_path, seed=11)
        assert query.kind == "image"
        with Image.open(query.path) as img:
            rgb = np.asarray(img.convert("RGB"))
        seg = query.truth[0]
        if edit == "still":  # the whole frame, perhaps with a caption strip under it
            assert rgb.shape[1] == 320 and rgb.shape[0] >= 240
            want = int(np.searchsorted(sources["main.mp4"].pts, seg.source_start + 1e-6, "right")) - 1
            assert read_index(rgb[:240]) == want
        else:
            assert rgb.shape[:2] == (192, 256)  # 80% crop


def test_negative_has_no_truth_and_names_differ(tmp_path, sources):
    first = build(sources, "crop60", tmp_path, negative=True)
    second = build(sources, "crop60", tmp_path, negative=True)
    assert first.truth == second.truth == ()
    assert first.edit == "negative:crop60" and first.path.name.startswith("negative-crop60-")
    assert first.path != second.path and first.path.exists() and second.path.exists()
    assert build(sources, "pip", tmp_path, negative=True).truth == ()


def test_window_is_clamped_and_others_are_required(tmp_path, sources):
    main = sources["main.mp4"]
    query = make_query("speed_2", main, 100.0, 3.0, tmp_path, rng=np.random.default_rng(0))
    seg = query.truth[0]
    assert seg.source_end <= main.duration_s + 1e-6 and seg.source_end - seg.source_start > 2.5
    with pytest.raises(ValueError, match="others"):
        make_query("pip", main, 0.0, 2.0, tmp_path, rng=np.random.default_rng(0))
    with pytest.raises(KeyError):
        make_query("sepia", main, 0.0, 2.0, tmp_path, rng=np.random.default_rng(0))


@pytest.mark.slow
def test_real_footage_smoke(tmp_path, footage):
    bikes = FrameSource(footage / "bikes.mp4", max_side=320)
    bunny = FrameSource(footage / "bigbuckbunny.mp4", max_side=320)
    assert bikes.duration_s == pytest.approx(10.0, abs=0.1)
    for edit in ("letterbox_9x16", "splice", "caption_ticker"):
        query = make_query(edit, bikes, 2.0, 4.0, tmp_path, rng=np.random.default_rng(1), others=[bunny])
        frames = decode(query.path, max_side=640)
        assert frames[-1].pts_s + 1 / FPS == pytest.approx(max(s.query_end for s in query.truth), abs=1 / FPS + 1e-3)
        assert {s.source for s in query.truth} <= {"bikes.mp4", "bigbuckbunny.mp4"}
