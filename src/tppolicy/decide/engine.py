"""One engine for an index server: every request thread asks it which publisher, and
so which projects, a token speaks for, while the server's users add and remove
publishers. Pending publishers run as on PyPI; every decision can be recorded.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from tppolicy.decide.core import Decider, jti_claimed, shadowing_mark, shadowing_problem, use_jti
from tppolicy.decide.core import publisher_id as new_publisher_id
from tppolicy.decide.decision import (
    INVALID_PAYLOAD,
    INVALID_PENDING_PUBLISHER,
    INVALID_PUBLISHER,
    INVALID_REUSE_TOKEN,
    INVALID_TOKEN,
    Decision,
    RuleResult,
    token_denial,
)
from tppolicy.decide.index import Record, lookup_text
from tppolicy.decide.names import canonicalize_name, ultranormalize_name
from tppolicy.errors import ConfigError, Diagnostic, Span
from tppolicy.language import ast as A
from tppolicy.language.bind import bind_learns
from tppolicy.language.check import CheckedProvider, did_you_mean
from tppolicy.language.ops import describe_type
from tppolicy.limits import (
    DEFAULT_LEEWAY,
    MAX_JTI_CHARS,
    MAX_PATTERN_VALUE,
    MAX_TOKEN_LIFETIME,
    NEAR_MISSES,
    REPLAY_MARGIN,
)
from tppolicy.native import EXTENSION_WANTED
from tppolicy.text import project_name_problem, recorded
from tppolicy.token.keys import KeyCache
from tppolicy.token.refusal import TokenError
from tppolicy.token.replay import MemoryReplayStore, ReplayStore
from tppolicy.token.verify import VerifiedToken, Verifier

# `check_token`'s usual answer in one C call (`_usual.c`: the same steps), when the
# install compiled it.
_TokenPath: Any = None
if EXTENSION_WANTED:
    with contextlib.suppress(ImportError):
        from tppolicy.decide._usual import TokenPath as _TokenPath
# The engine's values the C path holds or is made for: setting one makes it anew (none,
# while decision records or a decision hook are set: those take the Python path).
_TOKEN_PATH_READS = frozenset({"verifier", "replay", "audience", "records", "on_decision"})

__all__ = [
    "INVALID_PAYLOAD", "INVALID_PENDING_PUBLISHER", "INVALID_PUBLISHER", "INVALID_REUSE_TOKEN",
    "INVALID_TOKEN", "CheckResult", "CreateProject", "DecisionSink", "Engine", "IdentityLookup",
    "JsonLinesSink",
    "ProjectCatalog", "decision_record", "run_claim_names", "ultranormalize_name"]

PENDING_TTL = 30 * 24 * 3600  # PyPI deletes pending publishers after 30 days
LEARNS_MEMO_SIZE = 4096

# Claims recorded with a decision when the provider declares them: they identify the run
# (never the token itself). The claims the provider's rules and keys read are added.
RUN_CLAIMS = ("iss", "sub", "jti", "ref", "ref_type", "ref_path", "sha", "workflow_ref",
              "job_workflow_ref", "ci_config_ref_uri", "run_id", "run_number", "run_attempt",
              "pipeline_id", "job_id", "environment", "event_name", "actor", "actor_id")

def _shared(value: Any) -> Any:
    """`value`, interned if it is a string."""
    return sys.intern(value) if value.__class__ is str else value


def _shared_all(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """`values` with each string interned (one copy of each value across publishers)."""
    intern = sys.intern
    return tuple([intern(v) if v.__class__ is str else v for v in values])


_collector_lock = threading.Lock()
_collector_pauses = 0  # bulk loads under way (any engine, any thread)
_collector_was_enabled = False  # the host's setting when the first of them began


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector disabled meanwhile (a bulk load makes millions of
    objects and no cycles: a full pass over a heap that keeps growing is wasted work),
    then the host's setting restored exactly, also on error. Nested and concurrent
    pauses count: the setting is restored when the last one ends. A host that calls
    `gc.enable()`/`gc.disable()` meanwhile has the last word of its own."""
    global _collector_pauses, _collector_was_enabled
    with _collector_lock:
        if _collector_pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_pauses += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_pauses -= 1
            if _collector_pauses == 0 and _collector_was_enabled:
                gc.enable()


@dataclass(frozen=True, slots=True)
class CreateProject:
    """What a pending publisher's first use asks of the server: create the project,
    then call `Engine.convert_pending(action)` (which also voids colliding pending
    publishers of other owners)."""

    project: str
    pending_id: str
    added_by: str | None


class CheckResult:
    """The answer to one upload request: the core's `Decision`, plus what a server needs
    (the publisher's record, the project to create, the verified claims).

    `error` is PyPI's code for a refused exchange (`invalid-publisher`, ...).
    `decision` keeps every rule's result (for logs and decision records); `reasons`,
    `closest` and `to_json()` are its disclosed view (`Decision.disclosed`), what the
    token's holder may be told: a near miss is named only when the token shares its
    identity (repository, service account...).

    Immutable, compared and shown like a frozen dataclass of `decision`, `action` and
    `claims`; a plain class because one is made per check (a frozen dataclass's
    constructor costs 0.25 us more: a third of an allowed check).
    """

    # `_usual.TokenPath` makes the usual token's result without calling __init__: it
    # allocates the instance and sets these three slots, which is all __init__ does.
    __slots__ = ("_action", "_claims", "_decision")

    def __init__(self, decision: Decision, action: CreateProject | None = None,
                 claims: Mapping[str, Any] | None = None) -> None:
        self._decision = decision
        self._action = action
        self._claims = claims

    @property
    def decision(self) -> Decision:
        """The core's decision, with every rule's result."""
        return self._decision

    @property
    def action(self) -> CreateProject | None:
        """What a pending publisher's first use asks of the server (None otherwise)."""
        return self._action

    @property
    def claims(self) -> Mapping[str, Any] | None:
        """The claims decided on (the verified claims, for `check_token`)."""
        return self._claims

    def _fields(self) -> tuple[Any, ...]:
        return (self._decision, self._action, self._claims)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not CheckResult:
            return NotImplemented
        assert isinstance(other, CheckResult)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (f"CheckResult(decision={self._decision!r}, action={self._action!r}, "
                f"claims={self._claims!r})")

    @property
    def allowed(self) -> bool:
        """Whether the token may publish."""
        return self.decision.allowed

    @property
    def publisher(self) -> Record | None:
        """The publisher that allowed the token (None for a denial)."""
        return self.decision.record if self.decision.allowed else None

    @property
    def projects(self) -> tuple[str, ...]:
        """The projects the token may publish to."""
        return self.decision.projects

    @property
    def pending(self) -> bool:
        """Whether a pending publisher decided."""
        return self.decision.pending

    @property
    def reasons(self) -> tuple[RuleResult, ...]:
        """The reasons the token's holder may be told (`decision.reasons` has all)."""
        return self.decision.disclosed().reasons

    @property
    def error(self) -> str | None:
        """PyPI's error code of a refusal."""
        return self.decision.code

    @property
    def closest(self) -> str | None:
        """The closest publisher, when the token's holder may be told (see `reasons`)."""
        return self.decision.disclosed().closest

    @property
    def learned(self) -> Mapping[str, Any]:
        """Values learned from an allowed token (trust on first use)."""
        return self.decision.learned

    def disclosed(self) -> Decision:
        """The decision as the token's holder may see it (see `Decision.disclosed`)."""
        return self.decision.disclosed()

    def to_json(self) -> dict[str, Any]:
        """The answer as a JSON-ready mapping, as the token's holder may see it."""
        shown = self.decision.disclosed()
        publisher = self.publisher
        result = {
            "allowed": self.allowed,
            "publisher": publisher.label if publisher else None,
            "publisher_id": publisher.id if publisher else None,
            "projects": list(self.projects),
            "pending": self.pending,
            "error": self.error,
            "action": {"create_project": self.action.project,
                       "pending_id": self.action.pending_id} if self.action else None,
            "closest_publisher": shown.closest,
            "reasons": [r.to_json() for r in shown.reasons],
        }
        if self.learned:
            result["learned"] = dict(self.learned)
        return result


class ProjectCatalog(Protocol):
    """The index's projects, as the engine needs to know them."""

    def exists(self, name: str) -> bool:
        """Whether a project of that name (any spelling PEP 503 equates) exists."""


class DecisionSink(Protocol):
    """Where an engine sends one decision record (a JSON-ready mapping) per check: an audit
    log (`JsonLinesSink`), a queue, a database."""

    def write(self, record: Mapping[str, Any]) -> None:
        """Store one decision record (a JSON-ready mapping)."""


LOOKUP_CACHE_SIZE = 100_000  # records compiled from a host's rows, kept for reuse


@dataclass(frozen=True, slots=True)
class Candidate:
    """A publisher row as a host's database returns it to the engine."""

    id: str
    row: Mapping[str, Any]  # the publishers-file fields: provider, name, projects | pending_project
    added_by: str | None = None
    created: float = 0.0


class PublisherLookup(Protocol):
    """Publishers kept by the host (a large index's database) instead of in the engine.

    The host stores, with each publisher row, `Engine.lookup_key(row)`: the values its
    provider file declares as `identity` and `key`, as one string. For a token, the
    engine computes the same string from the claims and asks for the rows holding it
    (normal publishers, then pending ones); it then chooses among them (`prefer`) and
    decides (the rules), as for publishers it holds itself. An exception (the database
    is down) fails the check: no decision."""

    def candidates(self, provider: str, key: str, pending: bool) -> Sequence[Candidate]:
        """The rows of `provider` whose lookup key is `key` (pending ones or not)."""


class IdentityLookup(PublisherLookup, Protocol):
    """A `PublisherLookup` that also finds rows by identity: the host stores, with each
    row, `Engine.identity_key(row)` too (who the publisher is: the lookup's `identity`
    items, case aside where the provider file says so). A token no row's lookup key
    matches is then told about the publishers of its identity (the closest one, and what
    each expects), as when the engine holds the publishers."""

    def same_identity(self, provider: str, identity: str, limit: int) -> Sequence[Candidate]:
        """At most `limit` rows of `provider` (pending or not) whose identity key is
        `identity`."""


class JsonLinesSink:
    """Decision records appended to a file, one JSON object a line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._handle = self.path.open("a", encoding="utf-8")

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record as a JSON line, flushed at once."""
        line = json.dumps(record, ensure_ascii=False, sort_keys=True, default=str)
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._handle.close()


_REQUIRED = object()  # a field without a default
_FIELD_CLASSES: dict[str, type] = {"string": str, "int": int, "bool": bool}


class _RowReader:
    """A publisher row (a mapping with PyPI's field names) → checked values. The same
    rules as the publishers schema, checked directly: a server adds rows all day."""

    def __init__(self, provider: CheckedProvider) -> None:
        self.provider = provider
        self.known = frozenset({"provider", "name", "projects", "pending_project",
                                *provider.fields})
        # Per field, worked out once (a server adds rows all day, a start-up a million):
        # (name, declared type, its class, default or _REQUIRED, fullmatch or None, message,
        # whether the default passes these checks: a row leaving the field out then takes
        # it unchecked)
        self.fields: list[tuple[str, str, type, Any, Any, str, bool]] = []
        for name, decl in provider.fields.items():
            default = _REQUIRED if decl.default is None else _shared(decl.default.value)
            match = re.compile(decl.pattern).fullmatch if decl.pattern else None
            message = decl.pattern_message or f"does not match {decl.pattern}"
            expected = _FIELD_CLASSES[decl.type]
            default_ok = default is not _REQUIRED and _field_problem(
                default, decl.type, expected, default, match, message) is None
            self.fields.append((name, decl.type, expected, default, match, message,
                                default_ok))

    def __call__(self, row: Mapping[str, Any], where: str) -> tuple[tuple[Any, ...], list[str]]:
        errors: list[str] = []
        known = self.known
        if not known.issuperset(row):
            for key in row:
                if key not in known:
                    hint = did_you_mean(str(key), known)
                    errors.append(f"{where}.{key}: unknown field for a {self.provider.name} "
                                  f"publisher{f' ({hint})' if hint else ''}")
        values: list[Any] = []
        get = row.get
        intern = sys.intern
        for name, type_name, expected, default, match, message, default_ok in self.fields:
            value = get(name)
            if value is None:
                if default_ok:
                    values.append(default)
                    continue
                if default is _REQUIRED:
                    errors.append(f"{where}.{name}: missing")
                    values.append(None)
                    continue
                value = default
            problem = _field_problem(value, type_name, expected, default, match, message)
            if problem is not None:
                errors.append(f"{where}.{name}: {problem}")
            # Values repeat across publishers (owners, "release.yml"): one copy each.
            values.append(intern(value) if value.__class__ is str else value)
        return tuple(values), errors


def _field_problem(value: Any, type_name: str, expected: type, default: Any, match: Any,
                   message: str) -> str | None:
    """What is wrong with a publisher field's value (None: nothing)."""
    if value.__class__ is not expected:
        return f"expected {type_name}, found {describe_type(value)}"
    if not isinstance(value, str):  # (its class is `expected`)
        return None
    if value:
        if not (value.isascii() and value.isprintable() and value[0] != " "
                and value[-1] != " "):  # printable ASCII ([ -~]*), its only blank the space
            return f"{value!r} is not printable ASCII without surrounding blanks"
    elif default == "":  # "" is the field's "not set": no pattern to match
        return None
    if match is not None and len(value) > MAX_PATTERN_VALUE:  # not matched: bounded cost
        return (f"{len(value)} characters long: limited to {MAX_PATTERN_VALUE} characters "
                "(the most a field's pattern is run on)")
    if match is not None and not match(value):
        return f"{value!r}: {message}"
    return None


# A bulk load leaving at least this many publishers backs the process's memory with
# 2 MB pages (`Engine(huge_pages=None)`): below it the loaded publishers fit in fewer
# pages than the TLB's reach matters for, and the collapse would cost more than it saves.
HUGE_PAGES_FROM = 50_000


class Engine:
    """Trusted publishing for an index server. Thread-safe: one engine serves every
    request thread while publishers are added and removed.

    `publishers` may be a publishers file (YAML) or rows (mappings with the same
    fields as a publishers file entry). `projects` tells whether a project exists
    (pending publishers need it); `records` receives one decision record per check.
    A replay store whose `claim` raises gives a denial (`replay_errors="deny"`, fail
    closed), or the exception (`"raise"`: a server answering an outage with 503).

    `huge_pages`: after a bulk load (`publishers`, `add_publishers`) of 1 000 rows or
    more that leaves at least `HUGE_PAGES_FROM` publishers in the engine (None, the
    default), after every bulk load (True) or never (False), the process's large,
    resident anonymous memory is backed by 2 MB pages
    (`tppolicy.decide.memory.collapse_to_huge_pages`: Linux 6.1+, best effort, never
    raises). Among 100 000 publishers or more, a random token's check then waits for
    fewer page-table walks (1.5-1.7x -> 1.3x the time among 100, README's Benchmarks);
    a load takes about 2.6 ms more a MB newly collapsed (0.3 s for 100 000 publishers;
    memory already in 2 MB pages costs about 4 ms a call).
    """

    def __init__(self, *, publishers: str | os.PathLike[str] | Iterable[Mapping[str, Any]]
                 | None = None,
                 audience: str = "pypi", keys: KeyCache | None = None,
                 replay: ReplayStore | None = None, issuers: Mapping[str, str] | None = None,
                 providers: Mapping[str, CheckedProvider] | None = None,
                 projects: ProjectCatalog | None = None, records: DecisionSink | None = None,
                 pending_ttl: float = PENDING_TTL, leeway: float = DEFAULT_LEEWAY,
                 clock: Callable[[], float] = time.time,
                 on_removed: Callable[[Record, str], None] | None = None,
                 max_lifetime: float = MAX_TOKEN_LIFETIME,
                 lookup: PublisherLookup | None = None,
                 on_decision: Callable[[CheckResult], None] | None = None,
                 replay_errors: str = "deny", huge_pages: bool | None = None) -> None:
        from tppolicy.language.providers import load_providers

        if replay_errors not in ("deny", "raise"):
            raise ValueError(f"replay_errors {replay_errors!r}: 'deny' or 'raise'")

        self.audience = audience
        self.projects = projects
        # Told of every publisher the engine drops by itself, with why: "converted",
        # "voided" (a colliding project was created), "expired", "project-exists".
        self.on_removed = on_removed
        self.records = records
        # The host's publishers (`PublisherLookup`), looked up per token; None: the
        # engine's own. `on_decision` sees every result (metrics: decision counts).
        self.lookup = lookup
        self.on_decision = on_decision
        self._looked_up: dict[tuple[str, str], Record] = {}  # (id, row JSON) -> record
        self.clock = clock
        self.replay: ReplayStore = replay if replay is not None else MemoryReplayStore()
        # What an exception from the replay store's `claim` gives: a denial (code
        # `replay-store-failed`, fail closed), or, "raise", the exception (a server that
        # answers an outage with 503).
        self.replay_errors = replay_errors
        self.huge_pages = huge_pages
        self._providers_checked = dict(load_providers() if providers is None else providers)
        self._core = Decider(self._providers_checked, issuers,
                             pending_ttl=pending_ttl or None, clock=clock,
                             on_expired=self._expire)
        if lookup is not None:
            self._core.lookup_for = self._candidates_of
            if callable(getattr(lookup, "same_identity", None)):
                self._core.identity_for = self._same_identity_of
        self._registered = self._core.registered
        self._indexes = self._core.indexes
        self._readers = {name: _RowReader(p) for name, p in self._providers_checked.items()}
        self.verifier = Verifier(
            issuers={i: p.checked.name for i, p in self._core.issuers.items()},
            algorithms={n: p.ast.algorithms or ("RS256",)
                        for n, p in self._providers_checked.items()},
            keys=keys or KeyCache(), audience=audience, leeway=leeway, clock=clock,
            max_lifetime=max_lifetime)
        self._records: dict[str, Record] = {}
        # (provider, values of the fields its learn items read) -> the bound items: most
        # publishers share them (trust on first use off), and binding is an AST rewrite.
        self._learns_memo: dict[tuple[Any, ...], tuple[A.Learn, ...]] = {}
        self._learn_positions: dict[str, tuple[int, ...]] = {}  # the fields learn items read
        self._pending_names: dict[str, set[str]] = {}
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._token_path: Callable[[object], Any] | None = self._usual_token_path()
        if publishers is not None:
            if isinstance(publishers, str | os.PathLike):
                self.load_publishers_file(publishers)
            else:
                self.add_publishers(publishers)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _TOKEN_PATH_READS and "_token_path" in self.__dict__:
            object.__setattr__(self, "_token_path", self._usual_token_path())

    def _usual_token_path(self) -> Callable[[object], Any] | None:
        """`check_token`'s usual answer in C (`_usual.TokenPath`) for this engine's
        values, or None without the module (or for values it does not hold)."""
        if _TokenPath is None or self.audience.__class__ is not str \
                or self.records is not None or self.on_decision is not None:
            return None
        path = _TokenPath(self, self._core, self.verifier, self.replay, self.audience,
                          REPLAY_MARGIN, MAX_JTI_CHARS, CheckResult)
        return path.check  # type: ignore[no-any-return]

    def _claimed(self, verified: VerifiedToken, decision: Decision,
                 outcome: object) -> CheckResult:
        """The C path's answer after a claim that did not return True (`outcome`, or the
        exception it raised): `use_jti`'s decision, answered as `check_token` does."""
        decision = jti_claimed(decision, verified, outcome, self.replay_errors)
        claims = verified[1]
        if decision.allowed and decision.record.pending_project is None \
                and self.records is None and self.on_decision is None:
            return CheckResult(decision, None, claims)
        return self._answer(decision, claims)

    @property
    def pending_ttl(self) -> float:
        """Seconds a pending publisher lives (0: for ever)."""
        return self._core.pending_ttl or 0

    @pending_ttl.setter
    def pending_ttl(self, seconds: float) -> None:
        self._core.pending_ttl = seconds or None

    @property
    def decider(self) -> Decider:
        """The decision core this engine fronts."""
        return self._core

    # ------------------------------------------------------------ publishers
    def __len__(self) -> int:
        return len(self._records)

    def get(self, publisher_id: str) -> Record | None:
        """The publisher with this id, if any."""
        return self._records.get(publisher_id)

    def row(self, record: Record) -> dict[str, Any]:
        """A publisher as a row of a publishers file (what `add_publisher` takes)."""
        provider = self._providers_checked[record.provider]
        row: dict[str, Any] = {"provider": record.provider}
        if record.name is not None:
            row["name"] = record.name
        if record.pending_project is not None:
            row["pending_project"] = record.pending_project
        else:
            row["projects"] = list(record.projects)
        for name, value in record.field_values(provider).items():
            default = provider.fields[name].default
            if default is None or value != default.value:  # defaults left out, as people write
                row[name] = value
        return row

    def publishers(self, provider: str | None = None) -> Iterator[Record]:
        """Every publisher (of `provider`, if given), in the order they were added."""
        for record in list(self._records.values()):
            if provider is None or record.provider == provider:
                yield record

    def load_publishers_file(self, path: str | os.PathLike[str]) -> list[Record]:
        """Add every publisher of a publishers file, validated with its schema."""
        from tppolicy.decide.publishers import iter_plain_publishers, load_publishers_text
        from tppolicy.errors import ConfigError, TppolicyError
        from tppolicy.readers.source import read_source
        from tppolicy.readers.yaml import NotPlain

        source = os.fsdecode(path)
        text = read_source(Path(source), ConfigError)
        providers = {n: p.ast for n, p in self._providers_checked.items()}
        try:  # a plain file read as a stream: its rows, without the whole YAML tree
            rows = [entry.as_row() for entry in iter_plain_publishers(
                text, source, providers, self._registered)]
        except (NotPlain, TppolicyError):  # read whole: every problem reported
            rows = [entry.as_row() for entry in load_publishers_text(
                text, source, providers, self._registered)]
        return self.add_publishers(rows, source=source)

    def add_publishers(self, rows: Iterable[Mapping[str, Any]],
                       source: str = "<rows>") -> list[Record]:
        """Add rows, all or none: every problem in them is reported together. The garbage
        collector is paused meanwhile (`collector_paused`)."""
        with collector_paused():
            added = self._add_publishers(rows, source)
        self._settle_memory(len(added))
        return added

    def settle(self, added: int) -> None:
        """After `added` publishers were added one by one (`add_publisher`, as a server
        loading its database does): what a bulk load does at its end, for random checks
        among many to read fewer cache lines and pages (the quick tables rebuilt sparse,
        and the memory in 2 MB pages as `huge_pages` says). Checks go on meanwhile."""
        for index in self._indexes.values():
            index.settle()
        self._settle_memory(added)

    def _settle_memory(self, added: int) -> None:
        if self.huge_pages or (self.huge_pages is None and added >= 1000
                               and len(self._records) >= HUGE_PAGES_FROM):
            from tppolicy.decide.memory import collapse_to_huge_pages

            collapse_to_huge_pages()  # never raises; 0 where unsupported

    def _add_publishers(self, rows: Iterable[Mapping[str, Any]], source: str) -> list[Record]:
        prepared: list[Record] = []
        problems: list[Diagnostic] = []
        for position, row in enumerate(rows):
            try:
                prepared.append(self._record(row, f"publishers[{position}]", None, None, None))
            except ConfigError as exc:
                problems.extend(exc.diagnostics)
        if problems:
            raise ConfigError([Diagnostic(d.message, Span(source, 0, 0, 0, 0), d.path, d.hint)
                               for d in problems])
        with self._lock:
            first: dict[tuple[Any, ...], Record] = {}  # shadowing mark -> first with it
            for position, record in enumerate(prepared):
                try:  # the earlier rows that can shadow it, found by hashing: of its
                    # kind, and of the other (a pending one and its normal twin-to-be)
                    mark = shadowing_mark(record)
                    earlier = first.setdefault(mark, record)
                    other = first.get((mark[0], not mark[1], *mark[2:]))
                    batch: Sequence[Record] = tuple(
                        r for r in (earlier, other) if r is not None and r is not record)
                except TypeError:  # an unhashable value: compared with every earlier row
                    batch = prepared[:position]
                twin = self._same_identity(record, batch)
                if twin is not None:
                    problems.append(_same_identity_problem(
                        record, twin, f"publishers[{position}]", source))
                pending = self._core.pending_twin(record, batch)
                if pending is not None:  # the pending one came first: it is refused
                    problems.append(_same_identity_problem(
                        pending, record, f"publishers[{prepared.index(pending)}]", source))
            if problems:
                raise ConfigError(problems)
            for record in prepared:
                record.id = new_publisher_id(record.name, self._records, self._ids)
                self._insert(record)
        for index in self._indexes.values():
            index.settle()  # a random check among many then reads fewer cache lines
        return prepared

    def add_publisher(self, row: Mapping[str, Any], *, id: str | None = None,
                      added_by: str | None = None, created: float | None = None) -> Record:
        """Add one publisher (a server row); `id` defaults to a new one (its name when no
        other publisher has that id). Replaces the publisher with the same `id`, if any,
        atomically: a check made meanwhile sees the old publisher or the new one."""
        record = self._record(row, "publisher", id, added_by, created)
        with self._lock:
            if id is None:
                record.id = new_publisher_id(record.name, self._records, self._ids)
            twin = self._same_identity(record)
            if twin is not None:
                raise ConfigError([_same_identity_problem(record, twin, "publisher")])
            old = self._records.get(record.id)
            if old is None:
                self._insert(record)
            else:
                self._replace(old, record)
        return record

    def lookup_key(self, row: Mapping[str, Any]) -> tuple[str, str]:
        """(provider, lookup key) of a publisher row, for a host that stores its
        publishers (`PublisherLookup`); ConfigError for a row that is not valid."""
        record = self._record(row, "publisher", None, None, 0.0)
        return record.provider, lookup_text(record.key)

    def identity_key(self, row: Mapping[str, Any]) -> tuple[str, str]:
        """(provider, identity key) of a publisher row, for a host that finds rows by
        identity (`IdentityLookup`); ConfigError for a row that is not valid."""
        record = self._record(row, "publisher", None, None, 0.0)
        return record.provider, lookup_text(self._core.identity_key(record))

    def register_issuer(self, issuer: str, provider: str) -> None:
        """Trust `issuer` for `provider` from now on (a custom issuer an organisation
        registered at run time); the provider must allow custom issuers."""
        if not issuer.startswith("https://"):
            raise ConfigError([Diagnostic(f"issuer {issuer!r}: an issuer is an https URL")])
        with self._lock:
            self._core.register_issuer(issuer, provider)
            self.verifier.issuers[issuer] = provider

    def _candidates_of(self, index: Any) -> Callable[[tuple[Any, ...], bool],
                                                     tuple[Record, ...]]:
        lookup = self.lookup
        assert lookup is not None
        provider = index.checked.name

        def candidates_of(key: tuple[Any, ...], pending: bool) -> tuple[Record, ...]:
            try:
                text = lookup_text(key)
            except (TypeError, ValueError):  # a mistyped claim: a key no row holds
                return ()
            return self._live_records(lookup.candidates(provider, text, pending), provider)

        return candidates_of

    def _same_identity_of(self, index: Any) -> Callable[[tuple[Any, ...]], tuple[Record, ...]]:
        lookup = cast(IdentityLookup, self.lookup)
        provider = index.checked.name

        def same_identity_of(identity: tuple[Any, ...]) -> tuple[Record, ...]:
            try:
                text = lookup_text(identity)
            except (TypeError, ValueError):
                return ()
            return self._live_records(lookup.same_identity(provider, text, NEAR_MISSES),
                                      provider)

        return same_identity_of

    def _live_records(self, candidates: Iterable[Candidate], provider: str) -> tuple[Record, ...]:
        """The records of the lookup's candidates for `provider`, expired pending ones left out."""
        found = []
        now = self.clock()
        ttl = self.pending_ttl
        for candidate in candidates:
            record = self.record_of(candidate)
            if record is None or record.provider != provider:
                continue
            if record.pending_project is not None and ttl and now - record.created > ttl:
                continue  # expired: as if gone
            found.append(record)
        return tuple(found)

    def record_of(self, candidate: Candidate) -> Record | None:
        """The record of a host's row (None: a row the provider refuses), compiled once
        per row version (bounded); the engine does not hold it."""
        cache_key = (candidate.id, json.dumps(candidate.row, sort_keys=True, default=str))
        record = self._looked_up.get(cache_key)
        if record is None:
            try:
                record = self._record(candidate.row, f"publisher {candidate.id}", candidate.id,
                                      candidate.added_by, candidate.created)
            except ConfigError:  # a row the provider refuses is not served (fail closed)
                return None
            if len(self._looked_up) >= LOOKUP_CACHE_SIZE:
                self._looked_up.pop(next(iter(self._looked_up)))
            self._looked_up[cache_key] = record
        return record

    def remove_publisher(self, publisher_id: str) -> Record | None:
        """Take a publisher out (it decides nothing from now on); the record, if any."""
        with self._lock:
            record = self._records.get(publisher_id)
            if record is not None:
                self._delete(record)
            return record

    def _record(self, row: Mapping[str, Any], where: str, publisher_id: str | None,
                added_by: str | None, created: float | None) -> Record:
        if not isinstance(row, Mapping):
            raise ConfigError([Diagnostic(f"a publisher is a mapping, not {describe_type(row)}",
                                          path=where)])
        provider_name = row.get("provider")
        index = self._indexes.get(provider_name) if isinstance(provider_name, str) else None
        if index is None:
            hint = did_you_mean(str(provider_name), self._indexes)
            raise ConfigError([Diagnostic(f"unknown provider {provider_name!r}",
                                          path=f"{where}.provider", hint=hint)])
        values, errors = self._readers[index.checked.name](row, where)
        projects = row.get("projects")
        pending = row.get("pending_project")
        if (projects is None) == (pending is None):
            errors.append(f"{where}: give either projects or pending_project")
        names = [pending] if pending is not None else list(projects or [])
        if projects is not None and (not isinstance(projects, list | tuple) or not projects):
            errors.append(f"{where}.projects: a non-empty list of project names")
            names = []
        seen: dict[str, str] = {}
        for name in names:
            problem = project_name_problem(name)
            if problem is not None:
                errors.append(f"{where}: {problem}")
                continue
            if len(names) == 1:  # (most rows) no other to be a duplicate of
                break
            canonical = canonicalize_name(name)
            if canonical in seen:  # as a publishers file: one project, listed once
                first = seen[canonical]
                same = "" if first == name else f", the same project as {first!r} once normalized"
                errors.append(f"{where}.projects: duplicate project {name!r}{same}")
            seen[canonical] = name
        display = row.get("name")
        if display is not None and not isinstance(display, str):
            errors.append(f"{where}.name: expected a string")
        if errors:
            raise ConfigError([Diagnostic(e.split(": ", 1)[1], path=e.split(": ", 1)[0])
                               for e in errors])
        template = index.template
        try:
            key, prefer, slots = template.derive(values)
            # Values repeat across publishers (owners, "release.yml", "pypi"): one copy each.
            key, prefer, slots = _shared_all(key), _shared_all(prefer), _shared_all(slots)
        except Exception as exc:
            raise ConfigError([Diagnostic(f"cannot compute the lookup keys: {exc}",
                                          path=where)]) from None
        record = Record(publisher_id or "", index.checked.name, display,
                        tuple(projects or ()) if pending is None else (), pending, values, key,
                        prefer, slots, template.predicate, None, added_by,
                        self.clock() if created is None else created)
        record.learns = self._bound_learns(record)
        return record

    def _same_identity(self, record: Record, batch: Iterable[Record] = ()) -> Record | None:
        """The publisher `record` may not be added with (`Decider.shadowing`: the rule
        `tppolicy check` applies too)."""
        return self._core.shadowing(record, batch)

    def _insert(self, record: Record) -> None:
        self._records[record.id] = record
        self._core.add(record)
        if record.pending_project is not None:
            self._pending_names.setdefault(ultranormalize_name(record.pending_project),
                                           set()).add(record.id)

    def _replace(self, old: Record, new: Record) -> None:
        self._records[new.id] = new
        self._core.replace(old, new)
        self._forget_pending_name(old)
        if new.pending_project is not None:
            self._pending_names.setdefault(ultranormalize_name(new.pending_project),
                                           set()).add(new.id)

    def _bound_learns(self, record: Record) -> tuple[A.Learn, ...]:
        provider = self._indexes[record.provider].checked
        if record.rules is not None or not provider.learns:
            return ()
        positions = self._learn_positions.get(provider.name)
        if positions is None:
            read = {n for learn in provider.learns for n in A.fields_read(learn.value)}
            positions = tuple(i for i, name in enumerate(provider.fields) if name in read)
            self._learn_positions[provider.name] = positions
        key = (provider.name, *(record.fields[i] for i in positions))
        try:
            learns = self._learns_memo.get(key)
        except TypeError:  # an unhashable value: bind it alone
            return bind_learns(provider.learns, record.field_values(provider))
        if learns is None:
            learns = bind_learns(provider.learns, record.field_values(provider))
            if len(self._learns_memo) < LEARNS_MEMO_SIZE:
                self._learns_memo[key] = learns
        return learns

    def _delete(self, record: Record) -> None:
        del self._records[record.id]
        self._core.remove(record)
        self._forget_pending_name(record)

    def _forget_pending_name(self, record: Record) -> None:
        if record.pending_project is not None:
            ids = self._pending_names.get(ultranormalize_name(record.pending_project))
            if ids is not None:
                ids.discard(record.id)
                if not ids:
                    del self._pending_names[ultranormalize_name(record.pending_project)]

    # -------------------------------------------------------- pending publishers
    def convert_pending(self, action: CreateProject) -> Record:
        """After the server created `action.project`: the pending publisher becomes a
        normal one attached to it (an identical normal publisher gains the project
        instead, as PyPI's reify), and colliding pending publishers of other owners
        are voided (see `project_created`)."""
        with self._lock:
            pending = self._records.get(action.pending_id)
            if pending is None or pending.pending_project is None:
                raise KeyError(f"no pending publisher {action.pending_id!r}")
            # Atomically for concurrent checks: the converted publisher is indexed before
            # the pending one goes (a check meanwhile sees one of them, never neither).
            twin = next((r for r in self._indexes[pending.provider].bucket(pending.key)
                         if r.fields == pending.fields), None)
            shadow = self._core.future_twin(pending, self._indexes[pending.provider].bucket(
                pending.key)) if twin is None else None
            if shadow is not None:  # a normal publisher added after it: fail closed
                raise ConfigError([_same_identity_problem(pending, shadow, "publisher")])
            if twin is not None:
                converted = twin.replace(projects=(*twin.projects, action.project))
                self._replace(twin, converted)
                self._delete(pending)
            else:
                converted = pending.replace(projects=(action.project,), pending_project=None)
                self._replace(pending, converted)
            self._removed(pending, "converted")
            self.project_created(action.project, created_by=pending.added_by)
            return converted

    def project_created(self, project: str, created_by: str | None = None) -> list[Record]:
        """A project was created (by any path): other owners' pending publishers whose
        names collide after PyPI's normalization are voided. Returns them (to notify)."""
        voided = []
        with self._lock:
            for publisher_id in list(self._pending_names.get(ultranormalize_name(project), ())):
                record = self._records.get(publisher_id)
                if record is not None and (created_by is None or record.added_by != created_by):
                    self._delete(record)
                    voided.append(record)
                    self._removed(record, "voided")
        return voided

    def expire_pending(self, now: float | None = None) -> list[Record]:
        """Drop pending publishers older than `pending_ttl`. Returns them (to notify)."""
        now = self.clock() if now is None else now
        with self._lock:
            expired = [r for r in self._records.values()
                       if r.pending_project is not None and now - r.created > self.pending_ttl]
            for record in expired:
                self._delete(record)
                self._removed(record, "expired")
        return expired

    def _removed(self, record: Record, why: str) -> None:
        if self.on_removed is not None:
            with contextlib.suppress(Exception):  # the server's bookkeeping cannot deny
                self.on_removed(record, why)

    def _expire(self, record: Record) -> None:
        """A pending publisher past `pending_ttl` that a token selected: as if gone."""
        with self._lock:
            if self._records.get(record.id) is record:
                self._delete(record)
            else:  # replaced or removed meanwhile: make sure the old record is out
                self._core.remove(record)
        self._removed(record, "expired")

    # ---------------------------------------------------------------- checks
    def check_token(self, token: object,
                    request: Mapping[str, Any] | None = None) -> CheckResult:
        """Verify a compact JWT and decide; an allowed token's `jti` is then used up.
        `request` gives the values rules read as `request.NAME` (the version uploaded)."""
        verified: VerifiedToken | None = None
        path = self._token_path
        if path is not None and request is None:  # (no path with records or a hook)
            try:
                done = path(token)  # the usual answer in C, else the token verified
            except TokenError as exc:
                return self._answer(token_denial(exc), None)
            if done.__class__ is CheckResult:
                return done
            verified = done
        verifier = self.verifier
        if verified is None:
            try:
                verified = verifier.verify(token)
            except TokenError as exc:
                return self._answer(token_denial(exc), None)
        claims = verified.claims
        # the usual answer at once (the same lookup, choice and rules), else the whole one
        decision = self._core.allowed(claims, self.audience) if request is None else None
        if decision is None:
            projects = self.projects
            decision = self._core.decide_verified(
                verified, request=request,
                exists=projects.exists if projects is not None else None)
        if decision.allowed and self.replay is not None:
            decision = use_jti(decision, verified, verifier.leeway, self.replay,
                               self.replay_errors)
        if decision.allowed and decision.record.pending_project is None \
                and self.records is None and self.on_decision is None:
            return CheckResult(decision, None, claims)  # the usual answer, at once
        return self._answer(decision, claims)

    def check_claims(self, claims: object,
                     request: Mapping[str, Any] | None = None) -> CheckResult:
        """Decide on decoded claims (already verified by the caller); checks iss and aud."""
        if request is None and self.records is None and self.on_decision is None:
            decision = self._core.allowed(claims, self.audience)
            if decision is not None:  # the usual answer, at once
                return CheckResult(decision, None, claims)  # type: ignore[arg-type]
        projects = self.projects
        decision = self._core.decide(claims, audience=self.audience, request=request,
                                     exists=projects.exists if projects is not None else None)
        mapping = claims if type(claims) is dict or isinstance(claims, Mapping) else None
        record = decision.record
        if decision.allowed and record.pending_project is None and self.records is None \
                and self.on_decision is None:
            return CheckResult(decision, None, mapping)  # the usual answer, at once
        return self._answer(decision, mapping)

    def _answer(self, decision: Decision, claims: Mapping[str, Any] | None) -> CheckResult:
        record = decision.record
        if decision.allowed:
            assert record is not None
            action = None
            if record.pending_project is not None:
                twin = self._future_twin(record)
                if twin is not None:  # its project would be unpublishable once created
                    return self._answer(_twin_denial(decision, record, twin), claims)
                action = CreateProject(record.pending_project, record.id, record.added_by)
            result = CheckResult(decision, action, claims)
        else:
            result = CheckResult(decision, None, claims)
            if decision.code == INVALID_PENDING_PUBLISHER and record is not None:
                # PyPI: the pending publisher of a project that exists is deleted.
                with self._lock:
                    gone = self._records.get(record.id) is record
                    if gone:
                        self._delete(record)
                if gone:
                    self._removed(record, "project-exists")
        if self.on_decision is not None:
            with contextlib.suppress(Exception):  # a failing hook must not change it
                self.on_decision(result)
        if self.records is not None:
            self._write(result, claims)
        return result

    def _future_twin(self, record: Record) -> Record | None:
        """The normal publisher a pending one would become a twin of once converted
        (`Decider.future_twin`), among the engine's or the host's publishers."""
        index = self._indexes[record.provider]
        if self._core.lookup_for is not None:
            try:
                normal: tuple[Record, ...] = self._core.lookup_for(index)(record.key, False)
            except Exception:  # the host's database failed: convert as before
                normal = ()
        else:
            normal = index.bucket(record.key, False)
        return self._core.future_twin(record, normal)

    def checked_provider(self, name: str) -> CheckedProvider | None:
        """The checked provider of that name the engine decides with (None: unknown)."""
        return self._providers_checked.get(name)

    # --------------------------------------------------------------- records
    def _write(self, result: CheckResult, claims: Mapping[str, Any] | None) -> None:
        if self.records is None:
            return
        provider = result.decision.provider
        checked = self._providers_checked.get(provider) if provider else None
        record = decision_record(
            self.clock(), claims, checked, allowed=result.allowed, error=result.error,
            publisher=result.publisher.label if result.publisher else None,
            publisher_id=result.publisher.id if result.publisher else None,
            projects=result.projects, pending=result.pending,
            action="create-project" if result.action else None, reasons=result.reasons,
            learned=result.learned)
        with contextlib.suppress(Exception):  # a failing sink must not change the decision
            self.records.write(record)


def _twin_denial(decision: Decision, record: Record, twin: Record) -> Decision:
    """The first upload of a pending publisher refused because its project would then be
    unpublishable: a normal publisher added after it is its twin (`Decider.future_twin`).
    The project is not created; the holder is told no more than of any refusal."""
    reason = RuleResult("pending_project", False, None, record.pending_project,
                        f"valid token, but the pending publisher of project "
                        f"{record.pending_project!r} would become a twin of publisher "
                        f"{twin.label} once the project is created (the lookup would always "
                        "choose that one): the project is not created; make them differ in "
                        "a field the lookup reads, or give both the same constraints")
    return Decision(False, decision.provider, None, (), True, (reason,),
                    issuer=decision.issuer, code=INVALID_PUBLISHER, record=record)


def _same_identity_problem(record: Record, twin: Record, where: str,
                           source: str | None = None) -> Diagnostic:
    return shadowing_problem(record, twin, where, source=source)


def run_claim_names(provider: CheckedProvider) -> tuple[str, ...]:
    """The claims recorded with a decision: those identifying the run (RUN_CLAIMS) and
    those the provider's rules and lookup read, when the provider declares them."""
    read = {n for k in (*provider.keys, *provider.prefers) for n in _claims_of(k.claims_side)}
    read |= {n for rule in provider.rules for req in rule.requires
             for n in _claims_of(req.condition)}
    return tuple(sorted(n for n in {*RUN_CLAIMS, *read} if n in provider.claims and n != "aud"))


def decision_record(now: float, claims: Mapping[str, Any] | None,
                    provider: CheckedProvider | None, *, allowed: bool, error: str | None,
                    publisher: str | None, publisher_id: str | None,
                    projects: Iterable[str], pending: bool, action: str | None,
                    reasons: Iterable[RuleResult],
                    learned: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One decision as a JSON-ready record: never the token itself."""
    issuer = claims.get("iss") if claims is not None else None
    run = {}
    if claims is not None and provider is not None:
        run = {n: recorded(claims[n]) for n in run_claim_names(provider) if n in claims}
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "issuer": issuer if isinstance(issuer, str) else None,
        "provider": provider.name if provider is not None else None,
        "allowed": allowed,
        "error": error,
        "publisher": publisher,
        "publisher_id": publisher_id,
        "projects": list(projects),
        "pending": pending,
        "action": action,
        "reasons": [{"rule": r.rule, "message": r.message, **({"code": r.code} if r.code else {})}
                    for r in reasons if not r.passed],
        "run": run,
        **({"learned": {k: recorded(v) for k, v in learned.items()}} if learned else {}),
    }


def _claims_of(expr: Any) -> set[str]:
    from tppolicy.language.ast import claims_read

    return claims_read(expr)
