#!/usr/bin/env python3
"""Measure the search's calibration for one descriptor and write it into firstseen/calibration.json.

Steps, on the real footage (see evalkit.py for the archive and the queries):
  1. similarity floor: every sampled frame of every negative query (held-out footage, edited)
     is searched against the archive; the floor is the 99.9th percentile of their best scores.
  2. evidence: positive and negative queries are aligned against the archive with that floor.
     A positive's best segment on a video holding its footage is a true match (label 1); every
     segment on a video that does not hold the footage, and every segment of a negative query,
     is a false one (label 0).
  3. a ridge logistic model of (mean similarity, log frames) -> P(true match).
  4. threshold: the smallest score >= 0.5 at which at most --max-fmr of the negative queries
     would be reported as matches.
The queries use their own seed and windows: eval_quality.py measures on different ones."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import numpy as np
from tqdm import tqdm

import evalkit
from firstseen.archive import DescriptorSpec, open_archive
from firstseen.calibration import Calibration, evidence_features, fit_logistic, save_calibration
from firstseen.descriptors import create_descriptor
from firstseen.search import align_candidates, describe_query


def choose_ridge(features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """The ridge strength with the best cross-validated log-loss: strong enough that separable
    data gives finite weights, weak enough that clear matches still score near 1."""
    order = np.random.default_rng(seed).permutation(len(labels))
    best = (np.inf, 1.0)
    for l2 in (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0):
        loss = 0.0
        for k in range(folds):
            test = order[k::folds]
            train = np.setdiff1d(order, test)
            bias, weights = fit_logistic(features[train], labels[train], l2=l2)
            p = 1 / (1 + np.exp(-np.clip(bias + features[test] @ weights, -50, 50)))
            loss -= np.sum(labels[test] * np.log(p + 1e-12) + (1 - labels[test]) * np.log(1 - p + 1e-12))
        best = min(best, (loss, l2))
    return best[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--footage", type=Path, default=evalkit.REPO / ".cache" / "footage")
    parser.add_argument("--work", type=Path, default=evalkit.REPO / ".cache" / "calibration")
    parser.add_argument("--seed", type=int, default=1001)
    parser.add_argument("--max-fmr", type=float, default=0.01, help="negative queries allowed to match")
    parser.add_argument("--floor-percentile", type=float, default=99.9)
    parser.add_argument("--output", type=Path, default=None, help="calibration file (default: the package's)")
    args = parser.parse_args(argv)

    settings = evalkit.settings_for(args.work)
    descriptor = create_descriptor(settings.descriptor, settings)
    sources = evalkit.load_sources(args.footage, evalkit.ARCHIVED + evalkit.HELD_OUT)
    copies = evalkit.build_archive(args.footage, args.work, sources, settings)
    names = {vid: name for name, vid in evalkit.video_ids_by_name(settings).items()}
    queries = evalkit.make_queries(sources, args.work / "queries", seed=args.seed)
    print(f"{len(queries)} queries ({sum(1 for q in queries if not q.truth)} negative)", file=sys.stderr)

    with open_archive(settings.data_dir, settings.resolved_catalog_url(), DescriptorSpec.of(descriptor)) as archive:
        described = [(q, describe_query(q.path, descriptor, settings))
                     for q in tqdm(queries, desc="describing", file=sys.stderr)]
        negative_best = []
        for q, vectors in described:
            if not q.truth:
                for view in (vectors.vectors, vectors.mirrored):
                    negative_best += [row[0].score for row in archive.search_frames(view, 1) if row]
        floor = float(np.percentile(negative_best, args.floor_percentile))
        print(f"similarity floor {floor:.3f} (p{args.floor_percentile} of {len(negative_best)} negative frames)",
              file=sys.stderr)

        rows, labels, negative_query = [], [], []  # negative_query: the negative query's index, or -1
        for index, (q, vectors) in enumerate(tqdm(described, desc="aligning", file=sys.stderr)):
            truth_sources = {t.source for t in q.truth}
            aligned = align_candidates(archive, vectors, similarity_floor=floor,
                                       neighbours=settings.search_neighbours, candidates=settings.search_candidates)
            for video_id, segments in aligned:
                holds = evalkit.holds_footage(names[video_id], truth_sources, copies)
                if holds and segments:
                    best = max(segments, key=lambda s: s.frames * s.similarity)
                    rows.append((best.similarity, best.frames))
                    labels.append(1)
                    negative_query.append(-1)
                elif not holds:
                    for s in segments:
                        rows.append((s.similarity, s.frames))
                        labels.append(0)
                        negative_query.append(-1 if q.truth else index)
    features = evidence_features(*np.array(rows).T)
    labels = np.array(labels)
    l2 = choose_ridge(features, labels)
    bias, (w_sim, w_frames) = fit_logistic(features, labels, l2=l2)
    probe = Calibration(descriptor.config_id, floor, bias, float(w_sim), float(w_frames), 0.5)
    scores = np.array([probe.score(s, int(f)) for s, f in rows])
    negative_ids = [i for i, q in enumerate(queries) if not q.truth]
    best_by_query: dict[int, float] = {}
    for score, qid in zip(scores, negative_query):
        if qid != -1:
            best_by_query[qid] = max(best_by_query.get(qid, 0.0), score)
    negative_best_scores = np.array([best_by_query.get(qid, 0.0) for qid in negative_ids])
    threshold = 0.5
    for candidate in np.round(np.arange(0.5, 0.995, 0.005), 3):
        threshold = float(candidate)
        if np.mean(negative_best_scores >= candidate) <= args.max_fmr:
            break
    positive_scores = scores[labels == 1]
    calibration = Calibration(
        descriptor.config_id, round(floor, 4), round(bias, 4), round(float(w_sim), 4), round(float(w_frames), 4),
        threshold,
        measured={"date": date.today().isoformat(), "script": "scripts/calibrate.py", "seed": args.seed,
                  "archive": evalkit.ARCHIVED, "held_out": evalkit.HELD_OUT, "queries": len(queries),
                  "negative_queries": len(negative_ids), "negative_frames": len(negative_best),
                  "floor_percentile": args.floor_percentile, "max_fmr": args.max_fmr, "ridge_l2": l2,
                  "true_segments": int(labels.sum()), "false_segments": int((labels == 0).sum()),
                  "true_recall_at_threshold": round(float(np.mean(positive_scores >= threshold)), 4),
                  "negative_fmr_at_threshold": round(float(np.mean(negative_best_scores >= threshold)), 4)},
    )  # fmt: skip
    save_calibration(calibration, args.output)
    print(f"{descriptor.config_id}: floor {calibration.similarity_floor}, logistic {calibration.bias:+.2f} "
          f"{calibration.weight_similarity:+.2f}*sim {calibration.weight_log_frames:+.2f}*log(frames), "
          f"threshold {threshold}; true segments kept {calibration.measured['true_recall_at_threshold']:.3f}, "
          f"negative queries matched {calibration.measured['negative_fmr_at_threshold']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
