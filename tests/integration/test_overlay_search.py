"""Screenshots of one program over different footage: its chrome names no source; a copy of one is still found."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import unrelated  # noqa: E402
from cli_search import search_json
from edits import FrameSource, make_query
from PIL import Image, ImageDraw, ImageFilter

from firstseen.media.decode import sample_frames

pytestmark = pytest.mark.slow
DESIGN = 7  # one program for every screenshot here


def stills(video: Path, times: list[float], out: Path) -> list[Path]:
    """Real pictures: frames of a real video at these times, as PNG files."""
    out.mkdir(parents=True, exist_ok=True)
    frames = list(sample_frames(video, fps=2.0, max_side=640))
    paths = []
    for t in times:
        frame = min(frames, key=lambda f: abs(f.pts_s - t))
        path = out / f"{video.stem}-{t:.1f}.png"
        Image.fromarray(frame.rgb).save(path)
        paths.append(path)
    return paths


def wallpaper(seed: int, path: Path, w: int = 960, h: int = 540) -> Path:
    """A desktop wallpaper: a soft two-colour gradient with a few blurred shapes. Under a program's
    chrome, two such screenshots are mostly chrome to the descriptor and to SIFT alike: before
    static overlays were masked, 10 of 12 such searches (re-encodes, logos, stills, embeddings)
    named a false source."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    t = ((xx * np.cos(angle) + yy * np.sin(angle)) / (w + h) + 0.5) % 1.0
    img = Image.fromarray((a * (1 - t[..., None]) + b * t[..., None]).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 7))):
        x, y, r = rng.integers(0, w), rng.integers(0, h), rng.integers(40, 200)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    img.filter(ImageFilter.GaussianBlur(12)).save(path)
    return path


def wallpapers(first: int, count: int, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [wallpaper(seed, out / f"wallpaper-{seed}.png") for seed in range(first, first + count)]


@pytest.fixture(scope="module")
def chrome_archive(footage: Path, tmp_path_factory) -> dict:
    """A real video and screenshot recordings of one program: four over wallpapers, one over
    pictures of real footage."""
    from firstseen.ingest.progress import LogProgress
    from firstseen.ingest.run import run_ingest
    from firstseen.settings import get_settings

    work = tmp_path_factory.mktemp("chrome")
    settings = get_settings(data_dir=work / "data", catalog_url=f"sqlite:///{work / 'data' / 'catalog.sqlite'}")
    manifest = {
        json.loads(line)["path"]: json.loads(line) for line in (footage / "manifest.jsonl").read_text().splitlines()
    }
    lines = [dict(manifest["bikes.mp4"], path=str(footage / "bikes.mp4"))]
    sources = [wallpapers(3 * k, 3, work / "pictures") for k in range(4)]
    sources.append(stills(footage / "diver.mov", [1.0, 6.0, 11.0], work / "pictures"))
    recordings = []
    for k, pictures in enumerate(sources):
        path = unrelated.make_unrelated("chrome", pictures, 50 + k, work / f"screens-{k}.mp4", 16.0, design=DESIGN)
        recordings.append(path)
        lines.append({"path": str(path), "external_id": f"screens-{k}", "published_at": f"200{k}-01-01"})
    (work / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary = run_ingest(settings, [], [work / "manifest.jsonl"], progress=LogProgress())
    assert summary.failed == 0
    return {"work": work, "data_dir": work / "data", "recordings": recordings}


@pytest.mark.parametrize("edit", ["reencode", "logo", "still"])
def test_the_same_programs_chrome_over_other_pictures_names_no_source(chrome_archive, edit, capsys):
    """A still has no frames of its own to tell its chrome by: the archive video's tell it."""
    pictures = wallpapers(100, 3, chrome_archive["work"] / "pictures")
    recording = unrelated.make_unrelated(
        "chrome", pictures, 90, chrome_archive["work"] / "unseen.mp4", 16.0, design=DESIGN
    )
    query = make_query(
        edit,
        FrameSource(recording, max_side=480),
        2.0,
        8.0,
        chrome_archive["work"] / "queries",
        rng=np.random.default_rng(1),
        out_fps=12.5,
    )
    result = search_json(chrome_archive, query.path, capsys)
    assert result["verdict"] == "no_match" and result["earliest"] is None, result["matches"]


def test_a_copy_of_a_screenshot_recording_is_found_on_its_footage(chrome_archive, capsys):
    """Its pictures, not the chrome, prove it (a recording over a blurred wallpaper has nothing
    else to show, and is not found: the README says so)."""
    source = FrameSource(chrome_archive["recordings"][4], max_side=480)
    copy = make_query(
        "resize", source, 2.0, 8.0, chrome_archive["work"] / "copies", rng=np.random.default_rng(3), out_fps=12.5
    )
    result = search_json(chrome_archive, copy.path, capsys)
    assert result["verdict"] == "match"
    assert result["matches"][0]["external_id"] == "screens-4", result["matches"]
    assert result["earliest"]["external_id"] == "screens-4"
