"""Stored searches and their evidence packs over HTTP, and on-screen text search: scopes, retention, takedown."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile

import pytest
from conftest import copy_archive

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from test_api import ADMIN_KEY, READ_KEY, _error, _post, _settings  # noqa: E402

from search_api.app import create_app  # noqa: E402

OTHER_READ_KEY = "o" * 20 + "-read"
pytestmark = pytest.mark.slow


def _client(small_archive, tmp_path, **overrides):
    data = copy_archive(small_archive, tmp_path / "data")
    settings = _settings(
        data, tmp_path, api_read_keys=[READ_KEY, OTHER_READ_KEY], api_admin_keys=[ADMIN_KEY], **overrides
    )
    return TestClient(create_app(settings)), data


def test_a_search_is_kept_for_its_key_and_its_pack_is_served_without_the_upload(small_archive, tmp_path):
    client, data = _client(small_archive, tmp_path)
    mine, other, admin = ({"X-API-Key": k} for k in (READ_KEY, OTHER_READ_KEY, ADMIN_KEY))
    with client:
        body = _post(client, small_archive["reversed"], headers=mine).json()
        search_id = body["search_id"]
        assert len(search_id) == 22 and body["verdict"] == "match"
        kept = data / "searches" / search_id
        assert (kept / "search.json").is_file() and not list(kept.rglob("*.mp4"))  # never the upload itself
        assert client.get(f"/v1/searches/{search_id}", headers=mine).json()["earliest"] == body["earliest"]
        assert client.get(f"/v1/searches/{search_id}", headers=admin).status_code == 200
        _error(client.get(f"/v1/searches/{search_id}", headers=other), 404, "search_not_found")
        _error(client.get(f"/v1/searches/{search_id}"), 401, "unauthorized")
        _error(client.get("/v1/searches/" + "A" * 22, headers=mine), 404, "search_not_found")
        _error(client.get("/v1/searches/../../etc/evidence.zip", headers=mine), 404, "not_found")
        response = client.get(f"/v1/searches/{search_id}/evidence.zip", headers=mine)
        assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
            page = zf.read("report.html").decode()
            result = json.loads(zf.read("result.json"))
            names = zf.namelist()
        assert small_archive["titles"]["vtest.avi"] in page and "2011-02-17" in page and "REVERSED" in page
        assert result["earliest"]["external_id"] == small_archive["external_ids"]["vtest.avi"]
        assert sum(n.endswith("-query.jpg") for n in names) >= 6 and "report.pdf" in names
        _error(client.get(f"/v1/searches/{search_id}/evidence.zip", headers=other), 404, "search_not_found")
        # a takedown purges every stored search that shows the removed video
        assert (
            client.delete(f"/v1/videos/{small_archive['external_ids']['vtest.avi']}", headers=admin).status_code == 200
        )
        _error(client.get(f"/v1/searches/{search_id}", headers=mine), 404, "search_not_found")
        assert not kept.exists()


def test_retention_keeps_only_the_newest_searches(small_archive, tmp_path):
    client, data = _client(small_archive, tmp_path, api_search_max_count=2)
    mine = {"X-API-Key": READ_KEY}
    with client:
        ids = [_post(client, small_archive["unseen"], headers=mine).json()["search_id"] for _ in range(3)]
        _error(client.get(f"/v1/searches/{ids[0]}", headers=mine), 404, "search_not_found")
        assert all(client.get(f"/v1/searches/{i}", headers=mine).status_code == 200 for i in ids[1:])
        assert sorted(p.name for p in (data / "searches").iterdir()) == sorted(ids[1:])


def test_text_search_over_http(small_archive, tmp_path):
    from firstseen.storage.catalog import SqlCatalog
    from firstseen.storage.text_store import TextSpan, TextStore

    client, data = _client(small_archive, tmp_path)
    with SqlCatalog.open(f"sqlite:///{(data / 'catalog.sqlite').resolve()}") as catalog:
        video = catalog.get_video(small_archive["external_ids"]["vtest.avi"])
        TextStore(catalog).replace_video_text(
            video.video_id,
            [TextSpan(video.video_id, 4.0, 8.0, "ВЛАДИВОСТОК 2019", 90.0, {})],
            reader="test",
            frames_read=3,
        )
    with client:
        hits = client.get("/v1/text", params={"q": "Владивосток"}, headers={"X-API-Key": READ_KEY}).json()["hits"]
        assert [(h["video"]["external_id"], h["start_s"]) for h in hits] == [(video.external_id, 4.0)]
        _error(client.get("/v1/text", params={"q": "..."}, headers={"X-API-Key": READ_KEY}), 400, "bad_query")
        _error(client.get("/v1/text", params={"q": "x"}), 401, "unauthorized")


def test_the_clips_own_caption_is_read_from_the_kept_frames(small_archive, footage, tmp_path):
    from edits import FrameSource
    from text_frames import reversed_captioned_crop

    if not shutil.which("tesseract") and not os.environ.get("CI"):
        pytest.skip("Tesseract is not installed (`make ocr`)")
    clip = reversed_captioned_crop(FrameSource(footage / "vtest.avi", 768), tmp_path / "toast.mp4", start_s=60.0)
    client, _ = _client(small_archive, tmp_path)
    mine = {"X-API-Key": READ_KEY}
    with client:
        body = _post(client, clip["path"], headers=mine).json()
        assert body["verdict"] == "match" and body["earliest"]["segments"][0]["reversed"]
        read = client.get(f"/v1/searches/{body['search_id']}/text", headers=mine).json()
        assert read["read"] and read["frames"]
        assert any(line["text"] == clip["caption"] for f in read["frames"] for line in f["lines"])
        _error(
            client.get(f"/v1/searches/{body['search_id']}/text", headers={"X-API-Key": OTHER_READ_KEY}),
            404,
            "search_not_found",
        )
