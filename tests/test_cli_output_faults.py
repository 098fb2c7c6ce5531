"""Output that cannot be written: a reader that went away (a broken pipe) never turns a
denial into exit 0, and a full disk is exit 3 naming what could not be written, not an
internal error (exit 4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import EXAMPLES, ROOT, run_cli

PUBLISHERS = str(EXAMPLES / "publishers.yaml")
ALLOWED = str(EXAMPLES / "claims" / "github-release.json")
DENIED = str(EXAMPLES / "claims" / "github-wrong-environment.json")


def _with_reader_gone(*argv: str) -> subprocess.CompletedProcess[str]:
    """`tppolicy ARGV` writing to a pipe nobody reads any more (as `| head -n 1` once it
    has its line): each write fails with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "tppolicy", *argv], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120, check=False,
                              cwd=ROOT)
    finally:
        os.close(write)


@pytest.mark.parametrize(("claims", "code"), [(DENIED, 1), (ALLOWED, 0)])
def test_a_broken_pipe_keeps_the_decision(claims: str, code: int) -> None:
    """It exited 0 ("allowed") for a denial whose output found the pipe closed."""
    done = _with_reader_gone("check", "--publishers", PUBLISHERS, "--claims", claims)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


@pytest.mark.parametrize("argv", [
    ["check", "--publishers", PUBLISHERS, "--claims", DENIED],
    ["check", "--publishers", PUBLISHERS, "--claims", ALLOWED],
    ["compile", PUBLISHERS],
], ids=["denied", "allowed", "compile"])
def test_standard_output_on_a_full_disk(argv: list[str]) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "tppolicy", *argv], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120, check=False,
                              cwd=ROOT)
    assert done.returncode == 3, done.stderr
    assert "tppolicy: cannot write to standard output: No space left on device" in done.stderr
    assert "internal error" not in done.stderr and "Exception ignored" not in done.stderr


def test_a_record_file_on_a_full_disk(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "check", "--publishers", PUBLISHERS, "--claims", ALLOWED,
                           "--record", "/dev/full")
    assert code == 3, err
    assert "/dev/full: cannot write the file: No space left on device" in err


def test_output_is_still_written_in_full(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with path.open("w") as out:
        done = subprocess.run([sys.executable, "-m", "tppolicy", "compile", PUBLISHERS],
                              stdout=out, stderr=subprocess.PIPE, text=True, timeout=120,
                              check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert path.read_text().startswith("# Compiled") or "provider" in path.read_text()
