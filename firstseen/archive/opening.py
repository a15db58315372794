"""Opening an archive from its data directory: readers without the lock, writers with it and with recovery."""

from __future__ import annotations

import json
from pathlib import Path

from firstseen.archive.archive import DESCRIPTOR_META_KEY, Archive
from firstseen.archive.records import ArchiveStores, DescriptorSpec
from firstseen.datadir import DataDir
from firstseen.errors import BadInputError
from firstseen.storage.catalog import SqlCatalog
from firstseen.storage.copy_links import SqlCopyLinks
from firstseen.storage.failures import SqlFailureLedger
from firstseen.storage.index_store import IndexStore, MemoryIndexStore
from firstseen.storage.lock import WriterLock
from firstseen.storage.memory import MemoryCatalog, MemoryCopyLinks, MemoryFailureLedger, MemoryRunLog
from firstseen.storage.milvus_index import MilvusIndexStore
from firstseen.storage.milvus_target import parse_index_url
from firstseen.storage.run_log import SqlRunLog
from firstseen.storage.stored_searches import SearchStore
from firstseen.storage.text_store import TextStore
from firstseen.storage.vectorstore import FileVectorStore, MemoryVectorStore

_NO_ARCHIVE = "no archive in {data_dir} (run `firstseen ingest` first)"
_EMPTY_ARCHIVE = "the archive in {data_dir} is empty (run `firstseen ingest` first)"


def has_published_index(data_dir: Path, index_url: str | None = None) -> bool:
    """Whether a writer has published an index yet (cheap: one small manifest or state row)."""
    return index_files(DataDir(data_dir), index_url).read_manifest() is not None


def index_files(where: DataDir, index_url: str | None) -> IndexStore | MilvusIndexStore:
    """Where the archive's vector index lives: FAISS files in the data directory, or Milvus."""
    target = parse_index_url(index_url)
    return IndexStore(where.index) if target is None else MilvusIndexStore(target)


def stored_spec(catalog: SqlCatalog) -> DescriptorSpec | None:
    raw = catalog.get_meta(DESCRIPTOR_META_KEY)
    return DescriptorSpec(**json.loads(raw)) if raw else None


def _open_catalog(data_dir: Path, catalog_url: str, spec: DescriptorSpec | None) -> tuple[SqlCatalog, DescriptorSpec]:
    catalog = SqlCatalog.open(catalog_url)
    spec = spec or stored_spec(catalog)
    if spec is None:
        catalog.close()
        raise BadInputError(_EMPTY_ARCHIVE.format(data_dir=data_dir))
    return catalog, spec


def open_catalog_only(data_dir: Path, catalog_url: str) -> tuple[SqlCatalog, DescriptorSpec]:
    """An archive's catalog and descriptor without loading its index, which at ten million
    frames is gigabytes (stats reads the index manifest instead). The caller closes it."""
    if not Path(data_dir).exists():
        raise BadInputError(_NO_ARCHIVE.format(data_dir=data_dir))
    return _open_catalog(data_dir, catalog_url, None)


def open_archive(
    data_dir: Path,
    catalog_url: str,
    spec: DescriptorSpec | None = None,
    *,
    writable: bool = False,
    nprobe: int = 0,
    lock_wait_s: float = 0.0,
    index_url: str | None = None,
) -> Archive:
    """Open the archive in data_dir. Writers take the lock (waiting up to lock_wait_s for
    another writer) and run recovery; readers do neither. Without a spec the archive's own
    descriptor is used (stats, remove). index_url says where the vectors live (settings.py)."""
    where = DataDir(data_dir)
    lock = None
    if writable:
        where.root.mkdir(parents=True, exist_ok=True)
        lock = WriterLock(where, catalog_url)
        lock.acquire(wait_s=lock_wait_s)
    elif not where.exists():
        raise BadInputError(_NO_ARCHIVE.format(data_dir=where.root))
    try:
        catalog, spec = _open_catalog(where.root, catalog_url, spec)
        stores = sql_stores(catalog, where, index_url)
        return Archive(stores, spec, writable=writable, lock=lock, nprobe=nprobe, index_home=_home(index_url))
    except BaseException:
        if lock:
            lock.release()
        raise


def _home(index_url: str | None) -> str:
    target = parse_index_url(index_url)
    return "faiss" if target is None else f"milvus {target.uri} {target.db_name}".strip()


def sql_stores(catalog: SqlCatalog, where: DataDir, index_url: str | None = None) -> ArchiveStores:
    """The embedded default: one SQL database for the catalog and its companions, files for the rest."""
    return ArchiveStores(
        catalog,
        SqlCopyLinks(catalog),
        SqlRunLog(catalog),
        lambda max_attempts: SqlFailureLedger(catalog, max_attempts),
        FileVectorStore(where.vectors),
        index_files(where, index_url),
        TextStore(catalog),
        SearchStore(where.searches),
    )


def memory_stores() -> ArchiveStores:
    """Every store in memory: an archive for tests that needs no database, no files and no model."""
    failures: dict = {}
    return ArchiveStores(
        MemoryCatalog(),
        MemoryCopyLinks(),
        MemoryRunLog(),
        lambda max_attempts: MemoryFailureLedger(max_attempts, failures),
        MemoryVectorStore(),
        MemoryIndexStore(),
    )


def memory_archive(spec: DescriptorSpec, stores: ArchiveStores | None = None) -> Archive:
    """A writable archive over in-memory stores (memory_stores() unless given)."""
    return Archive(stores or memory_stores(), spec, writable=True)
