"""Provenance on a small hand-built catalog: copies found through links, segment mapping, earliest source."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from firstseen.records import VideoMetadata
from firstseen.search.geometry import Region, SegmentEvidence
from firstseen.search.provenance import copies_through_links, earliest_source, follow_link
from firstseen.search.results import MatchSegment, VideoMatch
from firstseen.storage.catalog import SqlCatalog


def _seg(q0, q1, s0, s1, *, speed=1.0, reversed=False, mirrored=False, score=0.9, timing_known=True, verified=True):
    """A segment; verified ones carry the evidence a link recorded at ingest keeps."""
    evidence = SegmentEvidence(3, 3, 120, False, Region(0, 0, 1, 1), Region(0, 0, 1, 1)) if verified else None
    return MatchSegment(q0, q1, s0, s1, speed, reversed, mirrored, score, timing_known, evidence)


@pytest.fixture
def catalog(tmp_path: Path):
    cat = SqlCatalog.open(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    yield cat
    cat.close()


def _video(cat: SqlCatalog, name: str, year: int | None, seconds: int = 60):
    cat.add_pending_video(
        VideoMetadata(path=Path(f"/footage/{name}.mp4"), external_id=name, title=name, source=f"outlet {name}",
                      published_at=datetime(year, 6, 1, tzinfo=UTC) if year else None),
        video_id=name, sha256=hashlib.sha256(name.encode()).hexdigest(), duration_s=float(seconds), width=640,
        height=360, codec="h264", descriptor="sscd", frame_pts=np.arange(seconds, dtype=np.float64), run_id=None,
    )  # fmt: skip
    cat.mark_committed([name], checkpoint=1)
    return cat.get_video(name)


def test_follow_link_maps_query_time_into_the_copy():
    # the query shows V 10..20 s; V 5..25 s is O 105..125 s (O is a re-upload with 100 s added in front)
    carried = follow_link(_seg(0, 10, 10, 20), _seg(5, 25, 105, 125).to_dict(), 0.8)
    assert carried is not None
    assert (carried.query_start, carried.query_end) == (0, 10)
    assert carried.source_start == pytest.approx(110) and carried.source_end == pytest.approx(120)
    assert carried.score == 0.8 and not carried.reversed and carried.speed == pytest.approx(1.0)


def test_follow_link_composes_reversal_and_speed():
    # the query plays V 10..20 backwards; O holds V 0..30 at half speed (O seconds = 2 x V seconds)
    query_to_v = _seg(0, 10, 10, 20, reversed=True)
    link = _seg(0, 30, 0, 15, speed=0.5).to_dict()  # V->O: 0.5 O seconds per V second
    carried = follow_link(query_to_v, link, 0.9)
    assert carried.reversed and carried.speed == pytest.approx(0.5)
    assert (carried.source_start, carried.source_end) == (pytest.approx(5), pytest.approx(10))


def test_follow_link_keeps_only_the_shared_part_and_drops_other_footage():
    partial = follow_link(_seg(0, 10, 10, 20), _seg(15, 40, 0, 25).to_dict(), 0.9)
    assert partial.query_start == pytest.approx(4.5) and partial.query_end == 10  # V 15..20 less the slack
    assert follow_link(_seg(0, 10, 10, 20), _seg(40, 60, 0, 20).to_dict(), 0.9) is None
    # a link ending just inside the query's footage is a boundary sliver, not shared footage
    assert follow_link(_seg(0, 10, 10, 20), _seg(0, 11.5, 0, 11.5).to_dict(), 0.9) is None


def test_follow_link_for_a_still_checks_the_frame_lies_inside():
    still = _seg(0, 0, 12, 12, timing_known=False)
    inside = follow_link(still, _seg(5, 25, 105, 125).to_dict(), 0.9)
    assert inside.source_start == pytest.approx(112) and not inside.timing_known
    assert follow_link(still, _seg(30, 40, 0, 10).to_dict(), 0.9) is None
    # a frame at a link's end may already show the next clip of a compilation: not carried
    assert follow_link(_seg(0, 0, 24.8, 24.8, timing_known=False), _seg(5, 25, 105, 125).to_dict(), 0.9) is None
    assert follow_link(_seg(0, 0, 4.8, 4.8, timing_known=False), _seg(5, 25, 105, 125).to_dict(), 0.9) is None


def test_follow_link_for_a_stretch_too_still_to_time_needs_all_of_it_inside():
    """A compilation holds V 0..3 s (bikes) then W at 3..8 s: a clip of the bikes, too still to
    time, aligned with the compilation's 0..8 s must not be carried into W's link (a 2012
    diver video was given as earliest this way)."""
    untimed = _seg(5.2, 7.4, 0.0, 8.0, timing_known=False)
    assert follow_link(untimed, _seg(3.0, 8.0, 0.0, 5.0).to_dict(), 0.9) is None
    inside = follow_link(_seg(5.2, 7.4, 4.0, 6.0, timing_known=False), _seg(3.0, 8.0, 0.0, 5.0).to_dict(), 0.9)
    assert inside is not None and not inside.timing_known
    assert (inside.source_start, inside.source_end) == (pytest.approx(1.0), pytest.approx(3.0))


def test_copies_reached_through_links_and_earliest_is_the_oldest(catalog):
    original = _video(catalog, "orig2019", 2019)
    reupload = _video(catalog, "reup2022", 2022)
    later = _video(catalog, "later2023", 2023)
    unrelated = _video(catalog, "other2010", 2010)
    catalog.links.add_copy_link("reup2022", "orig2019", 0.9, [_seg(0, 30, 20, 50).to_dict()])
    catalog.links.add_copy_link("later2023", "reup2022", 0.85, [_seg(0, 10, 0, 10).to_dict()])
    # other2010 shares footage with the original, but not the part the query shows
    catalog.links.add_copy_link("other2010", "orig2019", 0.9, [_seg(0, 5, 55, 60).to_dict()])

    # the query matches only the 2022 re-upload, at its 5..15 s
    direct = [VideoMatch(reupload, 0.95, (_seg(0, 10, 5, 15),))]
    found = copies_through_links(direct, catalog.links.copy_links, catalog.get_video)
    by_id = {m.video_id: m for m in found}
    assert set(by_id) == {"orig2019", "later2023"}
    assert by_id["orig2019"].via == "reup2022" and by_id["orig2019"].score == pytest.approx(0.9)
    seg = by_id["orig2019"].segments[0]
    assert (seg.source_start, seg.source_end) == (pytest.approx(25), pytest.approx(35))
    assert earliest_source(direct + found).video_id == original.video_id
    assert later.video_id in by_id and unrelated.video_id not in by_id


def test_links_are_followed_across_several_hops_and_never_back(catalog):
    for name, year in (("a", 2001), ("b", 2005), ("c", 2010), ("d", 2015)):
        _video(catalog, name, year)
    catalog.links.add_copy_link("d", "c", 0.9, [_seg(0, 60, 0, 60).to_dict()])
    catalog.links.add_copy_link("c", "b", 0.9, [_seg(0, 60, 0, 60).to_dict()])
    catalog.links.add_copy_link("b", "a", 0.9, [_seg(0, 60, 0, 60).to_dict()])
    direct = [VideoMatch(catalog.get_video("d"), 0.9, (_seg(0, 10, 0, 10),))]
    found = copies_through_links(direct, catalog.links.copy_links, catalog.get_video)
    assert {m.video_id for m in found} == {"a", "b", "c"}
    assert earliest_source(direct + found).video_id == "a"
    assert {
        m.video_id for m in copies_through_links(direct, catalog.links.copy_links, catalog.get_video, max_hops=1)
    } == {"c"}


def test_earliest_prefers_dated_videos_and_breaks_ties_by_score(catalog):
    undated = _video(catalog, "undated", None)
    first = _video(catalog, "first", 2019)
    twin = _video(catalog, "twin", 2019)
    seg = (_seg(0, 5, 0, 5),)
    assert earliest_source([VideoMatch(undated, 0.99, seg)]).video_id == "undated"  # nothing dated: the best
    matches = [VideoMatch(undated, 0.99, seg), VideoMatch(first, 0.7, seg), VideoMatch(twin, 0.8, seg)]
    assert earliest_source(matches).video_id == "twin"
    assert earliest_source([]) is None


def test_links_the_geometry_never_confirmed_carry_no_provenance(catalog):
    """Links recorded before verification (or by a bug) would make a false holder the earliest."""
    _video(catalog, "old2001", 2001)
    copy = _video(catalog, "copy2020", 2020)
    catalog.links.add_copy_link("copy2020", "old2001", 0.95, [_seg(0, 60, 0, 60, verified=False).to_dict()])
    direct = [VideoMatch(copy, 0.9, (_seg(0, 10, 0, 10),))]
    assert copies_through_links(direct, catalog.links.copy_links, catalog.get_video) == []
    assert earliest_source(direct).video_id == "copy2020"
    unchecked = copies_through_links(direct, catalog.links.copy_links, catalog.get_video, verified_only=False)
    assert [m.video_id for m in unchecked] == ["old2001"]
    # the evidence survives the round trip through the catalog, seen from either side
    (back,) = catalog.links.copy_links("old2001")
    assert back.segments[0]["evidence"] is None
    catalog.links.add_copy_link("old2001", "copy2020", 0.95, [_seg(0, 60, 0, 60).to_dict()])
    seen = [link for link in catalog.links.copy_links("copy2020") if link.segments[0]["evidence"]]
    assert seen and MatchSegment.from_dict(seen[0].segments[0]).evidence.pairs_verified == 3


def test_removed_videos_are_not_reached(catalog):
    _video(catalog, "orig", 2019)
    copy = _video(catalog, "copy", 2022)
    catalog.links.add_copy_link("copy", "orig", 0.9, [_seg(0, 30, 0, 30).to_dict()])
    catalog.mark_removing("orig")
    direct = [VideoMatch(copy, 0.9, (_seg(0, 10, 0, 10),))]
    assert copies_through_links(direct, catalog.links.copy_links, catalog.get_video) == []
