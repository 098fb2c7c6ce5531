"""`tppolicy check`: would this token's claims be allowed to publish?"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any, TextIO

from tppolicy.decide.decision import Decision
from tppolicy.decide.policy import Policy
from tppolicy.errors import TppolicyError

from ._common import (
    EPILOG,
    EXIT_ALLOWED,
    EXIT_DENIED,
    UPLOAD_VERSION_HELP,
    UsageError,
    add_provider_options,
    add_token_options,
    build_verifier,
    denial_headline,
    load_policy,
    output_error,
    read_claims,
    read_token,
    refuse_link,
)

NAME = "check"
HELP = "would these claims be allowed to publish?"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Decide on a CI job's OIDC token (--token: verified against the "
                          "issuer's keys) or on its decoded claims (--claims: JSON, e.g. the "
                          "output of `python -m id -d`). The token's issuer selects the "
                          "provider.")
    parser.epilog = EPILOG
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--publishers", metavar="FILE", help="publishers file (YAML)")
    source.add_argument("--policy", metavar="FILE", help="policy file, as `tppolicy compile` "
                        "prints it")
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--claims", metavar="FILE",
                       help="claims as a JSON object; - reads standard input")
    given.add_argument("--token", metavar="FILE", help="a compact JWT, verified (signature, "
                       "issuer, audience, times) before the decision; - reads standard input")
    parser.add_argument("--audience", default="pypi", help="expected 'aud' (default: pypi)")
    parser.add_argument("--upload-version", dest="request_version", metavar="VERSION",
                        help=UPLOAD_VERSION_HELP)
    parser.add_argument("--format", choices=("human", "json"), default="human")
    add_provider_options(parser)
    add_token_options(parser)
    parser.add_argument("--record", metavar="FILE", help="append the decision to FILE as one "
                        "JSON line (time, issuer, publisher, projects, reasons, the claims "
                        "identifying the run; never the token)")


def run(args: argparse.Namespace, out: TextIO) -> int:
    request = {"version": args.request_version} if args.request_version is not None else None
    # Each input is read once: standard input (-) cannot be read twice (for --record).
    # The claims are read first: a publishers file's policy then holds only the
    # publishers a decision on them reads (a large file is not held whole). A problem
    # with them is reported after the publishers file's, as before.
    token: str | None = None
    claims: dict[str, object] | None = None
    wanted: dict[str, object] | None = None
    deferred: TppolicyError | None = None
    try:
        if args.token is not None:
            token = read_token(args.token, args.max_token_bytes)
            wanted = _unverified(token, args.max_token_bytes)
        elif not (args.jwks or args.replay_db):
            claims = wanted = read_claims(args.claims)
    except TppolicyError as exc:
        deferred = exc
    policy = load_policy(args, wanted)
    if deferred is not None:
        raise deferred
    if args.token is not None:
        from tppolicy.token.replay import SQLiteReplayStore

        assert token is not None
        verifier = build_verifier(args, policy, token)
        replay = _FailureKept(SQLiteReplayStore(args.replay_db)) if args.replay_db else None
        decision = policy.evaluate_token(token, verifier, replay, explain=True,
                                         request=request)
        if replay is not None and replay.error is not None:
            raise replay.error  # the file cannot be used: invalid input (exit 3), named
    else:
        if args.jwks or args.replay_db:
            raise UsageError("--jwks and --replay-db go with --token")
        assert claims is not None
        decision = policy.evaluate(claims, audience=args.audience, explain=True,
                                   request=request)
    if args.record:
        _record(args, policy, decision, token, claims)
    fixes = _fixes(args, policy, decision, token, claims, request)
    others = _same_identity(args, policy, decision, token, claims)
    if args.format == "json":
        payload = {**decision.to_json(), "audience": args.audience}
        if others:
            payload["same_identity"] = [
                {"publisher": c.publisher,
                 "failed": [{"rule": x.name, "expected": x.expected, "actual": x.actual,
                             "message": x.message} for x in c.checks if not x.passed]}
                for c in others]
        # failing reasons first (the field to change), each in rule order
        payload["reasons"] = sorted(payload.get("reasons", []), key=lambda r: bool(r["passed"]))
        for reason in payload["reasons"]:
            fix = fixes.get(reason.get("rule"))
            if fix is not None and not reason.get("passed"):
                reason["fix"] = {"where": fix.where, "text": fix.text}
        out.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    else:
        text = render_decision(decision, {name: f.text for name, f in fixes.items()})
        if others:
            lines = text.splitlines()
            at = next((i for i, line in enumerate(lines) if line.startswith("  next:")),
                      len(lines))
            lines[at:at] = [f"  also for this identity: publisher '{c.publisher}': "
                            + "; ".join(f"{x.name}: {x.message}" for x in c.checks
                                        if not x.passed) for c in others]
            text = "\n".join(lines) + "\n"
        out.write(text)
    return EXIT_ALLOWED if decision.allowed else EXIT_DENIED


class _FailureKept:
    """The `--replay-db` store, keeping the error its `claim` raised: the policy turns it
    into a denial (fail closed), the command into invalid input naming the file."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.error: TppolicyError | None = None

    def claim(self, key: str, expires_at: int) -> bool:
        """The store's claim; its `ReplayStoreError` is kept, then raised again."""
        try:
            return bool(self.store.claim(key, expires_at))
        except TppolicyError as exc:
            self.error = exc
            raise


def _unverified(token: str, max_bytes: int) -> dict[str, object] | None:
    """The token's claims, unverified (to choose the publishers to load; the decision is
    on the verified ones), or None when they cannot be read."""
    from tppolicy.token.verify import TokenError, split_token

    try:
        return split_token(token, max_bytes)[1]
    except TokenError:
        return None


def _fixes(args: argparse.Namespace, policy: Policy, decision: Decision, token: str | None,
           claims: dict[str, object] | None, request: dict[str, str] | None) -> dict[str, Any]:
    """The provider files' fixes for a denial's failed rules (what to change)."""
    from tppolicy.tools.explain import decision_fixes

    if decision.allowed or any(r.rule == "token" for r in decision.reasons):
        return {}
    if claims is None and token is not None:
        from tppolicy.token.verify import split_token  # verified: its claims are trusted

        claims = split_token(token, args.max_token_bytes)[1]
    return dict(decision_fixes(policy, decision, claims or {}, request=request,
                               audience=args.audience))


def _same_identity(args: argparse.Namespace, policy: Policy, decision: Decision,
                   token: str | None, claims: dict[str, object] | None) -> list[Any]:
    """For a near miss: the other publishers sharing the token's identity (every identity
    check passes, or fails only on the case of `exact_case` names), each with what it
    expects, not only the closest."""
    if decision.allowed or decision.closest is None:
        return []
    from tppolicy.tools.explain import advise

    if claims is None and token is not None:
        from tppolicy.token.verify import split_token  # verified: its claims are trusted

        claims = split_token(token, args.max_token_bytes)[1]
    advice = advise(policy, claims or {}, audience=args.audience, fixes_for=0)
    return [c for c in advice.candidates
            if c.publisher != decision.closest and not c.chosen
            and any(x.identity for x in c.checks)
            and all(x.passed or x.disclosable for x in c.checks if x.identity)
            and any(not x.passed for x in c.checks)]


def _record(args: argparse.Namespace, policy: Policy, decision: Decision, token: str | None,
            claims: dict[str, object] | None) -> None:
    import time

    from tppolicy.decide.engine import JsonLinesSink, decision_record

    if token is not None and not any(r.rule == "token" for r in decision.reasons):
        from tppolicy.token.verify import split_token  # verified: its claims are trusted

        claims = split_token(token, args.max_token_bytes)[1]
    provider = policy.providers.get(decision.provider) if decision.provider else None
    refuse_link(args.record)  # the record carries the token's claims: never through a link
    try:
        sink = JsonLinesSink(args.record)
    except OSError as exc:
        raise output_error(args.record, exc) from None
    record = decision_record(
        time.time(), claims, provider, allowed=decision.allowed, error=decision.code,
        publisher=decision.publisher, publisher_id=None, projects=decision.projects,
        pending=decision.pending, action=None, reasons=decision.reasons)
    try:
        try:
            sink.write(record)
        finally:
            sink.close()
    except OSError as exc:  # a full disk: the file, the reason (exit 3), not a bug
        raise output_error(args.record, exc) from None


def render_decision(decision: Decision, fixes: Mapping[str, str] | None = None) -> str:
    """A decision in words, failing reasons first; `fixes` (by rule) are printed under
    their FAIL lines."""
    fixes = dict(fixes or {})
    lines: list[str] = []
    if decision.allowed:
        kind = "pending publisher" if decision.pending else "publisher"
        lines.append(f"ALLOWED: {kind} '{decision.publisher}' ({decision.provider}) may publish "
                     f"to {', '.join(decision.projects)}")
        if decision.pending:
            lines.append(f"  the project {decision.projects[0]!r} does not exist yet: the first "
                         "upload creates it and this publisher becomes a normal one")
    else:
        lines.append("DENIED" + denial_headline(decision, decision.provider))
        if decision.closest:
            lines.append(f"  closest publisher: {decision.closest}")
    for reason in sorted(decision.reasons, key=lambda r: r.passed):  # failing first
        mark = "pass" if reason.passed else "FAIL"
        detail = f": {reason.message}" if reason.message and not reason.passed else ""
        if reason.code:
            detail += f" [{reason.code}]"
        lines.append(f"  {mark}  {reason.rule}{detail}")
        if not reason.passed and reason.rule in fixes:
            lines.append(f"        fix: {fixes.pop(reason.rule)}")
    lines += [f"  fix: {text}" for text in fixes.values()]
    for note in decision.notes:
        lines.append(f"  note: {note}")
    if not decision.allowed and decision.provider is not None:
        lines.append("  next: `tppolicy explain` with the same options ranks every publisher "
                     "of this provider and says what to change")
    for name, value in decision.learned.items():
        lines.append(f"  learned: {name} = {value!r} (trust on first use: pin it in the "
                     "publisher)")
    return "\n".join(lines) + "\n"
