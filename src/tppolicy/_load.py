"""Entry points that read files: shipped and extra provider files, publisher files,
compiled policy files."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path

from . import _ast as A
from ._check import CheckedProvider, check_policy, check_provider
from ._errors import ConfigError, Diagnostic, PolicyCheckError, Span, TppolicyError
from ._evaluate import Policy

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


def read_source(path: Path, error: type[TppolicyError], encoding: str = "utf-8-sig") -> str:
    """A source file's text (UTF-8; by default a byte-order mark is dropped, `"utf-8"`
    keeps it, for a tool that writes the file back); `error` names the file, and for a
    byte that is not UTF-8 its line and column."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error([Diagnostic(f"cannot read the file: {exc.strerror or exc}",
                                Span(source, 0, 0, 0, 0))]) from None
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        before = raw[:exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
        raise error([Diagnostic(
            f"the file is not UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded",
            Span(source, line, column, line, column + 1), hint="save the file as UTF-8")],
        ) from None


def load_provider_files(paths: Iterable[str | os.PathLike[str]],
                        cache: bool = False) -> dict[str, CheckedProvider]:
    """Provider blocks from files or folders of `*.tpp` files; a later file overrides.
    With `cache`, checked providers are kept between runs (the shipped files)."""
    providers: dict[str, CheckedProvider] = {}
    for entry in paths:
        path = Path(entry)
        files = sorted(path.glob(f"*{POLICY_SUFFIX}")) if path.is_dir() else [path]
        for file in files:
            text = read_source(file, PolicyCheckError)
            for provider in _checked_providers(text, str(file), cache):
                providers[provider.name] = provider
    return providers


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tppolicy"


def _checked_providers(text: str, source: str, cache: bool) -> list[CheckedProvider]:
    """A provider file's checked providers, from the cache when this exact text was
    checked before by this version with this grammar (start-up: parsing seven provider
    files on every run cost a tenth of `tppolicy check`). The cache is only a cache:
    any problem with it means parsing again."""
    from . import __version__

    grammar = resources.files(__package__).joinpath("_grammar/policy.lark").read_bytes()
    digest = hashlib.sha256(b"\0".join((__version__.encode(), grammar, source.encode(),
                                          text.encode()))).hexdigest()
    cached = _cache_dir() / f"provider-{digest}.pickle"
    try:
        if not cache:
            raise FileNotFoundError(cached)
        with cached.open("rb") as handle:
            providers = pickle.load(handle)
        if isinstance(providers, list) and all(isinstance(p, CheckedProvider)
                                               for p in providers):
            return providers
    except Exception:  # absent, unreadable, from another Python: parse again
        pass
    from ._parse import parse_policy

    parsed = parse_policy(text, source)
    if parsed.publishers:
        raise PolicyCheckError([Diagnostic("a provider file holds only provider blocks",
                                           parsed.publishers[0].span)], text)
    providers = [check_provider(ast, text) for ast in parsed.providers]
    if not cache:
        return providers
    with contextlib.suppress(Exception):  # a read-only home only costs the parse
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as handle:
            pickle.dump(providers, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, cached)
    return providers


@lru_cache(maxsize=1)
def _builtin() -> tuple[tuple[str, CheckedProvider], ...]:
    return tuple(load_provider_files([policies_dir()], cache=True).items())


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
    from ._parse import parse_policy

    checked = check_policy(parse_policy(text, source), providers, text)
    return Policy(checked, issuers)


def load_policy_file(path: str | os.PathLike[str], *,
                     providers: Mapping[str, CheckedProvider] | None = None,
                     issuers: Mapping[str, str] | None = None) -> Policy:
    return load_policy_text(read_source(Path(path), PolicyCheckError), str(path),
                            providers=providers, issuers=issuers)
