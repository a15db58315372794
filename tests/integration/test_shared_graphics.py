"""Screenshots carrying one program's own panel in each picture: another names no source, a copy is found.

The static-overlay masks (test_overlay_search.py) see chrome laid over moving footage. Here the
program's sidebar and overview map are part of every picture, so they pan and zoom with it, as
the map program's screenshots of the evaluation do: keypoints verify two different screenshots
on the shared panel alone, and only the pictures' cell agreement (cell_agreement.py) tells them
apart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import unrelated  # noqa: E402
from cli_search import search_json
from edits import FrameSource, make_query
from PIL import Image, ImageDraw

from tests.unit.test_verification import scene

pytestmark = pytest.mark.slow
DESIGN = 7  # recorded in one program's window too, whose chrome the masks do see


def street_map(seed: int) -> Image.Image:
    """A street map of a made-up town: blocks, parks, a river, outlined roads and labels on a
    pale ground. Maps of two towns in one style look alike to the descriptor, as two regions of
    one map program do."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (960, 540), (242, 238, 228))
    draw = ImageDraw.Draw(img)
    for _ in range(60):
        x, y = int(rng.integers(0, 940)), int(rng.integers(0, 520))
        w, h = (int(v) for v in rng.integers(12, 60, 2))
        draw.rectangle([x, y, x + w, y + h], fill=(217, 208, 201), outline=(190, 180, 172))
    for _ in range(5):
        x, y = int(rng.integers(0, 880)), int(rng.integers(0, 480))
        draw.rectangle([x, y, x + int(rng.integers(40, 120)), y + int(rng.integers(30, 80))], fill=(190, 220, 170))
    river = [(x, int(270 + 120 * np.sin(x / 150 + seed))) for x in range(0, 961, 40)]
    draw.line(river, fill=(150, 190, 230), width=18)
    for _ in range(30):
        points = [(int(rng.integers(0, 960)), int(rng.integers(0, 540))) for _ in range(3)]
        width = int(rng.integers(5, 11))
        draw.line(points, fill=(120, 120, 120), width=width + 3)
        draw.line(points, fill=(255, 250, 235) if rng.random() < 0.7 else (250, 210, 120), width=width)
    for _ in range(45):
        x, y = int(rng.integers(0, 900)), int(rng.integers(0, 530))
        draw.text((x, y), "".join(rng.choice(list("abcdefghiklmnoprstuvw"), 7)).title(), fill=(60, 60, 60))
    return img


def screenshots(seeds: list[int], out: Path) -> list[Path]:
    """Screenshots of one map program showing other towns: its sidebar (a third of the width)
    and its overview inset are part of each picture, the same every time."""
    out.mkdir(parents=True, exist_ok=True)
    sidebar, overview = scene(77, 320, 540), scene(78, 220, 130)
    paths = []
    for seed in seeds:
        shot = np.asarray(street_map(seed)).copy()
        shot[:, :320] = sidebar
        shot[20:150, 720:940] = overview
        path = out / f"map-{seed}.png"
        Image.fromarray(shot).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def screenshot_archive(footage: Path, tmp_path_factory) -> dict:
    from firstseen.ingest.progress import LogProgress
    from firstseen.ingest.run import run_ingest
    from firstseen.settings import get_settings

    work = tmp_path_factory.mktemp("graphics")
    settings = get_settings(data_dir=work / "data", catalog_url=f"sqlite:///{work / 'data' / 'catalog.sqlite'}")
    pictures = screenshots([1, 2, 3], work / "archived")
    archived = unrelated.make_unrelated("chrome", pictures, 11, work / "screens.mp4", 12.0, design=DESIGN)
    line = {"path": str(archived), "external_id": "screens-archived", "published_at": "2011-01-01"}
    (work / "manifest.jsonl").write_text(json.dumps(line) + "\n")
    summary = run_ingest(settings, [], [work / "manifest.jsonl"], progress=LogProgress())
    assert summary.failed == 0
    return {"work": work, "data_dir": work / "data", "archived": archived}


@pytest.mark.parametrize("edit", ["reencode", "still"])
def test_another_screenshot_of_the_same_program_names_no_source(screenshot_archive, footage, edit, capsys):
    pictures = screenshots([11, 12, 13], screenshot_archive["work"] / "unseen")
    recording = unrelated.make_unrelated(
        "chrome", pictures, 12, screenshot_archive["work"] / "unseen.mp4", 12.0, design=DESIGN
    )
    query = make_query(
        edit,
        FrameSource(recording, max_side=480),
        1.0,
        6.0,
        screenshot_archive["work"] / "queries",
        rng=np.random.default_rng(2),
        out_fps=12.5,
    )
    result = search_json(screenshot_archive, query.path, capsys)
    assert result["verdict"] == "no_match" and result["earliest"] is None, result["matches"]


def test_a_copy_of_a_screenshot_is_found_and_says_how_much_of_its_picture_agrees(screenshot_archive, capsys):
    copy = make_query(
        "resize",
        FrameSource(screenshot_archive["archived"], max_side=480),
        1.0,
        6.0,
        screenshot_archive["work"] / "copies",
        rng=np.random.default_rng(3),
        out_fps=12.5,
    )
    result = search_json(screenshot_archive, copy.path, capsys)
    assert result["verdict"] == "match" and result["matches"][0]["external_id"] == "screens-archived"
    evidence = result["matches"][0]["segments"][0]["evidence"]
    assert evidence["picture_agreement"] >= 0.5 and evidence["cells_compared"] >= 12
