"""The architecture, enforced: the core imports no shell, shells reach the archive only through its methods.

The core (firstseen/) knows nothing of HTTP, job control or terminals. The shells (cli/,
indexer/, search_api/) import the core and hold no algorithm; only the CLI, the launcher,
starts the other two. Outside firstseen/archive/ no code reaches into an archive's stores."""

from __future__ import annotations

import ast
from pathlib import Path

from paths import REPO

SHELLS = ("cli", "indexer", "search_api")
# what each shell may import of the others: the CLI launches the scheduler and the server
SHELL_TO_SHELL = {"cli": {"indexer", "search_api", "cli"}, "indexer": {"indexer"}, "search_api": {"search_api"}}
ARCHIVE_PARTS = {
    "_catalog",
    "_vectors",
    "_index",
    "_index_store",
    "_links",
    "_runs",
    "_failures",
    "_text",
    "_searches",
    "catalog",
    "vectors",
    "index_store",
}
THIRD_PARTY_SHELL_ONLY = {"fastapi", "starlette", "uvicorn", "structlog", "prometheus_client", "tqdm"}


def _modules(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_core_imports_no_shell_and_no_shell_library():
    offenders = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in _modules("firstseen")
        for name in _imports(path)
        if name.split(".")[0] in set(SHELLS) | THIRD_PARTY_SHELL_ONLY
    ]
    assert offenders == []


def test_shells_import_the_core_and_only_the_shells_they_launch():
    offenders = []
    for shell in SHELLS:
        for path in _modules(shell):
            for name in _imports(path):
                top = name.split(".")[0]
                if top in SHELLS and top not in SHELL_TO_SHELL[shell]:
                    offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert offenders == []


def test_no_caller_outside_the_archive_reaches_into_its_stores():
    offenders = []
    for folder in ("firstseen", *SHELLS, "scripts"):
        for path in _modules(folder):
            if path.is_relative_to(REPO / "firstseen" / "archive"):
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in ARCHIVE_PARTS
                    and isinstance(node.value, (ast.Name, ast.Attribute))
                    and (getattr(node.value, "id", None) or getattr(node.value, "attr", "")).endswith("archive")
                ):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} .{node.attr}")
    assert offenders == []


def test_the_sql_catalog_is_opened_only_by_storage_the_archive_and_whole_archive_operations():
    allowed = {
        "firstseen/storage",
        "firstseen/archive",
        "firstseen/ops/backup.py",
        "firstseen/ops/stats.py",
        "firstseen/evidence/text_pass.py",
    }
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("firstseen", *SHELLS)
        for path in _modules(folder)
        if "firstseen.storage.catalog" in _imports(path)
        and not any(str(path.relative_to(REPO)).startswith(a) for a in allowed)
    ]
    assert offenders == []


def test_every_module_says_what_it_owns_and_stays_under_400_lines():
    problems = []
    for folder in ("firstseen", *SHELLS):
        for path in _modules(folder):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text())
            if not ast.get_docstring(tree):
                problems.append(f"{path.relative_to(REPO)}: no docstring")
            lines = len(path.read_text().splitlines())
            if lines > 400:
                problems.append(f"{path.relative_to(REPO)}: {lines} lines")
    assert problems == []
