"""Provider files: the shipped `policies/*.tpp` and any extra ones, parsed and checked.

Nothing is cached on disk: a cache another user could write is a way to run code as
whoever runs tppolicy next.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path

from tppolicy.errors import Diagnostic, PolicyCheckError, Span
from tppolicy.language import ast as A
from tppolicy.language.check import CheckedProvider, check_provider
from tppolicy.readers.source import LinkTree, read_source

POLICY_SUFFIX = ".tpp"


def _data_dir(name: str) -> Path:
    """`policies/` or `schemas/`: inside the wheel, or beside `src/` in a checkout."""
    packaged = resources.files("tppolicy").joinpath("_data", name)
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / name


def policies_dir() -> Path:
    """The folder of the shipped provider files."""
    return _data_dir("policies")


def load_provider_files(paths: Iterable[str | os.PathLike[str]],
                        base: Mapping[str, CheckedProvider] | None = None,
                        ) -> dict[str, CheckedProvider]:
    """Provider blocks from files or folders of `*.tpp` files; a later file overrides.

    A provider may `extend` one of `base`, or one of these files in any order.
    """
    parsed: list[tuple[A.Provider, str]] = []
    for entry in paths:
        path = Path(entry)
        # in a folder, regular files only: opening a FIFO waits for a writer, for ever
        files = sorted(f for f in path.glob(f"*{POLICY_SUFFIX}") if f.is_file()) \
            if path.is_dir() else [path]
        if not files:  # a folder without provider files: most likely the wrong folder
            raise PolicyCheckError([Diagnostic(
                f"no provider files (*{POLICY_SUFFIX}) in this folder", Span(str(path), 0, 0, 0, 0),
                hint="--providers names a provider file or a folder of them")])
        for file in files:
            # A link among a folder's provider files to a file elsewhere (a secret,
            # /proc/self/environ) is not read: its first line would be echoed in the error.
            text = read_source(file, PolicyCheckError, what="provider file", tree=LinkTree(
                (path,), "the folder of provider files",
                "copy the provider file into the folder, or name it itself",
            ) if path.is_dir() else None)
            found = _parsed_providers(text, str(file))
            if not found:
                raise PolicyCheckError([Diagnostic(
                    "no provider block in this file", Span(str(file), 0, 0, 0, 0),
                    hint="a provider file holds `provider NAME { ... }` blocks "
                    "(see policies/*.tpp)")], text)
            parsed += [(ast, text) for ast in found]
    known: dict[str, CheckedProvider] = dict(base or {})
    providers: dict[str, CheckedProvider] = {}
    waiting = parsed
    while waiting:
        # A provider whose parent is still to come waits for it (none comes: an error).
        pending_names = {ast.name for ast, _ in waiting}
        ready = [(ast, text) for ast, text in waiting
                 if ast.extends is None or ast.extends not in pending_names
                 or ast.extends == ast.name]
        if not ready:
            ast, text = waiting[0]
            raise PolicyCheckError([Diagnostic(
                f"provider '{ast.name}' extends '{ast.extends}', which extends it in turn",
                ast.span)], text)
        for ast, text in ready:
            checked = check_provider(ast, text, known)
            known[ast.name] = providers[ast.name] = checked
        waiting = [item for item in waiting if item not in ready]
    return providers


def _parsed_providers(text: str, source: str) -> tuple[A.Provider, ...]:
    from tppolicy.language.prepared import prepared_policy

    parsed = prepared_policy(text, source)  # a shipped file: no parser (nor lark) to load
    if parsed is None:
        from tppolicy.language.parse import parse_policy

        parsed = parse_policy(text, source)
    if parsed.publishers:
        raise PolicyCheckError([Diagnostic("a provider file holds only provider blocks",
                                           parsed.publishers[0].span)], text)
    return parsed.providers


@lru_cache(maxsize=1)
def _builtin() -> tuple[tuple[str, CheckedProvider], ...]:
    return tuple(load_provider_files([policies_dir()]).items())


def load_providers(extra: Iterable[str | os.PathLike[str]] = ()) -> dict[str, CheckedProvider]:
    """The shipped providers, then those in `extra` files or folders (which override, and
    may extend the shipped ones)."""
    providers = dict(_builtin())
    providers.update(load_provider_files(extra, providers))
    return providers
