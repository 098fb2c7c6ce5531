"""`tppolicy check-workflow`: would this workflow get a token the publishers accept?"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from tppolicy.errors import TppolicyError, excerpt

from ._common import (
    EXIT_ALLOWED,
    EXIT_DENIED,
    EXIT_INVALID,
    UsageError,
    add_provider_options,
    load_policy,
    load_providers,
    registered_issuers,
)
from ._style import style

if TYPE_CHECKING:
    from tppolicy.tools.workflow import WorkflowReport

NAME = "check-workflow"
HELP = "would a CI workflow get a token the publishers accept? (static, before pushing)"

EPILOG = """exit codes:
  0  every publisher naming the workflow would accept a token of one of its jobs
     (advice alone does not fail)
  1  errors: findings that would deny
  2  usage error
  3  invalid input: a workflow, publishers or policy file that cannot be read or is invalid
  4  internal error (a bug; --debug shows the traceback)

codes (docs/tools.md explains each, with its fix):
{codes}
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tppolicy.tools.workflow import CODES

    parser.description = (
        "Check a GitHub Actions workflow (or a GitLab CI/CD pipeline file) against trusted "
        "publishers before pushing it: the workflow file a publisher names, the publishing "
        "job's id-token permission (GitLab: id_tokens), its environment, the triggers "
        "against the event constraints, the tags/branches filters against the ref "
        "patterns, the reusable workflow, the runner; and, as advice, third-party actions "
        "not pinned to a commit.")
    parser.epilog = EPILOG.format(codes="\n".join(
        f"  {c.code}  {c.level:6}  {c.name}" for c in CODES.values()))
    parser.add_argument("workflows", metavar="WORKFLOW", nargs="+",
                        help="a workflow file (.github/workflows/*.yml, .gitlab-ci.yml, ...)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--publishers", metavar="FILE", help="publishers file (YAML)")
    source.add_argument("--policy", metavar="FILE", help="policy file, as `tppolicy compile` "
                        "prints it")
    parser.add_argument("--repository", metavar="OWNER/NAME",
                        help="only the publishers of this repository (GitLab: namespace/"
                        "project)")
    parser.add_argument("--job", metavar="NAME", help="the publishing job (default: the jobs "
                        "that upload, ask for an OIDC token or call a reusable workflow)")
    parser.add_argument("--path", metavar="PATH", help="the workflow's path from the "
                        "repository root (default: from the git checkout holding it); one "
                        "workflow only")
    parser.add_argument("--audience", default="pypi", help="the index's audience, for GitLab's "
                        "id_tokens (default: pypi)")
    parser.add_argument("--format", choices=("human", "json"), default="human")
    add_provider_options(parser)


def run(args: argparse.Namespace, out: TextIO) -> int:
    from tppolicy.tools.workflow import check_workflow_file

    if args.path is not None and len(args.workflows) != 1:
        raise UsageError("--path goes with one workflow")
    streamed = _streamed(args) if args.publishers is not None else None
    if streamed is not None:
        reports, errors = streamed
    else:
        policy = load_policy(args)
        reports, errors = [], []
        for name in args.workflows:
            try:
                reports.append(check_workflow_file(name, policy, path=args.path,
                                                   audience=args.audience,
                                                   repository=args.repository, job=args.job))
            except TppolicyError as exc:
                errors.append(exc)
    if args.format == "json":
        payload = {
            "workflows": [r.to_json() for r in reports],
            "errors": [{"file": d.span.source if d.span else None,
                        "line": d.span.line if d.span else 0,
                        "column": d.span.column if d.span else 0,
                        "message": d.message, "hint": d.hint}
                       for exc in errors for d in exc.diagnostics],
        }
        out.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    else:
        for error in errors:  # first: the summary below counts only the files checked
            print(error.render(), file=sys.stderr)
        out.write(render(reports, out, invalid=len(errors)))
    if errors:
        return EXIT_INVALID
    return EXIT_DENIED if any(r.errors for r in reports) else EXIT_ALLOWED


def _streamed(args: argparse.Namespace
              ) -> tuple[list[WorkflowReport], list[TppolicyError]] | None:
    """`check_workflows_streamed` on the --publishers file; None: read it whole."""
    from tppolicy.errors import ConfigError
    from tppolicy.readers.source import read_source
    from tppolicy.tools.workflow import check_workflows_streamed

    providers = load_providers(args)
    issuers = registered_issuers(args, providers)
    text = read_source(Path(args.publishers), ConfigError)
    return check_workflows_streamed(text, str(args.publishers), args.workflows, providers,
                                    issuers, path=args.path, audience=args.audience,
                                    repository=args.repository, job=args.job)


def render(reports: list[WorkflowReport], out: TextIO, invalid: int = 0) -> str:
    """The findings for a terminal, then a summary (`invalid` files could not be read)."""
    lines: list[str] = []
    counts = {"error": 0, "advice": 0}
    for report in reports:
        source = report.source
        try:
            text = Path(source).read_text("utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError):
            text = []
        for finding in report.findings:
            counts[finding.level] += 1
            span = finding.span
            colour = "red" if finding.level == "error" else "cyan"
            head = style(f"{finding.code} {finding.level}", colour, out)
            who = f" [publisher {finding.publisher!r}]" if finding.publisher and (
                repr(finding.publisher) not in finding.message) else ""
            lines.append(f"{span}: {head}: {finding.message}{who}")
            if 0 < span.line <= len(text):
                shown, column, width = excerpt(text[span.line - 1], span.column,
                                               max(1, span.end_column - span.column))
                lines.append(f"    {shown}")
                lines.append("    " + " " * (column - 1) + "^" + "~" * (width - 1))
            lines.append(f"    fix: {finding.fix}")
        if report.publishers and not report.errors:
            jobs = ", ".join(repr(j) for j in report.jobs)
            lines.append(f"{source}: ok: {', '.join(repr(p) for p in report.publishers)} "
                         f"would accept a token of {'job' if len(report.jobs) == 1 else 'jobs'} "
                         f"{jobs}")
    plural = "s" if len(reports) != 1 else ""
    parts = [f"{n} {level}{'s' if n != 1 and level == 'error' else ''}"
             for level, n in counts.items() if n]
    summary = f"{', '.join(parts) or 'no problems'} in {len(reports)} workflow{plural}"
    if invalid:
        summary += (f"; {invalid} file{'s' if invalid != 1 else ''} could not be checked "
                    "(see the errors above)")
    lines.append(summary)
    return "\n".join(lines) + "\n"
