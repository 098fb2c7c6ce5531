"""Evaluation properties: the compiled code, the templates and the interpreter agree on
mutated real claims, and evaluation is total (any JSON decides, never raises)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tppolicy
from tests.test_constraints import CONSTRAINED, POLICIES, _required_and_rules
from tppolicy.language.compile import compile_predicate
from tppolicy.language.interpret import Interpreter
from tppolicy.language.ops import EvalError

from .strategies import json_values, mutated_claims

# Hypothesis runs of hundreds of examples each: the slow group (.ci/run runs it).
pytestmark = pytest.mark.slow


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
@given(claims=mutated_claims())
def test_compiled_code_alike_with_either_prologue(example_policy: tppolicy.Policy,
                                                  claims: dict[str, Any]) -> None:
    """The claims prologue in C (`_prologue.Prologue`) and in Python decide alike."""
    pytest.importorskip("tppolicy.language._prologue")
    from tppolicy.language import compile as compile_module

    for publisher in example_policy.publishers:
        with_c = compile_predicate(publisher.provider, publisher.rules)
        saved = compile_module._Prologue
        compile_module._Prologue = None
        try:
            with_python = compile_predicate(publisher.provider, publisher.rules)
        finally:
            compile_module._Prologue = saved
        assert with_c(claims) is with_python(claims), publisher.label


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(claims=st.one_of(mutated_claims(), json_values,
                        st.dictionaries(st.text(max_size=12), json_values, max_size=8)))
def test_evaluation_is_total(example_policy: tppolicy.Policy, claims: Any) -> None:
    decision = example_policy.evaluate(claims, explain=True)
    assert isinstance(decision.allowed, bool)
    if not decision.allowed:
        assert decision.reasons, "a denial always says why"
        assert all(not r.passed or r.rule for r in decision.reasons)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=6),
                    st.sampled_from(["true", "false", "refs/tags/v1.2.3", "v1.2.3", "99"]))


@st.composite
def constrained_claims(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    name = draw(st.sampled_from(sorted(CONSTRAINED)))
    table = CONSTRAINED[name]
    claims = dict(table["claims"][draw(st.sampled_from(sorted(table["claims"])))])
    for key in draw(st.lists(st.sampled_from(sorted(claims)), max_size=3, unique=True)):
        if draw(st.booleans()):
            del claims[key]
        else:
            claims[key] = draw(scalars)
    request = draw(st.none() | st.fixed_dictionaries(
        {"version": st.sampled_from(["1.2.3", "1.2.4", ""])}))
    return name, claims, request


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(case=constrained_claims())
def test_templates_agree_with_the_interpreter(case: tuple[str, dict[str, Any],
                                                         dict[str, Any] | None]) -> None:
    """The template (lazy claims, request values, hoisted patterns), each publisher's own
    compiled rules and the interpreter give the same verdict."""
    from tppolicy.decide.core import with_request

    name, claims, request = case
    policy = POLICIES[name]
    merged = with_request(claims, request) if request is not None else claims
    for publisher in policy.publishers:
        expected = _required_and_rules(publisher.provider, publisher.rules, merged)
        compiled = compile_predicate(publisher.provider, publisher.rules)
        assert compiled(merged) is expected, publisher.label
        template = policy.decider.indexes[publisher.provider.name].template
        _, _, slots = template.derive(tuple(publisher.fields[f] for f in template.fields))
        assert template.predicate(merged, slots) is expected, publisher.label
