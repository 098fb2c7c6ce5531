"""`tppolicy explain`: why a token is allowed or denied, publisher by publisher, and the fix."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tppolicy.decide.reasons import show

from ._common import (
    EXIT_ALLOWED,
    EXIT_DENIED,
    UPLOAD_VERSION_HELP,
    UsageError,
    add_provider_options,
    add_token_options,
    build_verifier,
    denial_headline,
    exit_codes,
    load_policy,
    read_claims,
    read_token,
)
from ._style import colour_enabled
from .lint import paint

if TYPE_CHECKING:
    from tppolicy.tools.explain import Advice, Candidate, Check

NAME = "explain"
HELP = "why these claims are allowed or denied, publisher by publisher, and how to fix it"
_WIDTH = 44  # longest value shown in a table cell


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Explain a decision: every publisher of the token's provider, ranked by how close it "
        "came (identity, then passing rules and lookup keys), with a rule-by-rule table of "
        "what it expected and what the token had, and the fix in plain words for the closest "
        "ones. You own the configuration, so identity mismatches are shown too; --format json "
        "marks which reasons a server could disclose.")
    parser.epilog = exit_codes(
        "the token is allowed",
        "a publishers, policy, claims, token, JWKS or provider file\n"
        "     that cannot be read or is invalid", denied="denied")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--publishers", metavar="FILE", help="publishers file (YAML)")
    source.add_argument("--policy", metavar="FILE", help="policy file, as `tppolicy compile` "
                        "prints it")
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--token", metavar="FILE", help="a compact JWT, verified as `check "
                       "--token` does (never used up); - reads standard input")
    given.add_argument("--claims", metavar="FILE",
                       help="a token's decoded claims as a JSON object; - reads standard input")
    parser.add_argument("--audience", default="pypi", help="expected 'aud' (default: pypi)")
    parser.add_argument("--upload-version", dest="request_version", metavar="VERSION",
                        help=UPLOAD_VERSION_HELP)
    parser.add_argument("--format", choices=("human", "json"), default="human")
    parser.add_argument("--top", metavar="N", type=int, default=None,
                        help="show only the N closest publishers (default: all)")
    parser.add_argument("--fixes", metavar="N", type=int, default=3,
                        help="give fixes for the N closest publishers (default: 3)")
    add_provider_options(parser)
    add_token_options(parser, replay=False)  # explain never uses a token up


def run(args: argparse.Namespace, out: TextIO) -> int:
    from tppolicy.tools.explain import advise

    if args.top is not None and args.top < 1:
        raise UsageError("--top must be at least 1")
    if args.fixes < 0:
        raise UsageError("--fixes must not be negative")
    if args.replay_db:
        raise UsageError("explain never uses a token up: --replay-db goes with check")
    request = {"version": args.request_version} if args.request_version is not None else None
    if args.token is None and getattr(args, "publishers", None) is not None:
        advice = _advise_publishers(args, request)
    else:
        policy = load_policy(args)
        if args.token is not None:
            from tppolicy.tools.explain import advise_token

            token = read_token(args.token, args.max_token_bytes)
            verifier = build_verifier(args, policy, token)
            advice = advise_token(policy, token, verifier, fixes_for=args.fixes,
                                  request=request)
        else:
            if args.jwks:
                raise UsageError("--jwks goes with --token")
            claims = read_claims(args.claims)
            advice = advise(policy, claims, audience=args.audience, fixes_for=args.fixes,
                            request=request)
    if args.format == "json":
        _write_json(out, advice, args.top)
    else:
        _write_lines(out, render_lines(advice, out, top=args.top))
    return EXIT_ALLOWED if advice.allowed else EXIT_DENIED


def _advise_publishers(args: argparse.Namespace, request: dict[str, Any] | None) -> Advice:
    """`advise` on --publishers and --claims, the file read as a stream
    (`advise_publishers`): its policy is never held whole. A problem with the
    publishers file is reported before one with the claims or options, as when the
    policy was read first."""
    from tppolicy.errors import ConfigError, TppolicyError
    from tppolicy.readers.source import read_source
    from tppolicy.tools.explain import advise_publishers

    from ._common import load_providers, registered_issuers

    providers = load_providers(args)
    issuers = registered_issuers(args, providers)
    text = read_source(Path(args.publishers), ConfigError)
    try:
        if args.jwks:
            raise UsageError("--jwks goes with --token")
        claims = read_claims(args.claims)
    except (UsageError, TppolicyError):
        load_policy(args)  # the publishers file's problem first, if it has one
        raise
    return advise_publishers(text, str(args.publishers), claims, providers=providers,
                             issuers=issuers, audience=args.audience, fixes_for=args.fixes,
                             request=request)


_CANDIDATES = '\n  "candidates": [],'  # the top-level key's line, when the list is empty


def _write_json(out: TextIO, advice: Advice, top: int | None) -> None:
    """`advice.to_json()` (its first `top` candidates) as `json.dumps(..., indent=2)`
    writes it, each candidate dumped and written in turn: the payload of every candidate
    is never held at once."""
    shown = advice.candidates if top is None else advice.candidates[:top]
    text = json.dumps(replace(advice, candidates=()).to_json(), indent=2, ensure_ascii=False)
    # A string's line breaks are escaped: this line is the top-level key's, and only it.
    at = text.find(_CANDIDATES)
    if not shown or at < 0 or text.find(_CANDIDATES, at + 1) >= 0:
        payload = advice.to_json()
        payload["candidates"] = payload["candidates"][:len(shown)]
        out.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return
    out.write(text[:at] + '\n  "candidates": [')
    for rank, candidate in enumerate(shown, 1):
        item = json.dumps(candidate.to_json(rank), indent=2, ensure_ascii=False)
        out.write(("," if rank > 1 else "") + "\n    " + item.replace("\n", "\n    "))
    out.write("\n  ]," + text[at + len(_CANDIDATES):] + "\n")


def _write_lines(out: TextIO, lines: Iterable[str], batch: int = 512) -> None:
    """Write `lines`, each with its newline, a batch at a time (never all joined)."""
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= batch:
            out.write("\n".join(chunk) + "\n")
            chunk.clear()
    if chunk:
        out.write("\n".join(chunk) + "\n")


def _text(text: str) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= _WIDTH else text[:_WIDTH - 3] + "..."


def _cell(value: Any) -> str:
    return _text(show(value))


def render(advice: Advice, out: TextIO, *, top: int | None = None) -> str:
    """The human report of `advice`, as one text (`render_lines` joined)."""
    return "\n".join(render_lines(advice, out, top=top)) + "\n"


def render_lines(advice: Advice, out: TextIO, *, top: int | None = None) -> Iterator[str]:
    """The human report of `advice`, line by line (without newlines): the decision, the
    token's checks and fixes, then each candidate shown (`top`: the first N)."""
    decision = advice.decision
    if advice.allowed:
        kind = "pending publisher" if decision.pending else "publisher"
        yield (paint("ALLOWED", "green", out) + f": {kind} '{decision.publisher}' "
               f"({decision.provider}) may publish to {', '.join(decision.projects)}")
    else:
        yield paint("DENIED", "red", out) + denial_headline(decision, advice.provider)
    issuer = show(advice.issuer) if advice.issuer else "none"
    provider = advice.provider or "no provider"
    if advice.provider_guessed:
        provider = f"unknown; its claims are those of a {advice.provider} token"
    yield (f"  token: issuer {issuer} ({provider}), checked for audience "
           f"{advice.audience!r}")
    for check in advice.token_checks:
        if not check.passed:
            yield f"  {paint('FAIL', 'red', out)} {check.name}: {check.message}"
    for fix in advice.token_fixes:
        yield f"  {paint('fix', 'yellow', out)} ({fix.where}): {fix.text}"
    for note in advice.notes:
        yield f"  note: {note}"
    shown = advice.candidates if top is None else advice.candidates[:top]
    if advice.provider and not advice.candidates:
        yield f"  no {advice.provider} publisher is configured"
    painter = _Painter(out)
    for rank, candidate in enumerate(shown, 1):
        yield ""
        yield from _candidate(rank, candidate, painter)
    hidden = len(advice.candidates) - len(shown)
    if hidden > 0:
        yield ""
        yield (f"({hidden} more publisher{'s' if hidden != 1 else ''} of this provider; "
               "--top shows more)")


class _Painter:
    """`paint` on one stream, whether colour is on asked once (a report of ten thousand
    candidates paints tens of thousands of marks)."""

    __slots__ = ("coloured", "out")

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.coloured = colour_enabled(out)

    def __call__(self, text: str, colour: str) -> str:
        return paint(text, colour, self.out) if self.coloured else text


def _row(check: Check) -> tuple[str, str, str, str]:
    """A check's cells in its candidate's table: mark, check, expected, actual."""
    found = _ROWS.get(id(check))
    if found is not None and found[0] is check:
        return found[1]
    cells = ("pass" if check.passed else "FAIL", check.name, _text(check.expectation),
             "" if check.passed and check.actual is None else _cell(check.actual))
    if len(_ROWS) >= 4096:
        _ROWS.clear()
    _ROWS[id(check)] = (check, cells)
    return cells


# A row's cells, by row (kept with it, so that its id stays its own): the candidates of a
# report share most of their rows (`advise` keeps one object for equal rows).
_ROWS: dict[int, tuple[Check, tuple[str, str, str, str]]] = {}


def _candidate(rank: int, candidate: Candidate, paint: _Painter) -> list[str]:
    pending = ", pending" if candidate.pending else ""
    chosen = paint(" (chosen)", "green") if candidate.chosen else ""
    checks = candidate.checks
    rules = [c.passed for c in checks if c.kind == "rule"]
    keys = [c.passed for c in checks if c.kind == "lookup"]
    lines = [
        f"{rank}. {candidate.publisher} ({candidate.provider}{pending}) -> "
        f"{', '.join(candidate.projects)}{chosen}",
        f"   {sum(rules)} of {len(rules)} rules pass, "
        f"{sum(keys)} of {len(keys)} lookup keys match",
    ]
    rows = [("", "check", "expected", "actual"), *map(_row, checks)]
    w0, w1, w2, w3 = (max(map(len, column)) for column in zip(*rows, strict=True))
    for index, (mark, name, expected, actual) in enumerate(rows):
        failed = mark == "FAIL"
        mark = mark.ljust(w0)
        if failed:
            mark = paint(mark, "red")
        lines.append(f"   {mark}  {name.ljust(w1)}  {expected.ljust(w2)}  "
                     f"{actual.ljust(w3)}".rstrip())
        if index and failed:
            lines.append(f"   {' ' * w0}  {checks[index - 1].message}")
    for fix in candidate.fixes:
        lines.append(f"   {paint('fix', 'yellow')} ({fix.where}): {fix.text}")
    return lines
