"""What an archive holds and what it costs on disk, for `firstseen stats` and the benchmarks."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from firstseen.archive import open_archive
from firstseen.catalog import SqlCatalog
from firstseen.settings import Settings


def _folder_bytes(folder: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in folder.glob(pattern) if p.is_file()) if folder.exists() else 0


def catalog_bytes(catalog: SqlCatalog) -> int:
    engine = catalog.engine
    if engine.dialect.name == "sqlite":
        db = Path(engine.url.database or "")
        return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT COALESCE(SUM(pg_total_relation_size(format('%I.%I', schemaname, tablename))), 0) "
            "FROM pg_tables WHERE schemaname = current_schema()")).scalar())


def archive_stats(settings: Settings) -> dict:
    with open_archive(settings.data_dir, settings.resolved_catalog_url()) as archive:
        catalog_stats = archive.catalog.stats()
        manifest = archive.index_store.read_manifest()
        index_file = archive.index_store.folder / manifest.index_file if manifest else None
        index_bytes = index_file.stat().st_size if index_file and index_file.exists() else 0
        raw_bytes = _folder_bytes(settings.data_dir / "vectors", "*.npz")
        db_bytes = catalog_bytes(archive.catalog)
        hours = catalog_stats.committed_footage_s / 3600
        last = catalog_stats.last_run
        return {
            "data_dir": str(settings.data_dir),
            "descriptor": archive.spec.config_id,
            "dim": archive.spec.dim,
            "metric": archive.spec.metric,
            "videos": catalog_stats.videos_by_status,
            "footage_hours": round(hours, 4),
            "frames": catalog_stats.committed_frames,
            "index_vectors": len(archive.index),
            "checkpoint": archive.checkpoint,
            "copy_links": catalog_stats.copy_links,
            "bytes": {"index": index_bytes, "catalog": db_bytes, "raw_vectors": raw_bytes},
            "index_and_catalog_bytes_per_footage_hour": round((index_bytes + db_bytes) / hours) if hours else None,
            "last_run": None if last is None else {
                "run_id": last.run_id, "status": last.status, "started_at": last.started_at.isoformat(),
                "added": last.added, "skipped": last.skipped, "failed": last.failed,
                "errors": last.errors,
            },
        }


def format_stats(stats: dict) -> str:
    b = stats["bytes"]
    videos = ", ".join(f"{n} {status}" for status, n in stats["videos"].items() if n)
    lines = [
        f"archive      {stats['data_dir']}",
        f"descriptor   {stats['descriptor']} ({stats['dim']}-d, {stats['metric']})",
        f"videos       {videos or 'none'}",
        f"footage      {stats['footage_hours']:.3f} h, {stats['frames']} frames, "
        f"{stats['index_vectors']} vectors in the index (checkpoint {stats['checkpoint']})",
        f"copy links   {stats['copy_links']}",
        f"on disk      index {b['index'] / 1e6:.2f} MB, catalog {b['catalog'] / 1e6:.2f} MB, "
        f"raw vectors {b['raw_vectors'] / 1e6:.2f} MB",
    ]
    if stats["index_and_catalog_bytes_per_footage_hour"]:
        lines.append(f"per hour     {stats['index_and_catalog_bytes_per_footage_hour'] / 1e6:.2f} MB of index + catalog per footage hour")
    run = stats["last_run"]
    if run:
        lines.append(f"last run     #{run['run_id']} {run['status']} at {run['started_at']}: "
                     f"{run['added']} added, {run['skipped']} skipped, {run['failed']} failed")
        lines.extend(f"  failed     {e['path']}: {e['reason']}" for e in run["errors"][:10])
    return "\n".join(lines)
