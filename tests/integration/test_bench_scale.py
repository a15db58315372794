"""scripts/bench_scale.py: its recall definitions, and a run at a size CI can afford."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from bench_scale import RunningTopK, recall_at_k, tie_aware_recall  # noqa: E402
from paths import REPO


def _exact(scores: list[float]) -> RunningTopK:
    """An exact top-k over one query whose neighbours 0, 1, 2, ... score as given."""
    top = RunningTopK(np.ones((1, 4), np.float32), len(scores))
    top.scores = np.array([scores], np.float32)
    top.ids = np.arange(len(scores), dtype=np.int64)[None, :]
    return top


def test_tie_aware_recall_forgives_only_swaps_within_epsilon():
    exact = _exact([0.9, 0.8, 0.5005, 0.5, 0.4])  # the 3rd and 4th tie to 0.0005
    truth = exact.ids[:, :3]
    swapped = np.array([[0, 1, 3]])  # returns the 4th instead of the tied 3rd
    assert recall_at_k(swapped, truth) == 2 / 3
    assert tie_aware_recall(swapped, exact, k=3) == 1.0
    missed = np.array([[0, 1, 4]])  # 0.4 is no tie for 0.5005
    assert tie_aware_recall(missed, exact, k=3) == 2 / 3
    unknown = np.array([[0, 1, -1]])
    assert tie_aware_recall(unknown, exact, k=3) == 2 / 3
    assert tie_aware_recall(swapped, exact, k=3, epsilon=1e-4) == 2 / 3


def test_running_top_k_over_chunks_is_exact():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((5000, 16)).astype(np.float32)
    queries = rng.standard_normal((7, 16)).astype(np.float32)
    top = RunningTopK(queries, 10)
    for start in range(0, 5000, 1200):
        top.scan(data[start : start + 1200], start)
    expected = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    np.testing.assert_array_equal(top.ids, expected)


def test_a_small_run_reports_every_figure(tmp_path):
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench_scale.py"),
            "--sizes",
            "20000",
            "--repeats",
            "1",
            "--nprobe",
            "4,16",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    size = json.loads(out.read_text())["sizes"][0]
    assert size["vectors"] == 20000 and size["exact_recall_check"] == 1.0
    assert [s["nprobe"] for s in size["ivf"]] == [4, 16]
    for sweep in size["ivf"]:
        assert 0.0 <= sweep["recall_at_10"] <= sweep["recall_at_10_tie_aware"] <= 1.0
    assert size["ivf"][1]["recall_at_10"] >= size["ivf"][0]["recall_at_10"] >= 0.5
    assert 500 <= size["ivf_bytes_per_vector"] <= 2048
    assert "| 20,000 | IVF" in done.stdout


def test_ivf_search_bench_times_both_paths_at_the_plans_shape():
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench_ivf_search.py"),
            "--vectors",
            "20000",
            "--flat",
            "3000",
            "--queries",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = out.stdout.splitlines()
    assert lines[0].startswith("exact flat, 3,000 vectors, 30 queries: per-vector scan")
    assert "IVF1024 SQ8 filled with 20,000 random codes" in lines[1]
    assert [line.split(":")[0].strip() for line in lines[2:]] == ["nprobe  8", "nprobe 16", "nprobe 32"]
    for line in lines[2:]:
        assert "per-vector scan" in line and "BLAS" in line and line.endswith("x)")


def test_ivf_search_bench_refuses_an_empty_size():
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_ivf_search.py"), "--vectors", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--vectors must be at least 1, not 0" in out.stderr
