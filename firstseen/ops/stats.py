"""What an archive holds and what it costs on disk, for `firstseen stats` and the benchmarks."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from firstseen.archive import index_files, open_catalog_only
from firstseen.datadir import DataDir
from firstseen.records import CatalogStats
from firstseen.settings import Settings
from firstseen.storage.catalog import SqlCatalog
from firstseen.storage.copy_links import SqlCopyLinks
from firstseen.storage.failures import SqlFailureLedger
from firstseen.storage.index_store import IndexManifest, IndexStore
from firstseen.storage.run_log import SqlRunLog


def _folder_bytes(folder: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in folder.glob(pattern) if p.is_file()) if folder.exists() else 0


def catalog_bytes(catalog: SqlCatalog) -> int:
    engine = catalog.engine
    if engine.dialect.name == "sqlite":
        db = Path(engine.url.database or "")
        return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT COALESCE(SUM(pg_total_relation_size(format('%I.%I', schemaname, tablename))), 0) "
                    "FROM pg_tables WHERE schemaname = current_schema()"
                )
            ).scalar()
            or 0
        )


def archive_stats(settings: Settings) -> dict:
    catalog, spec = open_catalog_only(settings.data_dir, settings.resolved_catalog_url())
    try:
        runs = SqlRunLog(catalog)
        by_status, footage_s, frames = catalog.video_totals()
        catalog_stats = CatalogStats(by_status, footage_s, frames, SqlCopyLinks(catalog).count(), runs.last())
        index_store = index_files(DataDir(settings.data_dir), settings.index_url)
        try:
            manifest = index_store.read_manifest()
        finally:
            index_store.close()
        index_bytes = (  # a Milvus collection's size is the server's to report
            sum(p.stat().st_size for p in (index_store.folder / n for n in manifest.files) if p.exists())
            if manifest and isinstance(index_store, IndexStore)
            else 0
        )
        failures = SqlFailureLedger(catalog, settings.ingest_max_attempts).all().values()
        raw_bytes = _folder_bytes(DataDir(settings.data_dir).vectors, "*.npz")
        db_bytes = catalog_bytes(catalog)
        hours = catalog_stats.committed_footage_s / 3600
        last = catalog_stats.last_run
        return {
            "data_dir": str(settings.data_dir),
            "descriptor": spec.config_id,
            "dim": spec.dim,
            "metric": spec.metric,
            "videos": catalog_stats.videos_by_status,
            "footage_hours": round(hours, 4),
            "frames": catalog_stats.committed_frames,
            "index_vectors": manifest.count if manifest else 0,
            "checkpoint": manifest.checkpoint if manifest else 0,
            "index": _index_dict(manifest),
            "copy_links": catalog_stats.copy_links,
            "bytes": {"index": index_bytes, "catalog": db_bytes, "raw_vectors": raw_bytes},
            "index_and_catalog_bytes_per_footage_hour": round((index_bytes + db_bytes) / hours) if hours else None,
            "last_run": None if last is None else _run_dict(last),
            "recent_runs": [_run_dict(run, errors=False) for run in runs.runs(limit=5)],
            "quarantined": [f.to_dict() for f in failures if f.quarantined],
            "retrying": [f.to_dict() for f in failures if not f.quarantined],
        }
    finally:
        catalog.close()


def _index_dict(manifest: IndexManifest | None) -> dict:
    """The published index as its manifest describes it; the index itself is not loaded."""
    if manifest is None:
        return {
            "kind": "flat",
            "main_vectors": 0,
            "delta_vectors": 0,
            "nlist": 0,
            "nprobe": 0,
            "built_for": 0,
            "saved_at": None,
        }
    main = manifest.main_count if manifest.main_file else 0
    return {
        "kind": manifest.kind,
        "backend": manifest.backend,
        "main_vectors": main,
        "delta_vectors": manifest.count - main,
        "nlist": manifest.main_nlist,
        "nprobe": manifest.main_nprobe,
        "built_for": manifest.main_built_for,
        "saved_at": manifest.saved_at,
    }


def _run_dict(run, errors: bool = True) -> dict:
    out = {
        "run_id": run.run_id,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "added": run.added,
        "skipped": run.skipped,
        "failed": run.failed,
        "quarantined": run.quarantined,
    }
    if errors:
        out["errors"] = run.errors
    return out


def format_stats(stats: dict) -> str:
    b = stats["bytes"]
    videos = ", ".join(f"{n} {status}" for status, n in stats["videos"].items() if n)
    lines = [
        f"archive      {stats['data_dir']}",
        f"descriptor   {stats['descriptor']} ({stats['dim']}-d, {stats['metric']})",
        f"videos       {videos or 'none'}",
        f"footage      {stats['footage_hours']:.3f} h, {stats['frames']} frames, "
        f"{stats['index_vectors']} vectors in the index (checkpoint {stats['checkpoint']})",
        _index_line(stats["index"]),
        f"copy links   {stats['copy_links']}",
        f"on disk      index {b['index'] / 1e6:.2f} MB, catalog {b['catalog'] / 1e6:.2f} MB, "
        f"raw vectors {b['raw_vectors'] / 1e6:.2f} MB",
    ]
    if stats["index_and_catalog_bytes_per_footage_hour"]:
        lines.append(
            f"per hour     {stats['index_and_catalog_bytes_per_footage_hour'] / 1e6:.2f} MB of index + catalog "
            "per footage hour"
        )
    run = stats["last_run"]
    if run:
        lines.append(
            f"last run     #{run['run_id']} {run['status']} at {run['started_at']}: "
            f"{run['added']} added, {run['skipped']} skipped, {run['failed']} failed"
        )
        lines.extend(f"  failed     {e['path']}: {e['reason']}" for e in run["errors"][:10])
    for earlier in stats["recent_runs"][1:]:
        lines.append(
            f"earlier run  #{earlier['run_id']} {earlier['status']} at {earlier['started_at']}: "
            f"{earlier['added']} added, {earlier['skipped']} skipped, {earlier['failed']} failed"
        )
    if stats["retrying"]:
        lines.append(f"retrying     {len(stats['retrying'])} file(s) failed and will be tried again next run")
        lines.extend(f"  {f['attempts']}x      {f['path']}: {f['reason']}" for f in stats["retrying"][:10])
    if stats["quarantined"]:
        lines.append(
            f"QUARANTINED  {len(stats['quarantined'])} file(s) failed every attempt and are no longer tried "
            "(change the file, or run `firstseen ingest --retry-quarantined`):"
        )
        lines.extend(
            f"  {f['path']}: {f['reason']} ({f['attempts']} attempts, since {f['quarantined_at']})"
            for f in stats["quarantined"]
        )
    return "\n".join(lines)


def _index_line(index: dict) -> str:
    if index["kind"] == "ivf":
        return (
            f"index        IVF (SQ8) with {index['nlist']} lists, nprobe {index['nprobe']}: "
            f"{index['main_vectors']} vectors + {index['delta_vectors']} exact since its build"
        )
    return f"index        exact: {index['main_vectors'] + index['delta_vectors']} vectors"
