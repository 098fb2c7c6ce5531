"""Colour for terminal output, only where it helps and never where it gets in the way.

Colour is on for a stream when it is a terminal and `NO_COLOR` is not set to a non-empty
value (https://no-color.org); piped or redirected output, and CI logs, stay plain text.
"""

from __future__ import annotations

import os
from typing import TextIO

__all__ = ["colour_enabled", "style"]

_CODES = {
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
    "bold": "1",
    "dim": "2",
}


def colour_enabled(stream: TextIO) -> bool:
    """Whether text written to `stream` may carry colour."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


def style(text: str, colour: str, stream: TextIO) -> str:
    """`text` in `colour` (red, green, yellow, blue, magenta, cyan, bold or dim) when colour
    is on for `stream`; else `text` unchanged."""
    code = _CODES.get(colour)
    if code is None:
        raise ValueError(f"unknown colour {colour!r}; known: {', '.join(_CODES)}")
    if not text or not colour_enabled(stream):
        return text
    return f"\x1b[{code}m{text}\x1b[0m"
