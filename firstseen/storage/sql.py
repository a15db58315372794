"""The SQL database under the catalog and its companion stores: engine, SQLite pragmas, sessions, migrations."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, overload

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session

from firstseen.errors import BadInputError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_IN_CHUNK = 900  # below SQLite's historic limit of 999 bound parameters per statement
_BUSY_TIMEOUT_S = 30.0
_PG_MIGRATION_LOCK = 0x46_53_43_41_54  # advisory lock key: concurrent first opens must not race DDL


@overload
def utc(value: None) -> None: ...
@overload
def utc(value: datetime | date) -> datetime: ...
@overload
def utc(value: datetime | date | None) -> datetime | None: ...


def utc(value: datetime | date | None) -> datetime | None:
    """Callers' naive datetimes and SQLite's tz-less values both mean UTC."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(), UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def now() -> datetime:
    return datetime.now(UTC)


def chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


def to_json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is switched off so _sqlite_on_begin decides how to BEGIN
    # (and so DDL in migrations stays inside our transaction).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (search) never block the writer (ingest)
    cursor.execute("PRAGMA synchronous=FULL")  # WAL + NORMAL may lose the last commits on power loss
    cursor.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A write takes the write lock up front: a deferred transaction that reads and then writes
    # (frame-id allocation) could otherwise fail midway, or act on a stale read.
    write = conn.get_execution_options().get("firstseen_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise BadInputError(f"catalog URL must be SQLite or PostgreSQL, got {parsed.get_backend_name()!r}")
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": _BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


class SqlDatabase:
    """One SQLite or PostgreSQL database, migrated to the newest schema; every public write of the
    stores over it is one transaction."""

    def __init__(self, url: str):
        self.url = url
        self._engine = _make_engine(url)
        self._writer = self._engine.execution_options(firstseen_write=True)

    @classmethod
    def open(cls, url: str):
        """Connect and bring the schema up to the newest migration."""
        catalog = cls(url)
        try:
            catalog.migrate()
        except BaseException:
            catalog.close()
            raise
        return catalog

    def migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        with self._writer.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    dispose = close

    def __enter__(self):
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction, for the stores over this database (failures, on-screen text)."""
        with self._session(write=write) as s:
            yield s

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        with Session(self._writer if write else self._engine, expire_on_commit=False) as session:
            with session.begin():
                yield session
