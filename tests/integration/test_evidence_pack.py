"""The evidence pack: a reversed real clip's pack names source and date, its frames decode, its strip runs backwards."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
from PIL import Image

from cli.main import main

pytestmark = pytest.mark.slow


def _pack(small_archive, clip, dest, capsys) -> dict:
    assert (
        main(["search", str(clip), "--data-dir", str(small_archive["data_dir"]), "--json", "--evidence", str(dest)])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    with zipfile.ZipFile(dest) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    return {"result": result, "files": files}


def test_a_reversed_clip_gives_a_pack_a_fact_checker_can_publish(small_archive, tmp_path, capsys):
    pack = _pack(small_archive, small_archive["reversed"], tmp_path / "pack.zip", capsys)
    files, result = pack["files"], pack["result"]
    assert {"report.html", "report.pdf", "result.json", "manifest.json"} <= files.keys()
    assert json.loads(files["result.json"])["earliest"]["external_id"] == result["earliest"]["external_id"]
    page = files["report.html"].decode()
    title = small_archive["titles"]["vtest.avi"]
    assert title in page and "2011-02-17" in page and "REVERSED" in page
    assert "http://" not in page.replace('href="https://archive', "") and "<script" not in page  # self-contained
    manifest = json.loads(files["manifest.json"])
    import hashlib

    assert all(hashlib.sha256(files[name]).hexdigest() == digest for name, digest in manifest.items())
    frames = sorted(n for n in files if n.endswith(".jpg"))
    assert len(frames) >= 6
    for name in frames:
        assert Image.open(io.BytesIO(files[name])).size[0] >= 320  # at the files' own resolution, not thumbnails
    strip_query = sorted(n for n in frames if "/strip" in n and n.endswith("-query.jpg"))
    assert len(strip_query) == 6
    # the strip's archive timecodes run backwards while the clip's run forwards
    strip = page.split('<div class="strip">')[1].split("</div>\n")[0]
    clip_t, archive_t = _figure_times(strip, "clip"), _figure_times(strip, "archive")
    assert len(clip_t) == len(archive_t) == 6
    assert clip_t == sorted(clip_t) and archive_t == sorted(archive_t, reverse=True) and archive_t[0] > archive_t[-1]
    if shutil.which("pdftotext"):
        (tmp_path / "report.pdf").write_bytes(files["report.pdf"])
        text = subprocess.run(
            ["pdftotext", str(tmp_path / "report.pdf"), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "2011-02-17" in text and "Earliest known source" in text


def _figure_times(html: str, label: str) -> list[float]:
    """Timecodes (h:mm:ss.sss) of the figures captioned with this label, in page order."""
    import re

    stamps = re.findall(rf"<figcaption>{label} (\d+):(\d\d):(\d\d\.\d+)", html)
    return [int(h) * 3600 + int(m) * 60 + float(sec) for h, m, sec in stamps]


def test_a_pack_is_deterministic_and_names_a_missing_archived_file(small_archive, tmp_path, capsys):
    from conftest import copy_archive

    data = copy_archive(small_archive, tmp_path / "data")
    archive = dict(small_archive, data_dir=data)
    first = _pack(archive, small_archive["reversed"], tmp_path / "a.zip", capsys)["files"]
    second = _pack(archive, small_archive["reversed"], tmp_path / "b.zip", capsys)["files"]
    stable = [n for n in first if n.endswith(".jpg") or n == "result.json"]
    assert stable and all(first[n] == second[n] for n in stable)
    # the archived file goes missing after the search found it: the pack still comes, naming it
    from firstseen.evidence.pack import build_pack, pack_files
    from firstseen.evidence.pack_frames import FrameReader, QueryFile
    from firstseen.search.searcher import Searcher
    from firstseen.settings import get_settings

    with Searcher(get_settings(data_dir=data)) as searcher:
        result = searcher.search(small_archive["reversed"])
    reader = FrameReader(QueryFile(small_archive["reversed"]), lambda vid: str(tmp_path / "gone.avi"))
    pack = build_pack(result, result.to_dict(), reader, query_facts={}, produced_by={})
    files = pack_files(pack)
    assert pack.missing and "missing" in pack.missing[0]
    assert "not available" in files["report.html"].decode() and any(n.endswith("-query.jpg") for n in files)
    assert not any(n.endswith("-source.jpg") for n in files)
    assert np.all(np.array([len(files[n]) for n in files]) > 0)
