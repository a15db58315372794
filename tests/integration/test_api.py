"""The HTTP API over a real archive: the search contract, bad input, auth, limits, jobs, reloads."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_archive
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from firstseen.media.frames import frame_at  # noqa: E402
from firstseen.search.searcher import Searcher  # noqa: E402
from search_api.app import create_app  # noqa: E402
from search_api.server import listen_host  # noqa: E402
from search_api.settings import get_api_settings  # noqa: E402

READ_KEY, ADMIN_KEY = "r" * 20 + "-read", "a" * 20 + "-admin"


def _settings(data_dir: Path, tmp_path: Path, **overrides):
    uploads = tmp_path / "uploads"
    uploads.mkdir(exist_ok=True)
    return get_api_settings(data_dir=data_dir, api_upload_dir=uploads, api_reload_interval_s=0.2, **overrides)


@pytest.fixture
def client(small_archive, tmp_path):
    settings = _settings(small_archive["data_dir"], tmp_path)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _post(client, path: Path, *, name: str | None = None, headers=None, **params):
    with open(path, "rb") as fh:
        return client.post(
            "/v1/search",
            params=params,
            headers=headers or {},
            files={"file": (name or path.name, fh, "application/octet-stream")},
        )


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]["message"]


def _uploads_left(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "uploads").iterdir())


# ---- the search contract ------------------------------------------------------------------


def test_search_returns_the_cli_result_object(client, small_archive, tmp_path):
    response = _post(client, small_archive["reversed"], name="suspect.mp4")
    assert response.status_code == 200, response.text
    body = response.json()
    with Searcher(get_api_settings(data_dir=small_archive["data_dir"])) as searcher:
        expected = searcher.search(small_archive["reversed"]).to_dict()
    expected["query"]["filename"] = "suspect.mp4"
    assert len(body.pop("search_id")) == 22  # added: the kept search, for its evidence pack
    assert body == expected  # the same object as `firstseen search --json`, to the last digit
    assert body["earliest"]["title"] == small_archive["titles"]["vtest.avi"]
    assert body["earliest"]["segments"][0]["reversed"] is True
    assert "query_frames" not in body
    assert _uploads_left(tmp_path) == []


def test_previews_return_the_query_frame_at_each_segment_middle(client, small_archive):
    body = _post(client, small_archive["mirrored"], previews="true").json()
    assert body["earliest"]["title"] == small_archive["titles"]["cockatoo.mp4"]
    assert any(s["mirrored"] for s in body["earliest"]["segments"])
    frames = body["query_frames"]
    segment = body["earliest"]["segments"][0]
    middle = round((segment["query_start"] + segment["query_end"]) / 2, 2)
    preview = next(f for f in frames if f["t"] == middle)
    jpeg = preview["jpeg"].removeprefix("data:image/jpeg;base64,")
    import base64

    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(jpeg))).convert("RGB"), dtype=float)
    truth = frame_at(small_archive["mirrored"], middle, max_side=480).rgb.astype(float)
    assert shown.shape == truth.shape and np.abs(shown - truth).mean() < 4  # JPEG noise only


def test_unseen_footage_is_no_match(client, small_archive):
    body = _post(client, small_archive["unseen"]).json()
    assert body["verdict"] == "no_match" and body["earliest"] is None and body["matches"] == []


def test_screenshot_upload_finds_its_video(client, small_archive, tmp_path):
    still = frame_at(small_archive["reversed"], 2.0, max_side=640)
    png = tmp_path / "screenshot.png"
    Image.fromarray(still.rgb).save(png)
    body = _post(client, png).json()
    assert body["query"]["kind"] == "image"
    assert body["earliest"]["external_id"] == small_archive["external_ids"]["vtest.avi"]


# ---- bad input: JSON errors, 4xx, nothing left behind ----------------------------------------


def test_non_media_upload_is_415(client, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a video at all\n" * 50)
    _error(_post(client, text), 415, "not_media")
    assert _uploads_left(tmp_path) == []


def test_truncated_mp4_is_422(client, footage, tmp_path):
    data = (footage / "cockatoo.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    message = _error(_post(client, cut), 422, _post(client, cut).json()["error"]["code"])
    assert "truncated" in message or "corrupt" in message
    assert _uploads_left(tmp_path) == []


def test_zero_length_upload_is_400(client, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    _error(_post(client, empty), 400, "empty_file")


def test_image_bomb_is_refused_before_decoding(client, tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20_000, 20_000)).save(bomb)  # 400 Mpx that compress to ~50 kB
    assert bomb.stat().st_size < 200_000
    started = time.perf_counter()
    _error(_post(client, bomb, name="innocent.mp4"), 413, "image_too_large")
    assert time.perf_counter() - started < 5


def test_missing_field_and_wrong_content_type(client):
    _error(client.post("/v1/search", files={"other": ("x.mp4", b"123")}), 400, "missing_file")
    _error(
        client.post("/v1/search", content=b"raw bytes", headers={"content-type": "video/mp4"}),
        415,
        "expected_multipart",
    )
    _error(client.post("/v1/search", params={"top_k": 0}, files={"file": ("x.mp4", b"1")}), 422, "invalid_request")


def test_upload_over_the_size_limit_is_cut_off(small_archive, tmp_path):
    settings = _settings(small_archive["data_dir"], tmp_path, api_max_upload_mb=0.05)
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 200_000)
    with TestClient(create_app(settings)) as client:
        _error(_post(client, big), 413, "payload_too_large")

        def chunks():  # no Content-Length: the limit must hold while streaming
            yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
            for _ in range(40):
                yield b"\1" * 10_000
            yield b"\r\n--B--\r\n"

        response = client.post(
            "/v1/search", content=chunks(), headers={"content-type": "multipart/form-data; boundary=B"}
        )
        _error(response, 413, "payload_too_large")
        padded = {"padding": ("pad.bin", b"\0" * 100_000), "file": ("a.mp4", b"\0" * 10)}
        _error(client.post("/v1/search", files=padded), 413, "payload_too_large")  # other fields count too
    assert _uploads_left(tmp_path) == []


def test_clip_over_the_duration_limit_is_422(small_archive, footage, tmp_path):
    settings = _settings(small_archive["data_dir"], tmp_path, query_max_duration_s=10)
    with TestClient(create_app(settings)) as client:
        message = _error(_post(client, footage / "vtest.avi"), 422, "too_long")
    assert "limit is 10 s" in message
    assert _uploads_left(tmp_path) == []


def test_uploads_left_by_a_killed_server_are_swept_at_start(small_archive, tmp_path):
    import os

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    stale, fresh = uploads / "firstseen-upload-old.mp4", uploads / "firstseen-upload-new.mp4"
    for path in (stale, fresh):
        path.write_bytes(b"x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    with TestClient(create_app(_settings(small_archive["data_dir"], tmp_path))):
        pass
    assert not stale.exists() and fresh.exists()  # a fresh one may be another server's upload in flight


def test_unexpected_failure_is_a_json_500_without_internals(small_archive, tmp_path):
    app = create_app(_settings(small_archive["data_dir"], tmp_path))
    with TestClient(app, raise_server_exceptions=False) as client:
        app.state.service.searcher.search = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("secret detail"))
        response = _post(client, small_archive["reversed"])
    message = _error(response, 500, "internal_error")
    assert "secret" not in message
    assert _uploads_left(tmp_path) == []


# ---- videos, frames, takedown --------------------------------------------------------------


def test_video_record_and_evidence_frame(client, small_archive, footage):
    external_id = small_archive["external_ids"]["vtest.avi"]
    record = client.get(f"/v1/videos/{external_id}").json()
    assert record["external_id"] == external_id and record["title"] == small_archive["titles"]["vtest.avi"]
    assert record["copies"] == [] and "path" not in record
    assert client.get(f"/v1/videos/{record['video_id']}").json() == record
    response = client.get(f"/v1/videos/{record['video_id']}/frame", params={"t": 31.0, "max_side": 320})
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    shown = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"), dtype=float)
    truth = frame_at(footage / "vtest.avi", 31.0, max_side=320).rgb.astype(float)
    assert shown.shape == truth.shape and np.abs(shown - truth).mean() < 4  # JPEG noise only
    _error(client.get("/v1/videos/nope"), 404, "not_found")
    _error(client.get(f"/v1/videos/{record['video_id']}/frame", params={"t": 5000}), 422, "bad_time")
    _error(client.get(f"/v1/videos/{record['video_id']}/frame", params={"t": -1}), 422, "invalid_request")


def test_takedown_removes_a_video_from_search(small_archive, tmp_path):
    data = copy_archive(small_archive, tmp_path / "data")
    with TestClient(create_app(_settings(data, tmp_path))) as client:
        external_id = small_archive["external_ids"]["vtest.avi"]
        assert client.delete(f"/v1/videos/{external_id}").json()["external_id"] == external_id
        _error(client.get(f"/v1/videos/{external_id}"), 404, "not_found")
        assert _post(client, small_archive["reversed"]).json()["verdict"] == "no_match"


def test_a_takedown_waits_for_a_running_writer_then_gives_up_with_busy(small_archive, tmp_path):
    import threading
    import time

    from firstseen.archive import DataDirLock

    data = copy_archive(small_archive, tmp_path / "data")
    writer = DataDirLock(data)  # an ingest or reindex holding the archive
    writer.acquire()
    with TestClient(create_app(_settings(data, tmp_path, lock_wait_s=30))) as client:
        external_id = small_archive["external_ids"]["vtest.avi"]
        # the writer lets go a second after the request starts (not after the app's start-up,
        # which on a loaded machine can take most of that second)
        threading.Timer(1.0, writer.release).start()
        started = time.monotonic()
        response = client.delete(f"/v1/videos/{external_id}")
        assert response.status_code == 200 and response.json()["external_id"] == external_id
        assert time.monotonic() - started >= 0.9, "it waited for the writer, as the CLI does"
    writer.acquire()  # held again: past lock_wait_s the answer is "busy", never a 500
    try:
        with TestClient(create_app(_settings(data, tmp_path, lock_wait_s=0.2))) as client:
            other = small_archive["external_ids"]["diver.mov"]
            _error(client.delete(f"/v1/videos/{other}"), 409, "archive_busy")
    finally:
        writer.release()


# ---- keys and scopes -----------------------------------------------------------------------


def test_keys_and_scopes(small_archive, tmp_path, caplog, capsys):
    settings = _settings(small_archive["data_dir"], tmp_path, api_read_keys=[READ_KEY], api_admin_keys=[ADMIN_KEY])
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/info").json()["auth_required"] is True
        assert client.get("/healthz").status_code == 200  # probes need no key
        _error(_post(client, small_archive["reversed"]), 401, "unauthorized")
        _error(
            _post(client, small_archive["reversed"], headers={"Authorization": "Bearer " + "x" * 25}),
            401,
            "unauthorized",
        )
        assert (
            _post(client, small_archive["reversed"], headers={"Authorization": f"Bearer {READ_KEY}"}).status_code == 200
        )
        assert _post(client, small_archive["reversed"], headers={"X-API-Key": ADMIN_KEY}).status_code == 200
        video_id = client.get(
            f"/v1/videos/{small_archive['external_ids']['diver.mov']}", headers={"X-API-Key": READ_KEY}
        ).json()["video_id"]
        _error(
            client.post("/v1/ingest", content=b'{"path": "x.mp4"}', headers={"X-API-Key": READ_KEY}), 403, "forbidden"
        )
        _error(client.delete(f"/v1/videos/{video_id}", headers={"X-API-Key": READ_KEY}), 403, "forbidden")
        _error(client.get("/v1/jobs/abc", headers={"X-API-Key": READ_KEY}), 403, "forbidden")
        _error(client.get("/v1/jobs/abc", headers={"X-API-Key": ADMIN_KEY}), 404, "not_found")
        _error(client.get("/v1/videos/x", params={"api_key": READ_KEY}), 401, "unauthorized")  # never from the URL
    # The test client (httpx) logs the URL it was given; everything the server logged is checked.
    logged = "".join(str(r.__dict__) for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    logged += "".join(capsys.readouterr())  # structlog's request lines
    assert "/v1/search" in logged and "status" in logged
    assert READ_KEY not in logged and ADMIN_KEY not in logged


def test_keys_must_be_long_and_are_never_echoed(monkeypatch):
    monkeypatch.setenv("FIRSTSEEN_API_READ_KEYS", "tooshort-key")
    with pytest.raises(ValueError) as error:
        get_api_settings()
    assert "tooshort-key" not in str(error.value) and "16 characters" in str(error.value)
    monkeypatch.setenv("FIRSTSEEN_API_READ_KEYS", f"{READ_KEY}, {ADMIN_KEY}")
    assert [k.get_secret_value() for k in get_api_settings().api_read_keys] == [READ_KEY, ADMIN_KEY]


def test_without_keys_the_server_listens_on_loopback_only():
    open_settings = get_api_settings()
    assert listen_host(open_settings, "0.0.0.0")[0] == "127.0.0.1"
    assert "no API keys" in listen_host(open_settings, "0.0.0.0")[1]
    assert listen_host(open_settings, "::1") == ("::1", None)
    keyed = get_api_settings(api_read_keys=[READ_KEY])
    assert listen_host(keyed, "0.0.0.0") == ("0.0.0.0", None)


# ---- load: bounded searches, then 429 --------------------------------------------------------


def test_full_queue_gets_429_with_retry_after(small_archive, tmp_path):
    settings = _settings(small_archive["data_dir"], tmp_path, api_max_concurrent_searches=1, api_max_queued_searches=1)
    app = create_app(settings)
    with TestClient(app) as client:
        service = app.state.service
        service.admit()
        service.admit()  # one running, one queued: full
        response = _post(client, small_archive["reversed"])
        _error(response, 429, "busy")
        assert int(response.headers["Retry-After"]) >= 1
        assert "firstseen_searches_rejected_total 1.0" in client.get("/metrics").text
        service.release()
        assert _post(client, small_archive["reversed"]).status_code == 200
        service.release()
    assert _uploads_left(tmp_path) == []


# ---- operations ----------------------------------------------------------------------------


def test_health_ready_metrics_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] and body["catalog"]["reachable"] and body["index"]["vectors"] > 0
    assert body["index"]["checkpoint_age_s"] >= 0
    client.get("/v1/videos/nope")
    metrics = client.get("/metrics").text
    assert 'firstseen_http_requests_total{method="GET",route="/v1/videos/{video_id}",status="404"} 1.0' in metrics
    assert "firstseen_index_vectors" in metrics and "firstseen_search_queue_depth 0.0" in metrics
    assert client.get("/docs").status_code == 200
    assert "/v1/search" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text


def test_not_ready_without_an_archive_then_ready_after_ingest(small_archive, footage, tmp_path):
    data = tmp_path / "fresh"
    with TestClient(create_app(_settings(data, tmp_path))) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and not ready.json()["index"]["loaded"]
        _error(_post(client, small_archive["reversed"]), 503, "archive_unavailable")
        line = {"path": str(footage / "vtest.avi"), "external_id": "late-vtest", "published_at": "2011-02-17"}
        job = client.post("/v1/ingest", json={"lines": [line]}).json()
        _wait_for(lambda: client.get(f"/v1/jobs/{job['job_id']}").json()["status"] == "done")
        _wait_for(lambda: client.get("/readyz").status_code == 200)
        assert _post(client, small_archive["reversed"]).json()["earliest"]["external_id"] == "late-vtest"


def _wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
