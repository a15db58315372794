"""The fact-checker page in a real headless Chromium (Debian's), against a real server on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
playwright = pytest.importorskip("playwright.sync_api")

from search_api.app import create_app  # noqa: E402
from search_api.settings import get_api_settings  # noqa: E402

CHROMIUM = os.environ.get("FIRSTSEEN_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")


@pytest.fixture(scope="module")
def server(small_archive, tmp_path_factory):
    import uvicorn

    if not os.path.exists(CHROMIUM):
        message = f"no Chromium at {CHROMIUM}: `make setup` installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    uploads = tmp_path_factory.mktemp("uploads")
    settings = get_api_settings(data_dir=small_archive["data_dir"], api_upload_dir=uploads)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instance = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield {"url": f"http://127.0.0.1:{port}/", "uploads": uploads}
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(server):
    with playwright.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield instance
        instance.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server["url"])
    page.wait_for_selector("#archive-info:has-text('3 videos')")
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def test_upload_a_reversed_clip_and_see_its_earliest_source(page, small_archive, server):
    page.set_input_files("#file-input", str(small_archive["reversed"]))
    page.wait_for_selector("#earliest .title", state="visible", timeout=60_000)
    assert page.text_content("#earliest .title") == small_archive["titles"]["vtest.avi"]
    assert "2011-02-17" in page.text_content("#earliest .date")
    assert page.text_content("#earliest .outlet") == "Northwind Wire"
    assert page.is_hidden("#not-found")
    segment = page.locator(".match.is-earliest .segment").first
    assert segment.locator(".badge.reversed").count() == 1
    # Both evidence frames arrive as real pictures: the query's from the server's preview
    # (this Chromium has no H.264), the archive's from /v1/videos/{id}/frame.
    for frame in ("img.query-frame", "img.archive-frame"):
        page.wait_for_function(
            f"() => {{ const i = document.querySelector('.match.is-earliest .segment {frame}');"
            " return i && i.complete && i.naturalWidth > 0; }",
            timeout=30_000,
        )
    assert page.locator("#timeline .copy.earliest").count() == 1
    assert "Done" in page.text_content("#status")
    assert list(server["uploads"].iterdir()) == []


def test_a_reversal_shows_its_strip_and_the_evidence_pack_downloads(page, small_archive, footage, tmp_path):
    """A reversed, cropped, re-captioned copy of real footage: the strip runs the archive's time
    backwards under the clip's own order, the crop is boxed on the archive frame, the clip's new
    caption is quoted; the evidence pack downloads without a new upload and holds what a
    fact-check publishes."""
    import io
    import re
    import shutil
    import subprocess
    import zipfile

    from edits import FrameSource
    from PIL import Image
    from text_frames import reversed_captioned_crop

    clip = reversed_captioned_crop(FrameSource(footage / "vtest.avi", 768), tmp_path / "toast.mp4", start_s=60.0)
    page.set_input_files("#file-input", str(clip["path"]))
    page.wait_for_selector(".match.is-earliest .strip", state="visible", timeout=60_000)
    segment = page.locator(".match.is-earliest .segment").first
    assert segment.locator(".badge.reversed").count() == 1
    box = segment.locator(".frame-pic .box.crop-box").first
    box.wait_for(state="attached", timeout=10_000)
    assert 65 <= page.evaluate("(b) => parseFloat(b.style.width)", box.element_handle()) <= 75  # 70% kept
    if shutil.which("tesseract"):
        segment.locator(".clip-text").wait_for(state="visible", timeout=30_000)
        assert "MOSCOW, 30 September 2022" in segment.locator(".clip-text").text_content()
    strip = page.locator(".match.is-earliest .strip").first
    page.wait_for_function(
        "() => [...document.querySelectorAll('.match.is-earliest .strip img')].filter("
        "(i) => i.complete && i.naturalWidth > 0).length === 12",
        timeout=30_000,
    )
    captions = strip.locator("figcaption").all_text_contents()
    clip = [c for c in captions if c.startswith("clip ")]
    archive = [c for c in captions if c.startswith("archive ")]
    seconds = lambda c: sum(float(p) * 60**k for k, p in enumerate(reversed(c.split()[1].split(":"))))  # noqa: E731
    assert len(clip) == len(archive) == 6
    assert [seconds(c) for c in clip] == sorted(seconds(c) for c in clip)
    assert [seconds(c) for c in archive] == sorted((seconds(c) for c in archive), reverse=True)
    with page.expect_download(timeout=60_000) as waiting:
        page.click(".evidence-download")
    saved = tmp_path / "pack.zip"
    waiting.value.save_as(saved)
    with zipfile.ZipFile(saved) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    html = files["report.html"].decode()
    assert small_archive["titles"]["vtest.avi"] in html and "2011-02-17" in html and "REVERSED" in html
    if shutil.which("tesseract"):
        assert "MOSCOW, 30 September 2022" in html  # the clip's caption, quoted as read
    for name in (n for n in files if n.endswith(".jpg")):
        Image.open(io.BytesIO(files[name])).verify()
    strip_html = html.split('<div class="strip">')[1]
    times = [
        int(h) * 3600 + int(m) * 60 + float(s)
        for h, m, s in re.findall(r"<figcaption>archive (\d+):(\d\d):(\d\d\.\d+)", strip_html)
    ][:6]
    assert len(times) == 6 and times == sorted(times, reverse=True)
    if shutil.which("pdftotext"):
        (tmp_path / "report.pdf").write_bytes(files["report.pdf"])
        text = subprocess.run(
            ["pdftotext", str(tmp_path / "report.pdf"), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "2011-02-17" in text and "Northwind Wire" in text


def test_mirrored_clip_shows_the_mirrored_badge(page, small_archive):
    page.set_input_files("#file-input", str(small_archive["mirrored"]))
    page.wait_for_selector("#earliest .title", state="visible", timeout=60_000)
    assert page.text_content("#earliest .title") == small_archive["titles"]["cockatoo.mp4"]
    assert page.locator(".match.is-earliest .badge.mirrored").count() >= 1


def test_unseen_footage_shows_not_found_then_a_new_search_clears_it(page, small_archive):
    page.set_input_files("#file-input", str(small_archive["unseen"]))
    page.wait_for_selector("#not-found", state="visible", timeout=60_000)
    assert "Not found in the archive" in page.text_content("#not-found")
    assert page.is_hidden("#earliest")
    page.set_input_files("#file-input", str(small_archive["reversed"]))
    page.wait_for_selector("#earliest .title", state="visible", timeout=60_000)
    assert page.is_hidden("#not-found")


def test_a_non_video_upload_shows_the_servers_error(page, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("this is not a clip\n" * 20)
    page.set_input_files("#file-input", str(junk))
    page.wait_for_selector("#error", state="visible", timeout=30_000)
    assert "not_media" in page.text_content("#error")
    assert page.is_hidden("#earliest")


def test_a_crop_shows_its_region_box_and_a_black_clip_says_too_little_picture(page, small_archive, footage, tmp_path):
    import numpy as np
    from edits import FrameSource, _write_video, make_query

    crop = make_query(
        "crop60",
        FrameSource(footage / "vtest.avi", 480),
        20.0,
        6.0,
        tmp_path,
        rng=np.random.default_rng(5),
        out_fps=12.5,
    )
    page.set_input_files("#file-input", str(crop.path))
    page.wait_for_selector("#earliest .title", state="visible", timeout=60_000)
    segment = page.locator(".match.is-earliest .segment").first
    assert "shows 36% of the source frame" in segment.locator(".region").text_content()
    assert "Verified on" in segment.locator(".evidence").text_content()
    box = segment.locator(".archive-frame ~ .box.crop-box, .frame-pic .box.crop-box").first
    box.wait_for(state="attached", timeout=10_000)
    width = page.evaluate("(b) => parseFloat(b.style.width)", box.element_handle())
    assert 55 <= width <= 65  # the crop is 60% of the source frame's width

    black = tmp_path / "black.mp4"
    _write_video(black, (np.zeros((180, 320, 3), np.uint8) for _ in range(40)), (320, 180), 10.0)
    page.set_input_files("#file-input", str(black))
    page.wait_for_selector("#not-found", state="visible", timeout=60_000)
    assert "Too little in the picture to search" in page.text_content("#not-found")


def test_the_answer_reads_on_a_phone_width_screen(browser, server, small_archive):
    """390 CSS pixels wide: no sideways scrolling, the strip wraps to three columns."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    page = context.new_page()
    try:
        page.goto(server["url"])
        page.wait_for_selector("#archive-info:has-text('3 videos')")
        page.set_input_files("#file-input", str(small_archive["reversed"]))
        page.wait_for_selector(".match.is-earliest .strip", state="visible", timeout=60_000)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 391
        columns = page.evaluate("() => getComputedStyle(document.querySelector('.strip')).gridTemplateColumns")
        assert len(columns.split()) == 3, columns
        assert page.is_visible(".evidence-download")
    finally:
        context.close()
