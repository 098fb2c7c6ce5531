"""Any combination of test files collects and finds its fixtures: the HTTPS key server's
fixtures (`tests.jwks_server`, loaded by `pytest_plugins` in the modules using them) once
went missing ("fixture 'jwks_server' not found") when files of tests/ and tests/server/
ran in one call. pytest's `--setup-plan` resolves every fixture without running a test."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import ROOT

COMBINATIONS = [
    ["tests/test_keys.py", "tests/server/test_faults.py"],
    ["tests/server/test_faults.py", "tests/test_keys.py", "tests/test_verify_network.py"],
    ["tests/server/test_e2e.py", "tests/test_verify_network.py"],
]


@pytest.mark.slow
@pytest.mark.parametrize("files", COMBINATIONS, ids=lambda files: "+".join(
    os.path.basename(f) for f in files))
def test_files_of_both_folders_in_one_call(files: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--setup-plan", *files], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "not found" not in done.stdout
