"""Ingest on a local Ray cluster (2 descriptor actors) gives the catalog and vectors the local executor gives."""

from __future__ import annotations

import numpy as np
import pytest
from clips import make_distinct_clip
from conftest import require_scale

from firstseen.archive import open_archive
from firstseen.ingest.manifest import collect_inputs
from firstseen.ingest.run import run_ingest
from firstseen.ingest.shared import ingest_shared
from firstseen.settings import get_settings

ray = require_scale("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _contents(settings) -> dict:
    """Per file's bytes: what the catalog says and what the raw store holds (frame ids aside)."""
    with open_archive(settings.data_dir, settings.resolved_catalog_url()) as archive:
        out = {}
        for record in archive.videos("committed"):
            stored = archive.raw_vectors(record.video_id, thumbnails=True)
            out[record.sha256] = (record.frame_count, record.duration_s, stored)
        return out


@pytest.mark.timeout(600)
def test_ray_ingest_with_two_actors_matches_the_local_executor(tmp_path, local_ray):
    from firstseen.ingest.ray_executor import ray_executor

    drop = tmp_path / "drop"
    drop.mkdir()
    for seed in range(4):
        make_distinct_clip(drop / f"clip{seed}.mp4", 300 + seed, seconds=3.0 + seed)
    (drop / "broken.mp4").write_bytes(b"not a video at all")
    local = get_settings(data_dir=tmp_path / "local", archive_fps=4)
    on_ray = get_settings(data_dir=tmp_path / "ray", archive_fps=4, ingest_claim_batch=2)
    local_run = run_ingest(local, [drop])
    executor = ray_executor(None, on_ray, actors=2)
    ray_run = ingest_shared(on_ray, collect_inputs([drop], []), executor=executor)
    assert (local_run.added, local_run.failed) == (ray_run.added, ray_run.failed) == (4, 1)
    assert len(executor.actor_pids) == 2  # three claims, one pool: each actor loaded the model once
    a, b = _contents(local), _contents(on_ray)
    assert a.keys() == b.keys()
    for sha, (frames, duration, stored) in a.items():
        other = b[sha]
        assert (frames, duration) == other[:2]
        assert np.array_equal(stored.pts_s, other[2].pts_s)
        assert np.array_equal(stored.informative, other[2].informative)
        assert np.allclose(stored.vectors.astype(np.float32), other[2].vectors.astype(np.float32), atol=2e-3)
        assert [stored.thumbnails.get(i) for i in range(frames)] == [other[2].thumbnails.get(i) for i in range(frames)]


def _describer_pids() -> list[int]:
    """Ray names a worker process after what it runs: ray::MapWorker(Map(_Describer)) ..."""
    import os

    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if b"_Describer" in fh.read():
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


@pytest.mark.timeout(600)
def test_a_sigkilled_descriptor_actor_loses_nothing(tmp_path, local_ray):
    import os
    import signal
    import threading

    from firstseen.ingest.progress import LogProgress
    from firstseen.ingest.ray_executor import ray_executor

    drop = tmp_path / "drop"
    drop.mkdir()
    for seed in range(6):
        make_distinct_clip(drop / f"clip{seed}.mp4", 400 + seed, seconds=6.0)
    settings = get_settings(data_dir=tmp_path / "ray", archive_fps=8, ingest_claim_batch=2)
    killed: list[int] = []

    class KillAfterFirst(LogProgress):
        def video_done(self, name, status, detail, footage_s):
            super().video_done(name, status, detail, footage_s)
            if not killed:
                killed.append(0)

                def kill() -> None:  # a moment later: the next batch's actor is describing
                    for pid in _describer_pids():
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)

                threading.Timer(0.5, kill).start()

    summary = ingest_shared(
        settings, collect_inputs([drop], []), KillAfterFirst(), executor=ray_executor(None, settings)
    )
    assert len(killed) > 1, "no descriptor actor was running to kill"
    assert (summary.added, summary.failed) == (6, 0), summary.errors
    with open_archive(settings.data_dir, settings.resolved_catalog_url(), writable=True) as archive:
        assert archive.verify() == [] and len(archive.videos("committed")) == 6
