"""Printer and formatter properties: random syntax trees print to text that parses back to
the same tree, long lines break only where allowed, and `tppolicy fmt` keeps every comment
and is idempotent."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tppolicy.language.ast import And, Expr, Or, PolicyFile, Provider, Require, Rule
from tppolicy.language.parse import parse_policy, parse_policy_with_comments
from tppolicy.language.printer import (
    _LINE_WIDTH,
    format_expr,
    format_policy,
    format_provider,
    format_value,
)
from tppolicy.tools.fmt import format_policy_text

from .strategies import chains, commented, exprs, messages, names, policies

# Hypothesis runs of hundreds of examples each: the slow group (.ci/run runs it).
pytestmark = pytest.mark.slow


def parse_expr(text: str) -> Expr:
    policy = parse_policy(f"provider p {{ rule r: {text} }}")
    return policy.providers[0].rules[0].requires[0].condition


@settings(max_examples=500, deadline=None)
@given(exprs)
def test_expr_round_trip(expr: Expr) -> None:
    text = format_expr(expr)
    assert "\n" not in text
    parsed = parse_expr(text)
    assert parsed == expr
    assert repr(parsed) == repr(expr)  # also tells true from 1


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(policies)
def test_policy_round_trip(policy: PolicyFile) -> None:
    text = format_policy(policy)
    parsed = parse_policy(text)
    assert parsed == policy
    assert repr(parsed) == repr(policy)
    assert format_policy(parsed) == text
    assert text.endswith("\n") or not text
    assert not text.endswith("\n\n")


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(names, st.one_of(exprs, chains()), messages)
def test_long_lines_break_only_before_top_level_and_or(name: str, expr: Expr,
                                                       message: str | None) -> None:
    rule = Rule(name, (Require(expr, message),))
    lines = format_provider(Provider("p", rules=(rule,))).split("\n")[1:-1]
    one_line = f"rule {name}: {format_expr(expr)}"
    if message is not None:
        one_line += f" else {format_value(message)}"
    # Breaking only replaces spaces with a newline and indentation.
    assert " ".join(line.strip() for line in lines) == one_line
    assert lines[0].startswith("  rule ")
    for line in lines[1:]:
        assert line.startswith("      ")
        assert line[6:].startswith(("and ", "or ", "else "))
    if len(lines) == 1:
        assert len(lines[0]) <= _LINE_WIDTH or (message is None and _chain_word(expr) is None)
    else:
        assert len("  " + one_line) > _LINE_WIDTH
        breaks = [line[6:].split(" ", 1)[0] for line in lines[1:]]
        if breaks[-1] == "else":
            breaks.pop()
        assert all(word == _chain_word(expr) for word in breaks)
    assert parse_policy("\n".join(["provider p {", *lines, "}"])).providers[0].rules == (rule,)


def _chain_word(expr: Expr) -> str | None:
    return "and" if isinstance(expr, And) else "or" if isinstance(expr, Or) else None


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commented())
def test_formatting_keeps_comments_and_is_idempotent(case: tuple[Any, str, list[str]]) -> None:
    policy, text, comments = case
    once = format_policy_text(text)
    again, kept = parse_policy_with_comments(once)
    assert again == policy
    assert Counter(c.text for c in kept) == Counter(comments)
    assert format_policy_text(once) == once


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(policies)
def test_without_comments_it_prints_as_format_policy(policy: Any) -> None:
    text = format_policy(policy)
    assert format_policy_text(text) == text
