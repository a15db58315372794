"""The `firstseen` command: parses arguments, calls the core or a shell, maps errors to exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2
EXIT_BUSY = 75  # EX_TEMPFAIL: another writer holds the archive; schedulers treat it as "skipped"


def _settings(args: argparse.Namespace):
    from firstseen.settings import get_settings

    return get_settings(data_dir=getattr(args, "data_dir", None))


def _cmd_ingest(args: argparse.Namespace) -> int:
    from cli.progress import make_progress
    from firstseen.ingest.run import configured_inputs, run_ingest

    settings = _settings(args)
    paths, manifests = [Path(p) for p in args.paths], [Path(m) for m in args.manifest or []]
    if not paths and not manifests:
        paths, manifests = configured_inputs(settings)
    summary = run_ingest(settings, paths, manifests, make_progress(), retry_quarantined=args.retry_quarantined)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        for err in summary.errors:
            line = f" line {err['line']}" if err.get("line") else ""
            print(f"FAILED {err['path']}{line}: {err['reason']}", file=sys.stderr)
        quarantine = (f" ({summary.quarantined} newly quarantined, {summary.skipped_quarantined} left in quarantine)"
                      if summary.quarantined or summary.skipped_quarantined else "")
        print(f"added {summary.added}, skipped {summary.skipped}, failed {summary.failed}{quarantine}; "
              f"{summary.footage_hours:.3f} h of footage, {summary.frames} frames in {summary.wall_s:.1f} s "
              f"({summary.realtime_factor:.1f}x realtime); {summary.copy_links} copy links; "
              f"checkpoint {summary.checkpoint}")
    return EXIT_BAD_INPUT if summary.failed else EXIT_OK


def _cmd_nightly(args: argparse.Namespace) -> int:
    from indexer.nightly import healthy, run_nightly_once, run_scheduler
    from indexer.settings import get_nightly_settings

    settings = get_nightly_settings(data_dir=getattr(args, "data_dir", None))
    if args.healthcheck:
        ok, why = healthy(settings)
        print(why)
        return EXIT_OK if ok else EXIT_INTERNAL
    if args.once:
        outcome = run_nightly_once(settings)
        print(json.dumps(outcome, indent=2, default=str))
        return EXIT_BAD_INPUT if outcome["ingest"]["failed"] else EXIT_OK
    _service_logging()
    run_scheduler(settings)
    return EXIT_OK


def _cmd_reindex(args: argparse.Namespace) -> int:
    from firstseen.ops.reindex import maintain_index
    from cli.progress import bar

    with bar("reindex", unit="vec") as progress:
        report = maintain_index(_settings(args), args.kind, progress=progress)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"{report.action}: {report.reason}; {report.kind} index of {report.vectors} vectors "
              f"at checkpoint {report.checkpoint}"
              + (f" ({report.nlist} lists, nprobe {report.nprobe}; trained in {report.train_s:.1f} s, "
                 f"filled in {report.add_s:.1f} s, published in {report.publish_s:.1f} s)"
                 if report.kind == "ivf" and report.action != "none" else ""))
    return EXIT_OK


def _cmd_backup(args: argparse.Namespace) -> int:
    from firstseen.ops.backup import backup_archive

    report = backup_archive(_settings(args), Path(args.dest))
    print(json.dumps(report.to_dict(), indent=2, default=str))
    return EXIT_OK


def _cmd_restore(args: argparse.Namespace) -> int:
    from firstseen.ops.backup import restore_archive

    report = restore_archive(_settings(args), Path(args.src))
    print(json.dumps(report.to_dict(), indent=2, default=str))
    return EXIT_OK


def _service_logging() -> None:
    """One JSON object a line on stderr: the scheduler runs as a service, read by log collectors."""
    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return json.dumps({"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname,
                               "logger": record.name, "message": record.getMessage()})

    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())


def _cmd_search(args: argparse.Namespace) -> int:
    from firstseen.search.report import format_result
    from firstseen.search.searcher import Searcher

    path = Path(args.file)
    if not path.is_file():
        raise _UsageError(f"no such file: {path}")
    if args.evidence:
        from firstseen.evidence.pack import check_destination

        check_destination(Path(args.evidence))  # before the search: bad input costs nothing
    with Searcher(_settings(args)) as searcher:
        result = searcher.search(path, top_k=args.top_k)
        if args.evidence:
            written = _write_evidence(searcher, result, path, Path(args.evidence))
    print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) if args.json else format_result(result))
    if args.evidence:
        print(f"evidence pack: {written}", file=sys.stderr)
    return EXIT_OK


def _write_evidence(searcher, result, path: Path, dest: Path) -> Path:
    from datetime import UTC, datetime

    from firstseen.evidence.pack import QueryFile, pack_of_search, query_facts
    from firstseen.evidence.onscreen_text import open_reader

    reader, note = open_reader(searcher.settings.ocr, searcher.settings.ocr_languages)
    try:
        pack = pack_of_search(searcher.archive, result, QueryFile(path), query_facts=query_facts(path),
                              descriptor_config=searcher.descriptor.config_id,
                              calibration=searcher.calibration, text_reader=reader, text_note=note,
                              searched_at=datetime.now(UTC).isoformat(timespec="seconds"))
        return pack.write(dest)
    finally:
        if reader is not None:
            reader.close()


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from search_api.server import serve
    except ImportError as exc:
        raise _UsageError(f"the HTTP API needs the 'api' extra (pip install 'firstseen[api]'): {exc}") from None
    from search_api.settings import get_api_settings

    serve(get_api_settings(data_dir=getattr(args, "data_dir", None)), host=args.host, port=args.port)
    return EXIT_OK


def _cmd_stats(args: argparse.Namespace) -> int:
    from firstseen.ops.stats import archive_stats, format_stats

    stats = archive_stats(_settings(args))
    print(json.dumps(stats, indent=2, default=str) if args.json else format_stats(stats))
    return EXIT_OK


def _cmd_remove(args: argparse.Namespace) -> int:
    from firstseen.ops.takedown import take_down

    settings = _settings(args)
    record = take_down(settings.data_dir, settings.resolved_catalog_url(), args.ref, lock_wait_s=settings.lock_wait_s)
    print(f"removed {record.video_id} ({record.external_id or record.path}): "
          f"{record.frame_count} frames taken out of the index and the catalog")
    return EXIT_OK


def _cmd_text_pass(args: argparse.Namespace) -> int:
    from firstseen.evidence.onscreen_text import TesseractReader
    from firstseen.evidence.text_pass import TextPassParams, read_archive_text

    settings = _settings(args)
    if not settings.ocr:
        raise _UsageError("on-screen text is turned off (FIRSTSEEN_OCR=false)")
    params = TextPassParams(every_s=settings.ocr_every_s, max_side=settings.ocr_max_side)
    with TesseractReader(settings.ocr_languages.split(",")) as reader:
        summary = read_archive_text(settings.resolved_catalog_url(), reader, params, again=args.again)
    print(json.dumps(summary.to_dict(), indent=2) if args.json else
          f"read on-screen text of {summary.videos} videos ({summary.failed} failed): {summary.frames_read} frames, "
          f"{summary.lines} lines in {summary.wall_s:.1f} s")
    return EXIT_OK


def _cmd_text(args: argparse.Namespace) -> int:
    from firstseen.evidence.text_pass import find_archive_text

    settings = _settings(args)
    found = find_archive_text(settings.resolved_catalog_url(), args.query, limit=args.limit)
    rows = [dict(span.to_dict(), external_id=video.external_id, title=video.title) for span, video in found]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif not rows:
        print(f"no archived footage shows {args.query!r} on screen (of the videos read so far)")
    for row in [] if args.json else rows:
        print(f"{row['external_id'] or row['video_id']}  {row['start_s']:.1f}-{row['end_s']:.1f} s  {row['text']}")
    return EXIT_OK


class _UsageError(Exception):
    """Arguments argparse accepts but the command cannot use (exit 2)."""


def _cmd_recheck(args: argparse.Namespace) -> int:
    from firstseen.archive import open_archive
    from firstseen.search.calibration import load_scoring
    from firstseen.descriptors import create_descriptor
    from firstseen.ops.recheck import recheck_archive

    settings = _settings(args)
    descriptor = create_descriptor(settings.descriptor, settings)
    calibration, background = load_scoring(descriptor.config_id, settings.calibration_path, settings.background_dir)
    with open_archive(settings.data_dir, settings.resolved_catalog_url(), writable=True,
                      lock_wait_s=settings.lock_wait_s) as archive:
        report = recheck_archive(archive, calibration, settings, background)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"rechecked {report.videos} videos: {report.refreshed} given frame flags and thumbnails "
              f"({report.uninformative_frames} uninformative frames); copy links {report.links_before} -> "
              f"{report.links_after}, every one verified")
        for missing in report.missing:
            print(f"NOT RECHECKED {missing['video_id']} ({missing['path']}): {missing['reason']}", file=sys.stderr)
    return EXIT_BAD_INPUT if report.missing else EXIT_OK


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="firstseen", description="Reverse video search for newsrooms.")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", help="archive folder (default: $FIRSTSEEN_DATA_DIR or ./firstseen-data)")

    ingest = sub.add_parser("ingest", help="add videos (files, folders, JSONL/CSV manifests) to the archive")
    ingest.add_argument("paths", nargs="*", metavar="PATH")
    ingest.add_argument("--manifest", action="append", metavar="FILE", help="JSONL or CSV manifest (repeatable)")
    data_dir(ingest)
    ingest.add_argument("--json", action="store_true", help="print the run summary as JSON")
    ingest.add_argument("--retry-quarantined", action="store_true",
                        help="give quarantined files another full set of attempts")
    ingest.set_defaults(run=_cmd_ingest)

    nightly = sub.add_parser("nightly", help="the scheduled job: ingest the configured drop folders and "
                             "manifests, then maintain the index (every night at $FIRSTSEEN_NIGHTLY_AT)")
    data_dir(nightly)
    nightly_mode = nightly.add_mutually_exclusive_group()
    nightly_mode.add_argument("--once", action="store_true", help="run once now and exit (for cron or systemd)")
    nightly_mode.add_argument("--healthcheck", action="store_true",
                              help="exit 0 if a running scheduler wrote its status in the last 3 minutes")
    nightly.set_defaults(run=_cmd_nightly)

    reindex = sub.add_parser("reindex", help="rebuild the index from stored descriptors (no video is decoded)")
    data_dir(reindex)
    reindex.add_argument("--kind", choices=("auto", "ivf", "flat"), default="auto",
                         help="auto: IVF past $FIRSTSEEN_INDEX_IVF_MIN_VECTORS, else what is needed (default)")
    reindex.add_argument("--json", action="store_true")
    reindex.set_defaults(run=_cmd_reindex)

    backup = sub.add_parser("backup", help="consistent snapshot of catalog, index and raw descriptors")
    backup.add_argument("dest", metavar="DEST", help="folder to create (must not exist)")
    data_dir(backup)
    backup.set_defaults(run=_cmd_backup)

    restore = sub.add_parser("restore", help="restore a backup into an empty data folder and catalog")
    restore.add_argument("src", metavar="SRC", help="a folder made by `firstseen backup`")
    data_dir(restore)
    restore.set_defaults(run=_cmd_restore)

    search = sub.add_parser("search", help="find the archive footage a clip or screenshot came from")
    search.add_argument("file", metavar="FILE", help="video clip or still image")
    data_dir(search)
    search.add_argument("--top-k", type=_positive_int, default=10, metavar="N", help="matches to list (default 10)")
    search.add_argument("--json", action="store_true", help="print the result object (the JSON contract)")
    search.add_argument("--evidence", metavar="DIR|FILE.zip", help="also write the evidence pack (report.html, "
                        "report.pdf, result.json, frames, strips) to a new folder or a .zip")
    search.set_defaults(run=_cmd_search)

    serve = sub.add_parser("serve", help="run the HTTP API and the web page")
    data_dir(serve)
    serve.add_argument("--host", help="address to listen on (default $FIRSTSEEN_API_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=_positive_int, help="port (default $FIRSTSEEN_API_PORT or 8000)")
    serve.set_defaults(run=_cmd_serve)

    stats = sub.add_parser("stats", help="what the archive holds")
    data_dir(stats)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=_cmd_stats)

    recheck = sub.add_parser("recheck", help="bring an older archive up to date: flag uninformative frames, "
                                             "keep thumbnails, re-check every copy link by geometry")
    recheck.add_argument("--json", action="store_true")
    data_dir(recheck)
    recheck.set_defaults(run=_cmd_recheck)

    text_pass = sub.add_parser("text-pass", help="read the on-screen text of archived videos not read yet "
                                                 "(the nightly job runs it after ingest)")
    text_pass.add_argument("--again", action="store_true", help="read every committed video again")
    text_pass.add_argument("--json", action="store_true")
    data_dir(text_pass)
    text_pass.set_defaults(run=_cmd_text_pass)

    text_search = sub.add_parser("text", help="find archived footage by the words shown on screen")
    text_search.add_argument("query", metavar="WORDS")
    text_search.add_argument("--limit", type=_positive_int, default=20, metavar="N")
    text_search.add_argument("--json", action="store_true")
    data_dir(text_search)
    text_search.set_defaults(run=_cmd_text)

    remove = sub.add_parser("remove", help="take a video out of the index and the catalog (takedown)")
    remove.add_argument("ref", metavar="EXTERNAL_ID|VIDEO_ID")
    data_dir(remove)
    remove.set_defaults(run=_cmd_remove)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Libraries (faiss's loader, alembic) talk at INFO; only our own progress lines should.
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("firstseen").setLevel(logging.INFO)
    from firstseen.errors import ArchiveLockedError, BadInputError, FirstSeenError

    try:
        return args.run(args)
    except ArchiveLockedError as exc:
        print(f"firstseen: skipped: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except _UsageError as exc:
        print(f"firstseen: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BadInputError as exc:
        print(f"firstseen: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FirstSeenError as exc:
        print(f"firstseen: error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print("firstseen: interrupted; committed work is kept, the rest is rolled back on the next run",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
