"""The long-lived search state of the server: one Searcher, reloaded when the indexer publishes,
and admission control (a bounded number of searches at once, a bounded queue, then 429)."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from firstseen.archive import has_published_index
from firstseen.errors import BadInputError, FirstSeenError
from firstseen.search.results import SearchResult
from firstseen.search.searcher import Searcher
from search_api.settings import ApiSettings

log = logging.getLogger("search_api")


class ArchiveUnavailableError(FirstSeenError):
    """No archive can be searched yet (none ingested, or it failed to open)."""

    code = "archive_unavailable"


class BusyError(Exception):
    """Every search slot and queue place is taken; try again after retry_after_s."""

    def __init__(self, retry_after_s: int):
        super().__init__(f"the server is busy; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class SearchService:
    """Owns the Searcher. Searches run on a dedicated thread pool, never on the event loop.
    refresh() is called periodically (from a thread): it opens the archive once one exists,
    and loads each new checkpoint beside the one in use, which searches keep until done."""

    def __init__(self, settings: ApiSettings, *, open_searcher: Callable[[ApiSettings], Searcher] = Searcher):
        self.settings = settings
        self._open_searcher = open_searcher
        self._searcher: Searcher | None = None
        self.unavailable_reason = "the archive has not been opened yet"
        self._refresh_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(settings.api_max_concurrent_searches, thread_name_prefix="search")
        self._slots = settings.api_max_concurrent_searches
        self._capacity = settings.api_max_concurrent_searches + settings.api_max_queued_searches
        self._admitted = 0  # touched on the event loop only
        self._running = 0  # changed on pool threads, under _count_lock
        self._count_lock = threading.Lock()
        self._recent_s: deque[float] = deque(maxlen=32)
        self.reloads = 0
        self.videos = 0

    # ---- archive lifecycle ---------------------------------------------------------------
    @property
    def searcher(self) -> Searcher | None:
        return self._searcher

    def refresh(self) -> bool:
        """Open the archive if it is not open yet, else pick up a newer checkpoint. True when
        what searches see changed. Failures are kept as unavailable_reason, not raised."""
        with self._refresh_lock:
            try:
                if self._searcher is None:
                    if not has_published_index(self.settings.data_dir, self.settings.index_url):
                        # Cheap check first: opening loads the model, which is wasted until then.
                        self.unavailable_reason = f"no archive in {self.settings.data_dir} yet (ingest some footage)"
                        return False
                    self._searcher = self._open_searcher(self.settings)
                    log.info("archive opened at checkpoint %d", self._searcher.archive.checkpoint)
                elif not self._searcher.archive.refresh():
                    return False
                else:
                    log.info("index reloaded at checkpoint %d", self._searcher.archive.checkpoint)
                self.reloads += 1
                self.videos = self._searcher.archive.stats().videos_by_status.get("committed", 0)
                self.unavailable_reason = ""
                return True
            except (FirstSeenError, OSError) as exc:
                # A missing archive is normal before the first ingest; a failed reload keeps
                # serving the checkpoint already loaded and tries again next time.
                if self._searcher is None:
                    self.unavailable_reason = str(exc)
                level = logging.DEBUG if isinstance(exc, BadInputError) else logging.WARNING
                log.log(level, "archive refresh failed: %s", exc)
                return False

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._refresh_lock:
            if self._searcher is not None:
                self._searcher.close()
                self._searcher = None

    def index_status(self) -> dict:
        searcher = self._searcher
        if searcher is None:
            return {"loaded": False, "reason": self.unavailable_reason}
        manifest = searcher.archive.published_manifest()
        age = None
        if manifest is not None:
            age = (datetime.now(UTC) - datetime.fromisoformat(manifest.saved_at)).total_seconds()
        shape = searcher.archive.index_shape()
        return {
            "loaded": True,
            "vectors": shape.vectors,
            "kind": shape.kind,
            "delta_vectors": shape.delta_vectors,
            "checkpoint": searcher.archive.checkpoint,
            "published_checkpoint": manifest.checkpoint if manifest else 0,
            "checkpoint_age_s": round(age, 1) if age is not None else None,
            "videos": self.videos,
        }

    def check_catalog(self) -> None:
        """Raises unless the catalog answers a query (blocking: call from a thread)."""
        searcher = self._searcher
        if searcher is None:
            raise ArchiveUnavailableError(self.unavailable_reason)
        searcher.archive.stats()

    # ---- admission and searching ---------------------------------------------------------
    @property
    def queued(self) -> int:
        return max(0, self._admitted - self._running)

    @property
    def running(self) -> int:
        return self._running

    def admit(self) -> None:
        """Take a place (call on the event loop before reading the upload, so a request that
        would be turned away is turned away before its bytes are received)."""
        if self._admitted >= self._capacity:
            typical = sorted(self._recent_s)[len(self._recent_s) // 2] if self._recent_s else 2.0
            waves = (self._admitted - self._slots) / self._slots + 1
            raise BusyError(max(1, math.ceil(typical * waves)))
        self._admitted += 1

    def release(self) -> None:
        self._admitted -= 1

    async def search(self, path: Path, *, top_k: int) -> SearchResult:
        """Run one admitted search on the pool; the caller releases its place afterwards."""
        searcher = self._searcher
        if searcher is None:
            raise ArchiveUnavailableError(f"no archive to search: {self.unavailable_reason}")
        loop = asyncio.get_running_loop()

        def run() -> SearchResult:
            with self._count_lock:
                self._running += 1
            started = time.perf_counter()
            try:
                return searcher.search(path, top_k=top_k)
            finally:
                self._recent_s.append(time.perf_counter() - started)
                with self._count_lock:
                    self._running -= 1

        return await loop.run_in_executor(self._pool, run)
