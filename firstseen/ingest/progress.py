"""How a long ingest reports progress: the interface the core calls, and structured log lines for services."""

from __future__ import annotations

import json
import logging
from typing import Protocol

log = logging.getLogger("firstseen.ingest")


class Progress(Protocol):
    def start(self, videos: int) -> None: ...
    def footage_total(self, seconds: float) -> None: ...
    def advance_footage(self, seconds: float) -> None: ...
    def video_done(self, name: str, status: str, detail: str, footage_s: float) -> None: ...
    def close(self) -> None: ...


class LogProgress:
    """For cron, systemd and containers: one structured line per video, no carriage returns."""

    def __init__(self) -> None:
        self._done = 0
        self._total = 0

    def start(self, videos: int) -> None:
        self._total = videos
        log.info(json.dumps({"event": "ingest_start", "videos": videos}))

    def footage_total(self, seconds: float) -> None:
        log.info(json.dumps({"event": "ingest_describe", "footage_s": round(seconds, 1)}))

    def advance_footage(self, seconds: float) -> None:
        pass

    def video_done(self, name: str, status: str, detail: str, footage_s: float) -> None:
        self._done += 1
        level = logging.WARNING if status == "failed" else logging.INFO
        log.log(
            level,
            json.dumps(
                {
                    "event": "video",
                    "n": self._done,
                    "of": self._total,
                    "path": name,
                    "status": status,
                    "detail": detail,
                    "footage_s": round(footage_s, 2),
                }
            ),
        )

    def close(self) -> None:
        pass
