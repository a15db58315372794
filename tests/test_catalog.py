"""Catalog tests, each run on SQLite and on the PostgreSQL server named by FIRSTSEEN_TEST_PG_URL."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

import firstseen.storage.failures  # noqa: F401 - its table lives on the same Base
import firstseen.storage.text_store  # noqa: F401 - so do on-screen text's
from firstseen.storage.catalog import (
    Base,
    CatalogStats,
    DuplicateVideoError,
    SqlCatalog,
    VideoNotFoundError,
    VideoRecord,
)
from firstseen.errors import FirstSeenError
from firstseen.records import VideoMetadata

PG_URL = os.environ.get("FIRSTSEEN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TABLES = {"videos", "frames", "copy_links", "ingest_runs", "archive_meta", "alembic_version", "ingest_failures",
          "onscreen_text", "text_passes"}

@pytest.fixture
def catalog(catalog_url):
    cat = SqlCatalog.open(catalog_url)
    yield cat
    cat.close()


def _sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _add(cat: SqlCatalog, name: str, n: int = 5, *, external_id: str | None = None, sha: str | None = None,
         run_id: int | None = None, published_at: datetime | None = None) -> VideoRecord:  # fmt: skip
    return cat.add_pending_video(
        VideoMetadata(path=Path(f"/footage/{name}.mp4"), external_id=external_id, title=f"Title {name}",
                      source="AP", published_at=published_at, uri=f"https://x/{name}", location="Kyiv"),
        video_id=name, sha256=sha or _sha(name), duration_s=n * 1.0, width=640, height=360,
        codec="h264", descriptor="sscd", frame_pts=np.arange(n, dtype=np.float64) + 0.5, run_id=run_id,
    )  # fmt: skip


def _count(cat: SqlCatalog, table: str) -> int:
    with cat.engine.connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def test_migrations_create_schema_and_are_idempotent(catalog_url):
    with SqlCatalog.open(catalog_url) as cat:
        assert TABLES <= set(inspect(cat.engine).get_table_names())
        cat.set_meta("descriptor", "sscd")
        with cat.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0004"
            if conn.dialect.name == "sqlite":
                pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
                assert (pragma("foreign_keys"), pragma("journal_mode"), pragma("synchronous")) == (1, "wal", 2)
                assert pragma("busy_timeout") > 0
    with SqlCatalog.open(catalog_url) as cat:  # a second open migrates nothing and loses nothing
        assert cat.get_meta("descriptor") == "sscd"
        assert _count(cat, "alembic_version") == 1


def test_models_match_migrations(catalog):
    with catalog.engine.connect() as conn:
        # the full-text index (FTS5 tables, a tsvector expression index) is DDL the models do not hold
        derived = lambda obj, name, kind, reflected, _: not (name or "").startswith(("onscreen_text_fts",  # noqa: E731
                                                                                      "ix_onscreen_text_fts"))
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": derived})
        assert compare_metadata(context, Base.metadata) == []


def test_lifecycle_add_find_commit_remove(catalog):
    run_id = catalog.start_run({})
    video = _add(catalog, "a", 4, external_id="AP-1", run_id=run_id)
    assert video.status == "pending" and video.frame_count == 4 and video.run_id == run_id
    assert catalog.find_by_sha256(_sha("a")) == video
    assert catalog.find_by_sha256(_sha("a").upper()) == video
    assert catalog.find_by_sha256(_sha("zz")) is None
    assert catalog.get_video("a") == video == catalog.get_video("AP-1")
    assert catalog.get_video("nope") is None
    assert video.path == "/footage/a.mp4" and video.title == "Title a" and video.location == "Kyiv"
    assert [v.video_id for v in catalog.videos("pending")] == ["a"] and catalog.videos("committed") == []
    assert catalog.resolve_frames(video.frame_ids) == {}  # pending: invisible to search

    catalog.mark_committed(["a"], 3)
    committed = catalog.get_video("a")
    assert committed.status == "committed" and committed.committed_checkpoint == 3
    catalog.mark_committed(["a"], 9)  # recovery may repeat it: the first checkpoint stays
    assert catalog.get_video("a").committed_checkpoint == 3
    assert catalog.resolve_frames(video.frame_ids) == {
        fid: ("a", i + 0.5) for i, fid in enumerate(video.frame_ids)
    }

    assert catalog.mark_removing("a").status == "removing"
    assert catalog.resolve_frames(video.frame_ids) == {}
    assert [v.video_id for v in catalog.videos("removing")] == ["a"]
    with pytest.raises(FirstSeenError):
        catalog.mark_committed(["a"], 4)
    assert catalog.delete_video("a") is True
    assert catalog.get_video("a") is None and catalog.find_by_sha256(_sha("a")) is None
    assert _count(catalog, "frames") == 0
    assert catalog.delete_video("a") is False
    with pytest.raises(VideoNotFoundError):
        catalog.mark_removing("a")
    with pytest.raises(ValueError):
        catalog.videos("bogus")


def test_mark_committed_is_all_or_nothing(catalog):
    _add(catalog, "a")
    with pytest.raises(VideoNotFoundError):
        catalog.mark_committed(["a", "missing"], 1)
    assert catalog.get_video("a").status == "pending"
    catalog.mark_committed([], 1)  # nothing to do is not an error


def test_frame_ids_contiguous_and_never_reused(catalog):
    a = _add(catalog, "a", 5)
    empty = _add(catalog, "e", 0)
    b = _add(catalog, "b", 7)
    assert (a.first_frame_id, empty.first_frame_id, b.first_frame_id) == (0, 5, 5)
    assert list(b.frame_ids) == list(range(5, 12))
    assert catalog.get_meta("next_frame_id") == "12"
    with catalog.engine.connect() as conn:
        query = text("SELECT frame_id, pts_s FROM frames WHERE video_id = 'b' ORDER BY frame_id")
        assert conn.execute(query).all() == [(5 + i, i + 0.5) for i in range(7)]

    catalog.mark_removing("b")
    catalog.delete_video("b")  # the newest range: a reusing counter would hand it out again
    c = _add(catalog, "c", 3)
    assert c.first_frame_id == 12
    assert [v.video_id for v in catalog.videos()] == ["a", "e", "c"]  # ordered by first frame id


def test_add_10k_frames_is_fast(catalog):
    start = time.perf_counter()
    video = _add(catalog, "long", 10_000)
    elapsed = time.perf_counter() - start
    assert video.frame_count == 10_000 and _count(catalog, "frames") == 10_000
    assert elapsed < 2.0, f"adding 10k frames took {elapsed:.2f}s"  # ~0.1 s here; slack for busy CI


def test_concurrent_writers_get_disjoint_ranges(catalog, catalog_url):
    other = SqlCatalog.open(catalog_url)
    errors: list[BaseException] = []

    def worker(cat: SqlCatalog, prefix: str) -> None:
        try:
            for i in range(5):
                _add(cat, f"{prefix}{i}", 10)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(cat, p)) for cat, p in ((catalog, "x"), (other, "y"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert errors == []
    ids = sorted(fid for v in catalog.videos() for fid in v.frame_ids)
    assert ids == list(range(100))


def test_resolve_frames_committed_only_and_many_ids(catalog):
    a = _add(catalog, "a", 2000)
    b = _add(catalog, "b", 1500)
    catalog.mark_committed(["a"], 1)
    wanted = [np.int64(i) for i in range(500, 3500)]  # FAISS hands back numpy ints
    got = catalog.resolve_frames(wanted + [10**9, -1, 600])
    assert got == {fid: ("a", fid - a.first_frame_id + 0.5) for fid in range(500, 2000)}
    assert all(type(k) is int for k in got)
    catalog.mark_committed(["b"], 2)
    got = catalog.resolve_frames(range(500, 3500))
    assert len(got) == 3000 and got[3499] == ("b", 3499 - b.first_frame_id + 0.5)
    assert catalog.resolve_frames([]) == {}


def test_timestamps_round_trip_exactly(catalog):
    pts = np.array([0.0, 0.1, 1 / 3, np.pi, 12345.678901234567])
    video = catalog.add_pending_video(
        VideoMetadata(path=Path("p.mp4")), video_id="p", sha256=_sha("p"), duration_s=12346.0,
        width=1, height=1, codec="vp9", descriptor="pdq", frame_pts=pts, run_id=None,
    )  # fmt: skip
    catalog.mark_committed(["p"], 1)
    got = catalog.resolve_frames(video.frame_ids)
    assert [got[fid][1] for fid in video.frame_ids] == pts.tolist()
    with pytest.raises(ValueError):
        catalog.add_pending_video(
            VideoMetadata(path=Path("q.mp4")), video_id="q", sha256=_sha("q"), duration_s=1.0,
            width=1, height=1, codec="vp9", descriptor="pdq", frame_pts=np.array([0.0, np.nan]), run_id=None,
        )  # fmt: skip


def test_duplicates_rejected_and_nothing_half_written(catalog):
    _add(catalog, "a", 5, external_id="AP-1")
    before = (_count(catalog, "videos"), _count(catalog, "frames"), catalog.get_meta("next_frame_id"))
    with pytest.raises(DuplicateVideoError) as info:
        _add(catalog, "b", 5, sha=_sha("a"))
    assert info.value.field == "sha256" and info.value.existing_video_id == "a"
    with pytest.raises(DuplicateVideoError) as info:
        _add(catalog, "c", 5, external_id="AP-1")
    assert info.value.field == "external_id"
    with pytest.raises(DuplicateVideoError) as info:
        _add(catalog, "a", 5, sha=_sha("other"))
    assert info.value.field == "video_id"
    assert (_count(catalog, "videos"), _count(catalog, "frames"), catalog.get_meta("next_frame_id")) == before
    with pytest.raises(ValueError):
        _add(catalog, "d", 5, sha="not-a-hash")
    assert _add(catalog, "d", 2).first_frame_id == 5  # a failed add consumed no ids


def test_copy_links_both_directions_and_cascade(catalog):
    for name in ("a", "b", "c"):
        _add(catalog, name, 3)
    catalog.mark_committed(["a", "b", "c"], 1)
    segment = {"query_start": 1.0, "query_end": 3.0, "source_start": 10.0, "source_end": 14.0,
               "speed": 2.0, "reversed": False, "mirrored": True, "score": 0.8}  # fmt: skip
    catalog.add_copy_link("a", "b", 0.5, [segment])
    catalog.add_copy_link("a", "b", 0.9, [segment])  # recomputed: replaces, does not duplicate
    catalog.add_copy_link("c", "a", 0.7, [])
    [ab, ac] = catalog.copy_links("a")
    assert (ab.other_video_id, ab.score, ab.segments) == ("b", 0.9, [segment])
    assert (ac.other_video_id, ac.score) == ("c", 0.7)
    assert ab.created_at.tzinfo is not None
    [ba] = catalog.copy_links("b")
    assert ba.video_id == "b" and ba.other_video_id == "a" and ba.score == 0.9
    assert ba.segments == [{**segment, "query_start": 10.0, "query_end": 14.0, "source_start": 1.0,
                            "source_end": 3.0, "speed": 0.5}]  # fmt: skip
    assert catalog.stats().copy_links == 2
    with pytest.raises(ValueError):
        catalog.add_copy_link("a", "a", 1.0, [])

    catalog.mark_removing("b")
    catalog.delete_video("b")
    assert [link.other_video_id for link in catalog.copy_links("a")] == ["c"]
    with catalog.engine.begin() as conn:  # the schema's ON DELETE CASCADE, not only delete_video's
        conn.execute(text("DELETE FROM videos WHERE video_id = 'c'"))
    assert catalog.copy_links("a") == [] and _count(catalog, "copy_links") == 0
    assert _count(catalog, "frames") == 3


def test_runs_and_stale_runs(catalog):
    first = catalog.start_run({"manifest": "/m.jsonl", "fps": 1.0})
    [run] = catalog.runs()
    assert (run.run_id, run.status, run.finished_at, run.errors) == (first, "running", None, [])
    assert run.params == {"manifest": "/m.jsonl", "fps": 1.0} and run.started_at.tzinfo is not None
    errors = [{"path": "x.mp4", "line": 3, "reason": "not a video"}]
    counts = {"added": 2, "skipped": 1, "failed": 1, "footage_s": 12.5, "frames": 13}
    catalog.finish_run(first, status="ok", errors=errors, **counts)
    done = catalog.runs()[0]
    assert done.status == "ok" and {k: getattr(done, k) for k in counts} == counts
    assert done.errors == errors and done.finished_at >= done.started_at
    with pytest.raises(ValueError):
        catalog.finish_run(first, status="running", errors=[], **counts)

    second = catalog.start_run({})
    assert catalog.mark_stale_runs_crashed() == 1
    assert [(r.run_id, r.status) for r in catalog.runs()] == [(second, "crashed"), (first, "ok")]
    assert [r.run_id for r in catalog.runs(limit=1)] == [second]
    assert catalog.mark_stale_runs_crashed() == 0


def test_stats(catalog):
    empty = catalog.stats()
    assert empty == CatalogStats({"pending": 0, "committed": 0, "removing": 0}, 0.0, 0, 0, None)
    for name, n in (("a", 4), ("b", 6), ("c", 2), ("d", 1)):
        _add(catalog, name, n)
    catalog.mark_committed(["a", "b", "c"], 1)
    catalog.mark_removing("c")
    catalog.add_copy_link("a", "b", 0.9, [])
    run_id = catalog.start_run({})
    stats = catalog.stats()
    assert stats.videos_by_status == {"pending": 1, "committed": 2, "removing": 1}
    assert (stats.committed_footage_s, stats.committed_frames, stats.copy_links) == (10.0, 10, 1)
    assert stats.last_run.run_id == run_id


def test_datetimes_round_trip_as_utc(catalog):
    kyiv = timezone(timedelta(hours=2))
    aware = datetime(2022, 2, 24, 5, 30, 15, 123456, tzinfo=kyiv)
    a = _add(catalog, "a", published_at=aware)
    _add(catalog, "b", published_at=datetime(2022, 2, 24, 3, 30))  # naive means UTC
    for video in (a, catalog.get_video("a")):
        assert video.published_at == aware and video.published_at.tzinfo == UTC
        assert video.published_at.hour == 3
    assert catalog.get_video("b").published_at == datetime(2022, 2, 24, 3, 30, tzinfo=UTC)
    assert catalog.get_video("c") is None
    ingested = catalog.get_video("a").ingested_at
    assert ingested.tzinfo == UTC and abs(datetime.now(UTC) - ingested) < timedelta(minutes=5)


def test_meta_round_trip(catalog):
    assert catalog.get_meta("descriptor") is None
    catalog.set_meta("descriptor", "sscd")
    catalog.set_meta("descriptor", "pdq")
    catalog.set_meta("note", "ünïcode ✓ " + "x" * 5000)
    assert catalog.get_meta("descriptor") == "pdq"
    assert catalog.get_meta("note") == "ünïcode ✓ " + "x" * 5000


def test_videos_await_copy_links_until_marked(catalog):
    for name in ("a", "b"):
        _add(catalog, name)
    catalog.mark_committed(["a", "b"], checkpoint=1)
    _add(catalog, "pending-one")
    assert catalog.videos_awaiting_copy_links() == ["a", "b"]  # committed only, oldest first
    catalog.mark_copies_linked(["a"])
    assert catalog.videos_awaiting_copy_links() == ["b"]
