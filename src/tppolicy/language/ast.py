"""The syntax tree of policy files: frozen dataclasses, each with its source span.

Spans are excluded from equality so that a printed and re-parsed policy compares
equal to the original.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from tppolicy.errors import NO_SPAN, Span

Value: TypeAlias = "str | int | bool | list[Value] | None"


# ----------------------------------------------------------------- expressions
@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | bool | None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Claim:
    name: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FieldRef:
    name: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Request:
    """`request.NAME`: a value the caller supplies with the request (the version being
    uploaded), not a claim of the token; null when the caller gave none."""

    name: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class NameRef:
    name: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Expr, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Index:
    target: Expr
    index: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Concat:
    left: Expr
    right: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # == != < <= > >=
    left: Expr
    right: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class In:
    item: Expr
    container: Expr
    negated: bool
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class And:
    left: Expr
    right: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Or:
    left: Expr
    right: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Conditional:
    condition: Expr
    then: Expr
    otherwise: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


Expr: TypeAlias = (
    Literal | ListExpr | Claim | FieldRef | Request | NameRef | Call | Index | Concat | Compare
    | In | Not | And | Or | Conditional
)


# ---------------------------------------------------------------- declarations
@dataclass(frozen=True, slots=True)
class Require:
    condition: Expr
    message: str | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Fix:
    """`fix PLACE when CONDITION "text"`: what to change when its rule fails.

    `place` is where the change goes ("publisher", "workflow or publisher", ...; None: not
    said); `condition` None means always. The text's `{claims.NAME}`, `{publisher.NAME}`,
    `{request.NAME}` and `{NAME}` (a `let`) are filled in when it is shown.
    """

    place: str | None
    condition: Expr | None
    text: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Note:
    """`note when CONDITION "text"`: said to the operator on an allowed decision."""

    condition: Expr | None
    text: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Advice:
    """`advise FIELD when CONDITION "text"`: lint's advice (TPP014) on how a publisher sets
    FIELD (`name`), when CONDITION (on publisher fields and lets) holds for it."""

    name: str
    condition: Expr | None
    text: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    requires: tuple[Require, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    # `optional rule`: left out of a publisher whose fields make it fold to `true`.
    optional: bool = False
    # `identity rule`: checks who the publisher is; its mismatches are not disclosed.
    identity: bool = False
    fixes: tuple[Fix, ...] = ()


@dataclass(frozen=True, slots=True)
class Learn:
    """`learn FIELD: EXPR`: after an allowed decision, a non-null value is reported as
    learned for FIELD (trust on first use)."""

    name: str
    value: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ClaimDecl:
    category: str  # required | present | optional | unchecked
    names: tuple[str, ...]
    type: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FieldDecl:
    name: str
    type: str
    default: Literal | None = None
    pattern: str | None = None
    pattern_message: str | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    # `exact_case "reason"`: the CI spells it in one case and the rules compare it exactly.
    exact_case: str | None = None
    # Where the pattern's string is (its errors point there).
    pattern_span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Let:
    name: str
    value: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class LookupItem:
    kind: str  # key | prefer
    condition: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class WorkflowItem:
    """`NAME: EXPR` in a provider's `workflows KIND { ... }` block: what `tppolicy
    check-workflow` calls NAME (the workflow file, the environment...) for a publisher."""

    name: str
    value: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    issuers: tuple[str, ...] = ()
    custom_issuers: bool = False
    algorithms: tuple[str, ...] = ()
    claims: tuple[ClaimDecl, ...] = ()
    ignored_prefixes: tuple[str, ...] = ()
    fields: tuple[FieldDecl, ...] = ()
    lets: tuple[Let, ...] = ()
    lookup: tuple[LookupItem, ...] = ()
    rules: tuple[Rule, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    learns: tuple[Learn, ...] = ()
    notes: tuple[Note, ...] = ()
    extends: str | None = None  # `provider NAME extends PARENT`
    workflows: str | None = None  # `workflows github_actions`: the CI file format
    advice: tuple[Advice, ...] = ()  # `advise` items: lint's advice on publisher settings
    # The `workflows` block: what check-workflow needs about a publisher, from its fields.
    workflow_items: tuple[WorkflowItem, ...] = ()


@dataclass(frozen=True, slots=True)
class Binding:
    name: str
    value: Literal
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Publisher:
    name: str | None
    provider: str
    projects: tuple[str, ...] = ()
    pending_project: str | None = None
    bindings: tuple[Binding, ...] = ()
    rules: tuple[Rule, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    learns: tuple[Learn, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyFile:
    source: str
    providers: tuple[Provider, ...] = ()
    publishers: tuple[Publisher, ...] = ()


# ------------------------------------------------------------------- traversal
def children(expr: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of `expr`, left to right."""
    reader = _CHILDREN.get(expr.__class__)
    return () if reader is None else reader(expr)


# By class (one dict lookup, not a chain of class patterns: binding a file's publishers
# asks this of every node of every rule).
_CHILDREN: dict[type, Callable[[Any], tuple[Expr, ...]]] = {
    ListExpr: lambda e: e.items,
    Call: lambda e: e.args,
    Index: lambda e: (e.target, e.index),
    Concat: lambda e: (e.left, e.right),
    Compare: lambda e: (e.left, e.right),
    And: lambda e: (e.left, e.right),
    Or: lambda e: (e.left, e.right),
    In: lambda e: (e.item, e.container),
    Not: lambda e: (e.operand,),
    Conditional: lambda e: (e.condition, e.then, e.otherwise),
}


def walk(expr: Expr) -> Iterator[Expr]:
    """`expr` and every expression below it, depth first."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def rebuild(expr: Expr, kids: Sequence[Expr]) -> Expr:
    """A copy of `expr` with its direct sub-expressions replaced (same span)."""
    maker = _REBUILD.get(expr.__class__)
    return expr if maker is None else maker(expr, kids)


def rebuilder(expr: Expr) -> Callable[[Any, Sequence[Expr]], Expr]:
    """`rebuild` for nodes of `expr`'s class: (node, kids) -> the copy."""
    return _REBUILD.get(expr.__class__) or _same


def _same(expr: Expr, kids: Sequence[Expr]) -> Expr:
    return expr


# By class, each node made by its own constructor (`dataclasses.replace` reads the
# class's fields at every call: a third of binding a publisher's rules).
_REBUILD: dict[type, Callable[[Any, Sequence[Expr]], Expr]] = {
    ListExpr: lambda e, k: ListExpr(tuple(k), e.span),
    Call: lambda e, k: Call(e.function, tuple(k), e.span),
    Index: lambda e, k: Index(k[0], k[1], e.span),
    Concat: lambda e, k: Concat(k[0], k[1], e.span),
    Compare: lambda e, k: Compare(e.op, k[0], k[1], e.span),
    And: lambda e, k: And(k[0], k[1], e.span),
    Or: lambda e, k: Or(k[0], k[1], e.span),
    In: lambda e, k: In(k[0], k[1], e.negated, e.span),
    Not: lambda e, k: Not(k[0], e.span),
    Conditional: lambda e, k: Conditional(k[0], k[1], k[2], e.span),
}


def transform(expr: Expr, function: Callable[[Expr], Expr]) -> Expr:
    """Apply `function` bottom-up: to the children first, then to the rebuilt node."""
    kids = children(expr)
    if kids:
        new_kids = tuple(transform(kid, function) for kid in kids)
        if any(new is not old for new, old in zip(new_kids, kids, strict=True)):
            expr = rebuild(expr, new_kids)
    return function(expr)


def claims_read(expr: Expr) -> set[str]:
    return {node.name for node in walk(expr) if isinstance(node, Claim)}


def fields_read(expr: Expr) -> set[str]:
    return {node.name for node in walk(expr) if isinstance(node, FieldRef)}


def requests_read(expr: Expr) -> set[str]:
    return {node.name for node in walk(expr) if isinstance(node, Request)}


def reads_token(expr: Expr) -> bool:
    """Does `expr` read the token's claims or the request's values (known only per request)?"""
    return any(isinstance(node, Claim | Request) for node in walk(expr))
