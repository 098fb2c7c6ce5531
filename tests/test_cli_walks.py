"""Folders a command searches (`tppolicy test DIR`, `--providers DIR`): only regular files
are read. A FIFO named like a test or provider file blocked the command for ever (opening
it waits for a writer); a file named on the command line is still read whatever it is
(`--publishers <(...)` is a pipe)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import EXAMPLES, ROOT


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([sys.executable, "-m", "tppolicy", *argv], capture_output=True,
                              text=True, timeout=60, check=False, cwd=ROOT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"tppolicy {' '.join(argv)} blocked on a FIFO") from None


def test_test_skips_a_fifo_in_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder)
    os.mkfifo(folder / "waiting.tptest.yaml")
    done = _run("test", str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "waiting" not in done.stdout + done.stderr


def test_providers_skips_a_fifo_in_a_folder(tmp_path: Path) -> None:
    shutil.copy(ROOT / "policies" / "github.tpp", tmp_path / "forge.tpp")
    text = (tmp_path / "forge.tpp").read_text().replace("provider github {", "provider forge {")
    text = text.replace('issuer "https://token.actions.githubusercontent.com"',
                        'issuer "https://token.forge.example"')
    (tmp_path / "forge.tpp").write_text(text)
    os.mkfifo(tmp_path / "waiting.tpp")
    done = _run("providers", "--providers", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "forge" in done.stdout
