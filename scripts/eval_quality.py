#!/usr/bin/env python3
"""Search quality on real footage, per edit type, and the time of a 30-second query end to end.

Builds the evaluation archive (evalkit.py: 6 real videos plus 2 derived copies, originals
ingested after their copies), makes one query per archived video and edit with a seed that
calibrate.py does not use, plus negative queries from 2 held-out videos, searches them all and
prints, per edit: top-1 source accuracy (the top match holds the footage), earliest source
correct, localisation IoU of the best segment on the source's time line (stills: within 1 s),
reversed / mirrored flag accuracy, median speed error; then overall reversal and mirror
precision/recall and the false-match rate on negatives."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import evalkit
from edits import make_query
from firstseen.catalog import SqlCatalog


def iou(a0: float, a1: float, b0: float, b1: float) -> float:
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    return inter / union if union > 0 else float(abs(a0 - b0) < 1e-9)


def score_outcome(outcome, names, holds, published) -> dict:
    q, result = outcome.query, outcome.result
    truth_sources = {t.source for t in q.truth}
    row = {"edit": q.edit, "file": q.path.name, "seconds": outcome.seconds, "verdict": result.verdict}
    if not q.truth:
        row["false_match"] = result.verdict == "match"
        return row
    matches = list(result.matches)
    row["top1"] = bool(matches) and holds(names[matches[0].video_id], truth_sources)
    expected = min(truth_sources, key=lambda n: published[n])
    row["earliest"] = result.earliest is not None and names[result.earliest.video_id] == expected
    truth = max(q.truth, key=lambda t: t.query_end - t.query_start)
    found = next((m for m in matches if names[m.video_id] == truth.source), None)
    segment = None
    if found is not None:
        overlapping = [s for s in found.segments if min(s.query_end, truth.query_end) >= max(s.query_start, truth.query_start)]
        segment = max(overlapping or found.segments, key=lambda s: s.score)
    row["segment_found"] = segment is not None
    row["truth_reversed"], row["truth_mirrored"] = truth.reversed, truth.mirrored
    row["pieces_found"] = sum(any(names[m.video_id] == t.source for m in matches) for t in q.truth) / len(q.truth)
    if segment is None:
        return row
    row["pred_reversed"] = segment.reversed
    row["pred_mirrored"] = segment.mirrored
    row["timing_known"] = segment.timing_known
    if q.kind == "image":
        row["loc_ok"] = abs(segment.source_start - truth.source_start) <= 1.0
    else:
        row["iou"] = iou(segment.source_start, segment.source_end, truth.source_start, truth.source_end)
        if segment.timing_known and segment.reversed == truth.reversed:
            row["speed_error"] = abs(segment.speed - truth.speed) / truth.speed
    return row


def precision_recall(rows: list[dict], pred: str, truth: str) -> tuple[float, float, int, int]:
    measured = [r for r in rows if truth in r]
    tp = sum(1 for r in measured if r.get(pred) and r[truth])
    fp = sum(1 for r in measured if r.get(pred) and not r[truth])
    fn = sum(1 for r in measured if not r.get(pred) and r[truth])
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / (tp + fn) if tp + fn else 1.0), tp + fn, fp


def _mean(values) -> str:
    values = list(values)
    return f"{statistics.fmean(values):.2f}" if values else "-"


def table(rows: list[dict]) -> str:
    by_edit: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_edit[r["edit"]].append(r)
    lines = ["| edit | n | top-1 | earliest | IoU (mean) | loc. ok | reversed ok | mirrored ok | speed err (median) | query s (median) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for edit, group in by_edit.items():
        if edit.startswith("negative:"):
            continue
        ious = [r["iou"] for r in group if "iou" in r]
        locs = [r["loc_ok"] for r in group if "loc_ok" in r]
        rev = [r.get("pred_reversed", False) == r["truth_reversed"] for r in group]
        mir = [r.get("pred_mirrored", False) == r["truth_mirrored"] for r in group]
        speed = [r["speed_error"] for r in group if "speed_error" in r]
        lines.append(f"| {edit} | {len(group)} | {_mean(r['top1'] for r in group)} | {_mean(r['earliest'] for r in group)} "
                     f"| {_mean(ious)} | {_mean(locs) if locs else _mean(i >= 0.5 for i in ious)} | {_mean(rev)} | {_mean(mir)} "
                     f"| {f'{statistics.median(speed):.3f}' if speed else '-'} | {statistics.median(r['seconds'] for r in group):.2f} |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> dict:
    positives = [r for r in rows if "top1" in r]
    negatives = [r for r in rows if "false_match" in r]
    video = [r for r in positives if "iou" in r]
    rev_p, rev_r, rev_n, rev_fp = precision_recall(positives, "pred_reversed", "truth_reversed")
    mir_p, mir_r, mir_n, mir_fp = precision_recall(positives, "pred_mirrored", "truth_mirrored")
    return {
        "positives": len(positives), "negatives": len(negatives),
        "top1": statistics.fmean(r["top1"] for r in positives),
        "earliest": statistics.fmean(r["earliest"] for r in positives),
        "iou_mean": statistics.fmean(r["iou"] for r in video) if video else None,
        "iou_median": statistics.median(r["iou"] for r in video) if video else None,
        "iou_at_least_0.8": statistics.fmean(r["iou"] >= 0.8 for r in video) if video else None,
        "reversal_precision": rev_p, "reversal_recall": rev_r, "reversed_queries": rev_n, "false_reversed": rev_fp,
        "mirror_precision": mir_p, "mirror_recall": mir_r, "mirrored_queries": mir_n, "false_mirrored": mir_fp,
        "splice_pieces_found": statistics.fmean(r["pieces_found"] for r in positives if r["edit"] == "splice")
        if any(r["edit"] == "splice" for r in positives) else None,
        "false_match_rate": statistics.fmean(r["false_match"] for r in negatives) if negatives else None,
        "false_matches": sum(r["false_match"] for r in negatives),
    }  # fmt: skip


def time_long_query(settings, sources, work: Path, repeats: int = 3) -> dict:
    from firstseen.search import Searcher

    query = make_query("reencode", sources["vtest.avi"], 20.0, 30.0, work / "timing", rng=np.random.default_rng(0))
    runs = []
    with Searcher(settings) as searcher:
        for _ in range(repeats):
            result = searcher.search(query.path)
            runs.append(result.timings_s | {"verdict": result.verdict, "frames": result.query.frames_sampled,
                                            "duration_s": result.query.duration_s})
    best = min(runs, key=lambda r: r["total_s"])
    return {"query_duration_s": best["duration_s"], "frames_sampled": best["frames"], "verdict": best["verdict"],
            "total_s": best["total_s"], "decode_and_describe_s": best["describe_s"], "search_and_align_s": best["match_s"],
            "realtime_factor": best["duration_s"] / best["total_s"], "runs_total_s": [round(r["total_s"], 3) for r in runs]}


def copy_links_report(settings, names) -> list[str]:
    with SqlCatalog.open(settings.resolved_catalog_url()) as catalog:
        lines = []
        for video in catalog.videos("committed"):
            for link in catalog.copy_links(video.video_id):
                if video.video_id < link.other_video_id:
                    lines.append(f"{names[video.video_id]} <-> {names[link.other_video_id]} (score {link.score:.2f}, "
                                 f"{len(link.segments)} segment(s))")
        return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--footage", type=Path, default=evalkit.REPO / ".cache" / "footage")
    parser.add_argument("--work", type=Path, default=evalkit.REPO / ".cache" / "eval")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--json-out", type=Path, help="write every per-query row and the summary here")
    args = parser.parse_args(argv)

    settings = evalkit.settings_for(args.work)
    sources = evalkit.load_sources(args.footage, evalkit.ARCHIVED + evalkit.HELD_OUT)
    copies = evalkit.build_archive(args.footage, args.work, sources, settings)
    names = {vid: name for name, vid in evalkit.video_ids_by_name(settings).items()}
    published = {json.loads(line)["path"]: json.loads(line)["published_at"]
                 for line in (args.footage / "manifest.jsonl").read_text().splitlines()}

    def holds(name: str, truth_sources: set[str]) -> bool:
        return evalkit.holds_footage(name, truth_sources, copies)

    queries = evalkit.make_queries(sources, args.work / "queries", seed=args.seed)
    started = time.perf_counter()
    outcomes = evalkit.run_queries(settings, queries)
    rows = [score_outcome(o, names, holds, published) for o in outcomes]
    overall = summary(rows)
    timing = time_long_query(settings, sources, args.work)

    print(f"\n## Search quality ({overall['positives']} edited queries, {overall['negatives']} negatives; "
          f"searched in {time.perf_counter() - started:.0f} s)\n")
    print(table(rows))
    print("\n" + "\n".join(f"- {k}: {round(v, 3) if isinstance(v, float) else v}" for k, v in overall.items()))
    print("\n## Copy links recorded at ingest\n" + "\n".join(f"- {line}" for line in copy_links_report(settings, names)))
    print(f"\n## 30-second query end to end\n- {timing}")
    failures = [r for r in rows if r.get("top1") is False or r.get("false_match")]
    if failures:
        print("\n## Misses and false matches\n" + "\n".join(f"- {r['edit']} {r['file']}: {r['verdict']}" for r in failures))
    if args.json_out:
        args.json_out.write_text(json.dumps({"summary": overall, "timing": timing, "rows": rows}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
