"""Turn the operator's command-line inputs (video files, folders, manifests) into work items."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from firstseen.media.decode import VIDEO_EXTENSIONS  # one list, so the walk and the decoder agree
from firstseen.records import VideoMetadata

JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json-lines"})
CSV_SUFFIXES = frozenset({".csv"})
MANIFEST_SUFFIXES = JSONL_SUFFIXES | CSV_SUFFIXES

TEXT_FIELDS = ("external_id", "title", "source", "uri", "location")
# Nothing can be footage before cinema existed (Roundhay Garden Scene, 1888): such a date is a typo.
EARLIEST_FOOTAGE = datetime(1888, 1, 1, tzinfo=UTC)
# A date "today" in a time zone ahead of UTC is tomorrow in UTC; allow that much, not more.
FUTURE_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class InputProblem:
    """A bad manifest line or an unreadable input: reported to the operator and skipped."""

    source: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}" if self.line else f"{self.source}: {self.reason}"


@dataclass(frozen=True)
class CollectedInputs:
    """The work items to ingest, in a stable order, and everything that was skipped and why."""

    items: list[VideoMetadata]
    problems: list[InputProblem]


def _utc_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def parse_published_at(text: str, now: datetime) -> datetime:
    """An ISO 8601 date or datetime as an aware UTC datetime; ValueError with the reason if not."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"published_at is not an ISO 8601 date or datetime: {text!r}") from None
    try:  # a date-only or naive value carries no zone; the contract reads it as UTC
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"published_at is out of range: {text!r}") from None
    if value < EARLIEST_FOOTAGE:
        raise ValueError(f"published_at {text!r} is before 1888, when film did not exist yet")
    if value > now + FUTURE_SLACK:
        raise ValueError(f"published_at {text!r} is in the future")
    return value


def _parse_record(
    raw: dict[str, Any], base_dir: Path, line: int, now: datetime, first_line_of_id: dict[str, int]
) -> VideoMetadata | list[str]:
    """One manifest record as VideoMetadata, or every reason it is invalid (so one pass fixes all)."""
    reasons: list[str] = []
    values: dict[str, str | None] = {}
    for name in ("path", *TEXT_FIELDS, "published_at"):
        value = raw.get(name)
        if value is not None and not isinstance(value, str):
            reasons.append(f"{name} must be a string, got {_json_kind(value)}: {value!r}")
        values[name] = (value.strip() or None) if isinstance(value, str) else None

    external_id = values["external_id"]
    if external_id is not None:
        # Judged on the manifest text alone, so which line is "the duplicate" never depends on disk.
        first = first_line_of_id.setdefault(external_id, line)
        if first != line:
            reasons.append(f"duplicate external_id {external_id!r} (first on line {first})")

    published_at = None
    if values["published_at"] is not None:
        try:
            published_at = parse_published_at(values["published_at"], now)
        except ValueError as exc:
            reasons.append(str(exc))

    path = None
    if values["path"] is None:
        if raw.get("path") is None:
            reasons.append("missing path")
        elif isinstance(raw["path"], str):
            reasons.append("empty path")
    else:
        path = Path(os.path.abspath(base_dir / values["path"]))
        try:
            if not path.exists():
                reasons.append(f"file not found: {path}")
            elif not path.is_file():
                reasons.append(f"not a file: {path}")
        except (OSError, ValueError) as exc:  # e.g. a NUL byte or a name too long for the OS
            reasons.append(f"unusable path {values['path']!r}: {exc}")

    if reasons:
        return reasons
    assert path is not None
    return VideoMetadata(
        path=path, published_at=published_at, manifest_line=line, **{name: values[name] for name in TEXT_FIELDS}
    )


def _jsonl_records(text: str) -> list[tuple[int, Any]]:
    # Split on \n only: str.splitlines would also split on U+2028 inside a JSON string.
    records: list[tuple[int, Any]] = []
    for number, raw_line in enumerate(text.split("\n"), start=1):
        stripped = raw_line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            records.append((number, json.loads(stripped)))
        except json.JSONDecodeError as exc:
            records.append((number, ValueError(f"invalid JSON: {exc.msg} at column {exc.colno}")))
    return records


def _csv_records(text: str) -> list[tuple[int, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[tuple[int, Any]] = []
    header: list[str] | None = None
    end_of_previous = 0
    for row in reader:
        # A quoted field may span lines: a record starts right after the previous one ended.
        start, end_of_previous = end_of_previous + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [name.strip().lower() for name in row]
            if "path" not in header:
                records.append((start, ValueError(f"CSV header has no 'path' column: {row}")))
                return records
            continue
        # CSV cannot tell an empty cell from an absent value: both mean "not given".
        records.append((start, {name: cell for name, cell in zip(header, row) if name and cell.strip()}))
    return records


def read_manifest(path: Path, *, now: datetime | None = None) -> CollectedInputs:
    """Read a JSONL or CSV manifest; every bad line becomes a problem, the good ones still come."""
    path = Path(path)
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        return CollectedInputs(
            [],
            [
                InputProblem(
                    source,
                    None,
                    f"unknown manifest format {path.suffix or '(no suffix)'!r}: use .jsonl/.ndjson/.json-lines or .csv",
                )
            ],
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")  # -sig: spreadsheet exports start with a BOM
    except OSError as exc:
        return CollectedInputs([], [InputProblem(source, None, f"cannot read manifest: {exc.strerror or exc}")])
    except UnicodeDecodeError as exc:
        return CollectedInputs(
            [], [InputProblem(source, None, f"manifest is not UTF-8 text (bad byte at offset {exc.start})")]
        )

    return parse_manifest_text(
        text, csv_format=suffix in CSV_SUFFIXES, base_dir=Path(os.path.abspath(path)).parent, source=source, now=now
    )


def parse_manifest_text(
    text: str,
    *,
    csv_format: bool = False,
    base_dir: Path,
    source: str,
    now: datetime | None = None,
    allowed_root: Path | None = None,
) -> CollectedInputs:
    """Manifest lines already in memory (from a file or an HTTP request). Relative paths are
    taken from base_dir; with allowed_root, a path that resolves outside it is a bad line."""
    current = _utc_now(now)
    records = _csv_records(text) if csv_format else _jsonl_records(text)
    items: list[VideoMetadata] = []
    problems: list[InputProblem] = []
    first_line_of_id: dict[str, int] = {}
    for line, record in records:
        if isinstance(record, ValueError):
            problems.append(InputProblem(source, line, str(record)))
            continue
        if not isinstance(record, dict):
            problems.append(InputProblem(source, line, f"expected a JSON object, got {_json_kind(record)}"))
            continue
        result = _parse_record(record, base_dir, line, current, first_line_of_id)
        if (
            isinstance(result, VideoMetadata)
            and allowed_root is not None
            and not result.path.resolve().is_relative_to(allowed_root.resolve())
        ):
            result = [f"path {result.path} lies outside the ingest root {allowed_root}"]
        if isinstance(result, VideoMetadata):
            items.append(result)
        else:
            problems.append(InputProblem(source, line, "; ".join(result)))
    return CollectedInputs(items, problems)


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _walk_videos(folder: Path, problems: list[InputProblem]) -> list[Path]:
    found: list[Path] = []

    def report(exc: OSError) -> None:
        problems.append(InputProblem(str(exc.filename or folder), None, f"cannot read folder: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=report):
        # Sorting in place steers os.walk, so the order is the same on every file system.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                found.append(Path(dirpath) / name)
    return found


def _dedup_key(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: fall back to the name as given
        return Path(os.path.abspath(path))


def collect_inputs(
    paths: Sequence[Path], manifests: Sequence[Path] = (), *, now: datetime | None = None
) -> CollectedInputs:
    """Positional paths (videos, folders, manifests) then --manifest files, as one de-duplicated list."""
    current = _utc_now(now)
    candidates: list[tuple[str, VideoMetadata]] = []  # (manifest it came from or "", item)
    problems: list[InputProblem] = []
    manifests_read: set[Path] = set()

    def add_manifest(manifest: Path) -> None:
        if _dedup_key(manifest) in manifests_read:  # named twice: reading it again only adds noise
            return
        manifests_read.add(_dedup_key(manifest))
        collected = read_manifest(manifest, now=current)
        candidates.extend((str(manifest), item) for item in collected.items)
        problems.extend(collected.problems)

    for given in (Path(p) for p in paths):
        if given.is_dir():
            candidates.extend(("", VideoMetadata(path=Path(os.path.abspath(p)))) for p in _walk_videos(given, problems))
        elif given.suffix.lower() in MANIFEST_SUFFIXES and given.is_file():
            add_manifest(given)
        elif given.exists():
            # Named explicitly, so always attempted: the ingest says so if it is not video.
            candidates.append(("", VideoMetadata(path=Path(os.path.abspath(given)))))
        else:
            problems.append(InputProblem(str(given), None, "no such file or folder"))
    for manifest in manifests:
        add_manifest(Path(manifest))

    # One item per file, at the place it first appeared; manifest metadata beats a bare path,
    # and a second manifest line for the same file is reported, since its metadata is dropped.
    kept: dict[Path, tuple[str, VideoMetadata]] = {}
    for source, item in candidates:
        key = _dedup_key(item.path)
        first = kept.get(key)
        if first is None or (first[1].manifest_line is None and item.manifest_line is not None):
            kept[key] = (source, item)  # re-assigning a key keeps its first position
        elif item.manifest_line is not None:
            problems.append(
                InputProblem(
                    source,
                    item.manifest_line,
                    f"same file as {first[0]}:{first[1].manifest_line}, skipped: {item.path}",
                )
            )
    return CollectedInputs([item for _, item in kept.values()], problems)
