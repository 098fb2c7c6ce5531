"""Rule-by-rule explanations: for a failed `require`, what was expected and what the
token had. Runs only when a decision is explained, never on the hot path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tppolicy.decide.decision import RuleResult
from tppolicy.language import ast as A
from tppolicy.language.bind import DeferredRule
from tppolicy.language.interpret import Interpreter, MemoInterpreter
from tppolicy.language.ops import REQUEST_KEY, REQUEST_VALUES, EvalError, op_lower, strict_equal
from tppolicy.memo import ByIdentity
from tppolicy.text import show

__all__ = ["Explainer", "differs_only_in_case", "show"]


def differs_only_in_case(expected: Any, actual: Any) -> bool:
    """Two strings that differ, but not once their ASCII letters are lowercased (as the
    language's `lower`): for a check the provider file declares `exact_case`, the same
    name spelled otherwise."""
    return (isinstance(expected, str) and isinstance(actual, str) and expected != actual
            and op_lower(expected) == op_lower(actual))


@dataclass(frozen=True, slots=True)
class _Failure:
    expected: Any
    actual: Any
    message: str


class Explainer:
    """Explains rules against one token's claims (for explanations, never hot)."""

    def __init__(self, claims: Mapping[str, Any], claim_types: Mapping[str, str], *,
                 bound_only: bool = False) -> None:
        """`bound_only`: every rule explained reads claims and literals only (bound): each
        node's value and each rule's result are kept, for many publishers' rules."""
        self.claims = claims
        self.interpreter = (MemoInterpreter if bound_only else Interpreter)(claims, claim_types)
        self._results: dict[int, tuple[A.Rule, RuleResult]] | None = {} if bound_only else None
        # per rule shape (`deferred`): [the shape, its plan or None, checked yet]
        self._plans: dict[int, list[Any]] = {}
        # `had` of a value (by id, the value kept with it): most are the claims' own
        self._had: dict[int, tuple[Any, str]] = {}

    def rule(self, rule: A.Rule) -> RuleResult:
        """The rule's result: the first failing `require`, or what passed."""
        if self._results is None:
            return self._rule(rule)
        known = self._results.get(id(rule))
        if known is None or known[0] is not rule:
            known = self._results[id(rule)] = (rule, self._rule(rule))
        return known[1]

    def _rule(self, rule: A.Rule) -> RuleResult:
        for require in rule.requires:
            try:
                if self.interpreter.boolean(require.condition):
                    continue
                failure = self.describe(require.condition)
            except EvalError as exc:
                failure = self._error_failure(require.condition, exc)
            return _failed(rule.name, require.message, failure, rule.identity)
        return RuleResult(rule.name, True, *self._passed(rule))

    def deferred(self, rule: DeferredRule) -> RuleResult | None:
        """`rule(rule.rule())` without making the rule's tree: from its shape and values,
        for a rule that fails on its last require, and that require a comparison of a
        claim with a value of the publisher's (`claims.repository == "o/r"`), or an `or`
        of such comparisons, each maybe after conditions that read no publisher value
        (`claims.ref != "" and claims.job_workflow_ref == "o/r/...@" + claims.ref`); the
        requires before it read none either. None otherwise (the caller makes the rule).
        The same code explains the failure (`_compared`, `_or_failure`), on the shape's
        tree with this publisher's values; each shape's way is checked once per explainer
        against the rule made (a safeguard)."""
        shape = rule.shape
        known = self._plans.get(id(shape))
        if known is None or known[0] is not shape:
            if len(self._plans) >= _PLANS:
                self._plans.clear()
            known = self._plans[id(shape)] = [shape, _plan(rule), False]
        plan = known[1]
        if plan is None:
            return None
        try:
            result = self._planned(plan, rule.values)
        except (EvalError, _Unfit):
            return None
        if result is not None and not known[2]:
            if self._rule(rule.rule()) != result:
                known[1] = None
                return None
            known[2] = True
        return result

    def expected_again(self, rule: DeferredRule, result: RuleResult
                       ) -> tuple[Callable[[Any], Any], Any] | None:
        """For `result`, what `deferred(rule)` gave for a rule failing on an `or` of
        comparisons (its expected value a list: the values each expects), how that list is
        made again from less: a function, and what to give it (the publisher's value the
        comparisons read, or a tuple of them); the function's value equals the result's
        expected value: the same values the same way, checked for the first rule of each
        shape (strings). For a caller keeping many results. None for any other rule, or
        when it cannot be made so."""
        known = self._plans.get(id(rule.shape))
        if known is None or known[0] is not rule.shape or known[1] is None \
                or result.expected.__class__ is not list:
            return None
        plan: _RulePlan = known[1]
        if len(known) < 4:
            known += [self._maker(plan), [False, False]]
        makers = known[3]
        if makers is None:
            return None
        values = rule.values
        start = plan[3]
        read = [values[start + i] for i in plan[8]]
        first = read[0] if read else None
        stored: Any = first
        way = 0 if first.__class__ is str and all(v == first for v in read) else 1
        make = makers[way]  # one value (read in several places), or each
        if way:
            stored = tuple(read)
        if not known[4][way]:  # checked once: the same values, the same way, after
            try:
                again = make(stored)
            except (EvalError, _Unfit):
                again = None
            if again.__class__ is not list or len(again) != len(result.expected) or not all(
                    a.__class__ is str and b.__class__ is str and a == b
                    for a, b in zip(again, result.expected, strict=True)):
                known[3] = None
                return None
            known[4][way] = True
        return make, stored

    def _maker(self, plan: _RulePlan
               ) -> tuple[Callable[[Any], Any], Callable[[Any], Any]] | None:
        """`expected_again`'s functions for the rules of a plan of an `or` (None when its
        expected values are not all there): per disjunct, the value its comparison
        expects, or the value a disjunct of no publisher value expects; given the one
        value of every place read, or a tuple of their values."""
        _, _, _, start, stop, single, _, disjuncts, used = plan
        if single:
            return None
        pieces: list[tuple[_ValueOf | None, Any]] = []
        for guard, comparison, expected_of in disjuncts:
            if guard is not None and not self._true(guard):
                pieces.append((None, self._describe_or_error(guard).expected))
            elif expected_of is None:
                pieces.append((None, self._describe_or_error(comparison).expected))
            else:
                pieces.append((expected_of, None))
        if any(f is None and value is None for f, value in pieces):
            return None
        # the values of the nodes of no publisher value it reads (a claim), kept
        values = Explainer(self.claims, self.interpreter.claim_types, bound_only=True)
        size = stop - start

        def made(own: Sequence[Any]) -> list[Any]:
            return [f(values, own) if f is not None
                    else list(value) if value.__class__ is list else value
                    for f, value in pieces]

        def one(stored: Any) -> list[Any]:
            own: list[Any] = [None] * size
            for index in used:
                own[index] = stored
            return made(own)

        def many(stored: Any) -> list[Any]:
            own: list[Any] = [None] * size
            for index, value in zip(used, stored, strict=True):
                own[index] = value
            return made(own)
        return one, many

    def _planned(self, plan: _RulePlan, values: Sequence[Any]) -> RuleResult | None:
        """`deferred` by its shape's plan: None when the rule passes (its result is then
        the rule's own); `EvalError` or `_Unfit` when a value cannot be read so."""
        name, fixed, message, start, stop, single, nodes, disjuncts, _ = plan
        boolean = self.interpreter.boolean
        for condition in fixed:
            if not boolean(condition):
                return None
        own = values[start:stop]
        parts: list[_Failure] = []
        for guard, comparison, expected_of in disjuncts:
            if guard is not None and not boolean(guard):  # the `and` fails on its guard
                parts.append(self._describe_or_error(guard))
                continue
            if expected_of is None:  # a condition of no publisher value
                if boolean(comparison):
                    return None
                parts.append(self._describe_or_error(comparison))
                continue
            assert isinstance(comparison, A.Compare)
            expected = expected_of(self, own)
            equal = strict_equal(self.interpreter.value(comparison.left), expected)
            if equal is (comparison.op == "=="):
                return None  # it holds: the rule passes
            if single:
                parts.append(self._compared_with(comparison, expected))
            else:  # `_compared_with`'s, but for its message, which `_or_shared` does not read
                assert isinstance(comparison.left, A.Claim)
                parts.append(_Failure(expected, self.claims.get(comparison.left.name), ""))
        if single:
            return _failed(name, message, parts[0], False)
        shared = self._or_shared(nodes, parts)
        return None if shared is None else _failed(name, message, shared, False)

    def _passed(self, rule: A.Rule) -> tuple[Any, Any, str]:
        last = rule.requires[-1].condition if rule.requires else A.Literal(True)
        sides = _sides(last)
        if sides is None:
            return None, None, "passed"
        claim_side, expected_side = sides
        try:
            expected = self.interpreter.value(expected_side)
            actual = self._actual(claim_side)
        except EvalError:
            return None, None, "passed"
        if _negative(last):  # `event_name != "pull_request_target"`: not what it expects
            expected = None
        return expected, actual, self.had(claim_side, actual)

    def excluded(self, rule: A.Rule) -> Any:
        """What a rule whose last condition is negative (`!=`, `not in`, `not ...`) rules
        out, e.g. 'pull_request_target'; None for any other rule or when it cannot be read.
        A passing rule's result leaves it out of `expected` (the token did not have to
        have it); explanations say "anything but" it."""
        last = rule.requires[-1].condition if rule.requires else None
        sides = _sides(last) if last is not None and _negative(last) else None
        if sides is None:
            return None
        try:
            return self.interpreter.value(sides[1])
        except EvalError:
            return None

    def had(self, claim_side: A.Expr | None, actual: Any) -> str:
        """What the token had, as a message starts: "token has 'x'"; for a value that is
        not there, which one ("token has no 'build_tag' claim", "no version given"), never
        "token has nothing"."""
        if actual is not None or claim_side is None:
            known = self._had.get(id(actual))
            if known is None or known[0] is not actual:
                if len(self._had) >= _PLANS:
                    self._had.clear()
                known = self._had[id(actual)] = (actual, f"token has {show(actual)}")
            return known[1]
        claims = {n.name for n in A.walk(claim_side) if isinstance(n, A.Claim)}
        requests = {n.name for n in A.walk(claim_side) if isinstance(n, A.Request)}
        if len(claims) == 1 and not requests:
            name = claims.pop()
            if name in self.claims:
                return f"token's {name!r} claim is null"
            return f"token has no {name!r} claim"
        if len(requests) == 1 and not claims:
            return f"no {requests.pop()} given"
        return f"token has {show(actual)}"

    def _actual(self, claim_side: A.Expr) -> Any:
        """What the token had: the raw claim when the side is a claim under lower()."""
        inner = claim_side
        if isinstance(inner, A.Call) and inner.function == "lower" and len(inner.args) == 1:
            inner = inner.args[0]
        if isinstance(inner, A.Claim):
            return self.claims.get(inner.name)
        return self.interpreter.value(claim_side)

    def _error_failure(self, condition: A.Expr, exc: EvalError) -> _Failure:
        sides = _sides(condition)
        expected = None
        if sides is not None:
            try:
                expected = self.interpreter.value(sides[1])
            except EvalError:
                expected = self._with_placeholders(sides[1])
        message = str(exc)
        if expected is not None:
            message += f", publisher expects {_expectation(condition, expected)}"
        actual = None
        if sides is not None:
            try:
                actual = self._actual(sides[0])
            except EvalError:
                actual = None
        return _Failure(expected, actual, message)

    def _with_placeholders(self, expr: A.Expr) -> Any:
        """`expr`'s value with each string request value the caller did not give as the
        placeholder `{NAME}` ('refs/tags/v{version}': what the token must match once the
        version is given); None when it still cannot be computed."""
        given = self.claims.get(REQUEST_KEY) or {}
        missing = {name: f"{{{name}}}" for name in A.requests_read(expr)
                   if given.get(name) is None and REQUEST_VALUES.get(name) == "string"}
        if not missing:
            return None
        claims = {**self.claims, REQUEST_KEY: {**given, **missing}}
        try:
            return Interpreter(claims, self.interpreter.claim_types).value(expr)
        except EvalError:
            return None

    def describe(self, condition: A.Expr) -> _Failure:
        """Why a condition that evaluated to false is false."""
        if condition.__class__ is A.Compare:  # most failed rows: a claim and a value
            assert isinstance(condition, A.Compare)
            if condition.left.__class__ is A.Claim and condition.right.__class__ is not A.Call:
                return self._compared(condition)
        match condition:
            case A.And(left=left, right=right):
                part = left if not self._true(left) else right
                return self._describe_or_error(part)
            case A.Or(left=left, right=right):
                disjuncts = _disjuncts(left, right)  # a new list each time: never changed
                return self._or_failure(disjuncts,
                                        [self._describe_or_error(p) for p in disjuncts])
        return self._described(condition)

    def _or_failure(self, disjuncts: list[A.Expr], parts: list[_Failure]) -> _Failure:
        """`describe` of a false `or` of these disjuncts, each described (`parts`)."""
        shared = self._or_shared(disjuncts, parts)
        if shared is not None:
            return shared
        expected, actual = self._alternatives(disjuncts, parts)
        return _Failure(expected, actual, "; and ".join(p.message for p in parts))

    def _or_shared(self, disjuncts: list[A.Expr], parts: list[_Failure]) -> _Failure | None:
        """`_or_failure` of equalities (or `and`s) each expecting a value, of the same value
        the token has (shown alike): "token has X, publisher expects one of [...]". None
        for any other `or`. The parts' messages are not read."""
        if len(parts) != len(disjuncts) or not all(
                (isinstance(p, A.Compare) and p.op == "==") or isinstance(p, A.And)
                for p in disjuncts):
            return None
        expectations = [p.expected for p in parts if p.expected is not None]
        if len(expectations) != len(parts):
            return None
        actual = parts[0].actual
        if any(p.actual is not actual for p in parts) \
                and len({show(p.actual) for p in parts}) != 1:
            return None
        expected: Any = expectations if len(expectations) > 1 else expectations[0]
        if actual is None:  # which value is missing: from the first disjunct's sides
            first = _sides(self._failing_part(disjuncts[0]))
            had = self.had(first[0] if first else None, actual)
        else:
            had = self.had(None, actual)  # (the sides are not read)
        return _Failure(expected, actual, _mismatch(actual, expectations)
                        or f"{had}, publisher expects one of {show(expectations)}")

    def _described(self, condition: A.Expr) -> _Failure:
        """`describe` of a condition neither `and` nor `or`: by its sides."""
        sides = _sides(condition)
        if sides is None:
            return _Failure(None, None, "condition is false")
        claim_side, expected_side = sides
        expected = self.interpreter.value(expected_side)
        actual = self._actual(claim_side)
        plain = isinstance(condition, A.Compare) and condition.op == "==" \
            and not _lowered(condition)
        return _Failure(expected, actual,
                        (_mismatch(actual, [expected]) if plain else None)
                        or f"{self.had(claim_side, actual)}, publisher expects "
                        f"{_expectation(condition, expected)}")

    def _compared(self, condition: A.Compare) -> _Failure:
        """`describe` of a comparison of a claim (not under lower()) with a value, at once
        (most failed rows): what `_sides` (the claim, then the value), `_actual` (the
        claim as the token has it) and `_expectation` give it (`_described`'s failure)."""
        return self._compared_with(condition, self.interpreter.value(condition.right))

    def _compared_with(self, condition: A.Compare, expected: Any) -> _Failure:
        """`_compared`, the value compared with being `expected`."""
        claim = condition.left
        assert isinstance(claim, A.Claim)
        actual = self.claims.get(claim.name)
        op = condition.op
        if op == "==":
            return _Failure(expected, actual, _mismatch(actual, [expected])
                            or f"{self.had(claim, actual)}, publisher expects "
                               f"{show(expected)}")
        words = f"anything but {show(expected)}" if op == "!=" \
            else f"a value {op} {show(expected)}"
        return _Failure(expected, actual,
                        f"{self.had(claim, actual)}, publisher expects {words}")

    def _alternatives(self, disjuncts: list[A.Expr],
                      parts: list[_Failure]) -> tuple[Any, Any]:
        """(expected, actual) of a failed `or` of unlike conditions: what each alternative
        wants, in words ("a value starting with 'x'"), and what the token had: one value when
        every alternative reads the same one, else the values by claim name."""
        disjuncts = [self._failing_part(d) for d in disjuncts]
        claims = [_claim_name(d) for d in disjuncts]
        words = [_expectation(d, p.expected) for d, p in zip(disjuncts, parts, strict=True)
                 if p.expected is not None]
        same = len(set(claims)) == 1 and claims[0] is not None
        if same or None in claims:
            actual = parts[0].actual if len({show(p.actual) for p in parts}) == 1 else None
        else:
            actual = {name: p.actual for name, p in zip(claims, parts, strict=True)}
            words = [f"{name} {_expectation(d, p.expected)}"
                     for name, d, p in zip(claims, disjuncts, parts, strict=True)
                     if p.expected is not None]
        expected = " or ".join(words) if len(words) == len(parts) else None
        return expected, actual

    def _failing_part(self, condition: A.Expr) -> A.Expr:
        """The conjunct of an `and` that `describe` explains (the first false one)."""
        while isinstance(condition, A.And):
            condition = condition.left if not self._true(condition.left) else condition.right
        return condition

    def _describe_or_error(self, condition: A.Expr) -> _Failure:
        try:
            return self.describe(condition)
        except EvalError as exc:
            return self._error_failure(condition, exc)

    def _true(self, condition: A.Expr) -> bool:
        try:
            return self.interpreter.boolean(condition)
        except EvalError:
            return False


def _failed(name: str, message: str | None, failure: _Failure, identity: bool) -> RuleResult:
    """A rule's result failing on a require of this `message` (or none) so."""
    words = message or failure.message
    if message and failure.actual is not None:
        words = f"{message} (token has {show(failure.actual)})"
    return RuleResult(name, False, failure.expected, failure.actual, words, identity=identity)


class _Unfit(Exception):
    """A value `Explainer.deferred` does not compute as the interpreter would (a `+` of a
    value that is not a string): the rule is made and explained as it is."""


# How the value a comparison reads from a shape's tree is computed from the publisher's
# values (the shape's own), with the explainer for the nodes of no publisher value.
_ValueOf = Callable[["Explainer", Sequence[Any]], Any]
# A rule shape's plan (`_plan`): its name; the conditions of the requires before the last
# (of no publisher value); the last require's message, and where its values are among the
# rule's; whether that condition is one comparison (else an `or`); its disjuncts as the
# shape's tree holds them; per disjunct: its guard (the left of an `and`, of no publisher
# value) or None, its comparison, and how that comparison's value is computed (None when
# it reads no publisher value); the places those read (indexes among the last require's
# values).
_RulePlan = tuple[str, tuple[A.Expr, ...], str | None, int, int, bool, list[A.Expr],
                  tuple[tuple[A.Expr | None, A.Expr, _ValueOf | None], ...], tuple[int, ...]]
_PLANS = 256


def _plan(rule: DeferredRule) -> _RulePlan | None:
    """The plan `Explainer.deferred` follows for the rules of `rule`'s shape, or None when
    its last require is not one it explains so."""
    live = rule.shape.live
    if not live:
        return None
    fixed: list[A.Expr] = []
    for require, shape, _, _, _ in live[:-1]:
        if shape is not None:
            return None
        fixed.append(require.condition)
    require, shape, start, stop, _ = live[-1]
    if shape is None:
        return None
    places, above = shape.places, shape.above
    condition = shape.bound
    nodes = _disjuncts(condition.left, condition.right) \
        if condition.__class__ is A.Or else [condition]
    disjuncts: list[tuple[A.Expr | None, A.Expr, _ValueOf | None]] = []
    used: set[int] = set()
    for node in nodes:
        guard: A.Expr | None = None
        if node.__class__ is A.And:
            assert isinstance(node, A.And)
            guard, node = node.left, node.right
            if id(guard) in above or id(guard) in places:
                return None
        if id(node) not in above:
            if id(node) in places:
                return None
            disjuncts.append((guard, node, None))
            continue
        if not (isinstance(node, A.Compare) and node.op in ("==", "!=")
                and node.left.__class__ is A.Claim and node.right.__class__ is not A.Call
                and id(node.left) not in above):
            return None
        value_of = _value_of(node.right, places, above, used)
        if value_of is None:
            return None
        disjuncts.append((guard, node, value_of))
    name = rule.name
    return (name, tuple(fixed), require.message, start, stop,
            condition.__class__ is not A.Or, nodes, tuple(disjuncts), tuple(sorted(used)))


def _value_of(node: A.Expr, places: Mapping[int, int], above: frozenset[int],
              used: set[int]) -> _ValueOf | None:
    """How the value of `node` (of a shape's tree) is computed from a publisher's values:
    a place takes its value (a string), a node of no publisher value is evaluated, a `+`
    joins two strings; None for any other node. `used` gathers the places read."""
    index = places.get(id(node))
    if index is not None:
        used.add(index)
        def placed(explainer: Explainer, own: Sequence[Any]) -> Any:
            value = own[index]
            if value.__class__ is not str:
                raise _Unfit
            return value
        return placed
    if id(node) not in above:
        def evaluated(explainer: Explainer, own: Sequence[Any]) -> Any:
            return explainer.interpreter.value(node)
        return evaluated
    if node.__class__ is not A.Concat:
        return None
    assert isinstance(node, A.Concat)
    left = _value_of(node.left, places, above, used)
    right = _value_of(node.right, places, above, used)
    if left is None or right is None:
        return None

    def joined(explainer: Explainer, own: Sequence[Any]) -> Any:
        a, b = left(explainer, own), right(explainer, own)
        if a.__class__ is not str or b.__class__ is not str:
            raise _Unfit
        return a + b
    return joined


def _disjuncts(left: A.Expr, right: A.Expr) -> list[A.Expr]:
    result: list[A.Expr] = []
    for side in (left, right):
        if isinstance(side, A.Or):
            result.extend(_disjuncts(side.left, side.right))
        else:
            result.append(side)
    return result


def _reads_claims(expr: A.Expr) -> bool:
    if isinstance(expr, A.Literal):  # a bound rule's values: most sides explained
        return False
    if isinstance(expr, A.Claim):
        return True
    if isinstance(expr, A.Concat):  # a bound rule's expected value: a literal and a claim
        return _reads_claims(expr.left) or _reads_claims(expr.right)
    return _READS_CLAIMS.get(expr, _claim_read_in)


def _claim_read_in(expr: A.Expr) -> bool:
    return any(isinstance(node, A.Claim) for node in A.walk(expr))


# `_reads_claims` and `_sides` of the nodes and conditions explained lately: a
# publisher's bound rules are made once (`bind_rules` keeps them), every refusal it
# explains asks for the same sides, and the publishers explained for one token share most
# nodes of their bound rules.
_READS_CLAIMS: ByIdentity[A.Expr, bool] = ByIdentity()
_SIDES: ByIdentity[A.Expr, tuple[A.Expr, A.Expr] | None] = ByIdentity()


def _sides(condition: A.Expr) -> tuple[A.Expr, A.Expr] | None:
    """(the side reading the token, the side stating the expectation), if there is one."""
    if condition.__class__ is A.Compare:  # at once: which side reads claims is kept
        return _sides_of(condition)
    return _SIDES.get(condition, _sides_of)


def _sides_of(condition: A.Expr) -> tuple[A.Expr, A.Expr] | None:
    match condition:
        case A.Compare(left=left, right=right) | A.In(item=left, container=right):
            if _reads_claims(left) and not _reads_claims(right):
                return left, right
            if _reads_claims(right) and not _reads_claims(left):
                return right, left
            if _reads_claims(left):
                return left, right
        case A.Call(function=("starts_with" | "ends_with" | "contains" | "glob"),
                    args=(subject, pattern)):
            return subject, pattern
        case A.Call(function="has", args=(A.Claim() as claim,)):
            return claim, A.Literal("a value")
        case A.Not(operand=operand):
            return _sides(operand)
    return None


_LONG = 60
_SHA = re.compile(r"\b[0-9a-f]{40}\b")
_SEGMENT = re.compile(r"[^/@]+")


def _short(value: str, start: int) -> str:
    """`value` from `start` on ('…' for what is cut), commit shas cut to 12 digits."""
    return ("…" if start else "") + _SHA.sub(lambda m: m[0][:12] + "…", value[start:])


def _shared_start(a: str, b: str) -> int:
    """How many characters `a` and `b` share at their start."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _mismatch(actual: Any, expected: list[Any]) -> str | None:
    """For long strings that differ (workflow refs): their common start elided, shas cut,
    and the part that differs from the closest expectation named ("differs at
    'other.yml', the publisher has 'release.yml'"). None for anything else."""
    if not (isinstance(actual, str) and len(actual) >= _LONG and expected
            and all(isinstance(e, str) for e in expected)):
        return None
    shared = {e: _shared_start(actual, e) for e in expected}
    closest = max(expected, key=lambda e: shared[e])
    same = shared[closest]
    start = max(actual.rfind("/", 0, same), actual.rfind("@", 0, same)) + 1
    mine, theirs = _SEGMENT.match(actual, start), _SEGMENT.match(closest, start)
    first = min(shared.values())
    cut = max(0, actual.rfind("/", 0, max(0, actual.rfind("/", 0, first))))
    shown = [show(_short(e, cut)) for e in expected]
    expects = shown[0] if len(shown) == 1 else f"one of [{', '.join(shown)}]"
    message = f"token has {show(_short(actual, cut))}, publisher expects {expects}"
    if mine and theirs and mine[0] != theirs[0]:
        message += f"; differs at {show(mine[0])}, the publisher has {show(theirs[0])}"
    return message


def _claim_name(condition: A.Expr) -> str | None:
    """The one claim a condition compares (under lower() or not), if it is one."""
    sides = _sides(condition)
    inner = sides[0] if sides is not None else None
    if isinstance(inner, A.Call) and inner.function == "lower" and len(inner.args) == 1:
        inner = inner.args[0]
    return inner.name if isinstance(inner, A.Claim) else None


def _negative(condition: A.Expr) -> bool:
    """Whether a condition holds when the token does NOT have the value it names."""
    match condition:
        case A.Compare(op="!="):
            return True
        case A.In(negated=True):
            return True
        case A.Not(operand=operand):
            return not _negative(operand)
    return False


def _expectation(condition: A.Expr, expected: Any) -> str:
    ignoring_case = " (ignoring case)" if _lowered(condition) else ""
    match condition:
        case A.Compare(op="=="):
            return show(expected) + ignoring_case
        case A.Compare(op="!="):
            return f"anything but {show(expected)}"
        case A.Compare(op=op):
            return f"a value {op} {show(expected)}"
        case A.In(negated=False):
            return f"one of {show(expected)}"
        case A.In(negated=True):
            return f"none of {show(expected)}"
        case A.Call(function="starts_with"):
            return f"a value starting with {show(expected)}"
        case A.Call(function="ends_with"):
            return f"a value ending with {show(expected)}"
        case A.Call(function="contains"):
            return f"a value containing {show(expected)}"
        case A.Call(function="glob"):
            return f"a value matching {show(expected)}"
        case A.Call(function="has"):
            return "the claim to be present"
        case A.Not(operand=operand):
            return f"not {_expectation(operand, expected)}"
    return show(expected)


def _lowered(condition: A.Expr) -> bool:
    if isinstance(condition, A.Compare):  # either side, without a generator (per row)
        left, right = condition.left, condition.right
        return (isinstance(left, A.Call) and left.function == "lower") or (
            isinstance(right, A.Call) and right.function == "lower")
    return False
