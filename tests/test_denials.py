"""Denials that say what to change (issue 16): `tppolicy check` lists the failing reasons
first, each with what was expected and what the token had (also for an `or` of unlike
conditions), and a passing negative rule does not report the value it forbids as expected;
and for every denial in the case tables (tests/cases), the first failing reason is the field
to change, with expected, actual and a fix."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import tppolicy
from tppolicy.tools.explain import decision_fixes

from .conftest import EXAMPLES, load_claims, run_cli

CASES = sorted((Path(__file__).parent / "cases").glob("*.tptest.yaml"))


def _write(tmp_path: Path, claims: dict[str, Any]) -> str:
    path = tmp_path / "claims.json"
    path.write_text(json.dumps(claims), "utf-8")
    return str(path)


def test_check_lists_failing_reasons_first(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    claims = _write(tmp_path, {**load_claims("github-release"), "environment": "release"})
    publishers = str(EXAMPLES / "publishers.yaml")
    code, out, _ = run_cli(capsys, "check", "--publishers", publishers, "--claims", claims)
    assert code == 1
    lines = out.splitlines()
    assert lines[2].startswith("  FAIL  environment: token has 'release'")
    assert lines[3].startswith("        fix: Rename the environment")
    assert all(line.startswith("  pass") for line in lines[4:9])
    assert lines[-1].startswith("  next: `tppolicy explain`")
    code, out, _ = run_cli(capsys, "check", "--publishers", publishers, "--claims", claims,
                           "--format", "json")
    reasons = json.loads(out)["reasons"]
    assert [r["passed"] for r in reasons] == [False] + [True] * (len(reasons) - 1)
    first = reasons[0]
    assert (first["rule"], first["expected"], first["actual"]) == ("environment", "pypi",
                                                                   "release")
    assert first["fix"]["text"].startswith("Rename the environment")
    # `event_name != "pull_request_target"` passed: it does not expect the value it forbids
    event = next(r for r in reasons if r["rule"] == "event_name")
    assert (event["expected"], event["actual"]) == (None, "release")


def test_explain_still_says_what_a_negative_rule_rules_out(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    claims = _write(tmp_path, load_claims("github-release"))
    code, out, _ = run_cli(capsys, "explain", "--publishers", str(EXAMPLES / "publishers.yaml"),
                           "--claims", claims)
    assert code == 0
    assert any("event_name" in line and "anything but 'pull_request_target'" in line
               for line in out.splitlines())


def _table_decisions() -> list[tuple[str, tppolicy.Policy, dict[str, Any],
                                     dict[str, Any] | None, Any]]:
    found = []
    for path in CASES:
        table = yaml.safe_load(path.read_text("utf-8"))
        policy = tppolicy.compile_publishers_text(
            yaml.safe_dump({"publishers": table["publishers"]}, sort_keys=False), path.name,
            issuers=table.get("issuers") or {})
        for case in table["cases"]:
            if case["allowed"]:
                continue
            claims = dict(table["claims"][case["claims"]])
            claims.update(case.get("set") or {})
            for name in case.get("unset") or []:
                claims.pop(name, None)
            request = case.get("request")
            decision = policy.evaluate(claims, audience=case.get("audience", "pypi"),
                                       explain=True, request=request)
            found.append((f"{path.name}: {case['name']}", policy, claims, request, decision))
    return found


def test_an_or_of_unlike_conditions_has_expected_and_actual() -> None:
    found = {name: decision for name, _, _, _, decision in _table_decisions()}
    gitlab = next(r for r in found["gitlab.tptest.yaml: sub for another project is denied"]
                  .reasons if not r.passed)
    assert gitlab.rule == "sub"
    assert gitlab.actual == "project_path:acme/other:ref_type:tag:ref:v1.2.3"
    assert gitlab.expected == ("'project_path:acme/sampleproject' (ignoring case) or a value "
                               "starting with 'project_path:acme/sampleproject:'")
    empty = next(r for r in found["github.tptest.yaml: ref and sha both empty: denied"].reasons
                 if not r.passed)
    assert (empty.rule, empty.actual) == ("job_workflow_ref", {"ref": "", "sha": ""})
    assert empty.expected == "ref anything but '' or sha anything but ''"


# Denials whose first failing reason does not (yet) name the field to change with a fix:
# none left (a new one fails this test).
KNOWN_GAPS: set[str] = set()


def test_every_denial_in_the_case_tables_says_what_to_change() -> None:
    """Refusals before any publisher (iss, aud, claims) too: the fixes `explain` gives."""
    problems = []
    checked = 0
    audiences = {}
    for path in CASES:
        table = yaml.safe_load(path.read_text("utf-8"))
        for case in table["cases"]:
            audiences[f"{path.name}: {case['name']}"] = case.get("audience", "pypi")
    for name, policy, claims, request, decision in _table_decisions():
        first = next(r for r in decision.reasons if not r.passed)
        checked += 1
        fixes = decision_fixes(policy, decision, claims, request=request,
                               audience=audiences[name])
        missing = []
        if first.expected is None:
            missing.append("expected")
        if first.actual is None and claims.get(first.rule) is not None:
            missing.append("actual")  # None is right only for a claim the token lacks
        if first.rule not in fixes:
            missing.append("fix")
        elif fixes[first.rule].text.endswith("Change the publisher or the CI job so that they "
                                             "agree."):
            missing.append("fix from the provider file (only the plain one)")
        if missing and name not in KNOWN_GAPS:
            problems.append(f"{name}: {first.rule}: no {', '.join(missing)}")
    assert checked >= 150
    assert problems == []


def test_a_workflow_mismatch_marks_the_differing_file_and_shortens_the_refs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    claims = load_claims("github-release")
    claims["job_workflow_ref"] = claims["job_workflow_ref"].replace("release.yml", "other.yml")
    code, out, _ = run_cli(capsys, "check", "--publishers", str(EXAMPLES / "publishers.yaml"),
                           "--claims", _write(tmp_path, claims), "--format", "json")
    assert code == 1
    first = json.loads(out)["reasons"][0]
    assert first["rule"] == "job_workflow_ref"
    assert first["actual"] == claims["job_workflow_ref"]  # the values themselves stay whole
    message = first["message"]
    assert message.endswith("; differs at 'other.yml', the publisher has 'release.yml'")
    assert message.startswith("token has '…/workflows/other.yml@")
    assert "octo-org/sampleproject" not in message  # the common start is elided
    assert not re.search(r"[0-9a-f]{13}", message)  # commit shas cut to 12 digits
    assert len(message) < 220


def test_a_short_mismatch_is_shown_whole() -> None:
    from tppolicy.decide.reasons import _mismatch

    assert _mismatch("pypi", ["release"]) is None
    long = "a/b/c/d/e/f/.github/workflows/x.yml@refs/heads/main-and-some-more-words"
    assert _mismatch(long, [long.replace("x.yml", "y.yml")]) == (
        "token has '…/workflows/x.yml@refs/heads/main-and-some-more-words', publisher expects "
        "'…/workflows/y.yml@refs/heads/main-and-some-more-words'; differs at 'x.yml', the "
        "publisher has 'y.yml'")


def test_the_same_identity_in_another_case_lists_each_publisher(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text(TWO, "utf-8")
    claims = load_claims("github-release")
    claims.update(repository="Octo-Org/sampleproject", repository_owner="Octo-Org",
                  job_workflow_ref=claims["job_workflow_ref"].replace("octo-org", "Octo-Org"))
    code, out, _ = run_cli(capsys, "check", "--publishers", str(publishers), "--claims",
                           _write(tmp_path, claims), "--format", "json")
    assert code == 1
    payload = json.loads(out)
    assert payload["closest_publisher"] == "prod"
    assert [p["publisher"] for p in payload["same_identity"]] == ["staging"]


def _google() -> tuple[tppolicy.Engine, dict[str, Any]]:
    table = yaml.safe_load((Path(__file__).parent / "cases/google.tptest.yaml")
                           .read_text("utf-8"))
    engine = tppolicy.Engine(publishers=table["publishers"])
    return engine, dict(table["claims"]["locked-sa"])


def test_a_google_token_with_another_sub_is_not_told_the_pinned_sub() -> None:
    engine, claims = _google()
    result = engine.check_claims({**claims, "sub": "100000000000000000001"})
    assert not result.allowed
    operator = next(r for r in result.decision.reasons if not r.passed)
    assert operator.expected == "104455667788990011223"  # the operator's view keeps it
    shown = result.disclosed()
    assert shown.closest == "locked"  # the same account (e-mail): the near miss is named
    failed = [r for r in shown.reasons if not r.passed]
    assert [r.rule for r in failed] == ["sub"]
    assert failed[0].expected is None and failed[0].actual == "100000000000000000001"
    assert "104455667788990011223" not in json.dumps(result.to_json())
    assert "the publisher's value is not disclosed" in failed[0].message


TWO = """\
publishers:
  - {name: prod, provider: github, projects: [sampleproject], repository_owner: octo-org,
     repository_name: sampleproject, repository_owner_id: "65",
     workflow_filename: release.yml, environment: pypi}
  - {name: staging, provider: github, projects: [sampleproject], repository_owner: octo-org,
     repository_name: sampleproject, repository_owner_id: "65",
     workflow_filename: staging.yml, environment: testpypi}
  - {name: stranger, provider: github, projects: [other], repository_owner: mallory,
     repository_name: other, repository_owner_id: "666",
     workflow_filename: release.yml, environment: release}
"""


def test_check_lists_what_each_publisher_of_the_same_identity_expects(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text(TWO, "utf-8")
    claims = _write(tmp_path, {**load_claims("github-release"), "environment": "release"})
    code, out, _ = run_cli(capsys, "check", "--publishers", str(publishers), "--claims", claims)
    assert code == 1
    also = [line for line in out.splitlines() if line.startswith("  also for this identity")]
    assert len(also) == 1 and "publisher 'staging'" in also[0]
    assert "environment: token has 'release', publisher expects 'testpypi'" in also[0]
    assert "stranger" not in out  # another identity's publisher is not listed
    # the decision carries them too (the server's refusal lists them): the holder's view
    policy = tppolicy.compile_publishers_file(publishers)
    decision = policy.evaluate(json.loads(Path(claims).read_text("utf-8")), explain=True)
    [(label, reasons)] = decision.disclosed().also
    assert label == "staging"
    assert {r.rule for r in reasons} == {"environment", "job_workflow_ref"}
    code, out, _ = run_cli(capsys, "check", "--publishers", str(publishers), "--claims", claims,
                           "--format", "json")
    payload = json.loads(out)
    assert payload["closest_publisher"] == "prod"
    [staging] = payload["same_identity"]
    assert staging["publisher"] == "staging"
    assert {f["rule"] for f in staging["failed"]} >= {"environment", "job_workflow_ref"}


GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
FORGE_ISSUER = "https://forge.example.com"
OWNER_CASE = {"repository": "Octo-Org/sampleproject", "repository_owner": "Octo-Org",
              "job_workflow_ref": "Octo-Org/sampleproject/.github/workflows/release.yml"
                                  "@refs/tags/v1.2.3"}


@pytest.mark.parametrize("name", ["github", "forge"])
def test_a_token_spelling_the_owner_otherwise_shares_the_identity(name: str,
                                                                  tmp_path: Path) -> None:
    """GitHub names ignore case (`exact_case` in the provider file): a token for
    'Octo-Org/sampleproject' is from the publisher's own repository. PyPI's lookup is exact,
    so it is denied, but its holder is told the publisher's spelling and the fix; a copy
    of the provider file under another name does the same."""
    extra = []
    if name != "github":
        text = (Path(__file__).parent.parent / "policies" / "github.tpp").read_text("utf-8")
        extra.append(tmp_path / f"{name}.tpp")
        text = text.replace("provider github {", f"provider {name} {{")
        extra[0].write_text(text.replace(GITHUB_ISSUER, FORGE_ISSUER), "utf-8")
    providers = tppolicy.load_providers(extra)
    engine = tppolicy.Engine(publishers=[{
        "name": "release", "provider": name, "projects": ["sampleproject"],
        "repository_owner": "octo-org", "repository_name": "sampleproject",
        "repository_owner_id": "65", "workflow_filename": "release.yml",
        "environment": "pypi"}], providers=providers)
    claims = {**load_claims("github-release"), **OWNER_CASE,
              "iss": GITHUB_ISSUER if name == "github" else FORGE_ISSUER}
    result = engine.check_claims(claims)
    assert not result.allowed
    shown = result.disclosed()
    assert shown.closest == "release"
    first = next(r for r in shown.reasons if not r.passed)
    assert (first.rule, first.expected, first.actual) == (
        "repository", "octo-org/sampleproject", "Octo-Org/sampleproject")
    # another owner id: another account whose name differs in case, a stranger
    other = engine.check_claims({**claims, "repository_owner_id": "666"}).disclosed()
    assert other.closest is None and [r.rule for r in other.reasons] == ["publisher"]


GITLAB_ONLY = """\
publishers:
  - {name: gl, provider: gitlab, projects: [sampleproject], namespace: acme,
     project: sampleproject, workflow_filepath: .gitlab-ci.yml}
"""


def test_a_token_of_another_provider_says_which_and_what_the_file_holds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text(GITLAB_ONLY, "utf-8")
    claims = _write(tmp_path, load_claims("github-release"))
    code, out, _ = run_cli(capsys, "check", "--publishers", str(publishers), "--claims", claims,
                           "--format", "json")
    assert code == 1
    [reason] = json.loads(out)["reasons"]
    assert (reason["rule"], reason["expected"], reason["actual"]) == ("publisher", ["gitlab"],
                                                                      "github")
    assert reason["message"].endswith("the token comes from github, and there are gitlab "
                                      "publishers only")
    assert reason["fix"]["text"].startswith("The token comes from github (issuer "
                                            "'https://token.actions.githubusercontent.com'), "
                                            "but no publisher of this file is a github "
                                            "publisher: it holds gitlab publishers only.")
    # the token's holder is not told which providers' publishers there are
    engine = tppolicy.Engine(publishers=yaml.safe_load(GITLAB_ONLY)["publishers"])
    shown = engine.check_claims(load_claims("github-release")).to_json()
    assert shown["reasons"] == [{"rule": "publisher", "passed": False, "expected": None,
                                 "actual": None, "message": "valid token, but no "
                                 "corresponding github publisher"}]


def test_a_refusal_before_any_publisher_says_what_to_change(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    claims = load_claims("github-release")
    claims.pop("jti")
    claims["repository_owner_id"] = 65
    code, out, _ = run_cli(capsys, "check", "--publishers", str(EXAMPLES / "publishers.yaml"),
                           "--claims", _write(tmp_path, claims), "--format", "json")
    assert code == 1
    reasons = json.loads(out)["reasons"]
    assert [r["rule"] for r in reasons] == ["claims", "claims"]
    # each claims reason carries the one fix naming every claim to pass
    assert reasons[0]["fix"] == reasons[1]["fix"]
    assert reasons[0]["fix"]["text"].startswith(
        "claim 'repository_owner_id' is an integer (65), expected a string; missing claim "
        "'jti': every github token carries these claims with these types.")
    code, out, _ = run_cli(capsys, "check", "--publishers", str(EXAMPLES / "publishers.yaml"),
                           "--claims", _write(tmp_path, load_claims("github-release")),
                           "--audience", "testpypi")
    assert code == 1
    assert "run with --audience pypi to check it against PyPI" in out


def test_only_a_difference_of_ascii_case_on_exact_case_fields_is_set_aside() -> None:
    from tppolicy.decide.reasons import differs_only_in_case

    assert differs_only_in_case("octo-org", "Octo-Org")
    assert not differs_only_in_case("octo-org", "octo-org")  # the same: nothing differs
    assert not differs_only_in_case("kube", "\u212aube")  # a Kelvin sign is not a 'K'
    assert not differs_only_in_case("65", 65)
    providers = tppolicy.load_providers()
    assert providers["github"].case_aside == {"repository", "repository_owner",
                                              "lookup.repository_owner",
                                              "lookup.repository_name"}
    # the id and the workflow are not declared exact_case: never set aside
    assert providers["google"].case_aside == frozenset()
