"""Hostile publishers files (attacker sweep): a YAML integer too large to show."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ROOT, run_cli


@pytest.mark.parametrize("literal", ["0x" + "f" * 4000, "0b" + "1" * 20_000])
@pytest.mark.parametrize("command", ["lint", "compile", "check"])
def test_a_huge_hex_integer_is_invalid_input(literal: str, command: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # int() reads 0x/0b/0o digits without a limit, but showing the value in a message
    # (str) raised ValueError past 4 300 decimal digits: exit 4 (internal error).
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text((ROOT / "examples/publishers.yaml").read_text().replace(
        'repository_owner_id: "65"', f"repository_owner_id: {literal}", 1))
    assert literal in publishers.read_text()
    argv = {"lint": [str(publishers)], "compile": [str(publishers)],
            "check": ["--publishers", str(publishers), "--claims",
                      str(ROOT / "examples/claims/github-release.json")]}
    code, out, err = run_cli(capsys, command, *argv[command])
    assert code == 3, (out, err[-300:])
    assert "too large to show" in err and "internal error" not in err
