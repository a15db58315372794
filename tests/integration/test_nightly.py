"""Nightly ingestion: failures retried then quarantined, unchanged files never re-read, inputs
from the settings, runs that never overlap, index maintenance after ingest, and the scheduler."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from clips import make_distinct_clip

import firstseen.ingest.run as worker
import indexer.nightly as nightly
from cli.main import main
from firstseen.archive import DataDirLock, open_archive
from firstseen.datadir import DataDir
from firstseen.errors import ArchiveLockedError, BadInputError
from firstseen.ingest.progress import LogProgress
from firstseen.ingest.run import configured_inputs, run_ingest
from firstseen.ops.stats import archive_stats, format_stats
from firstseen.settings import get_settings
from firstseen.storage.faiss_index import VectorIndex
from indexer.settings import get_nightly_settings

INGEST_ENV = (
    "FIRSTSEEN_DATA_DIR",
    "FIRSTSEEN_CATALOG_URL",
    "FIRSTSEEN_INGEST_DROP_DIRS",
    "FIRSTSEEN_INGEST_MANIFESTS",
    "FIRSTSEEN_INGEST_MAX_ATTEMPTS",
    "FIRSTSEEN_INDEX_IVF_MIN_VECTORS",
    "FIRSTSEEN_INDEX_NLIST",
    "FIRSTSEEN_INDEX_NPROBE",
    "FIRSTSEEN_NIGHTLY_AT",
    "FIRSTSEEN_LOCK_WAIT_S",
)


@pytest.fixture(autouse=True)
def _cheap_env(monkeypatch):
    """Few threads and few frames per clip (the machine is shared); no stray ingest settings."""
    for name in INGEST_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FIRSTSEEN_ONNX_THREADS", "1")
    monkeypatch.setenv("FIRSTSEEN_ARCHIVE_FPS", "2")
    monkeypatch.setenv("FIRSTSEEN_CHECKPOINT_EVERY_S", "3600")


@pytest.fixture(scope="module")
def clip_pool(tmp_path_factory) -> list[Path]:
    """Five distinct 3 s clips (6 sampled frames each at 2 fps), made once; tests copy them."""
    folder = tmp_path_factory.mktemp("clip-pool")
    return [make_distinct_clip(folder / f"c{seed}.mp4", seed, seconds=3.0, fps=5) for seed in range(5)]


def _put(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(src, dst))


def _settings(tmp_path: Path, **overrides):
    return get_settings(data_dir=tmp_path / "data", **overrides)


def _ingest(settings, **kwargs):
    paths, manifests = configured_inputs(settings)
    return run_ingest(settings, paths, manifests, LogProgress(), **kwargs)


@pytest.fixture
def hashed(monkeypatch) -> list[str]:
    """Every path firstseen.ingest.run hashes, in order."""
    calls: list[str] = []
    real = worker.sha256_file

    def counting(path, *args, **kwargs):
        calls.append(os.path.abspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(worker, "sha256_file", counting)
    return calls


def _garbage(path: Path, n: int, seed: int) -> Path:
    path.write_bytes(np.random.default_rng(seed).bytes(n))
    return path


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ---- 1. retry, quarantine, release ------------------------------------------------------------
def test_a_failing_file_is_retried_then_quarantined_until_it_changes(tmp_path, clip_pool, hashed):
    drop = tmp_path / "drop"
    good = [_put(clip_pool[i], drop / f"good{i}.mp4") for i in range(2)]
    bad = _garbage(drop / "bad.mp4", 4096, seed=0)
    settings = _settings(tmp_path, ingest_drop_dirs=[drop], ingest_max_attempts=2)

    # Run 1: the good clips go in, the bad one fails its first of two attempts.
    first = _ingest(settings)
    assert (first.added, first.skipped, first.failed, first.quarantined, first.skipped_quarantined) == (2, 0, 1, 0, 0)
    [error] = first.errors
    assert error["path"] == str(bad)
    assert "attempt 1 of 2" in error["reason"] and "quarantined" not in error["reason"], error
    stats = archive_stats(settings)
    assert stats["quarantined"] == []
    [retrying] = stats["retrying"]
    assert (retrying["path"], retrying["attempts"], retrying["quarantined_at"]) == (str(bad), 1, None)
    assert retrying["reason"] and retrying["reason"] in error["reason"]
    assert stats["recent_runs"][0]["run_id"] == first.run_id and stats["recent_runs"][0]["quarantined"] == 0
    assert "retrying     1 file(s)" in format_stats(stats) and "QUARANTINED" not in format_stats(stats)

    # Run 2: the good clips are skipped unread; the bad one fails again and is quarantined.
    hashed.clear()
    second = _ingest(settings)
    assert (second.added, second.skipped, second.failed, second.quarantined, second.skipped_quarantined) == (
        0,
        2,
        1,
        1,
        0,
    )
    assert hashed == [str(bad)]
    assert "attempt 2 of 2: quarantined" in second.errors[0]["reason"], second.errors
    stats = archive_stats(settings)
    assert stats["retrying"] == []
    [quarantined] = stats["quarantined"]
    assert (quarantined["path"], quarantined["attempts"]) == (str(bad), 2)
    assert quarantined["quarantined_at"] and quarantined["reason"] in second.errors[0]["reason"]
    run_row = stats["recent_runs"][0]
    assert (run_row["run_id"], run_row["quarantined"], run_row["failed"]) == (second.run_id, 1, 1)
    assert stats["last_run"]["quarantined"] == 1
    assert stats["recent_runs"][1]["quarantined"] == 0

    # Run 3: the quarantined file is left alone: not hashed, not failed again.
    hashed.clear()
    third = _ingest(settings)
    assert (third.added, third.skipped, third.failed, third.quarantined, third.skipped_quarantined) == (0, 2, 0, 0, 1)
    assert hashed == [] and third.errors == []
    stats = archive_stats(settings)
    assert stats["last_run"]["status"] == "ok" and stats["last_run"]["quarantined"] == 0
    assert [q["attempts"] for q in stats["quarantined"]] == [2], "a skip is not an attempt"
    text = format_stats(stats)
    assert "QUARANTINED  1 file(s)" in text
    [line] = [line for line in text.splitlines() if str(bad) in line]
    assert quarantined["reason"] in line and "2 attempts" in line

    # The file changes but is still broken: a new file, so it starts again from attempt one.
    _garbage(bad, 5000, seed=1)
    hashed.clear()
    fourth = _ingest(settings)
    assert (fourth.failed, fourth.quarantined, fourth.skipped_quarantined) == (1, 0, 0)
    assert hashed == [str(bad)] and "attempt 1 of 2" in fourth.errors[0]["reason"]
    stats = archive_stats(settings)
    assert stats["quarantined"] == [] and [r["attempts"] for r in stats["retrying"]] == [1]

    # Re-exported as a valid video: it is added and the ledger forgets it.
    bad.unlink()
    make_distinct_clip(bad, 42, seconds=3.0, fps=5)
    hashed.clear()
    fifth = _ingest(settings)
    assert (fifth.added, fifth.skipped, fifth.failed, fifth.skipped_quarantined) == (1, 2, 0, 0), fifth.errors
    assert hashed == [str(bad)]
    stats = archive_stats(settings)
    assert stats["quarantined"] == [] and stats["retrying"] == []
    assert stats["videos"]["committed"] == 3 and "QUARANTINED" not in format_stats(stats)
    assert {g.name for g in good} <= {Path(p).name for p in os.listdir(drop)}


def test_a_changed_quarantined_file_that_is_archived_elsewhere_is_forgotten(tmp_path, clip_pool, hashed):
    """A quarantined path that now holds a video the archive already has is skipped as known:
    the ledger must forget it then too, not keep listing it as quarantined."""
    drop = tmp_path / "drop"
    _put(clip_pool[0], drop / "a.mp4")
    bad = _garbage(drop / "b.mp4", 2048, seed=3)
    settings = _settings(tmp_path, ingest_drop_dirs=[drop], ingest_max_attempts=1)
    first = _ingest(settings)
    assert (first.added, first.quarantined) == (1, 1)
    bad.unlink()
    _put(clip_pool[0], bad)  # now a copy of a.mp4
    second = _ingest(settings)
    assert (second.added, second.skipped, second.failed, second.skipped_quarantined) == (0, 2, 0, 0)
    stats = archive_stats(settings)
    assert stats["quarantined"] == [] and stats["retrying"] == []


def test_retry_quarantined_gives_an_unchanged_file_another_set_of_attempts(tmp_path, hashed, capsys):
    drop = tmp_path / "drop"
    drop.mkdir()
    bad = _garbage(drop / "bad.mp4", 4096, seed=0)
    settings = _settings(tmp_path, ingest_drop_dirs=[drop], ingest_max_attempts=2)
    _ingest(settings)
    assert _ingest(settings).quarantined == 1
    assert _ingest(settings).skipped_quarantined == 1

    hashed.clear()
    retried = _ingest(settings, retry_quarantined=True)
    assert hashed == [str(bad)], "the released file is read again"
    assert (retried.failed, retried.skipped_quarantined, retried.quarantined) == (1, 0, 0)
    assert "attempt 1 of 2, retried next run" in retried.errors[0]["reason"], retried.errors
    stats = archive_stats(settings)
    assert stats["quarantined"] == [] and [r["attempts"] for r in stats["retrying"]] == [1]

    # And from the command line: one more run quarantines it again, the flag releases it again.
    assert _ingest(settings).quarantined == 1
    code, out, _ = _run(capsys, "ingest", "--data-dir", settings.data_dir, "--retry-quarantined", "--json", drop)
    summary = json.loads(out)
    assert code == 2 and (summary["failed"], summary["skipped_quarantined"]) == (1, 0)


# ---- 2. unchanged files are not re-hashed ------------------------------------------------------
def test_unchanged_files_are_skipped_without_being_read(tmp_path, clip_pool, hashed):
    drop = tmp_path / "drop"
    clips = [_put(clip_pool[i], drop / f"v{i}.mp4") for i in range(2)]
    settings = _settings(tmp_path, ingest_drop_dirs=[drop])
    first = _ingest(settings)
    assert (first.added, first.failed) == (2, 0)
    assert sorted(hashed) == sorted(str(c) for c in clips)

    hashed.clear()
    second = _ingest(settings)
    assert (second.added, second.skipped, second.failed) == (0, 2, 0)
    assert hashed == [], "size and mtime unchanged: not one byte read"

    st = os.stat(clips[0])
    os.utime(clips[0], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    hashed.clear()
    third = _ingest(settings)
    assert hashed == [str(clips[0])], "a touched file is hashed again"
    assert (third.added, third.skipped, third.failed) == (0, 2, 0), "same bytes: known by sha256, not re-added"
    assert archive_stats(settings)["videos"]["committed"] == 2


def test_a_touched_file_is_hashed_once_not_every_night(tmp_path, clip_pool, hashed):
    drop = tmp_path / "drop"
    clip = _put(clip_pool[0], drop / "v.mp4")
    settings = _settings(tmp_path, ingest_drop_dirs=[drop])
    assert _ingest(settings).added == 1
    st = os.stat(clip)
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    _ingest(settings)  # hashes it once: same bytes, known
    hashed.clear()
    again = _ingest(settings)
    assert again.skipped == 1
    assert hashed == [], "the next night the file is unchanged again and costs a stat, not a full read"


# ---- 3. inputs from the settings ----------------------------------------------------------------
def test_ingest_input_lists_parse_from_comma_separated_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FIRSTSEEN_INGEST_DROP_DIRS", " /srv/drop , /mnt/wire,")
    monkeypatch.setenv("FIRSTSEEN_INGEST_MANIFESTS", "/srv/manifests/nightly.jsonl")
    monkeypatch.setenv("FIRSTSEEN_INGEST_MAX_ATTEMPTS", "5")
    s = get_settings(data_dir=tmp_path / "data")
    assert s.ingest_drop_dirs == [Path("/srv/drop"), Path("/mnt/wire")]
    assert s.ingest_manifests == [Path("/srv/manifests/nightly.jsonl")]
    assert s.ingest_max_attempts == 5
    assert configured_inputs(s) == ([Path("/srv/drop"), Path("/mnt/wire")], [Path("/srv/manifests/nightly.jsonl")])

    monkeypatch.setenv("FIRSTSEEN_INGEST_DROP_DIRS", "")
    monkeypatch.delenv("FIRSTSEEN_INGEST_MANIFESTS")
    s = get_settings(data_dir=tmp_path / "data")
    assert s.ingest_drop_dirs == [] and s.ingest_manifests == []
    with pytest.raises(BadInputError, match="FIRSTSEEN_INGEST_DROP_DIRS"):
        configured_inputs(s)
    monkeypatch.setenv("FIRSTSEEN_INGEST_MAX_ATTEMPTS", "0")
    with pytest.raises(ValueError):
        get_settings(data_dir=tmp_path / "data")


def test_cli_ingest_without_paths_uses_the_configured_inputs(tmp_path, clip_pool, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    code, out, err = _run(capsys, "ingest", "--data-dir", data)
    assert code == 2 and "FIRSTSEEN_INGEST_DROP_DIRS" in err, err
    assert not data.exists() and not (tmp_path / "firstseen-data").exists()

    drop_a, drop_b = tmp_path / "drop-a", tmp_path / "drop-b"
    _put(clip_pool[0], drop_a / "a.mp4")
    _put(clip_pool[1], drop_b / "nested" / "b.mp4")
    manifests = tmp_path / "manifests"
    _put(clip_pool[2], manifests / "summit.mp4")
    manifest = manifests / "nightly.jsonl"
    manifest.write_text(
        json.dumps(
            {"path": "summit.mp4", "external_id": "nww-001", "title": "Summit, day one", "published_at": "2019-06-28"}
        )
        + "\n"
    )
    monkeypatch.setenv("FIRSTSEEN_DATA_DIR", str(data))
    monkeypatch.setenv("FIRSTSEEN_INGEST_DROP_DIRS", f"{drop_a},{drop_b}")
    monkeypatch.setenv("FIRSTSEEN_INGEST_MANIFESTS", str(manifest))
    code, out, err = _run(capsys, "ingest", "--json")
    summary = json.loads(out)
    assert code == 0, err
    assert (summary["added"], summary["failed"], summary["skipped"]) == (3, 0, 0), summary

    with open_archive(data, get_settings().resolved_catalog_url()) as archive:
        videos = {Path(v.path).name: v for v in archive.videos("committed")}
    assert set(videos) == {"a.mp4", "b.mp4", "summit.mp4"}
    summit = videos["summit.mp4"]
    assert (summit.external_id, summit.title) == ("nww-001", "Summit, day one")
    assert summit.published_at == datetime(2019, 6, 28, tzinfo=UTC)

    code, out, _ = _run(capsys, "ingest", "--json")  # the next night: nothing new
    assert code == 0 and (json.loads(out)["added"], json.loads(out)["skipped"]) == (0, 3)


# ---- 4. runs never overlap ----------------------------------------------------------------------
def test_a_run_while_another_writer_holds_the_archive_exits_75(tmp_path, clip_pool, monkeypatch, capsys):
    drop = tmp_path / "drop"
    _put(clip_pool[0], drop / "a.mp4")
    data = tmp_path / "data"
    code, _, err = _run(capsys, "ingest", drop, "--data-dir", data)
    assert code == 0, err
    _put(clip_pool[1], drop / "b.mp4")  # new work, which must wait

    lock = DataDirLock(data)
    lock.acquire()
    try:
        code, out, err = _run(capsys, "ingest", drop, "--data-dir", data)
        assert code == 75 and "skipped" in err and "another writer" in err, (code, err)
        monkeypatch.setenv("FIRSTSEEN_INGEST_DROP_DIRS", str(drop))
        code, out, err = _run(capsys, "nightly", "--once", "--data-dir", data)
        assert code == 75 and "another writer" in err, (code, err)
        with pytest.raises(ArchiveLockedError):
            nightly.run_nightly_once(get_settings(data_dir=data))
    finally:
        lock.release()

    stats = archive_stats(get_settings(data_dir=data))
    assert stats["videos"]["committed"] == 1, "nothing was added while locked out"
    assert len(stats["recent_runs"]) == 1, "a locked-out run leaves no run row"


# ---- 5. nightly --once end to end ---------------------------------------------------------------
def test_nightly_once_ingests_then_builds_then_merges_the_ivf(tmp_path, clip_pool, monkeypatch, capsys):
    drop = tmp_path / "drop"
    for i in range(3):
        _put(clip_pool[i], drop / f"v{i}.mp4")
    data = tmp_path / "data"
    monkeypatch.setenv("FIRSTSEEN_DATA_DIR", str(data))
    monkeypatch.setenv("FIRSTSEEN_INGEST_DROP_DIRS", str(drop))
    monkeypatch.setenv("FIRSTSEEN_INDEX_IVF_MIN_VECTORS", "8")
    monkeypatch.setenv("FIRSTSEEN_INDEX_NLIST", "8")

    code, out, err = _run(capsys, "nightly", "--once")
    assert code == 0, err
    outcome = json.loads(out)
    assert (outcome["ingest"]["added"], outcome["ingest"]["failed"]) == (3, 0)
    index = outcome["index"]
    assert (index["action"], index["kind"]) == ("rebuilt", "ivf"), index
    vectors = index["vectors"]
    assert vectors == outcome["ingest"]["frames"] >= 8 and 1 <= index["nlist"] <= 8

    with monkeypatch.context() as m:  # stats describes the index from its manifest, unloaded
        m.setattr(VectorIndex, "deserialize", classmethod(lambda *a: pytest.fail("stats loaded the index")))
        code, out, _ = _run(capsys, "stats", "--json")
    stats = json.loads(out)
    assert code == 0 and stats["index"]["kind"] == "ivf"
    assert (stats["index"]["main_vectors"], stats["index"]["delta_vectors"]) == (vectors, 0)
    assert (stats["index"]["nlist"], stats["index"]["nprobe"]) == (index["nlist"], index["nprobe"])
    assert stats["index_vectors"] == vectors

    code, out, _ = _run(capsys, "nightly", "--once")  # nothing new: nothing to do
    again = json.loads(out)
    assert code == 0 and again["ingest"]["added"] == 0 and again["index"]["action"] == "none", again

    _put(clip_pool[3], drop / "v3.mp4")
    code, out, err = _run(capsys, "nightly", "--once")
    assert code == 0, err
    third = json.loads(out)
    assert third["ingest"]["added"] == 1
    assert (third["index"]["action"], third["index"]["kind"]) == ("merged", "ivf"), third["index"]
    assert third["index"]["vectors"] == vectors + third["ingest"]["frames"]
    code, out, _ = _run(capsys, "stats", "--json")
    stats = json.loads(out)
    assert stats["index"]["kind"] == "ivf" and stats["index"]["delta_vectors"] == 0
    assert stats["index"]["main_vectors"] == third["index"]["vectors"]

    code, out, _ = _run(capsys, "reindex", "--kind", "flat", "--json")
    report = json.loads(out)
    assert code == 0 and (report["action"], report["kind"], report["vectors"]) == (
        "rebuilt",
        "flat",
        third["index"]["vectors"],
    )
    code, out, _ = _run(capsys, "stats", "--json")
    assert json.loads(out)["index"]["kind"] == "flat"


def test_nightly_once_without_inputs_is_bad_input(tmp_path, monkeypatch, capsys):
    code, _, err = _run(capsys, "nightly", "--once", "--data-dir", tmp_path / "data")
    assert code == 2 and "FIRSTSEEN_INGEST_DROP_DIRS" in err


# ---- 6. scheduler -------------------------------------------------------------------------------
def test_next_run_at():
    tz = timezone(timedelta(hours=2))
    assert nightly.next_run_at(datetime(2024, 5, 1, 1, 59, 59, 900000, tzinfo=tz), "02:00") == datetime(
        2024, 5, 1, 2, 0, tzinfo=tz
    )
    assert nightly.next_run_at(datetime(2024, 5, 1, 2, 0, tzinfo=tz), "02:00") == datetime(
        2024, 5, 2, 2, 0, tzinfo=tz
    ), "strictly after now"
    assert nightly.next_run_at(datetime(2024, 5, 1, 14, 30, tzinfo=tz), "02:00") == datetime(
        2024, 5, 2, 2, 0, tzinfo=tz
    )
    assert nightly.next_run_at(datetime(2024, 12, 31, 23, 59, tzinfo=tz), "23:30") == datetime(
        2025, 1, 1, 23, 30, tzinfo=tz
    ), "year rollover"
    assert nightly.next_run_at(datetime(2024, 2, 28, 23, 0, tzinfo=tz), "00:15") == datetime(
        2024, 2, 29, 0, 15, tzinfo=tz
    ), "leap day"
    assert nightly.next_run_at(datetime(2024, 5, 1, 0, 0, tzinfo=tz), "23:59") == datetime(
        2024, 5, 1, 23, 59, tzinfo=tz
    )


class FakeClock:
    """Real elapsed time on top of a fake start (counted from the first reading, so a slow
    setup cannot push the start past the hour), plus jumps the test makes (a day passing)."""

    def __init__(self, start: datetime):
        self.start, self.t0, self.jumped = start, None, timedelta(0)

    def __call__(self) -> datetime:
        if self.t0 is None:
            self.t0 = time.monotonic()
        return self.start + timedelta(seconds=time.monotonic() - self.t0) + self.jumped

    def jump_to_just_before(self, target: datetime) -> None:
        """A second of margin: the scheduler must read the clock before the hour passes."""
        self.jumped += (target - timedelta(seconds=1)) - self()


@pytest.fixture
def sigterm_guard():
    """run_scheduler installs a SIGTERM handler on the main thread; put pytest's back after."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def _status(data: Path) -> dict:
    return json.loads(DataDir(data).nightly_status.read_text())


@pytest.mark.timeout(60)
def test_scheduler_runs_once_at_the_hour_and_reports_its_status(tmp_path, monkeypatch, sigterm_guard):
    tz = timezone(timedelta(hours=1))
    clock = FakeClock(datetime(2024, 5, 1, 1, 59, 59, 900000, tzinfo=tz))
    settings = get_nightly_settings(data_dir=tmp_path / "data", nightly_at="02:00")
    stop = threading.Event()
    calls: list[dict] = []

    def fake_run(s):
        calls.append({"at": clock(), "status": _status(s.data_dir)})
        stop.set()
        return {"ingest": {"added": 1, "failed": 0}, "index": {"action": "none"}}

    monkeypatch.setattr(nightly, "run_nightly_once", fake_run)
    started = time.monotonic()
    nightly.run_scheduler(settings, stop=stop, clock=clock)
    assert time.monotonic() - started < 10
    assert len(calls) == 1
    assert calls[0]["at"] >= datetime(2024, 5, 1, 2, 0, tzinfo=tz), "not before the hour"
    assert calls[0]["status"]["state"] == "running"
    assert calls[0]["status"]["next_run_at"] == datetime(2024, 5, 1, 2, 0, tzinfo=tz).isoformat()
    status = _status(settings.data_dir)
    assert status["state"] == "stopped"
    assert status["last_run"]["status"] == "ok" and status["last_run"]["ingest"]["added"] == 1
    assert "wall_s" in status["last_run"] and status["last_run_at"]
    assert nightly.healthy(settings)[0], "just written"


@pytest.mark.timeout(60)
def test_scheduler_records_a_locked_out_or_failed_run_and_goes_on(tmp_path, monkeypatch, sigterm_guard):
    tz = UTC
    clock = FakeClock(datetime(2024, 5, 1, 1, 59, 59, 900000, tzinfo=tz))
    settings = get_nightly_settings(data_dir=tmp_path / "data", nightly_at="02:00")
    stop = threading.Event()
    calls: list[dict] = []

    def fake_run(s):
        calls.append({"at": clock(), "status": _status(s.data_dir)})
        if len(calls) < 3:
            clock.jump_to_just_before(datetime(2024, 5, 1 + len(calls), 2, 0, tzinfo=tz))
        if len(calls) == 1:
            raise ArchiveLockedError("another writer (pid 1) is using the archive")
        if len(calls) == 2:
            raise BadInputError("nothing to ingest")
        stop.set()
        return {"ingest": {"added": 0}}

    monkeypatch.setattr(nightly, "run_nightly_once", fake_run)
    nightly.run_scheduler(settings, stop=stop, clock=clock)
    assert len(calls) == 3
    assert [c["at"].date().day for c in calls] == [1, 2, 3], "one run a night"
    assert all(c["at"].time() >= datetime(2024, 1, 1, 2, 0).time() for c in calls)
    # Each run sees the previous one's outcome in the status file.
    assert calls[1]["status"]["last_run"]["status"] == "skipped"
    assert "another writer" in calls[1]["status"]["last_run"]["reason"]
    assert calls[2]["status"]["last_run"]["status"] == "failed"
    status = _status(settings.data_dir)
    assert status["state"] == "stopped" and status["last_run"]["status"] == "ok"


@pytest.mark.timeout(60)
def test_sigterm_stops_a_waiting_scheduler(tmp_path, sigterm_guard):
    signal.signal(signal.SIGTERM, lambda *_: None)  # never let a stray SIGTERM kill pytest
    settings = get_nightly_settings(data_dir=tmp_path / "data", nightly_at="02:00")
    clock = FakeClock(datetime(2024, 5, 1, 3, 0, tzinfo=UTC))  # the next run is 23 h away
    status_path = DataDir(settings.data_dir).nightly_status

    def send_when_waiting():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if json.loads(status_path.read_text()).get("state") == "waiting":
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=send_when_waiting, daemon=True)
    sender.start()
    started = time.monotonic()
    nightly.run_scheduler(settings, clock=clock)
    sender.join(5)
    assert time.monotonic() - started < 20
    status = _status(settings.data_dir)
    assert status["state"] == "stopped" and "last_run" not in status
    assert status["next_run_at"] == datetime(2024, 5, 2, 2, 0, tzinfo=UTC).isoformat()


def test_healthcheck_follows_the_status_file(tmp_path, capsys):
    settings = get_settings(data_dir=tmp_path / "data")
    ok, why = nightly.healthy(settings)
    assert not ok and "no readable status" in why
    code, out, _ = _run(capsys, "nightly", "--healthcheck", "--data-dir", settings.data_dir)
    assert code == 1

    nightly.StatusFile(settings.data_dir).update(state="waiting", next_run_at="2024-05-02T02:00:00+00:00")
    ok, why = nightly.healthy(settings)
    assert ok and "waiting" in why
    code, out, _ = _run(capsys, "nightly", "--healthcheck", "--data-dir", settings.data_dir)
    assert code == 0 and "waiting" in out

    stale = datetime.now().astimezone() - timedelta(seconds=nightly.HEALTHY_WITHIN_S + 60)
    path = DataDir(settings.data_dir).nightly_status
    path.write_text(json.dumps({"state": "waiting", "updated_at": stale.isoformat()}))
    ok, why = nightly.healthy(settings)
    assert not ok and "ago" in why
    assert nightly.healthy(settings, within_s=3600)[0]
    code, _, _ = _run(capsys, "nightly", "--healthcheck", "--data-dir", settings.data_dir)
    assert code == 1

    path.write_text("{not json")
    assert not nightly.healthy(settings)[0]
    code, _, _ = _run(capsys, "nightly", "--healthcheck", "--data-dir", settings.data_dir)
    assert code == 1


def test_a_shared_nightly_run_goes_through_the_job_ledger(tmp_path, clip_pool, monkeypatch, capsys):
    from firstseen.storage.job_ledger import JobCounts, SqlJobLedger

    drop = tmp_path / "drop"
    for i in range(2):
        _put(clip_pool[i], drop / f"v{i}.mp4")
    data = tmp_path / "data"
    monkeypatch.setenv("FIRSTSEEN_DATA_DIR", str(data))
    monkeypatch.setenv("FIRSTSEEN_INGEST_DROP_DIRS", str(drop))
    monkeypatch.setenv("FIRSTSEEN_INGEST_SHARED", "true")
    code, out, err = _run(capsys, "nightly", "--once")
    assert code == 0, err
    assert json.loads(out)["ingest"]["added"] == 2
    code, out, err = _run(capsys, "nightly", "--once")  # the same files again: queued once, done
    assert code == 0 and json.loads(out)["ingest"]["added"] == 0, err
    assert json.loads(out)["index"]["action"] == "none"  # maintained, not mistaken for an empty archive
    ledger = SqlJobLedger.open(f"sqlite:///{data / 'catalog.sqlite'}")
    try:
        assert ledger.counts() == JobCounts(committed=2)
    finally:
        ledger.close()
