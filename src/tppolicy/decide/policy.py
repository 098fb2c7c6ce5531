"""A checked policy, compiled for evaluation: the front of `tppolicy check` over the one
decision core (`tppolicy.decide.core.Decider`): provider by issuer, publisher by indexed
lookup keys, then the publisher's compiled rules. Fail closed throughout.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tppolicy.decide.core import Decider, publisher_id, shadowing_problem
from tppolicy.decide.decision import Decision
from tppolicy.decide.index import NO_SLOTS, ProviderIndex, Record
from tppolicy.errors import Diagnostic, PolicyCheckError, Span
from tppolicy.language import ast as A
from tppolicy.language.check import CheckedPolicy, CheckedProvider, CheckedPublisher
from tppolicy.language.compile import compile_predicate, lookup_value
from tppolicy.memo import ByIdentity

if TYPE_CHECKING:
    from tppolicy.token.replay import ReplayStore
    from tppolicy.token.verify import VerifiedToken, Verifier


class Policy:
    """A set of trusted publishers ready to decide on tokens' claims.

    Immutable once built, so one instance can serve many threads. Registering an issuer
    for a provider that does not allow custom issuers raises `ConfigError` (as `Engine`).
    Two publishers that the lookup cannot tell apart (`Decider.shadowing`, the rule
    `Engine` applies too) raise `PolicyCheckError` at the second one (`source_text`: the
    file's text, for the error's excerpt).
    """

    def __init__(self, checked: CheckedPolicy,
                 registered_issuers: Mapping[str, str] | None = None, *,
                 ids: Sequence[str] | None = None, source_text: str | None = None) -> None:
        """`ids`: the publishers' ids, one each (as `publisher_id` gives them over the
        whole file, for a policy holding some of a file's publishers)."""
        self._checked = checked
        self._core = Decider(checked.providers, registered_issuers)
        self._registered = self._core.registered
        taken: dict[str, Record] = {}
        counter = itertools.count(1)
        problems: list[Diagnostic] = []
        labels: dict[str, str] = {}
        spans: dict[str, Span | None] = {}
        for position, publisher in enumerate(checked.publishers):
            record = _record(publisher, self._core.indexes,
                             ids[position] if ids is not None else
                             publisher_id(publisher.ast.name, taken, counter))
            twin = self._core.shadowing(record)
            if twin is not None:
                problems.append(shadowing_problem(record, twin, span=publisher.ast.span,
                                                  labels=(publisher.label, labels[twin.id])))
                continue
            pending = self._core.pending_twin(record, self._core.indexes[
                record.provider].bucket(record.key, True))
            if pending is not None:  # the pending one came first: it is refused
                problems.append(shadowing_problem(pending, record, span=spans[pending.id],
                                                  labels=(labels[pending.id], publisher.label)))
            labels[record.id] = publisher.label
            spans[record.id] = publisher.ast.span
            taken[record.id] = record
            self._core.add(record)
        if problems:
            raise PolicyCheckError(problems, source_text)

    # ------------------------------------------------------------- queries
    @property
    def publishers(self) -> tuple[CheckedPublisher, ...]:
        """The checked publishers, in the file's order."""
        return self._checked.publishers

    @property
    def providers(self) -> Mapping[str, CheckedProvider]:
        """The providers this policy knows, by name."""
        return self._checked.providers

    @property
    def issuers(self) -> Mapping[str, str]:
        """Every trusted issuer (built-in and registered) and its provider's name."""
        return {issuer: p.checked.name for issuer, p in self._core.issuers.items()}

    @property
    def decider(self) -> Decider:
        """The decision core this policy fronts."""
        return self._core

    def evaluate(self, claims: Mapping[str, Any], *, audience: str = "pypi",
                 explain: bool = False, request: Mapping[str, Any] | None = None) -> Decision:
        """Decide on decoded claims. Never raises on any input: errors deny.

        With `explain`, an allowed decision also lists every rule that passed. `request`
        holds the values the caller supplies with the upload (`request.version` in the
        rules: the version being uploaded); see `REQUEST_VALUES`.
        """
        return self._core.decide(claims, audience=audience, request=request, explain=explain)

    def evaluate_verified(self, token: VerifiedToken, explain: bool = False,
                          request: Mapping[str, Any] | None = None) -> Decision:
        """Decide on a token the verifier accepted: its issuer and audience are checked."""
        return self._core.decide_verified(token, request=request, explain=explain)

    def evaluate_token(self, token: object, verifier: Verifier,
                       replay: ReplayStore | None = None, explain: bool = False,
                       request: Mapping[str, Any] | None = None) -> Decision:
        """Verify a compact JWT, decide on its claims, and claim its `jti` if allowed.

        Never raises on any token: a refused token is a denial whose reason carries
        a stable code (`tppolicy.TOKEN_ERROR_CODES`). Nor when `replay` fails: an
        exception from its `claim` is a denial (`invalid-payload`) whose reason has the
        code `replay-store-failed` and the exception's text (for the operator only: see
        `Decision.disclosed`).
        """
        return self._core.decide_token(token, verifier, replay, request=request,
                                       explain=explain)[0]

    # ------------------------------------------------------------- output
    def to_policy_file(self, source: str = "<compiled>") -> A.PolicyFile:
        """The concrete policy: used providers' headers, then every publisher."""
        used = sorted({p.provider.name for p in self._checked.publishers})
        publishers = tuple(concrete_publisher(p) for p in self._checked.publishers)
        return A.PolicyFile(source, self.provider_headers(used), publishers)

    def provider_headers(self, names: Iterable[str]) -> tuple[A.Provider, ...]:
        """The header blocks of these providers in a concrete policy (their issuers, with
        the custom issuers registered for them; no rules)."""
        headers = []
        for name in names:
            header = self._checked.providers[name].header()
            extra = tuple(i for i, n in sorted(self._registered.items())
                          if n == name and i not in header.issuers and header.custom_issuers)
            headers.append(A.Provider(**{**_fields_of(header), "issuers": header.issuers + extra}))
        return tuple(headers)


def _record(publisher: CheckedPublisher, providers: Mapping[str, ProviderIndex],
            publisher_id: str) -> Record:
    """A checked publisher as an index record: its own compiled rules if it wrote them,
    else its provider's template with its slots."""
    provider = providers[publisher.provider.name]
    values = tuple(publisher.fields[name] for name in provider.checked.fields)
    if publisher.ast.rules:
        predicate = compile_predicate(provider.checked, publisher.rules, ("claims", "slots"))
        slots: tuple[Any, ...] = NO_SLOTS
        prefer = tuple(lookup_value(v) for v in publisher.prefer_values)
        rules: tuple[A.Rule, ...] | None = publisher.rules
    else:
        template = provider.template
        _, prefer, slots = template.derive(values)
        predicate = template.predicate
        rules = None
    return Record(publisher_id, provider.checked.name, publisher.ast.name,
                  publisher.ast.projects, publisher.ast.pending_project, values,
                  tuple(lookup_value(v) for v in publisher.key_values), prefer, slots,
                  predicate, rules, learns=publisher.learns)


def _fields_of(provider: A.Provider) -> dict[str, Any]:
    return {name: getattr(provider, name) for name in A.Provider.__dataclass_fields__}


def concrete_publisher(publisher: CheckedPublisher) -> A.Publisher:
    """A publisher block with its fields bound, except those left at their defaults that
    no lookup reads (optional constraints not used): its rules show what they do."""
    provider = publisher.provider
    essential = _ESSENTIAL.get(provider, _essential)
    declared = provider.fields
    bindings = tuple(
        _binding(name, value) for name, value in publisher.fields.items()
        if name in essential or (default := declared[name].default) is None
        or value != default.value or value.__class__ is not default.value.__class__)
    return A.Publisher(publisher.ast.name, publisher.provider.name, publisher.ast.projects,
                       publisher.ast.pending_project, bindings, publisher.rules,
                       learns=publisher.learns)


def concrete_publisher_text(publisher: CheckedPublisher) -> str:
    """`format_publisher(concrete_publisher(publisher))`: the publisher's block as a
    compiled policy prints it, its provider's rules bound by `bind_rules_deferred` (a rule
    its shape makes is written from the shape's text, its tree not made; all of them from
    one template of their shapes' texts once one is kept, `format_bound_publisher`)."""
    from tppolicy.language.printer import binding_text, format_bound_publisher, format_publisher

    if publisher.own_rules is not None:
        return format_publisher(concrete_publisher(publisher))
    provider = publisher.provider
    defaults = _DEFAULTS.get(provider, _defaults)
    fields: list[str] = []
    for name, value in publisher.fields.items():
        default = defaults.get(name)
        if default is not None and value.__class__ is default[1] and value == default[0]:
            continue  # left at its default, read by no lookup (a default is no list)
        if value.__class__ not in _PRINTED:  # a list: as `concrete_publisher` binds it
            return format_publisher(concrete_publisher(publisher))
        fields.append(binding_text(name, value))
    ast = publisher.ast
    return format_bound_publisher(
        A.Publisher(ast.name, provider.name, ast.projects, ast.pending_project,
                    learns=publisher.learns), provider.rules, publisher.fields, fields)


_PRINTED = frozenset({str, int, bool, type(None)})


def _defaults(provider: CheckedProvider) -> dict[str, tuple[Any, type]]:
    """The fields `concrete_publisher` leaves out when left at their defaults (those no
    lookup reads), each with its default value and that value's class."""
    essential = _ESSENTIAL.get(provider, _essential)
    return {name: (decl.default.value, decl.default.value.__class__)
            for name, decl in provider.fields.items()
            if name not in essential and decl.default is not None}


_DEFAULTS: ByIdentity[CheckedProvider, dict[str, tuple[Any, type]]] = ByIdentity(256)


def _binding(name: str, value: Any) -> A.Binding:
    """`name = value` as a binding node, one per (name, value) while kept: publishers share
    most of their values."""
    try:
        key = (name, value.__class__, value)
        found = _BINDINGS.get(key)
    except TypeError:  # a list: not kept
        return A.Binding(name, A.Literal(value))
    if found is None:
        if len(_BINDINGS) >= 4096:
            _BINDINGS.clear()
        found = _BINDINGS[key] = A.Binding(name, A.Literal(value))
    return found


_BINDINGS: dict[tuple[str, type, Any], A.Binding] = {}


def _essential(provider: CheckedProvider) -> frozenset[str]:
    """The fields a provider's lookup keys and preferences read."""
    return frozenset(name for key in (*provider.keys, *provider.prefers)
                     for name in A.fields_read(key.publisher_side))


_ESSENTIAL: ByIdentity[CheckedProvider, frozenset[str]] = ByIdentity(256)
