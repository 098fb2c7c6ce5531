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


def _allowed_with(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                  extra: dict[str, object]) -> str:
    claims = json.loads((EXAMPLES / "claims" / "github-release.json").read_text("utf-8"))
    path = tmp_path / "claims.json"
    path.write_text(json.dumps({**claims, **extra}), "utf-8")
    code, out, _ = run_cli(capsys, "check", "--publishers", str(EXAMPLES / "publishers.yaml"),
                           "--claims", str(path))
    assert code == 0, out
    return out


def test_unknown_claim_names_cannot_forge_lines(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The note naming the claims a provider does not know printed their names as they
    are: a name with a line break and an escape forged a "pass" line and coloured the
    terminal."""
    out = _allowed_with(tmp_path, capsys, {"zz\n  pass  forged\x1b[31m": 1})
    assert "\x1b" not in out
    assert not any(line.strip().startswith("pass  forged") for line in out.splitlines())
    assert "ignored: zz\\n  pass  forged\\x1b[31m" in out


@pytest.mark.slow  # the default run's budget (.ci/run runs it)
def test_the_unknown_claims_note_is_bounded(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """200 000 unknown claims made a note of 1.7 MB: it names the first ones and counts
    the rest."""
    out = _allowed_with(tmp_path, capsys, {f"k{i:06}": i for i in range(200_000)})
    [note] = [line for line in out.splitlines() if "claims unknown" in line]
    assert len(note) < 1000
    assert note.endswith("k000019 and 199980 more")
