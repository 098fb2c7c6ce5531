"""Characters that look like others: look-alikes of ASCII letters and invisible ones.

Used by lint (TPP005, TPP006) and by the publishers loader's hints; no provider knowledge.
"""

from __future__ import annotations

import unicodedata

__all__ = ["CONFUSABLE", "ascii_lookalike_fix", "char_name", "invisible", "lookalike"]

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
