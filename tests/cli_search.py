"""The CLI's search as the integration tests run it: one archive folder, one query, the JSON contract back."""

from __future__ import annotations

import json
from pathlib import Path

from cli.main import main


def search_json(archive: dict, query: Path, capsys) -> dict:
    """`firstseen search QUERY --data-dir archive["data_dir"] --json`, which must exit 0."""
    code = main(["search", str(query), "--data-dir", str(archive["data_dir"]), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)
