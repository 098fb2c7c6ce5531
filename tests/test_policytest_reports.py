"""`tppolicy test --format junit|github` (issue 14): reports CI systems read."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tppolicy.tools.testrunner import github_annotations, run_files, to_junit_xml

from .conftest import EXAMPLES, ROOT
from .conftest import run_cli as run

FIXTURES = ROOT / "tests" / "fixtures" / "policytest"
FAILING = FIXTURES / "failing-on-purpose.yaml"


@pytest.fixture
def invalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)
    path = tmp_path / "broken, on: purpose.tptest.yaml"
    path.write_text("publishers: []\nclaims: {}\ncases: []\n")
    return path


def test_junit_xml(invalid: Path) -> None:
    report = run_files([EXAMPLES / "publishers.tptest.yaml", FAILING, invalid], root=ROOT.parent)
    root = ET.fromstring(to_junit_xml(report).split("\n", 1)[1])
    assert root.tag == "testsuites"
    assert root.get("failures") == "1" and root.get("errors") == "1"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [str(EXAMPLES / "publishers.tptest.yaml"),
                                               str(FAILING), str(invalid)]
    examples, failing, broken = suites
    assert examples.get("failures") == "0"
    assert int(examples.get("tests") or 0) == len(examples.findall("testcase")) > 20
    [failure] = failing.findall("testcase/failure")
    assert "environment" in (failure.get("message") or "")
    assert "expected: allowed" in (failure.text or "")
    failed_case = failing.find("testcase[failure]")
    assert failed_case is not None and failed_case.get("line") == "19"
    [error] = broken.findall("testcase/error")
    assert "'cases' must be a non-empty list" in (error.text or "")
    assert sum(int(s.get("tests") or 0) for s in suites) == int(root.get("tests") or 0) + 1


def test_github_annotations_escape_what_github_reads(invalid: Path) -> None:
    report = run_files([FAILING, invalid], root=ROOT.parent)
    lines = github_annotations(report)
    assert len(lines) == 2
    failing, broken = lines
    assert failing.startswith(f"::error file={FAILING},line=19,title=tppolicy test%3A ")
    message = failing.split("::", 2)[2]
    assert "\n" not in message and "%0Aexpected: allowed" in message
    assert broken.startswith("::error file=") and "%2C on%3A purpose" in broken.split("::")[1]


def test_cli_formats(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
                     ) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = run(capsys, "test", "--format", "junit", str(FAILING))
    assert code == 1
    assert out.startswith("<?xml") and "<failure" in out
    code, out, _ = run(capsys, "test", "--format", "github", str(FAILING))
    assert code == 1
    first, *rest = out.splitlines()
    assert first.startswith("::error file=") and rest[-1] == "2 passed, 1 failed"
