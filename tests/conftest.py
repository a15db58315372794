"""Shared fixtures: real footage location, settings pointing at a temporary data directory, the toy descriptor."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from pathlib import Path

import pytest
import toy_descriptor  # noqa: F401 - registers the tests' model-free descriptor
from paths import REPO
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

# the edit generator, distractor footage and text frames are evaluation tooling the tests share
sys.path.insert(0, str(REPO / "scripts"))

PG_URL = os.environ.get("FIRSTSEEN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def footage_dir() -> Path:
    return Path(os.environ.get("FIRSTSEEN_FOOTAGE_DIR", REPO / ".cache" / "footage"))


@pytest.fixture(scope="session")
def footage() -> Path:
    """The real footage fetched by scripts/fetch_footage.py (make test runs it first)."""
    folder = footage_dir()
    if not (folder / "manifest.jsonl").exists():
        message = f"real footage missing in {folder}: run `python scripts/fetch_footage.py`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


def require_scale(module: str):
    """The scale extra's module, or a skip where it is not installed (a failure under CI,
    which installs it: `make setup`)."""
    try:
        return __import__(module)
    except ImportError:
        message = f"{module} is missing: pip install 'firstseen[scale]' (make setup installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message, allow_module_level=True)


@pytest.fixture
def settings(tmp_path: Path):
    from firstseen.settings import get_settings

    return get_settings(
        data_dir=tmp_path / "data",
        catalog_url=f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite'}",
        checkpoint_every_s=3600,
    )


_pg_error: list[str] = []  # probed once per session


def _pg_admin_engine():
    if not _pg_error:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            _pg_error.append("")
        except Exception as exc:  # noqa: BLE001 - any failure means "no server"
            _pg_error.append(f"PostgreSQL at {make_url(PG_URL)!r} is unreachable: {exc}")
        engine.dispose()
    if _pg_error[0]:
        if os.environ.get("CI"):
            pytest.fail(_pg_error[0] + " (CI must run the PostgreSQL tests)")
        pytest.skip(_pg_error[0])
    return create_engine(PG_URL)


@contextlib.contextmanager
def pg_schema_url():
    """A URL to a fresh schema of the test PostgreSQL database, dropped afterwards (the database
    is shared: one schema per test)."""
    admin = _pg_admin_engine()
    schema = f"fs_test_{uuid.uuid4().hex[:16]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite'}"
        return
    with pg_schema_url() as url:
        yield url


@pytest.fixture(scope="session")
def small_archive(footage: Path, tmp_path_factory) -> dict:
    """Three real videos ingested (vtest, cockatoo, diver) and suspect clips made from them:
    a reversed vtest excerpt, a mirrored 2x cockatoo excerpt, and tree.avi (never archived).
    Tests that change the archive copy it first (copy_archive)."""
    import numpy as np
    from edits import FrameSource, make_query

    from firstseen.ingest.progress import LogProgress
    from firstseen.ingest.run import run_ingest
    from firstseen.settings import get_settings

    work = tmp_path_factory.mktemp("small-archive")
    lines = [json.loads(line) for line in (footage / "manifest.jsonl").read_text().splitlines()]
    chosen = [line for line in lines if line["path"] in ("vtest.avi", "cockatoo.mp4", "diver.mov")]
    manifest = work / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(dict(line, path=str(footage / line["path"]))) + "\n" for line in chosen))
    data = work / "data"
    summary = run_ingest(get_settings(data_dir=data), [], [manifest], progress=LogProgress())
    assert summary.added == 3 and summary.failed == 0, summary
    rng = np.random.default_rng(0)
    queries = work / "queries"
    reversed_clip = make_query("reversed", FrameSource(footage / "vtest.avi", 360), 30.0, 6.0, queries, rng=rng)
    mirrored = make_query("mirror", FrameSource(footage / "cockatoo.mp4", 360), 2.0, 6.0, queries, rng=rng)
    unseen = make_query("reencode", FrameSource(footage / "tree.avi", 360), 2.0, 5.0, queries / "unseen", rng=rng)
    return {
        "data_dir": data,
        "titles": {line["path"]: line["title"] for line in chosen},
        "external_ids": {line["path"]: line["external_id"] for line in chosen},
        "reversed": reversed_clip.path,
        "mirrored": mirrored.path,
        "unseen": unseen.path,
    }


def copy_archive(small_archive: dict, dest: Path) -> Path:
    """A private copy of the small archive's data directory (SQLite catalog inside)."""
    import shutil

    # kept searches of API tests that searched the shared archive stay behind: each test makes its own
    shutil.copytree(small_archive["data_dir"], dest, ignore=shutil.ignore_patterns("ingest.lock", "jobs", "searches"))
    return dest
