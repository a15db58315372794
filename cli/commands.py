"""The `firstseen` subcommands: each turns parsed arguments into one call of the core and prints the outcome."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2
EXIT_BUSY = 75  # EX_TEMPFAIL: another writer holds the archive; schedulers treat it as "skipped"


def settings_of(args: argparse.Namespace):
    from firstseen.settings import get_settings

    return get_settings(data_dir=getattr(args, "data_dir", None))


def cmd_ingest(args: argparse.Namespace) -> int:
    from cli.progress import make_progress
    from firstseen.ingest.run import configured_inputs, run_ingest

    settings = settings_of(args)
    paths, manifests = [Path(p) for p in args.paths], [Path(m) for m in args.manifest or []]
    if not paths and not manifests:
        paths, manifests = configured_inputs(settings)
    if args.shared or settings.ingest_shared or args.executor != "local":
        from firstseen.ingest.manifest import collect_inputs
        from firstseen.ingest.shared import ingest_shared, local_executor

        executor = local_executor
        if args.executor == "ray":
            from firstseen.ingest.ray_executor import ray_executor

            executor = ray_executor(args.ray_address, settings, actors=args.ray_actors)
        summary = ingest_shared(settings, collect_inputs(paths, manifests), make_progress(), executor=executor)
    else:
        summary = run_ingest(settings, paths, manifests, make_progress(), retry_quarantined=args.retry_quarantined)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        for err in summary.errors:
            line = f" line {err['line']}" if err.get("line") else ""
            print(f"FAILED {err['path']}{line}: {err['reason']}", file=sys.stderr)
        quarantine = (
            f" ({summary.quarantined} newly quarantined, {summary.skipped_quarantined} left in quarantine)"
            if summary.quarantined or summary.skipped_quarantined
            else ""
        )
        print(
            f"added {summary.added}, skipped {summary.skipped}, failed {summary.failed}{quarantine}; "
            f"{summary.footage_hours:.3f} h of footage, {summary.frames} frames in {summary.wall_s:.1f} s "
            f"({summary.realtime_factor:.1f}x realtime); {summary.copy_links} copy links; "
            f"checkpoint {summary.checkpoint}"
        )
    return EXIT_BAD_INPUT if summary.failed else EXIT_OK


def cmd_nightly(args: argparse.Namespace) -> int:
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


def cmd_reindex(args: argparse.Namespace) -> int:
    from cli.progress import bar
    from firstseen.ops.reindex import maintain_index

    with bar("reindex", unit="vec") as progress:
        report = maintain_index(settings_of(args), args.kind, progress=progress)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(
            f"{report.action}: {report.reason}; {report.kind} index of {report.vectors} vectors "
            f"at checkpoint {report.checkpoint}"
            + (
                f" ({report.nlist} lists, nprobe {report.nprobe}; trained in {report.train_s:.1f} s, "
                f"filled in {report.add_s:.1f} s, published in {report.publish_s:.1f} s)"
                if report.kind == "ivf" and report.action != "none"
                else ""
            )
        )
    return EXIT_OK


def cmd_backup(args: argparse.Namespace) -> int:
    from firstseen.ops.backup import backup_archive

    report = backup_archive(settings_of(args), Path(args.dest))
    print(json.dumps(report.to_dict(), indent=2, default=str))
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    from firstseen.ops.backup import restore_archive

    report = restore_archive(settings_of(args), Path(args.src))
    print(json.dumps(report.to_dict(), indent=2, default=str))
    return EXIT_OK


def _service_logging() -> None:
    """One JSON object a line on stderr: the scheduler runs as a service, read by log collectors."""

    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return json.dumps(
                {
                    "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
                    "level": record.levelname,
                    "logger": record.name,
                    "message": record.getMessage(),
                }
            )

    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())


def cmd_search(args: argparse.Namespace) -> int:
    from firstseen.search.report import format_result
    from firstseen.search.searcher import Searcher

    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    if args.evidence:
        from firstseen.evidence.pack import check_destination

        check_destination(Path(args.evidence))  # before the search: bad input costs nothing
    with Searcher(settings_of(args)) as searcher:
        result = searcher.search(path, top_k=args.top_k)
        if args.evidence:
            written = _write_evidence(searcher, result, path, Path(args.evidence))
    print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) if args.json else format_result(result))
    if args.evidence:
        print(f"evidence pack: {written}", file=sys.stderr)
    return EXIT_OK


def _write_evidence(searcher, result, path: Path, dest: Path) -> Path:
    from datetime import UTC, datetime

    from firstseen.evidence.onscreen_text import open_reader
    from firstseen.evidence.pack import pack_of_search, query_facts, write_pack
    from firstseen.evidence.pack_frames import QueryFile

    reader, note = open_reader(searcher.settings.ocr, searcher.settings.ocr_languages)
    try:
        pack = pack_of_search(
            searcher.archive,
            result,
            QueryFile(path),
            query_facts=query_facts(path),
            descriptor_config=searcher.descriptor.config_id,
            calibration=searcher.calibration,
            text_reader=reader,
            text_note=note,
            searched_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        return write_pack(pack, dest)
    finally:
        if reader is not None:
            reader.close()


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from search_api.server import serve
    except ImportError as exc:
        raise UsageError(f"the HTTP API needs the 'api' extra (pip install 'firstseen[api]'): {exc}") from None
    from search_api.settings import get_api_settings

    serve(get_api_settings(data_dir=getattr(args, "data_dir", None)), host=args.host, port=args.port)
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    from firstseen.ops.stats import archive_stats, format_stats

    stats = archive_stats(settings_of(args))
    print(json.dumps(stats, indent=2, default=str) if args.json else format_stats(stats))
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    from firstseen.ops.takedown import take_down

    settings = settings_of(args)
    record = take_down(
        settings.data_dir,
        settings.resolved_catalog_url(),
        args.ref,
        lock_wait_s=settings.lock_wait_s,
        index_url=settings.index_url,
    )
    print(
        f"removed {record.video_id} ({record.external_id or record.path}): "
        f"{record.frame_count} frames taken out of the index and the catalog"
    )
    return EXIT_OK


def cmd_text_pass(args: argparse.Namespace) -> int:
    from firstseen.evidence.onscreen_text import TesseractReader
    from firstseen.evidence.text_pass import TextPassParams, read_archive_text

    settings = settings_of(args)
    if not settings.ocr:
        raise UsageError("on-screen text is turned off (FIRSTSEEN_OCR=false)")
    params = TextPassParams(every_s=settings.ocr_every_s, max_side=settings.ocr_max_side)
    with TesseractReader(settings.ocr_languages.split(",")) as reader:
        summary = read_archive_text(
            settings.data_dir, settings.resolved_catalog_url(), reader, params, again=args.again
        )
    print(
        json.dumps(summary.to_dict(), indent=2)
        if args.json
        else f"read on-screen text of {summary.videos} videos ({summary.failed} failed): {summary.frames_read} frames, "
        f"{summary.lines} lines in {summary.wall_s:.1f} s"
    )
    return EXIT_OK


def cmd_text(args: argparse.Namespace) -> int:
    from firstseen.evidence.text_pass import find_archive_text

    settings = settings_of(args)
    found = find_archive_text(settings.data_dir, settings.resolved_catalog_url(), args.query, limit=args.limit)
    rows = [dict(span.to_dict(), external_id=video.external_id, title=video.title) for span, video in found]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif not rows:
        print(f"no archived footage shows {args.query!r} on screen (of the videos read so far)")
    for row in [] if args.json else rows:
        print(f"{row['external_id'] or row['video_id']}  {row['start_s']:.1f}-{row['end_s']:.1f} s  {row['text']}")
    return EXIT_OK


class UsageError(Exception):
    """Arguments argparse accepts but the command cannot use (exit 2)."""


def cmd_recheck(args: argparse.Namespace) -> int:
    from firstseen.archive import open_archive
    from firstseen.descriptors import create_descriptor
    from firstseen.ops.recheck import recheck_archive
    from firstseen.search.calibration import load_scoring

    settings = settings_of(args)
    descriptor = create_descriptor(settings.descriptor, settings)
    calibration, background = load_scoring(descriptor.config_id, settings.calibration_path, settings.background_dir)
    with open_archive(
        settings.data_dir,
        settings.resolved_catalog_url(),
        writable=True,
        lock_wait_s=settings.lock_wait_s,
        index_url=settings.index_url,
    ) as archive:
        report = recheck_archive(archive, calibration, settings, background)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(
            f"rechecked {report.videos} videos: {report.refreshed} given frame flags and thumbnails "
            f"({report.uninformative_frames} uninformative frames); copy links {report.links_before} -> "
            f"{report.links_after}, every one verified"
        )
        for missing in report.missing:
            print(f"NOT RECHECKED {missing['video_id']} ({missing['path']}): {missing['reason']}", file=sys.stderr)
    return EXIT_BAD_INPUT if report.missing else EXIT_OK
