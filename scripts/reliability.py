"""A bounded soak of the nightly indexer on loopback, against PostgreSQL: SIGKILL it at random
moments during ingest and reindex, and run ingest and reindex while HTTP searches go on.

Phase 1 kills `firstseen ingest` / `firstseen reindex` processes many times; after each kill
the archive is recovered as the next run would, and must be consistent (catalog, raw vectors
and index agree), have lost no committed video, and answer the probe searches as before.
Phase 2 starts `firstseen serve`, keeps searchers posting real edited clips, and meanwhile
ingests new footage and rebuilds the index in other processes: no request may fail, and the
new footage must become searchable without a restart.

    python scripts/reliability.py --kills 40
Prints kills survived, requests sent, errors (must be 0) and videos lost (must be 0); exits 1
otherwise. Archive videos are cuts of the real footage that scripts/fetch_footage.py fetches.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_api import free_port, wait_ready  # noqa: E402
from edits import FrameSource, make_query  # noqa: E402

from firstseen.archive import open_archive  # noqa: E402
from firstseen.fileid import sha256_file, video_id_for  # noqa: E402
from firstseen.search.searcher import Searcher  # noqa: E402
from firstseen.settings import get_settings  # noqa: E402

PG_URL = os.environ.get("FIRSTSEEN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# The soak measures durability, so its probes must be copies the search verifies: the
# particle-filled underwater clip (diver.mov) re-encoded at 320 pixels gives SIFT too little to
# verify (README, "Search quality"), and a miss there would say nothing about lost data.
SOURCES = ("vtest.avi", "bikes.mp4", "cockatoo.mp4", "tree.avi", "bigbuckbunny.mp4")


def pg_schema_url() -> tuple[str, callable]:
    """A fresh schema in the shared database, and a function that drops it."""
    schema = f"fs_soak_{uuid.uuid4().hex[:12]}"
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()

    return make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False), drop


def make_footage(footage: Path, work: Path, clips_per_source: int, seconds: float, seed: int):
    """Archive videos (re-encoded cuts of real footage, each a distinct file) and, for each,
    a probe query (a 3-second piece of it re-uploaded with a station logo, at 480 pixels: a
    copy the geometry can verify even in the softest footage, where a tiny crop has no features)."""
    rng = np.random.default_rng(seed)
    archive_dir, probe_dir = work / "cuts", work / "probes"
    archive_dir.mkdir(parents=True)
    probe_dir.mkdir(parents=True)
    cuts = []
    for name in SOURCES:
        if not (footage / name).exists():
            continue
        source = FrameSource(footage / name, max_side=320)
        sharper = FrameSource(footage / name, max_side=480)  # probes at the size uploads come in
        duration = float(source.pts[-1])
        for i in range(min(clips_per_source, int(duration // seconds))):
            start = i * seconds
            cut = make_query("reencode", source, start, seconds, archive_dir, rng=rng)
            target = archive_dir / f"{Path(name).stem}-{i:02d}.mp4"
            cut.path.rename(target)
            probe = make_query("logo", sharper, start + 0.5, min(3.0, seconds - 1), probe_dir, rng=rng)
            cuts.append((target, probe.path))
        del source, sharper
    if len(cuts) < 6:
        raise SystemExit(f"too little footage in {footage}: run scripts/fetch_footage.py first")
    return cuts


class Soak:
    def __init__(self, args, work: Path, catalog_url: str):
        self.args, self.work, self.catalog_url = args, work, catalog_url
        self.data_dir = work / "data"
        self.rng = random.Random(args.seed)
        self.committed: dict[str, int] = {}
        self.probes = 0
        self.kills: Counter = Counter()
        self.kill_points: Counter = Counter()
        self.lost = 0
        self.runs = 0
        self.log_path: Path | None = None

    def env(self, **extra: str) -> dict:
        return {
            **os.environ,
            "FIRSTSEEN_DATA_DIR": str(self.data_dir),
            "FIRSTSEEN_CATALOG_URL": self.catalog_url,
            "FIRSTSEEN_CHECKPOINT_EVERY_S": "0.05",
            "FIRSTSEEN_ONNX_THREADS": "1",
            "FIRSTSEEN_INDEX_NLIST": "8",
            "FIRSTSEEN_LOCK_WAIT_S": "60",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def command(self, *argv: str, **extra: str) -> subprocess.Popen:
        self.runs += 1
        self.log_path = self.work / "logs" / f"{self.runs:03d}-{argv[0]}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        log = open(self.log_path, "w")  # noqa: SIM115 - handed to the child
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", *argv], env=self.env(**extra), stdout=log, stderr=subprocess.STDOUT
        )

    def settings(self):
        return get_settings(data_dir=self.data_dir, catalog_url=self.catalog_url, onnx_threads=1)

    def check(self) -> None:
        """Recover as the next run would; then everything committed must be there and searchable."""
        with open_archive(self.data_dir, self.catalog_url, writable=True) as archive:
            problems = archive.verify()
            if problems:
                raise SystemExit(f"archive inconsistent after a kill: {problems}")
            now = {r.video_id: r.frame_count for r in archive.videos(status="committed")}
        lost = [v for v, n in self.committed.items() if now.get(v) != n]
        self.lost += len(lost)
        self.committed = now

    def probe(self, cuts) -> None:
        """Each probe whose cut is archived must find that cut (cuts of one scene may also
        match one another, so which of them is "earliest" is not the check)."""
        with Searcher(self.settings()) as searcher:
            for cut, probe in cuts:
                expected = video_id_for(sha256_file(cut))
                if expected not in self.committed:
                    continue
                found = [m["video_id"] for m in searcher.search(probe, top_k=10).to_dict()["matches"]]
                self.probes += 1
                if expected not in found:
                    raise SystemExit(f"{probe.name} no longer finds its source {expected} (found {found})")

    def run_killed(self, argv: list[str], kind: str, window_s: tuple[float, float]) -> None:
        process = self.command(*argv)
        time.sleep(self.rng.uniform(*window_s))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            self.kills[kind] += 1
            self.kill_points[f"{kind}: {self.last_log_event()}"] += 1
        process.wait()

    def last_log_event(self) -> str:
        """Where the killed process was, from the last line it logged."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        for line in reversed(lines):
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "video":
                    return f"after video {event.get('n')} of {event.get('of')}"
                return str(event.get("event", "log"))
            if "rebuilding" in line:
                return "building"
        return "starting up"

    def phase1(self, cuts, drop: Path) -> None:
        for cut, _ in cuts[: len(cuts) // 2]:
            shutil.copy(cut, drop / cut.name)
        started = time.monotonic()
        self.command("ingest", str(drop)).wait()  # one clean run: the baseline, and its duration
        ingest_s = time.monotonic() - started
        self.check()
        self.probe(cuts)
        started = time.monotonic()
        self.command("reindex", "--kind", "ivf").wait()
        reindex_s = time.monotonic() - started
        self.check()
        # Kills land between a fraction of start-up and a little past a one-video run.
        ingest_window = (0.5 * reindex_s, max(ingest_s / max(len(cuts) // 2, 1) * 2 + reindex_s, 1.0))
        pending = [c for c, _ in cuts[len(cuts) // 2 : len(cuts) - self.args.phase2_clips]]
        for n in range(self.args.kills):
            if n % 2 == 0:
                if not pending and self.committed and n % 4 == 0:
                    # Out of new footage: take a video down (killed too); its file stays in
                    # the drop folder, so the next ingest round has a video to add again.
                    video_id = self.rng.choice(sorted(self.committed))
                    del self.committed[video_id]  # gone or kept are both right after this kill
                    self.run_killed(["remove", video_id], "remove", (0.5 * reindex_s, 1.2 * reindex_s))
                    self.check()
                for _ in range(2):  # new footage, so that a kill can land mid-video or mid-checkpoint
                    if pending:
                        cut = pending.pop()
                        shutil.copy(cut, drop / cut.name)
                self.run_killed(["ingest", str(drop)], "ingest", ingest_window)
            else:
                kind = self.rng.choice(["ivf", "flat", "ivf"])
                self.run_killed(["reindex", "--kind", kind], "reindex", (0.5 * reindex_s, 1.2 * reindex_s))
            self.check()
            if n % 5 == 4:
                self.probe(cuts)
        self.command("ingest", str(drop)).wait()
        self.check()
        self.probe(cuts)

    def phase2(self, cuts, drop: Path) -> dict:
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(port)],
            env=self.env(FIRSTSEEN_API_RELOAD_INTERVAL_S="0.5"),
            stdout=open(self.work / "server.log", "w"),
            stderr=subprocess.STDOUT,
        )  # noqa: SIM115
        base = f"http://127.0.0.1:{port}"
        stop, lock = threading.Event(), threading.Lock()
        stats = Counter()
        errors: list[str] = []
        probes = [p for _, p in cuts[: len(cuts) - self.args.phase2_clips]]
        threads: list[threading.Thread] = []

        def search_loop(i: int) -> None:
            with httpx.Client(timeout=120) as client:
                while not stop.is_set():
                    probe = probes[(i + stats["sent"]) % len(probes)]
                    try:
                        reply = client.post(f"{base}/v1/search", files={"file": (probe.name, probe.read_bytes())})
                        ok = reply.status_code == 200
                        why = f"{reply.status_code} {reply.text[:200]}"
                    except httpx.HTTPError as exc:
                        ok, why = False, repr(exc)
                    with lock:
                        stats["sent"] += 1
                        if not ok:
                            errors.append(why)

        try:
            wait_ready(port, server, self.work / "server.log", timeout_s=90)
            threads.extend(threading.Thread(target=search_loop, args=(i,)) for i in range(self.args.searchers))
            for t in threads:
                t.start()
            new = cuts[len(cuts) - self.args.phase2_clips :]
            for cut, _ in new:
                shutil.copy(cut, drop / cut.name)
            ingest = self.command("ingest", str(drop))
            if ingest.wait() != 0:
                errors.append(f"ingest during searches exited {ingest.returncode}")
            reindex = self.command("reindex", "--kind", "ivf")
            if reindex.wait() != 0:
                errors.append(f"reindex during searches exited {reindex.returncode}")
            found = 0
            deadline = time.monotonic() + 180  # searches verify by geometry, under load from the search loops
            with httpx.Client(timeout=120) as client:
                for _cut, probe in new:
                    while time.monotonic() < deadline:
                        reply = client.post(f"{base}/v1/search", files={"file": (probe.name, probe.read_bytes())})
                        if reply.status_code == 200 and reply.json().get("earliest"):
                            found += 1
                            break
                        time.sleep(0.5)
            time.sleep(self.args.soak_s)
        finally:
            stop.set()
            for t in threads:
                t.join()
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        self.check()
        return {
            "requests_sent": stats["sent"],
            "errors": len(errors),
            "error_samples": errors[:5],
            "new_videos_searchable": f"{found}/{len(new)}",
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--footage", type=Path, default=REPO / ".cache" / "footage")
    parser.add_argument("--kills", type=int, default=40, help="indexer processes to SIGKILL")
    parser.add_argument("--clips-per-source", type=int, default=4)
    parser.add_argument("--clip-seconds", type=float, default=4.0)
    parser.add_argument("--phase2-clips", type=int, default=3, help="cuts ingested while searches run")
    parser.add_argument("--searchers", type=int, default=2)
    parser.add_argument("--soak-s", type=float, default=5.0, help="extra searching after the new footage is found")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="firstseen-soak-"))
    catalog_url, drop_schema = pg_schema_url()
    started = time.monotonic()
    try:
        cuts = make_footage(args.footage, work, args.clips_per_source, args.clip_seconds, args.seed)
        drop = work / "drop"
        drop.mkdir()
        soak = Soak(args, work, catalog_url)
        soak.phase1(cuts, drop)
        served = soak.phase2(cuts, drop)
        report = {
            "kills_survived": sum(soak.kills.values()),
            "kills": dict(soak.kills),
            "kill_points": dict(soak.kill_points),
            **served,
            "videos_lost": soak.lost,
            "probe_searches_right": soak.probes,
            "videos": len(soak.committed),
            "catalog": "postgresql",
            "seconds": round(time.monotonic() - started, 1),
        }
    finally:
        drop_schema()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0 if report["errors"] == 0 and report["videos_lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
