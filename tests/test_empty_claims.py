"""An empty claim in a fix reads as words, not as two quotes ("add '' to ...")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import EXAMPLES, run_cli


def test_an_empty_issuer_is_told_so_in_words(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """It said "The token comes from an unknown GitHub issuer: ''"."""
    claims = json.loads((EXAMPLES / "claims" / "github-release.json").read_text("utf-8"))
    path = tmp_path / "claims.json"
    path.write_text(json.dumps({**claims, "iss": ""}), "utf-8")
    code, out, _ = run_cli(capsys, "check", "--publishers", str(EXAMPLES / "publishers.yaml"),
                           "--claims", str(path))
    assert code == 1
    fix = next(line for line in out.splitlines() if line.strip().startswith("fix:"))
    assert "The token's iss claim is empty" in fix
    assert "''" not in fix and "GitHub" not in fix
