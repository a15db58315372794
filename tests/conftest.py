"""Shared fixtures: real footage location, settings pointing at a temporary data directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


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


@pytest.fixture
def settings(tmp_path: Path):
    from firstseen.settings import get_settings

    return get_settings(data_dir=tmp_path / "data", catalog_url=f"sqlite:///{tmp_path / 'data' / 'catalog.sqlite'}",
                        checkpoint_every_s=3600)
