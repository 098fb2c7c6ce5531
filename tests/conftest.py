from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import tppolicy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`tppolicy ARGV...` in this process: (exit code, stdout, stderr)."""
    from tppolicy.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class Clock:
    """A monotonic clock that moves only when told to (a key cache's, in the tests)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def example_policy() -> tppolicy.Policy:
    return tppolicy.compile_publishers_file(EXAMPLES / "publishers.yaml")


def load_claims(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((EXAMPLES / "claims" / f"{name}.json").read_text())
    return value


@pytest.fixture
def github_claims() -> dict[str, Any]:
    return load_claims("github-release")
