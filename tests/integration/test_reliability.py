"""The soak script, bounded: SIGKILLed indexers (ingest, reindex, remove) and ingest under HTTP
search load, on PostgreSQL; it must report zero errors and zero videos lost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import PG_URL, _pg_admin_engine
from paths import REPO


@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_reliability_soak_loses_nothing_and_fails_no_request(footage):
    _pg_admin_engine().dispose()  # skips (or fails under CI) without a server
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "reliability.py"),
            "--footage",
            str(footage),
            "--kills",
            "8",
            "--clips-per-source",
            "2",
            "--phase2-clips",
            "2",
            "--soak-s",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=850,
        env={**__import__("os").environ, "FIRSTSEEN_TEST_PG_URL": PG_URL},
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads(completed.stdout[completed.stdout.index("{") :])
    assert report["errors"] == 0 and report["videos_lost"] == 0
    assert report["kills_survived"] >= 4, report  # most kills land while the indexer runs
    assert report["requests_sent"] > 0
    assert report["new_videos_searchable"] == "2/2"
    assert report["catalog"] == "postgresql"
