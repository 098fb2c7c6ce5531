"""Policies from files: a publishers file compiled through the provider files, or a
compiled policy file read back."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tppolicy.decide.policy import Policy
from tppolicy.errors import ConfigError, PolicyCheckError
from tppolicy.language import ast as A
from tppolicy.language.check import CheckedProvider, check_policy
from tppolicy.language.providers import load_providers
from tppolicy.readers.source import read_source

if TYPE_CHECKING:
    from tppolicy.readers.yaml import YamlDocument


def compile_publishers_text(text: str, source: str = "<publishers>", *,
                            providers: Mapping[str, CheckedProvider] | None = None,
                            issuers: Mapping[str, str] | None = None,
                            document: YamlDocument | None = None) -> Policy:
    """A publishers file (YAML) → a Policy, through the provider files. `document`: the
    text already composed by `compose_yaml`, when the caller needs its positions too."""
    from tppolicy.decide.publishers import load_publishers_document
    from tppolicy.readers.yaml import compose_yaml

    providers = load_providers() if providers is None else providers
    if document is None:
        document = compose_yaml(text, source, ConfigError)
    entries = load_publishers_document(document, {n: p.ast for n, p in providers.items()},
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
    """A publishers file (YAML) → a Policy; `ConfigError` names the line and the field."""
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
    from tppolicy.language.parse import parse_policy

    checked = check_policy(parse_policy(text, source), providers, text)
    return Policy(checked, issuers)


def load_policy_file(path: str | os.PathLike[str], *,
                     providers: Mapping[str, CheckedProvider] | None = None,
                     issuers: Mapping[str, str] | None = None) -> Policy:
    """A policy file (as `tppolicy compile` prints it) → a Policy that decides alike."""
    return load_policy_text(read_source(Path(path), PolicyCheckError), str(path),
                            providers=providers, issuers=issuers)
