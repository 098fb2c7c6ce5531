"""A checked policy, compiled for evaluation: provider by issuer, publisher by
indexed lookup keys, then the publisher's compiled rules. Fail closed throughout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from tppolicy.decide.decision import Decision, RuleResult, token_reason
from tppolicy.decide.index import NO_SLOTS, ProviderIndex, Record
from tppolicy.decide.reasons import Explainer, show
from tppolicy.language import ast as A
from tppolicy.language.bind import bind_learns
from tppolicy.language.check import CheckedPolicy, CheckedProvider, CheckedPublisher
from tppolicy.language.compile import compile_predicate, lookup_value
from tppolicy.language.interpret import Interpreter, claim_value
from tppolicy.language.ops import REQUEST_KEY, REQUEST_VALUES, EvalError, describe_type
from tppolicy.language.texts import notes_for
from tppolicy.limits import REPLAY_MARGIN

if TYPE_CHECKING:
    from tppolicy.token.replay import ReplayStore
    from tppolicy.token.verify import VerifiedToken, Verifier


class Policy:
    """A set of trusted publishers ready to decide on tokens' claims.

    Immutable once built, so one instance can serve many threads.
    """

    def __init__(self, checked: CheckedPolicy,
                 registered_issuers: Mapping[str, str] | None = None) -> None:
        self._checked = checked
        self._registered = dict(registered_issuers or {})
        self._providers: dict[str, ProviderIndex] = {}
        self._issuers: dict[str, ProviderIndex] = {}
        for name, provider in checked.providers.items():
            index = ProviderIndex(provider)
            self._providers[name] = index
            for issuer in provider.issuers:
                self._issuers.setdefault(issuer, index)
        for issuer, name in self._registered.items():
            if name in self._providers and self._providers[name].checked.ast.custom_issuers:
                self._issuers.setdefault(issuer, self._providers[name])
        # Publishers that learn from the tokens they allow (trust on first use), by record id.
        self._learners: dict[str, tuple[A.Learn, ...]] = {}
        for publisher in checked.publishers:
            record = _record(publisher, self._providers)
            self._providers[publisher.provider.name].add(record)
            if publisher.learns:
                self._learners[record.id] = publisher.learns

    # ------------------------------------------------------------- queries
    @property
    def publishers(self) -> tuple[CheckedPublisher, ...]:
        return self._checked.publishers

    @property
    def providers(self) -> Mapping[str, CheckedProvider]:
        return self._checked.providers

    @property
    def issuers(self) -> Mapping[str, str]:
        return {issuer: p.checked.name for issuer, p in self._issuers.items()}

    def evaluate(self, claims: Mapping[str, Any], *, audience: str = "pypi",
                 explain: bool = False, request: Mapping[str, Any] | None = None) -> Decision:
        """Decide on decoded claims. Never raises on any input: errors deny.

        With `explain`, an allowed decision also lists every rule that passed. `request`
        holds the values the caller supplies with the upload (`request.version` in the
        rules: the version being uploaded); see `REQUEST_VALUES`.
        """
        try:
            if request is not None:
                problem = request_problem(request)
                if problem is not None:
                    return _deny(None, None, [problem])
                claims = with_request(claims, request)
            return self._evaluate(claims, audience, explain)
        except Exception as exc:  # fail closed, whatever the input did
            return _deny(None, None, [RuleResult("claims", False, None, None,
                                                 f"cannot evaluate these claims: {exc}")])

    def _evaluate(self, claims: object, audience: str, explain: bool) -> Decision:
        if claims.__class__ is not dict and not isinstance(claims, Mapping):
            return _deny(None, None, [RuleResult("claims", False, "a JSON object",
                                                 describe_type(claims),
                                                 "claims must be a JSON object")])
        issuer = claims.get("iss")
        provider = self._issuers.get(issuer) if isinstance(issuer, str) else None
        if provider is None or not isinstance(issuer, str):
            return _deny(None, issuer if isinstance(issuer, str) else None,
                         [self._issuer_reason(issuer)])
        audience_claim = claims.get("aud")
        if audience_claim.__class__ is not str or audience_claim != audience:
            return _deny(provider.checked.name, issuer,
                         [_audience_reason(audience_claim, audience)])
        return self._decide(provider, claims, issuer, explain)

    def evaluate_verified(self, token: VerifiedToken, explain: bool = False,
                          request: Mapping[str, Any] | None = None) -> Decision:
        """Decide on a token the verifier accepted: its issuer and audience are checked."""
        provider = self._issuers.get(token.issuer)
        if provider is None:  # the verifier was built for another policy's issuers
            return self.evaluate(token.claims, audience=token.claims.get("aud", ""),
                                 explain=explain, request=request)
        try:
            claims = token.claims
            if request is not None:
                problem = request_problem(request)
                if problem is not None:
                    return _deny(provider.checked.name, token.issuer, [problem])
                claims = with_request(claims, request)
            return self._decide(provider, claims, token.issuer, explain)
        except Exception as exc:  # fail closed, whatever the input did
            return _deny(None, None, [RuleResult("claims", False, None, None,
                                                 f"cannot evaluate these claims: {exc}")])

    def _decide(self, provider: ProviderIndex, claims: Mapping[str, Any], issuer: str,
                explain: bool) -> Decision:
        # Each publisher's rules check the required claims too: the provider's own
        # check only runs when no publisher allows, to give the right reason.
        allowed, chosen = provider.select(claims)
        if allowed is not None:
            learns = self._learners.get(allowed.id) if self._learners else None
            if not explain:
                if learns:
                    return replace(allowed.decision(issuer),
                                   learned=learned_values(learns, provider.checked, claims))
                return allowed.decision(issuer)
            notes = _notes(allowed, provider.checked, claims) + _unaccounted(provider.checked,
                                                                              claims)
            return Decision(True, provider.checked.name, allowed.label, allowed.all_projects,
                            allowed.pending, tuple(self._explain(provider, allowed, claims)),
                            issuer=issuer, notes=notes,
                            learned=learned_values(learns, provider.checked, claims)
                            if learns else {})
        name = provider.checked.name
        if not provider.required(claims):
            return _deny(name, issuer, missing_claims(provider.checked, claims))
        closest = chosen or closest_record(provider, provider.records(), claims)
        if closest is None:
            return _deny(name, issuer, [RuleResult(
                "publisher", False, None, None,
                f"no {name} publisher is configured for this token")])
        return Decision(False, name, None, (), False,
                        tuple(explain_miss(provider, closest, claims)),
                        closest=closest.label, issuer=issuer)

    # -------------------------------------------------------- explanations
    def _issuer_reason(self, issuer: Any) -> RuleResult:
        known = sorted(self._issuers)
        if issuer is None:
            return RuleResult("iss", False, known, None, "token has no 'iss' claim")
        if issuer.__class__ is not str:
            return RuleResult("iss", False, known, issuer,
                              f"the 'iss' claim is {describe_type(issuer)}, expected a string")
        return RuleResult("iss", False, known, issuer,
                          f"unknown issuer {issuer!r}: no provider trusts it (known issuers: "
                          f"{', '.join(known)})")

    def _explain(self, provider: ProviderIndex, record: Record,
                 claims: Mapping[str, Any]) -> list[RuleResult]:
        return explain_record(provider, record, claims)

    def evaluate_token(self, token: object, verifier: Verifier,
                       replay: ReplayStore | None = None, explain: bool = False,
                       request: Mapping[str, Any] | None = None) -> Decision:
        """Verify a compact JWT, decide on its claims, and claim its `jti` if allowed.

        Never raises on any token: a refused token is a denial whose reason carries
        a stable code (`tppolicy.TOKEN_ERROR_CODES`).
        """
        if request is None:
            return evaluate_token(self, token, verifier, replay, explain)
        return evaluate_token(cast(Policy, _WithRequest(self, request)), token, verifier,
                              replay, explain)

    # ------------------------------------------------------------- output
    def to_policy_file(self, source: str = "<compiled>") -> A.PolicyFile:
        """The concrete policy: used providers' headers, then every publisher."""
        used = sorted({p.provider.name for p in self._checked.publishers})
        headers = []
        for name in used:
            header = self._checked.providers[name].header()
            extra = tuple(i for i, n in sorted(self._registered.items())
                          if n == name and i not in header.issuers and header.custom_issuers)
            headers.append(A.Provider(**{**_fields_of(header), "issuers": header.issuers + extra}))
        publishers = tuple(_concrete(p) for p in self._checked.publishers)
        return A.PolicyFile(source, tuple(headers), publishers)


class _WithRequest:
    """A policy whose verified-token decisions carry request values (for `evaluate_token`,
    which only asks for `evaluate_verified`)."""

    def __init__(self, policy: Policy, request: Mapping[str, Any]) -> None:
        self.policy = policy
        self.request = request

    def evaluate_verified(self, token: VerifiedToken, explain: bool = False) -> Decision:
        return self.policy.evaluate_verified(token, explain, request=self.request)


def request_problem(request: object) -> RuleResult | None:
    """Why request values cannot be used (None when they can): a mapping of the names in
    `REQUEST_VALUES` to values of their types."""
    known = ", ".join(sorted(REQUEST_VALUES))
    if not isinstance(request, Mapping):
        return RuleResult("request", False, "a mapping", describe_type(request),
                          f"request values must be a mapping, not {describe_type(request)}")
    for name, value in request.items():
        declared = REQUEST_VALUES.get(name) if isinstance(name, str) else None
        if declared is None:
            return RuleResult("request", False, sorted(REQUEST_VALUES), name,
                              f"unknown request value {name!r} (known: {known})")
        if value is not None and describe_type(value) != describe_type(_EXAMPLES[declared]):
            return RuleResult("request", False, declared, value,
                              f"request value {name!r} is {describe_type(value)}, expected "
                              f"{describe_type(_EXAMPLES[declared])}")
    return None


_EXAMPLES: dict[str, object] = {"string": "", "int": 0, "bool": False}


def with_request(claims: Any, request: Mapping[str, Any]) -> Any:
    """`claims` with the request values under a key no claim can have (`REQUEST_KEY`):
    rules read them as `request.NAME`. Claims that are not a mapping are left as they are
    (they are refused)."""
    if not isinstance(claims, Mapping):
        return claims
    merged: dict[Any, Any] = dict(claims)
    merged[REQUEST_KEY] = dict(request)
    return merged


def learned_values(learns: Iterable[A.Learn], provider: CheckedProvider,
                   claims: Mapping[str, Any]) -> dict[str, Any]:
    """What a publisher's `learn` items (bound with its fields) take from an allowed token:
    by field name, the values that are not null. A value that cannot be computed, or is
    not a string, integer or boolean, is not learned."""
    interpreter = Interpreter(claims, provider.claim_types)
    learned: dict[str, Any] = {}
    for learn in learns:
        try:
            value = interpreter.value(learn.value)
        except EvalError:
            continue
        if value is not None and value.__class__ in (str, int, bool):
            learned[learn.name] = value
    return learned


def record_learns(provider: CheckedProvider, record: Record) -> tuple[A.Learn, ...]:
    """A publisher record's `learn` items, bound with its fields (empty when it learns
    nothing): for an engine that builds records from rows, once per record."""
    if record.rules is not None or not provider.learns:
        return ()
    return bind_learns(provider.learns, record.field_values(provider))


def explain_record(provider: ProviderIndex, record: Record,
                   claims: Mapping[str, Any]) -> list[RuleResult]:
    """Rule by rule, what the publisher expected and what the token had."""
    explainer = Explainer(claims, provider.checked.claim_types)
    return [explainer.rule(rule) for rule in record.concrete_rules(provider.checked)]


def explain_miss(provider: ProviderIndex, record: Record,
                 claims: Mapping[str, Any]) -> list[RuleResult]:
    """Why `record` did not take this token: its rules, and its keys if no rule failed."""
    reasons = explain_record(provider, record, claims)
    if all(r.passed for r in reasons):
        reasons.extend(key_mismatches(provider, record, claims))
    return reasons


def key_mismatches(provider: ProviderIndex, record: Record,
                   claims: Mapping[str, Any]) -> list[RuleResult]:
    explainer = Explainer(claims, provider.checked.claim_types)
    results = []
    for key, indexed in zip(provider.checked.keys, record.key, strict=True):
        wanted = indexed[1] if isinstance(indexed, tuple) else indexed
        try:
            actual = explainer.interpreter.value(key.claims_side)
        except EvalError as exc:
            results.append(RuleResult(f"lookup.{key.label}", False, wanted, None,
                                      f"cannot read {key.label} from the token: {exc}"))
            continue
        if lookup_value(actual) != indexed:
            results.append(RuleResult(f"lookup.{key.label}", False, wanted, actual,
                                      f"token has {show(actual)}, publisher expects "
                                      f"{show(wanted)}"))
    return results


def closest_record(provider: ProviderIndex, records: Iterable[Record],
                   claims: Mapping[str, Any]) -> Record | None:
    """The publisher that came closest: fewest rules failed and keys missed (then most
    rules passed: a publisher with more constraints is not farther for having them)."""
    best: tuple[int, int, int, int] | None = None
    chosen = None
    for position, record in enumerate(records):
        results = explain_record(provider, record, claims)
        keys = key_mismatches(provider, record, claims)
        passed = sum(r.passed for r in results)
        score = (passed - len(results) - len(keys), passed, 0 if record.pending else 1,
                 -position)
        if best is None or score > best:
            best, chosen = score, record
    return chosen


def _record(publisher: CheckedPublisher, providers: Mapping[str, ProviderIndex]) -> Record:
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
    return Record(str(publisher.index), provider.checked.name, publisher.ast.name,
                  publisher.ast.projects, publisher.ast.pending_project, values,
                  tuple(lookup_value(v) for v in publisher.key_values), prefer, slots,
                  predicate, rules)


def _fields_of(provider: A.Provider) -> dict[str, Any]:
    return {name: getattr(provider, name) for name in A.Provider.__dataclass_fields__}


def _concrete(publisher: CheckedPublisher) -> A.Publisher:
    """A publisher block with its fields bound, except those left at their defaults that
    no lookup reads (optional constraints not used): its rules show what they do."""
    provider = publisher.provider
    essential = {name for key in (*provider.keys, *provider.prefers)
                 for name in A.fields_read(key.publisher_side)}
    bindings = tuple(
        A.Binding(name, A.Literal(value)) for name, value in publisher.fields.items()
        if name in essential or (decl := provider.fields[name]).default is None
        or value != decl.default.value or value.__class__ is not decl.default.value.__class__)
    return A.Publisher(publisher.ast.name, publisher.provider.name, publisher.ast.projects,
                       publisher.ast.pending_project, bindings, publisher.rules,
                       learns=publisher.learns)


def _deny(provider: str | None, issuer: str | None, reasons: Sequence[RuleResult]) -> Decision:
    return Decision(False, provider, None, (), False, tuple(reasons), issuer=issuer)


def _audience_reason(audience_claim: Any, audience: str) -> RuleResult:
    if audience_claim is None:
        message = "token has no 'aud' claim"
    elif isinstance(audience_claim, list):
        message = (f"token's audience is a list {show(audience_claim)}; it must be the single "
                   f"string {audience!r}")
    elif audience_claim.__class__ is not str:
        message = f"the 'aud' claim is {describe_type(audience_claim)}, expected a string"
    else:
        message = f"token has audience {audience_claim!r}, expected {audience!r}"
    return RuleResult("aud", False, audience, audience_claim, message)


def missing_claims(provider: CheckedProvider, claims: Mapping[str, Any]) -> list[RuleResult]:
    reasons = []
    for spec in (*provider.required_claims, *provider.optional_claims):
        try:
            value = claim_value(claims, spec.name, spec.type)
        except EvalError as exc:
            reasons.append(RuleResult("claims", False, spec.type, claims.get(spec.name), str(exc)))
            continue
        if value is None and spec.category != "optional":
            reasons.append(RuleResult("claims", False, spec.type, None,
                                      f"missing claim '{spec.name}'"))
    return reasons


def _unaccounted(provider: CheckedProvider, claims: Mapping[str, Any]) -> tuple[str, ...]:
    """Claims the provider does not know: reported (as PyPI logs them), never refused."""
    names: Iterable[object] = claims  # request values ride under a key that is no string
    unknown = sorted(name for name in names if isinstance(name, str)
                     and name not in provider.claims
                     and not any(name.startswith(p) for p in provider.ast.ignored_prefixes))
    if not unknown:
        return ()
    return (f"claims unknown to the {provider.name} provider, ignored: {', '.join(unknown)}",)


def _notes(record: Record, provider: CheckedProvider,
           claims: Mapping[str, Any]) -> tuple[str, ...]:
    """The provider file's `note`s that hold for this allowed token and publisher."""
    if not provider.notes:
        return ()
    return notes_for(provider.notes, claims, provider.claim_types,
                     record.field_values(provider))


def evaluate_token(policy: Policy, token: object, verifier: Verifier,
                   replay: ReplayStore | None = None, explain: bool = False) -> Decision:
    """Verify, then decide; on an allowed decision, claim the `jti` atomically."""
    from tppolicy.token.verify import TokenError

    try:
        verified = verifier.verify(token)
    except TokenError as exc:
        return Decision(False, None, None, (), False, (token_reason(exc),))
    decision = policy.evaluate_verified(verified, explain)
    if not decision.allowed or replay is None:
        return decision
    jti = verified.claims.get("jti")
    if isinstance(jti, str):
        expires = int(verified.claims["exp"] + verifier.leeway + REPLAY_MARGIN)
        if not replay.claim(f"{verified.issuer}/{jti}", expires):
            reason = RuleResult("token", False, None, jti,
                                f"the token was already used (jti {jti!r})", "replayed")
            return Decision(False, decision.provider, None, (), False, (reason,),
                            issuer=verified.issuer)
    return decision
