"""Tests for firstseen.media.decode: real timestamps, sampling, downscaling, rotation, errors, stills."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from clips import draw_frame, make_audio_only, make_clip, make_truncated, read_index
from paths import REPO
from PIL import Image

from firstseen.errors import BadInputError, MediaError
from firstseen.media.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, probe, sample_frames
from firstseen.media.frames import frame_at
from firstseen.media.stills import load_image


def expected_picks(times: list[float], fps: float) -> list[int]:
    """Brute force: for every target k/fps, the first frame at or after it; each frame once."""
    picked: list[int] = []
    k = 0
    while k / fps <= times[-1] + 1e-9:
        i = next((i for i, t in enumerate(times) if t >= k / fps - 1e-3), None)
        if i is not None and i not in picked:
            picked.append(i)
        k += 1
    return picked


def pts_and_indices(path, **kw) -> tuple[list[float], list[int]]:
    frames = list(sample_frames(path, **kw))
    return [f.pts_s for f in frames], [read_index(f.rgb) for f in frames]


def test_extension_sets():
    assert {".mp4", ".mov", ".mkv", ".webm", ".mxf", ".ts"} <= VIDEO_EXTENSIONS
    assert IMAGE_EXTENSIONS == {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
    assert all(e == e.lower() and e.startswith(".") for e in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS)


@pytest.mark.parametrize(
    "rate", [Fraction(10), Fraction(24000, 1001), Fraction(25), Fraction(30000, 1001), Fraction(60)], ids=str
)
def test_timestamps_are_real_pts_at_each_frame_rate(tmp_path, rate):
    clip = make_clip(tmp_path / "c.mp4", fps=rate, seconds=2.0)
    n = round(2 * rate)
    times = [float(i / rate) for i in range(n)]

    pts, idx = pts_and_indices(clip, fps=None, max_side=64)
    assert idx == list(range(n))  # every frame, in order
    np.testing.assert_allclose(pts, times, atol=1e-4)

    for fps in (1.0, 3.0, 7.0):
        pts, idx = pts_and_indices(clip, fps=fps, max_side=64, skip_nonref=False)
        want = expected_picks(times, fps)
        assert idx == want, f"fps={fps}"
        np.testing.assert_allclose(pts, [times[i] for i in want], atol=1e-4)
        # By default non-reference frames are not decoded: a pick may come a frame or two
        # late, but it is still the frame its timestamp names, and one per target.
        pts, idx = pts_and_indices(clip, fps=fps, max_side=64)
        assert len(idx) >= 0.75 * len(want) and idx[0] == 0 and idx == sorted(set(idx))
        np.testing.assert_allclose(pts, [times[i] for i in idx], atol=1e-4)
        assert all(0 <= times[i] - times[w] <= 3 / float(rate) + 1e-6 for i, w in zip(idx, want))

    info = probe(clip)
    assert info.avg_fps == pytest.approx(float(rate), rel=1e-3)
    assert info.duration_s == pytest.approx(2.0, abs=0.05)
    assert (info.width, info.height, info.codec, info.rotation) == (160, 120, "h264", 0)


@pytest.mark.parametrize("name,start_s", [("s.mkv", 2.0), ("s.mp4", 1.5), ("s.ts", 0.0)])
def test_timestamps_are_relative_to_a_nonzero_stream_start(tmp_path, name, start_s):
    import av  # only to check the clip really starts late

    clip = make_clip(tmp_path / name, fps=25, seconds=1.2, start_s=start_s)
    with av.open(str(clip)) as c:
        stream = c.streams.video[0]
        assert stream.start_time * stream.time_base > 0.05  # mpegts adds its own offset
    pts, idx = pts_and_indices(clip, fps=None, max_side=64)
    assert idx == list(range(30))
    np.testing.assert_allclose(pts, [i / 25 for i in range(30)], atol=1e-4)
    pts, idx = pts_and_indices(clip, fps=2, max_side=64)
    assert idx == [0, 13, 25]  # targets 0, 0.5, 1.0 -> frames at 0, 0.52, 1.0
    np.testing.assert_allclose(pts, [0.0, 0.52, 1.0], atol=1e-4)
    assert not probe(clip).duration_s < 1.1


VFR_TIMES = [0.0, 0.04, 0.1, 0.5, 0.52, 1.7, 1.75, 2.0, 2.9]  # 0.52 -> 1.7 outlasts any interval


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("vfr") / "vfr.mkv", vfr_times=VFR_TIMES)


@pytest.mark.parametrize(
    "fps,want",
    [
        (None, list(range(9))),
        (2.0, [0, 3, 5, 7, 8]),  # 1.7 covers targets 1.0 and 1.5 and is yielded once
        (10.0, [0, 2, 3, 5, 7, 8]),
        (0.5, [0, 7]),
    ],
)
def test_variable_frame_rate_gives_exact_frames(vfr_clip, fps, want):
    pts, idx = pts_and_indices(vfr_clip, fps=fps, max_side=64)
    assert idx == want
    assert pts == pytest.approx([VFR_TIMES[i] for i in want], abs=1e-6)
    if fps is not None:
        assert want == expected_picks(VFR_TIMES, fps)  # the hand-written list agrees with the rule


def test_downscale_keeps_aspect_and_never_upscales(tmp_path):
    clip = make_clip(tmp_path / "wide.mp4", fps=10, seconds=0.5, size=(320, 180))
    frames = list(sample_frames(clip, fps=None, max_side=64))
    assert [f.rgb.shape for f in frames] == [(36, 64, 3)] * 5
    assert all(f.rgb.dtype == np.uint8 for f in frames)
    big = list(sample_frames(clip, fps=None, max_side=1000))
    assert big[0].rgb.shape == (180, 320, 3)
    assert [read_index(f.rgb) for f in big] == [0, 1, 2, 3, 4]


def test_skip_nonref_decodes_fewer_frames_with_real_timestamps(tmp_path):
    clip = make_clip(tmp_path / "b.mp4", fps=25, seconds=2.0, options={"bframes": "3", "b-pyramid": "none"})
    every = list(sample_frames(clip, fps=None, max_side=64, skip_nonref=False))
    refs = list(sample_frames(clip, fps=None, max_side=64, skip_nonref=True))
    assert len(every) == 50 and 0 < len(refs) < 50  # non-reference B-frames were skipped
    assert all(round(f.pts_s * 25) == read_index(f.rgb) for f in refs)
    sampled = [f.pts_s for f in sample_frames(clip, fps=1, max_side=64, skip_nonref=True)]
    assert len(sampled) == 2 and sampled[0] == 0.0 and 1.0 <= sampled[1] < 1.2


@pytest.mark.parametrize("thread_type,threads", [("SLICE", 1), ("FRAME", 3), ("AUTO", 2)])
def test_thread_settings_do_not_change_what_comes_out(tmp_path, monkeypatch, thread_type, threads):
    import firstseen.media.decode as media

    clip = make_clip(tmp_path / "t.mkv", fps=25, seconds=1.0)
    monkeypatch.setattr(media, "THREAD_TYPE", thread_type)
    pts, idx = pts_and_indices(clip, fps=None, max_side=64, threads=threads)
    assert idx == list(range(25)) and pts == pytest.approx([i / 25 for i in range(25)], abs=1e-6)


_RSS_PROBE = """
import json, resource, sys
from firstseen.media.decode import sample_frames
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
shapes = [f.rgb.shape for f in sample_frames(sys.argv[1], fps=None, max_side=360, threads=1)]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"shapes": shapes, "grew_mb": (after - before) / 1024}))
"""


def test_4k_is_decoded_to_small_frames_with_flat_memory(tmp_path):
    clip = make_clip(tmp_path / "uhd.mp4", fps=10, seconds=1.0, size=(3840, 2160), options={"preset": "ultrafast"})
    info = probe(clip)
    assert (info.width, info.height) == (3840, 2160)
    # a fresh process, so that ru_maxrss (a high-water mark) reflects this decode alone
    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(clip)], cwd=REPO, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    assert [tuple(s) for s in result["shapes"]] == [(202, 360, 3)] * 10
    # ten full-size RGB frames would be 250 MB; the decoder's own 4K buffers are ~50 MB
    assert result["grew_mb"] < 100, result


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_is_honoured(tmp_path, rotation):
    clip = make_clip(tmp_path / "rot.mp4", fps=10, seconds=0.5, size=(160, 120), rotation=rotation)
    info = probe(clip)
    assert info.rotation == rotation
    stored = (120, 160) if rotation in (90, 270) else (160, 120)
    assert (info.width, info.height) == stored
    frames = list(sample_frames(clip, fps=None, max_side=80))
    assert all(f.rgb.shape == (60, 80, 3) for f in frames)  # upright: landscape again
    assert [read_index(f.rgb) for f in frames] == [0, 1, 2, 3, 4]  # and not mirrored/upside down


def test_read_index_detects_wrong_orientation():
    img = draw_frame(37, 160, 120)
    assert read_index(img) == 37
    for k in (1, 2, 3):
        with pytest.raises(ValueError):
            read_index(np.rot90(img, k))


def expect_media_error(path, reason: str, *, sample: bool = True) -> None:
    with pytest.raises(MediaError, match=reason):
        probe(path)
    if sample:
        with pytest.raises(MediaError, match=reason):
            list(sample_frames(path, fps=1, max_side=64))


def test_empty_file(tmp_path):
    (tmp_path / "e.mp4").write_bytes(b"")
    expect_media_error(tmp_path / "e.mp4", r"^empty file \(0 bytes\)$")


def test_text_file_named_mp4(tmp_path):
    (tmp_path / "t.mp4").write_text("this is a newsroom note, not a video\n" * 20)
    expect_media_error(tmp_path / "t.mp4", r"^not a video file: ")


def test_garbage_bytes(tmp_path):
    (tmp_path / "g.mov").write_bytes(random.Random(7).randbytes(20_000))
    expect_media_error(tmp_path / "g.mov", r"^not a video file: ")


def test_audio_only(tmp_path):
    expect_media_error(make_audio_only(tmp_path / "a.mp4"), r"^audio-only file: no video stream$")


def test_missing_file(tmp_path):
    expect_media_error(tmp_path / "nope.mp4", r"^cannot read file")


def test_still_image_is_not_a_video(tmp_path):
    Image.fromarray(draw_frame(1, 64, 48)).save(tmp_path / "s.png")
    expect_media_error(tmp_path / "s.png", r"^still image, not a video")


def test_mp4_without_its_index_is_a_corrupt_container(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", fps=25, seconds=1.0)  # moov is written at the end
    expect_media_error(make_truncated(clip, tmp_path / "cut.mp4", 0.6), r"^corrupt or unreadable video container")


@pytest.mark.parametrize("name,opts", [("t.mkv", None), ("t.mp4", {"movflags": "faststart"})])
def test_truncated_yields_what_decoded_then_raises(tmp_path, name, opts):
    clip = make_clip(tmp_path / name, fps=25, seconds=6.0, container_options=opts)
    cut = make_truncated(clip, tmp_path / ("cut" + name), 0.4)
    assert probe(cut).duration_s == pytest.approx(6.0, abs=0.05)  # the header still says 6 s
    got = []
    with pytest.raises(MediaError, match=r"^truncated: decoded \d+\.\d s of 6\.0 s declared$"):
        for frame in sample_frames(cut, fps=1, max_side=64):
            got.append((frame.pts_s, read_index(frame.rgb)))
    assert got and got[0] == (0.0, 0)
    assert all(round(pts * 25) == i for pts, i in got) and got[-1][0] < 3.5
    # a cut within the allowance is accepted: the last 10% of 6 s is 0.6 s
    full = list(sample_frames(make_truncated(clip, tmp_path / ("end" + name), 0.97), fps=1, max_side=64))
    assert [f.pts_s for f in full] == [0, 1, 2, 3, 4, 5]
    with pytest.raises(MediaError, match="^truncated"):
        list(sample_frames(tmp_path / ("end" + name), fps=1, max_side=64, max_truncation_s=0.0))


def test_garbage_in_the_middle_is_reported_corrupt(tmp_path):
    clip = make_clip(tmp_path / "m.avi", fps=10, seconds=3.0, size=(320, 240), codec="mpeg4", threads=1)
    data = bytearray(clip.read_bytes())
    rng = random.Random(1)
    start = len(data) // 3
    data[start : start + len(data) // 4] = rng.randbytes(len(data) // 4)
    bad = tmp_path / "bad.avi"
    bad.write_bytes(bytes(data))
    # FFmpeg conceals the damage and the demuxer drops 9 of 30 packets: what is left is
    # a clip that stops short of its declared duration.
    with pytest.raises(
        MediaError, match=r"^(corrupt video: .* at ~\d+\.\ds|truncated: decoded 2\.\d s of 3\.0 s declared)$"
    ):
        list(sample_frames(bad, fps=None, max_side=64))


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".bmp"])
def test_load_image_formats(tmp_path, suffix):
    path = tmp_path / ("still" + suffix)
    Image.fromarray(draw_frame(611, 400, 300)).save(path)
    frame = load_image(path, max_side=100)
    assert frame.pts_s == 0.0
    assert frame.rgb.shape == (75, 100, 3) and frame.rgb.dtype == np.uint8
    assert read_index(frame.rgb) == 611
    assert load_image(path, max_side=1000).rgb.shape == (300, 400, 3)


@pytest.mark.parametrize("orientation,turns", [(3, 2), (6, 1), (8, 3)])
def test_load_image_honours_exif_orientation(tmp_path, orientation, turns):
    # stored turned counter-clockwise by turns*90; the EXIF tag tells viewers how to undo it
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(draw_frame(300, 400, 300), turns)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif)
    frame = load_image(path, max_side=200)
    assert frame.rgb.shape == (150, 200, 3)
    assert read_index(frame.rgb) == 300


def _png_with_header_size(path: Path, width: int, height: int) -> Path:
    Image.new("RGB", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # signature, then IHDR's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("side", [8000, 40000])  # 64 Mpx (under Pillow's own limit) and 1.6 Gpx
def test_load_image_rejects_bomb_from_its_header(tmp_path, side):
    with pytest.raises(MediaError, match="^image too large"):
        load_image(_png_with_header_size(tmp_path / "bomb.png", side, side), max_side=100)


def test_load_image_max_pixels_is_configurable(tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "ok.png")
    assert load_image(tmp_path / "ok.png", max_side=50).rgb.shape == (50, 50, 3)
    with pytest.raises(MediaError, match="^image too large: 100x100"):
        load_image(tmp_path / "ok.png", max_side=50, max_pixels=9_999)


def test_load_image_rejects_non_images(tmp_path):
    (tmp_path / "x.jpg").write_text("not an image")
    with pytest.raises(MediaError, match="^not an image file"):
        load_image(tmp_path / "x.jpg", max_side=64)
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(MediaError, match=r"^empty file \(0 bytes\)$"):
        load_image(tmp_path / "e.png", max_side=64)


# --- evidence frames (frame_at) --------------------------------------------------------------


@pytest.mark.parametrize("gop", [1, 12, 250])
def test_frame_at_returns_the_frame_on_screen(tmp_path, gop):
    path = make_clip(tmp_path / f"g{gop}.mp4", seconds=3.0, fps=Fraction(20), options={"g": str(gop)})
    for t, want in ((0.0, 0), (0.045, 0), (0.05, 1), (1.234, 24), (2.95, 59), (10.0, 59)):
        shown = frame_at(path, t, max_side=160)
        assert read_index(shown.rgb) == want, (t, want)
        assert shown.pts_s == pytest.approx(want / 20, abs=1e-3)
        assert max(shown.rgb.shape[:2]) <= 160


@pytest.mark.parametrize("gop", [1, 250])
def test_frames_between_returns_every_frame_in_the_span(tmp_path, gop):
    from firstseen.media.frames import frames_between

    path = make_clip(tmp_path / f"b{gop}.mp4", seconds=3.0, fps=Fraction(20), options={"g": str(gop)})
    frames = frames_between(path, 1.0, 1.5, max_side=160)
    assert [read_index(f.rgb) for f in frames] == list(range(20, 31))
    assert [f.pts_s for f in frames] == pytest.approx([i / 20 for i in range(20, 31)], abs=1e-3)
    assert len(frames_between(path, 0.0, 5.0, max_side=160, limit=7)) == 7
    with pytest.raises(BadInputError):
        frames_between(path, 2.0, 1.0, max_side=160)


def test_frames_between_starts_over_where_a_keyframe_cannot_be_decoded_from(tmp_path):
    """Intra refresh flags frames as keyframes that the decoder cannot show a whole picture
    from (FFmpeg withholds the frames until the refresh completes); real footage with lying
    sync samples decodes green garbage after such a seek. Either way the span is decoded again
    from the start: a still's exact moment must be the real picture."""
    from firstseen.media.frames import frames_between

    path = make_clip(
        tmp_path / "refresh.mp4", seconds=3.0, fps=Fraction(20), options={"x264-params": "intra-refresh=1:keyint=10"}
    )
    frames = frames_between(path, 1.0, 1.5, max_side=160)
    assert [read_index(f.rgb) for f in frames] == list(range(20, 31))
    assert read_index(frame_at(path, 1.2, max_side=160).rgb) == 24


def test_frame_at_agrees_with_sampling_at_a_nonzero_stream_start(tmp_path):
    path = make_clip(tmp_path / "late.mp4", seconds=3.0, fps=Fraction(10), start_s=1.5)
    for frame in sample_frames(path, fps=None, max_side=160):
        assert read_index(frame_at(path, frame.pts_s, max_side=160).rgb) == read_index(frame.rgb)


def test_frame_at_rejects_bad_times_and_files(tmp_path):
    path = make_clip(tmp_path / "c.mp4", seconds=0.5)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(BadInputError, match="time"):
            frame_at(path, bad, max_side=100)
    junk = tmp_path / "junk.mp4"
    junk.write_text("no video here")
    with pytest.raises(MediaError) as error:
        frame_at(junk, 0.0, max_side=100)
    assert error.value.code == "not_media"


def test_error_codes_name_the_failure(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError) as error:
        probe(empty)
    assert error.value.code == "empty_file"
    bomb = tmp_path / "bomb.png"
    Image.new("1", (8_000, 8_000)).save(bomb)  # 64 Mpx: over our limit, under Pillow's own warning
    with pytest.raises(MediaError) as error:
        load_image(bomb, max_side=100)
    assert error.value.code == "image_too_large"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["Megamind.avi", "cockatoo.mp4", "diver.mov", "vtest.avi"])
def test_seeking_reads_what_decoding_from_the_start_reads_on_real_footage(footage, name):
    """Packed B-frames in AVI (Megamind) permute the packets' times, cockatoo's sync samples
    lie: a seek must still give the very frames, at the very times, that ingest sampled."""
    from firstseen.media.frames import frames_between

    path = footage / name
    every = {round(f.pts_s, 3): f.rgb for f in sample_frames(path, fps=None, max_side=160)}
    times = np.array(sorted(every))
    for t0 in (times[-1] * 0.3, times[-1] * 0.6):
        span = frames_between(path, float(t0), float(t0) + 0.4, max_side=160)
        assert span and all(np.array_equal(every[round(f.pts_s, 3)], f.rgb) for f in span), name
        shown = frame_at(path, float(t0) + 0.2, max_side=160)
        want = times[times <= t0 + 0.2 + 1e-3][-1]
        assert shown.pts_s == pytest.approx(want, abs=1e-3) and np.array_equal(every[round(want, 3)], shown.rgb)
