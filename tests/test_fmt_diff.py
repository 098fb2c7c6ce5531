"""The diff `tppolicy fmt --check` prints (`tppolicy.tools.fmt_diff`): the same lines as
`difflib.unified_diff` on the texts' lines, on the cases where its rules show (a line found
more than 1% of the times, line ends `str.splitlines` knows, no line end at the end, lines
whose hashes collide). tests/property/test_fmt_diff.py compares the two on generated
texts."""

from __future__ import annotations

import difflib

import pytest

from tppolicy.tools.fmt_diff import iter_unified_diff_texts


def _difflib(a: str, b: str, context: int = 3) -> list[str]:
    return list(difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                     "old", "new", n=context))


def _mine(a: str, b: str, context: int = 3, **options: object) -> list[str]:
    return list(iter_unified_diff_texts(a, b, "old", "new", context, **options))  # type: ignore[arg-type]


CASES = {
    "empty": ("", ""),
    "same": ("a\nb\n", "a\nb\n"),
    "from nothing": ("", "a\nb\n"),
    "to nothing": ("a\nb\n", ""),
    "one line changed": ("a\nb\nc\n", "a\nB\nc\n"),
    "no line end at the end": ("a\nb", "a\nb\n"),
    "no line end on both": ("a\nb", "a\nc"),
    "crlf": ("a\r\nb\r\nc\r\n", "a\nb\nc\n"),
    "lone cr and other ends": ("a\rb\x0bc\x0cd\x1ce\x85f\u2028g\u2029h\n", "a\nb\nc\nd\ne\n"),
    "two hunks": ("".join(f"{i}\n" for i in range(30)),
                  "".join(f"{i}\n" for i in range(30) if i not in (3, 25))),
    # more than 200 lines, and a line found more than 1% of the times: difflib leaves it
    # out of its index, which changes the blocks it finds
    "popular lines": ("".join(f"  x: {i % 3}\n" if i % 2 else f"k{i}\n" for i in range(400)),
                      "".join(f"  x: {i % 3}\n" if i % 3 else f"k{i}\n" for i in range(420))),
    # long runs of matching lines found once, then clipped to each part
    "a line changed in each entry": (
        "".join(f"# entry {i}\n  - name: n{i}\n    owner: o{i // 5}\n    env: pypi\n"
                f"    id: \"{i // 5}\"\n    repo: r{i}\n" for i in range(150)),
        "".join(f"  # entry {i}\n  - name: n{i}\n    owner: o{i // 5}\n    env: pypi\n"
                f"    id: \"{i // 5}\"\n    repo: r{i}\n" for i in range(150))),
    "every line changes": ("".join(f"- k{i}: v\n" for i in range(300)),
                           "".join(f"  - k{i}: v\n" for i in range(300))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_lines_as_difflib(name: str) -> None:
    a, b = CASES[name]
    assert _mine(a, b) == _difflib(a, b)
    assert _mine(b, a) == _difflib(b, a)
    for context in (0, 1, 5):
        assert _mine(a, b, context) == _difflib(a, b, context)


@pytest.mark.parametrize("name", sorted(CASES))
def test_lines_whose_hashes_collide(name: str) -> None:
    """Two different lines with one hash are still two lines (every line's hash is its
    length here)."""
    a, b = CASES[name]
    assert _mine(a, b, hasher=len) == _difflib(a, b)
    assert _mine(b, a, hasher=len) == _difflib(b, a)
