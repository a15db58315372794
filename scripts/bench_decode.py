"""Benchmark: plain full decode against firstseen.media.decode.sample_frames at 1 fps, per decoder setting.

For each file, one timed run each of: decoding every frame without conversion (thread_type AUTO,
the baseline), then sample_frames(fps=1) for thread_type AUTO/SLICE/FRAME x skip_nonref off/on.
Throughput is footage seconds per wall second and the ratio to the plain decode. The sampling
error columns say how far yielded timestamps land from their 1/fps targets (max |pts - target|),
and how far a run's picks drift from the exact picks made from every decoded frame (pick drift,
which is what skip_nonref costs).

    python scripts/bench_decode.py VIDEO [VIDEO ...] [--fps 1] [--max-side 360] [--threads 0]

What it showed on 2 shared cores (FFmpeg 8.1 via PyAV 18.1): no thread type wins consistently
(repeat runs reorder them by +-30%), so firstseen.media.decode keeps FFmpeg's AUTO. Not decoding
non-reference frames when sampling pays on codecs with B-frames (h264, MPEG-4 ASP: up to 3x on
Megamind.avi) and moves a pick by at most a frame or two, at its real timestamp, so it is on by
default when sampling and off when every frame is asked for. scripts/bench_ingest.py measures
the whole ingest against plain decoding.
"""

from __future__ import annotations

import argparse
import bisect
import math
import sys
import time
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firstseen.errors import MediaError  # noqa: E402
from firstseen.media import decode as media  # noqa: E402


def plain_decode(path: str, threads: int) -> tuple[float, list[float]]:
    """Wall seconds to decode every frame (no pixel conversion), and their relative pts."""
    start = time.perf_counter()
    pts: list[float] = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        origin = stream.start_time or 0
        for frame in container.decode(stream):
            if frame.pts is not None:
                pts.append(float((frame.pts - origin) * stream.time_base))
    return time.perf_counter() - start, sorted(pts)


def picks(all_pts: list[float], fps: float, end: float) -> dict[int, float]:
    """Target index -> the first frame at or after that target, from a list of frame times."""
    out = {}
    for k in range(int(end * fps) + 1):
        i = bisect.bisect_left(all_pts, k / fps - 1e-3)
        if i < len(all_pts):
            out[k] = all_pts[i]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="+")
    ap.add_argument("--fps", type=float, default=1.0)
    ap.add_argument("--max-side", type=int, default=360)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)

    saved = media.THREAD_TYPE
    for path in args.videos:
        try:
            info = media.probe(path)
        except MediaError as exc:
            print(f"{path}: {exc}")
            continue
        base_s, all_pts = plain_decode(path, args.threads)
        footage = max(info.duration_s, all_pts[-1] if all_pts else 0.0)
        exact = picks(all_pts, args.fps, footage)
        print(
            f"\n{Path(path).name}: {info.codec} {info.width}x{info.height} {info.container}, "
            f"{footage:.1f} s, {len(all_pts)} frames decode"
        )
        print(
            f"  {'setting':<22}{'wall s':>8}{'footage s/s':>13}{'x plain':>9}{'frames':>8}"
            f"{'max|pts-target|':>17}{'pick drift':>12}"
        )
        print(f"  {'plain decode (AUTO)':<22}{base_s:>8.3f}{footage / base_s:>13.1f}{1.0:>9.2f}{len(all_pts):>8}")
        for thread_type in ("AUTO", "SLICE", "FRAME"):
            for skip in (False, True):
                media.THREAD_TYPE = thread_type
                got: list[float] = []
                note = ""
                start = time.perf_counter()
                try:
                    for frame in media.sample_frames(
                        path, fps=args.fps, max_side=args.max_side, threads=args.threads, skip_nonref=skip
                    ):
                        got.append(frame.pts_s)
                except MediaError as exc:
                    note = f"  ({exc})"
                wall = time.perf_counter() - start
                media.THREAD_TYPE = saved
                error = max(
                    (
                        p - k / args.fps
                        for k, p in picks(got, args.fps, footage).items()
                        if p - k / args.fps < 1 / args.fps
                    ),
                    default=math.nan,
                )
                mine = picks(got, args.fps, footage)
                drift = max((abs(mine[k] - exact[k]) for k in mine.keys() & exact.keys()), default=math.nan)
                label = f"{thread_type} skip_nonref={'on' if skip else 'off'}"
                print(
                    f"  {label:<22}{wall:>8.3f}{footage / wall:>13.1f}{base_s / wall:>9.2f}{len(got):>8}"
                    f"{error:>17.3f}{drift:>12.3f}{note}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
