"""Hypothesis strategies shared by the property suites: random syntax trees of the policy
language (and their text with comments), JSON values, and real claims mutated."""

from __future__ import annotations

import random
from typing import Any, TypeVar

from hypothesis import strategies as st

from tests.conftest import load_claims
from tppolicy.language.ast import (
    And,
    Binding,
    Call,
    Claim,
    ClaimDecl,
    Compare,
    Concat,
    Conditional,
    Expr,
    FieldDecl,
    FieldRef,
    In,
    Index,
    Learn,
    Let,
    ListExpr,
    Literal,
    LookupItem,
    NameRef,
    Not,
    Or,
    PolicyFile,
    Provider,
    Publisher,
    Request,
    Require,
    Rule,
)
from tppolicy.language.printer import _KEYWORDS, format_policy

T = TypeVar("T")


# ------------------------------------------------------------ random syntax trees
NAME_EXTRAS = ["iff", "notx", "in_", "True", "NULL", "If", "_", "string", "claims_", "else_"]
names = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True).filter(
        lambda s: s not in _KEYWORDS),
    st.sampled_from(NAME_EXTRAS),
)
# Policy text holds no lone surrogate (the printer would write it as a `\udXXX` escape, which
# the parser refuses: half a character) and no raw control character but tab and line ends
# (strings escape them; comments cannot).
texts = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),  # no surrogates
        st.sampled_from(['"', "\\", "/", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "\x85",
                         "\u2028", "\u00a0", "\ufeff", "é", "日", "😀", "\U000e0001", "#",
                         "u", "0"]),
    ),
    max_size=10,
)
claim_names = st.one_of(names, st.sampled_from(sorted(_KEYWORDS)), texts)
messages = st.none() | texts
values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20), texts)
literals = st.builds(Literal, values)


def _compound(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    pairs = st.tuples(children, children)
    return st.one_of(
        st.builds(ListExpr, st.lists(children, max_size=3).map(tuple)),
        st.builds(Call, names, st.lists(children, max_size=3).map(tuple)),
        st.builds(Index, children, children),
        pairs.map(lambda p: Concat(*p)),
        st.builds(Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), children,
                  children),
        st.builds(In, children, children, st.booleans()),
        st.builds(Not, children),
        pairs.map(lambda p: And(*p)),
        pairs.map(lambda p: Or(*p)),
        st.builds(Conditional, children, children, children),
    )


exprs: st.SearchStrategy[Expr] = st.recursive(
    st.one_of(
        literals,
        st.builds(Claim, claim_names),
        st.builds(FieldRef, names),
        st.builds(Request, names),
        st.builds(NameRef, names),
    ),
    _compound,
    max_leaves=12,
)
requires = st.builds(Require, exprs, messages)
rules = st.builds(Rule, names, st.lists(requires, min_size=0, max_size=3).map(tuple),
                  optional=st.booleans())
learns = st.builds(Learn, names, exprs)


@st.composite
def field_decls(draw: st.DrawFn) -> FieldDecl:
    pattern = draw(st.none() | texts)
    return FieldDecl(
        draw(names), draw(names), draw(st.none() | literals), pattern,
        draw(messages) if pattern is not None else None,
    )


def _tuple_of(strategy: st.SearchStrategy[T], max_size: int = 3) -> st.SearchStrategy[
        tuple[T, ...]]:
    return st.lists(strategy, max_size=max_size).map(tuple)


providers = st.builds(
    Provider,
    name=names,
    issuers=_tuple_of(texts),
    custom_issuers=st.booleans(),
    algorithms=_tuple_of(texts),
    claims=_tuple_of(st.builds(
        ClaimDecl,
        st.sampled_from(["required", "present", "optional", "unchecked"]),
        st.lists(claim_names, min_size=1, max_size=3).map(tuple),
        names,
    )),
    ignored_prefixes=_tuple_of(texts),
    fields=_tuple_of(field_decls()),
    lets=_tuple_of(st.builds(Let, names, exprs)),
    lookup=_tuple_of(st.builds(LookupItem, st.sampled_from(["key", "prefer"]), exprs)),
    rules=_tuple_of(rules),
    learns=_tuple_of(learns),
)
publishers = st.builds(
    Publisher,
    name=st.none() | texts,
    provider=names,
    projects=_tuple_of(texts),
    pending_project=st.none() | texts,
    bindings=_tuple_of(st.builds(Binding, names, literals)),
    rules=_tuple_of(rules),
    learns=_tuple_of(learns),
)
policies = st.builds(
    PolicyFile,
    source=st.just("<policy>"),
    providers=_tuple_of(providers, 2),
    publishers=_tuple_of(publishers, 2),
)


@st.composite
def chains(draw: st.DrawFn) -> Expr:
    """An `and` / `or` chain of several operands: long enough to break, often."""
    operands = draw(st.lists(exprs, min_size=2, max_size=6))
    use_and = draw(st.booleans())
    chain = operands[0]
    for operand in operands[1:]:
        chain = And(chain, operand) if use_and else Or(chain, operand)
    return chain


@st.composite
def commented(draw: st.DrawFn) -> tuple[Any, str, list[str]]:
    """A generated policy's text with comments put at line ends and between lines."""
    policy = draw(policies)
    # (no control character, lone surrogate, line separator or bidirectional control:
    # a policy file refuses them outside strings, which escape them)
    comment_characters = st.one_of(
        st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"),
                      exclude_characters="\u061c\u200e\u200f\u202a\u202b\u202c\u202d"
                                         "\u202e\u2066\u2067\u2068\u2069"),
        st.just("\t"))
    texts = draw(st.lists(st.text(comment_characters, max_size=12), min_size=1, max_size=10))
    rnd = random.Random(draw(st.integers(0, 2**32)))
    lines = format_policy(policy).split("\n")
    free = [True] * len(lines)  # a line with no comment yet
    comments: list[str] = []
    for body in texts:
        comment = ("#" + body).rstrip()
        comments.append(comment)
        at = rnd.randrange(len(lines) + 1)
        if rnd.random() < 0.5 and at < len(lines) and lines[at].strip() and free[at]:
            lines[at] += " " * rnd.randrange(1, 4) + comment
            free[at] = False
        else:
            lines.insert(at, " " * rnd.randrange(6) + comment)
            free.insert(at, False)
            if rnd.random() < 0.3:
                lines.insert(at, "")
                free.insert(at, False)
    return policy, "\n".join(lines), comments


# ------------------------------------------------------------ claims
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
