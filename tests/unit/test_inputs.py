"""Tests for firstseen.ingest.manifest: manifests (JSONL and CSV), folders, explicit files, de-duplication."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firstseen.ingest.manifest import CollectedInputs, InputProblem, collect_inputs, read_manifest

UTC = UTC
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def touch(path: Path, data: bytes = b"not really video") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def jsonl(path: Path, *lines: object) -> Path:
    """Write lines as-is when they are strings, as JSON otherwise."""
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problem_lines(result: CollectedInputs) -> dict[int | None, str]:
    return {p.line: p.reason for p in result.problems}


# --- JSONL ---------------------------------------------------------------------------------


def test_jsonl_full_record(tmp_path):
    video = touch(tmp_path / "clips" / "a.mp4")
    manifest = jsonl(
        tmp_path / "m.jsonl",
        {
            "path": "clips/a.mp4",
            "external_id": "ap-2019-0628-001",
            "title": " Flood in town ",
            "source": "Northwind Wire",
            "published_at": "2019-06-28T10:00:00+02:00",
            "uri": "https://archive.example.org/1",
            "location": "Lyon, France",
        },
    )
    result = read_manifest(manifest, now=NOW)
    assert result.problems == []
    [item] = result.items
    assert item.path == video.resolve()
    assert item.external_id == "ap-2019-0628-001"
    assert item.title == "Flood in town"  # surrounding whitespace is not part of a value
    assert item.source == "Northwind Wire"
    assert item.published_at == datetime(2019, 6, 28, 8, 0, tzinfo=UTC)
    assert item.published_at.tzinfo == UTC
    assert item.uri == "https://archive.example.org/1"
    assert item.location == "Lyon, France"
    assert item.manifest_line == 1


def test_jsonl_only_path_is_required(tmp_path):
    touch(tmp_path / "a.mp4")
    [item] = read_manifest(jsonl(tmp_path / "m.jsonl", {"path": "a.mp4"}), now=NOW).items
    assert (item.external_id, item.title, item.source, item.published_at, item.uri, item.location) == (None,) * 6


def test_jsonl_blank_lines_and_comments_keep_physical_line_numbers(tmp_path):
    touch(tmp_path / "a.mp4")
    touch(tmp_path / "b.mp4")
    manifest = jsonl(
        tmp_path / "m.jsonl",
        "# archive batch 7",
        "",
        {"path": "a.mp4"},
        "   ",
        "  # indented comment",
        {"path": "b.mp4"},
        "{bad",
    )
    result = read_manifest(manifest, now=NOW)
    assert [i.manifest_line for i in result.items] == [3, 6]
    assert list(problem_lines(result)) == [7]


def test_jsonl_mixed_good_and_bad_lines(tmp_path):
    touch(tmp_path / "a.mp4")
    touch(tmp_path / "b.mp4")
    (tmp_path / "folder").mkdir()
    manifest = jsonl(
        tmp_path / "m.jsonl",
        {"path": "a.mp4", "external_id": "x-1"},  # 1 ok
        '{"path": "a.mp4",',  # 2 invalid JSON
        '["a.mp4"]',  # 3 not an object
        "42",  # 4 not an object
        {"title": "no path"},  # 5 missing path
        {"path": "  "},  # 6 empty path
        {"path": "gone.mp4"},  # 7 file not found
        {"path": "folder"},  # 8 not a file
        {"path": "b.mp4", "title": 5},  # 9 wrong type
        {"path": "b.mp4", "external_id": "x-1"},  # 10 duplicate id
        {"path": "b.mp4", "published_at": "28/06/2019"},  # 11 not ISO 8601
        {"path": "b.mp4", "external_id": "x-2"},  # 12 ok
        {"path": None},  # 13 null path
    )
    result = read_manifest(manifest, now=NOW)
    assert [(i.manifest_line, i.external_id) for i in result.items] == [(1, "x-1"), (12, "x-2")]
    reasons = problem_lines(result)
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13]
    assert reasons[2].startswith("invalid JSON")
    assert reasons[3] == "expected a JSON object, got an array"
    assert reasons[4] == "expected a JSON object, got a number"
    assert reasons[5] == "missing path"
    assert reasons[6] == "empty path"
    assert reasons[7] == f"file not found: {tmp_path.resolve() / 'gone.mp4'}"
    assert reasons[8].startswith("not a file")
    assert "title must be a string" in reasons[9] and "number" in reasons[9]
    assert reasons[10] == "duplicate external_id 'x-1' (first on line 1)"
    assert "not an ISO 8601" in reasons[11]
    assert reasons[13] == "missing path"
    assert all(p.source == str(manifest) for p in result.problems)


@pytest.mark.parametrize(
    "field,value",
    [
        ("path", 7),
        ("external_id", 123),
        ("source", ["a"]),
        ("published_at", 2019),
        ("uri", {"u": 1}),
        ("location", True),
    ],
)
def test_jsonl_non_string_values_are_rejected(tmp_path, field, value):
    touch(tmp_path / "a.mp4")
    record = {"path": "a.mp4", field: value}
    result = read_manifest(jsonl(tmp_path / "m.jsonl", record), now=NOW)
    assert result.items == []
    [problem] = result.problems
    assert problem.line == 1 and problem.reason.startswith(f"{field} must be a string")


def test_jsonl_every_reason_of_a_line_is_reported(tmp_path):
    manifest = jsonl(tmp_path / "m.jsonl", {"path": "gone.mp4", "title": 1, "published_at": "soon"})
    [problem] = read_manifest(manifest, now=NOW).problems
    assert "title must be a string" in problem.reason
    assert "published_at" in problem.reason
    assert "file not found" in problem.reason


def test_jsonl_unknown_keys_are_ignored(tmp_path):
    touch(tmp_path / "a.mp4")
    manifest = jsonl(tmp_path / "m.jsonl", {"path": "a.mp4", "license": "CC-BY", "tags": [1, 2]})
    result = read_manifest(manifest, now=NOW)
    assert result.problems == [] and len(result.items) == 1


def test_duplicate_id_is_judged_on_the_text_not_on_disk(tmp_path):
    touch(tmp_path / "b.mp4")
    manifest = jsonl(
        tmp_path / "m.jsonl", {"path": "gone.mp4", "external_id": "x"}, {"path": "b.mp4", "external_id": "x"}
    )
    reasons = problem_lines(read_manifest(manifest, now=NOW))
    assert "file not found" in reasons[1]
    assert reasons[2] == "duplicate external_id 'x' (first on line 1)"


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson", ".json-lines", ".JSONL"])
def test_jsonl_suffixes(tmp_path, suffix):
    touch(tmp_path / "a.mp4")
    result = read_manifest(jsonl(tmp_path / f"m{suffix}", {"path": "a.mp4"}), now=NOW)
    assert len(result.items) == 1 and result.problems == []


def test_crlf_and_bom_are_accepted(tmp_path):
    touch(tmp_path / "a.mp4")
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b'\xef\xbb\xbf{"path": "a.mp4"}\r\n\r\n{"path": "a.mp4", "external_id": "2"}\r\n')
    result = read_manifest(manifest, now=NOW)
    assert result.problems == [] and [i.manifest_line for i in result.items] == [1, 3]


# --- published_at ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2019-06-28", datetime(2019, 6, 28, tzinfo=UTC)),
        ("2019-06-28T10:30:00", datetime(2019, 6, 28, 10, 30, tzinfo=UTC)),  # naive -> UTC
        ("2019-06-28T10:30:00Z", datetime(2019, 6, 28, 10, 30, tzinfo=UTC)),
        ("2019-06-28T10:30:00-05:00", datetime(2019, 6, 28, 15, 30, tzinfo=UTC)),
        ("2019-06-28 10:30", datetime(2019, 6, 28, 10, 30, tzinfo=UTC)),
        ("1888-10-14", datetime(1888, 10, 14, tzinfo=UTC)),
        ("2024-06-02T11:00:00Z", datetime(2024, 6, 2, 11, tzinfo=UTC)),  # within a day of now
        ("2024-06-02", datetime(2024, 6, 2, tzinfo=UTC)),  # "today" east of UTC
    ],
)
def test_published_at_accepted(tmp_path, text, expected):
    touch(tmp_path / "a.mp4")
    result = read_manifest(jsonl(tmp_path / "m.jsonl", {"path": "a.mp4", "published_at": text}), now=NOW)
    assert result.problems == []
    [item] = result.items
    assert item.published_at == expected and item.published_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("28/06/2019", "not an ISO 8601"),
        ("2019", "not an ISO 8601"),
        ("June 28, 2019", "not an ISO 8601"),
        ("2019-02-30", "not an ISO 8601"),
        ("2024-06-03T00:00:01Z", "in the future"),
        ("2031-01-01", "in the future"),
        ("1887-12-31", "before 1888"),
        ("0001-01-01T00:00:00+05:00", "out of range"),
    ],
)
def test_published_at_rejected(tmp_path, text, fragment):
    touch(tmp_path / "a.mp4")
    result = read_manifest(jsonl(tmp_path / "m.jsonl", {"path": "a.mp4", "published_at": text}), now=NOW)
    assert result.items == []
    [problem] = result.problems
    assert problem.line == 1 and fragment in problem.reason


def test_future_is_judged_against_the_real_clock_by_default(tmp_path):
    touch(tmp_path / "a.mp4")
    tomorrow_plus = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    result = read_manifest(jsonl(tmp_path / "m.jsonl", {"path": "a.mp4", "published_at": tomorrow_plus}))
    assert "in the future" in result.problems[0].reason
    naive_now = datetime(2030, 1, 1)  # a naive `now` is read as UTC
    assert read_manifest(tmp_path / "m.jsonl", now=naive_now).problems == []


# --- paths -------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_manifest_folder(tmp_path, monkeypatch):
    video = touch(tmp_path / "archive" / "videos" / "a.mp4")
    other = touch(tmp_path / "elsewhere" / "b.mp4")
    manifest = jsonl(tmp_path / "archive" / "lists" / "m.jsonl", {"path": "../videos/a.mp4"}, {"path": str(other)})
    monkeypatch.chdir(tmp_path / "elsewhere")  # the working folder must not matter
    result = read_manifest(Path(os.path.relpath(manifest)), now=NOW)
    assert result.problems == []
    assert [i.path for i in result.items] == [video.resolve(), other.resolve()]
    assert all(i.path.is_absolute() for i in result.items)


# --- CSV -------------------------------------------------------------------------------------------


def test_csv_rows_header_counts_as_line_one(tmp_path):
    touch(tmp_path / "a.mp4")
    touch(tmp_path / "b.mov")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,external_id,title,source,published_at,uri,location,desk_notes\n"  # 1
        "a.mp4,ap-1,Storm,Northwind Wire,2019-06-28,https://x.example/1,Oslo,keep\n"  # 2
        "gone.mp4,ap-2,,,,,,\n"  # 3
        "\n"  # 4
        "b.mov,ap-1,,,,,,\n"  # 5 duplicate id
        "b.mov,ap-3,,,yesterday,,,\n"  # 6 bad date
        '"b.mov",ap-4,"Title, with comma",,2020-01-01T00:00:00Z,,,\n'  # 7
        ",ap-5,,,,,,\n",  # 8 empty path
        encoding="utf-8",
    )
    result = read_manifest(manifest, now=NOW)
    assert [(i.manifest_line, i.external_id) for i in result.items] == [(2, "ap-1"), (7, "ap-4")]
    first, second = result.items
    assert (first.title, first.source, first.location) == ("Storm", "Northwind Wire", "Oslo")
    assert first.published_at == datetime(2019, 6, 28, tzinfo=UTC)
    assert second.title == "Title, with comma" and second.source is None  # empty cell = not given
    reasons = problem_lines(result)
    assert sorted(reasons) == [3, 5, 6, 8]
    assert reasons[3].startswith("file not found: ")
    assert reasons[5] == "duplicate external_id 'ap-1' (first on line 2)"
    assert "not an ISO 8601" in reasons[6]
    assert reasons[8] == "missing path"


def test_csv_columns_in_any_order_and_short_rows(tmp_path):
    touch(tmp_path / "a.mp4")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\ufeffTitle, Path\nHello,a.mp4\n", encoding="utf-8")  # BOM, case, spaces
    [item] = read_manifest(manifest, now=NOW).items
    assert item.title == "Hello" and item.path == (tmp_path / "a.mp4").resolve()


def test_csv_multiline_field_keeps_line_numbers(tmp_path):
    touch(tmp_path / "a.mp4")
    manifest = tmp_path / "m.csv"
    manifest.write_text('path,title\na.mp4,"two\nlines"\ngone.mp4,x\n', encoding="utf-8")
    result = read_manifest(manifest, now=NOW)
    assert result.items[0].title == "two\nlines" and result.items[0].manifest_line == 2
    assert [p.line for p in result.problems] == [4]


def test_csv_without_path_column(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,title\na.mp4,x\n", encoding="utf-8")
    result = read_manifest(manifest, now=NOW)
    assert result.items == []
    [problem] = result.problems
    assert problem.line == 1 and "no 'path' column" in problem.reason


# --- whole-file problems -------------------------------------------------------------------------


def test_unknown_manifest_suffix(tmp_path):
    manifest = tmp_path / "m.txt"
    manifest.write_text('{"path": "a.mp4"}\n')
    result = read_manifest(manifest, now=NOW)
    assert result.items == []
    assert result.problems == [InputProblem(str(manifest), None, result.problems[0].reason)]
    assert "unknown manifest format '.txt'" in result.problems[0].reason


def test_missing_manifest(tmp_path):
    [problem] = read_manifest(tmp_path / "nope.jsonl", now=NOW).problems
    assert problem.line is None and problem.reason.startswith("cannot read manifest")


def test_manifest_not_utf8(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("path,title\na.mp4,Café\n".encode("latin-1"))
    [problem] = read_manifest(manifest, now=NOW).problems
    assert problem.line is None and "not UTF-8" in problem.reason


def test_problem_str_names_file_and_line():
    assert str(InputProblem("m.jsonl", 3, "missing path")) == "m.jsonl:3: missing path"
    assert str(InputProblem("x.mp4", None, "no such file or folder")) == "x.mp4: no such file or folder"


# --- collect_inputs --------------------------------------------------------------------------------


def test_folders_are_walked_sorted_recursively_skipping_hidden_and_non_video(tmp_path):
    root = tmp_path / "footage"
    for name in [
        "b.mp4",
        "a.MOV",
        "notes.txt",
        "manifest.jsonl",
        ".hidden.mp4",
        "sub/c.mkv",
        "sub/deeper/d.webm",
        ".git/e.mp4",
        "a_dir/f.avi",
        "z.ogv",
        "noext",
    ]:
        touch(root / name)
    result = collect_inputs([root], now=NOW)
    assert result.problems == []
    names = [str(i.path.relative_to(root.resolve())) for i in result.items]
    assert names == ["a.MOV", "b.mp4", "z.ogv", "a_dir/f.avi", "sub/c.mkv", "sub/deeper/d.webm"]
    assert all(i.manifest_line is None and i.external_id is None for i in result.items)


def test_explicit_files_are_taken_whatever_their_suffix(tmp_path):
    odd = touch(tmp_path / "clip.bin")
    plain = touch(tmp_path / "readme.txt")
    result = collect_inputs([odd, plain], now=NOW)
    assert [i.path for i in result.items] == [odd.resolve(), plain.resolve()]


def test_missing_positional_path_is_a_problem(tmp_path):
    video = touch(tmp_path / "a.mp4")
    result = collect_inputs([tmp_path / "nope.mp4", video, tmp_path / "nodir"], now=NOW)
    assert [i.path for i in result.items] == [video.resolve()]
    assert [(p.source, p.line, p.reason) for p in result.problems] == [
        (str(tmp_path / "nope.mp4"), None, "no such file or folder"),
        (str(tmp_path / "nodir"), None, "no such file or folder"),
    ]


def test_positional_manifests_and_manifest_option(tmp_path):
    a, b, c = (touch(tmp_path / n) for n in ("a.mp4", "b.mp4", "c.mp4"))
    m1 = jsonl(tmp_path / "one.jsonl", {"path": "a.mp4", "external_id": "one-a"})
    m2 = tmp_path / "two.csv"
    m2.write_text("path,external_id\nb.mp4,two-b\n")
    m3 = jsonl(tmp_path / "three.ndjson", {"path": "c.mp4", "external_id": "three-c"}, "oops")
    result = collect_inputs([m1, m2], [m3], now=NOW)
    assert [(i.path, i.external_id, i.manifest_line) for i in result.items] == [
        (a.resolve(), "one-a", 1),
        (b.resolve(), "two-b", 2),
        (c.resolve(), "three-c", 1),
    ]
    assert [(p.source, p.line) for p in result.problems] == [(str(m3), 2)]


def test_manifest_option_with_unknown_suffix_is_a_problem(tmp_path):
    result = collect_inputs([], [tmp_path / "list.txt"], now=NOW)
    assert result.items == [] and "unknown manifest format" in result.problems[0].reason


def test_same_file_twice_is_kept_once(tmp_path):
    video = touch(tmp_path / "v" / "a.mp4")
    link = tmp_path / "link.mp4"
    link.symlink_to(video)
    result = collect_inputs([video, tmp_path / "v", link, tmp_path / "v" / ".." / "v" / "a.mp4"], now=NOW)
    assert [i.path for i in result.items] == [video.resolve()] and result.problems == []


def test_manifest_metadata_wins_over_a_bare_path_and_keeps_first_place(tmp_path):
    a = touch(tmp_path / "v" / "a.mp4")
    b = touch(tmp_path / "v" / "b.mp4")
    manifest = jsonl(tmp_path / "m.jsonl", {"path": "v/b.mp4", "external_id": "meta-b", "title": "B"})
    result = collect_inputs([tmp_path / "v"], [manifest], now=NOW)
    assert [(i.path, i.external_id) for i in result.items] == [(a.resolve(), None), (b.resolve(), "meta-b")]
    # and the other way round: the manifest first, then the folder naming the same file
    result = collect_inputs([manifest, tmp_path / "v"], now=NOW)
    assert [(i.path, i.external_id) for i in result.items] == [(b.resolve(), "meta-b"), (a.resolve(), None)]
    assert result.items[0].title == "B" and result.items[0].manifest_line == 1


def test_two_manifest_lines_for_one_file_report_the_second(tmp_path):
    touch(tmp_path / "a.mp4")
    manifest = jsonl(
        tmp_path / "m.jsonl", {"path": "a.mp4", "external_id": "first"}, {"path": "./a.mp4", "external_id": "second"}
    )
    assert len(read_manifest(manifest, now=NOW).items) == 2  # read_manifest reports lines, not files
    result = collect_inputs([], [manifest], now=NOW)
    assert [i.external_id for i in result.items] == ["first"]
    [problem] = result.problems
    assert problem.line == 2 and problem.reason.startswith(f"same file as {manifest}:1")


def test_a_manifest_named_twice_is_read_once(tmp_path):
    touch(tmp_path / "a.mp4")
    manifest = jsonl(tmp_path / "m.jsonl", {"path": "a.mp4"}, "bad")
    result = collect_inputs([manifest], [manifest], now=NOW)
    assert len(result.items) == 1 and len(result.problems) == 1


def test_collect_passes_now_to_manifests(tmp_path):
    touch(tmp_path / "a.mp4")
    manifest = jsonl(tmp_path / "m.jsonl", {"path": "a.mp4", "published_at": "2020-01-01"})
    assert collect_inputs([manifest], now=datetime(2019, 1, 1, tzinfo=UTC)).items == []
    assert len(collect_inputs([manifest], now=NOW).items) == 1


def test_unreadable_folder_is_reported(tmp_path, monkeypatch):
    locked = tmp_path / "footage" / "locked"
    touch(locked / "a.mp4")
    touch(tmp_path / "footage" / "b.mp4")
    real_scandir = os.scandir

    def scandir(path="."):  # chmod would not stop root, so the refusal is simulated
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = collect_inputs([tmp_path / "footage"], now=NOW)
    assert [i.path.name for i in result.items] == ["b.mp4"]
    [problem] = result.problems
    assert problem.source == str(locked) and problem.reason == "cannot read folder: Permission denied"


def test_manifest_text_with_an_allowed_root(tmp_path):
    from firstseen.ingest.manifest import parse_manifest_text

    inside = touch(tmp_path / "footage" / "a.mp4")
    outside = touch(tmp_path / "private" / "b.mp4")
    text = "\n".join(
        [
            json.dumps({"path": "a.mp4"}),
            json.dumps({"path": str(outside)}),
            json.dumps({"path": "../private/b.mp4"}),
            "{bad",
        ]
    )
    result = parse_manifest_text(
        text, base_dir=tmp_path / "footage", source="job 1", now=NOW, allowed_root=tmp_path / "footage"
    )
    assert [item.path for item in result.items] == [inside]
    reasons = problem_lines(result)
    assert set(reasons) == {2, 3, 4}
    assert "outside the ingest root" in reasons[2] and "outside the ingest root" in reasons[3]
    assert all(p.source == "job 1" for p in result.problems)
