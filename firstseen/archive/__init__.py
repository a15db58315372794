"""The archive: the one facade over the catalog, raw vectors and index that callers use."""

from firstseen.archive.archive import DESCRIPTOR_META_KEY, Archive
from firstseen.archive.opening import (
    has_published_index,
    index_files,
    memory_archive,
    memory_stores,
    open_archive,
    open_catalog_only,
    sql_stores,
    stored_spec,
)
from firstseen.archive.records import ArchiveStores, CopyLinkFound, DescriptorSpec, FrameHit, frame_ids
from firstseen.storage.lock import DataDirLock

__all__ = [
    "DESCRIPTOR_META_KEY",
    "Archive",
    "ArchiveStores",
    "memory_stores",
    "sql_stores",
    "CopyLinkFound",
    "DataDirLock",
    "DescriptorSpec",
    "FrameHit",
    "frame_ids",
    "has_published_index",
    "index_files",
    "memory_archive",
    "open_archive",
    "open_catalog_only",
    "stored_spec",
]
