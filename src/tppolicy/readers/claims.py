"""Claims documents (a token's claims as JSON): one reader for every tool that takes them.

`parse_claims` is strict where JSON parsers are lenient, because claims decide who may
publish: a key given twice (which value would a server see?), `NaN` / `Infinity` (not JSON),
a string holding a lone surrogate (not text), and a top level that is not an object are
refused, each with the file, line and column. What `python -m id -d AUDIENCE` prints (the
JOSE header, then the claims: two JSON objects) is accepted as it is; a signed token pasted
instead of its claims is named as such.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from tppolicy.errors import ClaimsError, Diagnostic, Span
from tppolicy.limits import MAX_CLAIMS_NESTING

__all__ = ["nested_too_deeply", "parse_claims"]

_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD]([89abAB]|[c-fC-F])[0-9a-fA-F]{2}")


class _Refused(ValueError):
    def __init__(self, message: str, index: int | None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.index, self.hint = message, index, hint


def _where(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _outside_strings(text: str, start: int = 0) -> list[tuple[int, str]]:
    """(index, character) of every character of `text` outside JSON strings."""
    found: list[tuple[int, str]] = []
    inside = escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if inside:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                inside = False
        elif char == '"':
            inside = True
        else:
            found.append((index, char))
    return found


def _constant_index(text: str, word: str) -> int | None:
    positions = _outside_strings(text)
    plain = "".join(char for _, char in positions)
    at = plain.find(word)
    return positions[at][0] if at >= 0 else None


# Digits of an integer a claims file may hold: a token's reader gives 64-bit integers (20
# digits); twice that leaves room, and int() refuses more than 4 300 (an internal error).
_MAX_INTEGER_DIGITS = 40


def _number_index(text: str, literal: str) -> int | None:
    """Where a number literal is written (its first place outside strings)."""
    for index, _ in _outside_strings(text):
        if text.startswith(literal, index):
            return index
    found = text.find(literal)
    return found if found >= 0 else None


def _key_index(text: str, key: str) -> int | None:
    """Where `key` appears a second time as an object key (best effort)."""
    pattern = re.compile(re.escape(json.dumps(key)) + r"\s*:")
    matches = [m.start() for m in pattern.finditer(text)]
    if len(matches) >= 2:
        return matches[1]
    return matches[0] if matches else None


def _lone_surrogate_index(text: str) -> int | None:
    escapes = list(_SURROGATE_ESCAPE.finditer(text))
    skip = -1
    for number, match in enumerate(escapes):
        if number == skip:
            continue
        high = match.group(1).lower() in "89ab"
        following = escapes[number + 1] if number + 1 < len(escapes) else None
        if (high and following is not None and following.start() == match.end()
                and following.group(1).lower() not in "89ab"):
            skip = number + 1
            continue
        return match.start()
    for index, char in enumerate(text):  # a raw (unescaped) surrogate in the text itself
        if "\ud800" <= char <= "\udfff":
            return index
    return None


def nested_too_deeply(value: Any, limit: int = MAX_CLAIMS_NESTING) -> bool:
    """Whether arrays and objects in `value` nest deeper than `limit` levels (the claims
    object itself is level 1). Iterative: any depth is measured without recursion."""
    if isinstance(value, dict):  # the usual claims: one flat object, judged in one pass
        for child in value.values():
            if isinstance(child, (dict, list)):
                break
        else:
            return limit < 1
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item \
            if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return False


def _too_deep_index(text: str, limit: int) -> int | None:
    """Where arrays and objects in `text` first open level `limit + 1`."""
    depth = 0
    for index, char in _outside_strings(text):
        if char in "[{":
            depth += 1
            if depth > limit:
                return index
        elif char in "]}":
            depth -= 1
    return None


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _too_deep(text: str) -> tuple[str, int | None, str]:
    return (f"arrays and objects nest more than {MAX_CLAIMS_NESTING} levels deep",
            _too_deep_index(text, MAX_CLAIMS_NESTING),
            "a token's claims nest two levels at most: pass the claims `python -m id -d` "
            "prints")


def parse_claims(text: str, source: str = "<claims>") -> dict[str, Any]:
    """The claims object of a claims document; `ClaimsError` (with the line and column)
    when it is not one JSON object with unique keys, finite numbers and real text."""

    def fail(message: str, index: int | None, hint: str | None = None) -> ClaimsError:
        line, column = _where(text, index) if index is not None else (1, 1)
        return ClaimsError([Diagnostic(message, Span(source, line, column, line, column + 1),
                                       hint=hint)], text)

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise _Refused(f"the claim {key!r} appears twice", _key_index(text, key),
                               "a claim has one value: remove one of them")
            result[key] = value
        return result

    def constant(word: str) -> Any:
        raise _Refused(f"{word} is not a JSON number", _constant_index(text, word),
                       "claims hold finite numbers")

    def number(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):  # 1e999: json reads it as infinity
            raise _Refused(f"{literal} is not a finite number", _number_index(text, literal),
                           "claims hold finite numbers")
        return value

    def integer(literal: str) -> int:
        if len(literal.lstrip("-")) > _MAX_INTEGER_DIGITS:  # int() raised past 4 300 digits
            raise _Refused(f"an integer of {len(literal.lstrip('-'))} digits is too large "
                           f"(at most {_MAX_INTEGER_DIGITS})", _number_index(text, literal),
                           "claims hold numbers of 64 bits at most")
        return int(literal)

    stripped = text.strip()
    if stripped.count(".") == 2 and all(part and set(part) <= _BASE64URL
                                         for part in stripped.split(".")):
        raise fail("this is a signed token (a JWT), not its claims", text.find(stripped),
                   "decode it with `python -m id -d AUDIENCE` or any JWT decoder, and pass "
                   "the JSON claims")
    decoder = json.JSONDecoder(object_pairs_hook=unique, parse_constant=constant,
                               parse_float=number, parse_int=integer)
    documents: list[tuple[int, Any]] = []
    position = 0
    try:
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position >= len(text) and documents:
                break
            start = position
            value, position = decoder.raw_decode(text, position)
            documents.append((start, value))
    except _Refused as exc:
        raise fail(exc.message, exc.index, exc.hint) from None
    except json.JSONDecodeError as exc:
        raise fail(f"invalid JSON: {exc.msg}", exc.pos) from None
    except RecursionError:
        raise fail(*_too_deep(text)) from None
    if len(documents) == 2 and isinstance(documents[0][1], dict) and "alg" in documents[0][1]:
        documents = documents[1:]  # `python -m id -d`: the header, then the claims
    if len(documents) != 1:
        raise fail(f"expected one JSON object, found {len(documents)} documents",
                   documents[1][0] if len(documents) > 1 else None)
    start, value = documents[0]
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null",
                int: "a number", float: "a number"}.get(type(value), type(value).__name__)
        raise fail(f"claims must be a JSON object, found {kind}", start)
    if nested_too_deeply(value):
        raise fail(*_too_deep(text))
    if _has_lone_surrogate(value):
        raise fail("a string holds a lone surrogate (not text)", _lone_surrogate_index(text),
                   "claims are UTF-8 text: fix the \\uD800-\\uDFFF escape")
    return value
