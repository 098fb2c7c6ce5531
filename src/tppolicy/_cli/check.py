"""`tppolicy check`: would this token's claims be allowed to publish?"""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from tppolicy._decision import Decision

from ._common import (
    EPILOG,
    EXIT_ALLOWED,
    EXIT_DENIED,
    add_provider_options,
    load_policy,
    read_claims,
)

NAME = "check"
HELP = "would these claims be allowed to publish?"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Decide on a token's decoded claims (JSON, e.g. the output of "
                          "`python -m id -d`). The token's issuer selects the provider.")
    parser.epilog = EPILOG
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--publishers", metavar="FILE", help="publishers file (YAML)")
    source.add_argument("--policy", metavar="FILE", help="policy file, as `tppolicy compile` "
                        "prints it")
    parser.add_argument("--claims", metavar="FILE", required=True,
                        help="claims as a JSON object; - reads standard input")
    parser.add_argument("--audience", default="pypi", help="expected 'aud' (default: pypi)")
    parser.add_argument("--format", choices=("human", "json"), default="human")
    add_provider_options(parser)


def run(args: argparse.Namespace, out: TextIO) -> int:
    policy = load_policy(args)
    claims = read_claims(args.claims)
    decision = policy.evaluate(claims, audience=args.audience, explain=True)
    if args.format == "json":
        payload = {**decision.to_json(), "audience": args.audience}
        out.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(render_decision(decision))
    return EXIT_ALLOWED if decision.allowed else EXIT_DENIED


def render_decision(decision: Decision) -> str:
    lines: list[str] = []
    if decision.allowed:
        kind = "pending publisher" if decision.pending else "publisher"
        lines.append(f"ALLOWED: {kind} '{decision.publisher}' ({decision.provider}) may publish "
                     f"to {', '.join(decision.projects)}")
        if decision.pending:
            lines.append(f"  the project {decision.projects[0]!r} does not exist yet: the first "
                         "upload creates it and this publisher becomes a normal one")
    else:
        where = f" ({decision.provider})" if decision.provider else ""
        lines.append(f"DENIED{where}: no trusted publisher matches this token")
        if decision.closest:
            lines.append(f"  closest publisher: {decision.closest}")
    for reason in decision.reasons:
        mark = "pass" if reason.passed else "FAIL"
        detail = f": {reason.message}" if reason.message and not reason.passed else ""
        lines.append(f"  {mark}  {reason.rule}{detail}")
    for note in decision.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines) + "\n"
