"""Policies from files: a publishers file compiled through the provider files, or a
compiled policy file read back."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tppolicy.decide.core import Decider, publisher_id
from tppolicy.decide.index import bucket_key
from tppolicy.decide.policy import Policy, concrete_publisher_text
from tppolicy.errors import ConfigError, Diagnostic, PolicyCheckError, Span, TppolicyError
from tppolicy.language import ast as A
from tppolicy.language.check import (
    CheckedPolicy,
    CheckedProvider,
    CheckedPublisher,
    PublisherStream,
    check_policy,
)
from tppolicy.language.compile import lookup_value
from tppolicy.language.providers import load_providers
from tppolicy.limits import NEAR_MISS_SCAN
from tppolicy.readers.source import read_source

if TYPE_CHECKING:
    from tppolicy.decide.publishers import PublisherEntry
    from tppolicy.readers.yaml import YamlDocument


def compile_publishers_text(text: str, source: str = "<publishers>", *,
                            providers: Mapping[str, CheckedProvider] | None = None,
                            issuers: Mapping[str, str] | None = None,
                            document: YamlDocument | None = None) -> Policy:
    """A publishers file (YAML) → a Policy, through the provider files. `document`: the
    text already composed by `compose_yaml`, when the caller needs its positions too."""
    from tppolicy.decide.publishers import load_publishers_document
    from tppolicy.readers.yaml import NotPlain, compose_yaml

    providers = load_providers() if providers is None else providers
    if document is None:
        try:
            return _compile_streamed(text, source, providers, issuers, None)
        except (NotPlain, TppolicyError):
            pass  # read whole: every problem reported, or what the stream leaves out
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
        return Policy(checked, issuers, source_text=text)
    except PolicyCheckError as exc:
        raise ConfigError(exc.diagnostics, text) from None


def compile_publishers_for_claims(text: str, source: str, claims: Mapping[str, Any], *,
                                  providers: Mapping[str, CheckedProvider] | None = None,
                                  issuers: Mapping[str, str] | None = None) -> Policy:
    """`compile_publishers_text` holding only the publishers a decision on `claims` can
    read, for a large file: every publisher is read and checked (any problem is reported
    as `compile_publishers_text` reports it), but only these are kept: those whose lookup
    key or identity the claims give, the first `NEAR_MISS_SCAN` + 1 of the claims'
    provider (a refusal is explained against any of them when there are no more) and the
    first of each other provider (a refusal says which providers have publishers). Its
    decision on these claims, closest publisher and ids are the whole file's."""
    from tppolicy.readers.yaml import NotPlain, compose_yaml

    providers = load_providers() if providers is None else providers
    try:
        return _compile_streamed(text, source, providers, issuers, claims)
    except (NotPlain, TppolicyError):
        return compile_publishers_text(text, source, providers=providers, issuers=issuers,
                                       document=compose_yaml(text, source, ConfigError))


def compile_publishers_blocks(text: str, source: str = "<publishers>", *,
                              providers: Mapping[str, CheckedProvider] | None = None,
                              issuers: Mapping[str, str] | None = None) -> list[str]:
    """The blocks of the concrete policy a publishers file makes, each without its final
    newline: the used providers' headers, then every publisher (`format_policy` of
    `compile_publishers_text(...).to_policy_file(source)` is them joined by blank lines).
    Errors as `compile_publishers_text` raises them."""
    printed: list[str] = []
    headers = _compile_printing(text, source, printed.append, printed.clear,
                                providers=providers, issuers=issuers)
    return [*headers, *printed]


def compile_publishers_spooled(text: str, spool: TextIO, source: str = "<publishers>", *,
                               providers: Mapping[str, CheckedProvider] | None = None,
                               issuers: Mapping[str, str] | None = None) -> list[str]:
    """`compile_publishers_blocks` with the publishers written to `spool` (a file open for
    writing at its start, e.g. a temporary file), joined by blank lines, without a final
    newline; returns the used providers' headers, which come first in the policy. A plain
    file is read as a stream and each publisher written as it is checked, none kept: ten
    thousand publishers take their text's memory, not their policy's. On an error, what
    `spool` holds is not a policy."""
    first = [True]

    def write(block: str) -> None:
        if not first[0]:
            spool.write("\n\n")
        first[0] = False
        spool.write(block)

    def restart() -> None:
        spool.seek(0)
        spool.truncate()
        first[0] = True

    return _compile_printing(text, source, write, restart, providers=providers,
                             issuers=issuers)


def _compile_printing(text: str, source: str, write: Callable[[str], None],
                      restart: Callable[[], None], *,
                      providers: Mapping[str, CheckedProvider] | None,
                      issuers: Mapping[str, str] | None) -> list[str]:
    """Each publisher's block given to `write` in the file's order (`restart`: forget those
    given, the file is read again whole); returns the used providers' headers."""
    from tppolicy.language.printer import format_provider, format_publisher
    from tppolicy.readers.yaml import NotPlain, compose_yaml

    providers = load_providers() if providers is None else providers
    used: set[str] = set()

    def consume(publisher: CheckedPublisher) -> None:
        used.add(publisher.provider.name)
        write(concrete_publisher_text(publisher))

    try:
        policy = _compile_streamed(text, source, providers, issuers, None, consume)
    except (NotPlain, TppolicyError):  # read whole: every problem reported
        restart()
        policy = compile_publishers_text(text, source, providers=providers, issuers=issuers,
                                         document=compose_yaml(text, source, ConfigError))
        whole = policy.to_policy_file(source)
        for publisher in whole.publishers:
            write(format_publisher(publisher))
        return [format_provider(p) for p in whole.providers]
    return [format_provider(p) for p in policy.provider_headers(sorted(used))]


def _compile_streamed(text: str, source: str, providers: Mapping[str, CheckedProvider],
                      issuers: Mapping[str, str] | None,
                      claims: Mapping[str, Any] | None,
                      consume: Callable[[CheckedPublisher], None] | None = None) -> Policy:
    """The file read as a stream (`stream_publishers`): with `claims`, only the publishers
    `claims_selection` keeps for them; with `consume`, each publisher handed over and none
    kept. `NotPlain` when the file must be read whole."""
    from tppolicy.readers.yaml import NotPlain

    keep = claims_selection([claims], providers=providers, issuers=issuers) \
        if claims is not None else None

    def take(entry: Any, publisher: CheckedPublisher, publisher_id_: str) -> bool:
        if consume is not None:  # handed over, not kept
            consume(publisher)
            return False
        return keep is None or keep(publisher)

    policy = stream_publishers(text, source, take, providers=providers, issuers=issuers)
    if policy is None:
        raise NotPlain
    return policy


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
    from tppolicy.decide.recognize import load_compiled_policy
    from tppolicy.language.parse import parse_policy

    # `compile`'s blocks as it printed them are read without the parser; any other file,
    # or any problem, is read whole (and the problem worded by the checker)
    recognized = load_compiled_policy(text, source, providers, issuers)
    if recognized is not None:
        return recognized
    checked = check_policy(parse_policy(text, source), providers, text)
    return Policy(checked, issuers, source_text=text)


def load_policy_for_claims(text: str, source: str, claims: Mapping[str, Any], *,
                           providers: Mapping[str, CheckedProvider] | None = None,
                           issuers: Mapping[str, str] | None = None) -> Policy:
    """`load_policy_text` holding only the publishers a decision on `claims` can read, as
    `compile_publishers_for_claims` keeps them, for a compiled policy whose blocks are all
    as `compile` printed them (`load_compiled_policy`); any other file is read whole."""
    from tppolicy.decide.recognize import load_compiled_policy

    providers = load_providers() if providers is None else providers
    keep = claims_selection([claims], providers=providers, issuers=issuers)
    recognized = load_compiled_policy(text, source, providers, issuers, keep)
    if recognized is not None:
        return recognized
    return load_policy_text(text, source, providers=providers, issuers=issuers)


def load_policy_file(path: str | os.PathLike[str], *,
                     providers: Mapping[str, CheckedProvider] | None = None,
                     issuers: Mapping[str, str] | None = None,
                     claims: Mapping[str, Any] | None = None) -> Policy:
    """A policy file (as `tppolicy compile` prints it) → a Policy that decides alike.

    An empty file is refused, as an empty publishers file is (`compile` of no publishers
    still prints its header): most likely the wrong file, or one not written yet. With
    `claims`, as `load_policy_for_claims`. A compiled policy whose blocks are all as
    `compile` printed them is read from the file's bytes (`CompiledReading.of_file`),
    without its whole text, and its blocks read again one at a time: ten thousand
    publishers do not take their file's size in memory while they are read."""
    from tppolicy.decide.recognize import CompiledReading
    from tppolicy.readers.source import open_source, read_opened

    providers = load_providers() if providers is None else providers
    source = str(path)
    with open_source(Path(path), PolicyCheckError) as handle:
        reading = CompiledReading.of_file(
            handle, lambda opened: read_opened(opened, source, PolicyCheckError), source,
            providers)
        keep = claims_selection([claims], providers=providers, issuers=issuers) \
            if claims is not None else None
        recognized = None if reading is None else reading.policy(issuers, keep)
        if recognized is not None:
            return recognized
        del reading
        handle.seek(0)
        raw = read_opened(handle, source, PolicyCheckError)
    text = policy_source(raw, path)
    del raw
    return load_policy_text(text, str(path), providers=providers, issuers=issuers)


def policy_source(raw: bytes, path: str | os.PathLike[str]) -> str:
    """A policy file's text, from its bytes; an empty file is refused, as an empty
    publishers file is (`compile` of no publishers still prints its header): most likely
    the wrong file, or one not written yet."""
    from tppolicy.readers.source import decode_source

    text = decode_source(raw, str(path), PolicyCheckError)
    if not text.strip():
        raise PolicyCheckError([Diagnostic(
            "the file is empty", Span(str(path), 0, 0, 0, 0),
            hint="a policy file is what `tppolicy compile PUBLISHERS.yaml` prints")], text)
    return text


def claims_selection(claims: Iterable[Mapping[str, Any]], *,
                     providers: Mapping[str, CheckedProvider],
                     issuers: Mapping[str, str] | None = None
                     ) -> Callable[[CheckedPublisher], bool]:
    """Whether to keep a publisher, for decisions on each of `claims`: what
    `compile_publishers_for_claims` keeps for one of them. To be asked of every publisher
    of a file, in its order; a policy of the kept publishers decides on each of `claims`
    as the whole file's does (closest publisher and ids included). The lookup keys and
    identities wanted are gathered once, so that many claims (a case table's) cost little
    more per publisher than one."""
    decider = Decider(providers, issuers)
    wanted: dict[str, tuple[list[Any], list[Any]]] = {}  # provider -> keys, identities
    for one in claims:
        issuer = one.get("iss")
        index = decider.issuers.get(issuer) if isinstance(issuer, str) else None
        if index is None:  # the first of each provider is kept for any claims
            continue
        name = index.checked.name
        keys, identities = wanted.setdefault(name, ([], []))
        try:
            key = bucket_key(index.lookup(one)[0])
        except Exception:  # a key the claims cannot give matches nothing
            key = None
        identity = decider.token_identity(name, one)
        for value, found in ((key, keys), (identity, identities)):
            try:
                if value is None or value in found:
                    continue
            except Exception:  # a value that cannot be compared: kept, and compared later
                pass
            found.append(value)
    counts: dict[str, int] = {}

    def keep(publisher: CheckedPublisher) -> bool:
        name = publisher.provider.name
        seen = counts[name] = counts.get(name, 0) + 1
        asked = wanted.get(name)
        if asked is None:
            return seen == 1
        if seen <= NEAR_MISS_SCAN + 1:
            return True
        keys, identities = asked
        key = tuple(lookup_value(v) for v in publisher.key_values)
        try:
            if keys and bucket_key(key) in keys:
                return True
            return bool(identities) and decider.key_identity(name, key) in identities
        except Exception:  # a claim of the wrong type: kept
            return True

    return keep


def stream_publishers(text: str, source: str,
                      consume: Callable[[PublisherEntry, CheckedPublisher, str], bool], *,
                      providers: Mapping[str, CheckedProvider] | None = None,
                      issuers: Mapping[str, str] | None = None) -> Policy | None:
    """A publishers file read once as a stream, for a tool that looks at every publisher
    and holds few: each entry, checked, is handed to `consume(entry, publisher, id)` (its
    id as `publisher_id` gives it over the whole file) and dropped, unless `consume`
    returns True. The Policy of the kept publishers (with their ids: a decision names them
    as the whole file's policy does), or None when the file must be read whole
    (`compile_publishers_text`, which reports every problem): it is not plain, it has a
    problem, or two of its publishers may shadow one another (the same provider, lookup
    key and `prefer` values: `Policy` and `Engine` refuse some such pairs, and the whole
    file's policy says which). After None, `consume` has seen some publishers (maybe all):
    the caller drops what it gathered and reads the file whole."""
    from tppolicy.decide.publishers import iter_plain_publishers
    from tppolicy.readers.yaml import NotPlain

    providers = load_providers() if providers is None else providers
    kept: list[CheckedPublisher] = []
    ids: list[str] = []
    try:
        Decider(providers, issuers)  # registered issuers refused (as Policy does) first
        entries = iter_plain_publishers(text, source, {n: p.ast for n, p in providers.items()},
                                        issuers or {})
        stream = PublisherStream(source, providers)
        marks: set[int] = set()
        taken: set[str] = set()
        counter = itertools.count(1)
        for entry in entries:
            checked = stream.check_fields(A.Publisher(
                entry.name, entry.provider, entry.projects, entry.pending_project, (), (),
                entry.span), entry.fields, entry.index)
            if checked.ast.rules:  # pragma: no cover - a file's entries write no rules
                return None
            try:  # what `Decider.shadowing` compares, kind aside, as `Policy` computes it
                mark = hash((checked.provider.name,
                             bucket_key(tuple(lookup_value(v) for v in checked.key_values)),
                             tuple(lookup_value(v) for v in checked.prefer_values)))
            except Exception:  # a value that cannot be hashed: the whole file's policy
                return None
            if mark in marks:
                return None
            marks.add(mark)
            publisher_id_ = publisher_id(entry.name, taken, counter)
            taken.add(publisher_id_)
            if consume(entry, checked, publisher_id_):
                kept.append(checked)
                ids.append(publisher_id_)
        return Policy(CheckedPolicy(dict(providers), tuple(kept)), issuers, ids=ids)
    except (NotPlain, TppolicyError):
        return None


def stream_publishers_for_claims(text: str, source: str, claims: Mapping[str, Any],
                                 consume: Callable[[CheckedPublisher], None], *,
                                 providers: Mapping[str, CheckedProvider] | None = None,
                                 issuers: Mapping[str, str] | None = None) -> Policy | None:
    """`compile_publishers_for_claims` handing every publisher of the file to `consume`,
    in the file's order, as it is checked: a tool that looks at each publisher once
    (`tppolicy explain` ranks them all) need not hold the file's policy. The policy
    returned holds the publishers `compile_publishers_for_claims` keeps, and decides
    alike. None when the file must be read whole (`stream_publishers`); `consume` may
    have been handed some of its publishers by then."""
    providers = load_providers() if providers is None else providers
    keep = claims_selection([claims], providers=providers, issuers=issuers)

    def take(entry: Any, publisher: CheckedPublisher, publisher_id_: str) -> bool:
        consume(publisher)
        return keep(publisher)

    return stream_publishers(text, source, take, providers=providers, issuers=issuers)
