#!/usr/bin/env python3
"""Search quality on real footage against a broad archive, per edit type and per negative kind, and the time of a query.

Builds the evaluation side's archive (evalkit.py: 6 real videos, 2 derived copies, originals
ingested after their copies, and --distractors unrelated videos from the evaluation picture
pool), makes one query per archived video and edit with a seed calibrate.py does not use,
and negatives with the same edits from --negative-sources unrelated sources never archived
(one of them the held-out real video Megamind.avi); none shares a picture with the
calibration or the background. Prints, per edit: top-1 source accuracy, earliest source
correct, localisation IoU on the source's time line, flag accuracy, region IoU; overall
reversal and mirror precision/recall; the false-match rate per negative query with its Wilson
95% interval, overall and per kind of negative source and per edit; and the time of a
30-second query beside the descriptor's own time for its frames. --ablation DIR (written by
calibrate.py --ablation) repeats the negatives and positives without normalisation, without
verification and without both, each with its own calibration."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import evalkit
import numpy as np
from edits import make_query

from firstseen.params import QueryParams  # noqa: E402
from firstseen.storage.catalog import SqlCatalog


def iou(a0: float, a1: float, b0: float, b1: float) -> float:
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    return inter / union if union > 0 else float(abs(a0 - b0) < 1e-9)


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def negative_kind(query) -> str:
    """unrelated-007-card -> card; the held-out real video -> real_footage."""
    stem = query.path.stem
    for kind in evalkit.unrelated.KINDS:
        if f"-{kind}-" in stem or stem.endswith(f"-{kind}"):
            return kind
    return "real_footage"


def score_outcome(outcome, names, holds, published) -> dict:
    q, result = outcome.query, outcome.result
    truth_sources = {t.source for t in q.truth}
    row = {
        "edit": q.edit,
        "file": q.path.name,
        "seconds": outcome.seconds,
        "verdict": result.verdict,
        "reason": result.reason,
    }
    if not q.truth:
        row["false_match"] = result.verdict == "match"
        row["negative_kind"] = negative_kind(q)
        row["false_mirrored"] = any(s.mirrored for m in result.matches for s in m.segments)
        row["false_reversed"] = any(s.reversed for m in result.matches for s in m.segments)
        return row
    matches = list(result.matches)
    row["top1"] = bool(matches) and holds(names[matches[0].video_id], truth_sources)
    expected = min(truth_sources, key=lambda n: published[n])
    row["earliest"] = result.earliest is not None and names[result.earliest.video_id] == expected
    truth = max(q.truth, key=lambda t: t.query_end - t.query_start)
    found = next((m for m in matches if names[m.video_id] == truth.source), None)
    segment = None
    if found is not None:
        overlapping = [
            s for s in found.segments if min(s.query_end, truth.query_end) >= max(s.query_start, truth.query_start)
        ]
        segment = max(overlapping or found.segments, key=lambda s: s.score)
    row["segment_found"] = segment is not None
    row["truth_reversed"], row["truth_mirrored"] = truth.reversed, truth.mirrored
    row["pieces_found"] = sum(any(names[m.video_id] == t.source for m in matches) for t in q.truth) / len(q.truth)
    if segment is None:
        return row
    row["pred_reversed"] = segment.reversed
    row["pred_mirrored"] = segment.mirrored
    row["mirror_decided"] = bool(segment.evidence and segment.evidence.mirrored is not None)
    row["timing_known"] = segment.timing_known
    ev = segment.evidence
    if truth.query_in_source and ev and ev.query_in_source:
        r = ev.query_in_source
        row["region_iou"] = box_iou((r.x, r.y, r.w, r.h), truth.query_in_source)
    elif truth.source_in_query and ev and ev.source_in_query:
        r = ev.source_in_query
        row["region_iou"] = box_iou((r.x, r.y, r.w, r.h), truth.source_in_query)
    elif truth.query_in_source or truth.source_in_query:
        row["region_iou"] = 0.0
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
    lines = [
        "| edit | n | top-1 | earliest | IoU (mean) | loc. ok | reversed ok | mirrored ok | speed err (median) "
        "| region IoU (median) | query s (median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for edit, group in by_edit.items():
        if edit.startswith("negative:"):
            continue
        ious = [r["iou"] for r in group if "iou" in r]
        locs = [r["loc_ok"] for r in group if "loc_ok" in r]
        rev = [r.get("pred_reversed", False) == r["truth_reversed"] for r in group]
        mir = [r.get("pred_mirrored", False) == r["truth_mirrored"] for r in group]
        speed = [r["speed_error"] for r in group if "speed_error" in r]
        regions = [r["region_iou"] for r in group if "region_iou" in r]
        lines.append(
            f"| {edit} | {len(group)} | {_mean(r['top1'] for r in group)} | {_mean(r['earliest'] for r in group)} "
            f"| {_mean(ious)} | {_mean(locs) if locs else _mean(i >= 0.5 for i in ious)} | {_mean(rev)} | {_mean(mir)} "
            f"| {f'{statistics.median(speed):.3f}' if speed else '-'} "
            f"| {f'{statistics.median(regions):.2f}' if regions else '-'} "
            f"| {statistics.median(r['seconds'] for r in group):.2f} |"
        )
    return "\n".join(lines)


def rate(rows: list[dict], key: str) -> str:
    k, n = sum(bool(r[key]) for r in rows), len(rows)
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {k / n:.2%} (95% CI {lo:.2%}-{hi:.2%})" if n else "-"


def negatives_table(rows: list[dict]) -> str:
    negatives = [r for r in rows if "false_match" in r]
    lines = ["| negatives | n | false matches (Wilson 95%) | too little picture |", "|---|---|---|---|"]
    for label, key in (("kind", "negative_kind"), ("edit", "edit")):
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in negatives:
            groups[r[key]].append(r)
        for name in sorted(groups):
            group = groups[name]
            little = sum(r["reason"] == "too_little_picture" for r in group)
            lines.append(
                f"| {label}: {name.removeprefix('negative:')} | {len(group)} | {rate(group, 'false_match')} "
                f"| {little} |"
            )
    lines.append(
        f"| **all** | {len(negatives)} | {rate(negatives, 'false_match')} "
        f"| {sum(r['reason'] == 'too_little_picture' for r in negatives)} |"
    )
    return "\n".join(lines)


def summary(rows: list[dict]) -> dict:
    positives = [r for r in rows if "top1" in r]
    negatives = [r for r in rows if "false_match" in r]
    video = [r for r in positives if "iou" in r]
    rev_p, rev_r, rev_n, rev_fp = precision_recall(positives, "pred_reversed", "truth_reversed")
    mir_p, mir_r, mir_n, mir_fp = precision_recall(positives, "pred_mirrored", "truth_mirrored")
    decided = [r for r in positives if r.get("mirror_decided") or not r.get("truth_mirrored")]
    _, mir_r_decided, _, _ = precision_recall(decided, "pred_mirrored", "truth_mirrored")
    regions = {
        edit: [r["region_iou"] for r in positives if r["edit"] == edit and "region_iou" in r]
        for edit in ("crop60", "pip", "still_png_crop")
    }
    false_matches = sum(r["false_match"] for r in negatives)
    lo, hi = wilson(false_matches, len(negatives))
    return {
        "positives": len(positives), "negatives": len(negatives),
        "top1": statistics.fmean(r["top1"] for r in positives),
        "earliest": statistics.fmean(r["earliest"] for r in positives),
        "iou_mean": statistics.fmean(r["iou"] for r in video) if video else None,
        "iou_median": statistics.median(r["iou"] for r in video) if video else None,
        "iou_at_least_0.8": statistics.fmean(r["iou"] >= 0.8 for r in video) if video else None,
        "reversal_precision": rev_p, "reversal_recall": rev_r, "reversed_queries": rev_n, "false_reversed": rev_fp,
        "mirror_precision": mir_p, "mirror_recall": mir_r, "mirrored_queries": mir_n, "false_mirrored": mir_fp,
        "mirror_recall_where_decided": mir_r_decided,
        "mirror_abstentions": sum(1 for r in positives if r.get("truth_mirrored") and not r.get("mirror_decided")),
        "false_mirrored_on_negatives": sum(r["false_mirrored"] for r in negatives),
        "false_reversed_on_negatives": sum(r["false_reversed"] for r in negatives),
        **{f"region_iou_median_{edit}": statistics.median(v) if v else None for edit, v in regions.items()},
        "splice_pieces_found": statistics.fmean(r["pieces_found"] for r in positives if r["edit"] == "splice")
        if any(r["edit"] == "splice" for r in positives) else None,
        "false_match_rate": false_matches / len(negatives) if negatives else None,
        "false_match_rate_wilson95": (lo, hi),
        "false_matches": false_matches,
    }  # fmt: skip


def time_long_query(settings, sources, work: Path, repeats: int = 7) -> dict:
    """A 30-second query end to end (file to answer) beside the descriptor alone on its sampled
    frames, interleaved in one run, so the ratio holds however loaded the machine is."""
    from firstseen.search.query import sample_query
    from firstseen.search.searcher import Searcher

    query = make_query("reencode", sources["vtest.avi"], 20.0, 30.0, work / "timing", rng=np.random.default_rng(0))
    runs, alone = [], []
    with Searcher(settings) as searcher:
        _, frames = sample_query(query.path, QueryParams.from_settings(settings))
        pictures = [f.rgb for f in frames]
        searcher.search(query.path)  # warm: model and index pages
        for _ in range(repeats):
            started = time.perf_counter()
            searcher.descriptor.describe(pictures)
            alone.append(time.perf_counter() - started)
            result = searcher.search(query.path)
            runs.append(
                result.timings_s
                | {
                    "verdict": result.verdict,
                    "frames": result.query.frames_sampled,
                    "duration_s": result.query.duration_s,
                }
            )
    totals = sorted(r["total_s"] for r in runs)
    median_total, median_alone = statistics.median(totals), statistics.median(alone)
    return {
        "query_duration_s": runs[0]["duration_s"],
        "frames_sampled": runs[0]["frames"],
        "verdict": runs[0]["verdict"],
        "total_s_median": median_total,
        "total_s_p95": float(np.percentile(totals, 95)),
        "descriptor_alone_s_median": median_alone,
        "ratio_to_descriptor": median_total / median_alone,
        "decode_and_describe_s": statistics.median(r["describe_s"] for r in runs),
        "search_align_verify_s": statistics.median(r["match_s"] for r in runs),
        "runs_total_s": [round(t, 3) for t in totals],
    }


def copy_links_report(settings, names) -> list[str]:
    with SqlCatalog.open(settings.resolved_catalog_url()) as catalog:
        lines = []
        for video in catalog.videos("committed"):
            for link in catalog.links.copy_links(video.video_id):
                if video.video_id < link.other_video_id:
                    lines.append(
                        f"{names[video.video_id]} <-> {names[link.other_video_id]} (score {link.score:.2f}, "
                        f"{len(link.segments)} segment(s))"
                    )
        return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--footage", type=Path, default=evalkit.REPO / ".cache" / "footage")
    parser.add_argument("--work", type=Path, default=evalkit.REPO / ".cache" / "eval")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--distractors", type=int, default=300)
    parser.add_argument("--negative-sources", type=int, default=40)
    parser.add_argument("--ablation", type=Path, help="calibrate.py --ablation's folder: also run the variants")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--timing-repeats", type=int, default=7, help="searches timed for the 30-second query")
    parser.add_argument(
        "--timing-only",
        action="store_true",
        help="only the 30-second query end to end, on the archive (built if it is not there yet)",
    )
    parser.add_argument(
        "--full-rows",
        type=Path,
        help="with --ablation: take the full variant's rows from this "
        "--json-out of an earlier run with the same seed, not search again",
    )
    parser.add_argument("--json-out", type=Path, help="write every per-query row and the summary here")
    args = parser.parse_args(argv)

    settings = evalkit.settings_for(args.work)
    side = evalkit.side("evaluation", args.negative_sources)
    distractors = evalkit.make_distractors(side, args.distractors, args.work / "distractors", args.seed)
    sources = evalkit.load_sources(args.footage, evalkit.ARCHIVED)
    copies = evalkit.build_archive(args.footage, args.work, sources, settings, distractors=distractors)
    names = {vid: name for name, vid in evalkit.video_ids_by_name(settings).items()}
    published = {
        json.loads(line)["path"]: json.loads(line)["published_at"]
        for line in (args.footage / "manifest.jsonl").read_text().splitlines()
    }

    if args.timing_only:
        timing = time_long_query(settings, sources, args.work, args.timing_repeats)
        print(json.dumps(timing, indent=2))
        if args.json_out:
            args.json_out.write_text(json.dumps({"timing": timing, "archive_videos": len(names)}, indent=2))
        return 0

    def holds(name: str, truth_sources: set[str]) -> bool:
        return evalkit.holds_footage(name, truth_sources, copies)

    negatives = evalkit.negative_sources(side, args.footage, args.negative_sources, args.work / "unrelated", args.seed)
    queries = evalkit.make_queries(sources, args.work / "queries", seed=args.seed, negatives=negatives)
    started = time.perf_counter()
    if args.ablation and args.full_rows:
        rows = json.loads(args.full_rows.read_text())["rows"]
        report = {"ablation": ablation(args.ablation, settings, queries, names, holds, published, rows)}
        if args.json_out:
            args.json_out.write_text(json.dumps(report, indent=2, default=str))
        return 0
    outcomes = evalkit.run_queries(settings, queries)
    rows = [score_outcome(o, names, holds, published) for o in outcomes]
    overall = summary(rows)
    report = {
        "summary": overall,
        "archive_videos": len(names),
        "distractors": len(distractors),
        "negative_sources": len(negatives),
    }

    print(
        f"\n## Search quality ({overall['positives']} edited queries, {overall['negatives']} negatives from "
        f"{len(negatives)} unrelated sources; archive of {len(names)} videos, {len(distractors)} of them "
        f"distractors; searched in {time.perf_counter() - started:.0f} s)\n"
    )
    print(table(rows))
    print("\n" + negatives_table(rows))
    print("\n" + "\n".join(f"- {k}: {round(v, 3) if isinstance(v, float) else v}" for k, v in overall.items()))
    print(
        "\n## Copy links recorded at ingest\n" + "\n".join(f"- {line}" for line in copy_links_report(settings, names))
    )
    if args.ablation:
        report["ablation"] = ablation(args.ablation, settings, queries, names, holds, published, rows)
    if not args.no_timing:
        report["timing"] = time_long_query(settings, sources, args.work, args.timing_repeats)
        print(f"\n## 30-second query end to end\n- {report['timing']}")
    failures = [r for r in rows if r.get("top1") is False or r.get("false_match")]
    if failures:
        print(
            "\n## Misses and false matches\n"
            + "\n".join(f"- {r['edit']} {r['file']}: {r['verdict']}" for r in failures)
        )
    if args.json_out:
        args.json_out.write_text(json.dumps(report | {"rows": rows}, indent=2, default=str))
    return 0


def ablation(folder: Path, settings, queries, names, holds, published, full_rows: list[dict]) -> dict:
    """Each variant with the calibration calibrate.py fitted for it (the full one is the run above)."""
    variants = {
        "full": (True, True),
        "no_normalisation": (False, True),
        "no_verification": (True, False),
        "neither": (False, False),
    }
    out = {}
    print(
        "\n## Ablation\n\n| variant | top-1 | earliest | false matches (Wilson 95%) | false MIRRORED on negatives "
        "| median query s |\n|---|---|---|---|---|---|"
    )
    for name, (normalise, verify) in variants.items():
        if name == "full":
            rows = full_rows
        else:
            variant_settings = settings.model_copy(update={"calibration_path": folder / f"{name}.json"})
            outcomes = evalkit.run_queries(variant_settings, queries, verify=verify, normalise=normalise)
            rows = [score_outcome(o, names, holds, published) for o in outcomes]
        s = summary(rows)
        negatives = [r for r in rows if "false_match" in r]
        out[name] = s
        print(
            f"| {name} | {s['top1']:.3f} | {s['earliest']:.3f} | {rate(negatives, 'false_match')} "
            f"| {s['false_mirrored_on_negatives']} | {statistics.median(r['seconds'] for r in rows):.2f} |"
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
