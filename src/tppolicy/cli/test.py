"""`tppolicy test`: run the policy tests (case tables) kept next to the policies."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO

from ._common import (
    EXIT_ALLOWED,
    EXIT_DENIED,
    EXIT_INVALID,
    add_provider_options,
    load_providers,
    registered_issuers,
)
from .lint import paint

if TYPE_CHECKING:
    from tppolicy.tools.testrunner import Report

NAME = "test"
HELP = "run policy tests (*.tptest.yaml case tables) with rule coverage"

EPILOG = """exit codes:
  0  every case passed (and coverage is at least --min-coverage)
  1  a case failed, no test file was found, or coverage is below --min-coverage
  2  usage error
  3  invalid input: a test file (or the publishers or policy file it names) is invalid
  4  internal error (a bug; --debug shows the traceback)
"""


def _percent(value: str) -> float:
    try:
        number = float(value.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, got {value!r}") from None
    if not 0 <= number <= 100:
        raise argparse.ArgumentTypeError(f"expected a percentage from 0 to 100, got {value!r}")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tppolicy.tools.testrunner import DEFAULT_PATTERN

    parser.description = (
        "Run policy tests: YAML case tables naming publishers (inline or a file) or a policy "
        "file, claims, and for each case the expected decision and failing rules. Folders are "
        f"searched recursively for {DEFAULT_PATTERN} (hidden folders and virtual environments "
        "are skipped); files given by name are run whatever their name.")
    parser.epilog = EPILOG
    parser.add_argument("paths", metavar="PATH", nargs="*", default=["."],
                        help="test file or folder (default: the current folder)")
    parser.add_argument("--pattern", default=DEFAULT_PATTERN,
                        help=f"file name pattern searched in folders (default: {DEFAULT_PATTERN})")
    parser.add_argument("--format", choices=("human", "json", "junit", "github"),
                        default="human", help="junit: JUnit XML for CI test reports; github: "
                        "GitHub Actions annotations for failing cases and invalid files, then "
                        "the human report")
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    parser.add_argument("--coverage", action="store_true",
                        help="print which rule of which publisher was seen passing and failing")
    parser.add_argument("--min-coverage", metavar="PCT", type=_percent,
                        help="fail when fewer than PCT%% of (rule, outcome) pairs are covered")
    parser.add_argument("--root", metavar="DIR", help="the files a test file names (publishers, "
                        "policy, claims, tokens, keys) must be inside DIR (default: the current "
                        "folder, or the test file's folder when it is outside)")
    add_provider_options(parser)


def run(args: argparse.Namespace, out: TextIO) -> int:
    from tppolicy.tools.testrunner import discover, run_files

    providers = load_providers(args)
    issuers = registered_issuers(args, providers)
    files = discover(args.paths, args.pattern)
    report = run_files(files, providers=providers, issuers=issuers, root=args.root)
    below = (args.min_coverage is not None and report.coverage_percent < args.min_coverage)
    if args.format == "junit":
        from tppolicy.tools.testrunner import to_junit_xml

        out.write(to_junit_xml(report))
    elif args.format == "json":
        payload = {**report.to_json(), "min_coverage": args.min_coverage,
                   "coverage_ok": not below}
        out.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    else:
        if args.format == "github":
            from tppolicy.tools.testrunner import github_annotations

            out.writelines(line + "\n" for line in github_annotations(report))
        for error in report.errors:
            print(error.render(), file=sys.stderr)
        out.write(render(report, out, verbose=args.verbose, coverage=args.coverage))
        if not files:
            print(f"tppolicy test: no test files found in {', '.join(args.paths)} "
                  f"(pattern {args.pattern})", file=sys.stderr)
        if below:
            print(f"tppolicy test: rule coverage {report.coverage_percent:.1f}% is below the "
                  f"minimum {args.min_coverage:g}%", file=sys.stderr)
    if report.errors:
        return EXIT_INVALID
    if report.failed or below or not files:
        return EXIT_DENIED
    return EXIT_ALLOWED


def render(report: Report, out: TextIO, *, verbose: bool, coverage: bool) -> str:
    from tppolicy.language.texts import render_value

    lines: list[str] = []
    for result in report.results:
        where = f"{result.file}:{result.line}"
        # control characters escaped: a line break in a name started a line of its own
        name = render_value(result.name)
        if result.passed:
            if verbose:
                lines.append(f"{where}: {paint('PASS', 'green', out)} {name}")
            continue
        lines.append(f"{where}: {paint('FAIL', 'red', out)} {name}: "
                     f"{'; '.join(result.problems)}")
        if verbose:
            lines.append(f"    expected: {result.expected}")
            lines.append(f"    actual:   {result.actual}")
    if coverage:
        lines.extend(_coverage_lines(report, out))
    if report.errors:
        count = len(report.errors)
        lines.append(f"{count} invalid test file{'s' if count != 1 else ''}")
    lines.append(f"{report.passed} passed, {report.failed} failed")
    return "\n".join(lines) + "\n"


def _coverage_lines(report: Report, out: TextIO) -> list[str]:
    lines: list[str] = []
    policies = dict.fromkeys(row.policy for row in report.coverage)
    width_publisher = max([len("publisher"), *(len(c.publisher) for c in report.coverage)])
    width_rule = max([len("rule"), *(len(c.rule) for c in report.coverage)])

    def cell(value: bool | None) -> str:
        if value is None:
            return "n/a".ljust(8)
        return "yes".ljust(8) if value else paint("NO".ljust(8), "red", out)

    for policy in policies:
        lines.append(f"rule coverage of {policy}:")
        lines.append(f"  {'publisher'.ljust(width_publisher)}  {'rule'.ljust(width_rule)}  "
                     "passing  failing")
        for row in report.coverage:
            if row.policy != policy:
                continue
            lines.append(f"  {row.publisher.ljust(width_publisher)}  {row.rule.ljust(width_rule)}"
                         f"  {cell(row.passed)} {cell(row.failed)}".rstrip())
    covered = sum(c.covered for c in report.coverage)
    outcomes = sum(c.outcomes for c in report.coverage)
    lines.append(f"rule coverage: {report.coverage_percent:.1f}% ({covered} of {outcomes} "
                 "rule outcomes seen; n/a: a rule that folds to a constant)")
    return lines
