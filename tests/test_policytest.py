"""`tppolicy.tools.testrunner`: discovery, the case-table format, results and rule coverage, and
the repository's own tables (tests/cases) and examples run through it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

import tppolicy
from tppolicy.tools.testrunner import (
    PolicyTestError,
    Report,
    discover,
    run_files,
)

from .conftest import EXAMPLES, ROOT

CASES = ROOT / "tests" / "cases"
FIXTURES = ROOT / "tests" / "fixtures" / "policytest"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


PUBLISHERS = """
publishers:
  - name: release
    provider: github
    projects: [sampleproject]
    repository_owner: octo-org
    repository_name: sampleproject
    repository_owner_id: "65"
    workflow_filename: release.yml
    environment: pypi
"""

CASE_HEAD = """
publishers: publishers.yaml
claims:
  release: claims.json
cases:
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "publishers.yaml", PUBLISHERS)
    (tmp_path / "claims.json").write_text((EXAMPLES / "claims" / "github-release.json")
                                          .read_text())
    return tmp_path


def errors_of(report: Report) -> list[str]:
    return [d.render() for e in report.errors for d in e.diagnostics]


# ------------------------------------------------------------------- discovery
def test_discover_skips_hidden_folders_and_virtual_environments(tmp_path: Path) -> None:
    for name in ("a.tptest.yaml", "sub/b.tptest.yaml", ".hidden/c.tptest.yaml",
                 "venv/d.tptest.yaml", "node_modules/e.tptest.yaml", "sub/other.yaml"):
        write(tmp_path / name, "x: 1\n")
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    found = [p.relative_to(tmp_path).as_posix() for p in discover([tmp_path])]
    assert found == ["a.tptest.yaml", "sub/b.tptest.yaml"]
    assert [p.name for p in discover([tmp_path / "sub"], "*.yaml")] == ["b.tptest.yaml",
                                                                      "other.yaml"]
    explicit = tmp_path / "sub" / "other.yaml"
    assert discover([explicit, explicit]) == [explicit]


# ------------------------------------------------------ the repository's tables
def test_the_provider_case_tables_pass() -> None:
    files = discover([CASES])
    report = run_files(files)
    total = sum(len(yaml.safe_load(f.read_text())["cases"]) for f in files)
    assert not report.errors, errors_of(report)
    assert (report.passed, report.failed) == (total, 0)
    assert total >= 245


def test_the_examples_pass_with_full_coverage() -> None:
    report = run_files(discover([EXAMPLES]))
    assert report.files == (str(EXAMPLES / "publishers.tptest.yaml"),)
    assert not report.errors, errors_of(report)
    assert report.failed == 0 and report.passed >= 30
    assert report.coverage_percent == 100.0
    assert next(c for c in report.coverage if c.publisher == "new-plugin-pending"
            and c.rule == "environment").failed is None  # folds to true: n/a


# ------------------------------------------------------------------- results
def test_failures_say_where_and_what(project: Path) -> None:
    test = write(project / "p.tptest.yaml", CASE_HEAD + """
      - name: passes
        claims: release
        allowed: true
        publisher: release
      - name: wrong decision
        claims: release
        set: {environment: staging}
        allowed: true
      - name: wrong rule
        claims: release
        set: {environment: staging}
        allowed: false
        failing: [repository]
      - name: wrong publisher and pending
        claims: release
        allowed: true
        publisher: other
        pending: true
      - name: wrong reason
        claims: release
        set: {environment: staging}
        allowed: false
        reason_contains: nope
    """)
    report = run_files([test])
    assert (report.passed, report.failed) == (1, 4)
    failed = [r for r in report.results if not r.passed]
    assert [(r.line, r.name) for r in failed] == [
        (10, "wrong decision"), (14, "wrong rule"), (19, "wrong publisher and pending"),
        (24, "wrong reason")]
    assert failed[0].problems[0].startswith(
        "expected allowed, got denied (failing: environment, closest publisher 'release'): "
        "environment: token has 'staging'")
    assert failed[1].problems == (
        "expected failing rules [repository], got [environment]: environment: token has "
        "'staging', publisher expects 'pypi' (ignoring case)",)
    assert failed[2].problems == ("expected publisher 'other', got 'release'",
                                  "expected pending true, got false")
    assert failed[3].problems[0].startswith("expected a reason containing 'nope', got: ")
    assert failed[0].expected == "allowed"
    assert failed[0].actual.startswith("denied (failing: environment")


def test_a_case_expects_a_fix(project: Path) -> None:
    """`fix:` is a substring of one of the fixes `tppolicy check` gives (issue 16)."""
    test = write(project / "p.tptest.yaml", CASE_HEAD + """
      - name: the fix check gives
        claims: release
        set: {environment: staging}
        allowed: false
        fix: "Set `environment: pypi` in the publishing job"
      - name: another fix
        claims: release
        set: {environment: staging}
        allowed: false
        fix: "Add a publisher"
      - name: the fix for an unknown issuer
        claims: release
        set: {iss: "https://ci.example.com"}
        allowed: false
        fix: "unknown GitHub issuer: 'https://ci.example.com'"
      - name: the fix for another audience
        claims: release
        audience: testpypi
        allowed: false
        fix: "run with --audience pypi to check it against PyPI"
    """)
    report = run_files([test])
    assert [r.passed for r in report.results] == [True, False, True, True]
    assert report.results[1].problems == (
        "expected a fix containing 'Add a publisher', got: Rename the environment: the job ran "
        "in 'staging', the publisher expects 'pypi'. Set `environment: pypi` in the publishing "
        "job, or change the publisher's environment to 'staging'.",)
    invalid = write(project / "q.tptest.yaml", CASE_HEAD + """
      - claims: release
        allowed: true
        fix: "a fix"
      - claims: release
        allowed: false
        fix: [a, list]
    """)
    errors = errors_of(run_files([invalid]))
    assert len(errors) == 2
    assert errors[0].startswith(f"{invalid}:8:9: cases[0]: 'fix' applies to denied cases")
    assert errors[1].startswith(f"{invalid}:11:14: cases[1]: 'fix' must be a string")


def test_inline_publishers_inline_claims_and_audience(tmp_path: Path) -> None:
    test = write(tmp_path / "inline.tptest.yaml", PUBLISHERS + """
audience: testpypi
cases:
  - claims: {iss: "https://token.actions.githubusercontent.com", aud: testpypi}
    allowed: false
    failing: [claims]
    """)
    report = run_files([test])
    assert not report.errors, errors_of(report)
    assert report.results[0].name == "cases[0]"
    assert report.results[0].passed, report.results[0].problems


def test_inline_publishers_errors_point_into_the_test_file(tmp_path: Path) -> None:
    test = write(tmp_path / "bad.tptest.yaml", "# comment\n" + PUBLISHERS.replace(
        'repository_owner_id: "65"', "repository_owner_id: 65") + """
claims: {}
cases:
  - claims: {}
    allowed: false
    """)
    report = run_files([test])
    assert isinstance(report.errors[0], tppolicy.ConfigError)
    lines = test.read_text().splitlines()
    assert lines[8] == "    repository_owner_id: 65"
    assert errors_of(report)[0].startswith(f"{test}:9:26: publishers[0].repository_owner_id")


def test_policy_file(tmp_path: Path) -> None:
    policy = tmp_path / "policy.tpp"
    policy.write_text(tppolicy.format_policy(tppolicy.compile_publishers_text(PUBLISHERS)))
    test = write(tmp_path / "policy.tptest.yaml", """
        policy: policy.tpp
        claims:
          release: ../release.json
        cases:
          - {claims: release, allowed: true, publisher: release}
    """)
    (tmp_path.parent / "release.json").write_text(
        (EXAMPLES / "claims" / "github-release.json").read_text())
    report = run_files([test], root=tmp_path.parent)  # ../release.json is inside the tree
    assert not report.errors, errors_of(report)
    assert report.passed == 1
    assert report.coverage[0].policy == str(policy)


# ------------------------------------------------------------------- coverage
def test_coverage_counts_each_rule_passing_and_failing(project: Path) -> None:
    test = write(project / "c.tptest.yaml", CASE_HEAD + """
      - {claims: release, allowed: true}
      - {claims: release, set: {environment: x}, allowed: false, failing: [environment]}
    """)
    report = run_files([test])
    rows = {c.rule: (c.passed, c.failed) for c in report.coverage}
    assert rows["environment"] == (True, True)
    assert rows["repository"] == (True, False)
    assert report.coverage_percent == pytest.approx(100 * 7 / 12)


def test_coverage_of_a_publisher_file_shared_by_two_test_files(project: Path) -> None:
    one = write(project / "one.tptest.yaml", CASE_HEAD + "  - {claims: release, allowed: true}\n")
    two = write(project / "two.tptest.yaml", CASE_HEAD + """
      - {claims: release, set: {event_name: pull_request_target}, allowed: false}
    """)
    report = run_files([one, two])
    assert len(report.coverage) == 6
    assert {c.rule for c in report.coverage if c.failed} == {"event_name"}


# ---------------------------------------------------------------- invalid files
@pytest.mark.parametrize(("body", "message"), [
    ("publishers: publishers.yaml\ncases:\n  - {claims: release, allowed: true}\n",
     "no claims set named 'release'"),
    (CASE_HEAD + "  - {claims: relase, allowed: true}\n", "did you mean 'release'?"),
    (CASE_HEAD + "  - {claims: release}\n", "missing 'allowed'"),
    (CASE_HEAD + "  - {claims: release, allowed: yes please}\n", "'allowed' must be true or false"),
    (CASE_HEAD + "  - {claims: release, allowed: true, failng: []}\n",
     "unknown key 'failng' in cases[0]"),
    (CASE_HEAD + "  - {claims: release, allowed: false, publisher: x}\n",
     "'publisher' applies to allowed cases"),
    (CASE_HEAD + "  - {token: missing.jwt, allowed: true}\n",
     "cannot read the token file 'missing.jwt'"),
    (CASE_HEAD + "  - {token: claims.json, claims: release, allowed: true}\n",
     "a token case has no 'claims'"),
    (CASE_HEAD.replace("cases:", "jwks: [x]\ncases:") + "  - {claims: release, allowed: true}\n",
     "'jwks' must map issuer URLs to JWKS files"),
    (CASE_HEAD.replace("cases:", "now: soon\ncases:") + "  - {claims: release, allowed: true}\n",
     "'now' must be a number"),
    (CASE_HEAD.replace("claims:\n", "publishers2: x\nclaims:\n") + "  - {claims: release}\n",
     "unknown key 'publishers2'"),
    ("claims: {}\ncases:\n  - {claims: {}, allowed: true}\n",
     "exactly one of 'publishers' and 'policy'"),
    (CASE_HEAD, "'cases' must be a non-empty list"),
    ("publishers: publishers.yaml\n", "missing 'cases'"),
    ("- a list\n", "a test file is a mapping"),
    ("cases: [\n", "invalid YAML"),
    ("cases: !!python/object:os.system {}\n", "invalid YAML"),
    ("publishers: publishers.yaml\nclaims:\n  release: missing.json\ncases:\n"
     "  - {claims: release, allowed: true}\n", "cannot read the claims file 'missing.json'"),
])
def test_invalid_test_files(project: Path, body: str, message: str) -> None:
    test = write(project / "bad.tptest.yaml", body)
    report = run_files([test])
    assert report.results == ()
    assert len(report.errors) == 1
    assert isinstance(report.errors[0], PolicyTestError)
    assert message in "\n".join(errors_of(report))


def test_a_missing_file_is_an_error_and_the_others_still_run(project: Path) -> None:
    good = write(project / "good.tptest.yaml",
                 CASE_HEAD + "  - {claims: release, allowed: true}\n")
    report = run_files([project / "missing.tptest.yaml", good])
    assert "cannot read" in errors_of(report)[0]
    assert report.passed == 1


def test_report_json(project: Path) -> None:
    test = write(project / "j.tptest.yaml", CASE_HEAD + "  - {claims: release, allowed: true}\n")
    payload = run_files([test]).to_json()
    assert payload["passed"] == 1 and payload["failed"] == 0
    assert payload["cases"][0]["decision"]["publisher"] == "release"
    assert set(payload["coverage"]) == {"percent", "covered", "outcomes", "rules"}


def test_fixture_case_tables_in_the_repository() -> None:
    # The failing fixture is not named like a test file: `tppolicy test` from the
    # repository root must pass (issue 16); given by name, it runs.
    report = run_files([*discover([FIXTURES]), FIXTURES / "failing-on-purpose.yaml"])
    assert not report.errors, errors_of(report)
    assert (report.passed, report.failed) == (5, 1)


# --------------------------------------------------------------- token fixtures
def test_recorded_token_fixtures() -> None:
    report = run_files([FIXTURES / "tokens.tptest.yaml"])
    assert not report.errors, errors_of(report)
    assert [(r.name, r.passed) for r in report.results] == [
        ("the signed release token is allowed", True),
        ("the signed token of another environment is denied", True),
        ("a token for PyPI is refused when checking for TestPyPI", True)]
    assert report.results[0].decision is not None
    assert report.results[0].decision.publisher == "sampleproject-github"


def test_token_fixtures_are_verified(project: Path) -> None:
    from .tokens import GITHUB, jwks, rsa_key

    good, other = rsa_key("good"), rsa_key("other")
    claims = json.loads((EXAMPLES / "claims" / "github-release.json").read_text())
    (project / "keys.json").write_text(json.dumps(jwks(good)))
    (project / "good.jwt").write_text(good.sign(claims))
    (project / "forged.jwt").write_text(other.sign(claims))
    (project / "garbage.jwt").write_text("not a token")
    head = f'publishers: publishers.yaml\njwks:\n  "{GITHUB}": keys.json\n'
    test = write(project / "t.tptest.yaml", head + """cases:
  - {token: good.jwt, allowed: true, publisher: release}
  - {token: forged.jwt, allowed: false, failing: [token]}
  - {token: garbage.jwt, allowed: false, failing: [token]}
""")
    report = run_files([test])
    assert not report.errors, errors_of(report)
    assert [r.passed for r in report.results] == [True, True, True], report.results
    late = write(project / "late.tptest.yaml", head + "now: 4000000000\n"
                 "cases:\n  - {token: good.jwt, allowed: true}\n")
    result = run_files([late]).results[0]
    assert not result.passed
    assert "expired" in result.problems[0]
    # keys are never fetched: an issuer without keys in 'jwks' is refused
    offline = write(project / "offline.tptest.yaml", "publishers: publishers.yaml\n"
                    "cases:\n  - {token: good.jwt, allowed: false, failing: [token]}\n")
    offline_report = run_files([offline])
    assert offline_report.results[0].passed, offline_report.results[0].problems
