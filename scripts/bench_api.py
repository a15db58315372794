"""HTTP API benchmark: the search endpoint under concurrent load, against the same search in-process.

One run on this machine, with the real-footage archive (all of .cache/footage ingested into a
fresh data directory unless --data-dir names one) and `firstseen serve` as a separate process
on loopback. It prints:
  in-process       Searcher.search on the query file, sequentially (the core's own latency)
  http, 1 at once  the same query uploaded to POST /v1/search, one request at a time
  http, N at once  --requests requests from --concurrency client threads at once
and the ratios between them: HTTP overhead (upload, multipart, JSON, event loop) as
http/in-process latency, and throughput under load against sequential in-process searching.
Errors (any non-200) must be zero; the script exits 1 otherwise. Bounded by --requests and
--time-limit-s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edits import FrameSource, make_query  # noqa: E402

from firstseen.ingest.progress import LogProgress  # noqa: E402
from firstseen.ingest.run import run_ingest  # noqa: E402
from firstseen.search.searcher import Searcher  # noqa: E402
from firstseen.settings import get_settings  # noqa: E402


class _Quiet(LogProgress):
    def video_done(self, *args, **kwargs) -> None:
        pass


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(data_dir: Path, port: int, concurrency: int, log_path: Path) -> subprocess.Popen:
    env = dict(
        os.environ, FIRSTSEEN_DATA_DIR=str(data_dir), FIRSTSEEN_API_MAX_QUEUED_SEARCHES=str(max(8, concurrency))
    )  # the bench measures queueing, not 429s
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(port)],
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )
    wait_ready(port, server, log_path)
    return server


def wait_ready(port: int, server: subprocess.Popen, log_path: Path, timeout_s: float = 60) -> None:
    """Until /readyz answers 200; the server is killed if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode}); see {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit(f"the server was not ready within {timeout_s:.0f} s; see {log_path}")


def post(client: httpx.Client, url: str, clip: bytes, name: str) -> tuple[float, int, str]:
    started = time.perf_counter()
    try:
        response = client.post(url, files={"file": (name, clip, "video/mp4")}, timeout=300)
        verdict = response.json().get("verdict", "") if response.status_code == 200 else response.text[:200]
        return time.perf_counter() - started, response.status_code, verdict
    except httpx.HTTPError as exc:
        return time.perf_counter() - started, 0, str(exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--footage", type=Path, default=REPO / ".cache" / "footage")
    parser.add_argument("--data-dir", type=Path, help="an existing archive (default: ingest --footage afresh)")
    parser.add_argument("--clip-s", type=float, default=6.0, help="query length (a reversed vtest.avi excerpt)")
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5, help="sequential runs in-process and over HTTP")
    parser.add_argument("--time-limit-s", type=float, default=300.0)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="firstseen-bench-api-"))
    data_dir = args.data_dir
    if data_dir is None:
        data_dir = work / "data"
        summary = run_ingest(get_settings(data_dir=data_dir), [], [args.footage / "manifest.jsonl"], _Quiet())
        print(f"archive: {summary.added} videos, {summary.frames} frames ingested into {data_dir}")
    query = make_query(
        "reversed",
        FrameSource(args.footage / "vtest.avi", 360),
        30.0,
        args.clip_s,
        work / "q",
        rng=np.random.default_rng(0),
    ).path
    clip = query.read_bytes()
    print(f"query: {query.name}, {len(clip) / 1e6:.2f} MB, {args.clip_s:.0f} s")

    port = free_port()
    server = start_server(data_dir, port, args.concurrency, work / "server.log")
    url = f"http://127.0.0.1:{port}/v1/search"
    try:
        # In-process and single HTTP searches alternate, so a burst of noise on this shared
        # machine lands on both sides of the ratio rather than on one.
        in_process, single = [], []
        with Searcher(get_settings(data_dir=data_dir)) as searcher, httpx.Client() as client:
            searcher.search(query)  # warm-up: first-call allocations in onnxruntime and FAISS
            post(client, url, clip, query.name)
            for _ in range(args.repeat):
                started = time.perf_counter()
                verdict = searcher.search(query).verdict
                in_process.append(time.perf_counter() - started)
                single.append(post(client, url, clip, query.name))
        assert verdict == "match", "the benchmark query must match its source"
        deadline = time.monotonic() + args.time_limit_s
        with (
            httpx.Client(limits=httpx.Limits(max_connections=args.concurrency)) as client,
            ThreadPoolExecutor(args.concurrency) as pool,
        ):
            started = time.perf_counter()
            futures = [
                pool.submit(
                    lambda: (
                        post(client, url, clip, query.name)
                        if time.monotonic() < deadline
                        else (0.0, -1, "skipped: time limit")
                    )
                )
                for _ in range(args.requests)
            ]
            loaded = [f.result() for f in futures]
            wall = time.perf_counter() - started
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        server.terminate()
        server.wait(timeout=30)

    sent = [r for r in loaded if r[1] != -1]
    errors = [r for r in single + sent if r[1] != 200 or r[2] != "match"]
    lat_in, lat_one = statistics.median(in_process), statistics.median([r[0] for r in single])
    lat_load = [r[0] for r in sent]
    throughput = len(sent) / wall
    rows = [
        ("in-process, sequential", f"p50 {lat_in:.3f} s", f"{1 / lat_in:.2f} searches/s"),
        ("http, 1 at once", f"p50 {lat_one:.3f} s", f"{1 / lat_one:.2f} searches/s"),
        (
            f"http, {args.concurrency} at once ({len(sent)} requests)",
            f"p50 {percentile(lat_load, 50):.3f} s  p95 {percentile(lat_load, 95):.3f} s",
            f"{throughput:.2f} searches/s",
        ),
    ]
    print()
    for row in rows:
        print(f"  {row[0]:38} {row[1]:34} {row[2]}")
    print()
    print(
        f"  HTTP overhead, one request:      {lat_one / lat_in:.2f}x in-process latency ({(lat_one - lat_in) * 1000:+.0f} ms)"
    )
    print(f"  throughput under load:           {throughput * lat_in:.2f}x sequential in-process")
    print(f"  p95 under load:                  {percentile(lat_load, 95) / lat_in:.2f}x in-process latency")
    print(f"  errors:                          {len(errors)} of {len(single) + len(sent)} requests")
    rejected = [line for line in metrics.splitlines() if line.startswith("firstseen_searches_rejected_total")]
    print(f"  server says:                     {rejected[0] if rejected else 'no rejection counter'}")
    print("  (each side has the machine to itself: the server idles during in-process runs)")
    print(
        json.dumps(
            {
                "in_process_p50_s": round(lat_in, 4),
                "http_single_p50_s": round(lat_one, 4),
                "load_p50_s": round(percentile(lat_load, 50), 4),
                "load_p95_s": round(percentile(lat_load, 95), 4),
                "throughput_per_s": round(throughput, 3),
                "requests": len(single) + len(sent),
                "errors": len(errors),
                "concurrency": args.concurrency,
            }
        )
    )
    for error in errors[:5]:
        print(f"  error: status {error[1]}: {error[2]}", file=sys.stderr)
    if errors:
        print(f"  server log kept in {work / 'server.log'}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
