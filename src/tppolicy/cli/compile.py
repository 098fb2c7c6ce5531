"""`tppolicy compile`: the concrete policy a publishers file makes."""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path
from typing import TextIO

from tppolicy.version import __version__

from ._common import (
    EXIT_ALLOWED,
    add_provider_options,
    exit_codes,
    load_providers,
    registered_issuers,
    write_output_parts,
)

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
    from tppolicy.decide.load import compile_publishers_spooled
    from tppolicy.errors import ConfigError
    from tppolicy.readers.source import read_source

    providers = load_providers(args)
    source = args.publishers
    # The publishers' blocks go to a temporary file as they are printed (the providers'
    # headers, which come first, are known at the end): memory stays the file's text.
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as spool:
        headers = compile_publishers_spooled(
            read_source(Path(source), ConfigError, what="publishers file"), spool,
            str(source), providers=providers, issuers=registered_issuers(args, providers))
        publishers = spool.tell() > 0
        spool.seek(0)
        parts = itertools.chain(
            [f"# Compiled by tppolicy {__version__} from {source}.\n"
             "# Generated: edit the publishers file and compile again.\n\n",
             "\n\n".join(headers)],
            ["\n\n"] if headers and publishers else [],
            iter(lambda: spool.read(1 << 16), ""),
            ["\n"] if headers or publishers else [])
        if args.output:
            write_output_parts(args.output, parts)
        else:
            for part in parts:
                out.write(part)
    return EXIT_ALLOWED
