"""Ingest jobs over HTTP, and a running server picking up what the indexer commits."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from conftest import copy_archive

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from firstseen.ingest.progress import LogProgress  # noqa: E402
from firstseen.ingest.run import ingest_inputs, run_ingest  # noqa: E402
from search_api.app import create_app  # noqa: E402
from search_api.jobs import IngestJobs  # noqa: E402
from search_api.settings import get_api_settings  # noqa: E402


def _settings(data_dir: Path, **overrides):
    return get_api_settings(data_dir=data_dir, api_reload_interval_s=0.2, **overrides)


def _wait_for(condition, timeout_s: float = 90.0):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return value


def _search(client, path: Path) -> dict:
    with open(path, "rb") as fh:
        response = client.post("/v1/search", files={"file": (path.name, fh)})
    assert response.status_code == 200, response.text
    return response.json()


def test_ingest_job_reports_progress_and_per_line_errors(small_archive, footage, tmp_path):
    data = copy_archive(small_archive, tmp_path / "data")
    outside = tmp_path / "elsewhere.mp4"
    outside.write_bytes((footage / "bikes.mp4").read_bytes())
    body = "\n".join(
        [
            json.dumps({"path": "bikes.mp4", "external_id": "evs-bikes", "published_at": "2023-04-08"}),
            json.dumps({"path": "missing.mp4"}),
            "{not json",
            json.dumps({"path": "vtest.avi", "published_at": "2031-01-01"}),
            json.dumps({"path": str(outside)}),
            json.dumps({"path": "vtest.avi"}),
        ]
    )
    with TestClient(create_app(_settings(data, api_ingest_root=footage))) as client:
        response = client.post("/v1/ingest", content=body.encode(), headers={"content-type": "application/x-ndjson"})
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        job = _wait_for(lambda: (j := client.get(f"/v1/jobs/{job_id}").json())["status"] == "done" and j)
        assert job["summary"]["added"] == 1 and job["summary"]["skipped"] == 1
        reasons = {e["line"]: e["reason"] for e in job["errors"]}
        assert set(reasons) == {2, 3, 4, 5}
        assert "file not found" in reasons[2] and "invalid JSON" in reasons[3]
        assert "future" in reasons[4] and "outside the ingest root" in reasons[5]
        assert job["progress"]["videos_done"] == 2 and job["progress"]["footage_s_done"] == pytest.approx(10.0, abs=0.5)
        assert client.get("/v1/videos/evs-bikes").json()["external_id"] == "evs-bikes"
        assert client.post("/v1/ingest", content=b"\n\n").status_code == 400
        assert client.post("/v1/ingest", json={"items": []}).status_code == 422
    saved = json.loads((data / "jobs" / f"{job_id}.json").read_text())
    assert saved["status"] == "done" and saved["summary"]["added"] == 1


def test_a_job_left_running_by_a_stopped_server_runs_again(small_archive, footage, tmp_path):
    data = copy_archive(small_archive, tmp_path / "data")
    settings = _settings(data)
    (data / "jobs").mkdir()
    (data / "jobs" / "cafe.jsonl").write_text(json.dumps({"path": str(footage / "bikes.mp4")}) + "\n")
    (data / "jobs" / "cafe.json").write_text(
        json.dumps(
            {
                "job_id": "cafe",
                "status": "running",
                "created_at": "2026-01-01T00:00:00+00:00",
                "started_at": None,
                "finished_at": None,
                "lines": 1,
                "progress": {},
                "videos": [],
                "errors": [],
                "summary": None,
                "message": None,
            }
        )
    )
    jobs = IngestJobs(settings)
    jobs.start()
    try:
        done = _wait_for(lambda: (j := jobs.get("cafe"))["status"] == "done" and j)
    finally:
        jobs.stop()
    assert done["summary"]["added"] == 1 and "restart" in done["note"]


def test_server_sees_new_videos_without_restart_while_searching(small_archive, footage, tmp_path):
    """The indexer (another writer, here in a thread) commits bikes.mp4 while searches run;
    no search fails, and once the checkpoint is published bikes footage is found."""
    import numpy as np
    from edits import FrameSource, make_query

    data = copy_archive(small_archive, tmp_path / "data")
    bikes_clip = make_query(
        "crop60", FrameSource(footage / "bikes.mp4", 360), 2.0, 5.0, tmp_path / "q", rng=np.random.default_rng(1)
    ).path
    settings = _settings(data)
    with TestClient(create_app(settings)) as client:
        assert _search(client, bikes_clip)["verdict"] == "no_match"
        checkpoint = client.get("/readyz").json()["index"]["checkpoint"]
        failures: list[str] = []
        stop = threading.Event()

        def keep_searching():
            while not stop.is_set():
                with open(small_archive["reversed"], "rb") as fh:
                    response = client.post("/v1/search", files={"file": ("r.mp4", fh)})
                if response.status_code != 200 or response.json()["verdict"] != "match":
                    failures.append(response.text)

        searchers = [threading.Thread(target=keep_searching) for _ in range(2)]
        for thread in searchers:
            thread.start()
        manifest = tmp_path / "late.jsonl"
        manifest.write_text(json.dumps({"path": str(footage / "bikes.mp4"), "external_id": "evs-late"}) + "\n")
        summary = run_ingest(settings, [], [manifest], progress=LogProgress())
        assert summary.added == 1
        _wait_for(lambda: client.get("/readyz").json()["index"]["checkpoint"] > checkpoint)
        stop.set()
        for thread in searchers:
            thread.join()
        assert failures == []
        assert _search(client, bikes_clip)["earliest"]["external_id"] == "evs-late"
        assert "firstseen_index_loads 2.0" in client.get("/metrics").text


def test_a_job_that_crashes_is_marked_failed_and_the_worker_goes_on(small_archive, footage, tmp_path, monkeypatch):
    import search_api.jobs as jobs_module

    data = copy_archive(small_archive, tmp_path / "data")
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk on fire")
        return ingest_inputs(*args, **kwargs)

    monkeypatch.setattr(jobs_module, "ingest_inputs", flaky)
    jobs = IngestJobs(_settings(data))
    jobs.start()
    try:
        first = jobs.submit(json.dumps({"path": str(footage / "bikes.mp4")}))
        second = jobs.submit(json.dumps({"path": str(footage / "bikes.mp4")}))
        crashed = _wait_for(lambda: (j := jobs.get(first["job_id"]))["status"] == "failed" and j)
        done = _wait_for(lambda: (j := jobs.get(second["job_id"]))["status"] == "done" and j)
    finally:
        jobs.stop()
    assert crashed["error_code"] == "internal_error" and "fire" not in crashed["message"]
    assert done["summary"]["added"] == 1
