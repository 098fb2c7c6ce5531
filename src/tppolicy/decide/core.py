"""The one decision core: publishers indexed per provider, and the decision on a token's
claims (or on a compact JWT, verified first).

`Policy` (behind `tppolicy check`) and `Engine` (behind the server) are thin fronts over
one `Decider`: they build its publisher records in their own way (a checked policy, or
rows added while a server runs), then ask it. The order is PyPI's: the issuer selects
the provider, the audience is checked, request values are checked, the lookup keys
select the candidates, the first publisher whose rules allow decides (normal publishers
before pending ones), and a refusal is explained against the closest publisher.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from tppolicy.decide.decision import (
    BAD_JTI,
    CANNOT_EVALUATE,
    INVALID_PAYLOAD,
    INVALID_PENDING_PUBLISHER,
    INVALID_PUBLISHER,
    INVALID_REUSE_TOKEN,
    INVALID_TOKEN,
    REPLAY_FAILED,
    Decision,
    RuleResult,
    denial,
    no_publisher,
    token_denial,
)
from tppolicy.decide.index import ProviderIndex, Record
from tppolicy.decide.reasons import Explainer, differs_only_in_case, show
from tppolicy.errors import ConfigError, Diagnostic, Span
from tppolicy.language import ast as A
from tppolicy.language.check import CheckedProvider
from tppolicy.language.compile import compile_claims_side, lookup_value
from tppolicy.language.interpret import Interpreter, claim_value
from tppolicy.language.ops import REQUEST_KEY, REQUEST_VALUES, EvalError, describe_type, op_lower
from tppolicy.language.texts import notes_for, render_value
from tppolicy.limits import MAX_JTI_CHARS, NEAR_MISS_SCAN, NEAR_MISSES, REPLAY_MARGIN
from tppolicy.token.refusal import TokenError

if TYPE_CHECKING:
    from tppolicy.token.replay import ReplayStore
    from tppolicy.token.verify import VerifiedToken, Verifier

_EXPIRED_RETRIES = 16  # expired pending publishers dropped in one decision, at most


# An issuer a provider's custom issuers may hold: https, a host, an optional path; no
# blanks, control characters, query or fragment.
_ISSUER_URL = re.compile(r"https://[^\x00-\x20\x7f-\x9f/?#]+(?:/[^\x00-\x20\x7f-\x9f?#]*)?")


def registered_issuers(providers: Mapping[str, CheckedProvider],
                       issuers: Mapping[str, str] | None) -> dict[str, str]:
    """Issuers registered for providers that allow custom issuers (GitHub Enterprise,
    self-managed GitLab...), checked: any other registration is a `ConfigError`."""
    registered = dict(issuers or {})
    problems = []
    built_in = {i: n for n, p in providers.items() for i in p.issuers}
    for issuer, name in registered.items():
        if _ISSUER_URL.fullmatch(issuer) is None:
            problems.append(Diagnostic(
                f"issuer {issuer!r} cannot be registered: an issuer is an https URL naming a "
                "host", hint="such as https://gitlab.example.com (no spaces or control "
                "characters)"))
            continue
        problem = _issuer_look(issuer)
        if problem is not None:
            problems.append(problem)
            continue
        if issuer.endswith("/"):  # `iss` is compared exactly: no token would match it
            problems.append(Diagnostic(
                f"issuer {issuer!r} cannot be registered: it ends with '/', and a token's "
                "'iss' is compared with it exactly (OpenID Connect Discovery 1.0, 4.3)",
                hint=f"drop the trailing '/': {issuer.rstrip('/')!r}, as the instance "
                "writes it in its tokens' 'iss' claim"))
            continue
        if built_in.get(issuer, name) != name:
            problems.append(Diagnostic(
                f"issuer {issuer} cannot be registered for '{name}': it is the built-in "
                f"issuer of provider '{built_in[issuer]}'",
                hint="register the issuer of your own instance (its URL, as its tokens' "
                "'iss' claim says)"))
            continue
        provider = providers.get(name)
        if provider is None or not provider.ast.custom_issuers:
            allowing = sorted(n for n, p in providers.items() if p.ast.custom_issuers)
            problems.append(Diagnostic(
                f"issuer {issuer} cannot be registered for '{name}': not a provider allowing "
                "custom issuers", hint=f"providers allowing custom issuers: "
                f"{', '.join(allowing) or 'none'}"))
    if problems:
        raise ConfigError(problems)
    return registered


_ISSUER_HOST = re.compile(r"(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+|\[[0-9A-Fa-f:.]+\]")


def _issuer_look(issuer: str) -> Diagnostic | None:
    """Why `issuer` (an https URL) would mislead whoever reads it, if it would: user
    information before the host (https://token.actions.githubusercontent.com@evil.example
    names evil.example), a host not in ASCII (a look-alike letter: 'gitlab' with a Cyrillic
    'a' in it), a port that is no port, or dot segments in the path (fetched as another path)."""
    authority, _, path = issuer[len("https://"):].partition("/")
    host, colon, port = authority.rpartition(":") if not authority.endswith("]") \
        else (authority, "", "")
    if not colon:
        host = authority
    why = hint = None
    if "@" in authority:
        why = "it has user information before its host: the host is what follows the '@'"
        hint = f"register the host itself: 'https://{authority.rpartition('@')[2]}'"
    elif not host.isascii():
        why = "its host is not in ASCII (a letter that looks like another?)"
        hint = "write the host as DNS has it (internationalised names in their 'xn--' form)"
    elif _ISSUER_HOST.fullmatch(host) is None or (colon and not (
            port.isdigit() and port.isascii() and 0 < int(port) < 65536)):
        why = "its host is not a DNS name or an IP address, with an optional port"
        hint = "such as https://gitlab.example.com or https://gitlab.example.com:8443"
    elif any(segment in (".", "..") for segment in path.split("/")):
        why = "its path has '.' or '..' segments (fetched as another path)"
        hint = "write the path as the instance writes it in its tokens' 'iss' claim"
    if why is None:
        return None
    return Diagnostic(f"issuer {issuer!r} cannot be registered: {why}", hint=hint)


def publisher_id(name: str | None, taken: Container[str], counter: Iterator[int]) -> str:
    """A publisher's id, unique among `taken`: its name when free, else the next `pN`
    that is free (a name may look like a generated id: `p2` named by a user)."""
    if name and name not in taken:
        return name
    while True:
        candidate = f"p{next(counter)}"
        if candidate not in taken:
            return candidate


class Decider:
    """Publishers indexed by provider and lookup keys, and the decision on claims.

    Thread-safe for readers: decisions never lock; `add`, `remove` and `replace` (under
    the caller's lock, if several writers) keep every index consistent at every moment.
    `pending_ttl` (seconds, None: never) drops pending publishers older than it (by
    `clock`) when a token selects them: `on_expired` (which must take the record out of
    the index) is told, else the record is removed here.
    """

    def __init__(self, providers: Mapping[str, CheckedProvider],
                 issuers: Mapping[str, str] | None = None, *,
                 pending_ttl: float | None = None, clock: Callable[[], float] = time.time,
                 on_expired: Callable[[Record], None] | None = None) -> None:
        self.providers = dict(providers)
        self.registered = registered_issuers(self.providers, issuers)
        self.pending_ttl = pending_ttl
        self.clock = clock
        self.on_expired = on_expired
        self.indexes: dict[str, ProviderIndex] = {}
        self.issuers: dict[str, ProviderIndex] = {}
        for name, provider in self.providers.items():
            index = ProviderIndex(provider)
            self.indexes[name] = index
            for issuer in provider.issuers:
                self.issuers.setdefault(issuer, index)
        for issuer, name in self.registered.items():
            self.issuers.setdefault(issuer, self.indexes[name])
            if self.indexes[name].issuer is None:  # custom issuers only (GitHub Enterprise)
                self.indexes[name].issuer = issuer
        self.known_issuers = sorted(self.issuers)
        # Per provider: identity key (the lookup keys marked `identity`) -> its records.
        self._identity: dict[str, dict[tuple[Any, ...], tuple[Record, ...]]] = {
            name: {} for name in self.providers}
        self._identity_of: dict[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]] = {}
        self._identity_positions: dict[str, tuple[int, ...]] = {
            name: tuple(i for i, key in enumerate(p.keys) if key.identity)
            for name, p in self.providers.items()}
        # Per provider, per identity key: whether its case is set aside (`exact_case`
        # fields: GitHub names ignore case), so that a token spelling its repository
        # otherwise still finds its publishers as near misses (never as matches).
        self._identity_fold: dict[str, tuple[bool, ...]] = {
            name: tuple(f"lookup.{k.label}" in p.case_aside for k in p.keys if k.identity)
            for name, p in self.providers.items()}
        # identity values from a record's key, and from the token's identity keys' values
        self._identity_pick = {name: _identity_function(self._identity_positions[name], fold)
                               for name, fold in self._identity_fold.items()}
        self._identity_token = {name: _identity_function(tuple(range(len(fold))), fold)
                                for name, fold in self._identity_fold.items()}
        self._lock = threading.Lock()
        # index -> its `candidates_of` when a host keeps the publishers
        # (`Engine(lookup=...)`); None: the indexes' own buckets.
        self.lookup_for: Callable[[ProviderIndex], Callable[
            [tuple[Any, ...], bool], tuple[Record, ...]]] | None = None
        # index -> the host's publishers of an identity (`Engine(lookup=...)` with an
        # `IdentityLookup`): the near misses of a refused token; None: `_identity`'s.
        self.identity_for: Callable[[ProviderIndex], Callable[
            [tuple[Any, ...]], tuple[Record, ...]]] | None = None

    def register_issuer(self, issuer: str, provider: str) -> None:
        """Trust `issuer` for `provider` from now on (a provider allowing custom issuers)."""
        registered = registered_issuers(self.providers, {issuer: provider})
        self.registered.update(registered)
        # Registered again for another provider (an operator re-pointing it): decide with
        # that provider, as the verifier does (a first registration kept here while the
        # verifier took the second split the two).
        self.issuers[issuer] = self.indexes[provider]
        self.known_issuers = sorted(self.issuers)

    # ------------------------------------------------------------- publishers
    def identity_key(self, record: Record) -> tuple[Any, ...]:
        """The values of a record's identity keys (who the publisher is), case aside
        where the provider file declares it (`exact_case`)."""
        return self.key_identity(record.provider, record.key)

    def key_identity(self, provider: str, key: tuple[Any, ...]) -> tuple[Any, ...]:
        """`identity_key` of a record of `provider` with this lookup key."""
        return self._identity_pick[provider](key)

    def token_identity(self, provider: str, claims: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The identity a token's claims give for `provider`, None if they give none."""
        compute = self._identity_of.get(provider)
        if compute is None:
            checked = self.providers[provider]
            compute = compile_claims_side(checked, [k for k in checked.keys if k.identity])
            self._identity_of[provider] = compute
        try:
            return self._identity_token[provider](compute(claims))
        except Exception:  # a claim of the wrong type gives no identity
            return None

    def add(self, record: Record) -> None:
        """Index a record (its `learns` already set)."""
        self.indexes[record.provider].add(record)
        self._add_identity(record)

    def remove(self, record: Record) -> bool:
        """Take a record out of every index; False if it was not indexed."""
        removed = self.indexes[record.provider].remove(record)
        self._remove_identity(record)
        return removed

    def replace(self, old: Record, new: Record) -> None:
        """`new` instead of `old`, atomically for readers: at every moment a decision
        sees one of them (in place when they share a bucket)."""
        if old.provider == new.provider:
            self.indexes[new.provider].replace(old, new)
        else:
            self.indexes[new.provider].add(new)
            self.indexes[old.provider].remove(old)
        self._add_identity(new)
        self._remove_identity(old)

    def shadowing(self, record: Record, batch: Iterable[Record] = ()) -> Record | None:
        """The publisher that would always be chosen before `record`, if any: the one
        rule of both fronts (`Policy` behind `tppolicy check`, `Engine` behind a server)
        for publishers that may not be added together.

        The lookup chooses one candidate among those of a lookup key (the first whose
        `prefer` values fit), and only its rules decide. A publisher of the same provider,
        of the same kind (pending or not), with the same lookup key and `prefer` values as
        one already indexed (other than the one with its id, which it replaces) or one of
        `batch` (being added with it) would never be chosen, whatever its projects: a
        pending one would silently lose its project's first upload, a normal one its
        projects. PyPI refuses it at registration; so does this."""
        pending = record.pending_project is not None
        indexed = self.indexes[record.provider].bucket(record.key, pending)
        for other in indexed:
            if other.id != record.id and other.prefer == record.prefer:
                return other
        for other in batch:
            if (other is not record and other.provider == record.provider
                    and (other.pending_project is not None) == pending
                    and other.key == record.key and other.prefer == record.prefer):
                return other
        return self.future_twin(record, indexed=indexed_normal(self, record), batch=batch)

    def future_twin(self, record: Record, indexed: Iterable[Record] = (),
                    batch: Iterable[Record] = ()) -> Record | None:
        """For a pending publisher: the normal publisher (of `indexed`, the normal ones
        under its lookup key, or of `batch`) it would become a twin of once its project
        is created. The same lookup key and `prefer` values, but other fields (optional
        constraints): the lookup would always choose that one, so the project could not
        be published after its first upload. Merging them would hand the new project to
        the other publisher's constraints (as PyPI's reify does); both fronts refuse such
        a pending publisher instead (`shadowing`), and the Engine refuses to convert one
        (a normal publisher added after it). Equal fields are no twin: conversion merges."""
        if record.pending_project is None:
            return None
        for other in (*indexed, *batch):
            if (other.pending_project is None and other.provider == record.provider
                    and other.key == record.key and other.prefer == record.prefer
                    and other.fields != record.fields):
                return other
        return None

    def pending_twin(self, record: Record, batch: Iterable[Record]) -> Record | None:
        """For a normal publisher: the pending one of `batch` (added with it) that would
        become its twin (`future_twin`)."""
        if record.pending_project is not None:
            return None
        for other in batch:
            if other.pending_project is not None and self.future_twin(other, (record,)):
                return other
        return None

    def _add_identity(self, record: Record) -> None:
        with self._lock:
            identity = self._identity[record.provider]
            key = self.identity_key(record)
            identity[key] = (*identity.get(key, ()), record)

    def _remove_identity(self, record: Record) -> None:
        with self._lock:
            identity = self._identity[record.provider]
            key = self.identity_key(record)
            kept = tuple(r for r in identity.get(key, ()) if r is not record)
            if kept:
                identity[key] = kept
            else:
                identity.pop(key, None)

    # --------------------------------------------------------------- decisions
    def decide(self, claims: object, *, audience: str, request: Mapping[str, Any] | None = None,
               explain: bool = False, now: float | None = None,
               exists: Callable[[str], bool] | None = None) -> Decision:
        """Decide on decoded claims: their issuer and audience are checked here. Never
        raises on any input: errors deny (fail closed).

        `request` holds the values the caller supplies with the upload (`request.version`
        in the rules); `explain` lists, for an allowed decision, every rule that passed;
        `exists` tells whether a project exists (a pending publisher's project must not);
        `now` is the clock's time (for pending publishers' expiry).
        """
        try:
            if type(claims) is not dict and not isinstance(claims, Mapping):
                return denial(None, None, (RuleResult(
                    "claims", False, "a JSON object", describe_type(claims),
                    f"claims must be a JSON object, not {describe_type(claims)}"),),
                    INVALID_PAYLOAD)
            issuer = claims.get("iss")
            index = self.issuers.get(issuer) if issuer.__class__ is str else None
            if index is None:
                return denial(None, issuer if isinstance(issuer, str) else None,
                              (self.issuer_reason(issuer),), INVALID_PAYLOAD)
            assert isinstance(issuer, str)
            audience_claim = claims.get("aud")
            if audience_claim.__class__ is not str or audience_claim != audience:
                return denial(index.checked.name, issuer,
                              (audience_reason(audience_claim, audience),), INVALID_TOKEN)
            return self._decide(index, claims, issuer, request, explain, now, exists)
        except Exception as exc:  # fail closed, whatever the input did
            return _cannot(exc)

    def decide_verified(self, token: VerifiedToken, *, request: Mapping[str, Any] | None = None,
                        explain: bool = False, now: float | None = None,
                        exists: Callable[[str], bool] | None = None) -> Decision:
        """Decide on a token the verifier accepted (its issuer and audience are checked)."""
        index = self.issuers.get(token.issuer)
        if index is None:  # the verifier was built for another set of issuers
            return denial(None, token.issuer, (self.issuer_reason(token.issuer),),
                          INVALID_PAYLOAD)
        try:
            return self._decide(index, token.claims, token.issuer, request, explain, now,
                                exists)
        except Exception as exc:  # fail closed, whatever the input did
            return _cannot(exc)

    def decide_token(self, token: object, verifier: Verifier, replay: ReplayStore | None, *,
                     request: Mapping[str, Any] | None = None, explain: bool = False,
                     now: float | None = None, exists: Callable[[str], bool] | None = None
                     ) -> tuple[Decision, VerifiedToken | None]:
        """Verify a compact JWT, decide, and on an allowed decision use up its `jti`
        (atomically, in `replay`). Never raises on any token: a refused token is a denial
        whose reason carries the verifier's stable code. Returns the decision and the
        verified token (None when it was refused)."""
        try:
            verified = verifier.verify(token)
        except TokenError as exc:
            return token_denial(exc), None
        index = self.issuers.get(verified.issuer)
        if index is None:  # the verifier was built for another set of issuers
            return self.decide_verified(verified), verified
        try:
            decision = self._decide(index, verified.claims, verified.issuer, request, explain,
                                    now, exists)
        except Exception as exc:  # fail closed, whatever the input did
            return _cannot(exc), verified
        if not decision.allowed or replay is None:
            return decision, verified
        return use_jti(decision, verified, verifier.leeway, replay), verified

    def allowed(self, claims: object, audience: str) -> Decision | None:
        """The usual answer at once: the decision when a normal publisher of the
        provider's template allows these claims (a dict) for `audience` and learns
        nothing from them; None in every other case, where `decide` gives the answer
        (and the same one in this case: the same lookup, choice and rules)."""
        if claims.__class__ is not dict or self.lookup_for is not None:
            return None
        assert isinstance(claims, dict)
        get = claims.get
        issuer = get("iss")
        if issuer.__class__ is not str:
            return None
        index = self.issuers.get(issuer)
        if index is None or index.check is None:
            return None
        audience_claim = get("aud")
        if audience_claim.__class__ is not str or audience_claim != audience:
            return None
        decision: Decision | None = index.check(claims, index.quick)
        if decision is None or issuer == index.issuer:  # the issuer of every quick decision
            return decision  # (not read from it: one cache line less at random)
        other: Decision = decision.record.decision(issuer)
        return other

    def _decide(self, index: ProviderIndex, claims: Mapping[str, Any], issuer: str,
                request: Mapping[str, Any] | None, explain: bool, now: float | None,
                exists: Callable[[str], bool] | None) -> Decision:
        provider = index.checked
        if request is None and not explain and index.check is not None \
                and self.lookup_for is None and claims.__class__ is dict:
            fast: Decision | None = index.check(claims, index.quick)  # the usual answer
            if fast is not None:
                return fast if issuer == index.issuer else fast.record.decision(issuer)
        decided = claims
        if request is not None:
            problem = request_problem(request)
            if problem is not None:
                return denial(provider.name, issuer, (problem,), INVALID_PAYLOAD)
            decided = with_request(claims, request)  # only the rules see the merged mapping
        # Each publisher's rules check the required claims too: the provider's own check
        # only runs when no publisher allows, to give the right reason.
        for _ in range(_EXPIRED_RETRIES):
            allowed, refused = index.select(decided, None if self.lookup_for is None
                                            else self.lookup_for(index))
            if allowed is None or allowed.pending_project is None \
                    or not self._expired(allowed, now):
                break
            if self.on_expired is not None:  # expired: as if gone
                self.on_expired(allowed)
            else:
                self.remove(allowed)
        else:
            allowed, refused = None, None
        if allowed is None:
            return self._refusal(index, decided, issuer, refused)
        if allowed.pending_project is not None and exists is not None \
                and exists(allowed.pending_project):
            # PyPI: the request fails (the front drops the pending publisher); it does
            # not fall through to other publishers.
            reason = RuleResult("pending_project", False, None, allowed.pending_project,
                                f"valid token, but project {allowed.pending_project!r} "
                                "already exists")
            return Decision(False, provider.name, None, (), True, (reason,), issuer=issuer,
                            code=INVALID_PENDING_PUBLISHER, record=allowed)
        learns = allowed.learns
        if not explain:
            if learns:
                return replace(allowed.decision(issuer),
                               learned=learned_values(learns, provider, decided))
            return allowed.decision(issuer)
        return Decision(True, provider.name, allowed.label, allowed.all_projects,
                        allowed.pending, tuple(explain_record(index, allowed, decided)),
                        issuer=issuer, notes=_notes(allowed, provider, claims)
                        + _unaccounted(provider, claims),
                        learned=learned_values(learns, provider, decided) if learns else {},
                        record=allowed)

    def _expired(self, record: Record, now: float | None) -> bool:
        if self.pending_ttl is None:
            return False
        return (self.clock() if now is None else now) - record.created > self.pending_ttl

    def _refusal(self, index: ProviderIndex, claims: Mapping[str, Any], issuer: str,
                 refused: Record | None) -> Decision:
        """Why no publisher took the token, against the closest publisher: the one the
        lookup chose, else the closest sharing the token's identity (at most
        `NEAR_MISSES` explained), else, in a provider with at most `NEAR_MISS_SCAN`
        publishers, the closest of all (not disclosed to the holder: see
        `Decision.disclosed`). The other publishers sharing the token's identity (case
        aside where the provider file says so) are explained too (`Decision.also`).

        Anyone may send refused tokens, so what one costs is bounded whatever the number
        of publishers: at most `NEAR_MISSES` (or `NEAR_MISS_SCAN`) publishers explained,
        each once."""
        provider = index.checked
        name = provider.name
        if not index.required(claims):
            return denial(name, issuer, tuple(missing_claims(provider, claims)),
                          INVALID_PUBLISHER)
        shared = True
        closest = refused
        identity = self.token_identity(name, claims)
        same = self._identity[name].get(identity, ()) if identity is not None else ()
        if not same and identity is not None and self.identity_for is not None:
            try:
                same = self.identity_for(index)(identity)
            except Exception:  # the host's database failed: explain less, still deny
                same = ()
        # each publisher compared is explained once (NEAR_MISSES of the identity at most,
        # whatever their number): the choice of the closest, its reasons and `also`
        compared = []
        if same:
            keys = token_key_values(index, claims)
            compared = [(r, *_explained(index, r, claims, keys)) for r in same[:NEAR_MISSES]]
        if closest is None:
            if compared:
                closest = _closest(compared)
            elif 0 < len(index) <= NEAR_MISS_SCAN:
                closest = closest_record(index, index.records(), claims)
                shared = False
        if closest is None:
            return denial(name, issuer, (self._no_publisher(index),), INVALID_PUBLISHER)
        reasons: list[RuleResult] | None = None
        also = []
        for record, results, keys in compared:
            missed = results + keys if all(r.passed for r in results) else results
            if record is closest:
                reasons = missed
            elif shared:  # the other publishers of the token's identity, what each expects
                also.append((record.label, tuple(x for x in missed if not x.passed)))
        if reasons is None:
            reasons = explain_miss(index, closest, claims)
        return Decision(False, name, None, (), False, tuple(reasons),
                        closest=closest.label, issuer=issuer, code=INVALID_PUBLISHER,
                        shared=shared, record=closest, also=tuple(also))

    def _no_publisher(self, index: ProviderIndex) -> RuleResult:
        """Why no publisher was even compared: for the operator, when the token's provider
        has none, which provider issued it (`actual`) and which the publishers are of
        (`expected`); the token's holder is told only that none corresponds."""
        name = index.checked.name
        if len(index) or self.lookup_for is not None:  # a host's publishers: not counted
            return no_publisher(name)
        held = sorted(n for n, other in self.indexes.items() if len(other))
        holds = f"{', '.join(held)} publishers only" if held else "no publishers"
        return RuleResult("publisher", False, held, name,
                          f"valid token, but no corresponding {name} publisher: the token "
                          f"comes from {name}, and there are {holds}")

    def issuer_reason(self, issuer: Any) -> RuleResult:
        """Why the `iss` claim selects no provider."""
        known = self.known_issuers
        if issuer is None:
            return RuleResult("iss", False, known, None, "token has no 'iss' claim")
        if issuer.__class__ is not str:
            return RuleResult("iss", False, known, issuer,
                              f"the 'iss' claim is {describe_type(issuer)}, expected a string")
        return RuleResult("iss", False, known, issuer, unknown_issuer_message(issuer, known))


def _identity_function(positions: tuple[int, ...], fold: tuple[bool, ...]
                       ) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """The values at `positions` of a key, as a tuple, the strings at the `fold` ones
    lowercased (ASCII, as `lower`): one call per publisher added, so kept cheap."""
    if not positions:
        return lambda key: ()
    pick: Callable[[tuple[Any, ...]], tuple[Any, ...]] = itemgetter(*positions)
    if len(positions) == 1:
        single = positions[0]
        pick = lambda key: (key[single],)  # noqa: E731 - itemgetter of one gives no tuple
    lowered = [i for i, f in enumerate(fold) if f]
    if not lowered:
        return pick

    def folded(key: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(pick(key))
        for i in lowered:
            value = values[i]
            if value.__class__ is str:
                values[i] = value.lower() if value.isascii() else op_lower(value)
        return tuple(values)

    return folded


def indexed_normal(decider: Decider, record: Record) -> tuple[Record, ...]:
    """The normal publishers indexed under a pending publisher's lookup key (none for a
    normal one)."""
    if record.pending_project is None:
        return ()
    return decider.indexes[record.provider].bucket(record.key, False)


def shadowing_mark(record: Record) -> tuple[Any, ...]:
    """What `Decider.shadowing` compares between two publishers of a batch (provider,
    kind, lookup key, `prefer` values): publishers with equal marks shadow one another,
    so a batch is checked in one pass by hashing marks, not pairwise."""
    return (record.provider, record.pending_project is not None, record.key, record.prefer)


def shadowing_problem(record: Record, twin: Record, where: str | None = None,
                      span: Span | None = None, source: str | None = None,
                      labels: tuple[str, str] | None = None) -> Diagnostic:
    """What both fronts say of a publisher `Decider.shadowing` refuses (`labels`: how
    the front names the two)."""
    label, twin_label = labels or (
        record.name or ("a pending publisher" if record.pending_project is not None
                        else "a publisher"), twin.label)
    if span is None and source is not None:
        span = Span(source, 0, 0, 0, 0)
    if record.pending_project is not None and twin.pending_project is None:
        projects = ", ".join(repr(p) for p in twin.projects) or "no project"
        return Diagnostic(
            f"{label} (pending, for project {record.pending_project!r}) would become a twin "
            f"of {twin_label} (for {projects}) once its project is created: the same "
            f"identity, lookup key and preferences, other constraints, so the lookup would "
            f"always choose {twin_label} and {record.pending_project!r} could not be "
            "published after its first upload", span, where,
            f"make them differ in a field the lookup reads (for GitHub: the workflow or "
            f"the environment), or "
            f"give both the same constraints (conversion then adds the project to "
            f"{twin_label}); PyPI would attach the new project to {twin_label} with "
            f"{twin_label}'s constraints, which tppolicy refuses to do")
    if twin.pending_project is not None:
        what = f"(for project {twin.pending_project!r})"
        hint = ("a pending publisher with this configuration is already registered; remove "
                "it first")
    else:
        what = f"(for {', '.join(repr(p) for p in twin.projects) or 'no project'})"
        hint = "merge them into one publisher with both projects"
    if span is None and source is not None:
        span = Span(source, 0, 0, 0, 0)
    return Diagnostic(f"{label} has the same identity as {twin_label} {what}: the lookup "
                      f"always chooses {twin_label}, so a token that matches one matches "
                      "the other", span, where, hint)


def unknown_issuer_message(issuer: str, known: Iterable[str]) -> str:
    """The one message for an issuer no provider trusts (decisions and the verifier)."""
    return (f"unknown issuer {show(issuer)}: no provider trusts it (known issuers: "
            f"{', '.join(known)})")


def use_jti(decision: Decision, verified: VerifiedToken, leeway: float,
            replay: ReplayStore, errors: str = "deny") -> Decision:
    """An allowed decision on a verified token, its `jti` used up (claimed atomically in
    `replay` until the token's expiry, leeway and margin pass): the decision, or the
    denial of a token already used.

    Fails closed: a `jti` no store can hold (longer than `MAX_JTI_CHARS`, or with control
    characters such as NUL) is denied before the store sees it, and an exception from the
    store's `claim` (Redis down, a SQLite file locked or read-only...) is a denial whose
    reason (code `replay-store-failed`) carries the exception's text for the operator
    only (see `Decision.disclosed`). With `errors="raise"` the store's exception
    propagates instead (a server answering 503 to an outage)."""
    claims = verified[1]  # .claims (a tuple's index is read faster than its field name)
    jti = claims.get("jti")
    if jti is None:
        return decision
    if jti.__class__ is not str or len(jti) > MAX_JTI_CHARS or (
            not jti.isprintable() and _CONTROL.search(jti) is not None):
        return denial(decision.provider, verified.issuer, (_jti_problem(jti),),
                      INVALID_PAYLOAD)
    try:
        expires_at = claims["exp"] + leeway + REPLAY_MARGIN
        if expires_at.__class__ is not int:  # a float leeway: whole seconds, as stores keep
            expires_at = int(expires_at)
        claimed = replay.claim(f"{verified[2]}/{jti}", expires_at)  # [2]: .issuer
    except Exception as exc:
        return jti_claimed(decision, verified, exc, errors)
    if claimed is not True:  # False, or a store's own answer: its truth, in here
        return jti_claimed(decision, verified, claimed, errors)
    return decision


def jti_claimed(decision: Decision, verified: VerifiedToken, outcome: object,
                errors: str = "deny") -> Decision:
    """`use_jti`'s answer after a claim that returned `outcome` (not True) or raised it
    (an `Exception`): the decision when the store's answer is true, the denial of a
    token already used when false, the store's failure as `use_jti` says it."""
    if not isinstance(outcome, Exception):
        try:
            if outcome:
                return decision
        except Exception as exc:  # a store's answer with no truth: its failure
            outcome = exc
        else:
            jti = verified[1].get("jti")
            reason = RuleResult("token", False, None, jti,
                                f"the token was already used (jti {jti!r})", "replayed")
            return denial(decision.provider, verified.issuer, (reason,), INVALID_REUSE_TOKEN)
    assert isinstance(outcome, Exception)
    if errors == "raise":
        raise outcome
    reason = RuleResult("jti", False, None, None, "cannot record the token's use: the "
                        f"replay store failed ({type(outcome).__name__}: {outcome})",
                        REPLAY_FAILED)
    return denial(decision.provider, verified.issuer, (reason,), INVALID_PAYLOAD)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL, C1 (a terminal's CSI...)


def _jti_problem(jti: object) -> RuleResult:
    """Why a `jti` cannot be claimed (it is not a string, too long, or has a control
    character); the value is shown cut short."""
    if jti.__class__ is not str:
        return RuleResult("jti", False, "a string", describe_type(jti),
                          f"the 'jti' claim is {describe_type(jti)}, expected a string", BAD_JTI)
    assert isinstance(jti, str)
    shown = jti if len(jti) <= 64 else f"{jti[:64]}..."
    if len(jti) > MAX_JTI_CHARS:
        message = (f"the 'jti' claim has {len(jti)} characters; a token id has at most "
                   f"{MAX_JTI_CHARS} (it cannot be recorded as used)")
    else:
        found = _CONTROL.search(jti)
        assert found is not None
        message = (f"the 'jti' claim {shown!r} holds the control character "
                   f"{found.group()!r} at {found.start()}; a token id is printable text")
    return RuleResult("jti", False, "printable text", shown, message, BAD_JTI)


def _cannot(exc: Exception) -> Decision:
    """The denial when deciding failed (fail closed). The exception's text is for the
    operator only: `Decision.disclosed` words it without (it may name a database)."""
    return denial(None, None, (RuleResult("claims", False, None, None,
                                          f"cannot evaluate these claims: {exc}",
                                          CANNOT_EVALUATE),), INVALID_PAYLOAD)


def audience_reason(audience_claim: Any, audience: str) -> RuleResult:
    """Why the `aud` claim is not the audience expected."""
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


# ------------------------------------------------------------------ request values
_EXAMPLES: dict[str, object] = {"string": "", "int": 0, "bool": False}


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


def with_request(claims: Mapping[str, Any], request: Mapping[str, Any]) -> dict[Any, Any]:
    """`claims` with the request values under a key no claim can have (`REQUEST_KEY`):
    rules read them as `request.NAME`."""
    merged: dict[Any, Any] = dict(claims)
    merged[REQUEST_KEY] = dict(request)
    return merged


# ------------------------------------------------------------------ trust on first use
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


# ------------------------------------------------------------------ explanations
def explain_record(provider: ProviderIndex, record: Record,
                   claims: Mapping[str, Any]) -> list[RuleResult]:
    """Rule by rule, what the publisher expected and what the token had. A failed identity
    rule is marked `identity` (not disclosed), unless it failed only on the case of names
    the provider file declares `exact_case` (the token's holder has that name already)."""
    explainer = Explainer(claims, provider.checked.claim_types)
    # bound rules do not carry `identity`: the provider's rules of that name say it
    identity = provider.checked.identity_rules
    aside = provider.checked.case_aside
    results = [explainer.rule(rule) for rule in record.concrete_rules(provider.checked)]
    return [replace(r, identity=True) if r.rule in identity and not r.passed and not (
        r.rule in aside and differs_only_in_case(r.expected, r.actual)) else r
        for r in results]


def explain_miss(provider: ProviderIndex, record: Record,
                 claims: Mapping[str, Any]) -> list[RuleResult]:
    """Why `record` did not take this token: its rules, and its keys if no rule failed."""
    reasons = explain_record(provider, record, claims)
    if all(r.passed for r in reasons):
        reasons.extend(key_mismatches(provider, record, claims))
    return reasons


def key_mismatches(provider: ProviderIndex, record: Record,
                   claims: Mapping[str, Any],
                   token_keys: Sequence[Any] | None = None) -> list[RuleResult]:
    """The lookup keys on which the token and the publisher differ (`token_keys`: the
    token's side of each, from `token_key_values`, when several publishers are compared)."""
    if token_keys is None:
        token_keys = token_key_values(provider, claims)
    results = []
    for key, indexed, actual in zip(provider.checked.keys, record.key, token_keys,
                                    strict=True):
        wanted = indexed[1] if isinstance(indexed, tuple) else indexed
        if isinstance(actual, EvalError):
            results.append(RuleResult(f"lookup.{key.label}", False, wanted, None,
                                      f"cannot read {key.label} from the token: {actual}"))
            continue
        if lookup_value(actual) != indexed:
            results.append(RuleResult(f"lookup.{key.label}", False, wanted, actual,
                                      f"token has {show(actual)}, publisher expects "
                                      f"{show(wanted)}"))
    return results


def token_key_values(provider: ProviderIndex, claims: Mapping[str, Any]) -> list[Any]:
    """The token's side of each lookup key (an `EvalError` where it cannot be read)."""
    interpreter = Explainer(claims, provider.checked.claim_types).interpreter
    values: list[Any] = []
    for key in provider.checked.keys:
        try:
            values.append(interpreter.value(key.claims_side))
        except EvalError as exc:
            values.append(exc)
    return values


def closest_record(provider: ProviderIndex, records: Iterable[Record],
                   claims: Mapping[str, Any]) -> Record | None:
    """The publisher that came closest: fewest rules failed and keys missed (then most
    rules passed: a publisher with more constraints is not farther for having them)."""
    keys = token_key_values(provider, claims)
    return _closest([(record, *_explained(provider, record, claims, keys))
                     for record in records])


def _explained(provider: ProviderIndex, record: Record, claims: Mapping[str, Any],
               token_keys: Sequence[Any]) -> tuple[list[RuleResult], list[RuleResult]]:
    """(`explain_record`, `key_mismatches`) of one publisher."""
    return (explain_record(provider, record, claims),
            key_mismatches(provider, record, claims, token_keys))


def _closest(compared: Sequence[tuple[Record, list[RuleResult], list[RuleResult]]]
             ) -> Record | None:
    """`closest_record` of publishers already explained (record, rules, keys)."""
    best: tuple[int, int, int, int] | None = None
    chosen = None
    for position, (record, results, keys) in enumerate(compared):
        passed = sum(r.passed for r in results)
        score = (passed - len(results) - len(keys), passed, 0 if record.pending else 1,
                 -position)
        if best is None or score > best:
            best, chosen = score, record
    return chosen


def missing_claims(provider: CheckedProvider, claims: Mapping[str, Any]) -> list[RuleResult]:
    """The required claims a token lacks, and the claims of the wrong type."""
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
    names: Iterable[object] = claims
    unknown = sorted(name for name in names if isinstance(name, str)
                     and name not in provider.claims
                     and not any(name.startswith(p) for p in provider.ast.ignored_prefixes))
    if not unknown:
        return ()
    # Names as texts show values (control characters escaped: a line break would forge a
    # line of `check`'s output), the first UNKNOWN_SHOWN of them (a claims file may hold
    # thousands).
    shown = ", ".join(render_value(name) for name in unknown[:UNKNOWN_SHOWN])
    rest = len(unknown) - UNKNOWN_SHOWN
    more = f" and {rest} more" if rest > 0 else ""
    return (f"claims unknown to the {provider.name} provider, ignored: {shown}{more}",)


UNKNOWN_SHOWN = 20  # unknown claims named in the note


def _notes(record: Record, provider: CheckedProvider,
           claims: Mapping[str, Any]) -> tuple[str, ...]:
    """The provider file's `note`s that hold for this allowed token and publisher (the
    one seam where notes plug into decisions)."""
    if not provider.notes:
        return ()
    return notes_for(provider.notes, claims, provider.claim_types,
                     record.field_values(provider))


__all__: Sequence[str] = (
    "Decider", "audience_reason", "closest_record", "explain_miss", "explain_record",
    "key_mismatches", "learned_values", "missing_claims", "publisher_id", "registered_issuers",
    "request_problem", "shadowing_mark", "token_key_values", "unknown_issuer_message",
    "with_request")
