"""Search time alone of the product's IVF at a given size, built in minutes instead of an hour.

bench_scale.py measures recall and time on a truly filled IVF, which at 10M vectors takes an
hour to train and fill on two cores. Search time depends on the shape (centroid count, codes
per list, nprobe), not on which vector sits in which list, so this fills an IVF of the same
shape with random codes in random lists and times a 120-frame clip's search through FAISS's
per-vector scan (its default below 128,000 queries) and through BLAS (the product's setting,
firstseen.storage.faiss_index.BLAS_MIN_QUERIES); one run, so the ratio is what to read. Exact flat search
of the same clip over --flat vectors is timed both ways too.

    python scripts/bench_ivf_search.py --vectors 10000000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_scale import DIM, median_ms, unit  # noqa: E402

from firstseen.storage.faiss_index import BLAS_MIN_QUERIES, IvfPlan, VectorIndex  # noqa: E402

FAISS_DEFAULT_THRESHOLD, BATCH, REPEATS = 128_000, 500_000, 7


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return unit(rng.standard_normal((n, DIM), dtype=np.float32))


def both_ways(fn) -> tuple[float, float]:
    """Median ms of fn through FAISS's per-vector scan, then through BLAS (each after a warm-up)."""
    timings = []
    for threshold in (FAISS_DEFAULT_THRESHOLD, BLAS_MIN_QUERIES):
        faiss.cvar.distance_compute_blas_threshold = threshold
        fn()
        timings.append(median_ms(fn, REPEATS))
    return timings[0], timings[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=10_000_000)
    parser.add_argument("--flat", type=int, default=200_000, help="vectors in the exact index timed")
    parser.add_argument("--queries", type=int, default=120)
    args = parser.parse_args()
    for option in ("vectors", "flat", "queries"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1, not {getattr(args, option)}")
    rng = np.random.default_rng(0)
    queries = unit_rows(rng, args.queries)
    flat = VectorIndex("bench", DIM, "inner_product")
    flat.add(np.arange(args.flat), unit_rows(rng, args.flat))
    scan, blas = both_ways(lambda: flat.search(queries, 10))
    print(
        f"exact flat, {args.flat:,} vectors, {args.queries} queries: per-vector scan {scan:.1f} ms, "
        f"BLAS {blas:.1f} ms ({scan / blas:.1f}x)"
    )
    flat = None  # frees the exact index before the IVF is built
    plan = IvfPlan.for_size(args.vectors)
    # Random unit centroids stand in for k-means ones (which on SSCD-like descriptors are
    # nearly as spread): FAISS skips k-means when the quantizer already holds nlist of them.
    raw = faiss.index_factory(DIM, f"IVF{plan.nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
    faiss.downcast_index(raw.quantizer).add(unit_rows(rng, plan.nlist))
    raw.train(unit_rows(rng, 50_000))
    ivf = VectorIndex("bench", DIM, "inner_product", raw)
    started = time.perf_counter()
    for start in range(0, args.vectors, BATCH):
        size = min(BATCH, args.vectors - start)
        codes = unit_rows(rng, size)
        lists = rng.integers(0, plan.nlist, size).astype(np.int64)
        ids = np.arange(start, start + size, dtype=np.int64)
        raw.add_core(size, faiss.swig_ptr(codes), faiss.swig_ptr(ids), faiss.swig_ptr(lists))
    print(f"IVF{plan.nlist} SQ8 filled with {len(ivf):,} random codes in {time.perf_counter() - started:.0f} s")
    for nprobe in (8, plan.nprobe, 32):
        ivf.set_nprobe(nprobe)
        scan, blas = both_ways(lambda: ivf.search(queries, 10))
        print(
            f"  nprobe {nprobe:>2}: {args.queries}-query search, per-vector scan {scan:.1f} ms, "
            f"BLAS {blas:.1f} ms ({scan / blas:.1f}x)"
        )


if __name__ == "__main__":
    main()
