"""The `tppolicy` command: a thin layer over the library that reads files and prints.

Exit codes (also in `tppolicy --help`):
  0  allowed (check) / success
  1  denied (check)
  2  usage error (bad options)
  3  invalid input: a policy, publishers or claims file that cannot be read or is invalid
  4  internal error (a bug: please report it; run with --debug for the traceback)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import __version__
from ._decision import Decision
from ._errors import ClaimsError, Diagnostic, Span, TppolicyError
from ._evaluate import Policy

EXIT_ALLOWED, EXIT_DENIED, EXIT_USAGE, EXIT_INVALID, EXIT_INTERNAL = 0, 1, 2, 3, 4
_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")

EPILOG = """exit codes:
  0  allowed (check) or success
  1  denied (check)
  2  usage error
  3  invalid input (policy, publishers or claims file)
  4  internal error (a bug; --debug shows the traceback)
"""


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _issuer(value: str) -> tuple[str, str]:
    issuer, sep, provider = value.rpartition("=")
    if not sep or not issuer.startswith("https://") or not provider:
        raise argparse.ArgumentTypeError(
            f"expected URL=PROVIDER such as https://gitlab.example.com=gitlab, got {value!r}")
    return issuer, provider


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--issuer", metavar="URL=PROVIDER", action="append", type=_issuer,
                        default=[], help="register an extra issuer for a provider that allows "
                        "custom issuers (e.g. a self-managed GitLab); repeatable")
    parser.add_argument("--providers", metavar="PATH", action="append", default=[],
                        help="extra provider file or folder of *.tpp files; repeatable")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tppolicy", description="Trusted Publishing policies: decide whether "
                     "a CI job's OIDC token may publish to a package index.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tppolicy {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    check = commands.add_parser(
        "check", help="would these claims be allowed to publish?", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Decide on a token's decoded claims (JSON, e.g. the output of "
        "`python -m id -d`). The token's issuer selects the provider.")
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--publishers", metavar="FILE", help="publishers file (YAML)")
    source.add_argument("--policy", metavar="FILE", help="policy file, as `tppolicy compile` "
                        "prints it")
    check.add_argument("--claims", metavar="FILE", required=True,
                       help="claims as a JSON object; - reads standard input")
    check.add_argument("--audience", default="pypi", help="expected 'aud' (default: pypi)")
    check.add_argument("--format", choices=("human", "json"), default="human")
    _common(check)

    compile_ = commands.add_parser(
        "compile", help="print the concrete policy a publishers file makes", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compile a publishers file through the provider files into a policy in "
        "the tppolicy language: readable, diffable, and accepted by `check --policy`.")
    compile_.add_argument("publishers", metavar="PUBLISHERS", help="publishers file (YAML)")
    compile_.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    _common(compile_)

    providers = commands.add_parser("providers", help="list the providers and their issuers",
                                    epilog=EPILOG,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(providers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        result: int = {"check": _check, "compile": _compile, "providers": _providers}[
            args.command](args, sys.stdout)
        return result
    except TppolicyError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_INVALID
    except _UsageError as exc:
        print(f"tppolicy: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_ALLOWED
    except Exception as exc:  # the one place a bug is turned into an exit code
        if args.debug:
            raise
        print(f"tppolicy: internal error: {type(exc).__name__}: {exc} (run with --debug for "
              "the traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL


def _registered(args: argparse.Namespace) -> dict[str, str]:
    return dict(args.issuer)


def _load_providers(args: argparse.Namespace) -> Mapping[str, Any]:
    from ._load import load_providers

    return load_providers(args.providers)


def _policy(args: argparse.Namespace) -> Policy:
    from ._load import compile_publishers_file, load_policy_file

    providers = _load_providers(args)
    issuers = _registered(args)
    for issuer, provider in issuers.items():
        if provider not in providers:
            raise _UsageError(f"--issuer {issuer}={provider}: unknown provider '{provider}'")
        if not providers[provider].ast.custom_issuers:
            raise _UsageError(f"--issuer {issuer}={provider}: provider '{provider}' does not "
                              "allow custom issuers")
    if args.publishers is not None:
        return compile_publishers_file(args.publishers, providers=providers, issuers=issuers)
    return load_policy_file(args.policy, providers=providers, issuers=issuers)


def read_claims(name: str) -> dict[str, Any]:
    """A claims file: one JSON object with unique keys, or what `python -m id -d`
    prints (the JOSE header, then the claims, as two JSON objects)."""
    label = "<stdin>" if name == "-" else name
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise ClaimsError([Diagnostic(f"not UTF-8 text ({exc.reason})", Span(label, 0, 0, 0, 0))]
                          ) from None
    except OSError as exc:
        raise ClaimsError([Diagnostic(f"cannot read: {exc.strerror or exc}",
                                      Span(label, 0, 0, 0, 0))]) from None

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise ValueError(f"claim {key!r} appears twice")
            result[key] = value
        return result

    stripped = text.strip()
    if stripped.count(".") == 2 and all(part and set(part) <= _BASE64URL
                                         for part in stripped.split(".")):
        raise ClaimsError([Diagnostic("this is a signed token (a JWT), not its claims",
                                      Span(label, 1, 1, 1, 2),
                                      hint="decode it with `python -m id -d AUDIENCE` or any "
                                      "JWT decoder, and pass the JSON claims")])
    decoder = json.JSONDecoder(object_pairs_hook=unique)
    documents: list[Any] = []
    position = 0
    try:
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position >= len(text) and documents:
                break
            value, position = decoder.raw_decode(text, position)
            documents.append(value)
    except json.JSONDecodeError as exc:
        raise ClaimsError([Diagnostic(f"invalid JSON: {exc.msg}",
                                      Span(label, exc.lineno, exc.colno, exc.lineno,
                                           exc.colno + 1))], text) from None
    except (ValueError, RecursionError) as exc:
        raise ClaimsError([Diagnostic(f"invalid claims: {exc}", Span(label, 0, 0, 0, 0))]
                          ) from None
    if len(documents) == 2 and isinstance(documents[0], dict) and "alg" in documents[0]:
        documents = documents[1:]  # `python -m id -d`: the header, then the claims
    if len(documents) != 1:
        raise ClaimsError([Diagnostic(f"expected one JSON object, found {len(documents)} "
                                      "documents", Span(label, 1, 1, 1, 2))], text)
    value = documents[0]
    if not isinstance(value, dict):
        kind = type(value).__name__
        raise ClaimsError([Diagnostic(f"claims must be a JSON object, found {kind}",
                                      Span(label, 1, 1, 1, 2))], text)
    return value


def _check(args: argparse.Namespace, out: TextIO) -> int:
    policy = _policy(args)
    claims = read_claims(args.claims)
    decision = policy.evaluate(claims, audience=args.audience, explain=True)
    if args.format == "json":
        payload = {**decision.to_json(), "audience": args.audience}
        out.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(render_decision(decision, policy))
    return EXIT_ALLOWED if decision.allowed else EXIT_DENIED


def render_decision(decision: Decision, policy: Policy) -> str:
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


def _compile(args: argparse.Namespace, out: TextIO) -> int:
    from ._format import format_policy

    args.policy = None
    policy = _policy(args)
    header = (f"# Compiled by tppolicy {__version__} from {args.publishers}.\n"
              "# Generated: edit the publishers file and compile again.\n\n")
    text = header + format_policy(policy.to_policy_file(args.publishers))
    if args.output:
        Path(args.output).write_text(text, "utf-8")
    else:
        out.write(text)
    return EXIT_ALLOWED


def _providers(args: argparse.Namespace, out: TextIO) -> int:
    providers = _load_providers(args)
    for name, provider in sorted(providers.items()):
        custom = " (custom issuers allowed)" if provider.ast.custom_issuers else ""
        out.write(f"{name}: {', '.join(provider.issuers)}{custom}\n")
        out.write(f"  fields: {', '.join(provider.fields)}\n")
    return EXIT_ALLOWED


if __name__ == "__main__":
    sys.exit(main())
