from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import tppolicy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def example_policy() -> tppolicy.Policy:
    return tppolicy.compile_publishers_file(EXAMPLES / "publishers.yaml")


def load_claims(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((EXAMPLES / "claims" / f"{name}.json").read_text())
    return value


@pytest.fixture
def github_claims() -> dict[str, Any]:
    return load_claims("github-release")
