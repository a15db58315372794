"""SIGKILL the ingest process at random moments; after each restart the archive must be whole."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from clips import make_distinct_clip

from firstseen.archive import open_archive

CLIPS = 10
SEED = int(os.environ.get("FIRSTSEEN_CRASH_SEED", "20261121"))


def _env(data_dir) -> dict:
    return {
        **os.environ,
        "FIRSTSEEN_DATA_DIR": str(data_dir),
        "FIRSTSEEN_ARCHIVE_FPS": "4",
        # commit after almost every video, so kills also land inside checkpoints
        "FIRSTSEEN_CHECKPOINT_EVERY_S": "0.05",
        "FIRSTSEEN_ONNX_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def _ingest(folder, data_dir, stdout=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "ingest", str(folder)],
        env=_env(data_dir),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check_archive(data_dir, committed_before: dict[str, int]) -> dict[str, int]:
    """Recover (as the next run would), then check that catalog, raw vectors and index agree,
    that nothing committed earlier is lost, and that each video still finds itself."""
    url = f"sqlite:///{data_dir / 'catalog.sqlite'}"
    with open_archive(data_dir, url, writable=True) as archive:
        assert archive.verify() == []
        committed = {r.video_id: r.frame_count for r in archive.videos(status="committed")}
        assert all(committed.get(v) == n for v, n in committed_before.items()), "a committed video was lost"
        assert archive.videos(status="pending") == []
        for video_id in committed:
            stored = archive.raw_vectors(video_id)
            hits = archive.search_frames(stored.vectors.astype(np.float32), k=1)
            assert [h[0].video_id for h in hits] == [video_id] * len(stored)
            assert [h[0].pts_s for h in hits] == stored.pts_s.tolist()
    return committed


@pytest.mark.timeout(600)
def test_sigkill_at_random_moments_loses_nothing(tmp_path):
    rng = random.Random(SEED)
    folder = tmp_path / "drop"
    folder.mkdir()
    for seed in range(CLIPS):
        make_distinct_clip(folder / f"clip{seed:02d}.mp4", seed, seconds=3.0 + seed * 0.1)
    data_dir = tmp_path / "data"
    committed: dict[str, int] = {}
    kills = 0
    for _round in range(15):
        proc = _ingest(folder, data_dir)
        wait_for = rng.randint(1, 3)  # videos to see finish before the kill
        seen = 0
        for line in proc.stderr:
            if '"event": "video"' in line:
                seen += 1
                if seen >= wait_for:
                    time.sleep(rng.uniform(0.0, 0.15))
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.wait()
        proc.stderr.close()
        if proc.returncode == -signal.SIGKILL:
            kills += 1
        else:
            assert proc.returncode == 0
        committed = _check_archive(data_dir, committed)
        if len(committed) == CLIPS:
            break
    assert kills >= 3, f"only {kills} kills landed (seed {SEED})"

    final = _ingest(folder, data_dir)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    committed = _check_archive(data_dir, committed)
    assert len(committed) == CLIPS
    again = _ingest(folder, data_dir, stdout=subprocess.PIPE)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0 and f"added 0, skipped {CLIPS}, failed 0" in out, (out, err)
