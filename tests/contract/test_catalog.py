"""What only the SQL catalog promises (schema, migrations, rows, concurrency, speed), on SQLite and on the
PostgreSQL server named by FIRSTSEEN_TEST_PG_URL; what every backend shares is in tests/contract/test_storage.py."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

import firstseen.storage.failures  # noqa: F401 - its table lives on the same Base
import firstseen.storage.text_store  # noqa: F401 - so do on-screen text's
from firstseen.errors import DuplicateVideoError
from firstseen.records import VideoMetadata, VideoRecord
from firstseen.storage.catalog import SqlCatalog
from firstseen.storage.tables import Base

PG_URL = os.environ.get("FIRSTSEEN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TABLES = {
    "videos",
    "frames",
    "copy_links",
    "ingest_runs",
    "archive_meta",
    "alembic_version",
    "ingest_failures",
    "onscreen_text",
    "text_passes",
}


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
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0005"
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
        def derived(obj, name, kind, reflected, _) -> bool:
            return not (name or "").startswith(("onscreen_text_fts", "ix_onscreen_text_fts"))

        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": derived})
        assert compare_metadata(context, Base.metadata) == []


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
    catalog.links.add_copy_link("a", "b", 0.5, [segment])
    catalog.links.add_copy_link("a", "b", 0.9, [segment])  # recomputed: replaces, does not duplicate
    catalog.links.add_copy_link("c", "a", 0.7, [])
    [ab, ac] = catalog.links.copy_links("a")
    assert (ab.other_video_id, ab.score, ab.segments) == ("b", 0.9, [segment])
    assert (ac.other_video_id, ac.score) == ("c", 0.7)
    assert ab.created_at.tzinfo is not None
    [ba] = catalog.links.copy_links("b")
    assert ba.video_id == "b" and ba.other_video_id == "a" and ba.score == 0.9
    assert ba.segments == [{**segment, "query_start": 10.0, "query_end": 14.0, "source_start": 1.0,
                            "source_end": 3.0, "speed": 0.5}]  # fmt: skip
    assert catalog.links.count() == 2
    with pytest.raises(ValueError):
        catalog.links.add_copy_link("a", "a", 1.0, [])

    catalog.mark_removing("b")
    catalog.delete_video("b")
    assert [link.other_video_id for link in catalog.links.copy_links("a")] == ["c"]
    with catalog.engine.begin() as conn:  # the schema's ON DELETE CASCADE, not only delete_video's
        conn.execute(text("DELETE FROM videos WHERE video_id = 'c'"))
    assert catalog.links.copy_links("a") == [] and _count(catalog, "copy_links") == 0
    assert _count(catalog, "frames") == 3
