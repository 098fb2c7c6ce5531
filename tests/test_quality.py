"""ruff and mypy --strict over the whole tree, as configured in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT


@pytest.mark.parametrize("tool", ["ruff", pytest.param("mypy", marks=pytest.mark.slow)])
def test_tree_is_clean(tool: str, tmp_path: Path) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (pip install -e '.[dev]')")
    # Their caches go to tmp_path: in a fresh clone a .ruff_cache or .mypy_cache made in the
    # checkout fails the test (conftest.py: a test writes only under its tmp_path).
    command = [tool, "check", "--cache-dir", str(tmp_path / "ruff"), "."] if tool == "ruff" \
        else [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
