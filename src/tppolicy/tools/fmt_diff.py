"""The unified diff `tppolicy fmt --check` and `--diff` print, in little memory and
near-linear time.

`iter_unified_diff_texts(a, b, ...)` yields the lines that
`difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True), ...)` yields,
and finds them the same way (`difflib.SequenceMatcher`'s longest matching blocks, with its
"popular line" rule, then its grouping into hunks), as long as that takes a number of
steps linear in the texts' sizes (`_EXACT_STEPS`, `_EXACT_STEPS_PER_LINE`): small and
ordinary files, and many scattered changes with nothing moved (a comment re-indented in
each of 10 000 entries: its runs of matching lines are in order, and each part of its
search is a range of them, `_Matcher._ranged_blocks`). With lines moved as well, difflib's
way can grow as the square of the changes; past the budget the blocks are found by
anchors instead (patience diff, `_anchored_blocks`), themselves under a linear budget.

It never holds the two texts' lines as strings: a line is where it ends in its text (an
`array` of offsets), and the matchers run on small integer ids, one per distinct line of
`b`. The lines `b` has and where (the matcher's `b2j`) are two arrays, not a dictionary of
lists; a line of `a` that `b` lacks is id -1. The hunks are written as they are found, one
line at a time.

`tests/property/test_fmt_diff.py` checks it against `difflib` on generated pairs of texts,
and that GNU patch applies its diffs (budgets taken away too).
"""
from __future__ import annotations

import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator

__all__ = ["iter_unified_diff_texts"]

# Where `str.splitlines` breaks a line: each of these ends one ("\r\n" is one line end).
_LINE_END = re.compile("\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_OTHER_END = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_ABSENT = -1  # the id of a line of `a` that `b` does not have


def _line_ends(text: str) -> array[int]:
    """Where each line of `text` ends (past its line end), as `str.splitlines` splits it."""
    ends = array("I" if len(text) < 2**32 else "Q")
    if _OTHER_END.search(text) is None:  # "\n" only: found faster
        position = text.find("\n")
        while position >= 0:
            ends.append(position + 1)
            position = text.find("\n", position + 1)
    else:
        ends.extend(found.end() for found in _LINE_END.finditer(text))
    if (ends[-1] if ends else 0) != len(text):
        ends.append(len(text))  # a last line without a line end
    return ends


class _Lines:
    """The lines of one text, by number: each is `text[start(k):ends[k]]`."""

    __slots__ = ("ends", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.ends = _line_ends(text)

    def __len__(self) -> int:
        return len(self.ends)

    def start(self, number: int) -> int:
        """Where line `number` starts."""
        return self.ends[number - 1] if number else 0

    def line(self, number: int) -> str:
        """Line `number`, with its line end."""
        return self.text[self.start(number):self.ends[number]]

    def same(self, number: int, line: str) -> bool:
        """Whether line `number` is `line`."""
        start = self.start(number)
        return self.ends[number] - start == len(line) and self.text.startswith(line, start)


class _Ids:
    """Each distinct line of `b` numbered in order of first appearance, by the hash of its
    text; a line is compared with the first line of its id, and a hash shared by two
    different lines (not seen in practice) sends the second to a dictionary of texts."""

    __slots__ = ("by_hash", "by_text", "first", "hash", "lines")

    def __init__(self, lines: _Lines, hasher: Callable[[str], int] = hash) -> None:
        self.lines = lines
        self.hash = hasher
        self.by_hash: dict[int, int] = {}
        self.by_text: dict[str, int] = {}  # lines whose hash an other line has
        self.first = array("I")  # the first line of each id

    def find(self, line: str) -> int:
        """The id of `line`, or `_ABSENT`."""
        found = self.by_hash.get(self.hash(line))
        if found is None:
            return _ABSENT
        if self.lines.same(self.first[found], line):
            return found
        return self.by_text.get(line, _ABSENT)

    def add(self, number: int, line: str) -> int:
        """The id of `line`, line `number` of `b`, given a new one if it has none."""
        key = self.hash(line)
        found = self.by_hash.get(key)
        if found is not None and self.lines.same(self.first[found], line):
            return found
        if found is not None:
            found = self.by_text.get(line)
            if found is not None:
                return found
        new = len(self.first)
        self.first.append(number)
        if key in self.by_hash:
            self.by_text[line] = new
        else:
            self.by_hash[key] = new
        return new


_LONG = 2  # runs of matching lines this long or longer are indexed (`_Matcher.runs`)


class _Matcher:
    """`difflib.SequenceMatcher(None, a, b)` (no junk, autojunk on) on line ids.

    `SequenceMatcher` finds the longest matching block of the whole texts, then again on
    each side of it, scanning every line of each part again: on a large file with many
    small changes (a comment moved in each entry) that was minutes. Here the runs of at
    least `_LONG` matching lines that its scan counts (lines not "popular") are found
    once, and a part's longest block is the longest run clipped to the part (the one
    ending first, as its scan meets it first); only a part where no such run is `_LONG`
    long is scanned as `SequenceMatcher` scans it.
    """

    __slots__ = ("a", "b", "best", "budget", "end_i", "end_j", "order", "run_i", "run_j",
                 "run_size", "starts")

    def __init__(self, a: array[int], b: array[int], budget: int) -> None:
        """`a` and `b` are line ids (`b`'s numbered 0, 1, ... in order of first appearance,
        `_ABSENT` in `a` for a line `b` lacks); `budget` bounds the steps the matcher may
        take (`_TooCostly` past it)."""
        self.a, self.b, self.budget = a, b, budget
        counts = array("I", bytes(array("I").itemsize * (max(self.b, default=-1) + 1)))
        for x in self.b:
            counts[x] += 1
        # difflib leaves out of its index ("popular") a line found more than 1% of the
        # times in a `b` of 200 lines or more
        limit = len(self.b) // 100 + 1 if len(self.b) >= 200 else len(self.b) + 1
        self.starts = starts = array("I", [0])
        for count in counts:
            starts.append(starts[-1] + (count if count <= limit else 0))
        del counts
        # b2j: the lines of id x are order[starts[x]:starts[x + 1]], in increasing order
        self.order = order = array("I", bytes(array("I").itemsize * starts[-1]))
        filled = array("I", starts[:-1])
        for j, x in enumerate(self.b):
            if starts[x + 1] > starts[x]:
                order[filled[x]] = j
                filled[x] += 1
        del filled
        self.run_i, self.run_j, self.run_size = array("i"), array("i"), array("i")
        self._find_runs()
        # Runs one after the other in both texts (the usual case: lines changed, added or
        # removed, none moved): a part's runs are then a range of them (`_ranged_blocks`)
        self.end_i = self.end_j = array("i")
        self.best: list[array[int]] = []
        if self._in_order():
            self.end_i = array("i", map(int.__add__, self.run_i, self.run_size))
            self.end_j = array("i", map(int.__add__, self.run_j, self.run_size))
            self._index_longest()

    def _find_runs(self) -> None:
        """Every maximal run of at least `_LONG` lines of `a` equal to lines of `b`, one
        after the other in both, none of them popular: where it starts in each, its size."""
        a, order, starts = self.a, self.order, self.starts
        j2len: dict[int, int] = {}
        for i in range(len(a) + 1):
            newj2len: dict[int, int] = {}
            x = a[i] if i < len(a) else -1
            if x >= 0:
                self._spend(1 + starts[x + 1] - starts[x] + len(j2len))
                previous = j2len.get
                for position in range(starts[x], starts[x + 1]):
                    j = order[position]
                    newj2len[j] = previous(j - 1, 0) + 1
            for j, k in j2len.items():  # the runs that end on the line before
                if k >= _LONG and j + 1 not in newj2len:
                    self.run_i.append(i - k)
                    self.run_j.append(j - k + 1)
                    self.run_size.append(k)
            j2len = newj2len

    def _in_order(self) -> bool:
        """Whether each run starts, in both texts, at or after the end of the one before."""
        run_i, run_j, run_size = self.run_i, self.run_j, self.run_size
        return all(run_i[k] + run_size[k] <= run_i[k + 1] and run_j[k] + run_size[k] <= run_j[k + 1]
                   for k in range(len(run_size) - 1))

    def _index_longest(self) -> None:
        """A sparse table of the runs' sizes: `best[p][k]` is the first of the longest runs
        among runs k to k + 2**p - 1."""
        sizes = self.run_size
        level = array("i", range(len(sizes)))
        self._spend(len(sizes))
        self.best = [level]
        width = 1
        while 2 * width <= len(sizes):
            self._spend(len(level))
            level = array("i", [x if sizes[x] >= sizes[y] else y
                                for x, y in zip(level, level[width:], strict=False)])
            self.best.append(level)
            width *= 2

    def _first_longest(self, lo: int, hi: int) -> int:
        """The first of the longest runs among runs lo to hi - 1 (lo < hi)."""
        power = (hi - lo).bit_length() - 1
        level = self.best[power]
        x, y = level[lo], level[hi - (1 << power)]
        return x if self.run_size[x] >= self.run_size[y] else y

    def _spend(self, steps: int) -> None:
        """Count `steps` against the budget; `_TooCostly` once it is spent."""
        self.budget -= steps
        if self.budget < 0:
            raise _TooCostly

    def _longest_run(self, alo: int, ahi: int, blo: int, bhi: int, runs: list[int],
                     ) -> tuple[int, int, int, list[int]]:
        """The longest of `runs` clipped to the part (the one ending first of those), as
        (start in a, start in b, size), and the runs that reach into the part."""
        run_i, run_j, run_size = self.run_i, self.run_j, self.run_size
        self._spend(1 + len(runs))
        best = end_i = end_j = 0
        inside = []
        for run in runs:
            i0, j0 = run_i[run], run_j[run]
            first = max(0, alo - i0, blo - j0)
            last = min(run_size[run], ahi - i0, bhi - j0)
            size = last - first
            if size <= 0:
                continue
            inside.append(run)
            if size > best or (size == best and (i0 + last, j0 + last) < (end_i, end_j)):
                best, end_i, end_j = size, i0 + last, j0 + last
        return end_i - best, end_j - best, best, inside

    def _reaching(self, runs: list[int], i: int, j: int, before: bool) -> list[int]:
        """The `runs` that reach before line `i` of a and `j` of b (`before`), or after."""
        run_i, run_j, run_size = self.run_i, self.run_j, self.run_size
        self._spend(1 + len(runs))
        if before:
            return [r for r in runs if run_i[r] < i and run_j[r] < j]
        return [r for r in runs if run_i[r] + run_size[r] > i and run_j[r] + run_size[r] > j]

    def longest_match(self, alo: int, ahi: int, blo: int, bhi: int, runs: list[int],
                      ) -> tuple[int, int, int, list[int]]:
        """`SequenceMatcher.find_longest_match(alo, ahi, blo, bhi)`, and the `runs` that
        reach into the part."""
        besti, bestj, bestsize, inside = self._longest_run(alo, ahi, blo, bhi, runs)
        return (*self._extended(alo, ahi, blo, bhi, besti, bestj, bestsize), inside)

    def _extended(self, alo: int, ahi: int, blo: int, bhi: int, besti: int, bestj: int,
                  bestsize: int) -> tuple[int, int, int]:
        """The longest block of the part, from its longest run (`besti`, `bestj`,
        `bestsize`): scanned for if that is shorter than `_LONG`, then extended by the
        equal (popular) lines on each side, as `SequenceMatcher` extends it."""
        a, b = self.a, self.b
        if bestsize < _LONG:
            besti, bestj, bestsize = self._scan(alo, ahi, blo, bhi)
        while besti > alo and bestj > blo and a[besti - 1] == b[bestj - 1]:
            besti, bestj, bestsize = besti - 1, bestj - 1, bestsize + 1
        while (besti + bestsize < ahi and bestj + bestsize < bhi
               and a[besti + bestsize] == b[bestj + bestsize]):
            bestsize += 1
        return besti, bestj, bestsize

    def _scan(self, alo: int, ahi: int, blo: int, bhi: int) -> tuple[int, int, int]:
        """The longest block of the part before its extension, as
        `SequenceMatcher.find_longest_match` finds it, in a part with no run of two lines
        (`_LONG`: the runs were asked first): every block of it is one line, so the first
        its scan meets (the first line of a found in b's part, at its first place there)
        is the longest, and the scan stops there."""
        a, order, starts = self.a, self.order, self.starts
        for i in range(alo, ahi):
            x = a[i]
            if x < 0:
                continue
            low, high = starts[x], starts[x + 1]
            if low == high:
                continue
            position = bisect_left(order, blo, low, high)
            if position < high and order[position] < bhi:
                self._spend(1 + i - alo)
                return i, order[position], 1
        self._spend(1 + ahi - alo)
        return alo, blo, 0

    def _ranged_run(self, alo: int, ahi: int, blo: int, bhi: int, lo: int, hi: int,
                    ) -> tuple[int, int, int]:
        """`_longest_run` when the runs are in order (`_in_order`) and those reaching into
        the part are runs lo to hi - 1: all but the first and the last lie inside it whole,
        and the first of the longest of those is looked up (`_first_longest`)."""
        self._spend(1)
        run_i, run_j, run_size = self.run_i, self.run_j, self.run_size
        best = end_i = end_j = 0
        middle = self._first_longest(lo + 1, hi - 1) if hi - lo > 2 else lo
        for run in (lo, middle, hi - 1):  # in order: the first of the longest wins
            if run < lo or run >= hi:
                continue
            i0, j0 = run_i[run], run_j[run]
            first = max(0, alo - i0, blo - j0)
            last = min(run_size[run], ahi - i0, bhi - j0)
            if last - first > best:
                best, end_i, end_j = last - first, i0 + last, j0 + last
        return end_i - best, end_j - best, best

    def matching_blocks(self) -> list[tuple[int, int, int]]:
        """The blocks `SequenceMatcher.get_matching_blocks()` finds, in order, not yet
        joined (`_TooCostly` if the budget runs out first)."""
        if self.best:
            return self._ranged_blocks()
        la, lb = len(self.a), len(self.b)
        queue = [(0, la, 0, lb, list(range(len(self.run_size))))]
        blocks = []
        while queue:
            alo, ahi, blo, bhi, runs = queue.pop()
            i, j, k, inside = self.longest_match(alo, ahi, blo, bhi, runs)
            if k:
                blocks.append((i, j, k))
                # each side gets the runs that reach into it (a list per part waiting in
                # the queue: not the whole part's, which made memory grow as the square)
                if alo < i and blo < j:
                    queue.append((alo, i, blo, j, self._reaching(inside, i, j, True)))
                if i + k < ahi and j + k < bhi:
                    queue.append((i + k, ahi, j + k, bhi,
                                  self._reaching(inside, i + k, j + k, False)))
        blocks.sort()
        return blocks

    def _ranged_blocks(self) -> list[tuple[int, int, int]]:
        """`matching_blocks` when the runs are in order: a part's runs are a range of them
        (those ending past its start and starting before its end, in both texts), found by
        bisection; each part costs a few steps, not one per run reaching into it."""
        run_i, run_j, end_i, end_j = self.run_i, self.run_j, self.end_i, self.end_j
        queue = [(0, len(self.a), 0, len(self.b), 0, len(self.run_size))]
        blocks = []
        while queue:
            alo, ahi, blo, bhi, lo, hi = queue.pop()
            i, j, k = self._extended(alo, ahi, blo, bhi,
                                     *self._ranged_run(alo, ahi, blo, bhi, lo, hi))
            if k:
                blocks.append((i, j, k))
                if alo < i and blo < j:
                    top = min(bisect_left(run_i, i, lo, hi), bisect_left(run_j, j, lo, hi))
                    queue.append((alo, i, blo, j, lo, top))
                if i + k < ahi and j + k < bhi:
                    bottom = max(bisect_right(end_i, i + k, lo, hi),
                                 bisect_right(end_j, j + k, lo, hi))
                    queue.append((i + k, ahi, j + k, bhi, bottom, hi))
        blocks.sort()
        return blocks


class _TooCostly(Exception):
    """The exact matcher's budget is spent (see `_matching_blocks`)."""


def _joined(blocks: Iterable[tuple[int, int, int]], la: int, lb: int) -> array[int]:
    """Matching blocks in order, adjacent ones joined, ended by `(la, lb, 0)` (as
    `SequenceMatcher.get_matching_blocks()` gives them), flat: i, j, size, i, j, ..."""
    i1 = j1 = k1 = 0
    joined = array("q")
    for i2, j2, k2 in blocks:
        if i1 + k1 == i2 and j1 + k1 == j2:
            k1 += k2
        else:
            if k1:
                joined.extend((i1, j1, k1))
            i1, j1, k1 = i2, j2, k2
    if k1:
        joined.extend((i1, j1, k1))
    joined.extend((la, lb, 0))
    return joined


def _opcodes(blocks: array[int]) -> Iterator[tuple[str, int, int, int, int]]:
    """`SequenceMatcher.get_opcodes()` from its matching blocks (flat, as `_joined`
    gives them), one at a time."""
    i = j = 0
    for at in range(0, len(blocks), 3):
        ai, bj, size = blocks[at], blocks[at + 1], blocks[at + 2]
        tag = ""
        if i < ai and j < bj:
            tag = "replace"
        elif i < ai:
            tag = "delete"
        elif j < bj:
            tag = "insert"
        if tag:
            yield tag, i, ai, j, bj
        i, j = ai + size, bj + size
        if size:
            yield "equal", ai, i, bj, j


def _grouped_opcodes(blocks: array[int], n: int,
                     ) -> Iterator[list[tuple[str, int, int, int, int]]]:
    """`SequenceMatcher.get_grouped_opcodes(n)` from its matching blocks (flat)."""
    codes = _opcodes(blocks)
    code = next(codes, None)
    if code is None:
        code = ("equal", 0, 1, 0, 1)
    if code[0] == "equal":
        tag, i1, i2, j1, j2 = code
        code = tag, max(i1, i2 - n), i2, max(j1, j2 - n), j2
    group: list[tuple[str, int, int, int, int]] = []
    while code is not None:
        following = next(codes, None)
        tag, i1, i2, j1, j2 = code
        if following is None and tag == "equal":  # the last
            i2, j2 = min(i2, i1 + n), min(j2, j1 + n)
        if tag == "equal" and i2 - i1 > n + n:
            group.append((tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)))
            yield group
            group = []
            i1, j1 = max(i1, i2 - n), max(j1, j2 - n)
        group.append((tag, i1, i2, j1, j2))
        code = following
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        yield group


def _range(start: int, stop: int) -> str:
    """A hunk's range of lines as a unified diff writes it (`difflib`'s rule)."""
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start + 1 if length else start},{length}"


def _line_ids(a: _Lines, b: _Lines, hasher: Callable[[str], int],
              ) -> tuple[array[int], array[int]]:
    """The lines of `a` and `b` as ids: `b`'s numbered in order of first appearance, a line
    of `a` that `b` lacks `_ABSENT`."""
    ids = _Ids(b, hasher)
    b_ids = array("i", (ids.add(number, b.line(number)) for number in range(len(b))))
    a_ids = array("i", (ids.find(a.line(number)) for number in range(len(a))))
    return a_ids, b_ids


# The exact matcher's budget: this many steps, and this many more per line of both texts.
# Past it (many scattered changes: difflib's way is then quadratic), anchors are used.
_EXACT_STEPS = 200_000
_EXACT_STEPS_PER_LINE = 8
_GAP_STEPS = 1000  # the same, for a part between anchors that has none of its own
# Anchors are sought in parts of at most this many lines in all, per line of both texts
# (patience diff's recursion can be deep on odd texts); past it, parts are replaced whole.
_ANCHOR_STEPS_PER_LINE = 40


def _exact_blocks(a: array[int], b: array[int], extra: int, renumber: bool = True,
                  ) -> list[tuple[int, int, int]] | None:
    """`difflib`'s matching blocks of the id lists `a` and `b`, or None if finding them
    takes more than `extra` steps plus `_EXACT_STEPS_PER_LINE` a line. Ids are renumbered
    first (`renumber`) unless they are already as `_Matcher` takes them."""
    if renumber:
        local: dict[int, int] = {}
        b = array("i", (local.setdefault(x, len(local)) for x in b))
        a = array("i", (local.get(x, _ABSENT) for x in a))
        del local
    budget = extra + _EXACT_STEPS_PER_LINE * (len(a) + len(b))
    try:
        return _Matcher(a, b, budget).matching_blocks()
    except _TooCostly:
        return None


class _Anchors:
    """A part's anchors, with the part's ends as anchors before and after them: `i[k]`,
    `j[k]` in a and b, and `next` the gap to match next (between anchors next, next + 1)."""

    __slots__ = ("i", "j", "next")

    def __init__(self, i: array[int], j: array[int]) -> None:
        self.i, self.j, self.next = i, j, 0


class _Counts:
    """For each id, how often it is found in a part of a and of b, and where in b (all
    zero between parts: a part's counts are taken back when its anchors are found)."""

    __slots__ = ("at_b", "in_a", "in_b")

    def __init__(self, ids: int) -> None:
        zeros = bytes(array("i").itemsize * ids)
        self.in_a, self.in_b, self.at_b = array("i", zeros), array("i", zeros), array("i", zeros)


def _unique_anchors(a: array[int], b: array[int], alo: int, ahi: int, blo: int, bhi: int,
                    counts: _Counts) -> _Anchors | None:
    """The lines found once in `a[alo:ahi]` and once in `b[blo:bhi]`, the longest run of
    them in the same order in both (patience diff's anchors), or None if there are none."""
    in_a, in_b, at_b = counts.in_a, counts.in_b, counts.at_b
    for j in range(blo, bhi):
        x = b[j]
        in_b[x] += 1
        at_b[x] = j
    for i in range(alo, ahi):
        if a[i] >= 0:
            in_a[a[i]] += 1
    # the pairs (i, j) of those lines, in the order of a
    pair_i, pair_j = array("i"), array("i")
    for i in range(alo, ahi):
        x = a[i]
        if x >= 0 and in_a[x] == 1 and in_b[x] == 1:
            pair_i.append(i)
            pair_j.append(at_b[x])
    for j in range(blo, bhi):
        in_b[b[j]] = 0
    for i in range(alo, ahi):
        if a[i] >= 0:
            in_a[a[i]] = 0
    if not pair_i:
        return None
    # the longest run of pairs whose j increase (patience sorting)
    tails = array("i")  # tails[k]: the least last j of a run of k + 1 pairs so far
    tail_at = array("i")  # ... and which pair ends it
    before = array("i", pair_i)  # the pair before each in its run (overwritten)
    for index, j in enumerate(pair_j):
        k = bisect_left(tails, j)
        if k == len(tails):
            tails.append(j)
            tail_at.append(index)
        else:
            tails[k] = j
            tail_at[k] = index
        before[index] = tail_at[k - 1] if k else -1
    count = len(tails)
    anchor_i = array("i", bytes(array("i").itemsize * (count + 2)))
    anchor_j = array("i", anchor_i)
    anchor_i[0], anchor_j[0] = alo - 1, blo - 1
    anchor_i[-1], anchor_j[-1] = ahi, bhi
    index = tail_at[-1]
    for k in range(count, 0, -1):
        anchor_i[k], anchor_j[k] = pair_i[index], pair_j[index]
        index = before[index]
    return _Anchors(anchor_i, anchor_j)


def _anchored_blocks(a: array[int], b: array[int]) -> Iterator[tuple[int, int, int]]:
    """Matching blocks of `a` and `b` in order, found in near-linear time: equal lines at
    both ends of a part, then the lines found once in both the part's sides (in the longest
    order they share) as anchors, and the same again in the parts between them; a part
    without such lines is matched by `difflib`'s way if that is cheap, else replaced whole
    (as are all parts left once `_ANCHOR_STEPS_PER_LINE` is spent)."""
    counts = _Counts(max(b, default=-1) + 1)
    budget = _EXACT_STEPS + _ANCHOR_STEPS_PER_LINE * (len(a) + len(b))
    # taken from the end, so that blocks come out in order: parts to match (alo, ahi, blo,
    # bhi), blocks found (i, -1, j, size), and anchors with gaps between them to match
    stack: list[tuple[int, int, int, int] | _Anchors] = [(0, len(a), 0, len(b))]
    while stack:
        item = stack.pop()
        if isinstance(item, _Anchors):
            gap = item.next
            if gap:
                yield item.i[gap], item.j[gap], 1
            if gap + 2 < len(item.i):
                item.next += 1
                stack.append(item)
            stack.append((item.i[gap] + 1, item.i[gap + 1], item.j[gap] + 1, item.j[gap + 1]))
            continue
        alo, ahi, blo, bhi = item
        if ahi == -1:
            yield alo, blo, bhi
            continue
        start = 0
        while alo + start < ahi and blo + start < bhi and a[alo + start] == b[blo + start]:
            start += 1
        end = 0
        while (alo + start < ahi - end and blo + start < bhi - end
               and a[ahi - end - 1] == b[bhi - end - 1]):
            end += 1
        if start:
            yield alo, blo, start
        if end:
            stack.append((ahi - end, -1, bhi - end, end))
        alo, blo, ahi, bhi = alo + start, blo + start, ahi - end, bhi - end
        if alo == ahi or blo == bhi:
            continue
        budget -= ahi - alo + bhi - blo
        if budget < 0:
            continue
        anchors = _unique_anchors(a, b, alo, ahi, blo, bhi, counts)
        if anchors is not None:
            stack.append(anchors)
            continue
        found = _exact_blocks(a[alo:ahi], b[blo:bhi], _GAP_STEPS)
        for i, j, size in found or ():
            yield alo + i, blo + j, size


def _matching_blocks(a: array[int], b: array[int]) -> array[int]:
    """The matching blocks of the diff: `difflib`'s, unless finding them costs more than
    a budget linear in the texts' sizes (many scattered changes); then anchored ones."""
    found = _exact_blocks(a, b, _EXACT_STEPS, renumber=False)
    if found is None:
        return _joined(_anchored_blocks(a, b), len(a), len(b))
    return _joined(found, len(a), len(b))


def iter_unified_diff_texts(a: str, b: str, fromfile: str = "", tofile: str = "",
                            context: int = 3, hasher: Callable[[str], int] = hash,
                            ) -> Iterator[str]:
    """The lines of the unified diff from `a` to `b`, `context` lines around each change.
    Where `difflib` finds its answer in time linear in the texts' sizes (ordinary files,
    and small ones), they are exactly `difflib.unified_diff(a.splitlines(keepends=True),
    b.splitlines(keepends=True), fromfile, tofile, n=context)`'s lines, with less memory
    (see the module's text); else the diff is found by anchors (patience diff). `hasher`
    numbers the lines (a test gives one under which different lines collide)."""
    old, new = _Lines(a), _Lines(b)
    blocks = _matching_blocks(*_line_ids(old, new, hasher))
    started = False
    for group in _grouped_opcodes(blocks, context):
        if not started:
            started = True
            yield f"--- {fromfile}\n"
            yield f"+++ {tofile}\n"
        first, last = group[0], group[-1]
        yield f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@\n"
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for number in range(i1, i2):
                    yield " " + old.line(number)
                continue
            if tag in ("replace", "delete"):
                for number in range(i1, i2):
                    yield "-" + old.line(number)
            if tag in ("replace", "insert"):
                for number in range(j1, j2):
                    yield "+" + new.line(number)
