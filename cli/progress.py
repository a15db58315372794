"""Progress in a terminal: tqdm bars for ingest and long steps, log lines when not on a terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from firstseen.ingest.progress import LogProgress, Progress, log


class BarProgress:
    """Two bars: videos done, and footage seconds described (the slow part)."""

    def __init__(self) -> None:
        self._videos = self._footage = None

    def start(self, videos: int) -> None:
        from tqdm import tqdm

        self._videos = tqdm(total=videos, unit="video", desc="videos ", position=0, file=sys.stderr)

    def footage_total(self, seconds: float) -> None:
        from tqdm import tqdm

        self._footage = tqdm(
            total=round(seconds, 1),
            unit="s",
            desc="footage",
            position=1,
            file=sys.stderr,
            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}, {rate_fmt}]",
        )

    def advance_footage(self, seconds: float) -> None:
        if self._footage is not None and seconds > 0:
            self._footage.update(seconds)

    def video_done(self, name: str, status: str, detail: str, footage_s: float) -> None:
        if status != "added":
            self._videos.write(f"{status:8} {name}: {detail}", file=sys.stderr)
        self._videos.update(1)

    def close(self) -> None:
        for bar in (self._footage, self._videos):
            if bar is not None:
                bar.close()


def make_progress(interactive: bool | None = None) -> Progress:
    if interactive is None:
        interactive = sys.stderr.isatty()
    return BarProgress() if interactive else LogProgress()


@contextmanager
def bar(desc: str, unit: str = "it", interactive: bool | None = None) -> Iterator[Callable[[int, int], None]]:
    """A (done, total) callback for one long step: a tqdm bar in a terminal, a log line per
    tenth of the work otherwise."""
    if interactive is None:
        interactive = sys.stderr.isatty()
    state: dict = {"bar": None, "logged": -1}

    def update(done: int, total: int) -> None:
        if interactive:
            if state["bar"] is None:
                from tqdm import tqdm

                state["bar"] = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr)
            state["bar"].update(done - state["bar"].n)
        elif total and (tenth := done * 10 // total) > state["logged"]:
            state["logged"] = tenth
            log.info(json.dumps({"event": desc, "done": done, "of": total}))

    try:
        yield update
    finally:
        if state["bar"] is not None:
            state["bar"].close()
