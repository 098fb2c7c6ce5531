"""`Explainer.deferred`: a provider rule bound by its shape (`DeferredRule`) explained from
the shape and the publisher's values, without making the rule's tree, as `explain` ranks
every publisher. The result is the one `Explainer.rule` gives on the rule made, for every
shipped provider's rules, publishers of varied values (the optional constraints on and
off) and claims allowed, denied, mistyped or missing; and the candidates `explain` ranks
are those made one publisher at a time the plain way (`_candidate`)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tppolicy.decide.load import compile_publishers_text
from tppolicy.decide.reasons import Explainer
from tppolicy.language.bind import DeferredRule, bind_rules_deferred
from tppolicy.language.providers import load_providers
from tppolicy.tools.explain import _candidate, advise, advise_publishers

from .conftest import EXAMPLES

PROVIDERS = load_providers()
GITHUB = "https://token.actions.githubusercontent.com"
ORG = "0b7f5c3e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
GHE = "https://ghe.example.com/_services/token"
ISSUERS = {GHE: "github_enterprise", f"https://oidc.circleci.com/org/{ORG}": "circleci"}


def _github(i: int, suffix: str = "", **changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": f"gh-{i}", "provider": "github", "projects": [f"p{i}"],
        "repository_owner": f"Org{i // 4}", "repository_name": f"repo{i}{suffix}",
        "repository_owner_id": str(100 + i // 4), "workflow_filename": "release.yml",
        "environment": "pypi" if i % 3 else ""}
    entry.update(changes)
    return entry


def _publishers(suffix: str = "") -> list[dict[str, Any]]:
    """Publishers of every shipped provider, with varied values and constraints (the
    repository names of the first GitHub ones ending in `suffix`, but for those that
    `CLAIMS` name)."""
    entries = [_github(i, "" if i in (5, 6, 7) else suffix) for i in range(12)]
    entries += [
        _github(20, ref_pattern="refs/tags/v*"),
        _github(21, caller_workflow="ci.yml"),
        _github(22, reusable_workflow="other/shared/.github/workflows/pub.yml@refs/heads/main"),
        _github(23, allowed_events="release,push", denied_events="workflow_run"),
        _github(24, repository_id="42", runner_environment="github-hosted"),
        _github(25, version_tag="v{version}", ref_protected=True),
        _github(26, repository_owner="org6", repository_name="x" * 70,
                workflow_filename="a-very-long-workflow-file-name-for-a-release.yml"),
        _github(27, environment="Release"),
        {"name": "pending-gh", "provider": "github", "pending_project": "newp",
         "repository_owner": "Org0", "repository_name": "newrepo",
         "repository_owner_id": "100", "workflow_filename": "publish.yaml"},
    ]
    for i in range(6):
        entries.append({
            "name": f"lab-{i}", "provider": "gitlab", "projects": [f"lab{i}"],
            "namespace": f"group{i // 2}/python", "project": f"proj{i}",
            "workflow_filepath": "ci/release.yml" if i % 2 else ".gitlab-ci.yml",
            **({"environment": "production"} if i % 3 == 0 else {}),
            **({"ref_path_pattern": "refs/tags/*", "project_id": "20"} if i == 4 else {})})
    entries.append({"name": "sample-lab", "provider": "gitlab", "projects": ["sampleproject"],
                    "namespace": "octo-group/python", "project": "sampleproject",
                    "workflow_filepath": "ci/release.yml", "environment": "production"})
    for i in range(3):
        entries.append({"name": f"goog-{i}", "provider": "google", "projects": [f"g{i}"],
                        "email": f"pub{i}@octo.iam.gserviceaccount.com",
                        **({"sub": str(10 ** 20 + i)} if i else {})})
    entries.append({"name": "as-1", "provider": "activestate", "projects": ["as1"],
                    "organization": "octo-org", "activestate_project_name": "octo-runtime",
                    "actor": "octocat", "actor_id": "5b3a7ac4-2ec5-4bd2-9a0f-d1a6e17e2b3c"})
    entries.append({"name": "bk-1", "provider": "buildkite", "projects": ["bk1"],
                    "organization_slug": "octo", "pipeline_slug": "release",
                    "tag_pattern": "v*"})
    entries.append({"name": "cc-1", "provider": "circleci", "projects": ["cc1"],
                    "org_id": ORG, "project_id": ORG.replace("0b", "1c"),
                    "pipeline_definition_id": ORG.replace("0b", "2d"),
                    "vcs_origin": "github.com/octo/cc",
                    "issuer_url": f"https://oidc.circleci.com/org/{ORG}"})
    entries.append({"name": "ghe-1", "provider": "github_enterprise", "projects": ["ghe1"],
                    "issuer_url": GHE, "repository_owner": "Org1",
                    "repository_name": "repo5", "repository_owner_id": "101",
                    "workflow_filename": "release.yml"})
    return entries


def _github_claims(i: int, **changes: Any) -> dict[str, Any]:
    owner, repository = f"Org{i // 4}", f"Org{i // 4}/repo{i}"
    ref = "refs/tags/v1"
    claims: dict[str, Any] = {
        "iss": GITHUB, "aud": "pypi", "sub": f"repo:{repository}:environment:pypi",
        "jti": "j", "repository": repository, "repository_owner": owner,
        "repository_owner_id": str(100 + i // 4), "repository_id": "1",
        "job_workflow_ref": f"{repository}/.github/workflows/release.yml@{ref}",
        "workflow_ref": f"{repository}/.github/workflows/release.yml@{ref}",
        "ref": ref, "sha": "0" * 40, "event_name": "push", "environment": "pypi",
        "ref_type": "tag", "runner_environment": "github-hosted"}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _example(name: str, **changes: Any) -> dict[str, Any]:
    claims = json.loads((EXAMPLES / "claims" / name).read_text())
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


LONG = "org6/" + "x" * 70
CLAIMS = {
    "allowed": _github_claims(5),
    "another-repository": _github_claims(7, repository="Org1/elsewhere"),
    "case": _github_claims(5, repository="org1/REPO5", repository_owner="org1"),
    "other-workflow": _github_claims(
        6, job_workflow_ref="Org1/repo6/.github/workflows/other.yml@refs/tags/v1"),
    "reusable": _github_claims(
        22, job_workflow_ref="other/shared/.github/workflows/pub.yml@refs/heads/main"),
    "no-ref": _github_claims(5, ref=""),
    "no-ref-no-sha": _github_claims(5, ref="", sha=""),
    "missing-ref": _github_claims(5, ref=None, sha=None),
    "empty-repository": _github_claims(5, repository=""),
    "mistyped": _github_claims(5, repository=5),
    "mistyped-ref": _github_claims(5, ref=7),
    "no-job-workflow-ref": _github_claims(5, job_workflow_ref=None),
    "long": _github_claims(26, repository=LONG, repository_owner="org6",
                           job_workflow_ref=f"{LONG}/.github/workflows/rel.yml@refs/tags/v1"),
    "excluded-event": _github_claims(5, event_name="pull_request_target"),
    "environment": _github_claims(27, environment="staging"),
    "gitlab": _example("gitlab-release.json"),
    "gitlab-elsewhere": _example("gitlab-release.json", project_path="octo-group/other",
                                 namespace_path="octo-group"),
    "google": _example("google-cloud-build.json"),
    "activestate": _example("activestate-build.json"),
    "github-example": _example("github-release.json"),
}


# A suffix of repository names per test run: rules bound by another test (the same values)
# are kept made, as `bind_rules` made them, not deferred.
_RUNS = itertools.count()


def _text(suffix: str) -> str:
    return yaml.safe_dump({"publishers": _publishers(suffix)}, sort_keys=False)


def _policy(suffix: str) -> Any:
    text = _text(suffix)
    return compile_publishers_text(text, "p.yaml", providers=PROVIDERS, issuers=ISSUERS)


def _deferred(policy: Any) -> Iterator[tuple[Any, DeferredRule]]:
    for publisher in policy.publishers:
        for rule in bind_rules_deferred(publisher.provider.rules, publisher.fields):
            if isinstance(rule, DeferredRule):
                yield publisher, rule


@pytest.mark.parametrize("claims", CLAIMS.values(), ids=CLAIMS.keys())
def test_a_rule_explained_by_its_shape_is_the_rule_made(claims: dict[str, Any]) -> None:
    """Each shape's rule explained from its values, or left to the caller (None): the
    result of the rule made, field for field; an explainer that keeps its results, or
    one that does not; and again (the shape's way checked once)."""
    policy = _policy(f"-{next(_RUNS)}")
    for bound_only in (True, False):
        explainers: dict[str, Explainer] = {}
        for _ in range(2):
            for publisher, rule in _deferred(policy):
                provider = publisher.provider
                explainer = explainers.setdefault(provider.name, Explainer(
                    claims, provider.claim_types, bound_only=bound_only))
                found = explainer.deferred(rule)
                if found is None:
                    continue
                made = Explainer(claims, provider.claim_types).rule(rule.rule())
                assert not found.passed
                assert (found.rule, found.expected, found.actual, found.message) == \
                    (made.rule, made.expected, made.actual, made.message), publisher.label
                assert found == made


def test_the_shapes_of_most_failing_rules_are_explained_by_their_values() -> None:
    """The rules that differ per publisher (its repository, its workflow) are explained
    from their shapes for a denied token, and a passing rule is left to the caller."""
    policy = _policy("")
    for name, fast in (("another-repository", {"repository", "job_workflow_ref"}),
                       ("gitlab-elsewhere", set())):
        claims = CLAIMS[name]
        explained: set[str] = set()
        for publisher, rule in _deferred(policy):
            explainer = Explainer(claims, publisher.provider.claim_types, bound_only=True)
            found = explainer.deferred(rule)
            if found is not None:
                explained.add(rule.name)
            elif publisher.provider.name == "github":
                made = explainer.rule(rule.rule())
                assert made.passed or rule.name not in fast, (publisher.label, rule.name)
        assert fast <= explained
    allowed = CLAIMS["allowed"]
    for publisher, rule in _deferred(policy):
        if publisher.label == "gh-5":
            explainer = Explainer(allowed, publisher.provider.claim_types, bound_only=True)
            assert explainer.deferred(rule) is None  # it passes: the caller explains it


@pytest.mark.parametrize("claims", CLAIMS.values(), ids=CLAIMS.keys())
def test_ranked_candidates_are_the_plain_ones(claims: dict[str, Any]) -> None:
    """Every candidate of the ranking (rows from the rules' shapes) is the one made of
    its publisher alone, the plain way; the file read as a stream gives the same."""
    suffix = f"-{next(_RUNS)}"
    policy = _policy(suffix)
    decision = policy.evaluate(claims, explain=True)
    by_label = {p.label: p for p in policy.publishers}
    advice = advise(policy, claims, fixes_for=3)
    for candidate in advice.candidates:
        alone = _candidate(by_label[candidate.publisher], claims, decision)
        assert candidate.checks == alone.checks, candidate.publisher
        assert [c.message for c in candidate.checks] == [c.message for c in alone.checks]
        assert [c.expectation for c in candidate.checks] == \
            [c.expectation for c in alone.checks]
    streamed = advise_publishers(_text(suffix), "p.yaml", claims, providers=PROVIDERS,
                                 issuers=ISSUERS, fixes_for=3)
    assert streamed.to_json() == advice.to_json()


@pytest.mark.parametrize("claims", [CLAIMS[name] for name in (
    "another-repository", "other-workflow", "no-ref", "long", "gitlab-elsewhere")],
    ids=["another-repository", "other-workflow", "no-ref", "long", "gitlab-elsewhere"])
def test_expected_values_made_again_are_the_results(claims: dict[str, Any]) -> None:
    """`Explainer.expected_again`: the expected values of a rule failing on an `or` of
    comparisons (what `explain` keeps of a candidate's workflow row) made again from the
    publisher's value alone are the result's, a new list each time."""
    policy = _policy(f"-{next(_RUNS)}")
    made = 0
    for publisher, rule in _deferred(policy):
        explainer = Explainer(claims, publisher.provider.claim_types, bound_only=True)
        found = explainer.deferred(rule)
        if found is None:
            continue
        again = explainer.expected_again(rule, found)
        if again is None:
            assert found.expected.__class__ is not list or rule.name != "job_workflow_ref"
            continue
        make, stored = again
        assert make(stored) == found.expected and make(stored) is not make(stored)
        assert stored.__class__ is str or stored.__class__ is tuple
        made += 1
    if claims in (CLAIMS["another-repository"], CLAIMS["other-workflow"]):
        assert made  # the workflow rows of the other repositories' publishers


@pytest.mark.parametrize("name", ["another-repository", "gitlab-elsewhere", "no-ref"])
def test_what_the_ranking_keeps_a_while_changes_nothing(monkeypatch: pytest.MonkeyPatch,
                                                        name: str) -> None:
    """The rows, shapes of rows, results and plans the ranking keeps for a while (each
    explainer's) bound its memory only: the advice is the one made keeping none."""
    from tppolicy.tools import explain as E

    claims = CLAIMS[name]
    suffix = f"-{next(_RUNS)}"
    policy = _policy(suffix)
    reference = advise(policy, claims, fixes_for=3).to_json()
    monkeypatch.setattr(E._Ranking, "_RENEW", 1)
    monkeypatch.setattr(E._Ranking, "_ROWS", 1)
    monkeypatch.setattr(E, "_RULES_SEEN", 1)
    assert advise(policy, claims, fixes_for=3).to_json() == reference
    assert advise_publishers(_text(suffix), "p.yaml", claims, providers=PROVIDERS,
                             issuers=ISSUERS, fixes_for=3).to_json() == reference
