from __future__ import annotations

import json
import os
from collections.abc import Iterator
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


def run_on_provider(capsys: pytest.CaptureFixture[str], command: str, tmp_path: Path,
                    github_text: str) -> tuple[int, str, str]:
    """`tppolicy lint|fmt|compile` on `github_text` (github.tpp's text, altered) saved as
    the provider `mine` of its own issuer in a --providers folder."""
    folder = tmp_path / "providers"
    folder.mkdir()
    policy = folder / "mine.tpp"
    policy.write_text(github_text.replace("provider github", "provider mine")
                      .replace("token.actions.githubusercontent.com", "ci.example"),
                      encoding="utf-8")
    argv = {"lint": [str(policy)], "fmt": ["--check", str(policy)],
            "compile": ["--providers", str(folder), str(ROOT / "examples/publishers.yaml")]}
    return run_cli(capsys, command, *argv[command])


# Folders no test may add anything to (a test writes under its tmp_path): the file system's
# root (a test once made /nonexistent/dir/a.db there, running as root) and the checkout.
_WATCHED = (Path("/"), ROOT)
# Tools' caches (pytest's plugins and hypothesis make theirs in the checkout).
_CACHES = frozenset({".hypothesis", ".pytest_cache", ".benchmarks", ".mypy_cache",
                     ".ruff_cache", "__pycache__"})


@pytest.fixture(autouse=True)
def _writes_stay_in_tmp(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that adds a file or folder to a watched folder (`_WATCHED`)."""
    before = {folder: set(os.listdir(folder)) for folder in _WATCHED}
    yield
    for folder, names in before.items():
        added = sorted(set(os.listdir(folder)) - names - _CACHES)
        if added:
            pytest.fail(f"{request.node.nodeid} added {added} to {folder}: a test writes "
                        "only under its tmp_path (or a temporary folder)", pytrace=False)


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


@pytest.fixture
def pure_quick_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Indexes made meanwhile keep their quick entries in a `DictTable`, as an install
    without the C extension does (`TPPOLICY_NO_EXTENSION=1`, or no compiler)."""
    from tppolicy.decide.index import DictTable

    monkeypatch.setattr("tppolicy.decide.index.QUICK_TABLE", DictTable)


@pytest.fixture
def pure_token_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token path runs in Python meanwhile, as an install without the C extension
    does: verifiers read tokens with `split_usual` and `registered_usual`, and
    `MemoryReplayStore` claims with `_ClaimsInPython.claim`, instead of
    `tppolicy.token._compact`'s `split`, `registered` and `Claims.claim`; verifiers and
    engines made meanwhile take no straight path in C (`_compact.Usual`,
    `_usual.TokenPath`), and checks compiled meanwhile read their claims in Python
    (no `_prologue.Prologue`)."""
    from tppolicy.decide import engine
    from tppolicy.language import compile as compile_module
    from tppolicy.token import replay, verify

    monkeypatch.setattr(verify, "_split", verify.split_usual)
    monkeypatch.setattr(verify, "_registered", verify.registered_usual)
    monkeypatch.setattr(verify, "_Usual", None)
    monkeypatch.setattr(engine, "_TokenPath", None)
    monkeypatch.setattr(compile_module, "_Prologue", None)
    if replay.MemoryReplayStore.claim is not replay._ClaimsInPython.claim:
        monkeypatch.setattr(replay.MemoryReplayStore, "claim", replay._ClaimsInPython.claim,
                            raising=False)
