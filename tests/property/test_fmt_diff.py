"""`tppolicy.tools.fmt_diff.iter_unified_diff_texts` prints exactly what
`difflib.unified_diff` prints on the two texts' lines, on generated pairs of texts: lines
drawn from a small pool (so that lines repeat, and beyond 200 lines some are "popular" for
difflib), every line end `str.splitlines` knows, the second text an edit of the first or
another text, and any context size. Then on larger texts with many scattered changes, and
with the budgets of difflib's way taken away (so that anchors, and parts replaced whole,
are used on every size), that GNU patch applies the diff to the first text to give exactly
the second, and that each hunk is well formed with `context` lines around its changes."""

from __future__ import annotations

import difflib
import random
import re
import subprocess
import tempfile
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tppolicy.tools import fmt_diff
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


@st.composite
def scattered_pairs(draw: st.DrawFn) -> tuple[str, str, int, str]:
    """Two texts ("\n" or "\r\n" line ends), the second with changes scattered over
    the first (or another text), a context size, and which budgets the matcher has."""
    rnd = random.Random(draw(st.integers(0, 2**32)))
    entries = rnd.choice([0, 1, 3, 40, 400, 2500])
    pool = WORDS + [f"k{i}: v{i % 7}" for i in range(rnd.choice([2, 20]))]
    lines = []
    for entry in range(entries):  # entries with unique lines, and lines from the pool
        lines.append(f"# entry {entry}")
        lines.extend(rnd.choice(pool) for _ in range(rnd.randrange(6)))
        if rnd.random() < 0.8:
            lines.append(f"  - name: n{entry}")
    if rnd.random() < 0.8:
        edited = list(lines)
        for _ in range(rnd.randrange(1 + len(lines) // rnd.choice([3, 10, 50]))):
            at = rnd.randrange(len(edited) + 1)
            kind = rnd.random()
            if kind < 0.3:
                edited.insert(at, rnd.choice([*pool, f"# entry {rnd.randrange(entries + 1)}"]))
            elif kind < 0.5 and at < len(edited):
                del edited[at]
            elif kind < 0.6 and at < len(edited):  # a line moved
                edited.insert(rnd.randrange(len(edited)), edited.pop(at))
            elif at < len(edited):
                edited[at] = "  " + edited[at]
    else:
        edited = rnd.sample(lines, len(lines))
    end = rnd.choice(["\n", "\n", "\r\n"])
    a, b = (end.join(x) + (end if x and rnd.random() < 0.9 else "") for x in (lines, edited))
    context = rnd.choice([3, 3, 3, 0, 1, 5])
    return a, b, context, rnd.choice(["as shipped", "anchors", "anchors only", "ends only"])


@contextmanager
def _budgets(kind: str) -> Iterator[None]:
    """The matcher's budgets: as shipped, none for difflib's way on the whole texts
    ("anchors"), none for difflib's way at all (parts without anchors replaced whole), or
    none for anchors either (only equal lines at the texts' ends kept)."""
    names = ("_EXACT_STEPS", "_EXACT_STEPS_PER_LINE", "_GAP_STEPS", "_ANCHOR_STEPS_PER_LINE")
    saved = [getattr(fmt_diff, name) for name in names]
    if kind != "as shipped":
        fmt_diff._EXACT_STEPS = fmt_diff._EXACT_STEPS_PER_LINE = 0
    if kind in ("anchors only", "ends only"):
        fmt_diff._GAP_STEPS = 0
    if kind == "ends only":
        fmt_diff._ANCHOR_STEPS_PER_LINE = 0
    try:
        yield
    finally:
        for name, value in zip(names, saved, strict=True):
            setattr(fmt_diff, name, value)


_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@\n")


def _check_hunks(diff: list[str], a: str, b: str, context: int) -> None:
    """Headers as difflib writes them; each hunk's ranges agree with its lines, with
    `context` lines before and after its changes (fewer only at a text's ends), and no
    run of more than 2 * `context` unchanged lines inside it."""
    la, lb = len(a.splitlines()), len(b.splitlines())
    if a == b:
        assert diff == []
        return
    assert diff[:2] == ["--- a\n", "+++ b\n"]
    at = 2
    while at < len(diff):
        found = _HUNK.fullmatch(diff[at])
        assert found, diff[at]
        a_start, b_start = int(found[1]), int(found[3])
        a_size = 1 if found[2] is None else int(found[2])
        b_size = 1 if found[4] is None else int(found[4])
        at += 1
        body = []
        while at < len(diff) and not diff[at].startswith("@@ "):
            body.append(diff[at][0])
            at += 1
        assert body.count(" ") + body.count("-") == a_size
        assert body.count(" ") + body.count("+") == b_size
        marks = "".join(body)
        leading = len(marks) - len(marks.lstrip(" "))
        trailing = len(marks) - len(marks.rstrip(" "))
        first = a_start - 1 if a_size else a_start  # the hunk's first line of a, from 0
        last = first + a_size  # past its last line of a
        assert leading == context or (leading < context and first == 0)
        assert trailing == context or (trailing < context and last == la)
        assert all(len(run) <= 2 * context for run in re.findall(" +", marks.strip(" ")))
        assert b_start >= 0 and last <= la and b_start - (1 if b_size else 0) + b_size <= lb


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scattered_pairs())
def test_patch_applies_the_diff(pair: tuple[str, str, int, str]) -> None:
    a, b, context, budgets = pair
    with _budgets(budgets):
        diff = list(iter_unified_diff_texts(a, b, "a", "b", context))
    event(f"{budgets}, {len(a.splitlines()) // 1000 * 1000}+ lines")
    _check_hunks(diff, a, b, context)
    with tempfile.TemporaryDirectory() as folder:
        original, patch_file, result = (Path(folder) / name for name in ("a", "d", "out"))
        original.write_bytes(a.encode())
        patch_file.write_bytes("".join(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            for line in diff).encode())
        subprocess.run(["patch", "--binary", "--silent", "--force", "-o", str(result),
                        str(original), str(patch_file)], check=True)
        assert result.read_bytes() == b.encode()


@st.composite
def id_pairs(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """Two lists of line ids, the second an edit of the first: lines added, removed,
    replaced, and (sometimes) blocks moved, so that the runs of matching lines are in
    order in both lists or not."""
    rnd = random.Random(draw(st.integers(0, 2**32)))
    size = rnd.choice([0, 5, 30, 100, 250, 400, 800])
    pool = rnd.choice([3, 10, 50, 400])
    a = [rnd.randrange(pool) for _ in range(size)]
    b = list(a)
    for _ in range(rnd.randrange(1 + size // rnd.choice([3, 10, 50]))):
        at = rnd.randrange(len(b) + 1)
        kind = rnd.random()
        if kind < 0.3:
            b.insert(at, rnd.randrange(pool * 2))
        elif kind < 0.6 and at < len(b):
            del b[at]
        elif kind < 0.8 and at < len(b):
            b[at] = rnd.randrange(pool * 2)
        elif kind >= 0.8 and at + 5 < len(b):  # a block moved
            block = b[at:at + rnd.randrange(1, 5)]
            del b[at:at + len(block)]
            position = rnd.randrange(len(b) + 1)
            b[position:position] = block
    return (b, a) if rnd.random() < 0.3 else (a, b)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(id_pairs())
def test_the_matchers_blocks_are_difflibs(pair: tuple[list[int], list[int]]) -> None:
    """With no budget limit, the matcher finds `SequenceMatcher.get_matching_blocks()`,
    whether its runs are in order (each part a range of them) or not (a list each)."""
    a, b = pair
    expected = [tuple(block) for block in difflib.SequenceMatcher(None, a, b,
                                                                  ).get_matching_blocks()]
    local: dict[int, int] = {}
    b_ids = array("i", (local.setdefault(x, len(local)) for x in b))
    a_ids = array("i", (local.get(x, -1) for x in a))
    matcher = fmt_diff._Matcher(a_ids, b_ids, 10**12)
    event("runs in order" if matcher.best else "runs out of order")
    flat = fmt_diff._joined(matcher.matching_blocks(), len(a), len(b))
    assert [tuple(flat[k:k + 3]) for k in range(0, len(flat), 3)] == expected
