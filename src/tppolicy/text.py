"""Characters that look like others: look-alikes of ASCII letters and invisible ones.

Used by lint (TPP005, TPP006) and by the publishers loader's hints; no provider knowledge.
Also how messages show a value (`show`): the one place a value is bounded for people.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from tppolicy.limits import MAX_PROJECT_NAME

__all__ = ["CONFUSABLE", "MAX_SHOWN", "PROJECT_NAME", "ascii_lookalike_fix", "char_name",
           "count", "cut_middle", "invisible", "lookalike", "project_name_problem", "recorded",
           "show"]

# A value shown to people (a message, an explanation's cell, a fix) is cut in its middle
# beyond this many characters: a claim can be as long as the token allows (megabytes in a
# claims file), and a message is read by people, written to records and sent to clients.
MAX_SHOWN = 200
# A list shows this many items at most, then how many it had.
MAX_ITEMS = 20
# A claim written to a decision record (the run it names) is kept whole up to this many
# characters (the longest workflow refs are a few hundred), else cut as `show` cuts.
MAX_RECORDED = 1024


def count(n: int, what: str) -> str:
    """`n` with its thousands apart and the word: '5 000 000 characters'."""
    return f"{n:,} {what}".replace(",", " ")


def cut_middle(text: str, limit: int = MAX_SHOWN, mark: str = "…") -> str:
    """`text` as it is up to `limit` characters, else its two ends around `mark` (a
    workflow ref differs at its end, a repository at its start)."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}{mark}{text[-half:]}"


def show(value: Any) -> str:
    """A value as messages show it (`nothing` for null, `true`, `'text'`, `[...]`), bounded:
    a string longer than `MAX_SHOWN` is cut in its middle and its length said
    ("'aaaa…aaaa' (5 000 000 characters)"), a list shows `MAX_ITEMS` items and how many it
    had, anything else longer than `MAX_SHOWN` when written out is cut likewise. Control and
    invisible characters are escaped (as `repr` writes them): a value never starts a line
    of its own."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        if len(value) <= MAX_SHOWN:
            return repr(value)
        return f"{cut_middle(value)!r} ({count(len(value), 'characters')})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        items = [show(v) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"… ({count(len(value), 'items')})")
        shown = "[" + ", ".join(items) + "]"
        limit = 4 * MAX_SHOWN  # nested lists: each level bounded again
    else:
        shown = repr(value)
        limit = MAX_SHOWN
    if len(shown) <= limit:
        return shown
    return f"{cut_middle(shown, limit)} ({count(len(shown), 'characters')})"

# Letters from other scripts that render like ASCII (NFKC catches fullwidth and math forms).
CONFUSABLE: dict[str, str] = {  # Cyrillic, Greek and Latin look-alikes
    "\u0430": "a", "\u0432": "b", "\u0433": "r", "\u0434": "g", "\u0435": "e", "\u04bb": "h",
    "\u0456": "i", "\u0458": "j", "\u043a": "k", "\u043c": "m", "\u043d": "h", "\u043e": "o",
    "\u043f": "n", "\u0440": "p", "\u0441": "c", "\u0442": "t", "\u0443": "y", "\u0445": "x",
    "\u0455": "s", "\u0501": "d", "\u051b": "q", "\u051d": "w", "\u04ae": "Y", "\u04cf": "l",
    "\u0410": "A", "\u0412": "B", "\u0415": "E", "\u0417": "3", "\u0406": "I", "\u0408": "J",
    "\u041a": "K", "\u041c": "M", "\u041d": "H", "\u041e": "O", "\u0420": "P", "\u0421": "C",
    "\u0422": "T", "\u0425": "X", "\u0423": "Y", "\u03b1": "a", "\u03b2": "B", "\u03b5": "e",
    "\u03b9": "i", "\u03ba": "k", "\u03bd": "v", "\u03bf": "o", "\u03c1": "p", "\u03b3": "y",
    "\u03c4": "t", "\u03c5": "u", "\u03c7": "x", "\u0391": "A", "\u0392": "B", "\u0395": "E",
    "\u0396": "Z", "\u0397": "H", "\u0399": "I", "\u039a": "K", "\u039c": "M", "\u039d": "N",
    "\u039f": "O", "\u03a1": "P", "\u03a4": "T", "\u03a5": "Y", "\u03a7": "X", "\u0131": "i",
    "\u0261": "g", "\u0237": "j", "\u2113": "l",
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
}


def lookalike(char: str) -> str | None:
    """The ASCII character `char` looks like, if any."""
    if char in CONFUSABLE:
        return CONFUSABLE[char]
    folded = unicodedata.normalize("NFKC", char)
    if folded != char and folded.isascii() and folded.isprintable():
        return folded
    return None


def char_name(char: str) -> str:
    """U+0440 CYRILLIC SMALL LETTER ER."""
    return f"U+{ord(char):04X} {unicodedata.name(char, 'UNNAMED')}"


def invisible(char: str) -> bool:
    """Whether `char` is whitespace other than a space, a control or a format character
    (zero-width space, right-to-left mark...)."""
    if char == " ":
        return False
    return char.isspace() or unicodedata.category(char) in ("Cf", "Cc", "Zs", "Zl", "Zp")


def ascii_lookalike_fix(value: str) -> tuple[str, list[str]] | None:
    """`value` retyped in ASCII (look-alikes replaced, invisible characters dropped) and
    what was changed, in words; None if it holds neither, or other non-ASCII characters."""
    fixed: list[str] = []
    changes: dict[str, None] = {}
    for char in value:
        if char.isascii() and not invisible(char):
            fixed.append(char)
        elif invisible(char):
            changes[f"{char_name(char)} (invisible) removed"] = None
        elif (ascii_ := lookalike(char)) is not None:
            fixed.append(ascii_)
            changes[f"{char_name(char)} looks like {ascii_!r}"] = None
        else:
            return None
    if not changes:
        return None
    return "".join(fixed), list(changes)


def recorded(value: Any) -> Any:
    """A claim's value as a decision record keeps it: as it is when short (a string up to
    `MAX_RECORDED` characters, a number, a short list...), else the string `show` makes of
    it, cut in its middle with its length said: a record never grows with a hostile claim."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        if len(value) <= MAX_RECORDED:
            return value
        return f"{cut_middle(value, MAX_RECORDED)} ({count(len(value), 'characters')})"
    if len(repr(value)) <= MAX_RECORDED:
        return value
    return show(value)


# PyPI's project name rule (warehouse/oidc §4, PEP 508's names): matched whole and ASCII
# only (no `re.IGNORECASE`, whose case folding lets a Kelvin sign through; no `$`, which
# accepts a trailing newline).
PROJECT_NAME = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")


def project_name_problem(name: object) -> str | None:
    """Why `name` is not a project name an index accepts, or None: PyPI's rule and at most
    `MAX_PROJECT_NAME` characters. The one check of every front (publishers files,
    policies, `Engine`, the server's commands and uploads)."""
    if not isinstance(name, str):
        return f"a project name is a string, not {type(name).__name__}"
    if len(name) > MAX_PROJECT_NAME:
        return (f"{show(name)} is not a valid project name: at most {MAX_PROJECT_NAME} "
                f"characters (a file name of the project, at most 255 bytes, holds it)")
    if not PROJECT_NAME.fullmatch(name):
        return (f"{show(name)} is not a valid project name: use ASCII letters, digits, '.', "
                "'_' and '-', starting and ending with a letter or a digit")
    return None
