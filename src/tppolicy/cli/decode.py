"""`tppolicy decode`: show a token's header and claims, without trusting them."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ._common import EXIT_ALLOWED, EXIT_INVALID, exit_codes, read_token

NAME = "decode"
HELP = "show a token's header and claims, unverified (for debugging a failed publish)"
BANNER = ("UNVERIFIED: nothing here has been checked (not the signature, the issuer, the "
          "audience or the times). Use `tppolicy check --token` to verify.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = HELP
    parser.epilog = exit_codes(
        "the token is shown (never verified: exit 0 says nothing of its\n     validity)",
        "a file that cannot be read, or no decodable token")
    parser.add_argument("token", metavar="TOKEN", help="the token itself, a file holding it, "
                        "or - for standard input")
    parser.add_argument("--format", choices=("human", "json"), default="human")


def run(args: argparse.Namespace, out: TextIO) -> int:
    from tppolicy.limits import MAX_TOKEN_BYTES
    from tppolicy.token.verify import TokenError, split_token

    source: str | None = None
    if args.token == "-" or _names_a_file(args.token):
        source = "<stdin>" if args.token == "-" else args.token
        token = read_token(args.token, MAX_TOKEN_BYTES)
    else:
        token = args.token.strip()
    try:
        header, claims, _, _ = split_token(token)
    except TokenError as exc:
        if source is not None:
            where = f"{source}: the file holds no decodable token"
        elif "." not in token or len(token) < 100:
            # "token.jwt" when there is no such file: say both readings failed.
            where = f"tppolicy: {args.token!r} is no file and not a decodable token"
        else:
            where = "tppolicy: not a decodable token"
        print(f"{where}: {exc.message} [{exc.code}]", file=sys.stderr)
        return EXIT_INVALID
    if args.format == "json":
        out.write(_safe(json.dumps({"verified": False, "header": header, "claims": claims},
                                   indent=2, ensure_ascii=False)) + "\n")
        return EXIT_ALLOWED
    out.write(f"{BANNER}\n\nheader:\n{_indent(header)}\n\nclaims:\n{_indent(claims)}\n")
    times = _times(claims)
    if times:
        out.write("\n" + times + "\n")
    return EXIT_ALLOWED


def _names_a_file(name: str) -> bool:
    """An existing path (a folder too: reading it says why it cannot be read), or a name
    no compact JWT can be (a JWT is base64url and dots: no '/', no spaces...)."""
    if _JWT_CHARS.fullmatch(name.strip()) is None:
        return True
    try:
        return Path(name).exists()
    except OSError:  # a token is longer than a file name may be
        return False


_JWT_CHARS = re.compile(r"[A-Za-z0-9_\-.=]*")


def _indent(value: Any) -> str:
    text = _safe(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))
    return "\n".join("  " + line for line in text.split("\n"))


# Characters JSON leaves as they are that a terminal acts on: C1 controls (U+009B is CSI),
# line and paragraph separators, bidirectional overrides and isolates. The token is
# unverified, its claims anyone's text: they are shown as JSON escapes (the same JSON).
_TERMINAL_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _safe(text: str) -> str:
    """JSON text with `_TERMINAL_UNSAFE` characters written as \\uXXXX escapes (they can
    only be inside strings: JSON's own characters are ASCII)."""
    return _TERMINAL_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def _times(claims: dict[str, Any]) -> str:
    now = time.time()
    lines = []
    for name, label in (("iat", "issued"), ("nbf", "not before"), ("exp", "expires")):
        value = claims.get(name)
        if value.__class__ is not int:
            continue
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))
        delta = int(value - now)
        relative = f"in {in_words(delta)}" if delta >= 0 else f"{in_words(-delta)} ago"
        lines.append(f"{label:>10}: {stamp} ({relative})")
    return "\n".join(lines)


_UNITS = (("year", 365 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60),
          ("second", 1))


def in_words(seconds: int) -> str:
    """A duration in words, its two largest units: "4 minutes 10 seconds", "2 days 3 hours"."""
    parts: list[str] = []
    rest = abs(seconds)
    for name, size in _UNITS:
        count, rest = divmod(rest, size)
        if count and len(parts) < 2:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
        elif parts:
            break  # "1 hour 5 seconds" would skip the minutes: stop at the first gap
    return " ".join(parts) or "0 seconds"
