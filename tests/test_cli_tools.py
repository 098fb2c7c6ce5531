"""`tppolicy lint`, `tppolicy test` and `tppolicy explain` as a user runs them: exit codes,
human, JSON and SARIF output, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tppolicy._cli import main

from .conftest import EXAMPLES, ROOT

FIXTURES = ROOT / "tests" / "fixtures"
PUBLISHERS = str(EXAMPLES / "publishers.yaml")
CLAIMS = EXAMPLES / "claims"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


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


def test_test_the_provider_case_tables(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "test", "--pattern", "*.yaml", str(ROOT / "tests" / "cases"))
    assert code == 0
    passed = int(out.splitlines()[-1].split()[0])
    assert passed >= 150
    code, out, _ = run(capsys, "test", *sorted(str(p) for p in (ROOT / "tests" / "cases")
                                                .glob("*.yaml")))
    assert (code, out.splitlines()[-1]) == (0, f"{passed} passed, 0 failed")


def test_test_failure_lines_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "policytest" / "failing.tptest.yaml"
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
    cases = str(ROOT / "tests" / "cases" / "google.yaml")
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
    bad.write_text("publishers: []\ncases:\n  - {token: t.jwt, allowed: true}\n")
    code, out, err = run(capsys, "test", str(bad))
    assert code == 3
    assert f"{bad}:3:6: token fixtures are not supported yet" in err
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
