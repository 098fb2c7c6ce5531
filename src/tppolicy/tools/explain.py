"""Explain a decision to the person who owns the configuration: every publisher of the
token's provider ranked by how close it came, rule by rule, and the fix in plain words.

This is the answer to PyPI's "valid token, but no corresponding publisher". The person
running it owns the publishers, so identity mismatches (another repository, owner, namespace,
account) are shown too; each check and fix says whether a *server* could disclose it to
whoever presented the token, following NuGet's rule: once the token's identity (repository,
owner, namespace, account) matches a publisher, the differences in workflow, environment,
ref and the like are disclosable; identity mismatches are not (they would tell a stranger
which repositories a project trusts).

Nothing here prints. `advise` builds an `Advice`; the CLI renders it.
"""

from __future__ import annotations

import heapq
import re
import sys
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, overload

from tppolicy.decide.core import with_request
from tppolicy.decide.decision import Decision, RuleResult, token_reason
from tppolicy.decide.index import Record
from tppolicy.decide.policy import Policy
from tppolicy.decide.reasons import Explainer, differs_only_in_case, show
from tppolicy.language import ast as A
from tppolicy.language.bind import DeferredRule, bind_rules_deferred
from tppolicy.language.check import CheckedProvider, CheckedPublisher
from tppolicy.language.compile import lookup_value
from tppolicy.language.interpret import claim_value
from tppolicy.language.ops import REQUEST_VALUES, EvalError, describe_type
from tppolicy.language.texts import fix_for
from tppolicy.text import cut_middle

if TYPE_CHECKING:
    from tppolicy.token.verify import Verifier

__all__ = ["Advice", "Candidate", "Check", "Fix", "advise", "advise_publishers", "advise_token",
           "decision_fixes", "identity_checks", "record_fixes"]


def identity_checks(provider: CheckedProvider) -> frozenset[str]:
    """The checks about *who* the token is, whose mismatches a server must not disclose:
    the provider file's `identity rule`s and its lookup's `identity` items (`lookup.FIELD`;
    every lookup key when none is marked). A file that marks no rule `identity`: the rules
    named after those keys' fields."""
    marked = [k for k in provider.keys if k.identity] or list(provider.keys)
    rules = provider.identity_rules or {k.label for k in marked}
    return frozenset(rules) | {f"lookup.{k.label}" for k in marked}


@dataclass(frozen=True, slots=True)
class Check:
    """One row of a candidate's table: a rule of the publisher, or one of its lookup keys."""

    name: str  # the rule's name, or lookup.FIELD
    kind: str  # rule | lookup | token
    passed: bool
    expected: Any
    actual: Any
    message: str
    identity: bool = False
    disclosable: bool = True
    expectation: str = ""  # the expected value in words, for a table

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "passed": self.passed,
                "expected": self.expected, "expectation": self.expectation,
                "actual": self.actual, "message": self.message,
                "identity": self.identity, "disclosable": self.disclosable}


@dataclass(frozen=True, slots=True)
class Fix:
    """What to change, where (the workflow, the publisher, the token request...), and why."""

    check: str
    where: str  # workflow | publisher | token | operator | nothing
    text: str
    disclosable: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "where": self.where, "text": self.text,
                "disclosable": self.disclosable}


@dataclass(frozen=True, slots=True)
class Candidate:
    publisher: str
    provider: str
    projects: tuple[str, ...]
    pending: bool
    chosen: bool  # the publisher that allowed the token
    checks: tuple[Check, ...]
    fixes: tuple[Fix, ...] = ()

    @property
    def rules(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.kind == "rule")

    @property
    def keys(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.kind == "lookup")

    @property
    def identity_matches(self) -> bool:
        return all(c.passed for c in self.checks if c.identity)

    def to_json(self, rank: int) -> dict[str, Any]:
        return {"rank": rank, "publisher": self.publisher, "provider": self.provider,
                "projects": list(self.projects), "pending": self.pending,
                "chosen": self.chosen,
                "rules_passed": sum(c.passed for c in self.rules), "rules": len(self.rules),
                "keys_matched": sum(c.passed for c in self.keys), "keys": len(self.keys),
                "identity_matches": self.identity_matches,
                "checks": [c.to_json() for c in self.checks],
                "fixes": [f.to_json() for f in self.fixes]}


@dataclass(frozen=True, slots=True)
class Advice:
    allowed: bool
    decision: Decision
    audience: str
    provider: str | None
    issuer: str | None
    provider_guessed: bool = False  # unknown issuer: the provider whose claims the token has
    token_checks: tuple[Check, ...] = ()  # before any publisher: iss, aud, claims
    token_fixes: tuple[Fix, ...] = ()
    candidates: Sequence[Candidate] = ()  # a `_Candidates` when ranked
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "publisher": self.decision.publisher,
            "provider": self.provider,
            "provider_guessed": self.provider_guessed,
            "issuer": self.issuer,
            "audience": self.audience,
            "token_checks": [c.to_json() for c in self.token_checks],
            "token_fixes": [f.to_json() for f in self.token_fixes],
            "candidates": [c.to_json(rank) for rank, c in enumerate(self.candidates, 1)],
            "notes": list(self.notes),
            "decision": self.decision.to_json(),
        }


# ------------------------------------------------------------------------ checks
def _token_checks(provider: CheckedProvider | None, claims: Mapping[str, Any],
                  audience: str, issuer_known: bool, known: list[str]) -> list[Check]:
    checks: list[Check] = []
    issuer = claims.get("iss")
    if not issuer_known:
        if issuer is None:
            message = "token has no 'iss' claim"
        elif not isinstance(issuer, str):
            message = f"the 'iss' claim is {describe_type(issuer)}, expected a string"
        else:
            message = f"unknown issuer {show(issuer)}: no provider trusts it"
        checks.append(Check("iss", "token", False, known, issuer, message))
    else:
        checks.append(Check("iss", "token", True, issuer, issuer, "a known issuer"))
    aud = claims.get("aud")
    if aud.__class__ is str and aud == audience:
        checks.append(Check("aud", "token", True, audience, aud, "the expected audience"))
    else:
        if aud is None:
            message = "token has no 'aud' claim"
        elif isinstance(aud, list):
            message = f"token's audience is a list {show(aud)}; it must be the single " \
                      f"string {audience!r}"
        elif not isinstance(aud, str):
            message = f"the 'aud' claim is {describe_type(aud)}, expected a string"
        else:
            message = f"token has audience {aud!r}, expected {audience!r}"
        checks.append(Check("aud", "token", False, audience, aud, message))
    if provider is not None:
        for spec in (*provider.required_claims, *provider.optional_claims):
            try:
                value = claim_value(claims, spec.name, spec.type)
            except EvalError as exc:
                checks.append(Check(f"claims.{spec.name}", "token", False, spec.type,
                                    claims.get(spec.name), str(exc)))
                continue
            if value is None and spec.category != "optional":
                checks.append(Check(f"claims.{spec.name}", "token", False, spec.type, None,
                                    f"missing claim '{spec.name}'"))
    return checks


def _candidate(publisher: CheckedPublisher, claims: Mapping[str, Any],
               decision: Decision | None) -> Candidate:
    """The candidate of `publisher` for `claims`. Without `decision` (not made yet), it is
    not `chosen`."""
    chosen = decision is not None and decision.allowed and \
        decision.publisher == publisher.label
    return Candidate(publisher.label, publisher.provider.name, publisher.projects,
                     publisher.pending, chosen, _checks(publisher, claims))


def _checks(publisher: CheckedPublisher, claims: Mapping[str, Any]) -> tuple[Check, ...]:
    """A candidate's rows."""
    return tuple(Check(*fields) for fields in _rows(publisher, claims))


def _rows(publisher: CheckedPublisher, claims: Mapping[str, Any],
          explainer: Explainer | None = None,
          identity: frozenset[str] | None = None,
          lookups: list[_Lookup] | None = None,
          rules_seen: _RulesSeen | None = None) -> list[_Fields]:
    """The fields of a candidate's rows: `explainer`, one for these claims and the
    publisher's provider, shared by the candidates ranked (it keeps each node's value and
    each rule's result); `identity`: `identity_checks` of its provider, and `lookups`:
    `_lookups` of the explainer, worked out once for them; `rules_seen`, kept with the
    explainer: per rule (by id, the rule kept with it), its row's result and words, for
    the rules shared by many publishers (bound once for the same values)."""
    provider = publisher.provider
    if identity is None:
        identity = identity_checks(provider)
    if explainer is None:
        explainer = Explainer(claims, provider.claim_types)
    if lookups is None:
        lookups = _lookups(provider, explainer)
    raw = _raw_rows(publisher, claims, explainer, lookups, rules_seen)
    aside = provider.case_aside
    identity_ok = _identity_ok(raw, identity, aside)
    return [_fields(row, identity, identity_ok, aside) for row in raw]


# A row as `_raw_rows` gives it: its name, kind, result, its expectation in words ("" for
# `show(expected)`), whether the result was found kept (`rules_seen`, `keys_seen`): the
# same object for other publishers, and `Explainer.expected_again` of its result (`compact`)
# or None.
_Again = tuple[Callable[[Any], Any], Any]
_Raw = tuple[str, str, RuleResult, str, bool, _Again | None]
# Per rule (by id, the rule kept with it): its result, words and `_Again` (`_rows`).
_RulesSeen = dict[int, tuple["A.Rule | DeferredRule", RuleResult, str, _Again | None]]
# Per lookup key and publisher value (its position, the value's class, the value): its
# result and words.
_KeysSeen = dict[tuple[int, type, Any], tuple[RuleResult, str]]


def _raw_rows(publisher: CheckedPublisher, claims: Mapping[str, Any], explainer: Explainer,
              lookups: list[_Lookup], rules_seen: _RulesSeen | None = None,
              keys_seen: _KeysSeen | None = None, compact: bool = False) -> list[_Raw]:
    """The results of a candidate's rows (`_rows`): its lookup keys', then its rules'.
    `keys_seen`, kept with the explainer: each key's result per publisher value;
    `compact`: each result's `Explainer.expected_again`, for a caller that keeps it."""
    provider = publisher.provider
    raw: list[_Raw] = []
    for number, ((name, read, actual, value, had), wanted) in enumerate(
            zip(lookups, publisher.key_values, strict=True)):
        key: tuple[int, type, Any] | None = None
        if keys_seen is not None:
            key = (number, wanted.__class__, wanted)
            try:
                known = keys_seen.get(key)
            except TypeError:  # a value that cannot be hashed: not kept
                key, known = None, None
            if known is not None:
                raw.append((name, "lookup", known[0], known[1], True, None))
                continue
        word = ""
        if not read:
            result = RuleResult(name, False, wanted, None, had)
        elif value == lookup_value(wanted):
            result = RuleResult(name, True, wanted, actual, had)
        else:
            word = show(wanted)
            result = RuleResult(name, False, wanted, actual, f"{had}, publisher expects {word}")
        raw.append((name, "lookup", result, word, False, None))
        if key is not None and keys_seen is not None:
            if len(keys_seen) >= _RULES_SEEN:
                keys_seen.clear()
            keys_seen[key] = (result, word)
    rules: tuple[A.Rule | DeferredRule, ...] = publisher.rules \
        if rules_seen is None or publisher.own_rules is not None \
        else bind_rules_deferred(provider.rules, publisher.fields)
    for each in rules:
        if rules_seen is not None:
            seen = rules_seen.get(id(each))
            if seen is not None and seen[0] is each:
                raw.append((each.name, "rule", seen[1], seen[2], True, seen[3]))
                continue
        if each.__class__ is DeferredRule:
            assert isinstance(each, DeferredRule)
            found = explainer.deferred(each)
            if found is not None:  # failed: the words are the result's own
                word = _expectation(None, found)
                again = explainer.expected_again(each, found) if compact else None
                raw.append((each.name, "rule", found, word, False, again))
                if rules_seen is not None:
                    if len(rules_seen) >= _RULES_SEEN:
                        rules_seen.clear()
                    rules_seen[id(each)] = (each, found, word, again)
                continue
            rule = each.rule()
        else:
            assert isinstance(each, A.Rule)
            rule = each
        result = explainer.rule(rule)
        if result.passed and result.actual is None and claims.get(rule.name) is not None:
            # a rule named after the claim it checks: show what the token had
            result = RuleResult(rule.name, True, result.expected, claims[rule.name],
                                result.message)
        excluded = explainer.excluded(rule) if result.passed else None
        word = (f"anything but {show(excluded)}" if excluded is not None
                else _expectation(rule, result))
        raw.append((rule.name, "rule", result, word, False, None))
        if rules_seen is not None:
            if len(rules_seen) >= _RULES_SEEN:
                rules_seen.clear()
            rules_seen[id(each)] = (each, result, word, None)
    return raw


def _shares(name: str, r: RuleResult, aside: frozenset[str]) -> bool:
    """An identity check passed, or failed only on the case of `exact_case` names (in
    `aside`): the token's holder has those names already, so may be told their
    spelling."""
    return r.passed or (name in aside and differs_only_in_case(r.expected, r.actual))


def _identity_ok(raw: list[_Raw], identity: frozenset[str],
                 aside: frozenset[str]) -> bool:
    """Whether each identity check of a candidate's rows `_shares`."""
    return all(_shares(row[0], row[2], aside) for row in raw if row[0] in identity)


def _fields(row: _Raw, identity: frozenset[str], identity_ok: bool,
            aside: frozenset[str]) -> _Fields:
    """A row's fields, as `Check` takes them."""
    name, kind, r, word, _, _ = row
    is_identity = name in identity
    return (name, kind, r.passed, r.expected, r.actual, r.message, is_identity,
            identity_ok and (not is_identity or (not r.passed and _shares(name, r, aside))),
            word or ("" if r.expected is None else show(r.expected)))


# At most this many rules' rows kept by `_rows` (`rules_seen`), with one explainer.
_RULES_SEEN = 1024


# A lookup key as the token gives it: its row's name, whether it could be read, the value
# read, its `lookup_value`, and the message ("token has X", or why it cannot be read).
_Lookup = tuple[str, bool, Any, Any, str]


def _lookups(provider: CheckedProvider, explainer: Explainer) -> list[_Lookup]:
    """Each lookup key of `provider` read from the explainer's claims (the same for every
    publisher of the provider)."""
    found: list[_Lookup] = []
    for key in provider.keys:
        name = sys.intern(f"lookup.{key.label}")  # one string for every candidate's row
        try:
            actual = explainer.interpreter.value(key.claims_side)
        except EvalError as exc:
            found.append((name, False, None, None,
                          f"cannot read {key.label} from the token: {exc}"))
            continue
        found.append((name, True, actual, lookup_value(actual), f"token has {show(actual)}"))
    return found


# A row's fields, as `Check` takes them.
_Fields = tuple[str, str, bool, Any, Any, str, bool, bool, str]


_EXPECTS = re.compile(r"publisher expects (.+)$")


def _expectation(rule: A.Rule | None, result: RuleResult) -> str:
    """What the rule expects, in words: "'pypi' (ignoring case)", "anything but 'x'" (the
    rule is read for a result that passed only)."""
    if not result.passed:
        found = _EXPECTS.search(result.message)
        if found:
            return found.group(1)
        return "" if result.expected is None else show(result.expected)
    assert rule is not None
    last = rule.requires[-1].condition if rule.requires else None
    if isinstance(last, A.Compare) and last.op == "!=" and result.expected is not None:
        return f"anything but {show(result.expected)}"
    if result.expected is None:
        return ""
    lowered = isinstance(last, A.Compare) and any(
        isinstance(side, A.Call) and side.function == "lower" for side in (last.left, last.right))
    return show(result.expected) + (" (ignoring case)" if lowered else "")


def _score(identity_passed: int, passed: int, pending: bool,
           position: int) -> tuple[int, int, bool, int]:
    """How a candidate ranks among those not chosen: identity checks passed, then checks
    passed (most first), normal before pending, then the file's order."""
    return (-identity_passed, -passed, pending, position)


class _Ranking:
    """The candidates of one provider's publishers, made as the publishers are handed
    over in the file's order (`add`), then ranked once the decision is known (`ranked`).

    Nothing of a publisher is kept but its candidate, held compact (`_Kept`) until it is
    read: its rows are shared with the other candidates' when equal (most passing rows
    are: the same workflow, environment, event), and a failed row's message, "HAD,
    publisher expects EXPECTATION", is kept as its head, shared by the rows of the same
    claim (the token's value is the same for every candidate), and its expectation, which
    the row holds anyway; such a row is kept without its expected value (the candidate
    keeps those: its `values`), the same for the candidates whose rows differ only in
    those values, and the tuple of its rows is shared likewise. With `keep`, also the
    `keep` publishers ranked first so far without being chosen (those the fixes are for: a
    denial chooses none). The explainer, which keeps each node's value and each bound
    rule's result, is made anew every `_RENEW` publishers: its memory stays bounded, the
    values it keeps being the same anew."""

    _RENEW = 256
    _ROWS = 4096

    def __init__(self, provider: CheckedProvider, claims: Mapping[str, Any],
                 request: Mapping[str, Any] | None, keep: int = 0) -> None:
        self.name = provider.name
        self.asked = _with_request(claims, request)
        self.keep = keep
        self.kept_candidates: list[_Kept] = []
        # (identity passed, passed, not pending, -position): the smallest is the worst
        # of the publishers kept for fixes, at the heap's top
        self.best: list[tuple[tuple[int, int, bool, int], CheckedPublisher]] = []
        self._explainers: dict[int, tuple[CheckedProvider, Explainer, frozenset[str],
                                          list[_Lookup], _RulesSeen, _KeysSeen]] = {}
        self._made = 0
        # per whether the identity checks of the candidate `_shares`: `add`'s rows
        self._kept_rows: tuple[dict[int, tuple[RuleResult, Check, int, Any]], ...] = ({}, {})
        self._rows: dict[_Fields, Check] = {}
        self._split_rows: tuple[dict[_Fields, Check], ...] = ({}, {}, {}, {})
        self._heads: dict[str, str] = {}
        # a candidate's `_Rows`, by the ids of its rows (kept with them)
        self._templates: dict[tuple[int, ...], _Rows] = {}
        # each row kept split, made whole with an expected value (by the row's id and the
        # value; the row kept with it, so that its id stays its own): most are shared by
        # the candidates of the same owner, ranked side by side
        self._made_rows: dict[tuple[int, Any], tuple[Check, Check]] = {}

    def add(self, publisher: CheckedPublisher) -> None:
        """Rank `publisher` if it is of the provider: its candidate, checked now."""
        provider = publisher.provider
        if provider.name != self.name:
            return
        held = self._explainers.get(id(provider))
        if held is None or self._made >= self._RENEW:
            if self._made >= self._RENEW:
                self._explainers.clear()
                self._made = 0
                self._kept_rows = ({}, {})
            # one explainer per provider object (its claim types), kept with it
            explainer = Explainer(self.asked, provider.claim_types, bound_only=True)
            held = self._explainers[id(provider)] = (
                provider, explainer, identity_checks(provider), _lookups(provider, explainer),
                {}, {})
        self._made += 1
        _, explainer, identity, lookups, rules_seen, keys_seen = held
        raw = _raw_rows(publisher, self.asked, explainer, lookups, rules_seen, keys_seen,
                        compact=True)
        aside = provider.case_aside
        identity_ok = _identity_ok(raw, identity, aside)
        # the rows of results found kept, as kept (by the result's id, the result kept
        # with them): one look-up for most rows of a publisher
        kept_rows = self._kept_rows[identity_ok]
        rows: list[Check] = []
        values: list[Any] = []
        split = identities = passed = 0
        for number, row in enumerate(raw):
            result = row[2]
            if row[4]:
                known = kept_rows.get(id(result))
                if known is None or known[0] is not result:
                    if len(kept_rows) >= self._ROWS:
                        kept_rows.clear()
                    known = kept_rows[id(result)] = (
                        result, *self._row(_fields(row, identity, identity_ok, aside), row[5]))
                made, code, value = known[1], known[2], known[3]
            else:
                made, code, value = self._row(_fields(row, identity, identity_ok, aside),
                                              row[5])
            if result.passed:
                passed += 1
                if row[0] in identity:
                    identities += 1
            if code:
                split |= code << 2 * number
                values.append(value)
            rows.append(made)
        key = tuple(map(id, rows))
        template = self._templates.get(key)
        if template is None:  # (one found holds the rows of these ids: the same rows)
            if len(self._templates) >= self._ROWS:
                self._templates.clear()
            # each row is kept one way (split or whole), its counts are its own
            template = self._templates[key] = (tuple(rows), split, identities, passed)
        position = len(self.kept_candidates)
        pending = publisher.pending
        self.kept_candidates.append((publisher.label, publisher.projects, pending, template,
                                     *values))
        if self.keep:
            key = (identities, passed, not pending, -position)
            if len(self.best) < self.keep:
                heapq.heappush(self.best, (key, publisher))
            elif key > self.best[0][0]:
                heapq.heapreplace(self.best, (key, publisher))

    def _row(self, fields: _Fields, again: _Again | None = None) -> tuple[Check, int, Any]:
        """A row as kept, how (`_whole`'s code: 0 when kept whole), and the value the
        candidate keeps for it: a failed row whose message is "HEAD, publisher expects
        EXPECTATION" is kept split, its expected value None, the candidate keeping that
        value; or, with `again` (`Explainer.expected_again`), its expected value that
        function, the candidate keeping what it is given."""
        if fields[2]:
            return self._shared(fields, self._rows), 0, None
        message, expectation = fields[5], fields[8]
        if expectation and message.endswith(expectation) and message.endswith(
                _SEP, 0, len(message) - len(expectation)):
            head = message[:len(message) - len(expectation) - len(_SEP)]
            heads = self._heads
            known = heads.get(head)
            if known is None:
                if len(heads) >= self._ROWS:
                    heads.clear()
                known = heads[head] = head
            code = _derived(expectation, fields[3])
            make, value = (None, fields[3]) if again is None else again
            return self._shared(
                (*fields[:3], make, fields[4], known, fields[6], fields[7],
                 "" if code > 1 else expectation), self._split_rows[code]), code, value
        return self._shared(fields, self._rows), 0, None

    def _shared(self, fields: _Fields, rows: dict[_Fields, Check]) -> Check:
        """The row of these fields: the one made lately for equal fields, if any (one
        object for both; the rows kept to be shared are at most `_ROWS`: those of one
        publisher's own values are not)."""
        try:
            known = rows.get(fields)
        except TypeError:  # a list or mapping among its values: not shared
            return Check(*fields)
        if known is None:
            if len(rows) >= self._ROWS:
                rows.clear()
            known = rows[fields] = Check(*fields)
        return known

    def kept(self) -> dict[str, CheckedPublisher]:
        """The publishers kept for fixes, by label."""
        return {publisher.label: publisher for _, publisher in self.best}

    def candidate(self, position: int, chosen: bool, fixes: tuple[Fix, ...]) -> Candidate:
        """The candidate of the publisher handed over at `position`, its rows whole."""
        kept = self.kept_candidates[position]
        label, projects, pending, (rows, split, _, _) = kept[:4]
        if split:
            values = kept[4:]
            made = self._made_rows
            whole = list(rows)
            number = taken = 0
            while split:
                if split & 3:
                    row, value = whole[number], values[taken]
                    taken += 1
                    try:
                        found = made.get((id(row), value))
                    except TypeError:  # a value that cannot be hashed: not kept
                        found = (row, _whole(row, split & 3, value))
                    if found is None or found[0] is not row:
                        if len(made) >= self._ROWS:
                            made.clear()
                        found = made[(id(row), value)] = (row, _whole(row, split & 3, value))
                    whole[number] = found[1]
                split >>= 2
                number += 1
            rows = tuple(whole)
        return Candidate(label, self.name, projects, pending, chosen, rows, fixes)

    def ranked(self, decision: Decision) -> _Candidates:
        """The candidates, the chosen one first, then by `_score`."""
        kept = self.kept_candidates
        chosen = -1
        if decision.allowed:
            chosen = next((i for i, k in enumerate(kept) if k[0] == decision.publisher), -1)

        def score(position: int) -> tuple[Any, ...]:
            k = kept[position]
            return (position != chosen, *_score(k[3][2], k[3][3], k[2], position))

        return _Candidates(self, array("l", sorted(range(len(kept)), key=score)), chosen)


# The rows of a candidate as `_Ranking` keeps them (shared by the candidates of the same
# rows): the rows, split (two bits a row, `_whole`'s code), identity checks passed, checks
# passed.
_Rows = tuple[tuple[Check, ...], int, int, int]
# A candidate as `_Ranking` keeps it: label, projects, pending, its `_Rows`, then the
# expected values of the rows kept split, in order.
_Kept = tuple[Any, ...]
_SEP = ", publisher expects "
_ONE_OF = "one of "


def _derived(expectation: str, expected: Any) -> int:
    """How a failed row's expectation is kept (`_whole`'s code, at least 1): 2 when it is
    `show(expected)`, 3 when it is "one of " and that, else 1 (kept as it is)."""
    if expected.__class__ is str:
        return 2 if expectation == show(expected) else 1
    if expected.__class__ is list and expectation.startswith(_ONE_OF) \
            and expectation[len(_ONE_OF):] == show(expected):
        return 3
    return 1


def _whole(row: Check, code: int, value: Any) -> Check:
    """A row as `_Ranking` keeps it made whole (`code` at least 1) with the value its
    candidate keeps for it: its expected value, or what the row's `expected` (a function:
    `Explainer.expected_again`'s) makes it from. The row holds its message's head (the
    message is head + _SEP + expectation), and its expectation (1), or the expectation is
    `show(expected)` (2), or "one of " and that (3)."""
    make = row.expected
    expected = value if make is None else make(value)
    expectation = row.expectation if code == 1 else show(expected) if code == 2 \
        else _ONE_OF + show(expected)
    return Check(row.name, row.kind, row.passed, expected, row.actual,
                 row.message + _SEP + expectation, row.identity, row.disclosable,
                 expectation)


class _Candidates(Sequence[Candidate]):
    """The candidates of a `_Ranking` in their rank order, each made whole when it is
    read (`_Ranking.candidate`): ten thousand of them are held compact, not as objects.
    Equal to any sequence of the same candidates (a tuple of them)."""

    __slots__ = ("_chosen", "_fixes", "_order", "_ranking")

    def __init__(self, ranking: _Ranking, order: array[int], chosen: int,
                 fixes: dict[int, tuple[Fix, ...]] | None = None) -> None:
        self._ranking = ranking
        self._order = order
        self._chosen = chosen
        self._fixes = {} if fixes is None else fixes

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, index: int) -> Candidate: ...

    @overload
    def __getitem__(self, index: slice) -> _Candidates: ...

    def __getitem__(self, index: int | slice) -> Candidate | _Candidates:
        if isinstance(index, slice):
            return _Candidates(self._ranking, self._order[index], self._chosen, self._fixes)
        return self._made(self._order[index])

    def __iter__(self) -> Iterator[Candidate]:
        return map(self._made, self._order)

    def _made(self, position: int) -> Candidate:
        return self._ranking.candidate(position, position == self._chosen,
                                       self._fixes.get(position, ()))

    def with_fixes(self, rank: int, fixes: tuple[Fix, ...]) -> None:
        """Give the candidate at `rank` its fixes (while the advice is made)."""
        self._fixes[self._order[rank]] = fixes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


def _guess_provider(policy: Policy | Mapping[str, CheckedProvider],
                    claims: Mapping[str, Any]) -> CheckedProvider | None:
    """For an unknown issuer: the provider all of whose required claims the token has."""
    providers = policy.providers if isinstance(policy, Policy) else policy
    best: tuple[int, CheckedProvider] | None = None
    for provider in providers.values():
        names = [s.name for s in provider.required_claims]
        if names and all(name in claims for name in names) and (
                best is None or len(names) > best[0]):
            best = (len(names), provider)
    return best[1] if best else None


# ------------------------------------------------------------------------- fixes
def _with_fixes(publisher: CheckedPublisher) -> CheckedProvider:
    """The publisher's provider; for a compiled policy, whose provider block is only a
    header (no rules, so no fixes), the shipped provider of that name when its fields are
    the same."""
    provider = publisher.provider
    if provider.rules:
        return provider
    from tppolicy.language.providers import load_providers

    shipped = load_providers().get(provider.name)
    if shipped is not None and set(shipped.fields) == set(provider.fields):
        return shipped
    return provider


class _Advisor:
    """The fixes of one candidate, from its provider file's `fix` clauses.

    A failed rule gets the first of its fixes that applies to the token; a failed lookup
    key, the first that applies among the fixes of the rules reading its field (in rule
    order, passing rules too: a lookup compares exactly where a rule may ignore case).
    A failed rule none of whose fixes applies is covered by another rule's fix; when no fix
    applies at all, each failed check gets a plain one. The same text is given once.
    """

    def __init__(self, publisher: CheckedPublisher, claims: Mapping[str, Any],
                 candidate: Candidate, request: Mapping[str, Any] | None = None) -> None:
        self.publisher = publisher
        self.provider = _with_fixes(publisher)
        self.claims = claims
        self.request = request
        self.candidate = candidate
        self.failed = {c.name: c for c in candidate.checks if not c.passed}
        self.fixes: list[Fix] = []

    def add(self, check: str, where: str | None, text: str) -> None:
        if any(fix.text == text for fix in self.fixes):
            return
        row = self.failed.get(check)
        disclosable = row.disclosable if row is not None else True
        self.fixes.append(Fix(check, where or "publisher or workflow", text, disclosable))

    def _first(self, rule: str) -> tuple[str | None, str] | None:
        return fix_for(self.provider.fixes.get(rule, ()), self.claims,
                       self.provider.claim_types, self.publisher.fields, self.request)

    def run(self) -> tuple[Fix, ...]:
        silent: list[Check] = []
        rules = [c for c in self.candidate.checks if c.kind == "rule" and not c.passed]
        for check in rules:
            found = self._first(check.name)
            if found is not None:
                self.add(check.name, *found)
            elif check.name not in self.provider.fixes:
                silent.append(check)
        keys = {k.label: k for k in self.provider.keys}
        for check in self.candidate.checks:
            if check.kind != "lookup" or check.passed:
                continue
            key = keys.get(check.name.removeprefix("lookup."))
            read = A.fields_read(key.publisher_side) if key is not None else set()
            readers = [rule.name for rule in self.provider.rules
                       if read & {f for req in rule.requires
                                  for f in A.fields_read(req.condition)}]
            found = next(filter(None, map(self._first, readers)), None)
            if found is not None:
                self.add(check.name, *found)
            elif not {c.name for c in rules} & set(readers):
                silent.append(check)  # no failed rule of its field covers it
        if not self.fixes:
            silent += [c for c in rules if c not in silent]
        for check in silent:
            self.add(check.name, None, f"{check.name}: {check.message}. Change the publisher "
                     "or the CI job so that they agree.")
        return tuple(self.fixes)


def _token_fixes(checks: list[Check], claims: Mapping[str, Any], audience: str,
                 provider: CheckedProvider | None, guessed: bool,
                 providers: Mapping[str, CheckedProvider]) -> list[Fix]:
    fixes: list[Fix] = []
    for check in checks:
        if check.passed:
            continue
        if check.name == "iss":
            fixes.append(Fix("iss", _issuer_where(claims), _issuer_fix(
                claims, provider, guessed, check, providers)))
        elif check.name == "aud":
            aud = claims.get("aud")
            if isinstance(aud, str) and aud in ("pypi", "testpypi"):
                index = "TestPyPI" if aud == "testpypi" else "PyPI"
                text = (f"The token was requested for {index} (audience {aud!r}), but it is "
                        f"checked for {audience!r}. PyPI and TestPyPI have separate "
                        f"publishers and audiences: request the token for {audience!r}, or "
                        f"run with --audience {aud} to check it against {index}.")
            elif isinstance(aud, list):
                text = (f"The token's audience is a list; PyPI accepts only the single string "
                        f"{audience!r}. Request the token for that one audience.")
            else:
                text = (f"The token was requested for audience {show(aud)}, expected "
                        f"{audience!r}. Request it for {audience!r} (PyPI: 'pypi', TestPyPI: "
                        f"'testpypi'; e.g. `python -m id {audience}`), or run with "
                        f"--audience {aud} if you are checking for another index.")
            fixes.append(Fix("aud", "token", text))
        elif check.name.startswith("claims."):
            claim = check.name.removeprefix("claims.")
            token = f"{provider.name} token" if provider else "token"
            if _always_carried(provider, claim):
                fact, then = (f"every {token} carries it with type {check.expected}",
                              f"check that '{claim}' is there")
            else:  # the provider file declares it `optional`: only its type is checked
                fact, then = (f"a {token} may leave it out (its provider file declares it "
                              f"optional), but when it carries it, its type is "
                              f"{check.expected}", f"check the value of '{claim}'")
            fixes.append(Fix(check.name, "token",
                             f"{check.message}: {fact}. Pass the token's complete decoded "
                             f"claims (`python -m id -d {audience}` prints them) and {then}."))
    return fixes


def _always_carried(provider: CheckedProvider | None, claim: str) -> bool:
    """Whether the provider file says every token carries `claim` (declared `required` or
    `present` in its `claims` block), not that a token may leave it out (`optional`)."""
    spec = provider.claims.get(claim) if provider is not None else None
    return spec is not None and spec.category in ("required", "present")


def _claims_fact(provider: CheckedProvider | None, claims: Sequence[str]) -> str:
    """What the provider file declares of these claims: which every token carries, which
    it may leave out, and that each it carries has its declared type."""
    token = f"{provider.name + ' ' if provider else ''}token"
    always = [c for c in claims if _always_carried(provider, c)]
    if len(always) == len(claims):
        return f"every {token} carries these claims with these types"
    rest = _quoted([c for c in claims if c not in always])
    carries = f"every {token} carries {_quoted(always)}, and" if always else f"a {token}"
    return (f"{carries} may leave out {rest} (its provider file declares "
            f"{'it' if len(claims) - len(always) == 1 else 'them'} optional), but each claim "
            "it carries has the type its provider file declares")


def _quoted(names: Sequence[str]) -> str:
    quoted = [f"'{name}'" for name in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def _issuer_where(claims: Mapping[str, Any]) -> str:
    return "operator" if isinstance(claims.get("iss"), str) else "token"


def _issuer_fix(claims: Mapping[str, Any], provider: CheckedProvider | None, guessed: bool,
                check: Check, providers: Mapping[str, CheckedProvider]) -> str:
    issuer = claims.get("iss")
    if not isinstance(issuer, str):
        return (f"{check.message}: these do not look like the claims of an OIDC token. Pass "
                "the decoded claims of the token the CI job received.")
    if not issuer:  # not "the issuer ''": words, and no provider guessed from the rest
        return ("The token's iss claim is empty, but every OIDC token names its issuer: these "
                "claims are incomplete or altered. Pass the decoded claims of the token the CI "
                "job received.")
    # GitHub's own issuer: that of the providers reading GitHub Actions workflows.
    github = next((i for p in providers.values() if p.workflows == "github_actions"
                   for i in p.issuers), None)
    ghe_slug = github is not None and issuer.startswith(github + "/")
    ghes = issuer.endswith("/_services/token")
    if github is not None and (ghe_slug or ghes or (
            provider is not None and guessed and provider.workflows == "github_actions")):
        what = ("an enterprise's unique issuer (GitHub Enterprise Cloud's custom issuer "
                "setting adds the enterprise's slug)" if ghe_slug else
                "GitHub Enterprise Server" if ghes else "an unknown GitHub issuer")
        return (f"The token comes from {what}: {show(issuer)}. PyPI accepts only GitHub.com's "
                f"issuer {github!r} and does not support GitHub Enterprise "
                "(pypi/warehouse#18970). Publish from a repository on GitHub.com"
                + (", or turn the enterprise's custom issuer off" if ghe_slug else "") + ".")
    if provider is not None and guessed and provider.ast.custom_issuers:
        return (f"The token looks like a {provider.name} token from an instance that is not "
                f"registered: {show(issuer)}. Register it with --issuer "
                f"{cut_middle(issuer)}={provider.name} "
                "(on PyPI: an organization's custom issuer, for self-managed GitLab), and name "
                "it in the publisher's issuer_url.")
    known = ", ".join(check.expected) if isinstance(check.expected, list) else ""
    return (f"No provider trusts the issuer {show(issuer)} (known: {known}). Is this a token from "
            "a CI system PyPI supports (GitHub Actions, GitLab CI/CD, Google Cloud, "
            "ActiveState)?")


# ------------------------------------------------------------------------ advise
def advise(policy: Policy, claims: Mapping[str, Any], *, audience: str = "pypi",
           fixes_for: int = 3, request: Mapping[str, Any] | None = None) -> Advice:
    """Explain the decision on `claims`: checks of the token itself, every publisher of its
    provider ranked by how close it came, and fixes for the first `fixes_for` of them.
    `request` holds the values the caller supplies with the upload (`request.version`, as
    `tppolicy check --upload-version` gives it), for the rules and fixes that read them."""
    decision = policy.evaluate(claims, audience=audience, explain=True, request=request)
    provider, guessed, known = _token_provider(policy.issuers, policy.providers, claims)
    ranking = _Ranking(provider, claims, request) if provider is not None else None
    if ranking is not None:
        for publisher in policy.publishers:
            ranking.add(publisher)
    by_label = {p.label: p for p in policy.publishers}
    return _advice(policy, decision, claims, audience, provider, guessed, known, ranking,
                   by_label, fixes_for, request)


def advise_publishers(text: str, source: str, claims: Mapping[str, Any], *,
                      providers: Mapping[str, CheckedProvider] | None = None,
                      issuers: Mapping[str, str] | None = None, audience: str = "pypi",
                      fixes_for: int = 3,
                      request: Mapping[str, Any] | None = None) -> Advice:
    """`advise` on the policy of a publishers file's text (as `compile_publishers_text`
    reads it, raising its errors), the same Advice, without holding that policy: the file
    is read as a stream, each publisher ranked as it is checked, and only the publishers
    the decision reads (`compile_publishers_for_claims`) and those given fixes are kept.
    A file that cannot be read as a stream is read whole."""
    from tppolicy.decide.core import Decider
    from tppolicy.decide.load import compile_publishers_text, stream_publishers_for_claims
    from tppolicy.errors import ConfigError
    from tppolicy.language.providers import load_providers
    from tppolicy.readers.yaml import compose_yaml

    providers = load_providers() if providers is None else providers
    trusted = {issuer: index.checked.name
               for issuer, index in Decider(providers, issuers).issuers.items()}
    provider, guessed, known = _token_provider(trusted, providers, claims)
    ranking = _Ranking(provider, claims, request, max(fixes_for, 0)) \
        if provider is not None else None
    policy = stream_publishers_for_claims(text, source, claims,
                                          ranking.add if ranking is not None else _skip,
                                          providers=providers, issuers=issuers)
    if policy is None:  # read whole: every problem reported, or what the stream leaves out
        policy = compile_publishers_text(text, source, providers=providers, issuers=issuers,
                                         document=compose_yaml(text, source, ConfigError))
        return advise(policy, claims, audience=audience, fixes_for=fixes_for,
                      request=request)
    decision = policy.evaluate(claims, audience=audience, explain=True, request=request)
    return _advice(policy, decision, claims, audience, provider, guessed, known, ranking,
                   ranking.kept() if ranking is not None else {}, fixes_for, request)


def _skip(publisher: CheckedPublisher) -> None:
    """A publisher no candidate is made of (the token has no provider)."""


def _token_provider(issuers: Mapping[str, str], providers: Mapping[str, CheckedProvider],
                    claims: Mapping[str, Any]) -> tuple[CheckedProvider | None, bool, bool]:
    """The provider of the token's issuer (`issuers`: every trusted issuer's provider), or
    the one its claims are guessed to be of; whether guessed; whether the issuer is known."""
    issuer = claims.get("iss")
    name = issuers.get(issuer) if isinstance(issuer, str) else None
    if name is not None:
        return providers[name], False, True
    provider = _guess_provider(providers, claims)
    return provider, provider is not None, False


def _advice(policy: Policy, decision: Decision, claims: Mapping[str, Any], audience: str,
            provider: CheckedProvider | None, guessed: bool, known: bool,
            ranking: _Ranking | None, publishers: Mapping[str, CheckedPublisher],
            fixes_for: int, request: Mapping[str, Any] | None) -> Advice:
    """The Advice of `advise`, from its parts: `publishers` holds (by label) at least
    those of the candidates given fixes."""
    issuer = claims.get("iss")
    token_checks = _token_checks(provider, claims, audience, known, sorted(policy.issuers))
    ranked: Sequence[Candidate] = ()
    if ranking is not None:
        ranked = ranking.ranked(decision)
        if not decision.allowed:
            for rank in range(min(fixes_for, len(ranked))):
                candidate = ranked[rank]
                if not candidate.chosen:
                    ranked.with_fixes(rank, _Advisor(publishers[candidate.publisher], claims,
                                                     candidate, request).run())
    token_fixes = _token_fixes(token_checks, claims, audience, provider, guessed,
                               policy.providers)
    if provider is not None and not ranked and not decision.allowed:
        token_fixes.append(_other_provider_fix(policy, provider.name, issuer))
    return Advice(decision.allowed, decision, audience, provider.name if provider else None,
                  issuer if isinstance(issuer, str) else None, guessed, tuple(token_checks),
                  tuple(token_fixes), ranked, decision.notes)


def _other_provider_fix(policy: Policy, provider: str, issuer: Any) -> Fix:
    """The fix for a token whose provider has no publisher in the file: which provider
    issued it, and what the file holds."""
    held = sorted({p.provider.name for p in policy.publishers})
    return Fix("publisher", "publisher", (
        f"The token comes from {provider} (issuer {show(issuer)}), but no publisher "
        f"of this file is a {provider} publisher"
        + (f": it holds {', '.join(held)} publishers only" if held else
           ": it holds no publishers")
        + f". Add a {provider} publisher for the repository that ran the job, or "
          "check that this is the publishers file you meant."))


def decision_fixes(policy: Policy, decision: Decision, claims: Mapping[str, Any], *,
                   request: Mapping[str, Any] | None = None,
                   audience: str = "pypi") -> dict[str, Fix]:
    """What to change, by failed check (a rule's name, or lookup.FIELD), for a denial with a
    closest publisher: its provider file's fixes, with the values filled in. A denial
    before any publisher gets the fixes `explain` gives for the token itself (`iss`, `aud`
    checked for `audience`, `claims`: the first missing or mistyped claim's), and one for a
    provider none of whose publishers is in the file. For `tppolicy check` and whoever shows
    a decision; a front answering the token's holder keeps only the `disclosable`."""
    if decision.allowed:
        return {}
    if decision.closest is None:
        provider = decision.provider
        failed = {r.rule for r in decision.failed}
        if provider is not None and "publisher" in failed \
                and not any(p.provider.name == provider for p in policy.publishers):
            return {"publisher": _other_provider_fix(policy, provider, decision.issuer)}
        refused = next((r for r in decision.failed if r.rule == "request"), None)
        if refused is not None:
            return {"request": Fix("request", "operator", (
                f"{refused.message}. Request values are what the caller supplies with an "
                f"upload ({', '.join(sorted(REQUEST_VALUES))}): `tppolicy check "
                "--upload-version VERSION` (or `explain`'s) gives the version; an index "
                "takes it from the upload."))}
        if not failed & {"iss", "aud", "claims"}:
            return {}
        issuer = claims.get("iss")
        name = policy.issuers.get(issuer) if isinstance(issuer, str) else None
        checked = policy.providers[name] if name is not None else _guess_provider(policy, claims)
        checks = _token_checks(checked, claims, audience, name is not None, sorted(policy.issuers))
        found: dict[str, Fix] = {}
        for fix in _token_fixes(checks, claims, audience, checked, name is None and checked
                                is not None, policy.providers):
            rule = "claims" if fix.check.startswith("claims.") else fix.check
            if rule in failed:
                found.setdefault(rule, replace(fix, check=rule))
        bad = [c for c in checks if c.name.startswith("claims.") and not c.passed]
        if len(bad) > 1 and "claims" in found:  # one fix for every claims reason: all of them
            found["claims"] = replace(found["claims"], text=(
                f"{'; '.join(c.message for c in bad)}: "
                f"{_claims_fact(checked, [c.name.removeprefix('claims.') for c in bad])}. "
                "Pass the token's complete "
                f"decoded claims (`python -m id -d {audience}` prints them)."))
        return found
    publisher = next((p for p in policy.publishers if p.label == decision.closest), None)
    if publisher is None:
        return {}
    candidate = _candidate(publisher, _with_request(claims, request), decision)
    return {fix.check: fix for fix in _Advisor(publisher, claims, candidate, request).run()}


def record_fixes(provider: CheckedProvider, record: Record, decision: Decision,
                 claims: Mapping[str, Any], *,
                 request: Mapping[str, Any] | None = None) -> tuple[Fix, ...]:
    """`decision_fixes` for a host's publisher (an index `Record`, as a server's engine
    holds it) instead of a policy's: the same provider-file fixes `tppolicy check` prints,
    for a denial whose closest publisher is `record`. A server answering the token's holder
    shows only the `disclosable` ones, and only when the decision's disclosed view still
    names the publisher (the token shares its identity)."""
    if decision.allowed:
        return ()
    values = dict(zip(provider.fields, record.fields, strict=True))
    ast = A.Publisher(record.label, provider.name, record.projects, record.pending_project,
                      tuple(A.Binding(name, A.Literal(value)) for name, value in values.items()
                            if value is not None))
    publisher = CheckedPublisher(ast, provider, 0, values, record.rules, record.key,
                                 record.prefer, record.learns)
    candidate = _candidate(publisher, _with_request(claims, request), decision)
    return tuple(_Advisor(publisher, claims, candidate, request).run())


def _with_request(claims: Mapping[str, Any],
                  request: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The claims as the decision's rules read them: with the request values (the version
    being uploaded), so that the fixes' check of the publisher agrees with the decision."""
    return with_request(claims, request) if request else claims


def advise_token(policy: Policy, token: str, verifier: Verifier, *,
                 fixes_for: int = 3, request: Mapping[str, Any] | None = None) -> Advice:
    """`advise` for a signed token: verified first (no replay store: explaining a token
    does not use it up). A refused token is denied with its reason, and the publishers are
    still ranked on its unverified claims when they can be read. `request` as for
    `advise`."""
    from tppolicy.token.verify import TokenError, split_token

    try:
        verified = verifier.verify(token)
    except TokenError as refusal:
        reason = token_reason(refusal)
        check = Check("token", "token", False, refusal.expected, refusal.actual,
                      f"the token was refused ({refusal.code}): {refusal.message}")
        fix = Fix("token", "token", _refusal_fix(refusal.code, refusal.message))
        try:
            claims: dict[str, Any] | None = split_token(token, verifier.max_bytes)[1]
        except TokenError:
            claims = None
        denial = Decision(False, None, None, (), False, (reason,))
        if claims is None:
            return Advice(False, denial, verifier.audience, None, None,
                          token_checks=(check,), token_fixes=(fix,))
        advice = advise(policy, claims, audience=verifier.audience, fixes_for=fixes_for,
                        request=request)
        candidates = advice.candidates
        if advice.allowed:  # the claims would pass: give the closest publishers no fixes
            candidates = tuple(replace(c, chosen=False) for c in candidates)
        return replace(advice, allowed=False, decision=replace(
            denial, provider=advice.provider, issuer=advice.issuer),
            token_checks=(check, *advice.token_checks),
            token_fixes=(fix, *advice.token_fixes), candidates=candidates)
    return advise(policy, verified.claims, audience=verifier.audience, fixes_for=fixes_for,
                  request=request)


def _refusal_fix(code: str, message: str) -> str:
    if code == "expired":
        return (f"{message}. CI tokens live for minutes: explain a fresh one (decode it in the "
                "job, or save it as an artifact), or pass its decoded claims with --claims.")
    return (f"The token was refused before any publisher was looked at: {message}. The "
            "publishers below are ranked on its claims as they are, unverified.")
