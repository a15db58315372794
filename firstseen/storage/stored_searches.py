"""Recent searches kept on the archive's shared storage, so any API replica can give a search's evidence pack later.

A search is kept with its result, the facts of the uploaded file and the few query frames its
pack shows (evidence/pack.py's query_times), never the upload itself. Each lives in its own folder
under <data dir>/searches, written beside and renamed, so a reader sees a whole search or none.
Ids are unguessable (128 random bits). A search is readable by the key that made it (kept as
a hash) and by admin keys. Retention is bounded by age and by count; a takedown purges every
stored search that shows the removed video."""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from firstseen.errors import BadInputError, FirstSeenError

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")


class SearchNotFoundError(BadInputError):
    code = "search_not_found"


def owner_of(key: str | None) -> str:
    """What a stored search remembers of the key that made it: a hash, never the key."""
    return "open" if key is None else hashlib.sha256(b"firstseen-search-owner:" + key.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class StoredSearch:
    search_id: str
    owner: str
    created_at: float  # unix seconds
    result: dict
    query_facts: dict
    searched_at: str
    folder: Path

    def video_ids(self) -> set[str]:
        shown = list(self.result.get("matches") or []) + (
            [self.result["earliest"]] if self.result.get("earliest") else []
        )
        return {m["video_id"] for m in shown}

    def query_frame(self, t: float) -> np.ndarray:
        """The kept query frame nearest t (the pack asks for exactly the times kept)."""
        kept = sorted(float(p.stem) for p in (self.folder / "frames").glob("*.jpg"))
        if not kept:
            raise FirstSeenError("this stored search kept no query frames", code="frames_missing")
        nearest = min(kept, key=lambda k: abs(k - t))
        return np.asarray(Image.open(self.folder / "frames" / f"{nearest:.3f}.jpg").convert("RGB"))


class SearchStore:
    def __init__(self, root: Path, *, max_age_s: float = 7 * 86400.0, max_count: int = 1000):
        if max_age_s <= 0 or max_count < 1:
            raise ValueError("retention needs max_age_s > 0 and max_count >= 1")
        self.root, self.max_age_s, self.max_count = Path(root), max_age_s, max_count

    def save(
        self, result: dict, query_facts: dict, frames: dict[float, np.ndarray], *, owner: str, searched_at: str
    ) -> str:
        """Keep a search; returns its id. Older searches beyond the retention go first."""
        self.purge_expired()
        search_id = secrets.token_urlsafe(16)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".{search_id}.part"
        (staging / "frames").mkdir(parents=True)
        try:
            for t, rgb in frames.items():
                buffer = io.BytesIO()
                Image.fromarray(rgb).save(buffer, format="JPEG", quality=95)
                (staging / "frames" / f"{t:.3f}.jpg").write_bytes(buffer.getvalue())
            record = {
                "search_id": search_id,
                "owner": owner,
                "created_at": time.time(),
                "searched_at": searched_at,
                "result": result,
                "query_facts": query_facts,
            }
            (staging / "search.json").write_text(json.dumps(record, ensure_ascii=False))
            staging.replace(self.root / search_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return search_id

    def get(self, search_id: str, *, owner: str, admin: bool = False) -> StoredSearch:
        """The search, for its owner or an admin; SearchNotFoundError otherwise, expired or
        never made alike (a stranger learns nothing of which ids exist)."""
        if not ID_PATTERN.match(search_id or ""):
            raise SearchNotFoundError(f"no stored search {search_id!r}")
        stored = self._read(self.root / search_id)
        if (
            stored is None
            or time.time() - stored.created_at > self.max_age_s
            or not (admin or secrets.compare_digest(stored.owner, owner))
        ):
            raise SearchNotFoundError(
                f"no stored search {search_id!r} (searches are kept "
                f"{self.max_age_s / 3600:.0f} h, for the key that made them)"
            )
        return stored

    def _read(self, folder: Path) -> StoredSearch | None:
        try:
            data = json.loads((folder / "search.json").read_text())
        except (OSError, ValueError):
            return None
        return StoredSearch(
            data["search_id"],
            data["owner"],
            float(data["created_at"]),
            data["result"],
            data.get("query_facts", {}),
            data.get("searched_at", ""),
            folder,
        )

    def _all(self) -> list[StoredSearch]:
        if not self.root.is_dir():
            return []
        found = [self._read(p) for p in self.root.iterdir() if p.is_dir() and ID_PATTERN.match(p.name)]
        return sorted((s for s in found if s is not None), key=lambda s: s.created_at)

    def purge_expired(self) -> int:
        """Drop searches older than max_age_s, then the oldest beyond max_count; and stale staging folders."""
        now, searches = time.time(), self._all()
        doomed = [s for s in searches if now - s.created_at > self.max_age_s]
        alive = [s for s in searches if s not in doomed]
        doomed += alive[: max(0, len(alive) - self.max_count + 1)]
        for s in doomed:
            shutil.rmtree(s.folder, ignore_errors=True)
        if self.root.is_dir():
            for part in self.root.glob(".*.part"):
                if now - part.stat().st_mtime > 3600:
                    shutil.rmtree(part, ignore_errors=True)
        return len(doomed)

    def purge_video(self, video_id: str) -> int:
        """A takedown: every stored search that shows this video goes."""
        doomed = [s for s in self._all() if video_id in s.video_ids()]
        for s in doomed:
            shutil.rmtree(s.folder, ignore_errors=True)
        return len(doomed)
