"""The field-pattern analysis (language/patterns.py) on random patterns: it accepts every
pattern of the shipped provider files and random patterns built from the safe idioms
(separated repetition, bounded counts, alternatives starting differently, lookaheads), and
refuses random patterns with a nested or overlapping repetition, wherever it sits."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_patterns import SHIPPED
from tppolicy.language.patterns import overlapping_loops, pattern_problem

pytestmark = pytest.mark.slow

# Character classes over disjoint sets of characters: a separator from one never appears in
# another.
CLASSES = ["[a-z]", "[A-Z]", "[0-9]", "[a-z0-9]", "[A-Za-z]", r"\d", "[a-f]"]
SEPARATORS = ["-", r"\.", "/", ":", "@", ",", "_", "~"]
QUANTIFIERS = ["+", "*", "{1,40}", "{0,300}", "{2,}"]


def _class_chars(cls: str) -> set[str]:
    """The printable ASCII characters `cls` matches."""
    return {c for c in map(chr, range(32, 127)) if re.fullmatch(cls, c)}


@st.composite
def safe_piece(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.integers(0, 5 if depth < 2 else 2))
    cls = draw(st.sampled_from(CLASSES))
    if kind == 0:  # a class, repeated
        return cls + draw(st.sampled_from(QUANTIFIERS))
    if kind == 1:  # a literal separator
        return draw(st.sampled_from(SEPARATORS))
    if kind == 2:  # a bounded count
        return f"{cls}{{{draw(st.integers(1, 12))}}}"
    if kind == 3:  # separated repetition: (S X+)*, S not in X; X+ may hold (T Y+)* in turn
        sep = draw(st.sampled_from(SEPARATORS))
        inner = cls + "+"
        if depth == 0 and draw(st.booleans()):
            other = draw(st.sampled_from([s for s in SEPARATORS if s != sep]))
            inner += f"({other}{draw(st.sampled_from(CLASSES))}+)*"
        return f"({sep}{inner}){draw(st.sampled_from(['*', '+', '{0,50}']))}"
    if kind == 4:  # alternatives starting with different characters
        words = draw(st.lists(st.text("abcdefgh", min_size=1, max_size=5), min_size=2,
                              max_size=4, unique_by=lambda w: w[0]))
        return "(" + "|".join(words) + ")"
    return f"(?!{draw(st.sampled_from(SEPARATORS))})"  # a lookahead


@st.composite
def safe_pattern(draw: st.DrawFn) -> str:
    """Pieces, each after a separator of its own (two loops in a row may overlap)."""
    pieces = draw(st.lists(safe_piece(), min_size=1, max_size=5))
    return "^" + "".join(draw(st.sampled_from(SEPARATORS)) + p for p in pieces) + "$"


@st.composite
def nested_ambiguous(draw: st.DrawFn) -> str:
    cls = draw(st.sampled_from(CLASSES))
    letter = draw(st.sampled_from(sorted(_class_chars(cls))))
    inner_q = draw(st.sampled_from(["+", "*", "{1,}", "{2,}"]))
    outer_q = draw(st.sampled_from(["+", "*", "{1,}", "{2,100}"]))
    optional = draw(st.sampled_from(SEPARATORS)) + "?"
    core = draw(st.sampled_from([
        f"({cls}{inner_q}){outer_q}",  # (a+)+
        f"({cls}{inner_q}{optional}){outer_q}",  # ([a-z]+-?)*
        f"({cls}{cls}|{letter}){outer_q}",  # ([a-z][a-z]|a)*: "aa" in one or two turns
        f"({cls}{inner_q}{cls}{inner_q}){outer_q}",  # (a+a+)+
        f"(?:{letter}|{letter}{letter}){outer_q}",  # (a|aa)*
    ]))
    before = draw(safe_pattern())[1:-1] if draw(st.booleans()) else ""
    after = draw(safe_pattern())[1:-1] if draw(st.booleans()) else ""
    return f"^{before}{core}{after}$"


@pytest.mark.parametrize(("file", "field", "pattern"), SHIPPED,
                         ids=[f"{f}:{n}" for f, n, _ in SHIPPED])
def test_shipped_patterns(file: str, field: str, pattern: str) -> None:
    assert pattern_problem(pattern) is None


@settings(max_examples=400, deadline=None)
@given(safe_pattern())
def test_safe_patterns_are_accepted(pattern: str) -> None:
    re.compile(pattern)
    assert pattern_problem(pattern) is None, pattern


@settings(max_examples=400, deadline=None)
@given(nested_ambiguous())
def test_nested_ambiguous_patterns_are_refused(pattern: str) -> None:
    re.compile(pattern)
    problem = pattern_problem(pattern)
    assert problem is not None, pattern
    assert problem.kind == "exponential", (pattern, problem)
    assert overlapping_loops(pattern) == -1
