"""Texts a provider file declares for people: the `fix` of each rule and the `note`s.

A text holds placeholders, filled in when it is shown: `{claims.NAME}`, `{publisher.NAME}`,
`{request.NAME}` and `{NAME}` (a `let`); `{{` and `}}` stand for braces. The checker turns
each placeholder into the expression it names (`parse_text`), so a text refers only to
claims, fields and lets that exist. Showing a text never raises: a `fix` or `note` whose
condition or placeholders cannot be evaluated against this token, or one of whose
placeholders is missing (null: a claim the token lacks, no request value), is skipped, and
the next one is tried; a file words the missing case in a fix of its own
(`fix ... when not has(claims.NAME)`). So is a fix quoting a claim that is empty
('{claims.NAME}' filled in with "": "add '' to allowed_sources" reads as two quotes): the
file words that case in `fix ... when claims.NAME == ""`, and when no fix of the rule is
left, the fix says that the claim is empty (`empty_claim_text`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tppolicy.language import ast as A
from tppolicy.language.interpret import Interpreter
from tppolicy.language.ops import REQUEST_KEY, EvalError
from tppolicy.text import MAX_SHOWN, cut_middle

__all__ = ["MAX_SHOWN", "PLACES", "CheckedAdvice", "CheckedFix", "CheckedNote", "EmptyClaim",
           "MissingValue", "Text", "TextError", "advice_for", "empty_claim_text", "fix_for",
           "notes_for", "parse_text", "render_value"]

# Where a fix's change goes.
PLACES = ("workflow", "publisher", "token", "operator")

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_REFERENCE = re.compile(r"(?:(claims|publisher|request)\.)?([A-Za-z_][A-Za-z0-9_]*)")


class TextError(ValueError):
    """A text whose braces or placeholders cannot be read; `column` is 0-based in the text."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.column = column


def parse_text(text: str) -> list[str | tuple[str | None, str, int]]:
    """The text as literal pieces and placeholders `(scope, name, column)`; scope is
    "claims", "publisher", "request" or None (a `let`)."""
    pieces: list[str | tuple[str | None, str, int]] = []
    position = 0
    for found in _PLACEHOLDER.finditer(text):
        if found.start() > position:
            pieces.append(text[position:found.start()])
        token = found.group(0)
        if token in ("{{", "}}"):
            pieces.append(token[0])
        elif token in ("{", "}"):
            raise TextError(f"a lone {token!r}: write {token * 2!r} for a brace, or "
                            "{claims.NAME}, {publisher.NAME} or {NAME} to fill in a value",
                            found.start())
        else:
            inner = found.group(1).strip()
            reference = _REFERENCE.fullmatch(inner)
            if reference is None:
                raise TextError(f"{{{found.group(1)}}} is not a placeholder: write "
                                "{claims.NAME}, {publisher.NAME}, {request.NAME} or {NAME} "
                                "(a let)", found.start())
            pieces.append((reference.group(1), reference.group(2), found.start()))
        position = found.end()
    if position < len(text):
        pieces.append(text[position:])
    return pieces


# A value filled into a text is cut in its middle beyond `MAX_SHOWN` characters (the bound of
# every value shown, see `tppolicy.text.show`): a claim can be as long as the token allows,
# and a fix is read by people.

# Characters a value may not bring into a text as they are: a newline in a claim would
# start a line of its own in `check`'s output (a fake "pass" line), a terminal escape
# would paint it.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class MissingValue(EvalError):
    """A placeholder whose value is missing (an absent claim, request value or null let):
    the text is not shown, and the next `fix` is tried."""


class EmptyClaim(EvalError):
    """A quoted placeholder of a claim ('{claims.NAME}') whose value is the empty string:
    the text is not shown, and the next `fix` is tried (see `fix_for`)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the token's {name} is empty")
        self.name = name


def empty_claim_text(name: str) -> str:
    """The fix of a rule whose every fix quotes the claim `name`, empty in this token."""
    return (f"The token's {name} claim is empty, and this rule accepts no empty value: pass "
            f"the claims of the token as the job received it, and publish from a job whose "
            f"token fills {name} in.")


def _escaped(found: re.Match[str]) -> str:
    char = found.group(0)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return named.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100
                               else f"\\u{ord(char):04x}")


def _items(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        if not value:
            return "none"
        shown = [_items(v) for v in value]
        return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "),
                          default=str)
    return str(value)


def render_value(value: Any) -> str:
    """A value as a text shows it: a string as it is, a list as its items in words
    ("webhook, ui or api"; "none" when empty), a mapping as JSON, others as themselves; control
    characters escaped, and the whole cut in its middle beyond `MAX_SHOWN` characters.
    Raises `MissingValue` for null: a text never shows a missing value as if it were one
    ("the tag 'nothing'"); the file says the missing case in a `fix ... when not
    has(claims.NAME)` of its own."""
    if value is None:
        raise MissingValue("the value is missing")
    shown = _items(value)
    if len(shown) > 2 * MAX_SHOWN:  # escaping only lengthens: its ends are enough
        shown = shown[:MAX_SHOWN] + shown[-MAX_SHOWN:]
    return cut_middle(_UNSAFE.sub(_escaped, shown), MAX_SHOWN, "...")


@dataclass(frozen=True, slots=True)
class Text:
    """A checked text: literal pieces and the expressions of its placeholders."""

    source: str
    parts: tuple[str | A.Expr, ...]

    def render(self, interpreter: Interpreter) -> str:
        """The text with its placeholders filled in; raises `EvalError` (`EmptyClaim` for
        a quoted claim that is empty)."""
        shown: list[str] = []
        parts = self.parts
        for at, part in enumerate(parts):
            if isinstance(part, str):
                shown.append(part)
                continue
            value = interpreter.value(part)
            if value == "" and isinstance(part, A.Claim) and _quoted(parts, at):
                raise EmptyClaim(part.name)
            shown.append(render_value(value))
        return "".join(shown)


def _quoted(parts: tuple[str | A.Expr, ...], at: int) -> bool:
    """Whether the placeholder `parts[at]` is between quotes: 'PLACEHOLDER'."""
    before = parts[at - 1] if at > 0 else None
    after = parts[at + 1] if at + 1 < len(parts) else None
    return isinstance(before, str) and before.endswith("'") and isinstance(after, str) \
        and after.startswith("'")


@dataclass(frozen=True, slots=True)
class CheckedFix:
    """A rule's `fix`, checked: lets inlined, placeholders resolved."""

    place: str | None
    condition: A.Expr | None
    text: Text


@dataclass(frozen=True, slots=True)
class CheckedNote:
    """A provider's `note`, checked."""

    condition: A.Expr | None
    text: Text


@dataclass(frozen=True, slots=True)
class CheckedAdvice:
    """A provider's `advise` item, checked: the field it is about, its condition and text
    (lets inlined; they read publisher fields only)."""

    field: str
    condition: A.Expr | None
    text: Text


def _interpreter(claims: Mapping[str, Any], claim_types: Mapping[str, str],
                 fields: Mapping[str, Any], request: Mapping[str, Any] | None) -> Interpreter:
    if request:
        claims = {**claims, REQUEST_KEY: dict(request)}
    return Interpreter(claims, claim_types, fields)


def _applies(interpreter: Interpreter, condition: A.Expr | None) -> bool:
    if condition is None:
        return True
    try:
        return interpreter.boolean(condition)
    except (EvalError, TypeError, ValueError, RecursionError):
        return False


def _shown(interpreter: Interpreter, text: Text) -> str | None:
    try:
        return text.render(interpreter)
    except (EvalError, TypeError, ValueError, RecursionError):
        return None


def fix_for(fixes: tuple[CheckedFix, ...], claims: Mapping[str, Any],
            claim_types: Mapping[str, str], fields: Mapping[str, Any],
            request: Mapping[str, Any] | None = None) -> tuple[str | None, str] | None:
    """The first of a rule's `fixes` that applies to this token and publisher: its place
    and its text, filled in. None when none applies."""
    interpreter = _interpreter(claims, claim_types, fields, request)
    empty: tuple[str | None, str] | None = None  # the first fix skipped for an empty claim
    for fix in fixes:
        if _applies(interpreter, fix.condition):
            try:
                return fix.place, fix.text.render(interpreter)
            except EmptyClaim as exc:
                empty = empty or (fix.place, exc.name)
            except (EvalError, TypeError, ValueError, RecursionError):
                pass
    if empty is not None:
        return empty[0], empty_claim_text(empty[1])
    return None


def notes_for(notes: tuple[CheckedNote, ...], claims: Mapping[str, Any],
              claim_types: Mapping[str, str], fields: Mapping[str, Any]) -> tuple[str, ...]:
    """The provider's notes whose conditions hold for an allowed token and its publisher."""
    if not notes:
        return ()
    interpreter = _interpreter(claims, claim_types, fields, None)
    shown: list[str] = []
    for note in notes:
        if _applies(interpreter, note.condition):
            text = _shown(interpreter, note.text)
            if text is not None:
                shown.append(text)
    return tuple(shown)


def advice_for(advice: tuple[CheckedAdvice, ...],
               fields: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The provider's advice whose conditions hold for a publisher with these field values
    (defaults included): each as (field, text filled in)."""
    if not advice:
        return ()
    interpreter = _interpreter({}, {}, fields, None)
    shown: list[tuple[str, str]] = []
    for item in advice:
        if _applies(interpreter, item.condition):
            text = _shown(interpreter, item.text)
            if text is not None:
                shown.append((item.field, text))
    return tuple(shown)
