"""Scale-out benchmark on real footage: FAISS against Milvus Lite for search, executors for ingest.

One run on this machine, figures as ratios (2 shared cores are noisy):
  search   the same archive (vtest, cockatoo, diver, bikes) on FAISS files and on Milvus Lite,
           edited queries searched on both in turn: median seconds each, and whether every answer
           (source, earliest, segments) is identical
  ingest   all the footage (8 files) ingested by the local executor, by Ray with 1 and with 2 descriptor
           actors, and by two `ingest --shared` processes on one PostgreSQL ledger (--pg-url),
           each against plain decoding (the footage sampled as ingest samples it, no descriptor)
Run: python scripts/bench_scaleout.py [--footage DIR] [--pg-url URL] [--json-out F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edits import FrameSource, make_query  # noqa: E402

from firstseen.ingest.manifest import collect_inputs  # noqa: E402
from firstseen.ingest.run import run_ingest  # noqa: E402
from firstseen.media.decode import sample_frames  # noqa: E402
from firstseen.search.searcher import Searcher  # noqa: E402
from firstseen.settings import get_settings  # noqa: E402

FOOTAGE = ["vtest.avi", "cockatoo.mp4", "diver.mov", "bikes.mp4"]
EDITS = ["reencode", "crop60", "mirror", "reversed", "speed_2", "logo", "caption_ticker", "still"]


def manifest_for(footage: Path, work: Path, names: list[str] | None = None) -> Path:
    """A manifest of the named files (all the footage when None)."""
    work.mkdir(parents=True, exist_ok=True)
    lines = [json.loads(line) for line in (footage / "manifest.jsonl").read_text().splitlines()]
    chosen = [dict(line, path=str(footage / line["path"])) for line in lines if names is None or line["path"] in names]
    path = work / "manifest.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in chosen))
    return path


def answer(result) -> tuple:
    return (
        result.verdict,
        result.earliest.video.video_id if result.earliest else None,
        tuple(
            (
                m.video.video_id,
                tuple((round(s.query_start, 2), round(s.source_start, 2), s.mirrored) for s in m.segments),
            )
            for m in result.matches
        ),
    )


def bench_search(footage: Path, work: Path) -> dict:
    manifest = manifest_for(footage, work, FOOTAGE)
    faiss = get_settings(data_dir=work / "faiss")
    milvus = get_settings(data_dir=work / "milvus", index_url=f"milvus-lite://{work}/index.db")
    for settings in (faiss, milvus):
        run_ingest(settings, [], [manifest])
    rng = np.random.default_rng(7)
    queries = [
        make_query(edit, FrameSource(footage / name, 360), 1.0 + i % 3, 5.0, work / "queries", rng=rng).path
        for i, (name, edit) in enumerate((n, e) for n in FOOTAGE for e in EDITS)
    ]
    times: dict[str, list[float]] = {"faiss": [], "milvus_lite": []}
    same = 0
    with Searcher(faiss) as on_faiss, Searcher(milvus) as on_milvus:
        on_faiss.search(queries[0]), on_milvus.search(queries[0])  # warm
        for query in queries:
            outcomes = []
            for name, searcher in (("faiss", on_faiss), ("milvus_lite", on_milvus)):
                started = time.perf_counter()
                outcomes.append(answer(searcher.search(query)))
                times[name].append(time.perf_counter() - started)
            same += outcomes[0] == outcomes[1]
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {
        "queries": len(queries),
        "identical_answers": same,
        "median_s": medians,
        "milvus_over_faiss": medians["milvus_lite"] / medians["faiss"],
    }


def plain_decode_s(manifest: Path, fps: float) -> tuple[float, float]:
    started, duration = time.perf_counter(), 0.0
    for line in manifest.read_text().splitlines():
        last = 0.0
        for frame in sample_frames(json.loads(line)["path"], fps=fps, max_side=360):
            last = frame.pts_s
        duration += last
    return time.perf_counter() - started, duration


def bench_ingest(footage: Path, work: Path, pg_url: str | None) -> dict:
    from firstseen.ingest.ray_executor import ray_executor
    from firstseen.ingest.shared import ingest_shared

    manifest = manifest_for(footage, work)  # all the footage: fixed costs (model loads) weigh less
    base = get_settings(data_dir=work / "probe")
    decode_s, footage_s = plain_decode_s(manifest, base.archive_fps)
    out: dict = {"footage_s": round(footage_s, 1), "plain_decode_s": round(decode_s, 2)}

    started = time.perf_counter()
    run_ingest(get_settings(data_dir=work / "local"), [], [manifest])
    out["local_s"] = time.perf_counter() - started
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        for actors in (1, 2):
            settings = get_settings(data_dir=work / f"ray{actors}")
            started = time.perf_counter()
            ingest_shared(
                settings, collect_inputs([], [manifest]), executor=ray_executor(None, settings, actors=actors)
            )
            out[f"ray_{actors}_actor_s"] = time.perf_counter() - started
    finally:
        ray.shutdown()
    if pg_url:
        env = {**os.environ, "FIRSTSEEN_DATA_DIR": str(work / "two"), "FIRSTSEEN_CATALOG_URL": pg_url,
               "FIRSTSEEN_ONNX_THREADS": "1", "FIRSTSEEN_INGEST_CLAIM_BATCH": "1"}  # fmt: skip
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "cli.main", "ingest", "--shared", "--manifest", str(manifest)],
                env=env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            for _ in range(2)
        ]
        codes = [p.wait() for p in procs]
        out["two_processes_s"] = time.perf_counter() - started
        out["two_processes_rc"] = codes
    for key in [k for k in out if k.endswith("_s") and k not in ("footage_s", "plain_decode_s")]:
        out[key.replace("_s", "_over_decode")] = round(out[key] / decode_s, 2)
        out[key] = round(out[key], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--footage", type=Path, default=REPO / ".cache" / "footage")
    parser.add_argument("--pg-url", help="a PostgreSQL catalog (an empty schema) for the two-process run")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
        # Ray first: its node starts processes by fork, which a running Milvus Lite gRPC server upsets
        ingest = bench_ingest(args.footage, Path(tmp) / "ingest", args.pg_url)
        report = {"search": bench_search(args.footage, Path(tmp) / "search"), "ingest": ingest}
    print(json.dumps(report, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
