#!/usr/bin/env python3
"""On-screen text: accuracy per script and speed of the readers, on real footage frames with text burned in.

Backgrounds are frames of the fetched real footage (scripts/fetch_footage.py); on each, a
known line is drawn as broadcasters do (a chyron bar, a shadowed caption, a corner label) in
Latin, Cyrillic, Hangul or as a date (scripts/text_frames.py). Each reader reads every frame;
reported per script: mean character accuracy (1 - CER, spaces ignored), the share of lines
read exactly, and frames read per second. Readers: Tesseract with all languages (what the
product runs), Tesseract with only the script's own language (an upper bound), and rapidocr
when it is importable (it is not installed with FirstSeen: see the README)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from text_frames import TEXTS, available, character_accuracy, draw_text_frame  # noqa: E402

from firstseen.evidence.onscreen_text import TesseractReader  # noqa: E402
from firstseen.media.decode import probe  # noqa: E402
from firstseen.media.frames import frame_at  # noqa: E402

OWN_LANGUAGE = {"latin": ("eng",), "cyrillic": ("rus",), "hangul": ("kor",), "dates": ("eng",)}


def backgrounds(footage: Path, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    videos = sorted(p for p in footage.iterdir() if p.suffix.lower() in {".mp4", ".avi", ".mov", ".ogv"})
    frames = []
    for k in range(count):
        video = videos[k % len(videos)]
        t = float(rng.uniform(0.0, max(0.1, probe(video).duration_s - 0.5)))
        rgb = frame_at(video, t, max_side=960).rgb
        # a broadcast frame: small archive footage is shown enlarged, so its text is drawn at broadcast size
        frames.append(
            np.asarray(Image.fromarray(rgb).resize((960, round(960 * rgb.shape[0] / rgb.shape[1])), Image.BILINEAR))
        )
    return frames


class _Rapid:
    """rapidocr (PP-OCRv4 in its wheel), if installed: Chinese and Latin only."""

    name = "rapidocr"

    def __init__(self):
        from rapidocr_onnxruntime import RapidOCR

        self._engine = RapidOCR()

    def read(self, rgb):
        result, _ = self._engine(rgb[:, :, ::-1])
        return [type("Line", (), {"text": text})() for _, text, _ in (result or [])]

    def close(self):
        pass


def measure(reader, frames) -> dict:
    accuracy, exact, started = [], 0, time.perf_counter()
    for frame in frames:
        lines = reader.read(frame.rgb)
        best = max((character_accuracy(line.text, frame.text) for line in lines), default=0.0)
        accuracy.append(best)
        exact += best == 1.0
    elapsed = time.perf_counter() - started
    return {
        "char_accuracy": round(statistics.fmean(accuracy), 3),
        "exact_lines": round(exact / len(frames), 3),
        "frames_per_s": round(len(frames) / elapsed, 2),
        "frames": len(frames),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--footage", type=Path, default=REPO / ".cache" / "footage")
    parser.add_argument("--per-script", type=int, default=30, help="frames drawn per script")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    scripts = [s for s in TEXTS if available(s)]
    pictures = backgrounds(args.footage, args.per_script, rng)
    frames = {
        s: [draw_text_frame(pictures[k], s, TEXTS[s][k % len(TEXTS[s])], rng) for k in range(args.per_script)]
        for s in scripts
    }
    report: dict = {"scripts_without_fonts": [s for s in TEXTS if s not in scripts]}
    with TesseractReader() as reader:
        report["tesseract eng+rus+kor"] = {s: measure(reader, frames[s]) for s in scripts}
    report["tesseract own language"] = {}
    for s in scripts:
        with TesseractReader(OWN_LANGUAGE[s]) as reader:
            report["tesseract own language"][s] = measure(reader, frames[s])
    try:
        rapid = _Rapid()
    except ImportError:
        report["rapidocr"] = "not installed"
    else:
        report["rapidocr"] = {s: measure(rapid, frames[s]) for s in scripts}
    print("| reader | " + " | ".join(scripts) + " |\n|---|" + "---|" * len(scripts))
    for name, rows in report.items():
        if isinstance(rows, dict) and rows and all(isinstance(v, dict) for v in rows.values()):
            print(
                f"| {name} | "
                + " | ".join(
                    f"{rows[s]['char_accuracy']:.3f} ({rows[s]['exact_lines']:.2f} exact, "
                    f"{rows[s]['frames_per_s']:.1f} fps)"
                    for s in scripts
                )
                + " |"
            )
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
