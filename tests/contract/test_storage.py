"""The storage contract: every implementation of the catalog, copy links, run log and failure ledger
(SQLite, PostgreSQL, in memory) passes the same tests, as python-threatexchange's SignalTypeAutoTest
does for signal types. A new backend subclasses StorageContract and provides `stores`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from firstseen.errors import DuplicateVideoError, FirstSeenError, VideoNotFoundError
from firstseen.records import VideoMetadata, VideoRecord
from firstseen.storage.catalog import SqlCatalog
from firstseen.storage.failures import SqlFailureLedger
from firstseen.storage.memory import MemoryCatalog, MemoryCopyLinks, MemoryFailureLedger, MemoryRunLog
from firstseen.storage.protocols import CopyLinkStore, FailureLedger, RunLog, VideoCatalog


@dataclass
class Stores:
    catalog: VideoCatalog
    links: CopyLinkStore
    runs: RunLog
    failures: Callable[[int], FailureLedger]


def _sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _add(
    cat: VideoCatalog,
    name: str,
    n: int = 5,
    *,
    external_id: str | None = None,
    sha: str | None = None,
    run_id: int | None = None,
    published_at: datetime | None = None,
    file_stat: tuple[int, int] | None = None,
) -> VideoRecord:
    return cat.add_pending_video(
        VideoMetadata(
            path=Path(f"/footage/{name}.mp4"),
            external_id=external_id,
            title=f"Title {name}",
            source="AP",
            published_at=published_at,
            uri=f"https://x/{name}",
            location="Kyiv",
        ),
        video_id=name,
        sha256=sha or _sha(name),
        duration_s=n * 1.0,
        width=640,
        height=360,
        codec="h264",
        descriptor="sscd",
        frame_pts=np.arange(n, dtype=np.float64) + 0.5,
        run_id=run_id,
        file_stat=file_stat,
    )


class StorageContract:
    """What the archive and the ingest use case rely on, whatever the backend."""

    @pytest.fixture
    def stores(self) -> Stores:
        raise NotImplementedError

    def test_lifecycle_add_find_commit_remove(self, stores):
        catalog = stores.catalog
        run_id = stores.runs.start_run({})
        video = _add(catalog, "a", 4, external_id="AP-1", run_id=run_id)
        assert video.status == "pending" and video.frame_count == 4 and video.run_id == run_id
        assert catalog.find_by_sha256(_sha("a")) == video == catalog.find_by_sha256(_sha("a").upper())
        assert catalog.find_by_sha256(_sha("zz")) is None
        assert catalog.get_video("a") == video == catalog.get_video("AP-1")
        assert catalog.get_video("nope") is None
        assert video.path == "/footage/a.mp4" and video.title == "Title a" and video.location == "Kyiv"
        assert [v.video_id for v in catalog.videos("pending")] == ["a"] and catalog.videos("committed") == []
        assert catalog.resolve_frames(video.frame_ids) == {}  # pending: invisible to search
        catalog.mark_committed(["a"], 3)
        assert catalog.get_video("a").committed_checkpoint == 3
        catalog.mark_committed(["a"], 9)  # recovery may repeat it: the first checkpoint stays
        assert catalog.get_video("a").committed_checkpoint == 3
        assert catalog.resolve_frames(video.frame_ids) == {fid: ("a", i + 0.5) for i, fid in enumerate(video.frame_ids)}
        assert catalog.mark_removing("a").status == "removing"
        assert catalog.resolve_frames(video.frame_ids) == {}
        with pytest.raises(FirstSeenError):
            catalog.mark_committed(["a"], 4)
        assert catalog.delete_video("a") is True and catalog.delete_video("a") is False
        assert catalog.get_video("a") is None and catalog.find_by_sha256(_sha("a")) is None
        with pytest.raises(VideoNotFoundError):
            catalog.mark_removing("a")
        with pytest.raises(ValueError):
            catalog.videos("bogus")

    def test_mark_committed_is_all_or_nothing(self, stores):
        _add(stores.catalog, "a")
        with pytest.raises(VideoNotFoundError):
            stores.catalog.mark_committed(["a", "missing"], 1)
        assert stores.catalog.get_video("a").status == "pending"
        stores.catalog.mark_committed([], 1)  # nothing to do is not an error

    def test_frame_ids_contiguous_and_never_reused(self, stores):
        catalog = stores.catalog
        a, empty, b = _add(catalog, "a", 5), _add(catalog, "e", 0), _add(catalog, "b", 7)
        assert (a.first_frame_id, empty.first_frame_id, b.first_frame_id) == (0, 5, 5)
        assert list(b.frame_ids) == list(range(5, 12))
        catalog.mark_removing("b")
        catalog.delete_video("b")  # the newest range: a reusing counter would hand it out again
        assert _add(catalog, "c", 3).first_frame_id == 12
        assert [v.video_id for v in catalog.videos()] == ["a", "e", "c"]  # ordered by first frame id

    def test_resolve_frames_committed_only_and_many_ids(self, stores):
        catalog = stores.catalog
        a, b = _add(catalog, "a", 2000), _add(catalog, "b", 1500)
        catalog.mark_committed(["a"], 1)
        got = catalog.resolve_frames([np.int64(i) for i in range(500, 3500)] + [10**9, -1, 600])
        assert got == {fid: ("a", fid - a.first_frame_id + 0.5) for fid in range(500, 2000)}
        assert all(type(k) is int for k in got)
        catalog.mark_committed(["b"], 2)
        got = catalog.resolve_frames(range(500, 3500))
        assert len(got) == 3000 and got[3499] == ("b", 3499 - b.first_frame_id + 0.5)
        assert catalog.resolve_frames([]) == {}

    def test_timestamps_round_trip_exactly(self, stores):
        pts = np.array([0.0, 0.1, 1 / 3, np.pi, 12345.678901234567])
        video = stores.catalog.add_pending_video(
            VideoMetadata(path=Path("p.mp4")),
            video_id="p",
            sha256=_sha("p"),
            duration_s=12346.0,
            width=1,
            height=1,
            codec="vp9",
            descriptor="pdq",
            frame_pts=pts,
            run_id=None,
        )
        stores.catalog.mark_committed(["p"], 1)
        got = stores.catalog.resolve_frames(video.frame_ids)
        assert [got[fid][1] for fid in video.frame_ids] == pts.tolist()
        with pytest.raises(ValueError):
            stores.catalog.add_pending_video(
                VideoMetadata(path=Path("q.mp4")),
                video_id="q",
                sha256=_sha("q"),
                duration_s=1.0,
                width=1,
                height=1,
                codec="vp9",
                descriptor="pdq",
                frame_pts=np.array([0.0, np.nan]),
                run_id=None,
            )

    def test_duplicates_rejected_and_nothing_half_written(self, stores):
        catalog = stores.catalog
        _add(catalog, "a", 5, external_id="AP-1")
        for kwargs, field in (
            ({"sha": _sha("a")}, "sha256"),
            ({"external_id": "AP-1"}, "external_id"),
            ({"sha": _sha("other")}, "video_id"),
        ):
            name = "a" if field == "video_id" else f"x{field}"
            with pytest.raises(DuplicateVideoError) as info:
                _add(catalog, name, 5, **kwargs)
            assert info.value.field == field and info.value.existing_video_id == "a"
        with pytest.raises(ValueError):
            _add(catalog, "d", 5, sha="not-a-hash")
        assert [v.video_id for v in catalog.videos()] == ["a"]
        assert _add(catalog, "d", 2).first_frame_id == 5  # a failed add consumed no ids

    def test_file_stats_let_unchanged_files_be_skipped(self, stores):
        catalog = stores.catalog
        _add(catalog, "a", file_stat=(100, 7))
        _add(catalog, "b")
        stats = {"/footage/a.mp4": (100, 7), "/footage/b.mp4": (5, 5), "/footage/new.mp4": (1, 1)}
        assert catalog.unchanged_paths(stats) == {"/footage/a.mp4": "a"}
        catalog.update_file_stat("a", (100, 8))
        assert catalog.unchanged_paths(stats) == {}
        assert catalog.unchanged_paths({"/footage/a.mp4": (100, 8)}) == {"/footage/a.mp4": "a"}

    def test_datetimes_round_trip_as_utc(self, stores):
        aware = datetime(2022, 2, 24, 5, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
        a = _add(stores.catalog, "a", published_at=aware)
        _add(stores.catalog, "b", published_at=datetime(2022, 2, 24, 3, 30))  # naive means UTC
        for video in (a, stores.catalog.get_video("a")):
            assert video.published_at == aware and video.published_at.tzinfo == UTC
        assert stores.catalog.get_video("b").published_at == datetime(2022, 2, 24, 3, 30, tzinfo=UTC)
        ingested = stores.catalog.get_video("a").ingested_at
        assert ingested.tzinfo == UTC and abs(datetime.now(UTC) - ingested) < timedelta(minutes=5)

    def test_meta_round_trip(self, stores):
        assert stores.catalog.get_meta("descriptor") is None
        stores.catalog.set_meta("descriptor", "sscd")
        stores.catalog.set_meta("descriptor", "pdq")
        stores.catalog.set_meta("note", "ünïcode ✓ " + "x" * 5000)
        assert stores.catalog.get_meta("descriptor") == "pdq"
        assert stores.catalog.get_meta("note") == "ünïcode ✓ " + "x" * 5000

    def test_totals_count_committed_footage(self, stores):
        catalog = stores.catalog
        assert catalog.video_totals() == ({"pending": 0, "committed": 0, "removing": 0}, 0.0, 0)
        for name, n in (("a", 4), ("b", 6), ("c", 2), ("d", 1)):
            _add(catalog, name, n)
        catalog.mark_committed(["a", "b", "c"], 1)
        catalog.mark_removing("c")
        assert catalog.video_totals() == ({"pending": 1, "committed": 2, "removing": 1}, 10.0, 10)

    def test_videos_await_copy_links_until_marked(self, stores):
        catalog = stores.catalog
        for name in ("a", "b"):
            _add(catalog, name)
        catalog.mark_committed(["a", "b"], checkpoint=1)
        _add(catalog, "pending-one")
        assert catalog.videos_awaiting_copy_links() == ["a", "b"]  # committed only, oldest first
        catalog.mark_copies_linked(["a"])
        assert catalog.videos_awaiting_copy_links() == ["b"]
        catalog.mark_copies_linked(None)
        assert catalog.videos_awaiting_copy_links() == ["a", "b"]

    def test_copy_links_both_directions(self, stores):
        for name in ("a", "b", "c"):
            _add(stores.catalog, name, 3)
        stores.catalog.mark_committed(["a", "b", "c"], 1)
        links = stores.links
        segment = {
            "query_start": 1.0,
            "query_end": 3.0,
            "source_start": 10.0,
            "source_end": 14.0,
            "speed": 2.0,
            "reversed": False,
            "mirrored": True,
            "score": 0.8,
            "evidence": {"query_in_source": {"x": 0.1}, "source_in_query": None},
        }
        links.add_copy_link("a", "b", 0.5, [segment])
        links.add_copy_link("a", "b", 0.9, [segment])  # recomputed: replaces, does not duplicate
        links.add_copy_link("c", "a", 0.7, [])
        ab, ac = links.copy_links("a")
        assert (ab.other_video_id, ab.score, ab.segments) == ("b", 0.9, [segment])
        assert (ac.other_video_id, ac.score) == ("c", 0.7) and ab.created_at.tzinfo is not None
        (ba,) = links.copy_links("b")
        assert (ba.video_id, ba.other_video_id, ba.score) == ("b", "a", 0.9)
        assert ba.segments == [
            {
                **segment,
                "query_start": 10.0,
                "query_end": 14.0,
                "source_start": 1.0,
                "source_end": 3.0,
                "speed": 0.5,
                "evidence": {"query_in_source": None, "source_in_query": {"x": 0.1}},
            }
        ]
        assert links.count() == 2
        with pytest.raises(ValueError):
            links.add_copy_link("a", "a", 1.0, [])
        links.delete_video("b")
        assert [link.other_video_id for link in links.copy_links("a")] == ["c"] and links.copy_links("b") == []
        links.delete_all()
        assert links.count() == 0 and links.copy_links("a") == []

    def test_runs_and_stale_runs(self, stores):
        runs = stores.runs
        assert runs.last() is None
        first = runs.start_run({"manifest": "/m.jsonl", "fps": 1.0})
        (run,) = runs.runs()
        assert (run.run_id, run.status, run.finished_at, run.errors) == (first, "running", None, [])
        assert run.params == {"manifest": "/m.jsonl", "fps": 1.0} and run.started_at.tzinfo is not None
        errors = [{"path": "x.mp4", "line": 3, "reason": "not a video"}]
        counts = {"added": 2, "skipped": 1, "failed": 1, "footage_s": 12.5, "frames": 13, "quarantined": 1}
        runs.finish_run(first, status="ok", errors=errors, **counts)
        done = runs.last()
        assert done.status == "ok" and {k: getattr(done, k) for k in counts} == counts
        assert done.errors == errors and done.finished_at >= done.started_at
        with pytest.raises(ValueError):
            runs.finish_run(first, status="running", errors=[], **counts)
        second = runs.start_run({})
        assert runs.mark_stale_runs_crashed() == 1 and runs.mark_stale_runs_crashed() == 0
        assert [(r.run_id, r.status) for r in runs.runs()] == [(second, "crashed"), (first, "ok")]
        assert [r.run_id for r in runs.runs(limit=1)] == [second]

    def test_failures_are_counted_then_quarantined_until_the_file_changes(self, stores):
        ledger = stores.failures(2)
        first = ledger.record("/in/a.mp4", (10, 1), "corrupt", None)
        assert (first.attempts, first.quarantined) == (1, False)
        second = ledger.record("/in/a.mp4", (10, 1), "still corrupt", None)
        assert (second.attempts, second.quarantined, second.reason) == (2, True, "still corrupt")
        assert [r.path for r in ledger.quarantined()] == ["/in/a.mp4"]
        changed = ledger.record("/in/a.mp4", (11, 2), "corrupt again", None)
        assert (changed.attempts, changed.quarantined) == (1, False), "a changed file starts again"
        ledger.record("/in/b.mp4", None, "unreadable", None)
        ledger.record("/in/b.mp4", None, "unreadable", None)
        assert stores.failures(2).all().keys() == {"/in/a.mp4", "/in/b.mp4"}, "rows outlive one ledger object"
        assert ledger.release() == 1 and ledger.quarantined() == []
        assert ledger.all()["/in/b.mp4"].attempts == 0
        ledger.clear(["/in/a.mp4", "/in/never.mp4"])
        assert list(ledger.all()) == ["/in/b.mp4"]
        with pytest.raises(ValueError):
            stores.failures(0)


def _sql_stores(catalog: SqlCatalog) -> Stores:
    return Stores(catalog, catalog.links, catalog.run_log, lambda n: SqlFailureLedger(catalog, n))


class TestSqliteStores(StorageContract):
    @pytest.fixture
    def stores(self, tmp_path):
        with SqlCatalog.open(f"sqlite:///{tmp_path / 'catalog.sqlite'}") as catalog:
            yield _sql_stores(catalog)


@pytest.mark.postgres
class TestPostgresStores(StorageContract):
    @pytest.fixture
    def stores(self):
        from conftest import pg_schema_url

        with pg_schema_url() as url, SqlCatalog.open(url) as catalog:
            yield _sql_stores(catalog)


class TestMemoryStores(StorageContract):
    @pytest.fixture
    def stores(self):
        rows: dict = {}
        return Stores(MemoryCatalog(), MemoryCopyLinks(), MemoryRunLog(), lambda n: MemoryFailureLedger(n, rows))
