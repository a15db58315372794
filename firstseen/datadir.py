"""Every path under a data directory, named in one place: index, raw vectors, catalog, kept searches, jobs, lock.

A backup is laid out the same way, so the same names serve a data directory and a backup folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DataDir:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def index(self) -> Path:
        """Immutable index files per checkpoint and the manifest naming the current one."""
        return self.root / "index"

    @property
    def vectors(self) -> Path:
        """Raw per-video descriptors (one .npz a video), from which the index is rebuilt."""
        return self.root / "vectors"

    @property
    def catalog_dump(self) -> Path:
        """A backup's catalog tables (one .jsonl.gz a table); a data directory has none."""
        return self.root / "catalog"

    @property
    def sqlite_catalog(self) -> Path:
        """The catalog's SQLite file when no catalog URL is configured."""
        return self.root / "catalog.sqlite"

    @property
    def searches(self) -> Path:
        """Kept searches (stored_searches.py), one folder a search."""
        return self.root / "searches"

    @property
    def jobs(self) -> Path:
        """Ingest jobs sent over HTTP: their manifests and state."""
        return self.root / "jobs"

    @property
    def lock(self) -> Path:
        """The writer's lock file; it stays behind after every writer."""
        return self.root / "ingest.lock"

    @property
    def nightly_status(self) -> Path:
        """The nightly job's last outcome, read by `firstseen nightly --check` and health checks."""
        return self.root / "nightly-status.json"

    def catalog_url(self, configured: str | None = None) -> str:
        """The configured catalog URL, or SQLite inside this directory."""
        return configured or f"sqlite:///{self.sqlite_catalog.resolve()}"

    def exists(self) -> bool:
        return self.root.exists()
