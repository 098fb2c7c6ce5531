"""The `tppolicy` command: a thin layer over the library that reads files and prints.

One module per subcommand, each with NAME, HELP, add_arguments(parser) and
run(args, out) -> exit code. Exit codes are in `_common` and `tppolicy --help`.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO, cast

from tppolicy.errors import TppolicyError
from tppolicy.version import __version__

from . import check, check_workflow, compile, decode, explain, fmt, lint, providers, serve, test
from ._common import (
    EPILOG,
    EXIT_ALLOWED,
    EXIT_INTERNAL,
    EXIT_INVALID,
    EXIT_USAGE,
    Parser,
    UsageError,
    read_claims,
)

# The subcommands, in the order `tppolicy --help` lists them.
COMMANDS = (check, check_workflow, compile, providers, decode, lint, test, explain, fmt, serve)

__all__ = ["COMMANDS", "build_parser", "main", "read_claims"]


def _chosen(argv: Sequence[str] | None) -> str | None:
    """The subcommand named on the command line, if any (`tppolicy check ...`)."""
    names = {command.NAME for command in COMMANDS}
    for word in sys.argv[1:] if argv is None else argv:
        if not word.startswith("-"):
            return word if word in names else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv`, only the named subcommand's options are built (a
    subcommand may import heavy modules to describe itself: `--help` builds all)."""
    parser = Parser(prog="tppolicy", description="Trusted Publishing policies: decide whether "
                    "a CI job's OIDC token may publish to a package index.",
                    epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tppolicy {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    chosen = _chosen(argv) if argv is not None or sys.argv[1:] else None
    for command in COMMANDS:
        sub = commands.add_parser(command.NAME, help=command.HELP,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        if chosen is None or chosen == command.NAME:
            command.add_arguments(sub)
        # `--debug` also after the subcommand; SUPPRESS keeps a --debug given before it.
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show tracebacks of internal errors")
        sub.set_defaults(run=command.run)
    return parser


def _subcommand_version(argv: Sequence[str]) -> int | None:
    """`tppolicy COMMAND --version`: the program's version when alone, else a usage error
    (`check --version X` once meant the uploaded version, now `--upload-version`: an old
    script must not read the version banner's exit 0 as "allowed")."""
    words = list(argv)
    chosen = _chosen(words)
    if chosen is None or "--version" not in words[words.index(chosen) + 1:]:
        return None
    rest = [w for w in words[words.index(chosen) + 1:] if w not in ("--version", "--debug")]
    if not rest:
        print(f"tppolicy {__version__}")
        return EXIT_ALLOWED
    hint = " (the version being uploaded is --upload-version)" if chosen == "check" else ""
    print(f"tppolicy {chosen}: error: --version prints the program's version and takes no "
          f"other arguments{hint}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run `tppolicy ARGV...` (default: sys.argv[1:]) and return its exit code."""
    words = sys.argv[1:] if argv is None else list(argv)
    version = _subcommand_version(words)
    if version is not None:
        return version
    parser = build_parser(words)
    args = parser.parse_args(words)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    threshold = gc.get_threshold()
    if args.command != "serve":
        # A command builds what it reads (ten thousand publishers are a million objects)
        # and exits: a young-generation collection every 700 allocations took a third of
        # its time. A server keeps the default.
        gc.set_threshold(100_000, 50, 100)
    out = _Output(sys.stdout)
    try:
        code: int = args.run(args, cast(TextIO, out))
        out.flush()
    except TppolicyError as exc:
        print(exc.render(), file=sys.stderr)
        code = EXIT_INVALID
    except UsageError as exc:
        print(f"tppolicy: error: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    except Exception as exc:  # the one place a bug is turned into an exit code
        if args.debug:  # the traceback, and still exit 4: --debug never changes an exit code
            traceback.print_exc()
            return EXIT_INTERNAL
        print(f"tppolicy: internal error: {type(exc).__name__}: {exc} (run with --debug for "
              "the traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        gc.set_threshold(*threshold)
    if out.error is not None:
        print(f"tppolicy: cannot write to standard output: "
              f"{out.error.strerror or out.error}", file=sys.stderr)
        return EXIT_INVALID if code != EXIT_USAGE else code
    return code


class _Output(io.TextIOBase):
    """A command's standard output. A reader that went away (a broken pipe: `| head -n 1`)
    stops the writing and leaves the command's exit code as it is (a denial stays exit
    1; it was exit 0). Any other failure (a full disk) stops the writing too and is kept
    in `error`: exit 3, as for an output file that cannot be written. After either, the
    stream is pointed at the null device, so the interpreter's last flush cannot fail."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self.error: OSError | None = None
        self._stopped = False

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return bool(self._stream.isatty())

    def write(self, text: str) -> int:
        if not self._stopped:
            try:
                self._stream.write(text)
            except OSError as exc:
                self._stop(exc)
        return len(text)

    def flush(self) -> None:
        if not self._stopped:
            try:
                self._stream.flush()
            except OSError as exc:
                self._stop(exc)

    def _stop(self, exc: OSError) -> None:
        self._stopped = True
        if not isinstance(exc, BrokenPipeError):
            self.error = exc
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, self._stream.fileno())
            finally:
                os.close(null)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass  # not a file (a test's capture): nothing will flush it at exit
