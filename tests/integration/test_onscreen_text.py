"""On-screen text: read in each script we serve, kept as spans in the catalog, found by full-text search, taken down."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from edits import _write_video
from text_frames import TEXTS, available, character_accuracy, draw_text_frame

from firstseen.evidence.onscreen_text import TextLine, text_bands
from firstseen.evidence.text_pass import spans_from_reads
from firstseen.storage.catalog import SqlCatalog
from firstseen.storage.text_store import TextSpan, TextStore

HAVE_TESSERACT = shutil.which("tesseract") is not None and all(
    os.path.isfile(f"/usr/share/tesseract-ocr/5/tessdata/{lang}.traineddata") for lang in ("eng", "rus", "kor")
)
needs_ocr = pytest.mark.skipif(
    not HAVE_TESSERACT and not os.environ.get("CI"),
    reason="Tesseract with eng, rus and kor is not installed (`make ocr`)",
)


def _background(seed: int, size=(540, 960)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = size
    ramp = np.linspace(30, 170, w)[None, :, None] + np.linspace(0, 40, h)[:, None, None]
    return np.clip(ramp + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def reader():
    from firstseen.evidence.onscreen_text import TesseractReader

    with TesseractReader() as r:
        yield r


@needs_ocr
@pytest.mark.parametrize("script", ["latin", "cyrillic", "hangul", "dates"])
def test_each_script_is_read_from_a_chyron(reader, script):
    if not available(script):
        pytest.skip(f"no font for {script} to draw with (fonts-nanum for Hangul)")
    rng = np.random.default_rng(3)
    scores = []
    for k, text in enumerate(TEXTS[script][:4]):
        frame = draw_text_frame(_background(k), script, text, rng, style="chyron")
        lines = reader.read(frame.rgb)
        scores.append(max((character_accuracy(line.text, text) for line in lines), default=0.0))
        for line in lines:  # where it was read is where it was drawn
            assert line.y + line.h >= frame.box[1] - 0.05 or character_accuracy(line.text, text) < 0.5
    assert np.mean(scores) >= 0.8, (script, scores)


def test_a_frame_without_text_has_no_bands_to_read():
    assert text_bands(np.full((360, 640), 90, np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 255, (360, 640), dtype=np.uint8)
    assert len(text_bands(noise)) <= 1  # texture everywhere is not lines of text


def _line(text: str, confidence: float = 90.0) -> TextLine:
    return TextLine(text, confidence, 0.05, 0.8, 0.6, 0.06)


def test_reads_of_one_line_become_one_span_and_a_gap_ends_it():
    reads = [
        (0.0, [_line("Vladivostok, 25 April")]),
        (2.0, [_line("VLADIVOSTOK, 25 April", 95.0)]),
        (4.0, [_line("Vladivostok, 25 April"), _line("BREAKING")]),
        (6.0, []),
        (8.0, []),
        (10.0, [_line("Vladivostok, 25 April")]),
    ]
    spans = spans_from_reads("v1", reads, every_s=2.0)
    assert [(s.start_s, s.end_s, s.text) for s in spans] == [
        (0.0, 6.0, "VLADIVOSTOK, 25 April"),
        (4.0, 6.0, "BREAKING"),
        (10.0, 12.0, "Vladivostok, 25 April"),
    ]


def _video(catalog: SqlCatalog, name: str) -> str:
    import hashlib
    from pathlib import Path

    from firstseen.records import VideoMetadata

    record = catalog.add_pending_video(
        VideoMetadata(path=Path(f"/footage/{name}.mp4"), external_id=name, title=name),
        video_id=name,
        sha256=hashlib.sha256(name.encode()).hexdigest(),
        duration_s=10.0,
        width=640,
        height=360,
        codec="h264",
        descriptor="toy",
        frame_pts=np.arange(2, dtype=np.float64),
        run_id=None,
    )
    catalog.mark_committed([record.video_id], checkpoint=1)
    return record.video_id


def test_text_is_found_in_either_case_and_script_and_leaves_with_its_video(catalog_url):
    with SqlCatalog.open(catalog_url) as catalog:
        store = TextStore(catalog)
        summit, other = _video(catalog, "a"), _video(catalog, "b")
        store.replace_video_text(
            summit,
            [
                TextSpan(summit, 2.0, 6.0, "ВЛАДИВОСТОК, 25 апреля 2019", 91.0, {}),
                TextSpan(summit, 8.0, 10.0, "Vladivostok summit", 88.0, {}),
            ],
            reader="test",
            frames_read=5,
        )
        store.replace_video_text(
            other, [TextSpan(other, 0.0, 2.0, "Moscow, 30 September 2022", 90.0, {})], reader="test", frames_read=1
        )
        assert [(s.video_id, s.start_s) for s in store.search("Владивосток")] == [(summit, 2.0)]
        assert [(s.video_id, s.start_s) for s in store.search("vladivostok")] == [(summit, 8.0)]
        assert [s.video_id for s in store.search("30 september")] == [other]
        assert store.search('moscow" OR "vladivostok') == []  # FTS syntax in user text is taken literally
        assert store.text_between(summit, 5.0, 9.0)[0].start_s == 2.0 and len(store.text_between(summit, 5, 9)) == 2
        assert store.videos_read() == {summit, other}
        store.replace_video_text(other, [], reader="test", frames_read=1)  # read again: old lines go
        assert store.search("moscow") == []
        catalog.delete_video(summit)  # takedown takes the text with it, index included
        assert store.search("Владивосток") == [] and store.video_text(summit) == []
        assert store.videos_read() == {other}


@needs_ocr
@pytest.mark.slow
def test_text_burned_into_an_archived_clip_is_found_by_the_cli(tmp_path, capsys):
    """A clip with a Cyrillic chyron from 2 s to 6 s, ingested, read by the text pass, found
    by `firstseen text` in both scripts' spellings; backup and restore keep it; takedown removes it."""
    from cli.main import main

    rng = np.random.default_rng(1)
    still = [
        draw_text_frame(_background(7), "cyrillic", "ВЛАДИВОСТОК, 25 апреля 2019", rng, style="chyron").rgb,
        draw_text_frame(_background(7), "latin", "Vladivostok summit", rng, style="label").rgb,
    ]
    frames = [(still[0] if 2.0 <= k / 5 < 6.0 else still[1] if k / 5 >= 6.0 else _background(7)) for k in range(50)]
    clip = tmp_path / "summit.mp4"
    _write_video(clip, iter(frames), (960, 540), 5.0)
    data = tmp_path / "data"
    assert main(["ingest", str(clip), "--data-dir", str(data)]) == 0
    capsys.readouterr()
    assert main(["text-pass", "--data-dir", str(data), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["videos"] == 1 and summary["lines"] >= 2
    assert main(["text", "владивосток", "--data-dir", str(data), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and 1.5 <= rows[0]["start_s"] <= 2.5 and 5.5 <= rows[0]["end_s"] <= 8.5
    assert main(["backup", str(tmp_path / "bk"), "--data-dir", str(data)]) == 0
    assert main(["restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "restored")]) == 0
    capsys.readouterr()
    assert main(["text", "summit", "--data-dir", str(tmp_path / "restored"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert main(["remove", rows[0]["video_id"], "--data-dir", str(data)]) == 0
    capsys.readouterr()
    assert main(["text", "владивосток", "--data-dir", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
