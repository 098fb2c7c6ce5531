"""`tppolicy.tools.fmt_diff.iter_unified_diff_texts` prints exactly what
`difflib.unified_diff` prints on the two texts' lines, on generated pairs of texts: lines
drawn from a small pool (so that lines repeat, and beyond 200 lines some are "popular" for
difflib), every line end `str.splitlines` knows, the second text an edit of the first or
another text, and any context size."""

from __future__ import annotations

import difflib
import random

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tppolicy.tools.fmt_diff import iter_unified_diff_texts

# Hypothesis runs of hundreds of examples each: the slow group (.ci/run runs it).
pytestmark = pytest.mark.slow

ENDS = ["\n"] * 12 + ["\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85",
                      "\u2028", "\u2029"]
WORDS = ["publishers:", "  - name: pub-1", "    provider: github", "    environment: pypi",
         "- environment: pypi", "  # a comment", "", "    projects: [a, b]", "x", "é",
         "  name: 'q'"]


def _text(rnd: random.Random, lines: list[str], odd_ends: bool) -> str:
    ends = ENDS if odd_ends else ["\n"]
    text = "".join(line + rnd.choice(ends) for line in lines)
    if text and rnd.random() < 0.2:
        text = text[:-1]  # no line end at the end (or half of a "\r\n")
    return text


@st.composite
def text_pairs(draw: st.DrawFn) -> tuple[str, str, int, bool]:
    """Two texts, a context size, and whether lines' hashes collide (their lengths)."""
    rnd = random.Random(draw(st.integers(0, 2**32)))
    size = rnd.choice([0, 1, 5, 30, 150, 250, 600])
    pool = WORDS + [f"k{i}: v{i % 7}" for i in range(rnd.choice([2, 20, 400]))]
    lines = [rnd.choice(pool) for _ in range(size)]
    if rnd.random() < 0.8:  # an edit of the first text
        edited = list(lines)
        for _ in range(rnd.randrange(1 + size // 10 + 3)):
            at = rnd.randrange(len(edited) + 1)
            kind = rnd.random()
            if kind < 0.4:
                edited.insert(at, rnd.choice(pool))
            elif kind < 0.7 and at < len(edited):
                del edited[at]
            elif at < len(edited):
                edited[at] = "  " + edited[at]  # as fmt re-indents
    else:
        edited = [rnd.choice(pool) for _ in range(rnd.choice([0, size, size * 2]))]
    odd = rnd.random() < 0.3
    a, b = _text(rnd, lines, odd), _text(rnd, edited, odd)
    context = rnd.choice([3, 3, 3, 0, 1, 2, 7])
    return a, b, context, rnd.random() < 0.1


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_pairs())
def test_the_diff_is_difflibs(pair: tuple[str, str, int, bool]) -> None:
    a, b, context, collide = pair
    expected = list(difflib.unified_diff(a.splitlines(keepends=True),
                                         b.splitlines(keepends=True), "a (original)",
                                         "b (formatted)", n=context))
    found = list(iter_unified_diff_texts(a, b, "a (original)", "b (formatted)", context,
                                         hasher=len if collide else hash))
    event(f"{len(a.splitlines())} lines >= 200: {len(a.splitlines()) >= 200}")
    assert found == expected
