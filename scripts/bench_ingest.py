"""Ingest benchmark on real footage: throughput against plain decoding, descriptor speed, storage.

All figures come from one run on this machine and are printed as ratios where the machine's
speed would otherwise dominate (2 shared cores are noisy): each timing is the best of --repeat.
  plain decode     every frame of every file decoded with PyAV (FFmpeg's own threading)
  ingest           `firstseen ingest` at default settings into a new archive, in-process, from
                   input collection to the final checkpoint (model load, catalog creation included)
  ingest, existing the nightly case: the same into an archive that exists already
  ingest steady    the same minus the one-off set-up (model load, catalog migration)
  descriptors      frames per second of each descriptor on the sampled frames
  storage          index + catalog bytes per footage hour, and raw vectors kept for rebuilds
  peak RSS         of a separate `firstseen ingest` process
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from firstseen.descriptors import create_descriptor, descriptor_names, plugin_settings  # noqa: E402
from firstseen.errors import DescriptorUnavailableError  # noqa: E402
from firstseen.ingest.progress import LogProgress  # noqa: E402
from firstseen.ingest.run import run_ingest  # noqa: E402
from firstseen.media.decode import VIDEO_EXTENSIONS, probe, sample_frames  # noqa: E402
from firstseen.ops.stats import archive_stats  # noqa: E402
from firstseen.params import IngestPolicy  # noqa: E402
from firstseen.settings import get_settings  # noqa: E402


def best_of(repeat: int, fn):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def plain_decode(files: list[Path]) -> None:
    for path in files:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for _ in container.decode(stream):
                pass


class _Quiet(LogProgress):
    def video_done(self, *args, **kwargs) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--footage", type=Path, default=REPO / ".cache" / "footage")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    manifest = args.footage / "manifest.jsonl"
    files = sorted(p for p in args.footage.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    footage_s = sum(probe(p).duration_s for p in files)
    settings = get_settings()
    sscd = plugin_settings("sscd", settings)
    print(
        f"{len(files)} files, {footage_s:.1f} s of footage; descriptor {settings.descriptor} "
        f"({sscd.sscd_variant} @{sscd.sscd_input_size}), {settings.archive_fps} frame/s sampled, "
        f"{sscd.onnx_threads} inference threads; best of {args.repeat}"
    )

    decode_s, _ = best_of(args.repeat, lambda: plain_decode(files))
    work = Path(tempfile.mkdtemp(prefix="fs-bench-"))
    try:

        def ingest():
            data = work / f"data-{time.monotonic_ns()}"
            s = get_settings(data_dir=data, catalog_url=None)
            return data, run_ingest(s, [], [manifest], progress=_Quiet())

        ingest_s, (data, summary) = best_of(args.repeat, ingest)
        assert summary.failed == 0 and summary.added == len(files), summary

        def nightly():
            # The usual case: the archive exists (catalog made, descriptor recorded) already.
            data = work / f"nightly-{time.monotonic_ns()}"
            s = get_settings(data_dir=data, catalog_url=None)
            from firstseen.archive import DescriptorSpec, open_archive

            open_archive(
                data, s.resolved_catalog_url(), DescriptorSpec.of(create_descriptor(s.descriptor, s)), writable=True
            ).close()
            start = time.perf_counter()
            run_ingest(s, [], [manifest], progress=_Quiet())
            return time.perf_counter() - start

        nightly_s = min(nightly() for _ in range(args.repeat))
        stats = archive_stats(get_settings(data_dir=data, catalog_url=None))

        # Steady state: the same pipeline with the model already loaded and the catalog made.
        from firstseen.ingest.pipeline import describe_videos

        descriptor = create_descriptor(settings.descriptor, settings)
        steady_s, _ = best_of(
            args.repeat,
            lambda: list(
                describe_videos(files, descriptor, IngestPolicy.from_settings(settings), fps=settings.archive_fps)
            ),
        )

        frames = [
            f.rgb for p in files for f in sample_frames(p, fps=settings.archive_fps, max_side=settings.decode_max_side)
        ]
        rates = {}
        for name in descriptor_names():
            variants = (
                [("distilled", {"sscd_variant": "distilled"}), ("full", {"sscd_variant": "full"})]
                if name == "sscd"
                else [("", {})]
            )
            for label, overrides in variants:
                try:
                    d = create_descriptor(name, get_settings(**overrides))
                except DescriptorUnavailableError as exc:
                    rates[f"{name} {label}".strip()] = f"unavailable: {exc}"
                    continue
                d.describe(frames[:8])
                t, _ = best_of(args.repeat, lambda d=d: d.describe(frames))
                rates[f"{name} {label}".strip()] = round(len(frames) / t, 1)

        # The child reports its own peak (VmHWM): ru_maxrss, of the child or of children, would
        # also count the forked copy of this (large) process, which Linux carries across exec.
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import re, sys; from cli.main import main; code = main(sys.argv[1:]); "
                "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); sys.exit(code)",
                "ingest",
                "--manifest",
                str(manifest),
                "--data-dir",
                str(work / "rss"),
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        peak_rss_mb = int(child.stdout.strip().splitlines()[-1]) / 1024
    finally:
        shutil.rmtree(work, ignore_errors=True)

    hours = footage_s / 3600
    b = stats["bytes"]
    figures = {
        "footage_s": round(footage_s, 1),
        "plain_decode_x_realtime": round(footage_s / decode_s, 1),
        "ingest_x_realtime": round(footage_s / ingest_s, 1),
        "ingest_vs_plain_decode": round(decode_s / ingest_s, 2),
        "ingest_nightly_x_realtime": round(footage_s / nightly_s, 1),
        "ingest_nightly_vs_plain_decode": round(decode_s / nightly_s, 2),
        "ingest_steady_x_realtime": round(footage_s / steady_s, 1),
        "ingest_steady_vs_plain_decode": round(decode_s / steady_s, 2),
        "descriptor_frames_per_s": rates,
        "frames_per_footage_hour": round(summary.frames / hours),
        "index_plus_catalog_bytes_per_footage_hour": round((b["index"] + b["catalog"]) / hours),
        "raw_vectors_bytes_per_footage_hour": round(b["raw_vectors"] / hours),
        "ingest_peak_rss_mb": round(peak_rss_mb, 1),
    }
    print(f"plain decode            {figures['plain_decode_x_realtime']:8.1f}x realtime")
    print(
        f"ingest (default)        {figures['ingest_x_realtime']:8.1f}x realtime   = {figures['ingest_vs_plain_decode']:.2f} of plain decode"
    )
    print(
        f"ingest, existing archive{figures['ingest_nightly_x_realtime']:8.1f}x realtime   = {figures['ingest_nightly_vs_plain_decode']:.2f} of plain decode"
    )
    print(
        f"ingest, steady state    {figures['ingest_steady_x_realtime']:8.1f}x realtime   = {figures['ingest_steady_vs_plain_decode']:.2f} of plain decode"
    )
    for name, rate in rates.items():
        print(f"descriptor {name:13} {rate if isinstance(rate, str) else f'{rate:8.1f} frames/s'}")
    print(
        f"index + catalog         {figures['index_plus_catalog_bytes_per_footage_hour'] / 1e6:8.2f} MB per footage hour "
        f"({figures['frames_per_footage_hour']} frames/h)"
    )
    print(f"raw vectors (rebuilds)  {figures['raw_vectors_bytes_per_footage_hour'] / 1e6:8.2f} MB per footage hour")
    print(f"ingest peak RSS         {figures['ingest_peak_rss_mb']:8.1f} MB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
