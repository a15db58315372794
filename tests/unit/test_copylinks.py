"""Copy links in one pass: a pair found from either side is linked, whichever video comes first."""

from __future__ import annotations

import pytest

from firstseen.ingest import copylinks
from firstseen.params import SearchParams
from firstseen.search.calibration import Calibration
from firstseen.search.candidates import CandidateMatch, VerifyPolicy
from firstseen.search.results import MatchSegment
from tests.unit.test_archive import _open, _stage

SEGMENT = MatchSegment(0.0, 3.0, 0.0, 3.0, 1.0, False, False, 0.9, True)


@pytest.fixture
def archive(tmp_path):
    with _open(tmp_path) as archive:
        for n in (1, 2, 3):
            _stage(archive, n)
        archive.commit()
        yield archive


def test_a_pair_that_verifies_from_one_side_only_is_linked_whichever_comes_first(archive, monkeypatch):
    """The copy (vid0001) is searched first and its frames do not verify against the original
    (vid0002); the original's do. The original must still search the copy."""
    searched: list[tuple[str, frozenset]] = []

    def match_videos(archive, query, calibration, *, exclude, **_):
        searched.append((query.info.filename, exclude))
        if query.info.filename == "vid0002" and "vid0001" not in exclude:
            return [CandidateMatch("vid0001", 0.9, (SEGMENT,))], []
        return [], []

    monkeypatch.setattr(copylinks, "match_videos", match_videos)
    written = copylinks.link_videos(
        archive, _calibration(), SearchParams(), VerifyPolicy(), ["vid0001", "vid0002", "vid0003"]
    )
    assert written == 1
    assert [link.other_video_id for link in archive.copy_links("vid0001")] == ["vid0002"]
    # a pair once linked is not searched again from its other side
    assert searched[2] == ("vid0003", frozenset({"vid0003"}))
    assert "vid0002" not in dict(searched)["vid0001"]


def test_a_linked_pair_is_not_verified_again_from_its_other_side(archive, monkeypatch):
    excludes: dict[str, frozenset] = {}

    def match_videos(archive, query, calibration, *, exclude, **_):
        excludes[query.info.filename] = exclude
        if query.info.filename == "vid0001":
            return [CandidateMatch("vid0003", 0.9, (SEGMENT,))], []
        return [], []

    monkeypatch.setattr(copylinks, "match_videos", match_videos)
    copylinks.link_videos(archive, _calibration(), SearchParams(), VerifyPolicy(), ["vid0001", "vid0002", "vid0003"])
    assert excludes["vid0002"] == {"vid0002"} and excludes["vid0003"] == {"vid0001", "vid0003"}


def _calibration() -> Calibration:
    return Calibration("toy/1", 0.2, -10.0, 30.0, 0.3, 0.5)
