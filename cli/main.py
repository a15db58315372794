"""The `firstseen` command: its arguments, and errors mapped to exit codes (the subcommands are in commands.py)."""

from __future__ import annotations

import argparse
import logging
import sys

from cli import commands


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
    ingest.add_argument(
        "--retry-quarantined", action="store_true", help="give quarantined files another full set of attempts"
    )
    ingest.add_argument(
        "--shared",
        action="store_true",
        help="share the work with other ingest processes (any machine) through the catalog's job ledger; "
        "commits go through the archive-wide lock (a PostgreSQL catalog for several machines)",
    )
    ingest.add_argument(
        "--executor", choices=["local", "ray"], default="local", help="where decoding and description run"
    )
    ingest.add_argument("--ray-address", help="a Ray cluster to run on (default: a local one)")
    ingest.add_argument(
        "--ray-actors", type=int, default=1, help="descriptor actors on Ray, each loading the model once (default 1)"
    )
    ingest.set_defaults(run=commands.cmd_ingest)

    nightly = sub.add_parser(
        "nightly",
        help="the scheduled job: ingest the configured drop folders and "
        "manifests, then maintain the index (every night at $FIRSTSEEN_NIGHTLY_AT)",
    )
    data_dir(nightly)
    nightly_mode = nightly.add_mutually_exclusive_group()
    nightly_mode.add_argument("--once", action="store_true", help="run once now and exit (for cron or systemd)")
    nightly_mode.add_argument(
        "--healthcheck",
        action="store_true",
        help="exit 0 if a running scheduler wrote its status in the last 3 minutes",
    )
    nightly.set_defaults(run=commands.cmd_nightly)

    reindex = sub.add_parser("reindex", help="rebuild the index from stored descriptors (no video is decoded)")
    data_dir(reindex)
    reindex.add_argument(
        "--kind",
        choices=("auto", "ivf", "flat"),
        default="auto",
        help="auto: IVF past $FIRSTSEEN_INDEX_IVF_MIN_VECTORS, else what is needed (default)",
    )
    reindex.add_argument("--json", action="store_true")
    reindex.set_defaults(run=commands.cmd_reindex)

    backup = sub.add_parser("backup", help="consistent snapshot of catalog, index and raw descriptors")
    backup.add_argument("dest", metavar="DEST", help="folder to create (must not exist)")
    data_dir(backup)
    backup.set_defaults(run=commands.cmd_backup)

    restore = sub.add_parser("restore", help="restore a backup into an empty data folder and catalog")
    restore.add_argument("src", metavar="SRC", help="a folder made by `firstseen backup`")
    data_dir(restore)
    restore.set_defaults(run=commands.cmd_restore)

    search = sub.add_parser("search", help="find the archive footage a clip or screenshot came from")
    search.add_argument("file", metavar="FILE", help="video clip or still image")
    data_dir(search)
    search.add_argument("--top-k", type=_positive_int, default=10, metavar="N", help="matches to list (default 10)")
    search.add_argument("--json", action="store_true", help="print the result object (the JSON contract)")
    search.add_argument(
        "--evidence",
        metavar="DIR|FILE.zip",
        help="also write the evidence pack (report.html, "
        "report.pdf, result.json, frames, strips) to a new folder or a .zip",
    )
    search.set_defaults(run=commands.cmd_search)

    serve = sub.add_parser("serve", help="run the HTTP API and the web page")
    data_dir(serve)
    serve.add_argument("--host", help="address to listen on (default $FIRSTSEEN_API_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=_positive_int, help="port (default $FIRSTSEEN_API_PORT or 8000)")
    serve.set_defaults(run=commands.cmd_serve)

    stats = sub.add_parser("stats", help="what the archive holds")
    data_dir(stats)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=commands.cmd_stats)

    recheck = sub.add_parser(
        "recheck",
        help="bring an older archive up to date: flag uninformative frames, "
        "keep thumbnails, re-check every copy link by geometry",
    )
    recheck.add_argument("--json", action="store_true")
    data_dir(recheck)
    recheck.set_defaults(run=commands.cmd_recheck)

    text_pass = sub.add_parser(
        "text-pass",
        help="read the on-screen text of archived videos not read yet (the nightly job runs it after ingest)",
    )
    text_pass.add_argument("--again", action="store_true", help="read every committed video again")
    text_pass.add_argument("--json", action="store_true")
    data_dir(text_pass)
    text_pass.set_defaults(run=commands.cmd_text_pass)

    text_search = sub.add_parser("text", help="find archived footage by the words shown on screen")
    text_search.add_argument("query", metavar="WORDS")
    text_search.add_argument("--limit", type=_positive_int, default=20, metavar="N")
    text_search.add_argument("--json", action="store_true")
    data_dir(text_search)
    text_search.set_defaults(run=commands.cmd_text)

    remove = sub.add_parser("remove", help="take a video out of the index and the catalog (takedown)")
    remove.add_argument("ref", metavar="EXTERNAL_ID|VIDEO_ID")
    data_dir(remove)
    remove.set_defaults(run=commands.cmd_remove)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Libraries (faiss's loader, alembic) talk at INFO; only our own progress lines should.
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("firstseen").setLevel(logging.INFO)
    from pydantic import ValidationError

    from firstseen.errors import ArchiveLockedError, BadInputError, FirstSeenError

    try:
        return args.run(args)
    except ArchiveLockedError as exc:
        print(f"firstseen: skipped: {exc}", file=sys.stderr)
        return commands.EXIT_BUSY
    except commands.UsageError as exc:
        print(f"firstseen: error: {exc}", file=sys.stderr)
        return commands.EXIT_BAD_INPUT
    except BadInputError as exc:
        print(f"firstseen: error: {exc}", file=sys.stderr)
        return commands.EXIT_BAD_INPUT
    except FirstSeenError as exc:
        print(f"firstseen: error: {exc}", file=sys.stderr)
        return commands.EXIT_INTERNAL
    except ValidationError as exc:  # a FIRSTSEEN_* setting (the core's or a plug-in's) out of range
        if not exc.title.endswith("Settings"):
            raise
        for problem in exc.errors():
            name = "FIRSTSEEN_" + "_".join(str(part) for part in problem["loc"]).upper()
            print(f"firstseen: error: {name}={problem.get('input')!r}: {problem['msg']}", file=sys.stderr)
        return commands.EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            "firstseen: interrupted; committed work is kept, the rest is rolled back on the next run", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
