from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from tppolicy.language.ops import (
    EvalError,
    Glob,
    op_after,
    op_before_last,
    op_strip_suffix,
    strict_equal,
)


@pytest.mark.parametrize(("pattern", "text", "matches"), [
    ("refs/tags/v*", "refs/tags/v1.2.0", True),
    ("refs/tags/v*", "refs/tags/v1/evil", False),      # * stops at /
    ("refs/tags/**", "refs/tags/v1/evil", True),       # ** does not
    ("refs/tags/v*", "xrefs/tags/v1", False),          # anchored at the start
    ("refs/tags/v*", "refs/tags/v1\n", True),          # a newline is an ordinary character
    ("v?.0", "v1.0", True),
    ("v?.0", "v/.0", False),
    ("release.yml", "release.yml", True),
    ("release.yml", "release.yml@x", False),           # anchored at the end
    ("", "", True),
])
def test_glob(pattern: str, text: str, matches: bool) -> None:
    assert Glob(pattern)(text) is matches


def _steps(call: Callable[[], object]) -> int:
    """Lines executed by `call` (work counted, not timed)."""
    count = 0

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(None)
    return count


def test_glob_is_linear_on_hostile_input() -> None:
    # A backtracking matcher takes hours on 20 000 characters here; the state simulation's
    # work grows linearly with the text.
    glob = Glob("*a*a*a*a*a*a*a*a*a*a*b")
    assert glob("a" * 4000) is False
    short, long = _steps(lambda: glob("a" * 200)), _steps(lambda: glob("a" * 800))
    assert long <= 4.2 * short, (short, long)


def test_glob_work_does_not_grow_with_the_pattern() -> None:
    # Issue 12 item 14: a 3 KB pattern against a 1 KB ref took 1.4 s (states walked one by
    # one). The states are the bits of one integer: a longer pattern adds no steps.
    text = "a" * 1000
    few, many = Glob("*a" * 10 + "b"), Glob("*a" * 500 + "b")
    small, large = _steps(lambda: few(text)), _steps(lambda: many(text))
    assert large <= 1.1 * small, (small, large)


def test_glob_lengths_are_bounded() -> None:
    with pytest.raises(EvalError, match="limited to 4096"):
        Glob("refs/*")("refs/" + "a" * 20_000)
    with pytest.raises(EvalError, match="limited to 1024"):
        Glob("*a" * 600)


def test_strict_equality_never_crosses_types() -> None:
    assert not strict_equal(1, True)
    assert not strict_equal(1, 1.0)
    assert not strict_equal("1", 1)
    assert strict_equal(["a", 1], ["a", 1])
    assert not strict_equal([1], [True])
    assert strict_equal(None, None)


def test_separators_are_required() -> None:
    assert op_after("a/b/c", "/") == "b/c"
    assert op_before_last("a/b/c", "/") == "a/b"
    with pytest.raises(EvalError, match="has no '/'"):
        op_after("abc", "/")
    with pytest.raises(EvalError, match="does not end with"):
        op_strip_suffix("abc", "@x")
