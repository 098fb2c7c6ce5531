"""Entry points that read files: shipped and extra provider files, publisher files,
compiled policy files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path

from . import _ast as A
from ._check import CheckedProvider, check_policy, check_provider
from ._errors import ConfigError, Diagnostic, PolicyCheckError, Span, TppolicyError
from ._evaluate import Policy
from ._parse import parse_policy

POLICY_SUFFIX = ".tpp"


def _data_dir(name: str) -> Path:
    """`policies/` or `schemas/`: inside the wheel, or beside `src/` in a checkout."""
    packaged = resources.files(__package__).joinpath("_data", name)
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / name


def policies_dir() -> Path:
    return _data_dir("policies")


def schemas_dir() -> Path:
    return _data_dir("schemas")


def read_source(path: Path, error: type[TppolicyError]) -> str:
    """A source file's text (UTF-8, a byte-order mark allowed); `error` names the file."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error([Diagnostic(f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                                Span(str(path), 0, 0, 0, 0))]) from None
    except OSError as exc:
        raise error([Diagnostic(f"cannot read: {exc.strerror or exc}",
                                Span(str(path), 0, 0, 0, 0))]) from None


def load_provider_files(paths: Iterable[str | os.PathLike[str]]) -> dict[str, CheckedProvider]:
    """Provider blocks from files or folders of `*.tpp` files; a later file overrides."""
    providers: dict[str, CheckedProvider] = {}
    for entry in paths:
        path = Path(entry)
        files = sorted(path.glob(f"*{POLICY_SUFFIX}")) if path.is_dir() else [path]
        for file in files:
            text = read_source(file, PolicyCheckError)
            parsed = parse_policy(text, str(file))
            if parsed.publishers:
                raise PolicyCheckError([Diagnostic("a provider file holds only provider blocks",
                                                   parsed.publishers[0].span)], text)
            for ast in parsed.providers:
                providers[ast.name] = check_provider(ast, text)
    return providers


@lru_cache(maxsize=1)
def _builtin() -> tuple[tuple[str, CheckedProvider], ...]:
    return tuple(load_provider_files([policies_dir()]).items())


def load_providers(extra: Iterable[str | os.PathLike[str]] = ()) -> dict[str, CheckedProvider]:
    """The shipped providers, then those in `extra` files or folders (which override)."""
    providers = dict(_builtin())
    providers.update(load_provider_files(extra))
    return providers


def compile_publishers_text(text: str, source: str = "<publishers>", *,
                            providers: Mapping[str, CheckedProvider] | None = None,
                            issuers: Mapping[str, str] | None = None) -> Policy:
    """A publishers file (YAML) → a Policy, through the provider files."""
    from ._publishers import load_publishers_text

    providers = load_providers() if providers is None else providers
    entries = load_publishers_text(text, source, {n: p.ast for n, p in providers.items()},
                                   issuers or {})
    publishers = tuple(
        A.Publisher(entry.name, entry.provider, entry.projects, entry.pending_project,
                    tuple(A.Binding(name, A.Literal(value), entry.span)
                          for name, value in entry.fields.items()),
                    (), entry.span)
        for entry in entries)
    try:
        checked = check_policy(A.PolicyFile(source, (), publishers), providers, text)
    except PolicyCheckError as exc:
        raise ConfigError(exc.diagnostics, text) from None
    return Policy(checked, issuers)


def compile_publishers_file(path: str | os.PathLike[str], *,
                            providers: Mapping[str, CheckedProvider] | None = None,
                            issuers: Mapping[str, str] | None = None) -> Policy:
    return compile_publishers_text(read_source(Path(path), ConfigError), str(path),
                                   providers=providers, issuers=issuers)


def load_policy_text(text: str, source: str = "<policy>", *,
                     providers: Mapping[str, CheckedProvider] | None = None,
                     issuers: Mapping[str, str] | None = None) -> Policy:
    """A policy file (as `tppolicy compile` prints) → a Policy.

    Provider blocks in the file take precedence over the shipped ones, so a compiled
    policy decides alike wherever it is read.
    """
    providers = load_providers() if providers is None else providers
    checked = check_policy(parse_policy(text, source), providers, text)
    return Policy(checked, issuers)


def load_policy_file(path: str | os.PathLike[str], *,
                     providers: Mapping[str, CheckedProvider] | None = None,
                     issuers: Mapping[str, str] | None = None) -> Policy:
    return load_policy_text(read_source(Path(path), PolicyCheckError), str(path),
                            providers=providers, issuers=issuers)
