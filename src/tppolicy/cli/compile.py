"""`tppolicy compile`: the concrete policy a publishers file makes."""

from __future__ import annotations

import argparse
from typing import TextIO

from tppolicy.version import __version__

from ._common import EXIT_ALLOWED, add_provider_options, exit_codes, load_policy, write_output

NAME = "compile"
HELP = "print the concrete policy a publishers file makes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Compile a publishers file through the provider files into a policy "
                          "in the tppolicy language: readable, diffable, and accepted by "
                          "`check --policy`.")
    parser.epilog = exit_codes(
        "the policy is printed (or written with -o)",
        "a publishers or provider file that cannot be read or is\n"
        "     invalid, or an -o file that cannot be written")
    parser.add_argument("publishers", metavar="PUBLISHERS", help="publishers file (YAML)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    add_provider_options(parser)


def run(args: argparse.Namespace, out: TextIO) -> int:
    from tppolicy.language.printer import format_policy

    policy = load_policy(args)
    header = (f"# Compiled by tppolicy {__version__} from {args.publishers}.\n"
              "# Generated: edit the publishers file and compile again.\n\n")
    text = header + format_policy(policy.to_policy_file(args.publishers))
    if args.output:
        write_output(args.output, text)
    else:
        out.write(text)
    return EXIT_ALLOWED
