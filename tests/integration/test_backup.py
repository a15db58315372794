"""Backup and restore of a real archive: the round trip (SQLite and PostgreSQL targets), search
during a backup, interrupted backups and restores, and what a restore refuses."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_archive

from firstseen.archive import DataDirLock, open_archive
from firstseen.errors import ArchiveLockedError, BadInputError
from firstseen.ops import backup as backup_module
from firstseen.ops.backup import backup_archive, restore_archive
from firstseen.search.searcher import Searcher
from firstseen.settings import get_settings
from firstseen.storage.catalog import SqlCatalog
from firstseen.storage.index_store import IndexStore
from firstseen.storage.stored_searches import SearchStore
from firstseen.storage.text_store import TextSpan, TextStore

pytestmark = pytest.mark.slow  # the small archive is ingested from real footage

# A link as ingest records them (cockatoo's footage also in diver), so copy links round-trip.
LINK_SEGMENT = {
    "query_start": 0.0,
    "query_end": 30.0,
    "source_start": 0.0,
    "source_end": 30.0,
    "speed": 1.0,
    "reversed": False,
    "mirrored": False,
    "score": 0.9,
    "timing_known": True,
    "evidence": {
        "pairs_checked": 2,
        "pairs_verified": 2,
        "inliers": 90,
        "mirror_decided": False,
        "mirrored": False,
        "region": None,
        "query_in_source": None,
        "source_in_query": None,
    },
}

DATETIME_COLUMNS = {
    "started_at",
    "finished_at",
    "published_at",
    "ingested_at",
    "copies_linked_at",
    "created_at",
    "first_failed_at",
    "last_failed_at",
    "quarantined_at",
    "read_at",
}


def _settings(data_dir: Path, catalog_url: str | None = None, **overrides):
    return get_settings(data_dir=data_dir, catalog_url=catalog_url, onnx_threads=1, lock_wait_s=0, **overrides)


def _source(small_archive: dict, tmp_path: Path):
    """A private copy of the small archive, with one copy link added."""
    settings = _settings(copy_archive(small_archive, tmp_path / "src"))
    with SqlCatalog.open(settings.resolved_catalog_url()) as catalog:
        by_path = {Path(v.path).name: v.video_id for v in catalog.videos()}
        catalog.links.add_copy_link(by_path["cockatoo.mp4"], by_path["diver.mov"], 0.9, [LINK_SEGMENT])
        TextStore(catalog).replace_video_text(
            by_path["vtest.avi"],
            [TextSpan(by_path["vtest.avi"], 2.0, 6.0, "ВЛАДИВОСТОК 2019", 91.0, {})],
            reader="test",
            frames_read=4,
        )
    frame = np.full((36, 64, 3), 120, np.uint8)
    SearchStore(settings.data_dir / "searches").save(
        {"matches": [], "earliest": None},
        {"sha256": "0" * 64},
        {1.5: frame},
        owner="open",
        searched_at="2026-12-02T00:00:00",
    )
    return settings


def _catalog_state(settings) -> dict:
    with SqlCatalog.open(settings.resolved_catalog_url()) as catalog:
        videos = catalog.videos()
        frame_ids = [i for v in videos for i in v.frame_ids]
        return {
            "videos": videos,
            "links": {v.video_id: catalog.links.copy_links(v.video_id) for v in videos},
            "runs": catalog.run_log.runs(limit=1000),
            "frames": catalog.resolve_frames(frame_ids),
            "meta": {k: catalog.get_meta(k) for k in ("descriptor", "next_frame_id")},
        }


def _index_state(settings) -> tuple:
    manifest = IndexStore(settings.data_dir / "index").read_manifest()
    return manifest.checkpoint, manifest.count, manifest.files


def _file_hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _verify(settings) -> list[str]:
    with open_archive(settings.data_dir, settings.resolved_catalog_url()) as archive:
        return archive.verify()


def _partials(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.partial-*"))


def test_round_trip_restores_the_same_archive(small_archive, tmp_path, catalog_url):
    source = _source(small_archive, tmp_path)
    report = backup_archive(source, tmp_path / "backup")
    meta = json.loads((tmp_path / "backup" / "backup.json").read_text())
    assert meta["format"] == 1 and meta["videos"] == report.videos == 3 and meta["alembic_revision"]
    assert set(meta["files"]) == set(_file_hashes(tmp_path / "backup")) - {"backup.json"}
    assert meta["files"] == {rel: h for rel, h in _file_hashes(tmp_path / "backup").items() if rel != "backup.json"}
    assert sum(rel.startswith("vectors/") for rel in meta["files"]) == 3
    assert report.linked == report.files - sum(rel.startswith("catalog/") for rel in meta["files"])
    assert report.to_dict()["dest"] == str(tmp_path / "backup")

    target = _settings(tmp_path / "data", catalog_url)
    restored = restore_archive(target, tmp_path / "backup")
    assert restored.problems == [] and _verify(target) == []
    assert (restored.videos, restored.frames, restored.checkpoint) == (3, meta["frames"], meta["checkpoint"])
    before, after = _catalog_state(source), _catalog_state(target)
    assert [(v.video_id, v.title, v.published_at, v.frame_count) for v in after["videos"]] == [
        (v.video_id, v.title, v.published_at, v.frame_count) for v in before["videos"]
    ]
    assert after == before
    assert sum(len(links) for links in after["links"].values()) == 2  # the link, stored both ways
    assert _index_state(target) == _index_state(source)
    with SqlCatalog.open(target.resolved_catalog_url()) as catalog:  # on-screen text, its full-text index rebuilt
        assert [s.text for s in TextStore(catalog).search("Владивосток")] == ["ВЛАДИВОСТОК 2019"]
    kept = [p.name for p in (source.data_dir / "searches").iterdir()]
    assert [p.name for p in (target.data_dir / "searches").iterdir()] == kept and len(kept) == 1
    assert SearchStore(target.data_dir / "searches").get(kept[0], owner="open").query_frame(1.5).shape == (36, 64, 3)

    with Searcher(source) as searcher:
        expected = searcher.search(small_archive["mirrored"], top_k=5).to_dict()
    with Searcher(target) as searcher:
        assert searcher.search(small_archive["mirrored"], top_k=5).to_dict() == expected
    assert expected["verdict"] == "match" and any(m["via"] for m in expected["matches"])  # the link is used

    # A backup of the restored archive (from PostgreSQL in one case) holds the same rows and files.
    again = backup_archive(target, tmp_path / "backup2")
    meta2 = json.loads((tmp_path / "backup2" / "backup.json").read_text())
    assert meta2["catalog_dialect"] == restored.catalog_dialect and meta2["tables"] == meta["tables"]
    assert {k: v for k, v in meta2["files"].items() if not k.startswith("catalog/")} == {
        k: v for k, v in meta["files"].items() if not k.startswith("catalog/")
    }
    assert (again.checkpoint, again.videos, again.frames) == (report.checkpoint, report.videos, report.frames)
    for table in meta["tables"]:
        rows = [
            list(backup_module._rows(folder / "catalog" / f"{table}.jsonl.gz", DATETIME_COLUMNS))
            for folder in (tmp_path / "backup", tmp_path / "backup2")
        ]
        assert rows[0] == rows[1], table

    # The serial ids came along with their rows: new ones must not collide with them.
    with SqlCatalog.open(target.resolved_catalog_url()) as catalog:
        assert catalog.run_log.start_run({}) > max(r.run_id for r in before["runs"])
        videos = [v.video_id for v in before["videos"]]
        catalog.links.add_copy_link(videos[0], videos[2], 0.5, [LINK_SEGMENT])


def test_backup_while_a_reader_searches_and_a_writer_waits(small_archive, tmp_path, monkeypatch):
    source = _source(small_archive, tmp_path)
    searcher = Searcher(source)
    verdicts: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                verdicts.append(searcher.search(small_archive["reversed"], top_k=3).verdict)
            except BaseException as exc:  # noqa: BLE001 - the test reports any failure
                errors.append(exc)
                return

    seen: dict = {}
    place = backup_module._place_file

    def place_while_watched(src, dst):
        if not seen:  # first file: the lock is held; let a whole search run inside the backup
            seen["start"] = len(verdicts)
            try:
                DataDirLock(source.data_dir).acquire(wait_s=0)
                seen["writer"] = "got the lock"
            except ArchiveLockedError:
                seen["writer"] = "refused"
            deadline = time.monotonic() + 120
            while len(verdicts) <= seen["start"] and not errors and time.monotonic() < deadline:
                time.sleep(0.05)
            seen["during"] = len(verdicts) - seen["start"]
        return place(src, dst)

    monkeypatch.setattr(backup_module, "_place_file", place_while_watched)
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        report = backup_archive(source, tmp_path / "backup")
    finally:
        stop.set()
        thread.join(timeout=120)
        searcher.close()
    assert errors == []
    assert seen["writer"] == "refused" and seen["during"] >= 1
    assert verdicts and set(verdicts) == {"match"}
    assert report.videos == 3 and (tmp_path / "backup" / "backup.json").exists()
    lock = DataDirLock(source.data_dir)
    lock.acquire(wait_s=0)  # released after the backup
    lock.release()


def test_interrupted_backup_leaves_nothing_and_the_archive_intact(small_archive, tmp_path, monkeypatch):
    source = _source(small_archive, tmp_path)
    files_before, catalog_before = (
        _file_hashes(source.data_dir / "vectors") | _file_hashes(source.data_dir / "index"),
        _catalog_state(source),
    )
    calls = []
    place = backup_module._place_file

    def place_then_interrupt(src, dst):
        calls.append(src)
        if len(calls) == 4:  # past the index files, amid the raw vectors
            raise KeyboardInterrupt
        return place(src, dst)

    monkeypatch.setattr(backup_module, "_place_file", place_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        backup_archive(source, tmp_path / "backup")
    assert len(calls) == 4
    assert not (tmp_path / "backup").exists() and _partials(tmp_path) == []
    assert _file_hashes(source.data_dir / "vectors") | _file_hashes(source.data_dir / "index") == files_before
    assert _catalog_state(source) == catalog_before and _verify(source) == []
    monkeypatch.undo()
    assert backup_archive(source, tmp_path / "backup").videos == 3  # the lock was released


def test_interrupted_restore_can_be_run_again(small_archive, tmp_path, monkeypatch, catalog_url):
    source = _source(small_archive, tmp_path)
    backup_archive(source, tmp_path / "backup")
    target = _settings(tmp_path / "data", catalog_url)
    rows = backup_module._rows

    def rows_then_interrupt(path, datetimes):
        for i, row in enumerate(rows(path, datetimes)):
            if path.name.startswith("frames") and i == 10:  # other tables' rows are already inserted
                raise KeyboardInterrupt
            yield row

    monkeypatch.setattr(backup_module, "_rows", rows_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        restore_archive(target, tmp_path / "backup")
    assert not (target.data_dir / "index").exists() and not (target.data_dir / "vectors").exists()
    with SqlCatalog.open(target.resolved_catalog_url()) as catalog:
        assert catalog.videos() == [] and catalog.run_log.runs() == []
    monkeypatch.undo()
    assert restore_archive(target, tmp_path / "backup").problems == []
    assert _catalog_state(target) == _catalog_state(source) and _verify(target) == []


def test_restore_refuses_a_used_target_or_a_damaged_backup(small_archive, tmp_path):
    source = _source(small_archive, tmp_path)
    backup = tmp_path / "backup"
    backup_archive(source, backup)

    stray = tmp_path / "used" / "notes.txt"
    stray.parent.mkdir()
    stray.write_text("keep me")
    with pytest.raises(BadInputError, match="not empty"):
        restore_archive(_settings(stray.parent), backup)
    assert sorted(p.name for p in stray.parent.iterdir()) == ["notes.txt"]

    # An empty data dir whose catalog already holds videos (the source's own).
    fresh = _settings(tmp_path / "fresh", source.resolved_catalog_url())
    with pytest.raises(BadInputError, match="catalog is not empty"):
        restore_archive(fresh, backup)
    assert sorted(p.name for p in fresh.data_dir.iterdir()) == ["ingest.lock"]
    assert len(_catalog_state(source)["videos"]) == 3

    # Flip a byte in one raw vectors file. The backup's files are hard links to the archive's,
    # so the damaged copy is written as a new file rather than in place.
    victim = sorted((backup / "vectors").iterdir())[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.unlink()
    victim.write_bytes(bytes(data))
    target = _settings(tmp_path / "data")
    with pytest.raises(BadInputError, match=f"damaged.*vectors/{victim.name}"):
        restore_archive(target, backup)
    assert not target.data_dir.exists()
    assert _verify(source) == []

    meta = json.loads((backup / "backup.json").read_text())
    (backup / "backup.json").write_text(json.dumps(meta | {"format": 99}))
    with pytest.raises(BadInputError, match="format 1"):
        restore_archive(target, backup)
    (backup / "backup.json").unlink()
    with pytest.raises(BadInputError, match="not a FirstSeen backup"):
        restore_archive(target, backup)
    assert not target.data_dir.exists()


def test_backup_refuses_an_existing_dest_or_no_archive(small_archive, tmp_path):
    source = _source(small_archive, tmp_path)
    dest = tmp_path / "backup"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    with pytest.raises(BadInputError, match="already exists"):
        backup_archive(source, dest)
    assert [p.name for p in dest.iterdir()] == ["mine.txt"] and _partials(tmp_path) == []
    with pytest.raises(BadInputError, match="no archive"):
        backup_archive(_settings(tmp_path / "nothing"), tmp_path / "backup2")
    assert not (tmp_path / "backup2").exists()
