"""The archive on Milvus Lite: real footage ingested there gives the same answers as on FAISS files."""

from __future__ import annotations

import json

import pytest
from conftest import copy_archive, require_scale

from firstseen.errors import ArchiveMismatchError
from firstseen.settings import get_settings

require_scale("pymilvus")


def answer(settings, path) -> dict:
    """What a fact-checker reads off a result: the source, the earliest, the segments."""
    from firstseen.search.searcher import Searcher

    with Searcher(settings) as searcher:
        result = searcher.search(path)
    return {
        "verdict": result.verdict,
        "top1": result.matches[0].video.external_id if result.matches else None,
        "earliest": result.earliest.video.external_id if result.earliest else None,
        "segments": [
            (
                m.video.external_id,
                [(round(s.query_start, 2), round(s.source_start, 2), s.reversed, s.mirrored) for s in m.segments],
            )
            for m in result.matches
        ],
    }


@pytest.fixture(scope="module")
def milvus_archive(small_archive, footage, tmp_path_factory) -> dict:
    """The small archive's three real videos ingested again, with the vectors in Milvus Lite."""
    from firstseen.ingest.progress import LogProgress
    from firstseen.ingest.run import run_ingest

    work = tmp_path_factory.mktemp("milvus-archive")
    lines = [json.loads(line) for line in (footage / "manifest.jsonl").read_text().splitlines()]
    chosen = [line for line in lines if line["path"] in ("vtest.avi", "cockatoo.mp4", "diver.mov")]
    manifest = work / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(dict(line, path=str(footage / line["path"]))) + "\n" for line in chosen))
    settings = get_settings(data_dir=work / "data", index_url=f"milvus-lite://{work}/index.db")
    summary = run_ingest(settings, [], [manifest], progress=LogProgress())
    assert summary.added == 3 and summary.failed == 0, summary
    return {"settings": settings}


@pytest.mark.parametrize("query", ["reversed", "mirrored", "unseen"])
def test_a_search_gives_the_same_answer_on_faiss_and_on_milvus(small_archive, milvus_archive, query):
    on_faiss = answer(get_settings(data_dir=small_archive["data_dir"]), small_archive[query])
    on_milvus = answer(milvus_archive["settings"], small_archive[query])
    assert on_milvus == on_faiss
    assert (on_faiss["verdict"] == "no_match") == (query == "unseen")


def test_the_milvus_archive_reports_its_index_and_agrees_with_its_catalog(milvus_archive):
    from firstseen.archive import open_archive
    from firstseen.ops.stats import archive_stats

    settings = milvus_archive["settings"]
    with open_archive(
        settings.data_dir, settings.resolved_catalog_url(), writable=True, index_url=settings.index_url
    ) as archive:
        assert archive.verify() == []
        assert archive.index_shape().kind == "milvus-flat"
        frames = sum(v.frame_count for v in archive.videos("committed"))
        assert archive.index_size == frames
    assert archive_stats(settings)["index"]["kind"] == "milvus-flat"


def test_a_faiss_archive_moves_to_milvus_at_its_first_writer(small_archive, tmp_path):
    from firstseen.archive import open_archive

    data = copy_archive(small_archive, tmp_path / "data")
    url = f"milvus-lite://{tmp_path}/moved.db"
    catalog = get_settings(data_dir=data).resolved_catalog_url()
    with pytest.raises(ArchiveMismatchError, match="run one writer"):
        open_archive(data, catalog, index_url=url)  # a reader would see an empty index
    with open_archive(data, catalog, writable=True, index_url=url) as archive:  # recovery fills it
        assert archive.verify() == []
    moved = get_settings(data_dir=data, index_url=url)
    original = get_settings(data_dir=small_archive["data_dir"])
    assert answer(moved, small_archive["reversed"]) == answer(original, small_archive["reversed"])


def test_reindex_on_milvus_is_milvus_own_index_build(small_archive, tmp_path):
    from firstseen.archive import open_archive
    from firstseen.ops.reindex import maintain_index

    data = copy_archive(small_archive, tmp_path / "data")
    settings = get_settings(data_dir=data, index_url=f"milvus-lite://{tmp_path}/ivf.db")
    report = maintain_index(settings, "ivf")  # a writer: the vectors move to Milvus first
    assert (report.action, report.kind) == ("rebuilt", "milvus-ivf_sq8") and report.nlist >= 1024
    assert maintain_index(settings, "auto").kind == "milvus-flat"  # a small archive goes back to exact
    with open_archive(data, settings.resolved_catalog_url(), index_url=settings.index_url) as reader:
        assert reader.index_shape().kind == "milvus-flat" and reader.checkpoint == report.checkpoint + 1
    original = get_settings(data_dir=small_archive["data_dir"])
    assert answer(settings, small_archive["reversed"]) == answer(original, small_archive["reversed"])


@pytest.mark.parametrize("target", ["faiss", "milvus"])
def test_a_milvus_backup_restores_onto_either_index(small_archive, milvus_archive, tmp_path, target):
    from firstseen.ops.backup import backup_archive, restore_archive

    report = backup_archive(milvus_archive["settings"], tmp_path / "backup")
    assert report.videos == 3 and not (tmp_path / "backup" / "index" / "manifest.json").exists()
    url = None if target == "faiss" else f"milvus-lite://{tmp_path}/restored.db"
    restored = get_settings(data_dir=tmp_path / "restored", index_url=url)
    restore_archive(restored, tmp_path / "backup")  # ends with a writer's verify: the index refilled
    assert answer(restored, small_archive["reversed"]) == answer(milvus_archive["settings"], small_archive["reversed"])


def test_a_replica_without_the_raw_vectors_aligns_on_vectors_read_back_from_milvus(
    small_archive, milvus_archive, tmp_path, monkeypatch
):
    """A search replica that does not mount the raw vectors (nor the thumbnails) finds the same
    sources and segments: it reads each candidate's vectors and flags back from Milvus, and
    verifies on the archived files' own frames."""
    import shutil

    settings = milvus_archive["settings"]
    replica = tmp_path / "replica"
    shutil.copytree(settings.data_dir, replica, ignore=shutil.ignore_patterns("vectors", "ingest.lock"))
    on_replica = get_settings(data_dir=replica, index_url=settings.index_url)
    expected = {query: answer(settings, small_archive[query]) for query in ("reversed", "mirrored", "unseen")}
    from firstseen.storage.milvus_index import MilvusIndex

    read_back: list[str] = []
    original = MilvusIndex.frames_of
    monkeypatch.setattr(MilvusIndex, "frames_of", lambda self, v: read_back.append(v) or original(self, v))
    for query, wanted in expected.items():
        assert answer(on_replica, small_archive[query]) == wanted
    assert read_back, "the replica never read vectors back from Milvus"


def test_the_api_searches_and_takes_down_on_milvus(small_archive, tmp_path):
    from fastapi.testclient import TestClient

    from firstseen.archive import open_archive
    from search_api.app import create_app
    from search_api.settings import get_api_settings

    data = copy_archive(small_archive, tmp_path / "data")
    url = f"milvus-lite://{tmp_path}/api.db"
    catalog = get_settings(data_dir=data).resolved_catalog_url()
    with open_archive(data, catalog, writable=True, index_url=url):
        pass  # the first writer moves the vectors into Milvus
    (tmp_path / "uploads").mkdir()
    settings = get_api_settings(data_dir=data, index_url=url, api_upload_dir=tmp_path / "uploads")
    external_id = small_archive["external_ids"]["vtest.avi"]

    def search(client) -> dict:
        with open(small_archive["reversed"], "rb") as fh:
            return client.post("/v1/search", files={"file": ("clip.mp4", fh, "video/mp4")}).json()

    with TestClient(create_app(settings)) as client:
        found = search(client)
        assert found["verdict"] == "match" and found["earliest"]["external_id"] == external_id
        assert client.delete(f"/v1/videos/{external_id}").json()["external_id"] == external_id
        assert search(client)["verdict"] == "no_match"
    with open_archive(data, catalog, writable=True, index_url=url) as archive:
        assert archive.verify() == []  # the video's frames left the collection with it


def test_writers_on_machines_that_share_no_raw_vectors(small_archive, tmp_path):
    """Two machines, each with its own data directory, on one catalog and one Milvus: what one
    staged the other recovers, verifies, refreshes, backs up and takes down, reading the
    vectors and flags out of Milvus; neither sees the other's vectors/ folder."""
    import numpy as np
    from clips import make_distinct_clip

    from firstseen.archive import open_archive
    from firstseen.ingest.run import run_ingest
    from firstseen.ops.backup import backup_archive, restore_archive

    first = copy_archive(small_archive, tmp_path / "first")
    url = f"milvus-lite://{tmp_path}/shared.db"
    catalog = get_settings(data_dir=first).resolved_catalog_url()
    with open_archive(first, catalog, writable=True, index_url=url) as archive:
        assert archive.verify() == []  # moved into Milvus from the first machine's files
        moved = {v.video_id for v in archive.videos("committed")}
    second = get_settings(data_dir=tmp_path / "second", catalog_url=catalog, index_url=url)
    (tmp_path / "drop").mkdir()
    make_distinct_clip(tmp_path / "drop" / "new.mp4", 77, seconds=4.0)
    assert run_ingest(second, [tmp_path / "drop"]).added == 1  # recovery there met videos with no files
    assert len(list((tmp_path / "second" / "vectors").iterdir())) == 1  # its own video's file only
    victim, refreshed = sorted(moved)[0], sorted(moved)[1]
    with open_archive(second.data_dir, catalog, writable=True, index_url=url) as archive:
        assert archive.verify() == []
        stored = archive.raw_vectors(refreshed)
        flags = np.zeros(len(stored), bool)
        archive.replace_raw_vectors(refreshed, type(stored)(stored.descriptor, stored.pts_s, stored.vectors, flags))
    with open_archive(first, catalog, index_url=url) as reader:  # the first machine reads the new flags
        assert not reader.raw_vectors(refreshed).informative.any()
    backup_archive(second, tmp_path / "backup")
    restored = get_settings(data_dir=tmp_path / "restored")
    restore_archive(restored, tmp_path / "backup")
    with open_archive(restored.data_dir, restored.resolved_catalog_url()) as archive:
        assert len(archive.videos("committed")) == 4
        assert not archive.raw_vectors(refreshed).informative.any()
    with open_archive(second.data_dir, catalog, writable=True, index_url=url) as archive:
        archive.remove(victim)
    with open_archive(first, catalog, writable=True, index_url=url) as archive:
        assert archive.verify() == [] and victim not in {v.video_id for v in archive.videos()}
        assert not (first / "vectors" / f"{victim}.npz").exists()  # this machine's copy went at its recovery
