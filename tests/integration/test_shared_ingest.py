"""Shared ingest on one PostgreSQL ledger: two processes split a folder; a killed one's files are taken again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from clips import make_distinct_clip

from firstseen.archive import open_archive
from firstseen.storage.job_ledger import JobCounts, SqlJobLedger

CLIPS = 16  # enough work that the later of two processes to start still finds some
pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url():
    from conftest import pg_schema_url

    with pg_schema_url() as url:
        yield url


@pytest.fixture
def folder(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    for seed in range(CLIPS):
        make_distinct_clip(drop / f"clip{seed:02d}.mp4", 100 + seed, seconds=4.0)
    return drop


def _ingest(folder, data_dir, url, **env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "ingest", "--shared", "--json", str(folder)],
        env={
            **os.environ,
            "FIRSTSEEN_DATA_DIR": str(data_dir),
            "FIRSTSEEN_CATALOG_URL": url,
            "FIRSTSEEN_ARCHIVE_FPS": "4",
            "FIRSTSEEN_ONNX_THREADS": "1",
            "FIRSTSEEN_INGEST_CLAIM_BATCH": "1",
            "PYTHONUNBUFFERED": "1",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _committed_once(data_dir, url) -> dict[str, int]:
    """Catalog, raw vectors and index agree, and every clip is there once."""
    with open_archive(data_dir, url, writable=True) as archive:
        assert archive.verify() == []
        committed = {r.video_id: r.frame_count for r in archive.videos("committed")}
        assert archive.index_size == sum(committed.values())  # no frame of any video twice
    ledger = SqlJobLedger.open(url)
    try:
        assert ledger.counts() == JobCounts(committed=CLIPS)
    finally:
        ledger.close()
    return committed


@pytest.mark.timeout(600)
def test_two_processes_split_a_folder_and_commit_each_video_once(folder, tmp_path, pg_url):
    import json

    data_dir = tmp_path / "data"
    runs = [_ingest(folder, data_dir, pg_url) for _ in range(2)]
    outputs = [proc.communicate(timeout=500) for proc in runs]
    for proc, (_, err) in zip(runs, outputs):
        assert proc.returncode == 0, err
    summaries = [json.loads(out) for out, _ in outputs]
    assert sum(s["added"] for s in summaries) == CLIPS  # split between them, none twice
    assert all(s["added"] >= 1 for s in summaries), summaries  # both did some of the work
    assert len(_committed_once(data_dir, pg_url)) == CLIPS


@pytest.mark.timeout(600)
def test_a_killed_process_claims_are_taken_again_and_nothing_is_committed_twice(folder, tmp_path, pg_url):
    import json

    data_dir = tmp_path / "data"
    doomed = _ingest(folder, data_dir, pg_url, FIRSTSEEN_INGEST_LEASE_S="3")
    seen = 0
    for line in doomed.stderr:
        if '"event": "video"' in line:
            seen += 1
            if seen >= 2:  # mid-run: two videos done, one claimed and half described
                time.sleep(0.3)
                doomed.send_signal(signal.SIGKILL)
                break
    doomed.wait()
    doomed.stdout.close()
    doomed.stderr.close()
    assert doomed.returncode == -signal.SIGKILL
    time.sleep(3.5)  # its lease runs out
    survivor = _ingest(folder, data_dir, pg_url)
    out, err = survivor.communicate(timeout=500)
    assert survivor.returncode == 0, err
    assert json.loads(out)["added"] <= CLIPS - 2
    assert len(_committed_once(data_dir, pg_url)) == CLIPS
