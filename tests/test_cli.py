"""`tppolicy` as a user runs it: exit codes, human and JSON output, bad input."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tppolicy.cli import main

from .conftest import EXAMPLES
from .conftest import run_cli as run

PUBLISHERS = str(EXAMPLES / "publishers.yaml")
CLAIMS = EXAMPLES / "claims"


def test_allowed_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--publishers", PUBLISHERS,
                       "--claims", str(CLAIMS / "github-release.json"))
    assert code == 0
    assert out.startswith("ALLOWED: publisher 'sampleproject-github' (github) may publish to "
                          "sampleproject, sampleproject-extras")


def test_denied_exits_1_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--publishers", PUBLISHERS,
                       "--claims", str(CLAIMS / "github-wrong-environment.json"))
    assert code == 1
    assert "closest publisher: sampleproject-github" in out
    assert "FAIL  environment: token has 'release', publisher expects 'pypi'" in out


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--publishers", PUBLISHERS, "--format", "json",
                       "--claims", str(CLAIMS / "github-wrong-environment.json"))
    assert code == 1
    payload = json.loads(out)
    assert payload["allowed"] is False
    assert payload["publisher"] is None
    assert payload["projects"] == []
    assert payload["closest_publisher"] == "sampleproject-github"
    assert payload["code"] == "invalid-publisher"
    failed = [r for r in payload["reasons"] if not r["passed"]]
    assert failed == [{"rule": "environment", "passed": False, "expected": "pypi",
                       "actual": "release",
                       "message": "token has 'release', publisher expects 'pypi' (ignoring case)",
                       "fix": {"where": "workflow or publisher",
                               "text": "Rename the environment: the job ran in 'release', the "
                                       "publisher expects 'pypi'. Set `environment: pypi` in "
                                       "the publishing job, or change the publisher's "
                                       "environment to 'release'."}}]


def test_claims_from_stdin(capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO((CLAIMS / "gitlab-release.json").read_text()))
    code, out, _ = run(capsys, "check", "--publishers", PUBLISHERS, "--claims", "-",
                       "--format", "json")
    assert code == 0
    assert json.loads(out)["publisher"] == "sampleproject-gitlab"


def test_audience_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--publishers", PUBLISHERS, "--audience", "testpypi",
                       "--claims", str(CLAIMS / "github-release.json"))
    assert code == 1
    assert "token has audience 'pypi', expected 'testpypi'" in out


def test_compile_and_check_policy_agree(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    compiled = tmp_path / "policy.tpp"
    code, _, _ = run(capsys, "compile", PUBLISHERS, "-o", str(compiled))
    assert code == 0
    assert 'publisher "sampleproject-github" {' in compiled.read_text()
    for claims in sorted(CLAIMS.glob("*.json")):
        a = run(capsys, "check", "--publishers", PUBLISHERS, "--claims", str(claims),
                "--format", "json")
        b = run(capsys, "check", "--policy", str(compiled), "--claims", str(claims),
                "--format", "json")
        assert a == b


@pytest.mark.parametrize(("content", "message"), [
    ("{", "invalid JSON: Expecting property name enclosed in double quotes"),
    ("[1, 2]", "claims must be a JSON object, found an array"),
    ('{"iss": 1, "iss": 2}', "claim 'iss' appears twice"),
    (b"\xff\xfe", "claims.json:1:1: the file is not UTF-8: byte 0xff"),
])
def test_bad_claims_exit_3(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                           content: str | bytes, message: str) -> None:
    path = tmp_path / "claims.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    code, out, err = run(capsys, "check", "--publishers", PUBLISHERS, "--claims", str(path))
    assert code == 3
    assert out == ""
    assert str(path) in err and message in err
    assert "Traceback" not in err


def test_bad_publishers_exit_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "publishers.yaml"
    path.write_text("publishers:\n  - provider: github\n    projects: [x]\n"
                    "    repository_owner: octo\n    repository_name: repo\n"
                    "    repository_owner_id: 65\n    workflow_filename: .github/workflows/r.yml\n")
    code, _, err = run(capsys, "check", "--publishers", str(path),
                       "--claims", str(CLAIMS / "github-release.json"))
    assert code == 3
    assert f"{path}:6:" in err and "repository_owner_id" in err
    assert f"{path}:7:" in err and "workflow_filename" in err


def test_bad_policy_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "policy.tpp"
    path.write_text('publisher "x" {\n  provider github\n  rule r: claims.repo == "a"\n}\n')
    code, _, err = run(capsys, "check", "--policy", str(path),
                       "--claims", str(CLAIMS / "github-release.json"))
    assert code == 3
    assert f"{path}:3:11: unknown claim 'repo'" in err


@pytest.mark.parametrize("argv", [
    [], ["check"], ["check", "--claims", "x"], ["nope"],
    ["check", "--publishers", PUBLISHERS, "--claims", "x", "--format", "xml"],
    ["compile", PUBLISHERS, "--issuer", "gitlab.example.com"],
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code  # type: ignore[assignment]
    capsys.readouterr()
    assert code == 2


def test_issuer_for_a_provider_without_custom_issuers(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    code, _, err = run(capsys, "compile", PUBLISHERS, "--issuer",
                       "https://github.example.com/_services/token=github")
    assert code == 2
    assert "provider 'github' does not allow custom issuers" in err


def test_missing_file_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "check", "--publishers", "/nonexistent.yaml",
                       "--claims", str(CLAIMS / "github-release.json"))
    assert code == 3
    assert "/nonexistent.yaml" in err and "No such file" in err


def test_installed_console_script() -> None:
    script = shutil.which("tppolicy")
    assert script is not None, "the tppolicy console script is not installed"
    done = subprocess.run([script, "check", "--publishers", PUBLISHERS, "--claims",
                           str(CLAIMS / "google-cloud-build.json")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "ALLOWED: publisher 'cloud-builder'" in done.stdout
    version = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("tppolicy ")
    module = subprocess.run([sys.executable, "-m", "tppolicy", "providers"],
                            capture_output=True, text=True, check=True)
    assert "github: https://token.actions.githubusercontent.com" in module.stdout


def test_output_of_python_m_id_decode(capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    """`python -m id -d pypi` prints the JOSE header, then the claims."""
    claims = (CLAIMS / "github-release.json").read_text()
    path = tmp_path / "id-output.txt"
    path.write_text('{"alg": "RS256", "kid": "abc", "typ": "JWT"}\n'
                    + json.dumps(json.loads(claims)) + "\n")
    code, out, _ = run(capsys, "check", "--publishers", PUBLISHERS, "--claims", str(path))
    assert code == 0, out


def test_a_compact_token_is_not_claims(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    path = tmp_path / "token.txt"
    path.write_text("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln\n")
    code, _, err = run(capsys, "check", "--publishers", PUBLISHERS, "--claims", str(path))
    assert code == 3
    assert "this is a signed token (a JWT), not its claims" in err
