#!/usr/bin/env python3
"""Measure the search's calibration for one descriptor and write it into firstseen/calibration.json.

On the calibration side (evalkit.py): the 6 real archived videos and 2 copies, plus
--distractors unrelated videos from the calibration picture pool, searched by edited
positives and by negatives (every negative edit of --negative-sources unrelated sources never
archived, one of them the held-out real video tree.avi). Steps, for each variant:
  1. similarity floor: the --floor-percentile (95th) percentile of the negative frames' best
     similarity to the archive (normalised against the background unless the variant turns that off);
  2. evidence: each positive's best segment on a video holding its footage is a true match;
     every segment on a video that does not hold it, and every negative's, a false one;
  3. a ridge logistic model of (mean similarity, log frames) -> P(true match), at this archive
     size: the score a match reports;
  4. verification (unless the variant turns it off): the segments that could pass (score >= 0.5)
     are checked by geometry; only verified ones count as reported matches below, and so do the
     matches the second chances find for a negative with no verified match (a still's exact
     moment, still_moment.py; the window pass, windows.py);
  5. threshold: the smallest score >= 0.5 at which at most --max-fmr of the negative queries
     would be reported as matches;
  6. the last chance (with verification): every query's best near misses under that threshold
     are verified and their aligned parts scored (geometry_rescue.py); a negative rescued
     that way counts as a match, and the threshold is chosen again. The counts are recorded
     ("near_miss_rescue"), and the file says the path was measured (rescue_near_misses).
The shipped calibration is the "full" variant; --ablation DIR also writes the others (no
normalisation, no verification, neither) for eval_quality.py --ablation. Uses its own seed,
pictures and held-out video: eval_quality.py measures on others."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import evalkit
import numpy as np
from tqdm import tqdm

from firstseen.archive import DescriptorSpec, open_archive
from firstseen.descriptors import create_descriptor
from firstseen.params import QueryParams  # noqa: E402
from firstseen.search.aligned_agreement import AgreementCheck
from firstseen.search.background import (
    Background,
    background_dir,
    load_background,
    vectors_sha256,
    vectors_signature,
)
from firstseen.search.calibration import Calibration, evidence_features, fit_logistic, save_calibration
from firstseen.search.candidates import (
    NearMiss,
    VerifyPolicy,
    align_candidates,
    confirm_aligned,
    confirm_candidate,
    scored_segment,
)
from firstseen.search.geometry_rescue import aligned_score, near_misses_worth_checking
from firstseen.search.partial_frame import match_in_windows
from firstseen.search.query import describe_query
from firstseen.search.still_moment import match_still_moment, searchable_as_still
from firstseen.search.verification import Verifier

VARIANTS = {
    "full": (True, True),
    "no_normalisation": (False, True),
    "no_verification": (True, False),
    "neither": (False, False),
}


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


def fit(rows: list[tuple[float, int]], labels: list[int], config_id: str, floor: float) -> Calibration:
    features = evidence_features(*np.array(rows, float).T)
    y = np.array(labels)
    l2 = choose_ridge(features, y)
    bias, (w_sim, w_frames) = fit_logistic(features, y, l2=l2)
    return Calibration(config_id, floor, bias, float(w_sim), float(w_frames), 0.5, measured={"ridge_l2": l2})


def calibrate_variant(
    name: str,
    archive,
    described,
    queries,
    names,
    copies,
    background: Background | None,
    verify: VerifyPolicy | None,
    config_id: str,
    settings,
    args,
) -> tuple[Calibration, dict]:
    k = args.background_k
    negative_best = []
    for q, vectors in described:
        if not q.truth:
            usable = vectors.usable
            if not usable.any():
                continue
            offset = background.kth_similarity(vectors.vectors[usable], k) if background else 0.0
            best = np.array(
                [row[0].score if row else -1.0 for row in archive.search_frames(vectors.vectors[usable], 1)]
            )
            negative_best += list(best - offset)
    floor = float(np.percentile(negative_best, args.floor_percentile))
    segments = []  # (query index, video id, aligned, segment, label)
    for index, (q, vectors) in enumerate(
        tqdm(described, desc=f"aligning ({name})", file=sys.stderr, disable=not sys.stderr.isatty())
    ):
        truth_sources = {t.source for t in q.truth}
        for aligned in align_candidates(
            archive,
            vectors,
            similarity_floor=floor,
            neighbours=settings.search_neighbours,
            candidates=settings.search_candidates,
            background=background,
            background_k=k,
        ):
            holds = evalkit.holds_footage(names[aligned.video_id], truth_sources, copies)
            if holds and aligned.segments:
                best = max(aligned.segments, key=lambda s: s.frames * s.similarity)
                segments.append((index, aligned, best, 1))
            elif not holds:
                segments += [(index, aligned, s, 0) for s in aligned.segments]
    rows, labels = [(s.similarity, s.frames) for _, _, s, _ in segments], [y for *_, y in segments]
    pseudo = len(set(labels)) < 2
    if pseudo:  # nothing false clears the floor (or nothing true): one pseudo-count at the floor keeps the fit finite
        rows.append((floor, 1) if 1 in labels else (1.0, 8))
        labels.append(0 if 1 in labels else 1)
    model = fit(rows, labels, config_id, floor)
    verified = np.ones(len(segments), bool)
    if verify is not None:  # the geometry checks what could pass (score >= 0.5)
        for n, (index, aligned, segment, _) in enumerate(segments):
            scored = scored_segment(segment, described[index][1], model)
            verified[n] = scored.score >= 0.5 and bool(
                confirm_candidate(archive, described[index][1], aligned, [scored], verify)
            )
    scores = np.array([model.score(s.similarity, s.frames) for _, _, s, _ in segments])
    negative_ids = [i for i, (q, _) in enumerate(described) if not q.truth]
    best_negative = {i: 0.0 for i in negative_ids}
    for (index, _, _, _label), score, ok in zip(segments, scores, verified):
        if index in best_negative and ok:
            best_negative[index] = max(best_negative[index], score)
    window_matches = still_matches = 0
    if verify is not None:  # the search's second chance, for a clip with no verified match, counts too
        searched = replace(model, background_k=k)
        for index in (i for i, best in best_negative.items() if best == 0.0 and described[i][1].usable.any()):
            query = described[index][1]
            if searchable_as_still(query, verify):
                found = match_still_moment(
                    archive, query, searched, verify, neighbours=settings.search_neighbours, background=background
                )
                if found:
                    still_matches += 1
                    best_negative[index] = max(m.score for m in found)
                    continue
            found, _ = match_in_windows(
                archive, query, searched, verify, neighbours=settings.search_neighbours, background=background
            )
            if found:
                window_matches += 1
                best_negative[index] = max(m.score for m in found)
    threshold = choose_threshold(np.array(list(best_negative.values())), args.max_fmr)
    rescue = None
    if verify is not None:  # the last chance: near misses proved by their aligned parts
        searched = replace(model, threshold=threshold, background_k=k)
        rescue = measure_rescue(archive, described, segments, searched, verify, background)
        for index, best in rescue.pop("negative_best").items():
            if best_negative[index] < threshold:  # the search tries it only where nothing else matched
                best_negative[index] = best
        threshold = choose_threshold(np.array(list(best_negative.values())), args.max_fmr)
    negative_scores = np.array(list(best_negative.values()))
    labels = np.array([y for *_, y in segments])
    positive_ok = (scores >= threshold) & verified & (labels == 1)
    measured = {
        "date": date.today().isoformat(), "script": "scripts/calibrate.py", "variant": name, "seed": args.seed,
        "archive": evalkit.ARCHIVED, "distractors": args.distractors, "held_out": evalkit.SIDES["calibration"][1],
        "picture_pool": evalkit.SIDES["calibration"][0], "negative_sources": args.negative_sources,
        "queries": len(queries), "negative_queries": len(negative_ids), "negative_frames": len(negative_best),
        "floor_percentile": args.floor_percentile, "max_fmr": args.max_fmr, "ridge_l2": model.measured["ridge_l2"],
        "pseudo_count_added": pseudo,
        "true_segments": int(labels.sum()), "false_segments": int((labels == 0).sum()),
        "verified_false_segments": int((verified & (labels == 0)).sum()) if verify else None,
        "negatives_matched_in_windows": window_matches if verify else None,
        "negatives_matched_at_still_moments": still_matches if verify else None,
        "true_recall_at_threshold": round(float(positive_ok.sum() / max(labels.sum(), 1)), 4),
        "negative_fmr_at_threshold": round(float(np.mean(negative_scores >= threshold)), 4),
        "near_miss_rescue": rescue,
    }  # fmt: skip
    calibration = Calibration(
        config_id,
        round(floor, 4),
        round(model.bias, 4),
        round(model.weight_similarity, 4),
        round(model.weight_log_frames, 4),
        threshold,
        measured=measured,
        background_sha256=background.sha256 if background else None,
        background_k=k,
        background_inputs_sha256=background.inputs_sha256 if background else None,
        background_signature=vectors_signature(background.vectors) if background else None,
        rescue_near_misses=verify is not None,
    )
    return calibration, measured


def choose_threshold(negative_scores: np.ndarray, max_fmr: float) -> float:
    """The smallest score >= 0.5 at which at most max_fmr of the negative queries match."""
    for candidate in np.round(np.arange(0.5, 0.995, 0.005), 3):
        if np.mean(negative_scores >= candidate) <= max_fmr:
            return float(candidate)
    return 0.995


def measure_rescue(archive, described, segments, model: Calibration, verify: VerifyPolicy, background) -> dict:
    """The near misses the search would prove by their aligned parts (geometry_rescue.py: the
    best few candidates of a query scoring under the threshold, verified, their overlapping
    parts described again and scored): how many of the true and of the false ones verify and
    pass, on every query of this side. Returns the counts and each negative query's best
    rescued score (popped by the caller, for the false-match budget)."""
    by_candidate: dict = {}
    for index, aligned, _, label in segments:
        by_candidate.setdefault((index, aligned.video_id), (aligned, label))
    near: dict[int, list] = {}
    for (index, _), (aligned, label) in by_candidate.items():
        query = described[index][1]
        scored = sorted((scored_segment(s, query, model) for s in aligned.segments), key=lambda s: -s.score)
        if scored and scored[0].score < model.threshold:
            near.setdefault(index, []).append((NearMiss.of(aligned, scored), label))
    agree = AgreementCheck(verify.describe, background, model.background_k)
    rows = []  # (query index, verified, agreement, rescued score, label)
    for index, misses in tqdm(near.items(), desc="near misses", file=sys.stderr, disable=not sys.stderr.isatty()):
        labels = {id(m.aligned): label for m, label in misses}
        verifier = Verifier(verify.params)
        for miss in near_misses_worth_checking([m for m, _ in misses]):
            confirmed = confirm_aligned(
                archive, described[index][1], miss.aligned, list(miss.segments), verifier, verify, agree
            )
            agreements = [c.evidence.agreement for c in confirmed if c.evidence and c.evidence.agreement is not None]
            score = max((aligned_score(c, model) for c in confirmed), default=0.0)
            rows.append((index, bool(confirmed), max(agreements, default=None), score, labels[id(miss.aligned)]))
    false_verified = [r for r in rows if r[1] and not r[4]]
    negative_best: dict[int, float] = {}
    for index, _, _, score, _ in rows:
        if not described[index][0].truth:
            negative_best[index] = max(negative_best.get(index, 0.0), score)
    return {
        "near_misses_checked": len(rows), "true_near_misses": sum(r[4] for r in rows),
        "true_verified": sum(1 for r in rows if r[1] and r[4]),
        "true_rescued": sum(1 for r in rows if r[4] and r[3] >= model.threshold),
        "false_verified": len(false_verified),
        "false_rescued": sum(1 for r in rows if not r[4] and r[3] >= model.threshold),
        "max_false_verified_agreement": round(max((r[2] for r in false_verified if r[2] is not None), default=0.0), 4),
        "max_false_score": round(max((r[3] for r in rows if not r[4]), default=0.0), 4),
        "negative_best": negative_best,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--footage", type=Path, default=evalkit.REPO / ".cache" / "footage")
    parser.add_argument("--work", type=Path, default=evalkit.REPO / ".cache" / "calibration")
    parser.add_argument("--seed", type=int, default=1001)
    parser.add_argument("--distractors", type=int, default=300)
    parser.add_argument("--negative-sources", type=int, default=40)
    parser.add_argument("--max-fmr", type=float, default=0.005, help="share of negative queries allowed to match")
    parser.add_argument("--floor-percentile", type=float, default=95.0)
    parser.add_argument("--background-k", type=int, default=10)
    parser.add_argument("--output", type=Path, default=None, help="calibration file (default: the package's)")
    parser.add_argument("--ablation", type=Path, default=None, help="also write each variant's calibration here")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="which variants to fit (full is the shipped one)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()

    settings = evalkit.settings_for(args.work)
    descriptor = create_descriptor(settings.descriptor, settings)
    with np.load(background_dir(settings.background_dir, descriptor.config_id) / "background.npz") as data:
        sha = vectors_sha256(data["vectors"])
    background = load_background(settings.background_dir, descriptor.config_id, sha)
    side = evalkit.side("calibration", args.negative_sources)
    distractors = evalkit.make_distractors(side, args.distractors, args.work / "distractors", args.seed)
    sources = evalkit.load_sources(args.footage, evalkit.ARCHIVED)
    copies = evalkit.build_archive(args.footage, args.work, sources, settings, distractors=distractors)
    names = {vid: name for name, vid in evalkit.video_ids_by_name(settings).items()}
    negatives = evalkit.negative_sources(side, args.footage, args.negative_sources, args.work / "unrelated", args.seed)
    queries = evalkit.make_queries(sources, args.work / "queries", seed=args.seed, negatives=negatives)
    print(
        f"{len(queries)} queries ({sum(1 for q in queries if not q.truth)} negative from {len(negatives)} sources), "
        f"{len(distractors)} distractors",
        file=sys.stderr,
    )

    verify = VerifyPolicy.from_settings(settings, descriptor.describe)
    with open_archive(settings.data_dir, settings.resolved_catalog_url(), DescriptorSpec.of(descriptor)) as archive:
        described = [
            (q, describe_query(q.path, descriptor, QueryParams.from_settings(settings)))
            for q in tqdm(queries, desc="describing", file=sys.stderr, disable=not sys.stderr.isatty())
        ]
        wanted = set(args.variants.split(","))
        for name, (normalise, verified) in VARIANTS.items():
            if name not in wanted or name != "full" and args.ablation is None:
                continue
            calibration, measured = calibrate_variant(
                name,
                archive,
                described,
                queries,
                names,
                copies,
                background if normalise else None,
                verify if verified else None,
                descriptor.config_id,
                settings,
                args,
            )
            if name == "full":
                save_calibration(calibration, args.output)
            if args.ablation is not None:
                args.ablation.mkdir(parents=True, exist_ok=True)
                save_calibration(calibration, args.ablation / f"{name}.json")
            print(
                f"{name}: floor {calibration.similarity_floor}, logistic {calibration.bias:+.2f} "
                f"{calibration.weight_similarity:+.2f}*sim {calibration.weight_log_frames:+.2f}*log(frames), "
                f"threshold {calibration.threshold}; true segments kept {measured['true_recall_at_threshold']:.3f}, "
                f"negative queries matched {measured['negative_fmr_at_threshold']:.4f}",
                file=sys.stderr,
            )
    print(f"calibrated in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
