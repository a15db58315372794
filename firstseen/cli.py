"""The `firstseen` command: parses arguments, calls the core or a shell, maps errors to exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2


def _settings(args: argparse.Namespace):
    from firstseen.settings import get_settings

    return get_settings(data_dir=getattr(args, "data_dir", None))


def _cmd_ingest(args: argparse.Namespace) -> int:
    from indexer.worker import run_ingest

    if not args.paths and not args.manifest:
        raise _UsageError("ingest needs at least one PATH or --manifest FILE")
    summary = run_ingest(_settings(args), [Path(p) for p in args.paths],
                         [Path(m) for m in args.manifest or []])
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        for err in summary.errors:
            line = f" line {err['line']}" if err.get("line") else ""
            print(f"FAILED {err['path']}{line}: {err['reason']}", file=sys.stderr)
        print(f"added {summary.added}, skipped {summary.skipped}, failed {summary.failed}; "
              f"{summary.footage_hours:.3f} h of footage, {summary.frames} frames in {summary.wall_s:.1f} s "
              f"({summary.realtime_factor:.1f}x realtime); {summary.copy_links} copy links; "
              f"checkpoint {summary.checkpoint}")
    return EXIT_BAD_INPUT if summary.failed else EXIT_OK


def _cmd_search(args: argparse.Namespace) -> int:
    from firstseen.report import format_result
    from firstseen.search import Searcher

    path = Path(args.file)
    if not path.is_file():
        raise _UsageError(f"no such file: {path}")
    with Searcher(_settings(args)) as searcher:
        result = searcher.search(path, top_k=args.top_k)
    print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) if args.json else format_result(result))
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from search_api.server import serve
    except ImportError as exc:
        raise _UsageError(f"the HTTP API needs the 'api' extra (pip install 'firstseen[api]'): {exc}") from None
    serve(_settings(args), host=args.host, port=args.port)
    return EXIT_OK


def _cmd_stats(args: argparse.Namespace) -> int:
    from firstseen.stats import archive_stats, format_stats

    stats = archive_stats(_settings(args))
    print(json.dumps(stats, indent=2, default=str) if args.json else format_stats(stats))
    return EXIT_OK


def _cmd_remove(args: argparse.Namespace) -> int:
    from firstseen.archive import open_archive

    settings = _settings(args)
    with open_archive(settings.data_dir, settings.resolved_catalog_url(), writable=True) as archive:
        record = archive.remove(args.ref)
    print(f"removed {record.video_id} ({record.external_id or record.path}): "
          f"{record.frame_count} frames taken out of the index and the catalog")
    return EXIT_OK


class _UsageError(Exception):
    """Arguments argparse accepts but the command cannot use (exit 2)."""


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
    ingest.set_defaults(run=_cmd_ingest)

    search = sub.add_parser("search", help="find the archive footage a clip or screenshot came from")
    search.add_argument("file", metavar="FILE", help="video clip or still image")
    data_dir(search)
    search.add_argument("--top-k", type=_positive_int, default=10, metavar="N", help="matches to list (default 10)")
    search.add_argument("--json", action="store_true", help="print the result object (the JSON contract)")
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
    from firstseen.errors import BadInputError, FirstSeenError

    try:
        return args.run(args)
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
