"""`tppolicy.tools.lint`: every code with a case that finds it and one that does not, locations,
and the SARIF log validated against the official SARIF 2.1.0 JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator

import tppolicy
from tppolicy.language.parse import parse_policy
from tppolicy.language.printer import format_policy
from tppolicy.language.providers import load_providers
from tppolicy.tools.lint import (
    CODES,
    Finding,
    lint_file,
    lint_policy_text,
    lint_publishers_text,
    pep503,
    to_sarif,
    ultranormalize,
)

from .conftest import EXAMPLES, ROOT

SARIF_SCHEMA = ROOT / "tests" / "fixtures" / "sarif" / "sarif-schema-2.1.0.json"
LINT_FIXTURES = ROOT / "tests" / "fixtures" / "lint"


OWNER_RULE = 'rule repository_owner: claims.repository_owner == "octo-org"'
OWNER_ID_RULE = 'rule repository_owner_id: claims.repository_owner_id == "65"'


def github(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": "release", "provider": "github", "projects": ["sampleproject"],
        "repository_owner": "octo-org", "repository_name": "sampleproject",
        "repository_owner_id": "65", "workflow_filename": "release.yml", "environment": "pypi",
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


def gitlab(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": "mirror", "provider": "gitlab", "projects": ["sampleproject"],
        "namespace": "acme", "project": "sampleproject", "workflow_filepath": ".gitlab-ci.yml",
        "environment": "pypi",
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


def lint_yaml(*entries: dict[str, Any], **kwargs: Any) -> tuple[Finding, ...]:
    text = yaml.safe_dump({"publishers": list(entries)}, sort_keys=False)
    return lint_publishers_text(text, "publishers.yaml", **kwargs)


def codes(findings: tuple[Finding, ...]) -> list[str]:
    return [f.code for f in findings]


def compiled(*entries: dict[str, Any]) -> str:
    text = yaml.safe_dump({"publishers": list(entries)}, sort_keys=False)
    return tppolicy.format_policy(tppolicy.compile_publishers_text(text))


def test_codes_are_stable_and_documented() -> None:
    assert list(CODES) == [f"TPP{n:03d}" for n in range(1, 15)]
    for code in CODES.values():
        assert code.level in ("error", "warning", "note")
        assert code.summary and code.fix and code.name
    docs = (ROOT / "docs" / "tools.md").read_text()
    for name in CODES:
        assert f"| {name} " in docs, f"{name} is not in docs/tools.md"


def test_clean_file_has_no_findings() -> None:
    assert lint_yaml(github(), gitlab()) == ()


# ------------------------------------------------------------------------ TPP001
def test_tpp001_publisher_without_environment() -> None:
    found = lint_yaml(github(environment=None), gitlab(environment=""))
    assert codes(found) == ["TPP001", "TPP001"]
    assert "accepts any environment" in found[0].message
    assert found[0].level == "warning"


def test_tpp001_location_points_at_the_environment_key_or_the_entry() -> None:
    text = ("publishers:\n"
            "  - name: release\n"
            "    provider: github\n"
            "    projects: [sampleproject]\n"
            "    repository_owner: octo-org\n"
            "    repository_name: sampleproject\n"
            "    repository_owner_id: '65'\n"
            "    workflow_filename: release.yml\n"
            "  - name: other\n"
            "    provider: github\n"
            "    projects: [other]\n"
            "    repository_owner: octo-org\n"
            "    repository_name: other\n"
            "    repository_owner_id: '65'\n"
            "    workflow_filename: release.yml\n"
            "    environment: ''\n")
    found = lint_publishers_text(text, "p.yaml")
    assert [(f.code, f.span.line, f.span.column) for f in found] == [
        ("TPP001", 2, 11), ("TPP001", 16, 18)]


def test_tpp001_not_for_publishers_with_an_environment_or_without_the_field() -> None:
    google = {"name": "g", "provider": "google", "projects": ["x"],
              "email": "a@b.iam.gserviceaccount.com"}
    assert "TPP001" not in codes(lint_yaml(github(), gitlab(), google))


def test_tpp001_policy_file_publisher_whose_rules_ignore_the_environment() -> None:
    text = compiled(github(environment=None))
    assert codes(lint_policy_text(text, "p.tpp")) == ["TPP001"]
    assert codes(lint_policy_text(compiled(github()), "p.tpp")) == []


# ------------------------------------------------------------------------ TPP002
@pytest.mark.parametrize(("entry", "words"), [
    (github(workflow_filename=".github\\workflows\\release.yml"), "Windows path"),
    (github(workflow_filename=".github-workflows-release.yml"), "glued"),
    (gitlab(workflow_filepath=".github/workflows/release.yml"), "GitHub Actions workflow"),
    (gitlab(workflow_filepath="./ci/release.yml"), "'.' or '..'"),
    (gitlab(workflow_filepath="ci\\release.yml"), "'\\'"),
    (gitlab(workflow_filepath="sampleproject/ci/release.yml"), "project's name"),
    (gitlab(workflow_filepath="ci%2Frelease.yml"), "encoded"),
])
def test_tpp002_workflow_given_as_a_path(entry: dict[str, Any], words: str) -> None:
    found = lint_yaml(entry)
    assert codes(found) == ["TPP002"]
    assert words in found[0].message


def test_tpp002_a_path_from_the_project_s_name_is_told_for_its_publisher_alone() -> None:
    """What is wrong with a workflow path is kept per value, except where the project's
    name decides: three GitLab publishers with the same path, one in a project of the
    name the path starts with (in a publishers file and in its compiled policy)."""
    entries = [gitlab(name=name, project=project, projects=[f"proj-{name}"],
                      workflow_filepath="ci/release.yml")
               for name, project in (("a", "sampleproject"), ("b", "ci"), ("c", "other"))]
    for found in (lint_yaml(*entries), lint_policy_text(compiled(*entries), "p.tpp")):
        assert [(f.code, f.publisher) for f in found] == [("TPP002", "b")]
        assert "starts with the project's name 'ci'" in found[0].message


def test_tpp002_not_for_file_names_and_root_relative_paths() -> None:
    assert lint_yaml(github(workflow_filename="release-workflows.yaml"),
                     gitlab(workflow_filepath="ci/release/pypi.yml")) == ()


# ------------------------------------------------------------------------ TPP003
def test_tpp003_yml_and_yaml_lookalikes() -> None:
    found = lint_yaml(github(), github(name="release-yaml", workflow_filename="release.yaml"))
    assert codes(found) == ["TPP003"]
    assert "'release.yaml' instead of 'release.yml'" in found[0].message
    assert found[0].publisher == "release-yaml"


def test_tpp003_not_for_different_workflows() -> None:
    assert lint_yaml(github(), github(name="other", workflow_filename="publish.yml")) == ()


def test_tpp003_whatever_the_order_of_the_fields_and_not_across_types() -> None:
    """Publishers are compared by a digest of their fields by name: the order an entry
    writes them in does not count, a value's type does (ref_protected true, not "true")."""
    swapped = dict(reversed(list(github(name="release-yaml",
                                        workflow_filename="release.yaml").items())))
    assert codes(lint_yaml(github(), swapped)) == ["TPP003"]
    assert codes(lint_yaml(github(ref_protected=True), github(
        name="release-yaml", workflow_filename="release.yaml", ref_protected=True))) == ["TPP003"]
    assert lint_yaml(github(ref_protected=True), github(
        name="release-yaml", workflow_filename="release.yaml")) == ()


# ------------------------------------------------------------------------ TPP004
def test_tpp004_same_project_twice_in_a_policy_file_publisher() -> None:
    text = compiled(github()).replace('projects ["sampleproject"]',
                                      'projects ["sampleproject", "SampleProject"]')
    found = lint_policy_text(text, "p.tpp")
    assert codes(found) == ["TPP004"]
    assert "twice (the same project as 'sampleproject')" in found[0].message
    assert found[0].span.line == text.splitlines().index(
        '  projects ["sampleproject", "SampleProject"]') + 1


def test_tpp004_same_project_in_publishers_of_the_same_identity() -> None:
    found = lint_yaml(github(), github(name="any-env", environment=None))
    assert "TPP004" in codes(found)
    message = next(f.message for f in found if f.code == "TPP004")
    assert "'any-env' accepts any environment" in message
    assert "does not protect 'sampleproject'" in message


def test_tpp004_not_for_other_identities_or_other_projects() -> None:
    assert lint_yaml(github(), github(name="ci", workflow_filename="ci.yml")) == ()
    assert lint_yaml(github(), github(name="docs", projects=["other"],
                                      environment="docs")) == ()


# ------------------------------------------------------------------------ TPP005
def test_tpp005_surrounding_whitespace_in_a_rule_literal() -> None:
    text = compiled(github()).replace('claims.repository_owner == "octo-org"',
                                      'claims.repository_owner == "octo-org "')
    found = lint_policy_text(text, "p.tpp")
    assert "TPP005" in codes(found)
    finding = next(f for f in found if f.code == "TPP005")
    assert "surrounding whitespace" in finding.message
    assert finding.fix == "write 'octo-org'"


def test_tpp005_invisible_character_in_a_field() -> None:
    text = compiled(github()).replace('environment = "pypi"', 'environment = "py\\u200bpi"')
    found = lint_policy_text(text, "p.tpp")
    assert "TPP005" in codes(found)
    assert "U+200B ZERO WIDTH SPACE" in next(f.message for f in found if f.code == "TPP005")


def test_tpp005_space_in_a_workflow_file() -> None:
    assert codes(lint_yaml(gitlab(workflow_filepath="ci/ release.yml"))) == ["TPP005"]


def test_tpp005_not_for_clean_values() -> None:
    assert lint_policy_text(compiled(github(), gitlab()), "p.tpp") == ()


# ------------------------------------------------------------------------ TPP006
def test_tpp006_cyrillic_lookalike() -> None:
    text = compiled(github()).replace('environment = "pypi"', 'environment = "\\u0440ypi"')
    found = lint_policy_text(text, "p.tpp")
    assert "TPP006" in codes(found)
    finding = next(f for f in found if f.code == "TPP006")
    assert "CYRILLIC SMALL LETTER ER (looks like 'p')" in finding.message
    assert finding.fix == "retype it in ASCII: 'pypi'"


def test_tpp006_fullwidth_lookalike_in_a_rule_literal() -> None:
    text = compiled(github()).replace('claims.repository_owner == "octo-org"',
                                      'claims.repository_owner == "\\uff4fcto-org"')
    assert "TPP006" in codes(lint_policy_text(text, "p.tpp"))


def test_tpp006_not_for_other_non_ascii_letters() -> None:
    text = compiled(github()).replace('environment = "pypi"', 'environment = "d\\u00e9ploiement"')
    assert "TPP006" not in codes(lint_policy_text(text, "p.tpp"))


# ------------------------------------------------------------------------ TPP007
def test_tpp007_same_owner_in_two_cases() -> None:
    found = lint_yaml(github(), github(name="docs", projects=["docs"], repository_owner="Octo-Org",
                                       repository_name="docs"))
    assert "TPP007" in codes(found)
    message = next(f.message for f in found if f.code == "TPP007")
    assert "'Octo-Org' is spelled 'octo-org' in 'release'" in message


def test_tpp007_not_for_different_owners() -> None:
    assert "TPP007" not in codes(lint_yaml(
        github(), github(name="docs", projects=["docs"], repository_owner="other-org")))


# ------------------------------------------------------------------------ TPP008
def test_tpp008_mixed_case_identity_is_a_note() -> None:
    found = lint_yaml(gitlab(namespace="MaxIV"))
    assert codes(found) == ["TPP008"]
    assert found[0].level == "note"
    assert "#18797" in found[0].message


def test_tpp008_not_for_lowercase_names() -> None:
    assert lint_yaml(github(), gitlab(namespace="maxiv")) == ()


# ------------------------------------------------------------------------ TPP009
def pending(name: str, project: str, **overrides: Any) -> dict[str, Any]:
    return github(name=name, projects=None, pending_project=project,
                  repository_name=project.lower(), **overrides)


def test_tpp009_pending_project_that_exists() -> None:
    found = lint_yaml(github(projects=["foo.bar"]), pending("new", "Foo-Bar"))
    assert codes(found) == ["TPP009"]
    assert "already exists" in found[0].message


def test_tpp009_pending_project_too_similar_to_an_existing_one() -> None:
    found = lint_yaml(github(projects=["foobar"]), pending("new", "f00bar"))
    assert codes(found) == ["TPP009"]
    assert "'f00bar' once ultranormalized" in found[0].message


def test_tpp009_two_pending_projects_collide() -> None:
    found = lint_yaml(pending("one", "Foo-Bar"),
                      pending("two", "fOObar", workflow_filename="b.yml"))
    assert codes(found) == ["TPP009"]
    assert found[0].publisher == "two"


def test_tpp009_not_for_distinct_names() -> None:
    assert lint_yaml(github(projects=["foobar"]), pending("new", "foobaz")) == ()


def test_normalizations() -> None:
    assert pep503("Foo.Bar__baz") == "foo-bar-baz"
    assert ultranormalize("Foo-Bar") == ultranormalize("foobar") == ultranormalize("f00bar")
    assert ultranormalize("Il.io") == "1110"


# ------------------------------------------------- TPP010 / TPP011 (custom provider)
CUSTOM = """
provider ci {
  issuer "https://ci.example.com"
  claims {
    required repo, channel: string
    optional pin: string
  }
  fields {
    repo: string
    channel: string
    pin: string = ""
    gate: bool
  }
  lookup { key publisher.repo == claims.repo }
  rule repo: claims.repo == publisher.repo
  rule channel: publisher.channel != "none" and claims.channel == publisher.channel
    else "the channel is closed"
  rule pin: publisher.pin == "" or claims.pin == publisher.pin
  rule gate: publisher.gate or claims.channel == "reviewed"
}
"""


@pytest.fixture
def custom(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "ci.tpp"
    path.write_text(CUSTOM)
    return load_providers([path])


def ci(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": "ci", "provider": "ci", "projects": ["x"], "repo": "r",
                             "channel": "stable", "gate": False}
    entry.update(overrides)
    return entry


def test_tpp010_require_that_folds_to_false(custom: dict[str, Any]) -> None:
    found = lint_yaml(ci(channel="none"), providers=custom)
    assert codes(found) == ["TPP010"]
    assert found[0].level == "error"
    assert "can never pass (the channel is closed)" in found[0].message
    text = yaml.safe_dump({"publishers": [ci(channel="none")]}, sort_keys=False)
    assert text.splitlines()[found[0].span.line - 1] == "  channel: none"  # the field


def test_tpp010_in_a_policy_file() -> None:
    text = compiled(github()).replace(OWNER_RULE,
                                      'rule repository_owner: "octo-org" == "0cto-org"')
    found = lint_policy_text(text, "p.tpp")
    assert "TPP010" in codes(found)


def test_tpp010_in_a_provider_block() -> None:
    text = CUSTOM.replace('rule repo: claims.repo == publisher.repo',
                          'rule repo {\n    require claims.repo == publisher.repo\n'
                          '    require 1 == 2\n  }')
    found = lint_policy_text(text, "ci.tpp", providers={})
    assert codes(found) == ["TPP010"]
    assert found[0].span.line == 17


def test_tpp010_not_for_satisfiable_rules(custom: dict[str, Any]) -> None:
    assert lint_yaml(ci(), providers=custom) == ()


def test_tpp011_rule_that_always_passes(custom: dict[str, Any]) -> None:
    found = lint_yaml(ci(gate=True), providers=custom)
    assert codes(found) == ["TPP011"]
    assert "rule 'gate' of 'ci' always passes" in found[0].message


def test_tpp011_not_for_a_field_left_at_its_default(custom: dict[str, Any]) -> None:
    # `pin` is "" (its default): the rule is meant to pass for any token.
    assert "TPP011" not in codes(lint_yaml(ci(), providers=custom))


def test_tpp011_policy_file_rule_replaced_by_true() -> None:
    text = compiled(github()).replace(OWNER_ID_RULE,
                                      "rule repository_owner_id: true")
    found = lint_policy_text(text, "p.tpp")
    assert codes(found) == ["TPP011"]
    assert 'claims.repository_owner_id == "65"' in found[0].message


def test_tpp011_not_for_a_compiled_environment_rule() -> None:
    # `rule environment: true` for a publisher without environment is the provider's rule.
    assert "TPP011" not in codes(lint_policy_text(compiled(github(environment=None)), "p.tpp"))


# ------------------------------------------------------------------------ TPP012
def test_tpp012_rule_left_out_of_a_policy_file() -> None:
    text = compiled(github()).replace(
        '  rule repository_owner_id: claims.repository_owner_id == "65"\n\n', "")
    found = lint_policy_text(text, "p.tpp")
    assert codes(found) == ["TPP012"]
    assert "has no rule 'repository_owner_id'" in found[0].message


def test_tpp012_not_for_a_complete_policy_file() -> None:
    assert lint_policy_text(compiled(github(), gitlab()), "p.tpp") == ()


# ------------------------------------------------------------------------ TPP013
def test_tpp013_rule_differs_from_the_provider() -> None:
    text = compiled(github()).replace(OWNER_RULE,
                                      'rule repository_owner: lower(claims.repository_owner) '
                                      '== "octo-org"')
    found = lint_policy_text(text, "p.tpp")
    assert codes(found) == ["TPP013"]
    assert found[0].level == "note"


def test_tpp013_not_for_rules_as_compiled() -> None:
    assert "TPP013" not in codes(lint_policy_text(compiled(github()), "p.tpp"))


# ------------------------------------------------------------------------ files
def test_examples_publishers_file() -> None:
    found = lint_file(EXAMPLES / "publishers.yaml")
    assert [(f.code, f.publisher) for f in found] == [("TPP001", "new-plugin-pending")]


def test_invalid_files_raise() -> None:
    with pytest.raises(tppolicy.ConfigError):
        lint_publishers_text("publishers: [{provider: nope}]\n", "p.yaml")
    with pytest.raises(tppolicy.PolicySyntaxError):
        lint_policy_text("publisher {", "p.tpp")
    with pytest.raises(tppolicy.PolicyCheckError, match="cannot read"):
        lint_file(LINT_FIXTURES / "missing.tpp")


# ------------------------------------------------------------------------ SARIF
@pytest.fixture(scope="module")
def sarif_validator() -> Draft4Validator:
    schema = json.loads(SARIF_SCHEMA.read_text())
    assert schema["id"].endswith("/sarif-schema-2.1.0.json")
    return Draft4Validator(schema)


def test_sarif_log_is_valid(sarif_validator: Draft4Validator) -> None:
    findings = lint_file(LINT_FIXTURES / "everything.yaml") + lint_file(
        LINT_FIXTURES / "edited.tpp")
    assert {f.code for f in findings} >= {"TPP001", "TPP003", "TPP004", "TPP007", "TPP008",
                                          "TPP009", "TPP011", "TPP012"}
    log = to_sarif(findings, version=tppolicy.__version__)
    errors = sorted(sarif_validator.iter_errors(log), key=str)
    assert not errors, errors[0]
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(CODES)
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1


def test_sarif_log_with_an_invalid_file_is_valid(sarif_validator: Draft4Validator) -> None:
    try:
        lint_policy_text("publisher {", "broken.tpp")
    except tppolicy.TppolicyError as exc:
        log = to_sarif((), version="0.1.0", errors=exc.diagnostics)
    assert not list(sarif_validator.iter_errors(log))
    invocation = log["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert "syntax error" in invocation["toolExecutionNotifications"][0]["message"]["text"]


def test_sarif_schema_catches_a_broken_log(sarif_validator: Draft4Validator) -> None:
    log = to_sarif(lint_file(EXAMPLES / "publishers.yaml"), version="0.1.0")
    log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    assert list(sarif_validator.iter_errors(log))


# ------------------------------------------------------------------ TPP014
# The advice is written in policies/github.tpp and gitlab.tpp (`advise` items).
@pytest.mark.parametrize(("entry", "field", "words"), [
    (github(ref_pattern="refs/heads/*", ref_protected=True), "ref_pattern", "every branch"),
    (github(ref_pattern="refs/heads/**", ref_protected=True), "ref_pattern", "every branch"),
    (github(ref_pattern="refs/tags/v*"), "ref_pattern", "ref_protected: true"),
    (github(version_tag="v{version}"), "version_tag", "ref_protected: true"),
    (github(runner_environment="self-hosted"), "runner_environment", "self-hosted runners"),
    (github(allowed_events="release,pull_request_target"), "allowed_events",
     "pull_request_target"),
    (github(allowed_events="workflow_run"), "allowed_events", "artifact poisoning"),
    (github(reusable_workflow="octo-org/shared/.github/workflows/pypi.yml@refs/heads/main"),
     "reusable_workflow", "follows a branch"),
    (gitlab(ref_path_pattern="refs/heads/*", ref_protected=True), "ref_path_pattern",
     "every branch"),
    (gitlab(ref_path_pattern="refs/tags/v*"), "ref_path_pattern", "ref_protected: true"),
    (gitlab(version_tag="v{version}"), "version_tag", "ref_protected: true"),
    (gitlab(runner_environment="self-hosted"), "runner_environment", "self-hosted runners"),
])
def test_tpp014_constraint_advice(entry: dict[str, Any], field: str, words: str) -> None:
    findings = [f for f in lint_yaml(entry) if f.code == "TPP014"]
    assert len(findings) == 1, findings
    assert field in findings[0].message and words in findings[0].message
    assert findings[0].level == "warning"
    text = yaml.safe_dump({"publishers": [entry]}, sort_keys=False).splitlines()
    assert text[findings[0].span.line - 1].strip().startswith(f"{field}:")


@pytest.mark.parametrize("entry", [
    github(), gitlab(),
    github(ref_pattern="refs/tags/v*", ref_protected=True, runner_environment="github-hosted",
           allowed_events="release,workflow_dispatch", version_tag="v{version}",
           reusable_workflow="octo-org/shared/.github/workflows/pypi.yml@refs/tags/v1"),
    gitlab(ref_path_pattern="refs/heads/main", ref_protected=True,
           runner_environment="gitlab-hosted"),
])
def test_tpp014_not_for_defaults_or_tight_settings(entry: dict[str, Any]) -> None:
    assert "TPP014" not in codes(lint_yaml(entry))


def test_tpp014_advice_is_inherited_by_extends(tmp_path: Path) -> None:
    path = tmp_path / "ci.tpp"
    path.write_text(CUSTOM.replace(
        "  rule pin:", '  advise pin when publisher.pin == "main" "pin {publisher.pin}"\n'
        "  rule pin:")
        + 'provider ci2 extends ci {\n  issuer "https://ci2.example.com"\n'
        '  advise gate when publisher.gate "gate open"\n}\n')
    providers = load_providers([path])
    findings = lint_yaml(ci(provider="ci2", pin="main", gate=True), providers=providers)
    assert sorted(f.message for f in findings if f.code == "TPP014") == [
        "'ci', gate: gate open", "'ci', pin: pin main"]


def test_tpp014_in_a_compiled_policy_file() -> None:
    text = compiled(github(runner_environment="self-hosted"))
    findings = [f for f in lint_policy_text(text, "p.tpp") if f.code == "TPP014"]
    assert len(findings) == 1
    assert text.splitlines()[findings[0].span.line - 1].strip().startswith("runner_environment")


def test_tpp014_suppressed_and_ignored(tmp_path: Path) -> None:
    text = yaml.safe_dump({"publishers": [github(runner_environment="self-hosted")]},
                          sort_keys=False)
    path = tmp_path / "publishers.yaml"
    path.write_text(text)
    assert "TPP014" in codes(lint_file(path))
    path.write_text(text.replace("self-hosted\n", "self-hosted  # tppolicy: ignore[TPP014]\n"))
    assert "TPP014" not in codes(lint_file(path))


@pytest.mark.parametrize(("item", "message"), [
    ('advise ref_patern "x"', "'ref_patern' is not a field"),
    ('advise pin when claims.pin == "" "x"', "may read only publisher"),
    ('advise pin "the token says {claims.pin}"', "may read only publisher"),
])
def test_advise_is_checked(tmp_path: Path, item: str, message: str) -> None:
    path = tmp_path / "ci.tpp"
    path.write_text(CUSTOM.replace("  rule pin:", f"  {item}\n  rule pin:"))
    with pytest.raises(tppolicy.PolicyCheckError, match=message):
        load_providers([path])


def test_advise_in_a_custom_provider(tmp_path: Path) -> None:
    path = tmp_path / "ci.tpp"
    path.write_text(CUSTOM.replace(
        "  rule pin:", '  advise pin when publisher.pin == "main" "pin {publisher.pin}"\n'
        "  rule pin:"))
    providers = load_providers([path])
    printed = format_policy(parse_policy(path.read_text()))
    assert printed.count("advise pin when") == 1
    assert format_policy(parse_policy(printed)) == printed
    findings = lint_yaml(ci(pin="main"), providers=providers)
    assert [(f.code, f.message) for f in findings if f.code == "TPP014"] == [
        ("TPP014", "'ci', pin: pin main")]
    assert "TPP014" not in codes(lint_yaml(ci(pin="v1"), providers=providers))


# ------------------------------------------ TPP010 / TPP011 decided once per rule shape
SHAPES = """
provider shapes {
  issuer "https://shapes.example.com"
  claims {
    required repo, channel: string
    optional pin: string
  }
  fields {
    repo: string
    channel: string
    pin: string = ""
    gate: bool
  }
  lookup { key publisher.repo == claims.repo }
  rule repo: claims.repo == publisher.repo + ""
  rule channel: publisher.channel != "none" and claims.channel == publisher.channel
    else "the channel is closed"
  optional rule pin: publisher.pin == "" or claims.pin == publisher.pin
  rule gate: publisher.gate or claims.channel == "reviewed"
  rule odd: (publisher.gate or claims.channel == "x") == (publisher.channel == "open")
  rule pick: (if publisher.gate then publisher.channel else claims.channel) == "stable"
  rule closed: publisher.channel == "none" or not (publisher.pin == "never")
}
"""


def test_rule_verdicts_as_each_publisher_alone(tmp_path: Path) -> None:
    """Lint decides TPP010/TPP011 once per rule and the values that can change it, not
    once per publisher: in one file, each publisher gets what it gets linted alone."""
    path = tmp_path / "shapes.tpp"
    path.write_text(SHAPES)
    providers = load_providers([path])
    entries = []
    for i in range(48):
        entries.append({"name": f"p{i}", "provider": "shapes", "projects": [f"x{i}"],
                        "repo": f"r{i}", "channel": ("none", "stable", "open", "x")[i % 4],
                        "pin": ("", "p", "never")[i % 3], "gate": bool(i % 5 < 2)})
    together = lint_yaml(*entries, providers=providers)
    alone = [f for entry in entries for f in lint_yaml(entry, providers=providers)]
    assert {"TPP010", "TPP011"} <= set(codes(together))

    def key(f: Finding) -> tuple[str, str | None, str]:
        return (f.code, f.publisher, f.message)

    assert sorted(map(key, together)) == sorted(map(key, alone))


# ------------------------------------------------------ a publishers file as a stream
def _many() -> str:
    """Publishers that make every cross-publisher finding, several times over."""
    entries: list[dict[str, Any]] = []
    for i in range(30):
        owner = "Octo-Org" if i % 9 == 4 else "octo-org"  # TPP007, TPP008
        entries.append(github(
            name=None if i % 5 == 3 else f"gh-{i}", repository_owner=owner,
            repository_name=f"repo{i // 2}",
            workflow_filename=("release.yaml" if (i % 2 == 1) != (i // 2 % 3 == 1)
                               else "release.yml"),  # TPP003, either first
            environment=None if i // 2 % 4 == 0 else "pypi",  # TPP001
            projects=[f"proj-{i}"],
        ))
    entries += [
        github(name="same-1", repository_name="same", projects=["shared", "own-1"]),
        github(name="same-2", repository_name="same", environment=None,
               projects=["other", "Shared"]),  # TPP004: the same identity
        github(name="case-1", repository_name="Mixed", projects=["m1"]),
        github(name="case-2", repository_name="mixed", projects=["m2"],
               workflow_filename="other.yml"),  # TPP007, the first not in lower case
        {**github(name="pend-1", repository_name="new"), "projects": None,
         "pending_project": "Proj.1"},  # exists (PEP 503)
        {**github(name="pend-2", repository_name="new2"), "projects": None,
         "pending_project": "pr0j-2"},  # too similar
        {**github(name="pend-3", repository_name="new3"), "projects": None,
         "pending_project": "fresh"},
        {**github(name=None, repository_name="new4"), "projects": None,
         "pending_project": "FRESH"},  # collides with a pending one
        gitlab(workflow_filepath="sampleproject/ci/release.yml"),  # TPP002
    ]
    return yaml.safe_dump({"publishers": [{k: v for k, v in e.items() if v is not None}
                                          for e in entries]}, sort_keys=False)


@pytest.mark.parametrize("name", ["everything", "many"])
def test_stream_lints_as_the_whole_file(name: str) -> None:
    """A plain file is linted as a stream (a summary of each publisher kept for the
    checks across publishers): the same findings, at the same places, as read whole."""
    from tppolicy.tools.lint import _lint_stream, _lint_whole

    text = (LINT_FIXTURES / "everything.yaml").read_text() if name == "everything" \
        else _many()
    providers = load_providers()
    streamed = _lint_stream(text, "p.yaml", providers, None)
    assert streamed == _lint_whole(text, "p.yaml", providers, None)
    assert {"TPP001", "TPP003", "TPP004", "TPP007", "TPP009"} <= set(codes(streamed))
    if name == "many":
        messages = " ".join(f.message for f in streamed)
        assert "already exists" in messages and "too similar" in messages
        assert "collides with the pending project" in messages
        assert "accepts any environment, so the environment" in messages
        for expected in (  # each finding's words, from the publishers it compares
                "'publisher #4 (github)' is 'gh-2' with workflow_filename 'release.yml' "
                "instead of 'release.yaml'",
                "'gh-1' is 'gh-0' with workflow_filename 'release.yaml' instead of "
                "'release.yml'",
                "repository_name 'mixed' is spelled 'Mixed' in 'case-1'",
                "repository_owner 'Octo-Org' is spelled 'octo-org' in 'gh-0'",
                "'Shared' is also published by 'same-1', a publisher of the same identity "
                "(the token's lookup keys match both); 'same-2' accepts any environment, so "
                "the environment 'pypi' of 'same-1' does not protect 'Shared'",
                "pending project 'Proj.1' already exists ('gh-1' publishes 'proj-1')",
                "pending project 'pr0j-2' is too similar to the project 'proj-2' of 'gh-2'",
                "pending project 'FRESH' collides with the pending project 'fresh' of "
                "'pend-3', the same project"):
            assert expected in messages


def test_the_project_filter_never_forgets_a_name() -> None:
    """TPP009's filter of project names may say "present" for a name never added (then
    the file is read again for it), never "absent" for one added."""
    from tppolicy.tools.lint import _Bloom

    names = [f"project-{i}" for i in range(30_000)]
    bloom = _Bloom()
    for name in names:
        bloom.add(name)
    assert all(name in bloom for name in names)
    others = [f"other-{i}" for i in range(30_000)]
    assert sum(name in bloom for name in others) < 100  # about 1 in 2 000 here


@pytest.mark.parametrize(("field", "value", "code"), [
    ("workflow_filename", " release.yml", "TPP005"),
    ("workflow_filename", "re\\u200blease.yml", "TPP005"),
    ("workflow_filename", "r\\u0440elease.yml", "TPP006"),
    ("workflow_filename", "re|lease.yml", None),
    ("environment", "py\\u200bpi", "TPP005"),
    ("environment", "p\\u0440ypi", "TPP006"),
    ("environment", "py pi", None),
])
def test_characters_in_any_field(field: str, value: str, code: str | None) -> None:
    """A publisher's values are first checked all at once (joined by "|"): a value with
    a surrounding or invisible character, or a look-alike, is found in each field."""
    old = {"workflow_filename": 'workflow_filename = "release.yml"',
           "environment": 'environment = "pypi"'}[field]
    block = ('publisher "release" {\n  provider github\n  projects ["sampleproject"]\n'
             '  fields {\n    repository_owner = "octo-org"\n'
             '    repository_name = "sampleproject"\n    repository_owner_id = "65"\n'
             '    workflow_filename = "release.yml"\n    environment = "pypi"\n  }\n}\n')
    for text in (compiled(github()), block):  # with its rules, and with its provider's
        text = text.replace(old, f'{field} = "{value}"')
        found = {c for c in codes(lint_policy_text(text, "p.tpp")) if c in ("TPP005", "TPP006")}
        assert found == ({code} if code else set()), text


def test_a_field_test_folds_as_binding_does() -> None:
    """`publisher.NAME == LITERAL` (or `!=`, either way round) is decided by lint's rule
    verdicts without binding: as binding folds it, for every value of the literal's type."""
    from tppolicy.language import ast as A
    from tppolicy.language.bind import bind_expr
    from tppolicy.tools.lint import _FALSE, _TRUE, _field_test

    values: tuple[str | int | bool, ...] = ("", "x", "y", 0, 1, 2, True, False)
    for literal in values:
        for op in ("==", "!="):
            for node in (A.Compare(op, A.FieldRef("f"), A.Literal(literal)),
                         A.Compare(op, A.Literal(literal), A.FieldRef("f"))):
                test = _field_test(node)
                assert test is not None
                for value in values:
                    if value.__class__ is not literal.__class__:
                        continue
                    fast = _TRUE if (value == test[1]) is not test[2] else _FALSE
                    bound = bind_expr(node, {"f": value})
                    assert isinstance(bound, A.Literal) and bound.value is fast.value
    assert _field_test(A.Compare("<", A.FieldRef("f"), A.Literal(1))) is None
    assert _field_test(A.Compare("==", A.FieldRef("f"), A.FieldRef("g"))) is None
