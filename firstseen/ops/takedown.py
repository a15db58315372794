"""Takedown: a video out of search, the index, raw vectors, catalog, on-screen text, copy links and kept searches.

One use case for the CLI and the API alike: both wait for a running writer (an ingest, a
reindex) to finish, up to lock_wait_s, rather than fail at once."""

from __future__ import annotations

from pathlib import Path

from firstseen.archive import open_archive
from firstseen.datadir import DataDir
from firstseen.errors import BadInputError
from firstseen.records import VideoRecord


def take_down(
    data_dir: Path, catalog_url: str, ref: str, *, lock_wait_s: float, index_url: str | None = None
) -> VideoRecord:
    """Remove the video with this id or external id; returns what it was. A ref the archive
    does not know is bad input; an archive whose writer holds on past lock_wait_s is locked."""
    if not DataDir(data_dir).exists():  # a writable open would make the folder a mistyped path names
        raise BadInputError(f"no archive in {data_dir} (run `firstseen ingest` first)")
    with open_archive(data_dir, catalog_url, writable=True, lock_wait_s=lock_wait_s, index_url=index_url) as archive:
        return archive.remove(ref)
