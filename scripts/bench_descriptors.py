"""Measure each descriptor configuration: speed, and how well edited copies separate from unrelated frames.

Frames are sampled from the real footage. For each frame, edited copies are made (re-encode,
resize, 60% crop, caption overlay, blur, brightness); pairs of frames from *different* videos
are the negatives. Printed per configuration, in one run on this machine:
  fps          frames described per second (threads from FIRSTSEEN_ONNX_THREADS, default all cores)
  copy mean/p5 similarity of a frame to its edited copies
  neg p99.9    the 99.9th percentile similarity of unrelated frames
  recall@fpr   share of edited copies scoring above that negative threshold
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from firstseen.descriptors.pdq import PdqDescriptor  # noqa: E402
from firstseen.descriptors.sscd import SscdDescriptor, default_model_path  # noqa: E402
from firstseen.media.decode import sample_frames  # noqa: E402


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def edits(rgb: np.ndarray) -> dict[str, np.ndarray]:
    img = Image.fromarray(rgb)
    w, h = img.size
    crop = img.crop((int(w * 0.2), int(h * 0.2), int(w * 0.8), int(h * 0.8)))
    captioned = img.copy()
    draw = ImageDraw.Draw(captioned)
    draw.rectangle((0, int(h * 0.8), w, h), fill=(180, 20, 20))
    draw.text((8, int(h * 0.83)), "BREAKING: HAPPENING NOW IN MOSCOW", fill=(255, 255, 255))
    out = {
        "reencode": _jpeg(img, 20),
        "resize": img.resize((w // 3, h // 3), Image.BILINEAR),
        "crop60": crop,
        "caption": captioned,
        "blur": img.filter(ImageFilter.GaussianBlur(2)),
        "bright": ImageEnhance.Contrast(ImageEnhance.Brightness(img).enhance(1.3)).enhance(0.8),
    }
    return {k: np.asarray(v.convert("RGB")) for k, v in out.items()}


def similarity(metric: str, a: np.ndarray, b: np.ndarray, dim: int) -> np.ndarray:
    if metric == "hamming":
        bits = np.unpackbits(np.bitwise_xor(a[:, None, :], b[None, :, :]), axis=-1).sum(-1)
        return 1.0 - bits / dim
    return a @ b.T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--footage", type=Path, default=Path(".cache/footage"))
    parser.add_argument("--every", type=float, default=2.0, help="seconds between sampled frames")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    import os

    threads = args.threads or int(os.environ.get("FIRSTSEEN_ONNX_THREADS", os.cpu_count() or 1))
    videos = sorted(p for p in args.footage.iterdir() if p.suffix in {".mp4", ".avi", ".mov", ".ogv"})
    frames, owner = [], []
    for i, path in enumerate(videos):
        for f in sample_frames(path, fps=1 / args.every, max_side=360):
            frames.append(f.rgb)
            owner.append(i)
    owner = np.array(owner)
    edited = [edits(f) for f in frames]
    kinds = list(edited[0])
    print(f"{len(frames)} frames from {len(videos)} videos, edits: {', '.join(kinds)}; {threads} threads")

    configs = [("pdq", None, None)]
    for variant, size in (
        ("distilled", 160),
        ("distilled", 192),
        ("distilled", 224),
        ("distilled", 288),
        ("full", 160),
        ("full", 224),
        ("full", 288),
    ):
        configs.append(("sscd", variant, size))
    rows = []
    header = f"{'descriptor':28} {'fps':>7} {'copy mean':>9} {'copy p5':>8} {'neg p99.9':>9} {'recall@fpr':>10}  per edit recall"
    print(header)
    for name, variant, size in configs:
        if name == "pdq":
            desc, label = PdqDescriptor(), "pdq"
        else:
            desc = SscdDescriptor(default_model_path(variant), input_size=size, threads=threads)
            label = f"sscd {variant} @{size}"
        desc.describe(frames[:4])  # warm-up
        start = time.perf_counter()
        base = desc.describe(frames)
        fps = len(frames) / (time.perf_counter() - start)
        per_kind = {k: desc.describe([e[k] for e in edited]) for k in kinds}
        sims = similarity(desc.metric, base, base, desc.dim)
        unrelated = sims[owner[:, None] != owner[None, :]]
        threshold = float(np.quantile(unrelated, 0.999))
        copy = {
            k: np.array(
                [similarity(desc.metric, base[i : i + 1], v[i : i + 1], desc.dim)[0, 0] for i in range(len(frames))]
            )
            for k, v in per_kind.items()
        }
        all_copy = np.concatenate(list(copy.values()))
        recall = float((all_copy > threshold).mean())
        per = {k: round(float((v > threshold).mean()), 3) for k, v in copy.items()}
        rows.append(
            {
                "descriptor": label,
                "fps": round(fps, 1),
                "copy_mean": round(float(all_copy.mean()), 3),
                "copy_p5": round(float(np.quantile(all_copy, 0.05)), 3),
                "neg_p999": round(threshold, 3),
                "recall_at_fpr": round(recall, 3),
                "per_edit": per,
            }
        )
        print(
            f"{label:28} {fps:7.1f} {all_copy.mean():9.3f} {np.quantile(all_copy, 0.05):8.3f} {threshold:9.3f} "
            f"{recall:10.3f}  " + " ".join(f"{k}={v:.2f}" for k, v in per.items())
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
