"""`firstseen ingest / stats / remove` end to end: bad inputs isolated, idempotent, both catalogs."""

from __future__ import annotations

import json

import pytest
from clips import make_audio_only, make_clip, make_distinct_clip, make_truncated

from cli.main import main
from firstseen.archive import DataDirLock


@pytest.fixture
def drop(tmp_path):
    """A nightly drop folder: three good clips and every kind of bad file, plus a manifest
    with good and bad lines."""
    folder = tmp_path / "drop"
    (folder / "sub").mkdir(parents=True)
    for seed in range(2):
        make_distinct_clip(folder / f"good{seed}.mp4", seed)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is a text file, not a video\n")
    make_audio_only(folder / "sub" / "radio.mp4")
    whole = make_clip(tmp_path / "whole.mkv", fps=25, seconds=6.0)
    make_truncated(whole, folder / "sub" / "cut.mkv", 0.4)
    (folder / "README.txt").write_text("ignored: not a video extension")

    manifests = tmp_path / "manifests"
    manifests.mkdir()
    make_distinct_clip(manifests / "summit.mp4", 7)
    lines = [
        {
            "path": "summit.mp4",
            "external_id": "nww-2019-0628-001",
            "title": "Summit, day one",
            "source": "Northwind Wire",
            "published_at": "2019-06-28",
            "location": "Osaka",
        },
        {"path": "summit.mp4", "external_id": "bad-date", "published_at": "2019-13-45"},
        {"title": "no path"},
        {"path": "summit.mp4", "external_id": "future", "published_at": "2999-01-01"},
        {"path": "missing.mp4", "external_id": "gone"},
    ]
    manifest = manifests / "tonight.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return folder, manifest


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main(list(map(str, args)))
    out, err = capsys.readouterr()
    return code, out, err


def test_bad_inputs_are_reported_and_the_rest_ingested(drop, tmp_path, capsys, catalog_url, monkeypatch):
    monkeypatch.setenv("FIRSTSEEN_CATALOG_URL", catalog_url)
    folder, manifest = drop
    data = tmp_path / "data"
    code, out, err = _run(capsys, "ingest", folder, "--manifest", manifest, "--data-dir", data, "--json")
    summary = json.loads(out)
    assert code == 2, "failures make a non-zero exit"
    assert (summary["added"], summary["skipped"]) == (3, 0)
    reasons = {(e["path"].rsplit("/", 1)[-1], e["line"]): e["reason"] for e in summary["errors"]}
    assert reasons.keys() == {
        ("empty.mp4", None),
        ("notes.mp4", None),
        ("radio.mp4", None),
        ("cut.mkv", None),
        ("tonight.jsonl", 2),
        ("tonight.jsonl", 3),
        ("tonight.jsonl", 4),
        ("tonight.jsonl", 5),
    }
    assert "empty file" in reasons[("empty.mp4", None)]
    assert "not a video" in reasons[("notes.mp4", None)]
    assert "audio-only" in reasons[("radio.mp4", None)]
    assert "truncated" in reasons[("cut.mkv", None)]
    assert "published_at" in reasons[("tonight.jsonl", 2)] and "path" in reasons[("tonight.jsonl", 3)]
    assert "future" in reasons[("tonight.jsonl", 4)] and "not found" in reasons[("tonight.jsonl", 5)]
    assert summary["failed"] == 8 and summary["frames"] > 0 and summary["footage_hours"] > 0

    # A nightly re-run over the same inputs decodes nothing and adds nothing.
    code, out, _ = _run(capsys, "ingest", folder, "--manifest", manifest, "--data-dir", data, "--json")
    again = json.loads(out)
    assert code == 2 and (again["added"], again["skipped"], again["failed"]) == (0, 3, 8)

    code, out, _ = _run(capsys, "stats", "--data-dir", data, "--json")
    stats = json.loads(out)
    assert code == 0 and stats["videos"]["committed"] == 3
    assert stats["index_vectors"] == stats["frames"] == summary["frames"]
    assert stats["descriptor"].startswith("sscd/") and stats["last_run"]["skipped"] == 3

    code, out, _ = _run(capsys, "remove", "nww-2019-0628-001", "--data-dir", data)
    assert code == 0 and "removed" in out
    code, out, _ = _run(capsys, "stats", "--data-dir", data, "--json")
    after = json.loads(out)
    assert after["videos"]["committed"] == 2 and after["index_vectors"] == after["frames"] < stats["frames"]
    code, _, err = _run(capsys, "remove", "nww-2019-0628-001", "--data-dir", data)
    assert code == 2 and "no video" in err


def test_refuses_a_second_writer(drop, tmp_path, capsys):
    folder, _ = drop
    data = tmp_path / "data"
    lock = DataDirLock(data)
    lock.acquire()
    try:
        code, _, err = _run(capsys, "ingest", folder, "--data-dir", data)
    finally:
        lock.release()
    assert code == 75 and "another writer" in err  # EX_TEMPFAIL: schedulers read it as "skipped"


def test_another_descriptor_on_the_same_archive_is_a_clear_error(drop, tmp_path, capsys, monkeypatch):
    folder, _ = drop
    data = tmp_path / "data"
    assert _run(capsys, "ingest", folder / "good0.mp4", "--data-dir", data)[0] == 0
    monkeypatch.setenv("FIRSTSEEN_DESCRIPTOR", "pdq")
    code, _, err = _run(capsys, "ingest", folder / "good1.mp4", "--data-dir", data)
    assert code == 1 and "built with descriptor" in err


def test_usage_errors(tmp_path, capsys):
    assert _run(capsys, "ingest", "--data-dir", tmp_path)[0] == 2
    code, _, err = _run(capsys, "stats", "--data-dir", tmp_path / "nothing-here")
    assert code == 2 and "no archive" in err
