"""`tppolicy lint`, `tppolicy test` and `tppolicy explain` as a user runs them: exit codes,
human, JSON and SARIF output, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tppolicy.cli import main

from .conftest import EXAMPLES, ROOT
from .conftest import run_cli as run

FIXTURES = ROOT / "tests" / "fixtures"
PUBLISHERS = str(EXAMPLES / "publishers.yaml")
CLAIMS = EXAMPLES / "claims"


# ------------------------------------------------------------------------ lint
def test_lint_warnings_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lint", PUBLISHERS)
    assert code == 1
    assert out.splitlines()[0].startswith(
        f"{PUBLISHERS}:38:11: TPP001 warning: github publisher 'new-plugin-pending' accepts "
        "any environment")
    assert "    fix: name the deployment environment" in out
    assert out.endswith("1 warning in 1 file\n")


def test_lint_clean_exits_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    clean = tmp_path / "publishers.yaml"
    clean.write_text((EXAMPLES / "publishers.yaml").read_text().replace(
        "    workflow_filename: publish.yaml\n",
        "    workflow_filename: publish.yaml\n    environment: pypi\n"))
    code, out, _ = run(capsys, "lint", str(clean))
    assert (code, out) == (0, "no problems found in 1 file\n")


def test_lint_notes_do_not_fail(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("publishers:\n  - provider: gitlab\n    projects: [x]\n    namespace: MaxIV\n"
                    "    project: tools\n    workflow_filepath: .gitlab-ci.yml\n"
                    "    environment: pypi\n")
    code, out, _ = run(capsys, "lint", str(path))
    assert code == 0
    assert "TPP008 note" in out
    assert out.endswith("1 note in 1 file\n")


def test_lint_invalid_file_exits_3_and_lints_the_others(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("publishers:\n  - provider: nope\n")
    code, out, err = run(capsys, "lint", str(bad), PUBLISHERS)
    assert code == 3
    assert "unknown provider 'nope'" in err
    assert "TPP001" in out


def test_lint_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lint", "--format", "json", PUBLISHERS,
                       str(FIXTURES / "lint" / "edited.tpp"))
    assert code == 1
    payload = json.loads(out)
    assert payload["files"] == 2
    assert payload["errors"] == []
    first = payload["findings"][0]
    assert set(first) == {"code", "name", "level", "file", "line", "column", "end_line",
                          "end_column", "publisher", "message", "fix"}
    assert {f["code"] for f in payload["findings"]} == {"TPP001", "TPP011", "TPP012"}


def test_lint_sarif(capsys: pytest.CaptureFixture[str]) -> None:
    from jsonschema import Draft4Validator

    code, out, _ = run(capsys, "lint", "--format", "sarif",
                       str(FIXTURES / "lint" / "everything.yaml"))
    assert code == 1
    log = json.loads(out)
    schema = json.loads((FIXTURES / "sarif" / "sarif-schema-2.1.0.json").read_text())
    assert not list(Draft4Validator(schema).iter_errors(log))
    results = log["runs"][0]["results"]
    assert results
    location = results[0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].endswith("tests/fixtures/lint/everything.yaml")


def test_lint_sarif_with_invalid_file(capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    bad = tmp_path / "bad.tpp"
    bad.write_text("publisher {")
    code, out, _ = run(capsys, "lint", "--format", "sarif", str(bad))
    assert code == 3
    invocation = json.loads(out)["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False


def test_lint_help_lists_the_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["lint", "--help"])
    out = capsys.readouterr().out
    assert "TPP001  warning  no-environment" in out
    assert "TPP013  note     rule-differs-from-provider" in out


# ------------------------------------------------------------------------ test
def test_test_examples_from_the_default_folder(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES)
    code, out, _ = run(capsys, "test")
    assert code == 0
    assert out.splitlines()[-1] == "32 passed, 0 failed"


@pytest.mark.slow  # the default run's budget (.ci/run runs it)
def test_test_the_provider_case_tables(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "test", str(ROOT / "tests" / "cases"))
    assert code == 0
    passed = int(out.splitlines()[-1].split()[0])
    assert passed >= 245
    code, out, _ = run(capsys, "test", *sorted(str(p) for p in (ROOT / "tests" / "cases")
                                                .glob("*.tptest.yaml")))
    assert (code, out.splitlines()[-1]) == (0, f"{passed} passed, 0 failed")


def test_test_failure_lines_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "policytest" / "failing-on-purpose.yaml"
    code, out, _ = run(capsys, "test", str(path))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{path}:19: FAIL this expectation is wrong on purpose: expected "
                               "allowed, got denied (failing: environment, closest publisher "
                               "'sampleproject-github')")
    assert lines[-1] == "2 passed, 1 failed"
    code, out, _ = run(capsys, "test", "-v", str(path))
    assert f"{path}:8: PASS the release is allowed" in out
    assert "    expected: allowed\n" in out


def test_test_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "test", "--format", "json", str(EXAMPLES))
    assert code == 0
    payload = json.loads(out)
    assert (payload["passed"], payload["failed"], payload["errors"]) == (32, 0, [])
    assert payload["coverage"]["percent"] == 100.0
    assert payload["cases"][0]["name"] == "the release workflow in the pypi environment is allowed"


def test_test_coverage_table_and_minimum(capsys: pytest.CaptureFixture[str]) -> None:
    cases = str(ROOT / "tests" / "cases" / "google.tptest.yaml")
    code, out, err = run(capsys, "test", "--coverage", "--min-coverage", "99", cases)
    assert code == 1
    assert "rule coverage of " in out
    assert "  publisher           rule            passing  failing" in out
    assert "  builder-pinned      email           yes      NO" in out
    assert "rule coverage is below" not in out
    assert "is below the minimum 99%" in err
    assert out.splitlines()[-1].endswith("passed, 0 failed")
    code, _, _ = run(capsys, "test", "--min-coverage", "10", cases)
    assert code == 0


def test_test_invalid_file_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.tptest.yaml"
    bad.write_text("publishers: []\ncases:\n  - {claims: {}, alowed: true}\n")
    code, out, err = run(capsys, "test", str(bad))
    assert code == 3
    assert f"{bad}:3:18: unknown key 'alowed' in cases[0]" in err
    assert "did you mean 'allowed'?" in err
    assert out.splitlines()[-2:] == ["1 invalid test file", "0 passed, 0 failed"]


def test_test_no_files_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "test", str(tmp_path))
    assert code == 1
    assert out == "0 passed, 0 failed\n"
    assert "no test files found" in err


def test_test_min_coverage_must_be_a_percentage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["test", "--min-coverage", "120"])
    assert exc.value.code == 2


# ------------------------------------------------------------------------ explain
def test_explain_denied_shows_the_table_and_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", "--publishers", PUBLISHERS,
                       "--claims", str(CLAIMS / "github-wrong-environment.json"))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "DENIED (github): no trusted publisher matches this token"
    assert "1. sampleproject-github (github) -> sampleproject, sampleproject-extras" in lines
    assert "   5 of 6 rules pass, 4 of 4 lookup keys match" in lines
    row = next(line for line in lines if "FAIL  environment" in line)
    assert row.split() == ["FAIL", "environment", "'pypi'", "(ignoring", "case)", "'release'"]
    assert "   fix (workflow or publisher): Rename the environment: the job ran in 'release', " \
           "the publisher expects 'pypi'." in out
    assert "2. new-plugin-pending (github, pending) -> sampleproject-plugin" in lines


def test_explain_allowed_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", "--publishers", PUBLISHERS, "--top", "1",
                       "--claims", str(CLAIMS / "github-release.json"))
    assert code == 0
    assert out.startswith("ALLOWED: publisher 'sampleproject-github' (github) may publish to")
    assert "(chosen)" in out
    assert "fix" not in out
    assert out.rstrip().endswith("(1 more publisher of this provider; --top shows more)")


def test_explain_json_marks_disclosable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", "--publishers", PUBLISHERS, "--format", "json",
                       "--claims", str(CLAIMS / "github-wrong-environment.json"))
    assert code == 1
    payload = json.loads(out)
    first, second = payload["candidates"]
    env = next(c for c in first["checks"] if c["name"] == "environment")
    assert env == {"name": "environment", "kind": "rule", "passed": False, "expected": "pypi",
                   "expectation": "'pypi' (ignoring case)", "actual": "release",
                   "message": "token has 'release', publisher expects 'pypi' (ignoring case)",
                   "identity": False, "disclosable": True}
    assert first["fixes"][0]["disclosable"] is True
    assert all(not c["disclosable"] for c in second["checks"])


def test_explain_policy_file_stdin_and_audience(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    import io
    import sys

    compiled = tmp_path / "policy.tpp"
    assert main(["compile", PUBLISHERS, "-o", str(compiled)]) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.StringIO((CLAIMS / "github-release.json").read_text()))
    code, out, _ = run(capsys, "explain", "--policy", str(compiled), "--claims", "-",
                       "--audience", "testpypi")
    assert code == 1
    assert "  FAIL aud: token has audience 'pypi', expected 'testpypi'" in out
    assert "  fix (token): The token was requested for PyPI (audience 'pypi')" in out


def test_explain_unknown_issuer(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    token = json.loads((CLAIMS / "github-release.json").read_text())
    token["iss"] = "https://github.example.com/_services/token"
    path = tmp_path / "claims.json"
    path.write_text(json.dumps(token))
    code, out, _ = run(capsys, "explain", "--publishers", PUBLISHERS, "--claims", str(path))
    assert code == 1
    assert "(unknown; its claims are those of a github token)" in out
    assert "GitHub Enterprise Server" in out


def test_explain_invalid_input_exits_3(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    bad = tmp_path / "claims.json"
    bad.write_text("[1, 2]")
    code, _, err = run(capsys, "explain", "--publishers", PUBLISHERS, "--claims", str(bad))
    assert code == 3
    assert "claims must be a JSON object" in err
    code, _, err = run(capsys, "explain", "--publishers", PUBLISHERS, "--claims", str(bad),
                       "--top", "0")
    assert code == 2


def test_explain_token(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from .tokens import fresh, jwks, rsa_key

    key = rsa_key()
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(jwks(key)))
    token = tmp_path / "token.jwt"
    token.write_text(key.sign(fresh(json.loads((CLAIMS / "github-release.json").read_text()))))
    code, out, _ = run(capsys, "explain", "--publishers", PUBLISHERS, "--token", str(token),
                       "--jwks", str(keys), "--top", "1")
    assert code == 0
    assert out.startswith("ALLOWED")
    recorded = FIXTURES / "policytest" / "tokens"
    code, out, _ = run(capsys, "explain", "--publishers", PUBLISHERS, "--format", "json",
                       "--token", str(recorded / "github-release.jwt"),
                       "--jwks", str(recorded / "github-jwks.json"))
    assert code == 1
    payload = json.loads(out)
    assert payload["token_checks"][0]["name"] == "token"
    assert payload["candidates"][0]["publisher"] == "sampleproject-github"
    code, _, err = run(capsys, "explain", "--publishers", PUBLISHERS, "--jwks", str(keys),
                       "--claims", str(CLAIMS / "github-release.json"))
    assert code == 2
    assert "--jwks goes with --token" in err


def _buildkite_table(tmp_path: Path) -> tuple[str, Path]:
    import yaml

    table = yaml.safe_load((ROOT / "tests" / "cases" / "buildkite.tptest.yaml").read_text())
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text(yaml.safe_dump({"publishers": table["publishers"]}))
    claims = tmp_path / "tag-build.json"
    claims.write_text(json.dumps(table["claims"]["tag-build"]))
    return str(publishers), claims


def test_explain_upload_version_decides_version_tag(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    # explain had no --upload-version: a version_tag publisher could not be explained.
    publishers, claims = _buildkite_table(tmp_path)
    code, out, _ = run(capsys, "explain", "--publishers", publishers, "--claims", str(claims),
                       "--upload-version", "1.2.3")
    assert code == 0
    assert out.startswith("ALLOWED: publisher 'publish-step' (buildkite)")
    assert "pass  version_tag               'v1.2.3'" in out
    code, out, _ = run(capsys, "explain", "--publishers", publishers, "--claims", str(claims),
                       "--upload-version", "1.2.4", "--format", "json")
    assert code == 1
    first = json.loads(out)["candidates"][0]
    assert first["publisher"] == "publish-step"
    assert [c["name"] for c in first["checks"] if not c["passed"]] == ["version_tag"]
    assert first["fixes"][0]["text"].startswith(
        "The build is for the tag 'v1.2.3', but the version being uploaded is '1.2.4'")


def test_explain_upload_version_with_a_token(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    from .tokens import fresh, jwks, rsa_key

    publishers, claims = _buildkite_table(tmp_path)
    key = rsa_key()
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(jwks(key)))
    token = tmp_path / "token.jwt"
    token.write_text(key.sign(fresh(json.loads(claims.read_text()))))
    for version, expected in (("1.2.3", 0), ("2.0", 1)):
        code, out, _ = run(capsys, "explain", "--publishers", publishers, "--token", str(token),
                           "--jwks", str(keys), "--upload-version", version)
        assert code == expected, out
    assert "the version being uploaded is '2.0'" in out


def test_explain_and_check_share_upload_version(capsys: pytest.CaptureFixture[str]) -> None:
    helps = []
    for command in ("check", "explain"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        helps.append(text[text.index("--upload-version VERSION the"):].split(" --")[0])
    assert helps[0] == helps[1]
    assert "request.version" in helps[0]


@pytest.mark.parametrize("command", ["check", "explain"])
@pytest.mark.parametrize(("claim", "value", "headline"), [
    ("aud", "testpypi", "DENIED (github): the token was requested for another audience"),
    ("iss", "https://evil.example", "DENIED: the token's issuer is not one accepted here"),
])
def test_a_token_refused_before_any_publisher_is_not_told_no_publisher_matches(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, claim: str,
        value: str, headline: str) -> None:
    # A token for another audience or from an unknown issuer was headed "no trusted
    # publisher matches this token", though no publisher was compared with it.
    claims = json.loads((CLAIMS / "github-release.json").read_text())
    claims[claim] = value
    path = tmp_path / "claims.json"
    path.write_text(json.dumps(claims))
    code, out, _ = run(capsys, command, "--publishers", PUBLISHERS, "--claims", str(path))
    assert code == 1
    assert out.splitlines()[0] == headline
