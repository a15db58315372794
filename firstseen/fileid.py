"""A file's content identity: its sha256, and the video id derived from it (the same in any archive)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def video_id_for(sha256: str) -> str:
    """Content-addressed: the same file always gets the same id, in any archive."""
    return sha256[:16]
