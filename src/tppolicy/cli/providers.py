"""`tppolicy providers`: the providers known, their issuers and fields."""

from __future__ import annotations

import argparse
from typing import TextIO

from ._common import EXIT_ALLOWED, add_provider_options, exit_codes, load_providers

NAME = "providers"
HELP = "list the providers and their issuers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = exit_codes("the providers are listed",
                               "a provider file that cannot be read or is invalid")
    add_provider_options(parser)


def run(args: argparse.Namespace, out: TextIO) -> int:
    providers = load_providers(args)
    for name, provider in sorted(providers.items()):
        custom = " (custom issuers allowed)" if provider.ast.custom_issuers else ""
        issuers = ", ".join(provider.issuers) or "no built-in issuer"
        out.write(f"{name}: {issuers}{custom}\n")
        out.write(f"  fields: {', '.join(provider.fields)}\n")
    return EXIT_ALLOWED
