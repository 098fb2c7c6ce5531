"""`tppolicy lint`: what a reviewer of publishers and policy files should be told."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from tppolicy.errors import Diagnostic, TppolicyError, excerpt
from tppolicy.version import __version__

from ._common import (
    EXIT_ALLOWED,
    EXIT_DENIED,
    EXIT_INVALID,
    UsageError,
    add_provider_options,
    load_providers,
    registered_issuers,
)
from ._style import style

if TYPE_CHECKING:
    from tppolicy.tools.lint import Finding

NAME = "lint"
HELP = "warn about publishers and policies a reviewer should look at twice"

EPILOG = """exit codes:
  0  no warnings or errors (notes do not count)
  1  warnings or errors
  2  usage error
  3  invalid input: a file that cannot be read or is invalid
  4  internal error (a bug; --debug shows the traceback)

codes (docs/tools.md explains each, with its fix):
{codes}

A comment `# tppolicy: ignore[TPP001]` on a line (or alone on the line above it) silences
that code there. [tool.tppolicy.lint] in pyproject.toml may set select and ignore.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tppolicy.tools.lint import CODES

    parser.description = ("Lint publishers files (YAML) and policy files (*.tpp): publishers "
                          "without an environment, workflow paths, .yml/.yaml look-alikes, "
                          "projects listed twice, whitespace and look-alike characters, "
                          "pending names that collide, rules that never or always pass.")
    parser.epilog = EPILOG.format(codes="\n".join(
        f"  {c.code}  {c.level:7}  {c.name}" for c in CODES.values()))
    parser.add_argument("files", metavar="FILE", nargs="+",
                        help="publishers file (YAML) or policy file (*.tpp)")
    parser.add_argument("--format", choices=("human", "json", "sarif"), default="human",
                        help="sarif: SARIF 2.1.0 for code scanning")
    parser.add_argument("--select", metavar="CODES", type=_codes,
                        help="report only these codes: codes, prefixes (TPP00) or names, "
                        "separated by ','; replaces the configuration's select")
    parser.add_argument("--ignore", metavar="CODES", type=_codes,
                        help="do not report these codes; replaces the configuration's ignore")
    parser.add_argument("--config", metavar="PYPROJECT", help="read [tool.tppolicy.lint] from "
                        "this file (default: the nearest pyproject.toml holding [tool.tppolicy], "
                        "from the current folder up to the git checkout's root)")
    parser.add_argument("--no-config", action="store_true", help="read no configuration file")
    add_provider_options(parser)


def _codes(value: str) -> tuple[str, ...]:
    from tppolicy.tools.lint import unknown_selectors

    codes = tuple(c.strip() for c in value.split(",") if c.strip())
    unknown = unknown_selectors(codes)
    if unknown:
        raise argparse.ArgumentTypeError(f"{', '.join(map(repr, unknown))} matches no lint "
                                         "code (see tppolicy lint --help)")
    return codes


def _config(args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The select and ignore lists: the command line's, else the configuration's."""
    from tppolicy.tools.lint import LintConfig, find_config, load_config

    config = LintConfig()
    if args.config is not None and args.no_config:
        raise UsageError("--config and --no-config do not go together")
    if args.config is not None:
        config = load_config(Path(args.config))
    elif not args.no_config:
        found = find_config(Path.cwd())
        if found is not None:
            config = load_config(found)
    select = args.select if args.select is not None else config.select
    ignore = args.ignore if args.ignore is not None else config.ignore
    return select, ignore


def run(args: argparse.Namespace, out: TextIO) -> int:
    from tppolicy.tools.lint import lint_file, select_findings, to_sarif

    select, ignore = _config(args)
    providers = load_providers(args)
    issuers = registered_issuers(args, providers)
    findings: list[Finding] = []
    errors: list[TppolicyError] = []
    for name in args.files:
        try:
            findings.extend(lint_file(name, providers=providers, issuers=issuers))
        except TppolicyError as exc:
            errors.append(exc)
    findings = list(select_findings(findings, select, ignore))
    diagnostics: list[Diagnostic] = [d for exc in errors for d in exc.diagnostics]
    if args.format == "sarif":
        payload = to_sarif(findings, version=__version__, errors=diagnostics)
        out.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    elif args.format == "json":
        payload_json = {
            "findings": [f.to_json() for f in findings],
            "errors": [{"file": d.span.source if d.span else None,
                        "line": d.span.line if d.span else 0,
                        "column": d.span.column if d.span else 0,
                        "path": d.path, "message": d.message, "hint": d.hint}
                       for d in diagnostics],
            "files": len(args.files),
        }
        out.write(json.dumps(payload_json, indent=2, ensure_ascii=False) + "\n")
    else:
        for error in errors:  # first: the summary below counts only the files linted
            print(error.render(), file=sys.stderr)
        out.write(render(findings, len(args.files) - len(errors), out, invalid=len(errors)))
    if errors:
        return EXIT_INVALID
    failing = [f for f in findings if f.level != "note"]
    return EXIT_DENIED if failing else EXIT_ALLOWED


def paint(text: str, colour: str, stream: TextIO) -> str:
    """Colour on a terminal only, off with NO_COLOR (`_style.style`)."""
    return style(text, colour, stream)


def render(findings: list[Finding], files: int, out: TextIO, invalid: int = 0) -> str:
    """The findings for a terminal, then a summary: `files` files were linted, `invalid`
    more could not be (their errors are printed apart)."""
    lines: list[str] = []
    sources: dict[str, list[str]] = {}
    counts = {"error": 0, "warning": 0, "note": 0}
    for finding in findings:
        counts[finding.level] += 1
        span = finding.span
        colour = {"error": "red", "warning": "yellow", "note": "cyan"}[finding.level]
        head = paint(f"{finding.code} {finding.level}", colour, out)
        lines.append(f"{span}: {head}: {finding.message}")
        text = sources.get(span.source)
        if text is None:
            try:
                text = Path(span.source).read_text("utf-8-sig").splitlines()
            except (OSError, UnicodeDecodeError):
                text = []
            sources[span.source] = text
        if 0 < span.line <= len(text):
            width = max(1, span.end_column - span.column) if span.end_line == span.line else 1
            shown, column, width = excerpt(text[span.line - 1], span.column, width)
            lines.append(f"    {shown}")
            lines.append("    " + " " * (column - 1) + "^" + "~" * (width - 1))
        lines.append(f"    fix: {finding.fix}")
    plural = "s" if files != 1 else ""
    if not findings:
        summary = f"no problems found in {files} file{plural}"
    else:
        parts = [f"{n} {level}{'s' if n != 1 else ''}" for level, n in counts.items() if n]
        summary = f"{', '.join(parts)} in {files} file{plural}"
    if invalid:
        summary += (f"; {invalid} file{'s' if invalid != 1 else ''} could not be linted "
                    "(see the errors above)")
    lines.append(summary)
    return "\n".join(lines) + "\n"
