"""The evaluator: compiled code agrees with the reference interpreter, never raises,
and fails closed."""

from __future__ import annotations

from typing import Any

import tppolicy

from .conftest import load_claims
from .property.strategies import BASES


def test_an_empty_policy_denies(github_claims: dict[str, Any]) -> None:
    policy = tppolicy.compile_publishers_text("publishers: []\n")
    decision = policy.evaluate(github_claims)
    assert not decision.allowed
    assert decision.reasons[0].message == ("valid token, but no corresponding github publisher: "
                                           "the token comes from github, and there are no "
                                           "publishers")
    assert decision.disclosed().reasons[0].message == ("valid token, but no corresponding "
                                                       "github publisher")
    assert decision.code == "invalid-publisher"


def test_audience(example_policy: tppolicy.Policy, github_claims: dict[str, Any]) -> None:
    assert example_policy.evaluate(github_claims, audience="pypi").allowed
    denied = example_policy.evaluate(github_claims, audience="testpypi")
    assert [r.message for r in denied.reasons] == ["token has audience 'pypi', expected 'testpypi'"]
    listed = example_policy.evaluate({**github_claims, "aud": ["pypi"]})
    assert "must be the single string 'pypi'" in listed.reasons[0].message


def test_denial_names_the_closest_publisher(example_policy: tppolicy.Policy) -> None:
    decision = example_policy.evaluate(load_claims("github-wrong-environment"), explain=True)
    assert not decision.allowed
    assert decision.publisher is None
    assert decision.closest == "sampleproject-github"
    [failed] = decision.failed
    assert failed.rule == "environment"
    assert (failed.expected, failed.actual) == ("pypi", "release")
    assert failed.message == "token has 'release', publisher expects 'pypi' (ignoring case)"


def test_allowed_decision(example_policy: tppolicy.Policy, github_claims: dict[str, Any]) -> None:
    decision = example_policy.evaluate(github_claims, explain=True)
    assert decision.allowed
    assert decision.publisher == "sampleproject-github"
    assert decision.projects == ("sampleproject", "sampleproject-extras")
    assert not decision.pending
    assert all(r.passed for r in decision.reasons)
    assert example_policy.evaluate(github_claims).reasons == ()  # cheap unless asked


def test_pending_publisher(example_policy: tppolicy.Policy) -> None:
    decision = example_policy.evaluate(load_claims("github-pending-plugin"))
    assert decision.allowed and decision.pending
    assert decision.projects == ("sampleproject-plugin",)


def test_environment_publisher_wins_over_one_without() -> None:
    text = """publishers:
  - {name: any, provider: github, projects: [a], repository_owner: octo-org,
     repository_name: sampleproject, repository_owner_id: "65", workflow_filename: release.yml}
  - {name: env, provider: github, projects: [b], repository_owner: octo-org,
     repository_name: sampleproject, repository_owner_id: "65", workflow_filename: release.yml,
     environment: PyPI}
"""
    policy = tppolicy.compile_publishers_text(text)
    claims = load_claims("github-release")
    assert policy.evaluate(claims).publisher == "env"
    assert policy.evaluate({**claims, "environment": "other"}).publisher == "any"
    no_env = {k: v for k, v in claims.items() if k != "environment"}
    assert policy.evaluate(no_env).publisher == "any"


def test_compiled_text_round_trip(example_policy: tppolicy.Policy) -> None:
    text = tppolicy.format_policy(example_policy)
    again = tppolicy.load_policy_text(text, "compiled.tpp")
    assert tppolicy.format_policy(again) == text
    for base in BASES:
        assert again.evaluate(base, explain=True) == example_policy.evaluate(base, explain=True)
