"""Static analysis of field patterns (`matches "<regex>"`): refuse a pattern whose matching
time can grow exponentially with the value it is run on.

Python's `re` backtracks: when a value fails to match, it tries every way the pattern could
have matched its beginning. A repetition whose iterations can split the same text in more
than one way (`(a+)+`, `(a|a)*`, `(\\w+\\s?)*`, `([a-z]+-?)*`) has 2^n such ways on a value of
n characters, and a crafted publisher value keeps a check busy for years.

The analysis builds the pattern's position automaton (Glushkov's: one state per character
class occurrence, a transition for each way one occurrence can follow another) and looks, in
every loop of it, for

* a transition made in two ways (`(a+)+`: the inner `+` and the outer one both go from `a`
  back to `a`), or
* two different paths that read the same text and meet again (`(a|a)*`, `((a|ab)b)*`):
  a strongly connected part of the automaton's square holding a pair (q, q) and a pair
  (p, r) with p != r.

Either gives exponentially many ways to match, which is exactly the exponential case of
backtracking (Weber and Seidl's criterion for the degree of ambiguity of an automaton).
Lookarounds are analysed on their own; anchors count as matching nothing. Bounded counts
are expanded when small (`[0-9a-f]{4}`), and otherwise treated as unbounded, which can only
find more ambiguity. Character classes are exact over ASCII, and group the other characters
by what `\\d`, `\\w` and `\\s` say of them (a class naming other characters explicitly counts
as holding all of them). So the analysis may refuse a harmless pattern, never miss an
exponential one.

Polynomial cost comes from consecutive loops that can share out the same text (`.*a.*a`:
the cut between the two `.*` can be anywhere, n^2 steps): a chain of more than
`MAX_OVERLAPPING_LOOPS` (2) such loops is refused, and the n^2 that remains is bounded by
the length cap on values (`tppolicy.limits.MAX_PATTERN_VALUE`). Back references are
refused: their matching has no such bound.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["MAX_OVERLAPPING_LOOPS", "PatternProblem", "anchored", "overlapping_loops",
           "pattern_problem"]

_sre: Any = importlib.import_module("re._parser")
_C: Any = importlib.import_module("re._constants")

# Symbols: the 128 ASCII characters, then four groups of the others (exact for \d, \w, \s).
_NON_ASCII_DIGIT, _NON_ASCII_WORD, _NON_ASCII_SPACE, _NON_ASCII_OTHER = 128, 129, 130, 131
_NON_ASCII = sum(1 << s for s in range(128, 132))
_FULL = (1 << 132) - 1
_ASCII = (1 << 128) - 1


def _bits(chars: str) -> int:
    mask = 0
    for c in chars:
        mask |= 1 << ord(c)
    return mask


_DIGIT = _bits("0123456789")
_WORD = _bits("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_SPACE = _bits(" \t\n\r\f\v\x1c\x1d\x1e\x1f")
_LETTERS = _bits("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

# Counts up to this many positions in all are expanded exactly ({4}, {1,3}); larger ones, and
# unbounded ones, become a loop. A loop (strongly connected part) of more positions than
# _MAX_LOOP, or an analysis of more than _MAX_WORK steps, is refused as too complex.
_EXPAND = 16
# The flags as plain integers (`re.RegexFlag & int` goes through enum, slowly).
_IGNORECASE, _DOTALL, _ASCII_ONLY = int(re.IGNORECASE), int(re.DOTALL), int(re.ASCII)
# Loops a failing value's text can be shared out among in overlapping ways (`a*a*`: n ways
# to cut, cost n^2 on a value of n characters); more are refused (n^3 on a value of
# MAX_PATTERN_VALUE characters is 10^9 steps).
MAX_OVERLAPPING_LOOPS = 2
_MAX_LOOP = 120
_MAX_WORK = 400_000


@dataclass(frozen=True, slots=True)
class PatternProblem:
    """Why a pattern is refused: `message` (what is wrong), `hint` (what to change),
    `start`, `end`: the part of the pattern at fault (character offsets in the pattern), and
    `kind`: "exponential", "polynomial" (too many overlapping loops), "reference" (a back
    reference) or "complex" (too complex to analyse)."""

    message: str
    hint: str
    start: int
    end: int
    kind: str


class _TooComplex(Exception):
    pass


class _Refused(Exception):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def _symbol(c: int) -> int:
    """The symbol mask of one character."""
    if c < 128:
        return 1 << c
    ch = chr(c)
    if ch.isspace():  # \s (Unicode): no space is a word character
        return 1 << _NON_ASCII_SPACE
    if re.match(r"\d", ch):
        return 1 << _NON_ASCII_DIGIT
    if re.match(r"\w", ch):
        return 1 << _NON_ASCII_WORD
    return 1 << _NON_ASCII_OTHER


def _fold(mask: int, flags: int) -> int:
    """`mask` with the other case of its letters when the pattern ignores case (and, as some
    non-ASCII letters match ASCII ones then, the non-ASCII word characters)."""
    if not flags & _IGNORECASE or not mask & (_LETTERS | _NON_ASCII):
        return mask
    letters = mask & _LETTERS
    mask |= (letters << 32) & _LETTERS | (letters >> 32) & _LETTERS  # 'A' + 32 == 'a'
    return mask | (1 << _NON_ASCII_WORD) | (_LETTERS if mask & _NON_ASCII else 0)


def _category(name: Any, flags: int) -> int:
    """The exact mask of \\d, \\w, \\s and their negations."""
    text = str(name).removeprefix("CATEGORY_").removeprefix("UNI_").removeprefix("LOC_")
    negate = text.startswith("NOT_")
    text = text.removeprefix("NOT_")
    ascii_only = bool(flags & _ASCII_ONLY)
    if text == "DIGIT":
        mask = _DIGIT | (0 if ascii_only else 1 << _NON_ASCII_DIGIT)
    elif text == "WORD":
        mask = _WORD | (0 if ascii_only else (1 << _NON_ASCII_DIGIT) | (1 << _NON_ASCII_WORD))
    elif text == "SPACE":
        mask = _SPACE | (0 if ascii_only else 1 << _NON_ASCII_SPACE)
    else:  # LINEBREAK
        mask = _bits("\n")
    return _FULL & ~mask if negate else mask


def _char_class(items: Any, flags: int) -> int:
    """The mask of `[...]`: over-approximated (never missing a character it matches)."""
    over = under = 0
    negate = False
    for op, av in items:
        name = op.name
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            over |= _fold(_symbol(av), flags)
            if av < 128:
                under |= _fold(1 << av, flags) & _ASCII
        elif name == "RANGE":
            lo, hi = av
            top = min(hi, 127) + 1
            ascii_part = ((1 << top) - (1 << lo)) if top > lo else 0
            under |= _fold(ascii_part, flags) & _ASCII
            over |= _fold(ascii_part | (_NON_ASCII if hi >= 128 else 0), flags)
        elif name == "CATEGORY":
            mask = _category(av, flags)
            over |= mask
            under |= mask
        else:
            raise _TooComplex(name)
    return _FULL & ~under if negate else over


@dataclass(slots=True)
class _Frag:
    """A part of the automaton: in how many ways it matches the empty text (0, 1, or 2 for
    "more than one"), and the positions it can start and end with, each with the number of
    ways to get there (1 or 2)."""

    empty: int
    first: dict[int, int]
    last: dict[int, int]


_EMPTY = _Frag(1, {}, {})


def _times(ways: dict[int, int], n: int) -> dict[int, int]:
    return ways if n == 1 else dict.fromkeys(ways, 2)  # n is 2: twice each


def _union(a: dict[int, int], b: dict[int, int]) -> dict[int, int]:
    if not a or not b:
        return a or b
    out = dict(a)
    for p, k in b.items():
        out[p] = 2 if p in out else k
    return out


class _Automaton:
    """The position automaton of a pattern, built from `re`'s parse tree."""

    def __init__(self, repeats: dict[int, int]) -> None:
        self.classes: list[int] = []
        # position -> {next position: the repeats (their indexes) whose loop made the
        # transition, or -1 for a sequence}; a transition made in two ways lists two makers.
        self.follow: list[dict[int, list[int]]] = []
        self.repeats = repeats  # id(repeat's av) -> its index among quantifiers in the text
        self.bodies: list[tuple[int, int, int]] = []  # (repeat index, first pos, end pos)
        self.work = 0  # steps of the analysis so far: more than _MAX_WORK is too complex

    def spend(self, steps: int) -> None:
        self.work += steps
        if self.work > _MAX_WORK:
            raise _TooComplex("work")

    def position(self, mask: int) -> _Frag:
        if len(self.classes) > 20_000:
            raise _TooComplex("positions")
        self.classes.append(mask)
        self.follow.append({})
        p = len(self.classes) - 1
        return _Frag(0, {p: 1}, {p: 1})

    def link(self, last: dict[int, int], first: dict[int, int], maker: int) -> None:
        self.spend(len(last) * len(first))
        for p, k in last.items():
            targets = self.follow[p]
            for q, m in first.items():
                makers = targets.get(q)
                if makers is None:
                    targets[q] = [maker] if k * m == 1 else [maker, maker]
                elif len(makers) < 2:
                    makers.append(maker)

    def concat(self, a: _Frag, b: _Frag) -> _Frag:
        self.link(a.last, b.first, -1)
        self.spend(len(a.first) + len(b.last))
        return _Frag(min(2, a.empty * b.empty),
                     _union(a.first, _times(b.first, a.empty)) if a.empty else a.first,
                     _union(b.last, _times(a.last, b.empty)) if b.empty else b.last)

    def sequence(self, items: Any, flags: int) -> _Frag:
        frag = _EMPTY
        for op, av in items:
            frag = self.concat(frag, self.item(op.name, av, flags))
        return frag

    def item(self, op: str, av: Any, flags: int) -> _Frag:
        if op == "LITERAL":
            return self.position(_fold(_symbol(av), flags))
        if op == "NOT_LITERAL":
            return self.position(_FULL & ~_fold(1 << av, flags) if av < 128 else _FULL)
        if op == "ANY":
            return self.position(_FULL if flags & _DOTALL else _FULL & ~_bits("\n"))
        if op == "IN":
            return self.position(_char_class(av, flags))
        if op == "AT":
            return _EMPTY
        if op == "BRANCH":
            frag = _Frag(0, {}, {})
            for alternative in av[1]:
                alt = self.sequence(alternative, flags)
                frag = _Frag(min(2, frag.empty + alt.empty), _union(frag.first, alt.first),
                             _union(frag.last, alt.last))
            return frag
        if op == "SUBPATTERN":
            _group, add, remove, items = av
            return self.sequence(items, (flags | add) & ~remove)
        if op == "ATOMIC_GROUP":
            return self.sequence(av, flags)
        if op in ("ASSERT", "ASSERT_NOT"):
            self.sequence(av[1], flags)  # analysed on its own: not linked to the rest
            return _EMPTY
        if op in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            return self.repeat(av, flags)
        if op in ("GROUPREF", "GROUPREF_EXISTS"):
            raise _Refused("a pattern may not refer back to a group (\\1, (?P=name), "
                           "(?(1)...)): its matching time has no bound",
                           "write the alternatives out instead of referring to a group")
        raise _TooComplex(op)

    def repeat(self, av: Any, flags: int) -> _Frag:
        low, high, items = av
        index = self.repeats.get(id(av), -1)
        if high == 0:
            return _EMPTY
        start = len(self.classes)
        body = self.sequence(items, flags)
        size = len(self.classes) - start
        if high == 1:
            return _Frag(min(2, 1 + body.empty), body.first, body.last) if low == 0 else body
        if high != _C.MAXREPEAT and high * size <= _EXPAND:
            copies = [body] + [self.sequence(items, flags) for _ in range(high - 1)]
            frag = _EMPTY
            for copy in reversed(copies[low:]):  # B(B(B)?)?: optional copies nested
                frag = self.concat(copy, frag)
                frag = _Frag(min(2, 1 + frag.empty), frag.first, frag.last)
            for copy in reversed(copies[:low]):
                frag = self.concat(copy, frag)
            return frag
        self.link(body.last, body.first, index)
        self.bodies.append((index, start, len(self.classes)))
        return _Frag(max(1, body.empty) if low == 0 else body.empty, body.first, body.last)


def _sccs(nodes: list[Any], successors: Any) -> list[list[Any]]:
    """Strongly connected components (Tarjan's algorithm, iterative)."""
    index: dict[Any, int] = {}
    low: dict[Any, int] = {}
    on_stack: set[Any] = set()
    stack: list[Any] = []
    found: list[list[Any]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(successors(root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(successors(nxt))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(component)
    return found


def _exponential(auto: _Automaton, components: list[list[int]]
                 ) -> tuple[str, int, set[int]] | None:
    """A loop of the automaton matching some text in exponentially many ways: its kind
    ("twice": a transition made by two repeats, "overlap": two paths reading the same text),
    the repeat to blame (-1: unknown) and the positions involved. None if there is none."""
    follow = auto.follow
    for component in components:
        members = set(component)
        if len(members) == 1 and component[0] not in follow[component[0]]:
            continue
        for p in component:
            for q, makers in follow[p].items():
                if q in members and len(makers) > 1:
                    loops = [m for m in makers if m >= 0]
                    blame = max(loops, default=-1, key=lambda m: (_body_size(auto, m), m))
                    return "twice", blame, {p, q}
        if len(members) == 1:
            continue
        if len(members) > _MAX_LOOP:
            raise _TooComplex("loop")
        involved = _overlap(auto, component, {p: [q for q in follow[p] if q in members]
                                              for p in members})
        if involved:
            return "overlap", _smallest_loop(auto, involved), involved
    return None


def _reach(starts: Any, edges: Any) -> set[int]:
    seen = set(starts)
    todo = list(seen)
    while todo:
        for q in edges(todo.pop()):
            if q not in seen:
                seen.add(q)
                todo.append(q)
    return seen


def _polynomial(auto: _Automaton, components: list[list[int]]) -> list[list[int]]:
    """The longest chain of loops a text can be split among in many ways (`\\d+\\d+`: the
    cut between the two loops can be anywhere, so backtracking tries n of them; k such loops
    in a chain, n^k): loops L1, L2, ... each reached from the one before, with positions p
    in one, q in the next and a text v such that p reads v back to p, p reads v to q, and q
    reads v back to q (Weber and Seidl's criterion for polynomial ambiguity)."""
    follow, classes = auto.follow, auto.classes
    # Tarjan's order is reversed topological: a loop comes after those it leads to.
    loops = [c for c in reversed(components) if len(c) > 1 or c[0] in follow[c[0]]]
    if len(loops) < 2:
        return list(loops)
    back: list[list[int]] = [[] for _ in classes]
    for p, targets in enumerate(follow):
        for q in targets:
            back[q].append(p)
    auto.spend(2 * len(loops) * len(classes))
    after = [_reach(loop, lambda p: follow[p]) for loop in loops]
    before = [_reach(loop, lambda p: back[p]) for loop in loops]

    def linked(i: int, j: int) -> bool:
        a, b = set(loops[i]), set(loops[j])
        auto.spend(len(a) * len(b))
        middle = after[i] & before[j]
        for p in a:
            for q in b:
                seen = {(p, p, q)}
                todo = [(p, p, q)]
                while todo:
                    x, y, z = todo.pop()
                    for x2 in follow[x]:
                        if x2 not in a:
                            continue
                        for z2 in follow[z]:
                            mask = classes[x2] & classes[z2]
                            if z2 not in b or not mask:
                                continue
                            auto.spend(len(follow[y]))
                            for y2 in follow[y]:
                                if y2 in middle and classes[y2] & mask:
                                    state = (x2, y2, z2)
                                    if state == (p, q, q):
                                        return True
                                    if state not in seen:
                                        seen.add(state)
                                        todo.append(state)
        return False

    chains: list[list[int]] = []
    for j in range(len(loops)):
        best: list[int] = []
        for i in range(j):
            if len(chains[i]) > len(best) and loops[j][0] in after[i] and linked(i, j):
                best = chains[i]
        chains.append([*best, j])
    longest = max(chains, key=len)
    return [loops[i] for i in longest]


def _overlap(auto: _Automaton, component: list[int], inner: dict[int, list[int]]
             ) -> set[int]:
    """The positions of a loop on which two different paths read the same text and meet
    again (empty: none): the square of the loop's automaton has a strongly connected part
    holding a pair (q, q) and a pair (p, r), p != r."""
    classes = auto.classes

    def pairs(pair: tuple[int, int]) -> list[tuple[int, int]]:
        p, r = pair
        auto.spend(len(inner[p]) * len(inner[r]))
        return [(a, b) for a in inner[p] for b in inner[r] if classes[a] & classes[b]]

    for square in _sccs([(p, p) for p in component], pairs):
        if len(square) > 1 and any(a == b for a, b in square) \
                and any(a != b for a, b in square):
            return {a for pair in square for a in pair}
    return set()


def _body_size(auto: _Automaton, repeat: int) -> int:
    return max((end - start for index, start, end in auto.bodies if index == repeat), default=0)


def _smallest_loop(auto: _Automaton, involved: set[int]) -> int:
    """The innermost unbounded repeat holding every position in `involved`."""
    best, size = -1, 1 << 62
    for index, start, end in auto.bodies:
        if start <= min(involved) and max(involved) < end and end - start < size:
            best, size = index, end - start
    return best


# ------------------------------------------------------------ where things are in the text
_COUNT = re.compile(r"\{(\d*)(?:(,)(\d*))?\}")


def _quantifiers(pattern: str) -> list[tuple[int, int]]:
    """Each quantifier of `pattern`, in text order: (start of what it repeats, end of the
    quantifier). The order is that of the repeats of `re`'s tree walked children first."""
    found: list[tuple[int, int]] = []
    opens: list[int] = []
    atom = -1  # start of the last atom (a quantifier may follow it)
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            start = i
            nxt = pattern[i + 1:i + 2]
            i += {"x": 4, "u": 6, "U": 10}.get(nxt, 2)
            if nxt == "N" and pattern.startswith("{", i):
                i = pattern.find("}", i) + 1 or n
            atom = start
            continue
        if c == "[":
            start = i
            i += 1
            if pattern.startswith("^", i):
                i += 1
            if pattern.startswith("]", i):
                i += 1
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
            i += 1
            atom = start
            continue
        if c == "(":
            opens.append(i)
            i += 1
            if pattern.startswith("?", i):
                if pattern.startswith("?#", i) or pattern.startswith("?P=", i):
                    opens.pop()
                    atom = i - 1
                    i = pattern.find(")", i) + 1 or n
                    continue
                if pattern.startswith("?P<", i):
                    i = pattern.find(">", i) + 1 or n
                elif pattern.startswith("?<", i):
                    i += 3
                elif pattern.startswith("?(", i):
                    i = pattern.find(")", i) + 1 or n
                else:
                    i += 1
                    while i < n and (pattern[i].isalpha() or pattern[i] == "-"):
                        i += 1
                    if pattern.startswith(")", i):  # global flags: no group
                        opens.pop()
                    i += 1 if i < n and pattern[i] in ":=!>)" else 0
            atom = -1
            continue
        if c == ")":
            atom = opens.pop() if opens else -1
            i += 1
            continue
        end = -1
        if c in "*+?":
            end = i + 1
        elif c == "{":
            count = _COUNT.match(pattern, i)
            if count and (count.group(1) or count.group(2)):
                end = count.end()
        if end >= 0 and atom >= 0:
            if pattern.startswith(("?", "+"), end):
                end += 1
            found.append((atom, end))
            atom = -1
            i = end
            continue
        atom = i if c not in "|^$" else -1
        i += 1
    return found


def _repeat_order(tree: Any) -> dict[int, int]:
    """id(av) of each repeat in `tree` -> its index, children first (= text order)."""
    order: dict[int, int] = {}

    def walk(items: Any) -> None:
        for op, av in items:
            name = op.name
            if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                walk(av[2])
                order[id(av)] = len(order)
            elif name == "BRANCH":
                for alternative in av[1]:
                    walk(alternative)
            elif name == "SUBPATTERN":
                walk(av[3])
            elif name == "ATOMIC_GROUP":
                walk(av)
            elif name in ("ASSERT", "ASSERT_NOT"):
                walk(av[1])
            elif name == "GROUPREF_EXISTS":
                for branch in av[1:]:
                    if branch is not None:
                        walk(branch)

    walk(tree)
    return order


def anchored(pattern: str) -> bool:
    """Whether `pattern` (a valid regular expression) is anchored as a whole: it starts with
    `^` and ends with `$` outside any alternative or group (`^a|b$` is not: `b` may end
    any text, and `search` and `fullmatch` disagree on it; nor is `^a\\$`)."""
    try:
        items = list(_sre.parse(pattern))
    except (re.error, RecursionError, OverflowError):
        return False
    return (len(items) >= 2 and items[0][0].name == "AT" and items[-1][0].name == "AT"
            and items[0][1].name in ("AT_BEGINNING", "AT_BEGINNING_STRING")
            and items[-1][1].name in ("AT_END", "AT_END_STRING"))


@lru_cache(maxsize=512)
def overlapping_loops(pattern: str) -> int:
    """The longest chain of loops of `pattern` a text can be shared out among in many ways:
    0 without loops, 1 when no two overlap (matching time linear in the value's length),
    k: time grows as the k-th power (refused above MAX_OVERLAPPING_LOOPS). -1 if the
    pattern is refused for another reason (`pattern_problem`) or is not valid."""
    problem = pattern_problem(pattern)
    if problem is not None and problem.kind != "polynomial":
        return -1
    try:
        tree = _sre.parse(pattern)
        auto = _Automaton(_repeat_order(tree))
        auto.sequence(tree, int(tree.state.flags))
        components = _sccs(list(range(len(auto.classes))), lambda p: auto.follow[p])
        return len(_polynomial(auto, components))
    except (re.error, RecursionError, OverflowError, _Refused, _TooComplex):
        return -1


@lru_cache(maxsize=512)
def pattern_problem(pattern: str) -> PatternProblem | None:
    """Why `pattern` (a valid Python regular expression) may take exponential time on some
    value, or may refer back to a group; None if it may not."""
    try:
        tree = _sre.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None  # not valid: reported as such by the caller
    order = _repeat_order(tree)
    auto = _Automaton(order)
    everything = (0, len(pattern))
    try:
        auto.sequence(tree, int(tree.state.flags))
        components = _sccs(list(range(len(auto.classes))), lambda p: auto.follow[p])
        found = _exponential(auto, components)
        chain = _polynomial(auto, components) if found is None else []
    except _Refused as refused:
        return PatternProblem(refused.message, refused.hint, *everything, "reference")
    except (_TooComplex, RecursionError):
        return PatternProblem(
            "the pattern is too complex to show that its matching time is bounded",
            "simplify it: fewer nested or counted repetitions", *everything, "complex")
    quantifiers = _quantifiers(pattern)
    located = len(quantifiers) == len(order)
    if found is None:
        if len(chain) <= MAX_OVERLAPPING_LOOPS:
            return None
        first = _smallest_loop(auto, set(chain[0]))
        last = _smallest_loop(auto, set(chain[-1]))
        known = located and 0 <= first < len(quantifiers) and 0 <= last < len(quantifiers)
        where = (quantifiers[first][0], quantifiers[last][1]) if known else everything
        if not known:
            part = f"{len(chain)} repetitions"
        elif first == last:
            part = (f"{len(chain)} copies of the repetition "
                    f"{pattern[slice(*quantifiers[first])]} (made by the counts around it)")
        else:
            part = (f"{len(chain)} consecutive repetitions, from "
                    f"{pattern[slice(*quantifiers[first])]} to "
                    f"{pattern[slice(*quantifiers[last])]},")
        return PatternProblem(
            f"{part} can share out the same text in many ways: matching time grows as "
            f"the length of the value to the power {len(chain)}",
            f"at most {MAX_OVERLAPPING_LOOPS} consecutive repetitions may overlap: separate "
            "them by a character the one before cannot match, or merge them into one "
            "(e.g. [a-z]+ rather than [a-z]*[a-z]*[a-z]+)", *where, "polynomial")
    kind, repeat, _involved = found
    where = (quantifiers[repeat] if located and 0 <= repeat
             < len(quantifiers) else everything)
    text = pattern[where[0]:where[1]]
    part = f"the repetition {text}" if where != everything else "a repetition"
    if kind == "twice":
        return PatternProblem(
            f"{part} can match the same text in more than one way (a repeated part that "
            "itself repeats, or is optional): exponential time on a hostile value",
            "make each repetition start or end with a character its inner repetition "
            "cannot match, e.g. ([a-z]+)(-[a-z]+)* rather than ([a-z]+-?)*", *where,
            "exponential")
    return PatternProblem(
        f"{part} can match the same text in more than one way (its alternatives, or "
        "consecutive iterations, overlap): exponential time on a hostile value",
        "make the alternatives start with different characters, and each iteration start "
        "with a character the previous one cannot end with, e.g. (/[a-z]+)+ rather than "
        "(/?[a-z]+)+", *where, "exponential")
