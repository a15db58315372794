#!/usr/bin/env python3
"""Evidence pack and on-screen text costs, measured side by side in one run (ratios hold however loaded the machine is).

1. A 30-second clip made of three reversed 10-second excerpts of the campus footage (three
   reversed segments): the search itself, then its evidence pack (frames at the files' own
   resolution, three strips, OCR of every pack frame, HTML and PDF), each the median of
   --repeats runs, interleaved. Reported: pack time / search time (target <= 2) and pack size.
2. Ingest of the real footage without and with the on-screen text pass after it (the
   nightly job's order): throughput with OCR on as a share of throughput without (target >= 0.5).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edits import FrameSource, _write_video  # noqa: E402

from firstseen.evidence.onscreen_text import TesseractReader  # noqa: E402
from firstseen.evidence.pack import pack_files, pack_of_search, pack_zip, query_facts  # noqa: E402
from firstseen.evidence.pack_frames import QueryFile  # noqa: E402
from firstseen.evidence.text_pass import TextPassParams, run_text_pass  # noqa: E402
from firstseen.search.searcher import Searcher  # noqa: E402
from firstseen.settings import get_settings  # noqa: E402
from firstseen.storage.catalog import SqlCatalog  # noqa: E402


def reversed_clip(footage: Path, out: Path) -> Path:
    source = FrameSource(footage / "vtest.avi", max_side=768)
    fps = 12.5
    frames = []
    for start in (10.0, 40.0, 70.0):  # three excerpts, each played backwards
        times = [start + 10.0 - k / fps for k in range(int(10 * fps))]
        frames += [source.frame_at(t) for t in times]
    h, w = frames[0].shape[:2]
    _write_video(out, iter(frames), (w, h), fps)
    return out


def ingest(footage: Path, data: Path) -> float:
    from firstseen.ingest.progress import LogProgress
    from firstseen.ingest.run import run_ingest

    settings = get_settings(data_dir=data)
    started = time.perf_counter()
    summary = run_ingest(settings, [], [footage / "manifest.jsonl"], progress=LogProgress())
    assert summary.failed == 0, summary
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--footage", type=Path, default=REPO / ".cache" / "footage")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-evidence-"))
    report: dict = {}
    try:
        # -- ingest with and without the text pass, interleaved
        plain, with_text, text_pass = [], [], []
        for k in range(2):
            plain.append(ingest(args.footage, work / f"plain{k}"))
            data = work / f"ocr{k}"
            walled = ingest(args.footage, data)
            settings = get_settings(data_dir=data)
            with SqlCatalog.open(settings.resolved_catalog_url()) as catalog, TesseractReader() as reader:
                summary = run_text_pass(catalog, reader, TextPassParams(settings.ocr_every_s, settings.ocr_max_side))
            text_pass.append(summary.wall_s)
            with_text.append(walled + summary.wall_s)
        report["ingest"] = {
            "without_ocr_s": statistics.median(plain),
            "with_text_pass_s": statistics.median(with_text),
            "text_pass_s": statistics.median(text_pass),
            "frames_read": summary.frames_read,
            "lines": summary.lines,
            "footage_s": summary.footage_s,
            "throughput_ratio": statistics.median(plain) / statistics.median(with_text),
        }
        # -- a search and its pack, interleaved
        clip = reversed_clip(args.footage, work / "reversed-30s.mp4")
        settings = get_settings(data_dir=work / "ocr0")
        searches, packs, sizes = [], [], []
        with Searcher(settings) as searcher, TesseractReader() as reader:
            searcher.search(clip)  # warm
            for _ in range(args.repeats):
                started = time.perf_counter()
                result = searcher.search(clip)
                searches.append(time.perf_counter() - started)
                started = time.perf_counter()
                pack = pack_of_search(
                    searcher.archive,
                    result,
                    QueryFile(clip),
                    query_facts=query_facts(clip),
                    descriptor_config=searcher.descriptor.config_id,
                    calibration=searcher.calibration,
                    searched_at="bench",
                    text_reader=reader,
                )
                data = pack_zip(pack)
                packs.append(time.perf_counter() - started)
                sizes.append(len(data))
        segments = [s for m in result.matches for s in m.segments]
        report["pack"] = {
            "segments": len(segments),
            "reversed_segments": sum(s.reversed for s in segments),
            "search_s": statistics.median(searches),
            "pack_s": statistics.median(packs),
            "ratio_to_search": statistics.median(packs) / statistics.median(searches),
            "zip_bytes": sizes[-1],
            "files": len(pack_files(pack)),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
