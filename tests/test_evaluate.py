"""The evaluator: compiled code agrees with the reference interpreter, never raises,
and fails closed."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tppolicy
from tppolicy.language.compile import compile_predicate
from tppolicy.language.interpret import Interpreter
from tppolicy.language.ops import EvalError

from .conftest import load_claims

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                         st.floats(allow_nan=False), st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6)

BASES = [load_claims(name) for name in (
    "github-release", "github-wrong-environment", "github-pending-plugin", "gitlab-release",
    "google-cloud-build", "activestate-build")]


@st.composite
def mutated_claims(draw: st.DrawFn) -> dict[str, Any]:
    """Real tokens with claims removed, replaced by anything, or nudged."""
    claims = dict(draw(st.sampled_from(BASES)))
    names = sorted(claims)
    for name in draw(st.lists(st.sampled_from(names), max_size=4, unique=True)):
        action = draw(st.integers(0, 3))
        if action == 0:
            del claims[name]
        elif action == 1:
            claims[name] = draw(json_values)
        elif action == 2 and isinstance(claims[name], str):
            claims[name] = claims[name].upper()
        elif isinstance(claims[name], str):
            claims[name] = claims[name] + draw(st.sampled_from(["@", "/", ":", ".yml@x", ""]))
    return claims


def _reference(publisher: Any, claims: dict[str, Any]) -> bool:
    """The interpreter's verdict for one publisher: required claims, then every rule."""
    provider = publisher.provider
    interpreter = Interpreter(claims, provider.claim_types)
    try:
        for spec in (*provider.required_claims, *provider.optional_claims):
            value = interpreter.value(tppolicy.language.ast.Claim(spec.name))
            if value is None and spec.category != "optional":
                return False
        return all(interpreter.boolean(req.condition)
                   for rule in publisher.rules for req in rule.requires)
    except EvalError:
        return False


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(claims=mutated_claims())
def test_compiled_code_agrees_with_the_interpreter(example_policy: tppolicy.Policy,
                                                   claims: dict[str, Any]) -> None:
    for publisher in example_policy.publishers:
        compiled = compile_predicate(publisher.provider, publisher.rules)
        assert compiled(claims) is _reference(publisher, claims), publisher.label


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(claims=st.one_of(mutated_claims(), json_values,
                        st.dictionaries(st.text(max_size=12), json_values, max_size=8)))
def test_evaluation_is_total(example_policy: tppolicy.Policy, claims: Any) -> None:
    decision = example_policy.evaluate(claims, explain=True)
    assert isinstance(decision.allowed, bool)
    if not decision.allowed:
        assert decision.reasons, "a denial always says why"
        assert all(not r.passed or r.rule for r in decision.reasons)


def test_an_empty_policy_denies(github_claims: dict[str, Any]) -> None:
    policy = tppolicy.compile_publishers_text("publishers: []\n")
    decision = policy.evaluate(github_claims)
    assert not decision.allowed
    assert decision.reasons[0].message == "valid token, but no corresponding github publisher"
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
