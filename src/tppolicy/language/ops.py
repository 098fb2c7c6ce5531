"""Run-time semantics of the language's operations, shared by constant folding,
the explaining interpreter and the generated code so that all three agree.

Every function raises `EvalError` (or a built-in exception that the callers treat
as an evaluation error) instead of returning a wrong value: errors fail closed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from tppolicy.limits import MAX_GLOB_PATTERN, MAX_GLOB_TEXT


class EvalError(Exception):
    """Evaluating an expression against a token failed; the `require` fails."""


def describe_type(value: object) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "a boolean"
    return {int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(value.__class__, value.__class__.__name__)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def op_lower(s: str) -> str:
    """`s` with ASCII letters lowercased, and only those: the names CIs compare ignoring case
    are ASCII, and Unicode folding would make look-alikes equal (the Kelvin sign U+212A
    lowercases to 'k')."""
    return s.lower() if s.isascii() else s.translate(_ASCII_LOWER)


def op_trim(s: str) -> str:
    """`s` without blanks (spaces, tabs, line breaks) at either end."""
    return s.strip(" \t\r\n")


# An empty separator is everywhere and nowhere: an error, as for split() (it was a
# ValueError from str.partition: a crash where a claim gave the separator).
_EMPTY_SEPARATOR = "{}() needs a non-empty separator"


def op_before(s: str, sep: str) -> str:
    if not sep:
        raise EvalError(_EMPTY_SEPARATOR.format("before"))
    head, found, _ = s.partition(sep)
    if not found:
        raise EvalError(f"{s!r} has no {sep!r}")
    return head


def op_after(s: str, sep: str) -> str:
    if not sep:
        raise EvalError(_EMPTY_SEPARATOR.format("after"))
    _, found, tail = s.partition(sep)
    if not found:
        raise EvalError(f"{s!r} has no {sep!r}")
    return tail


def op_before_last(s: str, sep: str) -> str:
    if not sep:
        raise EvalError(_EMPTY_SEPARATOR.format("before_last"))
    head, found, _ = s.rpartition(sep)
    if not found:
        raise EvalError(f"{s!r} has no {sep!r}")
    return head


def op_after_last(s: str, sep: str) -> str:
    if not sep:
        raise EvalError(_EMPTY_SEPARATOR.format("after_last"))
    _, found, tail = s.rpartition(sep)
    if not found:
        raise EvalError(f"{s!r} has no {sep!r}")
    return tail


def op_strip_prefix(s: str, prefix: str) -> str:
    if not s.startswith(prefix):
        raise EvalError(f"{s!r} does not start with {prefix!r}")
    return s[len(prefix):]


def op_strip_suffix(s: str, suffix: str) -> str:
    if not s.endswith(suffix):
        raise EvalError(f"{s!r} does not end with {suffix!r}")
    return s[: len(s) - len(suffix)]


def op_split(s: str, sep: str) -> list[str]:
    if sep.__class__ is not str or not sep:
        raise EvalError("split needs a non-empty separator")
    return s.split(sep)


def op_join(items: list[Any], sep: str) -> str:
    if items.__class__ is not list or any(i.__class__ is not str for i in items):
        raise EvalError("join needs a list of strings")
    return sep.join(items)


def op_len(value: str | list[Any]) -> int:
    if value.__class__ is not str and value.__class__ is not list:
        raise EvalError(f"len needs a string or a list, not {describe_type(value)}")
    return len(value)


def op_index(items: list[Any], index: int) -> Any:
    if items.__class__ is not list:
        raise EvalError(f"only a list can be indexed, not {describe_type(items)}")
    if index.__class__ is not int:
        raise EvalError("a list index must be an integer")
    if not -len(items) <= index < len(items):
        raise EvalError(f"index {index} is out of range for a list of {len(items)}")
    return items[index]


def strict_equal(left: object, right: object) -> bool:
    """Equality that never holds across types (`1 != true`, `1 != 1.0`)."""
    if left.__class__ is not right.__class__:
        return False
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(strict_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(strict_equal(v, right[k])
                                                   for k, v in left.items())
    return left == right


def strict_in(item: object, items: list[Any] | tuple[Any, ...]) -> bool:
    if items.__class__ is not list and items.__class__ is not tuple:
        raise EvalError(f"'in' needs a list, not {describe_type(items)}")
    return any(strict_equal(item, candidate) for candidate in items)


class Glob:
    """An anchored glob: `*` any run without '/', `**` any run, `?` one character but '/'.

    Matching runs the pattern's states as the bits of one integer (shift-and): each
    character of the text costs a few operations on a number of len(pattern) bits, so a
    hostile claim costs O(len(text) * len(pattern) / 64) word operations, without
    backtracking. Patterns and texts longer than `MAX_GLOB_PATTERN` / `MAX_GLOB_TEXT`
    are refused (the glob fails closed).
    """

    __slots__ = ("_accept", "_advance", "_other", "_stars", "_stay", "_stay_slash", "pattern")

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_GLOB_PATTERN:
            raise EvalError(f"a glob pattern is limited to {MAX_GLOB_PATTERN} characters "
                            f"(this one has {len(pattern)})")
        self.pattern = pattern
        tokens: list[str] = []
        i = 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                token, i = "**", i + 2
            elif pattern[i] in "*?":
                token, i = pattern[i], i + 1
            else:
                token, i = "=" + pattern[i], i + 1
            # Runs of stars are one star: '**' if any of them is.
            if token in ("*", "**") and tokens and tokens[-1] in ("*", "**"):
                tokens[-1] = "**" if "**" in (token, tokens[-1]) else "*"
                continue
            tokens.append(token)
        advance: dict[str, int] = {}
        question = star = double = 0
        for position, token in enumerate(tokens):
            bit = 1 << position
            if token == "?":
                question |= bit
            elif token == "*":
                star |= bit
            elif token == "**":
                double |= bit
            else:
                advance[token[1]] = advance.get(token[1], 0) | bit
        # Per character: the states that move on, and the states that stay (a star).
        self._advance = {char: mask | (question if char != "/" else 0)
                         for char, mask in advance.items()}
        self._advance.setdefault("/", 0)
        self._other = question  # a character the pattern does not name (never '/')
        self._stay = star | double
        self._stars = star | double  # states that may also be skipped (a star matches "")
        self._accept = 1 << len(tokens)
        self._stay_slash = double

    def _closure(self, states: int) -> int:
        return states | ((states & self._stars) << 1)

    def __call__(self, text: str) -> bool:
        if text.__class__ is not str:
            raise EvalError(f"glob needs a string, not {describe_type(text)}")
        if len(text) > MAX_GLOB_TEXT:
            raise EvalError(f"a value matched by a glob is limited to {MAX_GLOB_TEXT} "
                            f"characters (this one has {len(text)})")
        advance, other = self._advance, self._other
        stay, stay_slash = self._stay, self._stay_slash
        states = self._closure(1)
        for char in text:
            moving = states & advance.get(char, other)
            staying = states & (stay_slash if char == "/" else stay)
            states = (moving << 1) | staying
            if not states:
                return False
            states |= (states & self._stars) << 1
        return bool(states & self._accept)


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> Glob:
    return Glob(pattern)


def op_glob(text: str, pattern: str) -> bool:
    """A glob whose pattern is computed (a publisher field): compiled once per pattern."""
    if pattern.__class__ is not str:
        raise EvalError(f"a glob pattern must be a string, not {describe_type(pattern)}")
    if not pattern.strip("*"):
        raise EvalError("a glob of only '*' matches everything")
    return _glob(pattern)(text)


def op_replace(s: str, old: str, new: str) -> str:
    if not old:
        raise EvalError("replace needs a non-empty string to replace")
    return s.replace(old, new)


class _RequestKey:
    """The key under which request values ride in a claims mapping. A token's claims are
    a JSON object, whose keys are strings: this object never equals one."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<request values>"


REQUEST_KEY: Any = _RequestKey()
# The values a caller may supply with a request (`request.NAME`), and their types.
REQUEST_VALUES: dict[str, str] = {"version": "string"}


# name → (python implementation, argument types, result type). Types are base names;
# "any" accepts everything. The generated code binds these same objects.
FUNCTIONS: dict[str, tuple[Callable[..., Any], tuple[str, ...], str]] = {
    "lower": (op_lower, ("string",), "string"),
    "trim": (op_trim, ("string",), "string"),
    "starts_with": (str.startswith, ("string", "string"), "bool"),
    "ends_with": (str.endswith, ("string", "string"), "bool"),
    "contains": (str.__contains__, ("string", "string"), "bool"),
    "before": (op_before, ("string", "string"), "string"),
    "after": (op_after, ("string", "string"), "string"),
    "before_last": (op_before_last, ("string", "string"), "string"),
    "after_last": (op_after_last, ("string", "string"), "string"),
    "strip_prefix": (op_strip_prefix, ("string", "string"), "string"),
    "strip_suffix": (op_strip_suffix, ("string", "string"), "string"),
    "split": (op_split, ("string", "string"), "list<string>"),
    "join": (op_join, ("list", "string"), "string"),
    "len": (op_len, ("string|list",), "int"),
    "glob": (op_glob, ("string", "string"), "bool"),
    "replace": (op_replace, ("string", "string", "string"), "string"),
    "has": (lambda value: value is not None, ("claim",), "bool"),
}
