"""Names and types: a parsed policy file → checked providers and publishers.

Every problem in a file is collected and reported together, each at its span.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType
from typing import Any, TypeAlias

from tppolicy.errors import NO_SPAN, Diagnostic, PolicyCheckError, Span
from tppolicy.language import ast as A
from tppolicy.language.bind import (
    bind_expr,
    bind_learns,
    bind_rules,
    fold,
    guard_of,
    inline_lets,
    optional_rule_off,
)
from tppolicy.language.interpret import Interpreter
from tppolicy.language.ops import FUNCTIONS, REQUEST_VALUES, EvalError
from tppolicy.language.patterns import anchored, pattern_problem
from tppolicy.language.texts import (
    PLACES,
    CheckedAdvice,
    CheckedFix,
    CheckedNote,
    Text,
    TextError,
    parse_text,
)
from tppolicy.limits import MAX_GLOB_PATTERN, MAX_PATTERN_VALUE, MAX_POLICY_NESTING
from tppolicy.text import project_name_problem

CLAIM_TYPES = ("string", "int", "bool", "list", "object", "any")
FIELD_TYPES = ("string", "int", "bool")
CATEGORIES = ("required", "present", "optional", "unchecked")
# Checked by the verifier (signature, time) and by the audience option, for every provider.
PREVERIFIED: dict[str, str] = {"iss": "string", "aud": "any", "exp": "int", "iat": "int",
                               "nbf": "int"}
# The CI file formats `tppolicy check-workflow` reads (`workflows NAME` in a provider).
WORKFLOW_KINDS = ("github_actions", "gitlab_ci")
# What check-workflow asks about a publisher of each kind: the names a `workflows KIND {...}`
# block may give (`NAME: EXPR` over publisher fields), each with its type. `file` and
# `repository` are required; the others, left out, are "" / [] / false (nothing required).
# docs/language.md says what each one means.
WORKFLOW_ITEMS: dict[str, dict[str, str]] = {
    "github_actions": {"file": "string", "repository": "string", "caller": "string",
                       "reusable": "string", "environment": "string", "refs": "list",
                       "events": "list", "ref_protected": "bool",
                       "environment_protected": "bool"},
    "gitlab_ci": {"file": "string", "repository": "string", "environment": "string",
                  "refs": "list", "ref_protected": "bool", "environment_protected": "bool"},
}
REQUIRED_WORKFLOW_ITEMS = ("file", "repository")
_WORKFLOW_EMPTY: dict[str, Any] = {"string": "", "list": (), "bool": False}
SIGNATURE_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                        "ES512", "EdDSA")
# PyPI's project name rule, ASCII only and matched whole (`fullmatch`): IGNORECASE would let
# a Kelvin sign or a dotless i through, `$` a trailing newline.


@dataclass(frozen=True, slots=True)
class ClaimSpec:
    name: str
    category: str  # required | present | optional | unchecked | preverified
    type: str
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class LookupKey:
    """`publisher_side == claims_side`: indexed by the value of the publisher side."""

    label: str
    publisher_side: A.Expr
    claims_side: A.Expr
    span: Span
    identity: bool = False  # part of who the publisher is (see the grammar's `identity`)


@dataclass(frozen=True, slots=True)
class CheckedProvider:
    """A provider file that passed the checker (exported as `tppolicy.Provider`): its syntax
    tree, its claims and fields by name, ready to compile publishers against."""

    ast: A.Provider
    claims: Mapping[str, ClaimSpec]
    fields: Mapping[str, A.FieldDecl]
    keys: tuple[LookupKey, ...]
    prefers: tuple[LookupKey, ...]
    rules: tuple[A.Rule, ...]  # lets inlined; still read publisher.* fields
    learns: tuple[A.Learn, ...] = ()  # lets inlined; still read publisher.* fields
    # Each rule's `fix`es by rule name, and the provider's `note`s (lets inlined).
    fixes: Mapping[str, tuple[CheckedFix, ...]] = field(default_factory=dict)
    notes: tuple[CheckedNote, ...] = ()
    # The provider's `advise` items (lets inlined): lint's advice on publisher settings.
    advice: tuple[CheckedAdvice, ...] = ()
    # The `workflows` block's items by name (lets inlined; they read publisher fields only).
    workflow: Mapping[str, A.Expr] = field(default_factory=dict)
    # `case_aside`, worked out once: every near miss's explanation asks for it.
    _case_aside: frozenset[str] = field(default=frozenset(), init=False, repr=False,
                                        compare=False)
    # `identity_rules` and `claim_types`, worked out once too (every explanation reads them)
    _identity_rules: frozenset[str] = field(default=frozenset(), init=False, repr=False,
                                            compare=False)
    _claim_types: Mapping[str, str] = field(default_factory=dict, init=False, repr=False,
                                            compare=False)
    # What the compiler made of this provider, by part ("required", "lookup", "template":
    # pure functions of the provider), made once however many policies and engines index
    # it (`tppolicy.decide.index.ProviderIndex`).
    compiled: dict[str, Any] = field(default_factory=dict, init=False, repr=False,
                                     compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_case_aside", self._checks_case_aside())
        object.__setattr__(self, "_identity_rules", frozenset(
            rule.name for rule in self.rules if rule.identity))
        object.__setattr__(self, "_claim_types", MappingProxyType(
            {name: spec.type for name, spec in self.claims.items()}))

    @property
    def name(self) -> str:
        return self.ast.name

    @property
    def identity_rules(self) -> frozenset[str]:
        """The rules marked `identity rule`: they check who the publisher is."""
        return self._identity_rules

    @property
    def identity_fields(self) -> tuple[str, ...]:
        """The fields the lookup's `identity` items read, in declaration order."""
        read = {name for key in self.keys if key.identity
                for name in A.fields_read(key.publisher_side)}
        return tuple(name for name in self.fields if name in read)

    @property
    def exact_case(self) -> dict[str, str]:
        """Fields declared `exact_case`, with the reason lint gives."""
        return {name: decl.exact_case for name, decl in self.fields.items()
                if decl.exact_case is not None}

    @property
    def case_aside(self) -> frozenset[str]:
        """The checks that compare only fields declared `exact_case` (rule names, and
        `lookup.LABEL` for lookup keys): names the CI spells in one case, so two spellings
        differing only in case name the same thing (the same GitHub repository). Such a
        check still fails on case; a near miss's identity ignores it there."""
        return self._case_aside

    def _checks_case_aside(self) -> frozenset[str]:
        aside = set(self.exact_case)
        if not aside:
            return frozenset()
        names = {f"lookup.{key.label}" for key in self.keys
                 if (read := A.fields_read(key.publisher_side)) and read <= aside}
        for rule in self.rules:
            read = {name for require in rule.requires
                    for name in A.fields_read(require.condition)}
            if read and read <= aside:
                names.add(rule.name)
        return frozenset(names)

    @property
    def workflows(self) -> str | None:
        """The CI file format whose jobs get this provider's tokens, if declared."""
        return self.ast.workflows

    def workflow_values(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """What the `workflows` block says about a publisher with these field values
        (defaults included): every name of the kind, those left out (or failing to
        evaluate) at their empty value ("", an empty tuple, false). Lists are tuples of
        their non-empty strings."""
        names = WORKFLOW_ITEMS.get(self.workflows or "", {})
        values: dict[str, Any] = {name: _WORKFLOW_EMPTY[kind] for name, kind in names.items()}
        interpreter = Interpreter({}, {}, fields)
        for name, expr in self.workflow.items():
            try:
                value = interpreter.value(expr)
            except (EvalError, TypeError, ValueError, RecursionError):
                continue
            if names.get(name) == "list" and isinstance(value, list | tuple):
                values[name] = tuple(v for v in value if isinstance(v, str) and v)
            elif type(value) is type(values.get(name)):
                values[name] = value
        return values

    def workflow_field(self, name: str) -> str | None:
        """The publisher field that the `workflows` block's item NAME is computed from,
        when it reads exactly one (for messages: "the publisher's workflow_filename")."""
        expr = self.workflow.get(name)
        read = sorted(A.fields_read(expr)) if expr is not None else []
        return read[0] if len(read) == 1 else None

    @property
    def issuers(self) -> tuple[str, ...]:
        return self.ast.issuers

    @property
    def claim_types(self) -> Mapping[str, str]:
        """Each claim's type by name (read-only, made once)."""
        return self._claim_types

    @property
    def required_claims(self) -> tuple[ClaimSpec, ...]:
        return tuple(s for s in self.claims.values() if s.category in ("required", "present"))

    @property
    def optional_claims(self) -> tuple[ClaimSpec, ...]:
        """Checked claims that may be absent: when present, they must have their type."""
        return tuple(s for s in self.claims.values()
                     if s.category == "optional" and s.type != "any")

    def header(self) -> A.Provider:
        """The provider as a compiled policy shows it: lookup resolved, notes, no rules."""
        return A.Provider(
            name=self.ast.name, issuers=self.ast.issuers, custom_issuers=self.ast.custom_issuers,
            algorithms=self.ast.algorithms, claims=self.ast.claims,
            ignored_prefixes=self.ast.ignored_prefixes, fields=self.ast.fields,
            workflows=self.ast.workflows,
            workflow_items=tuple(A.WorkflowItem(name, expr, expr.span)
                                 for name, expr in self.workflow.items()),
            # The notes stay (said on allowed decisions), with the lets they may read.
            lets=self.ast.lets if self.ast.notes else (), notes=self.ast.notes,
            lookup=tuple(A.LookupItem("identity" if k.identity else kind,
                                      A.Compare("==", k.publisher_side, k.claims_side, k.span),
                                      k.span)
                         for kind, group in (("key", self.keys), ("prefer", self.prefers))
                         for k in group),
        )


@dataclass(frozen=True, slots=True)
class CheckedPublisher:
    ast: A.Publisher
    provider: CheckedProvider
    index: int
    fields: Mapping[str, Any]
    # Its own rule blocks, checked; None: its provider's rules, bound to its fields when
    # first read (`rules`): a decision on one publisher of ten thousand binds only its own.
    own_rules: tuple[A.Rule, ...] | None
    key_values: tuple[Any, ...] = field(default=())
    prefer_values: tuple[Any, ...] = field(default=())
    learns: tuple[A.Learn, ...] = field(default=())  # concrete: claims and literals only
    _bound: list[tuple[A.Rule, ...]] = field(default_factory=list, compare=False, repr=False)

    @property
    def rules(self) -> tuple[A.Rule, ...]:
        """The publisher's rules, concrete: claims and literals only."""
        if self.own_rules is not None:
            return self.own_rules
        if not self._bound:
            self._bound.append(bind_rules(self.provider.rules, self.fields))
        return self._bound[0]

    @property
    def name(self) -> str | None:
        return self.ast.name

    @property
    def label(self) -> str:
        if self.ast.name:
            return self.ast.name
        kind = "pending publisher" if self.ast.pending_project else "publisher"
        return f"{kind} #{self.index + 1} ({self.provider.name})"

    @property
    def projects(self) -> tuple[str, ...]:
        if self.ast.pending_project is not None:
            return (self.ast.pending_project,)
        return self.ast.projects

    @property
    def pending(self) -> bool:
        return self.ast.pending_project is not None


_GLOB_RULES: dict[int, tuple[tuple[A.Rule, ...],
                             tuple[tuple[A.Rule, tuple[A.Expr, ...]], ...]]] = {}


def _globs(rules: tuple[A.Rule, ...]) -> tuple[tuple[A.Rule, tuple[A.Expr, ...]], ...]:
    """The rules that call glob, each with the pattern arguments of its glob calls, kept
    per tuple of rules (with it, so that its id stays its own)."""
    known = _GLOB_RULES.get(id(rules))
    if known is None or known[0] is not rules:
        if len(_GLOB_RULES) >= 256:
            _GLOB_RULES.clear()
        found = []
        for rule in rules:
            calls = [node for req in rule.requires for node in A.walk(req.condition)
                     if isinstance(node, A.Call) and node.function == "glob"]
            if calls:
                found.append((rule, tuple(c.args[1] for c in calls if len(c.args) == 2)))
        known = _GLOB_RULES[id(rules)] = (rules, tuple(found))
    return known[1]


_GLOB_SUBSETS: dict[int, tuple[tuple[A.Rule, ...], tuple[A.Rule, ...]]] = {}


def _glob_rules(rules: tuple[A.Rule, ...]) -> tuple[A.Rule, ...]:
    """The rules that call glob (what `_bound_globs` checks once they are bound), the same
    tuple each time (binding keeps its results per tuple of rules)."""
    known = _GLOB_SUBSETS.get(id(rules))
    if known is None or known[0] is not rules:
        if len(_GLOB_SUBSETS) >= 256:
            _GLOB_SUBSETS.clear()
        known = _GLOB_SUBSETS[id(rules)] = (rules, tuple(rule for rule, _ in _globs(rules)))
    return known[1]


def _bad_glob_possible(rules: tuple[A.Rule, ...], values: Mapping[str, Any],
                       fields: Mapping[str, A.FieldDecl]) -> bool:
    """Could `_bound_globs` find anything in these rules bound to `values`? Binding folds
    a glob's pattern from its own argument alone, so when no pattern argument binds to a
    literal that it refuses, it finds nothing. When one does, the rules are bound to the
    fields left at their defaults and those the patterns read, the others left unbound:
    an unbound field folds nothing away, so every glob the whole binding keeps is kept,
    with the same pattern; if none is refused there, none is. (Binding whole rules for
    each publisher was most of its checking time.)"""
    glob_rules = _globs(rules)
    if not glob_rules:
        return False
    # The answer depends on the values of the fields the patterns and the optional glob
    # rules' guards read, and on the partial binding below (the fields left at their
    # defaults, and those): kept per both, which the publishers of a file share.
    read = _glob_fields(rules)
    # per field: whether the patterns read it, else its default and the default's type
    plan = _GLOB_PLANS.get((id(rules), id(fields)))
    if plan is None or plan[0] is not rules or plan[1] is not fields:
        if len(_GLOB_PLANS) >= 256:
            _GLOB_PLANS.clear()
        plan = _GLOB_PLANS[(id(rules), id(fields))] = (rules, fields, {
            name: (name in read[0],
                   decl.default.value if decl.default is not None else _ABSENT,
                   type(decl.default.value) if decl.default is not None else None)
            for name, decl in fields.items()})
    table = plan[2]
    kept = []  # the partial binding's items: (name, type, value)
    for name, value in values.items():
        info = table.get(name)
        if info is None:
            if name in read[0]:  # pragma: no cover - every field is declared
                kept.append((name, type(value), value))
        elif info[0] or (info[2] is type(value) and value == info[1]):
            kept.append((name, type(value), value))
    try:
        key: Any = (id(rules), tuple([(type(v), v) for v in [values.get(n) for n in read[1]]]),
                    tuple(kept))
        known = _BAD_GLOB.get(key)
    except TypeError:  # pragma: no cover - field values are str, int or bool
        key, known = None, None
    if known is not None and known[0] is rules:
        return known[1]
    partial = {name: value for name, _, value in kept}
    answer = _bad_glob_found(rules, glob_rules, values, partial)
    if key is not None:
        if len(_BAD_GLOB) >= 1024:
            _BAD_GLOB.clear()
        _BAD_GLOB[key] = (rules, answer)
    return answer


# Per tuple of rules (kept with it): the fields its glob patterns read, and those with
# the fields its optional glob rules' guards read; per `_bad_glob_possible` key: the answer.
_GLOB_FIELDS: dict[int, tuple[tuple[A.Rule, ...], tuple[frozenset[str], tuple[str, ...]]]] = {}
_BAD_GLOB: dict[Any, tuple[tuple[A.Rule, ...], bool]] = {}
# Per (rules, field declarations), kept with them: per field, whether the glob patterns
# read it, its default (`_ABSENT`: none) and the default's type.
_GLOB_PLANS: dict[tuple[int, int], tuple[tuple[A.Rule, ...], Mapping[str, A.FieldDecl],
                                         dict[str, tuple[bool, Any, type | None]]]] = {}


def _glob_fields(rules: tuple[A.Rule, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    known = _GLOB_FIELDS.get(id(rules))
    if known is None or known[0] is not rules:
        if len(_GLOB_FIELDS) >= 256:
            _GLOB_FIELDS.clear()
        patterns = frozenset(name for _, arguments in _globs(rules) for argument in arguments
                             for name in A.fields_read(argument))
        guards = {name for rule, _ in _globs(rules) if rule.optional
                  for req in rule.requires
                  for name in A.fields_read(guard_of(req.condition) or A.Literal(None))}
        known = _GLOB_FIELDS[id(rules)] = (rules, (patterns, tuple(sorted(patterns | guards))))
    return known[1]


def _bad_glob_found(rules: tuple[A.Rule, ...],
                    glob_rules: tuple[tuple[A.Rule, tuple[A.Expr, ...]], ...],
                    values: Mapping[str, Any], partial: Mapping[str, Any]) -> bool:
    """`_bad_glob_possible`, computed."""
    suspect = False
    for rule, patterns in glob_rules:
        for argument in patterns:
            pattern = bind_expr(argument, values)
            refused = isinstance(pattern, A.Literal) and isinstance(pattern.value, str) and (
                len(pattern.value) > MAX_GLOB_PATTERN or not pattern.value.strip("*"))
            if refused and not (rule.optional and optional_rule_off(rule, values)):
                suspect = True
    if not suspect:
        return False
    for rule in bind_rules(_glob_rules(rules), partial):
        for req in rule.requires:
            for node in A.walk(req.condition):
                if isinstance(node, A.Call) and node.function == "glob" and len(node.args) == 2:
                    pattern = node.args[1]
                    if isinstance(pattern, A.Literal) and isinstance(pattern.value, str) and (
                            len(pattern.value) > MAX_GLOB_PATTERN
                            or not pattern.value.strip("*")):
                        return True
    return False


# `_shared_tail`'s memo per provider: the provider, the fields its answer depends on, the
# answers by those fields' values (None once they took too many values).
_Tails: TypeAlias = ("tuple[CheckedProvider, tuple[str, ...], "
                     "dict[tuple[Any, ...], tuple[tuple[A.Learn, ...], tuple[Any, ...]]] | None]")
_TAIL_VALUES = 256


def _shared_tail(tails: dict[int, _Tails], provider: CheckedProvider,
                 values: dict[str, Any]) -> tuple[tuple[A.Learn, ...], tuple[Any, ...]] | None:
    """For a publisher taking its provider's rules, whose fields all have their declared
    types (no problem found so far): its bound learn items and prefer values, when
    `_bad_glob_possible` says no glob can be refused (None: check it as any other). All
    three depend only on the values of the fields with defaults and of those the glob
    patterns, the learn items and the prefer sides read: kept per those values (a
    field's values are of one type), until they took `_TAIL_VALUES` values."""
    known = tails.get(id(provider))
    if known is None or known[0] is not provider:
        read = _glob_fields(provider.rules)
        names = {name for name, decl in provider.fields.items() if decl.default is not None}
        names |= read[0] | set(read[1])
        names |= {name for learn in provider.learns for name in A.fields_read(learn.value)}
        names |= {name for key in provider.prefers for name in A.fields_read(key.publisher_side)}
        known = tails[id(provider)] = (provider, tuple(sorted(names)), {})
    memo = known[2]
    if memo is None:
        return None
    key = tuple([values.get(name, _ABSENT) for name in known[1]])
    found = memo.get(key)
    if found is not None:
        return found
    if _bad_glob_possible(provider.rules, values, provider.fields):
        return None
    checker = _Checker("")
    found = (_bound_learns(provider.learns, values),
             checker.side_values(provider.prefers, values, NO_SPAN))
    if checker.diagnostics:  # a prefer side that cannot be computed: as any other
        return None
    if len(memo) >= _TAIL_VALUES:
        tails[id(provider)] = (provider, known[1], None)
    else:
        memo[key] = found
    return found


# Per tuple of lookup keys (kept with it): each key, the field its publisher side is
# (None if it is not a field), and the fields that side reads; per (side, the values of
# those fields): the side and its value.
_SIDE_PLANS: dict[int, tuple[tuple[LookupKey, ...],
                             tuple[tuple[LookupKey, str | None, tuple[str, ...]], ...]]] = {}
_SIDE_VALUES: dict[Any, tuple[A.Expr, Any]] = {}
_ABSENT = object()


def _side_plan(keys: tuple[LookupKey, ...],
               ) -> tuple[tuple[LookupKey, str | None, tuple[str, ...]], ...]:
    known = _SIDE_PLANS.get(id(keys))
    if known is None or known[0] is not keys:
        if len(_SIDE_PLANS) >= 256:
            _SIDE_PLANS.clear()
        known = _SIDE_PLANS[id(keys)] = (keys, tuple(
            (key, key.publisher_side.name if isinstance(key.publisher_side, A.FieldRef)
             else None, tuple(sorted(A.fields_read(key.publisher_side)))) for key in keys))
    return known[1]


# Per tuple of lookup keys (kept with it): per key, the field its publisher side is or
# lowercases (`lower(publisher.NAME)`), and whether it lowercases it; None: another side.
_FIELD_SIDES: dict[int, tuple[tuple[LookupKey, ...],
                              tuple[tuple[str, bool] | None, ...]]] = {}


def _field_sides(keys: tuple[LookupKey, ...], values: Mapping[str, Any]
                 ) -> tuple[Any, ...] | None:
    """`_Checker.side_values` of keys whose publisher sides are fields that `values` holds
    (what the interpreter gives a FieldRef: the value) or their strings lowercased
    (`lower`'s own function on it), else None."""
    known = _FIELD_SIDES.get(id(keys))
    if known is None or known[0] is not keys:
        if len(_FIELD_SIDES) >= 256:
            _FIELD_SIDES.clear()
        sides: list[tuple[str, bool] | None] = []
        for key in keys:
            side = key.publisher_side
            if isinstance(side, A.FieldRef):
                sides.append((side.name, False))
            elif isinstance(side, A.Call) and side.function == "lower" \
                    and len(side.args) == 1 and isinstance(side.args[0], A.FieldRef):
                sides.append((side.args[0].name, True))
            else:
                sides.append(None)
        known = _FIELD_SIDES[id(keys)] = (keys, tuple(sides))
    result = []
    for plan in known[1]:
        if plan is None or plan[0] not in values:
            return None
        value = values[plan[0]]
        if plan[1]:
            if value.__class__ is not str:
                return None
            value = _LOWER(value)
        result.append(value)
    return tuple(result)


_LOWER = FUNCTIONS["lower"][0]


# Per tuple of learn items (kept with it): the fields they read; per (items, the values
# of those fields): the items and the items bound (publishers share these values).
_LEARN_FIELDS: dict[int, tuple[tuple[A.Learn, ...], tuple[str, ...]]] = {}
_LEARNS: dict[Any, tuple[tuple[A.Learn, ...], tuple[A.Learn, ...]]] = {}


def _bound_learns(learns: tuple[A.Learn, ...],
                  values: Mapping[str, Any]) -> tuple[A.Learn, ...]:
    """`bind_learns`, kept per the values of the fields the items read."""
    if not learns:
        return ()
    known = _LEARN_FIELDS.get(id(learns))
    if known is None or known[0] is not learns:
        if len(_LEARN_FIELDS) >= 256:
            _LEARN_FIELDS.clear()
        known = _LEARN_FIELDS[id(learns)] = (learns, tuple(sorted(
            {name for learn in learns for name in A.fields_read(learn.value)})))
    try:
        key: Any = (id(learns), tuple((type(values.get(n)), values.get(n)) for n in known[1]))
        found = _LEARNS.get(key)
    except TypeError:  # pragma: no cover - field values are str, int or bool
        return bind_learns(learns, values)
    if found is not None and found[0] is learns:
        return found[1]
    bound = bind_learns(learns, values)
    if len(_LEARNS) >= 1024:
        _LEARNS.clear()
    _LEARNS[key] = (learns, bound)
    return bound


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str] | None:
    """A field's pattern, compiled once; None if it is not a valid regular expression, or
    one `pattern_problem` refuses (the field's declaration is reported for it: a value is
    not checked against it, which could take years)."""
    try:
        compiled = re.compile(pattern)
    except re.error:
        return None
    return None if pattern_problem(pattern) is not None else compiled


def _within(span: Span, pattern: str, start: int, end: int) -> Span:
    """Where characters `start` to `end` of `pattern` are, in the string literal at `span`:
    exact when the literal is written the way JSON writes it (escapes as \\\\ and \\"),
    else the whole literal."""
    def column(offset: int) -> int:
        return span.column + len(json.dumps(pattern[:offset], ensure_ascii=False)) - 1

    if (span.line != span.end_line
            or span.end_column - span.column != len(json.dumps(pattern, ensure_ascii=False))):
        return span
    return replace(span, column=column(start), end_column=column(end))


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


@dataclass(frozen=True, slots=True)
class _Type:
    base: str  # string int bool list object any null
    nullable: bool = False
    item: str = "any"  # element type of lists

    def __str__(self) -> str:
        text = "list of strings" if self.base == "list" and self.item == "string" else self.base
        return f"{text} or null" if self.nullable and self.base != "null" else text


_ANY = _Type("any", True)


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        self._inlined_parts = 0  # parts filling in lets added to this file's expressions
        self._shapes: dict[int, tuple[int, int, A.Expr]] = {}  # _shape's, for the file

    def error(self, message: str, span: Span, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(message, span, hint=hint))

    # ------------------------------------------------------------ providers
    def provider(self, ast: A.Provider) -> CheckedProvider:
        if not ast.issuers and not ast.custom_issuers:
            self.error(f"provider '{ast.name}' has no issuer", ast.span,
                       'add a line such as: issuer "https://token.example.com", or '
                       "custom_issuers true for issuers that operators register")
        for issuer in ast.issuers:
            if not issuer.startswith("https://"):
                self.error(f"issuer {issuer!r} is not an https URL", ast.span)
        for algorithm in ast.algorithms:
            if algorithm not in SIGNATURE_ALGORITHMS:
                self.error(f"algorithm {algorithm!r} is not an asymmetric JWS algorithm",
                           ast.span, f"use one of {', '.join(SIGNATURE_ALGORITHMS)}")
        claims: dict[str, ClaimSpec] = {n: ClaimSpec(n, "preverified", t)
                                        for n, t in PREVERIFIED.items()}
        for decl in ast.claims:
            if decl.type not in CLAIM_TYPES:
                self.error(f"unknown claim type '{decl.type}'", decl.span,
                           did_you_mean(decl.type, CLAIM_TYPES)
                           or f"use one of {', '.join(CLAIM_TYPES)}")
            for name in decl.names:
                if name in claims:
                    self.error(f"claim '{name}' is declared twice", decl.span)
                claims[name] = ClaimSpec(name, decl.category, decl.type, decl.span)
        fields: dict[str, A.FieldDecl] = {}
        for field_decl in ast.fields:
            self._field_decl(field_decl)
            if field_decl.name in fields:
                self.error(f"field '{field_decl.name}' is declared twice", field_decl.span)
            fields[field_decl.name] = field_decl
        if ast.custom_issuers and "issuer_url" not in fields:
            self.error("a provider with custom_issuers needs a field 'issuer_url'", ast.span)
        scope = _Scope(claims, ast.ignored_prefixes, fields, {})
        lets: dict[str, A.Expr] = {}
        for let in ast.lets:
            if let.name in lets:
                self.error(f"'{let.name}' is defined twice", let.span)
            if let.name in FUNCTIONS:
                self.error(f"'{let.name}' is the name of a function", let.span)
            self.expr(let.value, scope)
            inlined = inline_lets(let.value, lets)
            depth, nodes = _shape(inlined, self._shapes)
            if depth > MAX_INLINED_DEPTH:
                self.error(f"'{let.name}' nests too deeply once the lets it reads are filled "
                           f"in: more than {MAX_INLINED_DEPTH} levels", let.span,
                           "read fewer lets in one another")
                inlined = A.Literal(None, let.span)
            elif self._too_large(let.value, nodes, f"'{let.name}'", let.span):
                inlined = A.Literal(None, let.span)
            lets[let.name] = inlined
            scope.lets[let.name] = self.expr(lets[let.name], _Scope(claims, ast.ignored_prefixes,
                                                                      fields, {}), quiet=True)
        if ast.workflows is not None and ast.workflows not in WORKFLOW_KINDS:
            self.error(f"unknown workflow kind '{ast.workflows}'", ast.span,
                       did_you_mean(ast.workflows, WORKFLOW_KINDS)
                       or f"use one of {', '.join(WORKFLOW_KINDS)}")
        workflow = self._workflow(ast, scope, lets)
        keys, prefers = self._lookup(ast, scope, lets)
        rules = self._rules(ast.rules, scope, lets)
        self._optional_rules(rules, fields)
        learns = self._learns(ast.learns, scope, lets, fields)
        fixes = {rule.name: tuple(self._fix(fix, scope, lets) for fix in rule.fixes)
                 for rule in ast.rules if rule.fixes}
        notes = tuple(CheckedNote(self._when(note.condition, scope, lets),
                                  self._text(note.text, note.span, scope, lets))
                      for note in ast.notes)
        advice = tuple(self._advice(item, scope, lets, fields) for item in ast.advice)
        if rules:
            read = {name for rule in rules for req in rule.requires
                    for name in A.claims_read(req.condition)}
            for spec in claims.values():
                if spec.category in ("required", "optional") and spec.name not in read:
                    assert spec.span is not None
                    self.error(f"{spec.category} claim '{spec.name}' is not read by any rule",
                               spec.span, "declare it 'present' if it only has to exist, or "
                               "'unchecked' if it is ignored")
        return CheckedProvider(ast, claims, fields, keys, prefers, rules, learns, fixes, notes,
                               advice, workflow)

    def _workflow(self, ast: A.Provider, scope: _Scope,
                  lets: Mapping[str, A.Expr]) -> dict[str, A.Expr]:
        """The `workflows KIND { NAME: EXPR ... }` items: names of the kind, each once, of
        its type, reading only publisher fields and lets; `file` and `repository` given."""
        names = WORKFLOW_ITEMS.get(ast.workflows or "")
        if names is None:  # no kind, or an unknown one (reported above)
            return {}
        found: dict[str, A.Expr] = {}
        for item in ast.workflow_items:
            value = self._bounded(item.value, lets, f"'{item.name}'", item.span)
            t = self.expr(value, scope)
            if item.name not in names:
                self.error(f"'{item.name}' is not something check-workflow asks about a "
                           f"{ast.workflows} publisher", item.span,
                           did_you_mean(item.name, names)
                           or f"use one of {', '.join(names)}")
                continue
            if item.name in found:
                self.error(f"'{item.name}' is given twice in the workflows block", item.span)
            wanted = names[item.name]
            if wanted == "list" and not (t.base == "list" and t.item in ("string", "any")):
                self.error(f"'{item.name}' must be a list of strings, found {t}", item.span,
                           f'for example: {item.name}: [publisher.FIELD] or '
                           f'split(publisher.FIELD, ",")')
            elif wanted != "list" and (t.base != wanted or t.nullable):
                self.error(f"'{item.name}' must be a {wanted}, found {t}", item.span)
            if A.claims_read(value) or A.requests_read(value):
                self.error(f"'{item.name}' is about the publisher, not a token: it may read "
                           "only publisher.* fields and lets that read them", item.span,
                           "remove the claims.* and request.* references")
            found[item.name] = value
        missing = [name for name in REQUIRED_WORKFLOW_ITEMS if name not in found]
        if missing:
            examples = {"file": "file: publisher.workflow_filename",
                        "repository": 'repository: publisher.owner + "/" + publisher.name'}
            self.error(f"the workflows block of provider '{ast.name}' does not say "
                       + " nor ".join(f"'{name}'" for name in missing)
                       + ": check-workflow needs the publisher's workflow file and its "
                       "repository", ast.span,
                       f"add `workflows {ast.workflows} {{ "
                       + " ".join(examples[name] for name in missing) + " }` with the "
                       "publisher fields that hold them (docs/language.md)")
        return found

    # ------------------------------------------------------ fixes and notes
    def _fix(self, fix: A.Fix, scope: _Scope, lets: Mapping[str, A.Expr]) -> CheckedFix:
        if fix.place is not None:
            for word in fix.place.split(" or "):
                if word not in PLACES:
                    self.error(f"unknown place '{word}' for a fix", fix.span,
                               did_you_mean(word, PLACES) or f"use {', '.join(PLACES)}")
        return CheckedFix(fix.place, self._when(fix.condition, scope, lets),
                          self._text(fix.text, fix.span, scope, lets))

    def _advice(self, item: A.Advice, scope: _Scope, lets: Mapping[str, A.Expr],
                fields: Mapping[str, A.FieldDecl]) -> CheckedAdvice:
        """An `advise` item: it names a field, and reads only publisher fields and lets."""
        if item.name not in fields:
            self.error(f"'{item.name}' is not a field: advice is about how a publisher sets "
                       "one of the provider's fields", item.span,
                       did_you_mean(item.name, fields))
        checked = CheckedAdvice(item.name, self._when(item.condition, scope, lets),
                                self._text(item.text, item.span, scope, lets))
        parts = [checked.condition] if checked.condition is not None else []
        parts += [p for p in checked.text.parts if not isinstance(p, str)]
        for part in parts:
            if A.claims_read(part) or A.requests_read(part):
                self.error("advice is about the publisher, not a token: its condition and "
                           "text may read only publisher.* fields and lets that read them",
                           item.span, "remove the claims.* and request.* references")
                break
        return checked

    def _when(self, condition: A.Expr | None, scope: _Scope,
              lets: Mapping[str, A.Expr]) -> A.Expr | None:
        if condition is None:
            return None
        inlined = self._bounded(condition, lets, "a condition", condition.span)
        self.condition(inlined, scope)
        return inlined

    def _text(self, text: str, span: Span, scope: _Scope,
              lets: Mapping[str, A.Expr]) -> Text:
        """A fix's or note's text: each placeholder must name a claim, field or let."""
        try:
            pieces = parse_text(text)
        except TextError as exc:
            self.error(f"in the text {text[:40]!r}...: {exc}" if len(text) > 40
                       else f"in the text {text!r}: {exc}", span)
            return Text(text, (text,))
        parts: list[str | A.Expr] = []
        for piece in pieces:
            if isinstance(piece, str):
                parts.append(piece)
                continue
            kind, name, _ = piece
            node: A.Expr
            if kind == "claims":
                node = A.Claim(name, span)
            elif kind == "publisher":
                node = A.FieldRef(name, span)
            elif kind == "request":
                node = A.Request(name, span)
            elif name in lets:
                node = lets[name]
            else:
                node = A.NameRef(name, span)
            self.expr(node, scope)
            parts.append(node)
        return Text(text, tuple(parts))

    def _optional_rules(self, rules: tuple[A.Rule, ...],
                        fields: Mapping[str, A.FieldDecl]) -> None:
        """An optional rule is off by default: with every field at its default, it must
        fold to `true` (or it would be checked, unseen, for every publisher)."""
        defaults = {name: decl.default.value for name, decl in fields.items()
                    if decl.default is not None}
        for rule in rules:
            if rule.optional and bind_rules((rule,), defaults):
                self.error(f"optional rule '{rule.name}' does not pass for a publisher that "
                           "leaves its fields at their defaults", rule.span,
                           "write it as: publisher.FIELD == <default> or <the check>")

    def _learns(self, learns: tuple[A.Learn, ...], scope: _Scope,
                lets: Mapping[str, A.Expr],
                fields: Mapping[str, A.FieldDecl] | None) -> tuple[A.Learn, ...]:
        checked: list[A.Learn] = []
        seen: set[str] = set()
        for learn in learns:
            if learn.name in seen:
                self.error(f"'{learn.name}' is learned twice", learn.span)
            seen.add(learn.name)
            value = self._bounded(learn.value, lets, f"'{learn.name}'", learn.span)
            t = self.expr(value, scope)
            if A.requests_read(value):
                self.error("a learned value comes from the token: it cannot read request "
                           "values", learn.span)
            if fields is not None:
                decl = fields.get(learn.name)
                if decl is None:
                    self.error(f"'{learn.name}' is not a field: a learned value is stored in "
                               "the publisher's field of that name", learn.span,
                               did_you_mean(learn.name, fields))
                elif t.base not in (decl.type, "null", "any"):
                    self.error(f"the learned value of '{learn.name}' is a {t}, the field is a "
                               f"{decl.type}", learn.span)
            checked.append(A.Learn(learn.name, value, learn.span))
        return tuple(checked)

    def _field_decl(self, decl: A.FieldDecl) -> None:
        if decl.type not in FIELD_TYPES:
            self.error(f"unknown field type '{decl.type}'", decl.span,
                       f"use one of {', '.join(FIELD_TYPES)}")
        if (decl.default is not None and decl.type in FIELD_TYPES
                and _literal_type(decl.default.value) != decl.type):
                self.error(f"the default of '{decl.name}' is not a {decl.type}", decl.span)
        if decl.exact_case is not None and decl.type != "string":
            self.error("'exact_case' applies to string fields only", decl.span)
        if decl.pattern is not None:
            if decl.type != "string":
                self.error("'matches' applies to string fields only", decl.span)
            if not (decl.pattern.startswith("^") and decl.pattern.endswith("$")):
                self.error(f"the pattern of '{decl.name}' is not anchored", decl.span,
                           "patterns must start with '^' and end with '$'")
            try:
                re.compile(decl.pattern)
            except re.error as exc:
                self.error(f"the pattern of '{decl.name}' is not a valid regular expression: {exc}",
                           decl.span)
            else:
                problem = pattern_problem(decl.pattern)
                if not anchored(decl.pattern) and decl.pattern.startswith("^") \
                        and decl.pattern.endswith("$"):
                    self.error(f"the pattern of '{decl.name}' is not anchored as a whole",
                               decl.pattern_span,
                               "start it with ^ and end it with $ around all its "
                               "alternatives, ^(a|b)$ rather than ^a|b$ (a publishers file, "
                               "checked with search, would accept what the engine refuses)")
                if problem is not None:
                    self.error(f"the pattern of '{decl.name}': {problem.message}",
                               _within(decl.pattern_span, decl.pattern, problem.start,
                                       problem.end),
                               problem.hint)

    def _lookup(self, ast: A.Provider, scope: _Scope, lets: Mapping[str, A.Expr]
                ) -> tuple[tuple[LookupKey, ...], tuple[LookupKey, ...]]:
        keys: list[LookupKey] = []
        prefers: list[LookupKey] = []
        for item in ast.lookup:
            condition = self._bounded(item.condition, lets, f"a lookup {item.kind}", item.span)
            if not (isinstance(condition, A.Compare) and condition.op == "=="):
                self.error(f"a lookup {item.kind} must be 'publisher side == claims side'",
                           item.span)
                continue
            left, right = condition.left, condition.right
            self.expr(condition, scope)
            if A.claims_read(left) or not A.fields_read(left):
                self.error(f"the left side of a lookup {item.kind} must read publisher fields "
                           "and no claims", left.span,
                           "write it as: key publisher.FIELD == <expression over claims>")
                continue
            if A.fields_read(right):
                self.error(f"the right side of a lookup {item.kind} must not read publisher "
                           "fields", right.span)
                continue
            if A.requests_read(condition):
                self.error(f"a lookup {item.kind} cannot read request values: publishers are "
                           "indexed by the token's claims", item.span)
                continue
            # Named after the first field it reads, in declaration order.
            read = A.fields_read(left)
            label = next((name for name in scope.fields or () if name in read),
                         sorted(read)[0])
            target = prefers if item.kind == "prefer" else keys
            target.append(LookupKey(label, fold(left), fold(right), item.span,
                                    identity=item.kind == "identity"))
        if ast.lookup and not keys:
            self.error(f"provider '{ast.name}' has a lookup without a key", ast.span)
        return tuple(keys), tuple(prefers)

    def _bounded(self, written: A.Expr, lets: Mapping[str, A.Expr], what: str,
                 span: Span) -> A.Expr:
        """`written` with the lets filled in, or null if that makes it too large."""
        inlined = inline_lets(written, lets)
        if inlined is written:
            return inlined
        if self._too_large(written, _shape(inlined, self._shapes)[1], what, span):
            return A.Literal(None, span)
        return inlined

    def _too_large(self, written: A.Expr, nodes: int, what: str, span: Span) -> bool:
        """Do the lets filled in make an expression too large (said as an error)? Each
        reading of a let copies it: at most MAX_INLINED_NODES parts may be added to one
        expression, and MAX_INLINED_TOTAL to all of a file's."""
        added = nodes - _shape(written, self._shapes)[1]
        self._inlined_parts += added
        if added <= MAX_INLINED_NODES and self._inlined_parts <= MAX_INLINED_TOTAL:
            return False
        self.error(f"{what} grows too large once the lets it reads are filled in: they add "
                   f"{added} parts (at most {MAX_INLINED_NODES}, and {MAX_INLINED_TOTAL} in a "
                   "file)", span, "read fewer lets in one another: each reading of a let "
                   "copies it")
        return True

    def _rules(self, rules: tuple[A.Rule, ...], scope: _Scope,
               lets: Mapping[str, A.Expr]) -> tuple[A.Rule, ...]:
        seen: set[str] = set()
        checked: list[A.Rule] = []
        for rule in rules:
            if rule.name in seen:
                self.error(f"rule '{rule.name}' is defined twice", rule.span)
            seen.add(rule.name)
            if rule.name in PREVERIFIED or rule.name == "claims":
                self.error(f"'{rule.name}' is reserved for the checks made before any rule",
                           rule.span)
            if not rule.requires:
                self.error(f"rule '{rule.name}' requires nothing", rule.span)
            if rule.fixes and scope.fields is None:
                self.error(f"rule '{rule.name}': a fix belongs in a provider's rule, not in a "
                           "publisher block", rule.fixes[0].span)
            requires = []
            for req in rule.requires:
                condition = inline_lets(req.condition, lets)
                depth, nodes = _shape(condition, self._shapes)
                if depth > MAX_INLINED_DEPTH + MAX_POLICY_NESTING:
                    self.error(f"rule '{rule.name}' nests too deeply once the lets it reads "
                               f"are filled in: more than "
                               f"{MAX_INLINED_DEPTH + MAX_POLICY_NESTING} levels", req.span,
                               "read fewer lets in one another")
                    condition = A.Literal(False, req.span)
                elif self._too_large(req.condition, nodes, f"rule '{rule.name}'", req.span):
                    condition = A.Literal(False, req.span)
                self.condition(condition, scope)
                requires.append(A.Require(condition, req.message, req.span))
            checked.append(A.Rule(rule.name, tuple(requires), rule.span, rule.optional,
                                  rule.identity))
        return tuple(checked)

    # ----------------------------------------------------------- publishers
    def publisher(self, ast: A.Publisher, index: int,
                  providers: Mapping[str, CheckedProvider],
                  valid: dict[int, tuple[A.FieldDecl, A.Binding]] | None = None,
                  tails: dict[int, _Tails] | None = None,
                  fields: dict[str, Any] | None = None) -> CheckedPublisher | None:
        """The checked publisher (None if its provider is unknown). `valid`: per binding
        object (kept with its declaration), that it has its declaration's type and
        pattern: a binding found so is not checked again (a stream's publishers share
        the bindings of the values they share), and one that passes is added. `tails`:
        `_shared_tail`'s memo (a stream's publishers). `fields`: the values of every field
        of the provider, each of its declared type and matching its pattern (checked by
        the caller), in the provider's order: the bindings (none) are not read."""
        provider = providers.get(ast.provider)
        if provider is None:
            self.error(f"unknown provider '{ast.provider}'", ast.span,
                       did_you_mean(ast.provider, providers) or
                       f"known providers: {', '.join(sorted(providers)) or 'none'}")
            return None
        if bool(ast.projects) == (ast.pending_project is not None):
            self.error("a publisher needs either projects [...] or pending_project \"...\"",
                       ast.span)
        for project in (*ast.projects, *filter(None, [ast.pending_project])):
            problem = project_name_problem(project)
            if problem is not None:
                self.error(problem, ast.span)
        values: dict[str, Any] = {} if fields is None else fields
        for binding in ast.bindings if fields is None else ():
            decl = provider.fields.get(binding.name)
            if decl is None:
                self.error(f"provider '{provider.name}' has no field '{binding.name}'",
                           binding.span, did_you_mean(binding.name, provider.fields))
                continue
            if binding.name in values:
                self.error(f"field '{binding.name}' is bound twice", binding.span)
            value = binding.value.value
            if valid is not None and (known := valid.get(id(binding))) is not None \
                    and known[0] is decl and known[1] is binding:
                pass  # checked already, against this declaration
            elif _literal_type(value) != decl.type:
                self.error(f"field '{binding.name}' must be a {decl.type}", binding.span)
            elif decl.pattern and isinstance(value, str) and len(value) > MAX_PATTERN_VALUE:
                self.error(f"field '{binding.name}' is {len(value)} characters long: limited to "
                           f"{MAX_PATTERN_VALUE} characters (the most a field's pattern is run "
                           "on)", binding.span,
                           "no real value is this long: check what was pasted here")
            elif decl.pattern and isinstance(value, str) and (
                    matcher := _pattern(decl.pattern)) is not None and not matcher.fullmatch(value):
                self.error(f"field '{binding.name}' is {value!r}: {decl.pattern_message or ''}"
                           .rstrip(": "), binding.span, f"expected a match for {decl.pattern}")
            elif valid is not None:
                if len(valid) >= 4096:  # bounded
                    valid.clear()
                valid[id(binding)] = (decl, binding)
            values[binding.name] = value
        for name, decl in provider.fields.items() if fields is None else ():
            if name not in values:
                if decl.default is None:
                    self.error(f"field '{name}' is missing", ast.span)
                    values[name] = None
                else:
                    values[name] = decl.default.value
        if tails is not None and not ast.rules and not ast.learns and provider.rules \
                and not self.diagnostics:
            tail = _shared_tail(tails, provider, values)
            if tail is not None:
                learns, prefers = tail
                keys = self.side_values(provider.keys, values, ast.span)
                return CheckedPublisher(ast, provider, index, values, None, keys, prefers,
                                        learns)
        scope = _Scope(provider.claims, provider.ast.ignored_prefixes, None, {})
        rules: tuple[A.Rule, ...] | None = None
        if ast.rules:
            rules = self._rules(ast.rules, scope, {})
        elif provider.rules:
            if _bad_glob_possible(provider.rules, values, provider.fields):
                self._bound_globs(ast, provider, bind_rules(_glob_rules(provider.rules), values))
        else:
            self.error(f"publisher has no rules and provider '{provider.name}' has none to "
                       "give it", ast.span, "a publisher without rules would allow any token "
                       "that its lookup keys match")
            rules = ()
        if ast.rules or ast.learns:
            learns = self._learns(ast.learns, scope, {}, provider.fields)
        else:
            learns = _bound_learns(provider.learns, values)
        keys = self.side_values(provider.keys, values, ast.span)
        prefers = self.side_values(provider.prefers, values, ast.span)
        return CheckedPublisher(ast, provider, index, values, rules, keys, prefers, learns)

    def _bound_globs(self, ast: A.Publisher, provider: CheckedProvider,
                     rules: tuple[A.Rule, ...]) -> None:
        """A pattern field bound to only '*' would make its glob match everything."""
        for rule in rules:
            for req in rule.requires:
                for node in A.walk(req.condition):
                    if not (isinstance(node, A.Call) and node.function == "glob"
                            and len(node.args) == 2):
                        continue
                    pattern = node.args[1]
                    if (isinstance(pattern, A.Literal) and isinstance(pattern.value, str)
                            and len(pattern.value) > MAX_GLOB_PATTERN):
                        where = next((b.span for b in ast.bindings
                                      if b.value == pattern), ast.span)
                        self.error(f"rule '{rule.name}': a glob pattern is limited to "
                                   f"{MAX_GLOB_PATTERN} characters (this one has "
                                   f"{len(pattern.value)})", where)
                        continue
                    if (isinstance(pattern, A.Literal) and isinstance(pattern.value, str)
                            and not pattern.value.strip("*")):
                        where = next((b.span for b in ast.bindings
                                      if b.value == pattern), ast.span)
                        self.error(f"rule '{rule.name}': the pattern {pattern.value!r} matches "
                                   "everything", where,
                                   "name what you mean, e.g. \"refs/tags/v*\"")

    def side_values(self, keys: tuple[LookupKey, ...], values: Mapping[str, Any],
                     span: Span) -> tuple[Any, ...]:
        """The publisher sides of `keys` for these field values: a field's value itself,
        any other side kept per the values of the fields it reads (publishers share
        them: `lower(publisher.environment)`); an error is reported, not kept."""
        result = []
        interpreter: Interpreter | None = None
        for key, field_name, read in _side_plan(keys):
            if field_name is not None and field_name in values:
                result.append(values[field_name])  # what the interpreter gives a FieldRef
                continue
            node = key.publisher_side
            try:
                memo: Any = (id(node), tuple([(type(v), v) for v in
                                              [values.get(n, _ABSENT) for n in read]]))
                known = _SIDE_VALUES.get(memo)
            except TypeError:  # pragma: no cover - field values are str, int or bool
                memo, known = None, None
            if known is not None and known[0] is node:
                result.append(known[1])
                continue
            if interpreter is None:
                interpreter = Interpreter({}, {}, values)
            try:
                value = interpreter.value(node)
            except EvalError as exc:
                self.error(f"cannot compute lookup key '{key.label}': {exc}", span)
                result.append(None)
                continue
            if memo is not None:
                if len(_SIDE_VALUES) >= 1024:  # bounded
                    _SIDE_VALUES.clear()
                _SIDE_VALUES[memo] = (node, value)
            result.append(value)
        return tuple(result)

    # ---------------------------------------------------------- expressions
    def condition(self, expr: A.Expr, scope: _Scope) -> None:
        self._need_bool(expr, self.expr(expr, scope), "a condition")

    def _need_bool(self, expr: A.Expr, t: _Type, what: str) -> None:
        if t.base != "bool" or t.nullable:
            hint = None
            if t.base == "bool" or t.base == "any":
                hint = "compare it explicitly, e.g. claims.NAME == true"
            self.error(f"{what} must be a boolean, found {t}", expr.span, hint)

    def expr(self, expr: A.Expr, scope: _Scope, quiet: bool = False) -> _Type:
        if quiet:
            saved = self.diagnostics
            self.diagnostics = []
            try:
                return self.expr(expr, scope)
            finally:
                self.diagnostics = saved
        match expr:
            case A.Literal(value=value):
                return _Type(_literal_type(value)) if value is not None else _Type("null", True)
            case A.ListExpr(items=items):
                types = {self.expr(i, scope).base for i in items}
                return _Type("list", item=types.pop() if len(types) == 1 else "any")
            case A.Claim(name=name):
                return self._claim(expr, scope)
            case A.FieldRef(name=name):
                if scope.fields is None:
                    self.error(f"publisher.{name}: a publisher block's rules cannot read "
                               "publisher fields", expr.span, "write the value itself")
                    return _ANY
                decl = scope.fields.get(name)
                if decl is None:
                    self.error(f"unknown publisher field '{name}'", expr.span,
                               did_you_mean(name, scope.fields))
                    return _ANY
                return _Type(decl.type)
            case A.Request(name=name):
                declared = REQUEST_VALUES.get(name)
                if declared is None:
                    self.error(f"unknown request value '{name}'", expr.span,
                               did_you_mean(name, REQUEST_VALUES)
                               or f"request values: {', '.join(sorted(REQUEST_VALUES))}")
                    return _ANY
                return _Type(declared, True)  # null when the caller gives none
            case A.NameRef(name=name):
                if name in scope.lets:
                    return scope.lets[name]
                hint = did_you_mean(name, scope.lets)
                if hint is None and name in scope.claims:
                    hint = f"a claim is read as claims.{name}"
                if hint is None and scope.fields is not None and name in scope.fields:
                    hint = f"a publisher field is read as publisher.{name}"
                self.error(f"'{name}' is not defined", expr.span, hint)
                return _ANY
            case A.Call():
                return self._call(expr, scope)
            case A.Index(target=target, index=index):
                t = self.expr(target, scope)
                if t.base not in ("list", "any"):
                    self.error(f"only a list can be indexed, found {t}", target.span)
                i = self.expr(index, scope)
                if i.base not in ("int", "any"):
                    self.error(f"a list index must be an integer, found {i}", index.span)
                return _Type(t.item) if t.base == "list" and t.item != "any" else _ANY
            case A.Concat(left=left, right=right):
                for side in (left, right):
                    t = self.expr(side, scope)
                    if t.base not in ("string", "any"):
                        self.error(f"'+' joins strings, found {t}", side.span)
                return _Type("string")
            case A.Compare(op=op, left=left, right=right):
                a, b = self.expr(left, scope), self.expr(right, scope)
                if op in ("==", "!="):
                    if not _comparable(a, b):
                        self.error(f"'{op}' compares {a} with {b}: never equal", expr.span,
                                   "values of different types are never equal")
                else:
                    for side, t in ((left, a), (right, b)):
                        if t.base not in ("int", "any") or t.nullable:
                            self.error(f"'{op}' compares integers, found {t}", side.span)
                return _Type("bool")
            case A.In(item=item, container=container):
                self.expr(item, scope)
                t = self.expr(container, scope)
                if t.base not in ("list", "any"):
                    self.error(f"'in' needs a list on its right, found {t}", container.span)
                return _Type("bool")
            case A.Not(operand=operand):
                self._need_bool(operand, self.expr(operand, scope), "the operand of 'not'")
                return _Type("bool")
            case A.And(left=left, right=right) | A.Or(left=left, right=right):
                word = "and" if isinstance(expr, A.And) else "or"
                for side in (left, right):
                    self._need_bool(side, self.expr(side, scope), f"an operand of '{word}'")
                return _Type("bool")
            case A.Conditional(condition=condition, then=then, otherwise=otherwise):
                self.condition(condition, scope)
                a, b = self.expr(then, scope), self.expr(otherwise, scope)
                if a == b:
                    return a
                if a.base == b.base:
                    return _Type(a.base, True)
                return _ANY
        raise AssertionError(expr)

    def _claim(self, expr: A.Claim, scope: _Scope) -> _Type:
        spec = scope.claims.get(expr.name)
        if spec is None:
            if any(expr.name.startswith(p) for p in scope.ignored_prefixes):
                return _ANY
            self.error(f"unknown claim '{expr.name}'", expr.span,
                       did_you_mean(expr.name, scope.claims)
                       or "a claim must be declared in the provider's claims block")
            return _ANY
        return _Type(spec.type, spec.category not in ("required", "present"))

    def _call(self, expr: A.Call, scope: _Scope) -> _Type:
        entry = FUNCTIONS.get(expr.function)
        if entry is None:
            self.error(f"unknown function '{expr.function}'", expr.span,
                       did_you_mean(expr.function, FUNCTIONS)
                       or f"functions: {', '.join(sorted(FUNCTIONS))}")
            for arg in expr.args:
                self.expr(arg, scope)
            return _ANY
        _, arg_types, result = entry
        if len(expr.args) != len(arg_types):
            self.error(f"{expr.function}() takes {len(arg_types)} argument"
                       f"{'s' if len(arg_types) != 1 else ''}, found {len(expr.args)}", expr.span)
        for arg, expected in zip(expr.args, arg_types, strict=False):
            if expected == "claim":
                if not isinstance(arg, A.Claim):
                    self.error(f"{expr.function}() takes a claim, such as claims.environment",
                               arg.span)
                else:
                    self._claim(arg, scope)
                continue
            t = self.expr(arg, scope)
            if t.base not in (*expected.split("|"), "any"):
                self.error(f"{expr.function}() expects a {expected.replace('|', ' or ')}, "
                           f"found {t}", arg.span)
        if expr.function == "glob" and len(expr.args) == 2:
            pattern = expr.args[1]
            computed = (scope.fields is not None and bool(A.fields_read(pattern))
                        and not A.reads_token(pattern))
            if computed:
                pass  # a publisher field: each publisher's value is checked when bound
            elif not (isinstance(pattern, A.Literal) and isinstance(pattern.value, str)):
                self.error("the pattern of glob() must be a string literal or an expression "
                           "over publisher fields", pattern.span)
            elif pattern.value.strip("*") == "":
                self.error("a glob of only '*' matches everything", pattern.span,
                           "name the refs you mean, e.g. \"refs/tags/v*\"")
            elif len(pattern.value) > MAX_GLOB_PATTERN:
                self.error(f"a glob pattern is limited to {MAX_GLOB_PATTERN} characters",
                           pattern.span)
        if result == "list<string>":
            return _Type("list", item="string")
        return _Type(result)


# The deepest expression once `let`s are filled in (a let may read lets; each is at most
# MAX_POLICY_NESTING deep as written): the checker, the printer and the compiler recurse.
MAX_INLINED_DEPTH = 2 * MAX_POLICY_NESTING


# The most parts (nodes, a let read twice counted twice) filling in lets may add to a `let`
# or a rule's condition (to all of a file's: the total): every later stage walks the
# filled-in tree. Lets reading the one
# before twice (`let d1 = d0 + d0`...) doubled at each line: 34 lines (1 KB) made 2^34 parts
# and lint and compile never ended. The shipped lets have at most 35.
MAX_INLINED_NODES = 4096
MAX_INLINED_TOTAL = 100_000


def _depth(expr: A.Expr) -> int:
    """How deep `expr` nests, walked without recursion."""
    return _shape(expr)[0]


def _shape(expr: A.Expr, done: dict[int, tuple[int, int, A.Expr]] | None = None,
           ) -> tuple[int, int]:
    """How deep `expr` nests and how many nodes it has as a tree, each shared subtree
    (a let filled in twice) walked once, without recursion. `done` keeps the shapes
    found (and their nodes, so that no id is reused) for the next call: a checker passes
    one for a whole file, whose lets are filled in again and again."""
    if done is None:
        done = {}
    stack: list[tuple[A.Expr, bool]] = [(expr, False)]
    while stack:
        node, kids_done = stack.pop()
        if id(node) in done:
            continue
        kids = A.children(node)
        if kids_done:
            depth = count = 0
            for kid in kids:
                kid_depth, kid_count, _ = done[id(kid)]
                count += kid_count
                if kid_depth > depth:
                    depth = kid_depth
            done[id(node)] = (1 + depth, 1 + count, node)
        else:
            stack.append((node, True))
            stack.extend((kid, False) for kid in kids if id(kid) not in done)
    depth, count, _ = done[id(expr)]
    return depth, count


@dataclass(slots=True)
class _Scope:
    claims: Mapping[str, ClaimSpec]
    ignored_prefixes: tuple[str, ...]
    fields: Mapping[str, A.FieldDecl] | None
    lets: dict[str, _Type]


def _literal_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "string"
    return "list"


def _comparable(a: _Type, b: _Type) -> bool:
    if "any" in (a.base, b.base):
        return True
    if a.base == "null":
        return b.nullable
    if b.base == "null":
        return a.nullable
    return a.base == b.base


@dataclass(frozen=True, slots=True)
class CheckedPolicy:
    providers: Mapping[str, CheckedProvider]
    publishers: tuple[CheckedPublisher, ...]


def _by_name(parent: tuple[Any, ...], child: tuple[Any, ...]) -> tuple[Any, ...]:
    """The parent's items with the child's of the same name in their place, then the
    child's other items."""
    own = {item.name: item for item in child}
    merged = [own.pop(item.name, item) for item in parent]
    return (*merged, *(item for item in child if item.name in own))


def extend_provider(child: A.Provider, parent: A.Provider) -> A.Provider:
    """`provider CHILD extends PARENT`: the parent's claims, fields, lets, lookup, learns,
    notes and rules, with the child's added, or in the place of the parent's of the same
    name. Issuers are the child's own; algorithms and workflows the parent's unless given
    (the workflows block's items by name, as fields)."""
    redeclared = {name for decl in child.claims for name in decl.names}
    claims = []
    for decl in parent.claims:
        names = tuple(n for n in decl.names if n not in redeclared)
        if names:
            claims.append(A.ClaimDecl(decl.category, names, decl.type, decl.span))
    return A.Provider(
        name=child.name, issuers=child.issuers, custom_issuers=child.custom_issuers,
        algorithms=child.algorithms or parent.algorithms,
        claims=(*claims, *child.claims),
        ignored_prefixes=tuple(dict.fromkeys((*parent.ignored_prefixes,
                                              *child.ignored_prefixes))),
        fields=_by_name(parent.fields, child.fields),
        lets=_by_name(parent.lets, child.lets),
        lookup=(*parent.lookup, *child.lookup),
        rules=_by_name(parent.rules, child.rules),
        span=child.span,
        learns=_by_name(parent.learns, child.learns),
        notes=(*parent.notes, *child.notes),
        advice=(*parent.advice, *child.advice),
        workflows=child.workflows or parent.workflows,
        # A child naming another kind starts its block afresh; of the same kind, its items
        # replace the parent's of the same name.
        workflow_items=(child.workflow_items if child.workflows not in (None, parent.workflows)
                        else _by_name(parent.workflow_items, child.workflow_items)),
    )


def resolve_extends(ast: A.Provider, known: Mapping[str, CheckedProvider],
                    source_text: str | None = None) -> A.Provider:
    """The provider with its parent's items merged in (see `extend_provider`); raises
    `PolicyCheckError` for an unknown parent."""
    if ast.extends is None:
        return ast
    parent = known.get(ast.extends)
    if parent is None or ast.extends == ast.name:
        raise PolicyCheckError([Diagnostic(
            f"provider '{ast.name}' extends '{ast.extends}', which is not a known provider",
            ast.span, did_you_mean(ast.extends, [n for n in known if n != ast.name])
            or f"known providers: {', '.join(sorted(known)) or 'none'}")], source_text)
    return extend_provider(ast, parent.ast)


def check_provider(ast: A.Provider, source_text: str | None = None,
                   known: Mapping[str, CheckedProvider] | None = None) -> CheckedProvider:
    """Check one provider block; `known` are the providers an `extends` may name."""
    ast = resolve_extends(ast, known or {}, source_text)
    checker = _Checker(ast.span.source)
    provider = checker.provider(ast)
    if checker.diagnostics:
        raise PolicyCheckError(checker.diagnostics, source_text)
    return provider


def check_policy(policy: A.PolicyFile, base_providers: Mapping[str, CheckedProvider],
                 source_text: str | None = None) -> CheckedPolicy:
    """Check a policy file; its own provider blocks take precedence over `base_providers`."""
    checker = _Checker(policy.source)
    providers = dict(base_providers)
    declared: set[str] = set()
    for ast in policy.providers:
        if ast.name in declared:
            checker.error(f"provider '{ast.name}' is declared twice", ast.span)
        declared.add(ast.name)
        try:
            merged = resolve_extends(ast, providers, source_text)
        except PolicyCheckError as exc:
            checker.diagnostics.extend(exc.diagnostics)
            continue
        providers[ast.name] = checker.provider(merged)
    publishers: list[CheckedPublisher] = []
    names: dict[str, A.Publisher] = {}
    for index, ast_pub in enumerate(policy.publishers):
        if ast_pub.name is not None:
            if ast_pub.name in names:
                checker.error(f"publisher name '{ast_pub.name}' is used twice", ast_pub.span,
                              f"first used at {names[ast_pub.name].span}")
            names[ast_pub.name] = ast_pub
        checked = checker.publisher(ast_pub, index, providers)
        if checked is not None:
            publishers.append(checked)
    if checker.diagnostics:
        raise PolicyCheckError(checker.diagnostics, source_text)
    return CheckedPolicy(providers, tuple(publishers))


# `PublisherStream.check_fields`' plan of a field: the Python type of its values, its
# pattern's length bound (0: none), its pattern (None: none, or one that is not a valid
# regular expression), the values found valid.
_FieldPlan: TypeAlias = "tuple[type, int, re.Pattern[str] | None, set[Any]]"
_FIELD_TYPES: dict[str, type] = {"string": str, "int": int, "bool": bool}
_KNOWN_VALUES = 256


def _field_plan(provider: CheckedProvider) -> tuple[tuple[str, ...], tuple[_FieldPlan, ...]]:
    """The provider's field names in its order, and per field `_FieldPlan` (two empty
    tuples when a field's type has no Python type: its publishers are checked with
    bindings)."""
    plan: list[_FieldPlan] = []
    for decl in provider.fields.values():
        python_type = _FIELD_TYPES.get(decl.type)
        if python_type is None:
            return (), ()
        plan.append((python_type, MAX_PATTERN_VALUE if decl.pattern else 0,
                     _pattern(decl.pattern) if decl.pattern else None, set()))
    return tuple(provider.fields), tuple(plan)


def _plain_fields(plan: tuple[tuple[str, ...], tuple[_FieldPlan, ...]],
                  fields: Mapping[str, Any]) -> bool:
    """Do `fields` bind every field of `plan` (in its order) with a value of its type that
    matches its pattern, as `_Checker.publisher` checks each binding?"""
    names, checks = plan
    if not names or len(fields) != len(names) or tuple(fields) != names:
        return False
    for (python_type, limit, matcher, known), value in zip(checks, fields.values(),
                                                            strict=True):
        if value.__class__ is not python_type:
            return False
        if value in known:
            continue
        if limit and value.__class__ is str and ((len(value) > limit) or (
                matcher is not None and not matcher.fullmatch(value))):
            return False
        if len(known) < _KNOWN_VALUES:
            known.add(value)
    return True


class PublisherStream:
    """`check_policy`'s checks of publishers (no provider blocks), one publisher at a time,
    for a file read as a stream: each `check` raises `PolicyCheckError` on a problem,
    without the words for every problem that `check_policy` gives (a caller reading a
    stream checks the whole file with `check_policy` then). Two publishers of the same
    identity are found by hashes of their identities; a hash met twice raises, so that
    the caller checks the file whole."""

    def __init__(self, source: str, providers: Mapping[str, CheckedProvider]) -> None:
        self._source = source
        self._providers = providers
        self._identities: set[int] = set()
        self._valid: dict[int, tuple[A.FieldDecl, A.Binding]] = {}
        self._tails: dict[int, _Tails] = {}
        self._plans: dict[str, tuple[CheckedProvider, tuple[tuple[str, ...],
                                                             tuple[_FieldPlan, ...]]]] = {}

    def check(self, ast: A.Publisher, index: int) -> CheckedPublisher:
        """The checked publisher, or `PolicyCheckError`."""
        checker = _Checker(self._source)
        checked = checker.publisher(ast, index, self._providers, self._valid, self._tails)
        return self._identity(checker, checked)

    def check_fields(self, ast: A.Publisher, fields: Mapping[str, Any],
                     index: int) -> CheckedPublisher:
        """`check` of the publisher `ast` (without bindings) whose fields are `fields`:
        every field of its provider, in the provider's order (as `iter_plain_publishers`
        gives them). Each value is checked against its declaration once per distinct
        value (the first `_KNOWN_VALUES` of a field); the checked publisher's `ast` has
        no bindings (its `fields` are the values). Anything else is checked as `check`
        does, with a binding per field."""
        plan = self._plans.get(ast.provider)
        provider = self._providers.get(ast.provider)
        if provider is not None and (plan is None or plan[0] is not provider):
            plan = self._plans[ast.provider] = (provider, _field_plan(provider))
        if plan is not None and not ast.bindings and not ast.rules \
                and _plain_fields(plan[1], fields):
            quick = self._quick(ast, plan[0], fields, index)
            if quick is not None:
                return quick
            checker = _Checker(self._source)
            checked = checker.publisher(ast, index, self._providers, self._valid,
                                        self._tails, dict(fields))
            return self._identity(checker, checked)
        return self.check(A.Publisher(
            ast.name, ast.provider, ast.projects, ast.pending_project,
            (*ast.bindings, *(A.Binding(name, A.Literal(value)) for name, value in fields.items())),
            ast.rules, ast.span, ast.learns), index)

    def _quick(self, ast: A.Publisher, provider: CheckedProvider, fields: Mapping[str, Any],
               index: int) -> CheckedPublisher | None:
        """`check_fields` of a publisher whose fields are plain (`_plain_fields`) as
        `_Checker.publisher` checks it when its projects are valid and its learn items and
        prefer values are `_shared_tail`'s (the usual publisher), without a checker
        unless a lookup key must be computed; None: check it as `check` does."""
        if ast.learns or not provider.rules:
            return None
        projects, pending = ast.projects, ast.pending_project
        if bool(projects) == (pending is not None):
            return None
        for project in projects if pending is None else (pending,):
            if project_name_problem(project) is not None:
                return None
        values = dict(fields)
        tail = _shared_tail(self._tails, provider, values)
        prefers: tuple[Any, ...] | None
        if tail is None:
            if _bad_glob_possible(provider.rules, values, provider.fields):
                return None
            learns, prefers = _bound_learns(provider.learns, values), None
        else:
            learns, prefers = tail
        keys = _field_sides(provider.keys, values)
        if prefers is None:
            prefers = _field_sides(provider.prefers, values)
        if keys is None or prefers is None:
            checker = _Checker(self._source)
            if keys is None:
                keys = checker.side_values(provider.keys, values, ast.span)
            if prefers is None:
                prefers = checker.side_values(provider.prefers, values, ast.span)
            if checker.diagnostics:
                raise PolicyCheckError(checker.diagnostics)
        return self._identity(None, CheckedPublisher(ast, provider, index, values, None, keys,
                                                     prefers, learns))

    def _identity(self, checker: _Checker | None,
                  checked: CheckedPublisher | None) -> CheckedPublisher:
        """`checked`, or `PolicyCheckError` for a problem or an identity met before."""
        if checked is None or (checker is not None and checker.diagnostics):
            raise PolicyCheckError(checker.diagnostics if checker is not None else [])
        try:
            identity = hash((checked.provider.name, checked.pending, checked.key_values,
                             checked.prefer_values))
        except TypeError:  # a key that cannot be hashed: check the whole file
            raise PolicyCheckError([]) from None
        if identity in self._identities:
            raise PolicyCheckError([])
        self._identities.add(identity)
        return checked


__all__ = ["CheckedPolicy", "CheckedProvider", "CheckedPublisher", "ClaimSpec", "LookupKey",
           "PublisherStream",
           "bind_expr", "check_policy", "check_provider", "did_you_mean", "extend_provider",
           "resolve_extends"]
