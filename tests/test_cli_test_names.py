"""`tppolicy test`'s report shows a case's name with its control characters escaped: a
name with a line break started a line of its own (with `--format github`, a line
`::warning::...` is a workflow command to GitHub Actions)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import EXAMPLES, run_cli

CASES = """\
publishers: publishers.yaml
claims:
  release: claims/github-release.json
cases:
  - name: "allowed\\n::warning::forged"
    claims: release
    allowed: true
  - name: "denied\\n::error::forged\\x1b[31m"
    claims: release
    allowed: false
"""


@pytest.mark.parametrize("fmt", ["human", "github"])
def test_a_case_name_cannot_start_a_line(fmt: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder)
    (folder / "publishers.tptest.yaml").write_text(CASES)
    code, out, _ = run_cli(capsys, "test", str(folder / "publishers.tptest.yaml"),
                           "--format", fmt, "--verbose")
    assert code == 1, out
    assert "\x1b" not in out
    assert not any(line.startswith(("::warning::forged", "::error::forged"))
                   for line in out.splitlines()), out
    if fmt == "human":
        assert "allowed\\n::warning::forged" in out
