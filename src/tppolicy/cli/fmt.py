"""`tppolicy fmt`: rewrite policy and publishers files in their canonical layout."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from ._common import EXIT_ALLOWED, EXIT_DENIED, EXIT_INTERNAL, EXIT_INVALID, load_providers
from ._style import colour_enabled, style

NAME = "fmt"
HELP = "rewrite policy and publishers files in their canonical layout"

_EPILOG = """exit codes (the worst over all files):
  0  success: every file is formatted (or has been reformatted), or --diff
  1  --check: some file is not formatted (its diff is printed)
  2  usage error
  3  a file cannot be read or does not parse (the other files are still processed)
  4  internal error: the result would not have meant the same (the file is left alone)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Rewrite policy files (*.tpp) and publishers files (*.yaml, *.yml with a top-level\n"
        "'publishers' list) in one canonical layout, keeping their comments. A folder\n"
        "stands for the policy and publishers files below it. Files are rewritten in place\n"
        "unless --check or --diff is given.")
    parser.epilog = _EPILOG
    parser.add_argument("files", metavar="FILE", nargs="+",
                        help="policy or publishers file, or folder")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and print the diff if a file is not "
                             "formatted")
    parser.add_argument("--diff", action="store_true",
                        help="write nothing; print the diff of each file that would change")
    parser.add_argument("--providers", metavar="PATH", action="append", default=[],
                        help="extra provider file or folder of *.tpp files, whose field order "
                             "publishers entries follow; repeatable")


def _coloured(line: str, out: TextIO) -> str:
    """A line of a diff (with its line end), coloured for `out`."""
    text = line.rstrip("\n")
    if text.startswith(("---", "+++")):
        text = style(text, "bold", out)
    elif text.startswith("-"):
        text = style(text, "red", out)
    elif text.startswith("+"):
        text = style(text, "green", out)
    elif text.startswith("@@"):
        text = style(text, "cyan", out)
    return text + "\n"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def run(args: argparse.Namespace, out: TextIO) -> int:
    from tppolicy.tools.fmt import collect_files, format_file, iter_unified_diff, write_file

    err = sys.stderr
    providers = {name: p.ast for name, p in load_providers(args).items()}
    status = EXIT_ALLOWED
    changed = unchanged = failed = invalid = 0
    for path in collect_files(args.files):
        result = format_file(path, providers)
        if result.error is not None:
            err.write(result.error.render() + "\n")
            status, failed = max(status, EXIT_INVALID), failed + 1
            continue
        if result.bug is not None:
            err.write(f"{path}: tppolicy fmt: internal error: {result.bug}; the file is left "
                      "as it is (please report it)\n")
            status, failed = max(status, EXIT_INTERNAL), failed + 1
            continue
        if result.problems:
            invalid += 1
            err.write(f"{path}: formatted as it is, but it is not a valid publishers file "
                      f"({_plural(result.problems, 'problem')}: run `tppolicy lint {path}`)\n")
        if not result.changed:
            unchanged += 1
            continue
        changed += 1
        if args.check or args.diff:
            coloured = args.check and colour_enabled(out)  # (asked once: a diff is long)
            batch: list[str] = []  # written a few thousand lines at a time: a whole
            for line in iter_unified_diff(result):  # file's diff is large
                batch.append(_coloured(line, out) if coloured else line)
                if len(batch) >= 4096:
                    out.write("".join(batch))
                    batch.clear()
            out.write("".join(batch))
            if args.check:
                status = max(status, EXIT_DENIED)
            continue
        try:
            write_file(result)
        except OSError as exc:
            err.write(f"{path}: cannot write: {exc.strerror or exc}\n")
            status, failed, changed = max(status, EXIT_INVALID), failed + 1, changed - 1
            continue
        err.write(f"reformatted {path}\n")
    verb = "would be reformatted" if args.check or args.diff else "reformatted"
    parts = [f"{_plural(changed, 'file')} {verb}"] if changed else []
    if unchanged:
        parts.append(f"{_plural(unchanged, 'file')} already formatted")
    if failed:
        parts.append(f"{_plural(failed, 'file')} could not be formatted")
    if invalid:
        parts.append(f"{_plural(invalid, 'file')} with problems (tppolicy lint tells which)")
    err.write((", ".join(parts) if parts else "no policy or publishers files found") + "\n")
    return status
