"""Run-time semantics of the language's operations, shared by constant folding,
the explaining interpreter and the generated code so that all three agree.

Every function raises `EvalError` (or a built-in exception that the callers treat
as an evaluation error) instead of returning a wrong value: errors fail closed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any


class EvalError(Exception):
    """Evaluating an expression against a token failed; the `require` fails."""


def describe_type(value: object) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "a boolean"
    return {int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(value.__class__, value.__class__.__name__)


def op_before(s: str, sep: str) -> str:
    head, found, _ = s.partition(sep)
    if not found:
        raise EvalError(f"{s!r} has no {sep!r}")
    return head


def op_after(s: str, sep: str) -> str:
    _, found, tail = s.partition(sep)
    if not found:
        raise EvalError(f"{s!r} has no {sep!r}")
    return tail


def op_before_last(s: str, sep: str) -> str:
    head, found, _ = s.rpartition(sep)
    if not found:
        raise EvalError(f"{s!r} has no {sep!r}")
    return head


def op_after_last(s: str, sep: str) -> str:
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

    Matching simulates the pattern as a set of states (no backtracking), so a
    hostile claim costs O(len(text) * len(pattern)) at worst.
    """

    __slots__ = ("_tokens", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        tokens: list[str] = []
        i = 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                tokens.append("**")
                i += 2
            elif pattern[i] in "*?":
                tokens.append(pattern[i])
                i += 1
            else:
                tokens.append("=" + pattern[i])
                i += 1
        self._tokens = tuple(tokens)

    def _closure(self, states: set[int]) -> set[int]:
        tokens = self._tokens
        todo = list(states)
        while todo:
            state = todo.pop()
            if state < len(tokens) and tokens[state] in ("*", "**") and state + 1 not in states:
                states.add(state + 1)
                todo.append(state + 1)
        return states

    def __call__(self, text: str) -> bool:
        if text.__class__ is not str:
            raise EvalError(f"glob needs a string, not {describe_type(text)}")
        tokens = self._tokens
        states = self._closure({0})
        for char in text:
            following: set[int] = set()
            for state in states:
                if state >= len(tokens):
                    continue
                token = tokens[state]
                if token == "**" or (token == "*" and char != "/"):
                    following.add(state)
                elif (token == "?" and char != "/") or token == "=" + char:
                    following.add(state + 1)
            if not following:
                return False
            states = self._closure(following)
        return len(tokens) in states


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
    "lower": (str.lower, ("string",), "string"),
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
