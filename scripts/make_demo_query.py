#!/usr/bin/env python3
"""Make the demo's suspect clips from the real footage: 6 s of vtest.avi played in reverse, and a
mirrored 2x excerpt of the cockatoo clip, as a fact-checker might receive them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

from edits import FrameSource, make_query  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--footage", type=Path, default=REPO / ".cache" / "footage")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    reversed_clip = make_query("reversed", FrameSource(args.footage / "vtest.avi", 360), 30.0, 6.0, args.out, rng=rng)
    mirrored = make_query("mirror", FrameSource(args.footage / "cockatoo.mp4", 360), 2.0, 6.0, args.out, rng=rng)
    for query in (reversed_clip, mirrored):
        print(query.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
