"""Where a Milvus index lives and how it is reached: FIRSTSEEN_INDEX_URL parsed, a client, the index type by size.

Milvus Lite 3.x (pip `milvus-lite`) is a local rewrite on FAISS, not the Milvus engine: it has
FLAT, IVF_FLAT, IVF_SQ8 and HNSW, no PQ, no binary vectors, and serves one process per file.
IVF_PQ, DiskANN and the binary index types are asked of a server only (index_plan)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from firstseen.errors import BadInputError, FirstSeenError

LITE_INDEX_TYPES = frozenset({"FLAT", "IVF_FLAT", "IVF_SQ8", "HNSW"})


@dataclass(frozen=True, slots=True)
class MilvusTarget:
    """Where the vectors live: a Milvus server (uri, database) or a Milvus Lite file."""

    uri: str
    db_name: str = ""

    @property
    def lite(self) -> bool:
        return not self.uri.startswith(("http://", "https://"))


def parse_index_url(url: str | None) -> MilvusTarget | None:
    """FIRSTSEEN_INDEX_URL: unset or file: -> None (FAISS files in the data directory);
    milvus://host:19530/db (milvuss:// for TLS) -> a server; milvus-lite:///path/x.db or a
    path ending in .db -> Milvus Lite."""
    if url is None or url.strip() in ("", "file:") or url.startswith("file:"):
        return None
    if url.endswith(".db") and "://" not in url:
        return MilvusTarget(url)
    parsed = urlparse(url)
    if parsed.scheme == "milvus-lite":
        path = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
        if not path.endswith(".db"):
            raise BadInputError(f"a Milvus Lite index is a file ending in .db, got {url!r}")
        return MilvusTarget(path)
    if parsed.scheme in ("milvus", "milvuss"):
        if not parsed.hostname:
            raise BadInputError(f"FIRSTSEEN_INDEX_URL {url!r} names no Milvus host")
        scheme = "https" if parsed.scheme == "milvuss" else "http"
        return MilvusTarget(f"{scheme}://{parsed.hostname}:{parsed.port or 19530}", parsed.path.strip("/"))
    raise BadInputError(
        f"FIRSTSEEN_INDEX_URL {url!r} is not file:, milvus://host:port/db or a Milvus Lite path ending in .db"
    )


def connect(target: MilvusTarget):
    """A pymilvus client for the target; a clear error where pymilvus or the file is not to be had."""
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise FirstSeenError(
            "FIRSTSEEN_INDEX_URL names Milvus, but pymilvus is not installed: pip install 'firstseen[scale]'"
        ) from exc
    if target.lite:
        Path(target.uri).parent.mkdir(parents=True, exist_ok=True)
        _quiet_lite_timestamps()
    try:
        return MilvusClient(uri=target.uri, db_name=target.db_name) if not target.lite else MilvusClient(target.uri)
    except Exception as exc:  # pymilvus raises its own and grpc's; the reason is what matters here
        reason = str(exc)
        if target.lite and ("lock" in reason.lower() or "Locked" in type(exc).__name__):
            raise FirstSeenError(
                f"the Milvus Lite file {target.uri} is open in another process; Milvus Lite serves one "
                "process per file, so an API beside an ingest needs a Milvus server (milvus://host:19530)"
            ) from exc
        raise FirstSeenError(f"cannot reach Milvus at {target.uri}: {reason}") from exc


class _LiteHasNoTimestamps(logging.Filter):
    """Milvus Lite does not implement AllocTimestamp, which pymilvus asks for while waiting on an
    index build and then does without; its gRPC server would log each refusal as a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], NotImplementedError))


def _quiet_lite_timestamps() -> None:
    server_log = logging.getLogger("grpc._server")
    if not any(isinstance(f, _LiteHasNoTimestamps) for f in server_log.filters):
        server_log.addFilter(_LiteHasNoTimestamps())


def index_plan(vectors: int, metric: str, *, lite: bool, exact_below: int = 1_000_000) -> tuple[str, dict]:
    """The index type Milvus builds for an archive of this size, and its build parameters:
    exact below a million frames (today's flat FAISS index), IVF_SQ8 to 50 million (the FAISS
    IVF SQ8 of bench_scale), IVF_PQ beyond (a server only; DiskANN is the documented
    alternative when the index must live on SSD). Binary vectors take BIN_IVF_FLAT."""
    if metric == "hamming":
        if lite:
            raise FirstSeenError(
                "Milvus Lite has no binary vectors; a binary descriptor (PDQ) needs a Milvus server or the FAISS index"
            )
        return ("BIN_FLAT", {}) if vectors < exact_below else ("BIN_IVF_FLAT", {"nlist": _nlist(vectors)})
    if vectors < exact_below:
        return "FLAT", {}
    if vectors < 50_000_000 or lite:
        return "IVF_SQ8", {"nlist": _nlist(vectors)}
    return "IVF_PQ", {"nlist": _nlist(vectors), "m": 64, "nbits": 8}


def _nlist(vectors: int) -> int:
    return int(min(65536, max(1024, 4 * np.sqrt(vectors))))


def metric_type(metric: str) -> str:
    return "HAMMING" if metric == "hamming" else "IP"
