"""Archive backup and restore: one consistent snapshot of index, raw vectors and catalog, taken while search serves."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

from sqlalchemy import DateTime, MetaData, func, select, text
from sqlalchemy.engine import Connection, make_url

from firstseen.archive import index_files, open_archive
from firstseen.datadir import DataDir
from firstseen.errors import BadInputError, FirstSeenError
from firstseen.fileid import sha256_file
from firstseen.settings import Settings
from firstseen.storage.atomic import fsync_dir
from firstseen.storage.catalog import SqlCatalog
from firstseen.storage.index_store import MANIFEST_NAME, IndexManifest, IndexStore
from firstseen.storage.lock import WriterLock
from firstseen.storage.milvus_index import MilvusIndexStore
from firstseen.storage.stored_searches import ID_PATTERN
from firstseen.storage.text_store import DERIVED_TABLE_PREFIX
from firstseen.storage.vectorstore import FileVectorStore, VectorsInIndex, to_storage

FORMAT = 1
META_NAME = "backup.json"
_ALEMBIC = "alembic_version"
_DUMP_BATCH = 10_000  # rows fetched at a time: the frames table never sits in memory whole
_INSERT_BATCH = 5_000  # rows per executemany on restore
# Where a listed file may go: a tampered backup.json must not write outside the data dir.
_SAFE_PATH = re.compile(
    r"(index|vectors|catalog)/[A-Za-z0-9_-][A-Za-z0-9._-]*"
    r"|searches/[A-Za-z0-9_-]{22}/(search\.json|frames/[0-9]+\.[0-9]{3}\.jpg)"
)


@dataclass(slots=True, kw_only=True)
class _Counts:
    checkpoint: int
    videos: int
    frames: int
    files: int  # the files backup.json lists (not itself)
    bytes: int
    seconds: float
    linked: int  # of the files, how many were hard-linked rather than copied

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


@dataclass(slots=True, kw_only=True)
class BackupReport(_Counts):
    dest: Path


@dataclass(slots=True, kw_only=True)
class RestoreReport(_Counts):
    data_dir: Path
    catalog_dialect: str
    problems: list[str] = field(default_factory=list)  # Archive.verify() of the restored archive


def _place_file(src: Path, dst: Path) -> bool:
    """Put src at dst; True when hard-linked. A link is safe because archive files are never
    changed in place (new versions are renamed over them, removal unlinks), so it keeps the
    bytes of this moment. Across filesystems (EXDEV) the file is copied instead."""
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copy2(src, dst)
        _fsync_file(dst)
        return False


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def backup_archive(settings: Settings, dest: Path) -> BackupReport:
    """Snapshot the archive into dest (new). The writer lock is held throughout, so no ingest,
    removal or reindex changes anything meanwhile; readers take no lock and keep searching. It
    is written to a hidden sibling renamed to dest at the end: a folder called dest is complete.
    Files are hard-linked on the same filesystem (no space, but no help if that disk dies)."""
    started = time.perf_counter()
    dest, data_dir = Path(dest), Path(settings.data_dir)
    if dest.exists():
        raise BadInputError(f"{dest} already exists; a backup goes to a new folder")
    store = index_files(DataDir(data_dir), settings.index_url)
    if not data_dir.is_dir() or store.read_manifest() is None:
        raise BadInputError(f"no archive in {data_dir} to back up")
    (lock := WriterLock(data_dir, settings.resolved_catalog_url())).acquire(wait_s=settings.lock_wait_s)
    partial = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    try:
        manifest = store.read_manifest()  # again under the lock: a writer may have published since
        if manifest is None:
            raise FirstSeenError(f"the index manifest in {data_dir} went missing during the backup")
        shutil.rmtree(partial, ignore_errors=True)  # this pid's own leftover, if any
        partial.mkdir(parents=True)
        meta, linked = _snapshot(settings, manifest, partial, store)
        (partial / META_NAME).write_text(json.dumps(meta, indent=1, sort_keys=True))
        _fsync_file(partial / META_NAME)
        made = DataDir(partial)
        for folder in (made.index, made.vectors, made.catalog_dump, partial):
            fsync_dir(folder)
        if dest.exists():  # rename would silently replace an empty folder made meanwhile
            raise BadInputError(f"{dest} appeared while the backup ran")
        os.rename(partial, dest)
        fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        lock.release()
        store.close()
    return BackupReport(
        dest=dest,
        checkpoint=manifest.checkpoint,
        videos=meta["videos"],
        frames=meta["frames"],
        files=len(meta["files"]),
        bytes=sum((dest / rel).stat().st_size for rel in meta["files"]),
        seconds=time.perf_counter() - started,
        linked=linked,
    )


def _snapshot(
    settings: Settings, manifest: IndexManifest, out: Path, store: IndexStore | MilvusIndexStore
) -> tuple[dict, int]:
    """Index, catalog, then the raw vectors of the catalog's videos; returns backup.json and links."""
    source, dest = DataDir(settings.data_dir), DataDir(out)
    data_dir = Path(settings.data_dir)
    for folder in (dest.index, dest.vectors, dest.catalog_dump):
        folder.mkdir()
    in_files = [*manifest.files, MANIFEST_NAME] if manifest.backend == "faiss" else []
    linked = sum(_place_file(source.index / name, dest.index / name) for name in in_files)
    with SqlCatalog(settings.resolved_catalog_url()) as catalog:  # not open(): migrating writes to the source
        dialect, revision, tables, videos = _dump_catalog(catalog, dest.catalog_dump)
    exported = _collection_export(manifest, store, source)
    written = FileVectorStore(dest.vectors)
    for video_id, status in videos:
        if not video_id.isalnum():
            raise FirstSeenError(f"video id {video_id!r} in the catalog is not a safe file name")
        src = source.vectors / f"{video_id}{FileVectorStore.suffix}"
        if exported is not None:
            stored = exported.get(video_id, thumbnails=True)
            if stored is not None:
                written.put(video_id, to_storage(stored, manifest.metric))
                continue
        elif src.exists():
            linked += _place_file(src, dest.vectors / src.name)
            continue
        if status == "committed":
            where = src if exported is None else "the Milvus collection"
            raise FirstSeenError(
                f"raw vectors of committed video {video_id} are missing ({where}): the archive "
                "is damaged, and so would its backup be"
            )
        # A crash may leave a pending or removing video without its file; the writable open at
        # the end of a restore (recovery) finishes those, as it would here.
    searches = source.searches  # stored searches (stored_searches.py): whole folders only, never .part
    for folder in sorted(searches.iterdir()) if searches.is_dir() else []:
        if folder.is_dir() and ID_PATTERN.match(folder.name) and (folder / "search.json").is_file():
            for src in sorted(p for p in folder.rglob("*") if p.is_file()):
                (out / src.relative_to(data_dir)).parent.mkdir(parents=True, exist_ok=True)
                linked += _place_file(src, out / src.relative_to(data_dir))
    meta = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "source_data_dir": str(data_dir.resolve()),
        "catalog_dialect": dialect,
        "alembic_revision": revision,
        "checkpoint": manifest.checkpoint,
        "index_count": manifest.count,
        "index_backend": manifest.backend,
        "videos": tables.get("videos", 0),
        "frames": tables.get("frames", 0),
        "tables": tables,
        "files": {p.relative_to(out).as_posix(): sha256_file(p) for p in sorted(out.rglob("*")) if p.is_file()},
    }
    return meta, linked


def _collection_export(
    manifest: IndexManifest, store: IndexStore | MilvusIndexStore, source: DataDir
) -> VectorsInIndex | None:
    """On Milvus, each video's vectors, times and flags read out of the collection (exactly the
    raw vectors, float16-rounded as FAISS keeps them), with the thumbnails this machine holds:
    the export a restore refills whichever index its target names from. None on FAISS files."""
    if manifest.backend == "faiss":
        return None
    index, _ = store.load(manifest.descriptor, manifest.dim, manifest.metric)
    return VectorsInIndex(FileVectorStore(source.vectors), lambda: index)


def _dump_catalog(catalog: SqlCatalog, folder: Path) -> tuple[str, str | None, dict[str, int], list]:
    """Each table to <table>.jsonl.gz in one transaction; returns dialect, revision, counts, videos."""
    with catalog.engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # one snapshot for all tables, not one per statement
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            metadata = MetaData()
            metadata.reflect(bind=conn, only=_stored_table)
            if not {"videos", _ALEMBIC} <= metadata.tables.keys():
                raise FirstSeenError("the catalog has no videos table; is it a FirstSeen catalog?")
            revision = conn.execute(text(f"SELECT version_num FROM {_ALEMBIC}")).scalar()
            tables = {
                t.name: _dump_table(conn, t, folder / f"{t.name}.jsonl.gz")
                for t in metadata.sorted_tables
                if t.name != _ALEMBIC
            }
            table = metadata.tables["videos"]
            videos = conn.execute(select(table.c.video_id, table.c.status))
            listed = [tuple(row) for row in videos]
            return conn.dialect.name, revision, tables, listed


def _stored_table(name: str, _metadata: MetaData) -> bool:
    """Tables a backup holds: not the full-text index, which a restore refills by its triggers."""
    return not name.startswith(DERIVED_TABLE_PREFIX)


def _dump_table(conn: Connection, table, path: Path) -> int:
    # In primary key order, so that two backups of one catalog hold the same files.
    query = select(table).order_by(*table.primary_key.columns).execution_options(yield_per=_DUMP_BATCH)
    count = 0
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as fh:
        for row in conn.execute(query).mappings():
            # Only datetimes are not JSON types in this schema; ISO strings keep their zone.
            fh.write(json.dumps(dict(row), default=lambda v: v.isoformat(), ensure_ascii=False) + "\n")
            count += 1
    _fsync_file(path)
    return count


def restore_archive(settings: Settings, src: Path) -> RestoreReport:
    """Restore the backup in src into settings.data_dir and its catalog, both empty. Every file
    is checked against backup.json before anything is written. A failure midway (an error,
    Ctrl-C) removes the index/ and vectors/ it wrote and rolls back the catalog's one transaction,
    so the target is empty again and the restore can be rerun. Ends with a writable open + verify."""
    started = time.perf_counter()
    src, data_dir = Path(src), Path(settings.data_dir)
    meta = _read_meta(src)
    files = meta["files"]
    if bad := [rel for rel, digest in files.items() if not (src / rel).is_file() or sha256_file(src / rel) != digest]:
        raise BadInputError(f"the backup is damaged: {bad[:5]} missing or not matching their sha256 in {META_NAME}")
    _check_target_empty(settings)  # before the lock, which would leave ingest.lock in a refused folder
    url = settings.resolved_catalog_url()
    (lock := WriterLock(data_dir, settings.resolved_catalog_url())).acquire(wait_s=settings.lock_wait_s)
    written: list[Path] = []
    try:
        _check_target_empty(settings)  # again under the lock: what counts is what no one else can change
        with SqlCatalog.open(url) as catalog:  # open() creates the schema by migrations
            dialect = catalog.engine.dialect.name
            with catalog.engine.execution_options(firstseen_write=True).connect() as conn, conn.begin():
                tables = _target_tables(conn, meta)
                for sub in ("index", "vectors"):
                    (data_dir / sub).mkdir()
                    written.append(data_dir / sub)
                if any(rel.startswith("searches/") for rel in files):
                    DataDir(data_dir).searches.mkdir()
                    written.append(DataDir(data_dir).searches)
                for rel in sorted(files):
                    if rel.startswith("searches/"):
                        (data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                linked = sum(
                    _place_file(src / rel, data_dir / rel) for rel in sorted(files) if not rel.startswith("catalog/")
                )
                for folder in (*written, data_dir):
                    fsync_dir(folder)
                _insert_rows(conn, src, tables)
    except BaseException:
        for folder in written:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        lock.release()
    # Rows committed, files in place: the restore is done. Problems found now are the backup's
    # own (it was taken from a damaged archive), which running again would not mend.
    with open_archive(
        data_dir, url, writable=True, lock_wait_s=settings.lock_wait_s, index_url=settings.index_url
    ) as archive:
        problems = archive.verify()
    if problems:
        raise FirstSeenError(f"the restored archive in {data_dir} is inconsistent: {'; '.join(problems[:10])}")
    return RestoreReport(
        data_dir=data_dir,
        catalog_dialect=dialect,
        checkpoint=int(meta["checkpoint"]),
        videos=int(meta["videos"]),
        frames=int(meta["frames"]),
        files=len(files),
        bytes=sum((src / rel).stat().st_size for rel in files),
        seconds=time.perf_counter() - started,
        linked=linked,
        problems=problems,
    )


def _read_meta(src: Path) -> dict:
    path = src / META_NAME
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{src} is not a FirstSeen backup: {path} is missing or unreadable ({exc})") from exc
    files = meta.get("files") if isinstance(meta, dict) else None
    if not isinstance(files, dict) or meta.get("format") != FORMAT:
        raise BadInputError(f"{path} is not a backup in format {FORMAT}, the one this FirstSeen reads")
    if meta.get("index_backend", "faiss") == "faiss" and f"index/{MANIFEST_NAME}" not in files:
        raise BadInputError(f"{path} is not a backup in format {FORMAT}, the one this FirstSeen reads")
    if unsafe := [rel for rel in files if not _SAFE_PATH.fullmatch(rel)]:
        raise BadInputError(f"{path} lists unexpected files {unsafe[:5]}")
    return meta


def _check_target_empty(settings: Settings) -> None:
    data_dir = Path(settings.data_dir)
    allowed = {"ingest.lock"}  # the lock file stays behind after every writer
    url = make_url(settings.resolved_catalog_url())
    db = Path(url.database or "").expanduser().resolve() if url.get_backend_name() == "sqlite" else None
    if db and db.parent == data_dir.resolve():  # its rows are checked instead, so a failed restore can rerun
        allowed |= {db.name + suffix for suffix in ("", "-wal", "-shm", "-journal")}
    present = data_dir.iterdir() if data_dir.exists() else ()
    if extra := sorted(p.name for p in present if p.name not in allowed):
        raise BadInputError(f"{data_dir} is not empty ({', '.join(extra[:5])}); restore into a new data directory")


def _target_tables(conn: Connection, meta: dict) -> list:
    """The target's tables, parents first (foreign keys hold at every insert), once checked."""
    metadata = MetaData()
    metadata.reflect(bind=conn, only=_stored_table)
    head = conn.execute(text(f"SELECT version_num FROM {_ALEMBIC}")).scalar()
    if head != meta.get("alembic_revision"):
        raise BadInputError(
            f"the backup's catalog is at schema revision {meta.get('alembic_revision')!r}, this "
            f"FirstSeen's at {head!r}: restore with the version of FirstSeen that made the backup"
        )
    tables = [t for t in metadata.sorted_tables if t.name != _ALEMBIC]
    names = {t.name for t in tables}
    if names != set(meta.get("tables", {})) or any(f"catalog/{n}.jsonl.gz" not in meta["files"] for n in names):
        raise BadInputError(f"the backup's tables {sorted(meta.get('tables', {}))} are not the catalog's")
    for table in tables:
        if rows := conn.execute(select(func.count()).select_from(table)).scalar():
            raise BadInputError(
                f"the target catalog is not empty (table {table.name} has {rows} rows); restore into a new catalog"
            )
    return tables


def _rows(path: Path, datetimes: set[str]) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for row in map(json.loads, fh):
            for name in datetimes & row.keys():
                value = row[name] and datetime.fromisoformat(row[name])
                # SQLite keeps no zone; the catalog reads zone-less values as UTC (catalog._utc).
                row[name] = value.replace(tzinfo=UTC) if value and value.tzinfo is None else value
            yield row


def _insert_rows(conn: Connection, src: Path, tables: list) -> None:
    for table in tables:
        rows = _rows(
            DataDir(src).catalog_dump / f"{table.name}.jsonl.gz",
            {c.name for c in table.columns if isinstance(c.type, DateTime)},
        )
        while batch := list(islice(rows, _INSERT_BATCH)):
            conn.execute(table.insert(), batch)
        if conn.dialect.name != "postgresql":
            continue
        # The rows brought their own serial ids, which the sequence never handed out: without
        # this the next ingest run or copy link would be given an id already in use.
        for column in table.primary_key.columns:
            seq = conn.execute(
                text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
            ).scalar()
            if seq is not None:
                conn.execute(
                    text(f'SELECT setval(:seq, COALESCE(MAX("{column.name}"), 0) + 1, false) FROM "{table.name}"'),
                    {"seq": seq},
                )
