"""Binding properties: `bind_expr` (its caches, the sub-expressions of fields and literals
evaluated at once) gives what one bottom-up transform gives: each `publisher.NAME` replaced
by its value, then every node folded in turn."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_bind import bottom_up
from tppolicy.language import ast as A
from tppolicy.language import bind as B
from tppolicy.language.interpret import Interpreter
from tppolicy.language.ops import FUNCTIONS, EvalError

from .strategies import literals, names

# Hypothesis runs of hundreds of examples each: the slow group (.ci/run runs it).
pytestmark = pytest.mark.slow

FIELDS = ("a", "b", "c")
# Values that fold, and values that make the functions fail (a non-string to lower(), a
# string without the separator to before()): those parts must stay as written.
field_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3),
                         st.sampled_from(["", "x", "A/b", "refs/tags/v*", "*", "a,b", "É"]),
                         st.lists(st.sampled_from(["", "x", "A/b"]), max_size=2))
leaves = st.one_of(literals, st.builds(A.FieldRef, st.sampled_from(FIELDS)),
                   st.builds(A.Claim, st.sampled_from(["r", "s"])),
                   st.builds(A.NameRef, names))


def _with_real_calls(children: st.SearchStrategy[A.Expr]) -> st.SearchStrategy[A.Expr]:
    """Nodes of every kind; calls of the language's functions with as many arguments as
    they take (as the checker lets through: a call of another arity is refused first)."""
    pairs = st.tuples(children, children)
    calls = st.sampled_from(sorted(FUNCTIONS)).flatmap(lambda name: st.tuples(
        st.just(name), st.tuples(*[children] * len(FUNCTIONS[name][1]))))
    return st.one_of(
        calls.map(lambda c: A.Call(*c)), calls.map(lambda c: A.Call(*c)),
        st.lists(children, max_size=3).map(lambda items: A.ListExpr(tuple(items))),
        pairs.map(lambda p: A.Index(*p)), pairs.map(lambda p: A.Concat(*p)),
        st.tuples(st.sampled_from(["==", "!=", "<", ">="]), children, children).map(
            lambda c: A.Compare(*c)),
        st.tuples(children, children, st.booleans()).map(lambda c: A.In(*c)),
        children.map(A.Not), pairs.map(lambda p: A.And(*p)), pairs.map(lambda p: A.Or(*p)),
        st.tuples(children, children, children).map(lambda c: A.Conditional(*c)))


exprs = st.recursive(leaves, _with_real_calls, max_leaves=10)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(expr=exprs, publishers=st.lists(st.fixed_dictionaries(
    {}, optional=dict.fromkeys(FIELDS, field_values)), min_size=1, max_size=4))
def test_binding_is_one_bottom_up_transform(expr: A.Expr,
                                            publishers: list[dict[str, Any]]) -> None:
    # several publishers in turn: later ones hit the entries earlier ones left
    for values in publishers:
        assert B.bind_expr(expr, values) == bottom_up(expr, values)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(expr=exprs, values=st.fixed_dictionaries(
    {}, optional=dict.fromkeys(FIELDS, field_values)))
def test_a_bound_expression_is_folded_already(expr: A.Expr, values: dict[str, Any]) -> None:
    # `tppolicy test` reads a bound rule's conditions as they are (no second fold)
    bound = B.bind_expr(expr, values)
    assert B.fold(bound) == bound


# A claim's branch folded away leaves a node of parts only, which may fold or fail on a
# part's content (not its kind): `before(if publisher.a == "" then claims.r else
# publisher.b, "/")` fails for a b without '/', folds for one with it.
TWO_STRINGS = sorted(name for name, (_, types, _) in FUNCTIONS.items()
                     if types == ("string", "string"))
strings = st.sampled_from(["", "x", "a/b", "/", "a,b", "a@b", "ab/", "@"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(function=st.sampled_from(TWO_STRINGS), separator=strings,
       flip=st.booleans(), publishers=st.lists(st.fixed_dictionaries(
           {"a": strings, "b": strings}), min_size=2, max_size=5))
def test_a_node_of_parts_left_unfolded_is_not_reused(function: str, separator: str,
                                                    flip: bool,
                                                    publishers: list[dict[str, Any]]) -> None:
    branch: A.Expr = A.Conditional(A.Compare("==", A.FieldRef("a"), A.Literal("")),
                                   A.Claim("r"), A.FieldRef("b"))
    args = (A.Literal(separator), branch) if flip else (branch, A.Literal(separator))
    expr = A.Call(function, args)
    for values in publishers:
        assert B.bind_expr(expr, values) == bottom_up(expr, values)


# Expressions of fields and literals only (parts whole), mostly of strings: what the
# provider files' rules compute from a publisher's fields (`owner + "/" + name`,
# `lower(...)`, `x == ""`), with values that fail too (a null field, a list).
ONE_STRING = sorted(name for name, (_, types, _) in FUNCTIONS.items() if types == ("string",))


def _string_ops(children: st.SearchStrategy[A.Expr]) -> st.SearchStrategy[A.Expr]:
    pairs = st.tuples(children, children)
    return st.one_of(
        pairs.map(lambda p: A.Concat(*p)), pairs.map(lambda p: A.Concat(*p)),
        st.tuples(st.sampled_from(ONE_STRING), children).map(lambda c: A.Call(c[0], (c[1],))),
        st.tuples(st.sampled_from(TWO_STRINGS), pairs).map(lambda c: A.Call(*c)),
        st.tuples(st.sampled_from(["==", "!="]), children, children).map(
            lambda c: A.Compare(*c)),
        st.tuples(children, st.lists(children, max_size=2).map(tuple), st.booleans()).map(
            lambda c: A.In(c[0], A.ListExpr(c[1]), c[2])),
        children.map(A.Not), pairs.map(lambda p: A.And(*p)), pairs.map(lambda p: A.Or(*p)),
        st.tuples(children, children, children).map(lambda c: A.Conditional(*c)),
        st.tuples(st.lists(children, min_size=1, max_size=2).map(tuple), st.integers(-2, 2)
                  ).map(lambda c: A.Index(A.ListExpr(c[0]), A.Literal(c[1]))))


field_exprs = st.recursive(
    st.one_of(st.builds(A.FieldRef, st.sampled_from(FIELDS)),
              st.builds(A.Literal, st.sampled_from(["", "/", "x", "A", "@", True, None, 1]))),
    _string_ops, max_leaves=8)
# The same with claims among them: rules whose parts a publisher's values fill.
rule_exprs = st.recursive(
    st.one_of(st.builds(A.FieldRef, st.sampled_from(FIELDS)),
              st.builds(A.Claim, st.sampled_from(["r", "s"])),
              st.builds(A.Literal, st.sampled_from(["", "/", "x", True, None]))),
    _string_ops, max_leaves=10)
string_values = st.one_of(st.sampled_from(["", "x", "A/b", "refs/tags/v*", "a,b", "É"]),
                          field_values)


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same classes, lists item by item (1 is not true)."""
    if a.__class__ is not b.__class__:
        return False
    if a.__class__ is list:
        return len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)


@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(expr=st.one_of(field_exprs, exprs), values=st.fixed_dictionaries(
    dict.fromkeys(FIELDS[:2], string_values), optional={FIELDS[2]: field_values}))
def test_compiled_parts_give_the_interpreters_values(expr: A.Expr,
                                                     values: dict[str, Any]) -> None:
    # the parts' evaluation as one Python function: what it gives is what the interpreter
    # gives; where the interpreter fails, it fails too (the caller then asks the
    # interpreter, for its error)
    parts = B._largest_valued(expr)
    compiled = B._evaluator(parts)
    interpreter = Interpreter({}, {}, values)
    try:
        expected: list[Any] | None = [interpreter.value(part) for part in parts]
    except EvalError:
        expected = None
    try:
        got: list[Any] | None = compiled(values)
    except Exception:
        got = None
    if expected is None:
        assert got is None
    elif got is not None:
        assert len(got) == len(expected) and all(map(_same, got, expected))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(expr=st.one_of(rule_exprs, exprs), publishers=st.lists(st.fixed_dictionaries(
    dict.fromkeys(FIELDS[:2], string_values), optional={FIELDS[2]: field_values}),
    min_size=1, max_size=6))
def test_binding_with_compiled_parts_and_shapes(expr: A.Expr,
                                                publishers: list[dict[str, Any]]) -> None:
    # parts and shapes compiled at their first use: the same bindings
    before = B._COMPILE_AFTER
    B._COMPILE_AFTER = 1
    try:
        for values in publishers:
            assert B.bind_expr(expr, values) == bottom_up(expr, values)
    finally:
        B._COMPILE_AFTER = before


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requires=st.lists(st.tuples(st.one_of(rule_exprs, exprs), st.sampled_from(
           [None, "m", "the token is not the one this publisher expects at all"])),
           min_size=1, max_size=3),
       optional=st.booleans(),
       publishers=st.lists(st.fixed_dictionaries(dict.fromkeys(
           FIELDS[:2], st.one_of(string_values, st.text(max_size=60))),
           optional={FIELDS[2]: field_values}), min_size=1, max_size=8))
def test_deferred_rules_make_and_print_the_bound_rules(
        requires: list[tuple[A.Expr, str | None]], optional: bool,
        publishers: list[dict[str, Any]]) -> None:
    """`bind_rules_deferred` gives `bind_rules`'s rules (a `DeferredRule` makes the same
    rule), and a publisher of them prints as one of the bound rules (or both refuse),
    for publishers bound in turn: values of any text (escaped, long lines broken), shapes
    and parts compiled at their first use."""
    from tppolicy.language.printer import format_publisher

    rules = (A.Rule("r", tuple(A.Require(c, m) for c, m in requires), optional=optional),
             A.Rule("s", (A.Require(A.Compare("==", A.Claim("s"), A.FieldRef("a"))),)))
    before = B._COMPILE_AFTER
    B._COMPILE_AFTER = 1
    try:
        for values in publishers:
            deferred = B.bind_rules_deferred(rules, values)  # first: not bind_rules' kept
            bound = B.bind_rules(rules, values)
            assert tuple(r.rule() if isinstance(r, B.DeferredRule) else r
                         for r in deferred) == bound
            try:
                expected: str | None = format_publisher(A.Publisher("p", "p", rules=bound))
            except ValueError:
                expected = None
            try:
                got: str | None = format_publisher(A.Publisher("p", "p"), deferred)
            except ValueError:
                got = None
            assert got == expected
    finally:
        B._COMPILE_AFTER = before
