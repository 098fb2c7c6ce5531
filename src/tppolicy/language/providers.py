"""Provider files: the shipped `policies/*.tpp` and any extra ones, parsed and checked.

Nothing is cached on disk: a cache another user could write is a way to run code as
whoever runs tppolicy next.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path

from tppolicy.errors import Diagnostic, PolicyCheckError
from tppolicy.language.check import CheckedProvider, check_provider
from tppolicy.readers.source import read_source

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


def load_provider_files(paths: Iterable[str | os.PathLike[str]]) -> dict[str, CheckedProvider]:
    """Provider blocks from files or folders of `*.tpp` files; a later file overrides."""
    providers: dict[str, CheckedProvider] = {}
    for entry in paths:
        path = Path(entry)
        files = sorted(path.glob(f"*{POLICY_SUFFIX}")) if path.is_dir() else [path]
        for file in files:
            text = read_source(file, PolicyCheckError)
            for provider in _checked_providers(text, str(file)):
                providers[provider.name] = provider
    return providers


def _checked_providers(text: str, source: str) -> list[CheckedProvider]:
    from tppolicy.language.parse import parse_policy

    parsed = parse_policy(text, source)
    if parsed.publishers:
        raise PolicyCheckError([Diagnostic("a provider file holds only provider blocks",
                                           parsed.publishers[0].span)], text)
    return [check_provider(ast, text) for ast in parsed.providers]


@lru_cache(maxsize=1)
def _builtin() -> tuple[tuple[str, CheckedProvider], ...]:
    return tuple(load_provider_files([policies_dir()]).items())


def load_providers(extra: Iterable[str | os.PathLike[str]] = ()) -> dict[str, CheckedProvider]:
    """The shipped providers, then those in `extra` files or folders (which override)."""
    providers = dict(_builtin())
    providers.update(load_provider_files(extra))
    return providers
