"""The diff `tppolicy fmt --check` prints (`tppolicy.tools.fmt_diff`): the same lines as
`difflib.unified_diff` on the texts' lines, on the cases where its rules show (a line found
more than 1% of the times, line ends `str.splitlines` knows, no line end at the end, lines
whose hashes collide); and where difflib's way would cost more than linear time (many
scattered changes), a diff found by anchors that GNU patch applies.
tests/property/test_fmt_diff.py compares them on generated texts."""

from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import pytest

from tppolicy.tools import fmt_diff
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


# --- many scattered changes: anchors (patience diff) instead of difflib's quadratic way


def _entries(count: int, comment_indent: str, key_end: str = "") -> str:
    return "".join(f"{comment_indent}# entry {i}\n  - name: n{i}{key_end}\n    owner: o{i // 5}\n"
                   f"    env: pypi\n    id: \"{i // 5}\"\n    repo: r{i}\n" for i in range(count))


def _patched(a: str, diff: list[str], tmp_path: Path) -> str:
    """`a` with `diff` applied by GNU patch (fmt's "no newline at end of file" lines
    added as fmt adds them)."""
    original, patch_file, result = tmp_path / "a", tmp_path / "d.patch", tmp_path / "out"
    original.write_bytes(a.encode())
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in diff)
    patch_file.write_bytes(text.encode())
    subprocess.run(["patch", "--binary", "--silent", "--force", "-o", str(result),
                    str(original), str(patch_file)], check=True)
    return result.read_bytes().decode()


@pytest.mark.slow  # 1.4 s: the default run's budget
def test_scattered_changes_in_order_stay_difflibs() -> None:
    """A change in each of 600 entries, nothing moved: the runs of matching lines are in
    order in both texts, so each part of difflib's way is a range of them, looked up in a
    few steps (it took steps growing as the square of the entries, past the budget, and
    fell back to anchors): the diff is difflib's, its comment line out and in, in each
    entry (one hunk: entries are 6 lines long), and 10 000 entries stay within the budget."""
    a, b = _entries(600, ""), _entries(600, "  ")
    found = _mine(a, b)
    assert found == _difflib(a, b)
    assert [line for line in found if line.startswith("@@ ")] == ["@@ -1,3598 +1,3598 @@\n"]
    assert found[3:6] == ["-# entry 0\n", "+  # entry 0\n", "   - name: n0\n"]
    for key_end in ("", "  "):  # comments re-indented, or every key line changed as well
        a, b = _entries(10_000, ""), _entries(10_000, "  ", key_end)
        a_ids, b_ids = fmt_diff._line_ids(fmt_diff._Lines(a), fmt_diff._Lines(b), hash)
        assert fmt_diff._exact_blocks(a_ids, b_ids, fmt_diff._EXACT_STEPS,
                                      renumber=False) is not None


def test_scattered_changes_and_a_move_leave_difflibs_way(tmp_path: Path) -> None:
    """A change in each of 2 000 entries and the last entry moved first: the runs are out
    of order, difflib's matcher would take steps growing as the square of the entries,
    past the budget; the anchored diff is one GNU patch applies, the moved entry out and
    in and each comment line out and in."""
    a = _entries(2000, "")
    entries = ["  # entry " + e for e in a.split("# entry ")[1:]]
    b = "".join(entries[-1:] + entries[:-1])
    a_ids, b_ids = fmt_diff._line_ids(fmt_diff._Lines(a), fmt_diff._Lines(b), hash)
    assert fmt_diff._exact_blocks(a_ids, b_ids, fmt_diff._EXACT_STEPS, renumber=False) is None
    found = _mine(a, b)
    changed = [line for line in found[2:] if line[0] in "+-"]
    assert [line for line in changed if "# entry 1\n" in line] == [
        "-# entry 1\n", "+  # entry 1\n"]
    assert len(changed) == 2 * 2000 + 5 + 5  # (the moved entry's other lines: 5 in, 5 out)
    assert _patched(a, found, tmp_path) == b


def test_anchored_diff_on_every_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no budget for difflib's way, every case still gives a diff patch applies, with
    `context` lines around each change; a part with no anchors and no budget is replaced."""
    for gap_steps in (0, 1000):
        monkeypatch.setattr(fmt_diff, "_EXACT_STEPS", 0)
        monkeypatch.setattr(fmt_diff, "_EXACT_STEPS_PER_LINE", 0)
        monkeypatch.setattr(fmt_diff, "_GAP_STEPS", gap_steps)
        for name, (a, b) in sorted(CASES.items()):
            if "\r" in a + b or "\x0b" in a + b:
                continue  # patch knows "\n" line ends only
            for x, y in ((a, b), (b, a)):
                found = _mine(x, y)
                assert (found == []) == (x == y), name
                assert _patched(x, found, tmp_path) == y, name


def test_anchored_hunks_keep_three_lines_of_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fmt_diff, "_EXACT_STEPS", 0)
    monkeypatch.setattr(fmt_diff, "_EXACT_STEPS_PER_LINE", 0)
    a = "".join(f"{i}\n" for i in range(30))
    b = a.replace("\n10\n", "\nten\n")
    assert _mine(a, b) == ["--- old\n", "+++ new\n", "@@ -8,7 +8,7 @@\n", " 7\n", " 8\n",
                           " 9\n", "-10\n", "+ten\n", " 11\n", " 12\n", " 13\n"]


def test_anchors_have_a_budget_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the anchors' budget, what is left between the texts' equal ends is replaced
    whole: still a diff patch applies."""
    for name in ("_EXACT_STEPS", "_EXACT_STEPS_PER_LINE", "_GAP_STEPS", "_ANCHOR_STEPS_PER_LINE"):
        monkeypatch.setattr(fmt_diff, name, 0)
    a, b = _entries(50, ""), _entries(50, "  ")
    found = _mine(a, b)
    assert found[2:4] == ["@@ -1,298 +1,298 @@\n", "-# entry 0\n"]
    assert sum(line.startswith(" ") for line in found) == 3  # the end's context only
    assert _patched(a, found, tmp_path) == b
    monkeypatch.setattr(fmt_diff, "_ANCHOR_STEPS_PER_LINE", 40)
    assert found != _mine(a, b) == _difflib(a, b)
