"""Commands pointed at a folder holding no archive say so (exit 2) and create nothing there."""

from __future__ import annotations

import pytest

from cli.main import main


@pytest.mark.parametrize("command", [["text", "hello"], ["text-pass"], ["remove", "some-id"], ["stats"]])
def test_a_missing_archive_is_bad_input_and_leaves_no_folder(tmp_path, capsys, command):
    missing = tmp_path / "typo"
    assert main([*command, "--data-dir", str(missing)]) == 2
    assert "no archive in" in capsys.readouterr().err
    assert not missing.exists()
