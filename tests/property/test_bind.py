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
from tppolicy.language.ops import FUNCTIONS

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
