"""Faults the security review and a new user's first hour found in the command line
(issue 12 items 16 and 17, issue 16's "first hour"), each as a user meets it."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from .conftest import EXAMPLES, load_claims
from .conftest import run_cli as run
from .tokens import fresh, jwks, rsa_key

PUBLISHERS = str(EXAMPLES / "publishers.yaml")
CLAIMS = EXAMPLES / "claims"
MISSING_FOLDER = "/nonexistent-tppolicy-folder"


def _stdin_bytes(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


# --------------------------------------------------- issue 12 item 16: stdin read once
def test_token_from_stdin_with_record_reads_stdin_once(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    key = rsa_key()
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(jwks(key)))
    _stdin_bytes(monkeypatch, (key.sign(fresh(load_claims("github-release"))) + "\n").encode())
    record = tmp_path / "decisions.jsonl"
    code, out, err = run(capsys, "check", "--publishers", PUBLISHERS, "--token", "-",
                         "--jwks", str(keys), "--record", str(record))
    assert code == 0, out + err
    [line] = record.read_text().splitlines()
    entry = json.loads(line)
    assert entry["allowed"] is True
    assert "repository" in json.dumps(entry)  # the verified claims were recorded


def test_claims_from_stdin_with_record(capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO((CLAIMS / "github-release.json").read_text()))
    record = tmp_path / "decisions.jsonl"
    code, out, err = run(capsys, "check", "--publishers", PUBLISHERS, "--claims", "-",
                         "--record", str(record))
    assert code == 0, out + err
    assert json.loads(record.read_text())["allowed"] is True


# ----------------------------------------- issue 12 item 17: unwritable output, --debug
@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_compile_to_an_unwritable_path_is_invalid_input(
        capsys: pytest.CaptureFixture[str], debug: list[str]) -> None:
    target = f"{MISSING_FOLDER}/x.tpp"
    code, _out, err = run(capsys, *debug, "compile", PUBLISHERS, "-o", target)
    assert code == 3, err
    assert target in err and "cannot write the file" in err
    assert "internal error" not in err and "report" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_record_to_an_unwritable_path_is_invalid_input(
        capsys: pytest.CaptureFixture[str], debug: list[str]) -> None:
    target = f"{MISSING_FOLDER}/x.jsonl"
    code, _out, err = run(capsys, *debug, "check", "--publishers", PUBLISHERS, "--claims",
                         str(CLAIMS / "github-release.json"), "--record", target)
    assert code == 3, err
    assert target in err and "cannot write the file" in err
    assert "internal error" not in err


def test_debug_never_changes_the_exit_code_of_a_bug(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from tppolicy.cli import check

    def broken(*args: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(check, "run", broken)
    argv = ("check", "--publishers", PUBLISHERS, "--claims", str(CLAIMS / "github-release.json"))
    code, _, err = run(capsys, *argv)
    assert code == 4 and "internal error" in err and "Traceback" not in err
    code, _, err = run(capsys, "--debug", *argv)
    assert code == 4 and "Traceback" in err and "ZeroDivisionError" in err


# ------------------------------------------------- issue 16: --debug, --version
def test_debug_is_accepted_after_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "check", "--publishers", PUBLISHERS, "--claims",
                         str(CLAIMS / "github-release.json"), "--debug")
    assert code == 0, err
    code, _, err = run(capsys, "compile", PUBLISHERS, "--debug", "-o", f"{MISSING_FOLDER}/x")
    assert code == 3, err


def test_version_after_a_subcommand_is_the_programs(capsys: pytest.CaptureFixture[str]) -> None:
    from tppolicy.version import __version__

    for command in ("check", "lint", "fmt"):
        code, out, _ = run(capsys, command, "--version")
        assert (code, out) == (0, f"tppolicy {__version__}\n")


def test_check_version_with_other_arguments_is_a_usage_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The old `check --version X` (the uploaded version) must not exit 0 ("allowed")."""
    code, out, err = run(capsys, "check", "--publishers", PUBLISHERS, "--claims",
                         str(CLAIMS / "github-wrong-environment.json"), "--version", "1.2.3")
    assert code == 2
    assert "--upload-version" in err and out == ""


def test_upload_version_is_the_request_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", "--publishers", PUBLISHERS, "--claims",
                         str(CLAIMS / "github-release.json"), "--upload-version", "1.2.3")
    assert code == 0, out + err
