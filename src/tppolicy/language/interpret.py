"""A tree-walking evaluator: the reference semantics, used for constant folding,
publisher-side lookup keys and explanations. The hot path uses `_compile` instead;
tests check that both agree on arbitrary tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from tppolicy.language import ast as A
from tppolicy.language.ops import (
    FUNCTIONS,
    REQUEST_KEY,
    REQUEST_VALUES,
    EvalError,
    describe_type,
    op_index,
    strict_equal,
    strict_in,
)

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "int": (int,), "bool": (bool,), "list": (list,), "object": (dict,),
}


def claim_value(claims: Mapping[str, Any], name: str, declared: str | None) -> Any:
    """A claim's value, None when absent; a value of the wrong type is an error."""
    value = claims.get(name)
    if value is None or declared is None or declared == "any":
        return value
    if value.__class__ not in _PY_TYPES[declared]:
        raise EvalError(f"claim '{name}' is {describe_type(value)} ({_short(value)}), "
                        f"expected {_article(declared)}")
    return value


def request_value(claims: Mapping[str, Any], name: str) -> Any:
    """A request value (`request.NAME`), None when the caller gave none."""
    values = claims.get(REQUEST_KEY)
    value = values.get(name) if values is not None else None
    declared = REQUEST_VALUES.get(name)
    if value is None or declared is None:
        return value
    if value.__class__ not in _PY_TYPES[declared]:
        raise EvalError(f"request value '{name}' is {describe_type(value)}, "
                        f"expected {_article(declared)}")
    return value


def _article(type_name: str) -> str:
    return {"int": "an integer", "object": "an object"}.get(type_name, f"a {type_name}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Interpreter:
    """Evaluates expressions over one claims mapping and (optionally) publisher fields."""

    __slots__ = ("claim_types", "claims", "fields")

    def __init__(self, claims: Mapping[str, Any], claim_types: Mapping[str, str],
                 fields: Mapping[str, Any] | None = None) -> None:
        self.claims = claims
        self.claim_types = claim_types
        self.fields = fields

    def boolean(self, expr: A.Expr) -> bool:
        value = self.value(expr)
        if value is not True and value is not False:
            raise EvalError(f"expected a boolean, got {describe_type(value)}")
        return value

    def value(self, expr: A.Expr) -> Any:
        evaluate = self._evaluate.get(expr.__class__)
        if evaluate is None:
            raise EvalError(f"cannot evaluate {type(expr).__name__}")
        return evaluate(self, expr)

    def _literal(self, expr: A.Literal) -> Any:
        return expr.value

    def _list(self, expr: A.ListExpr) -> Any:
        return [self.value(item) for item in expr.items]

    def _claim(self, expr: A.Claim) -> Any:
        return claim_value(self.claims, expr.name, self.claim_types.get(expr.name))

    def _field(self, expr: A.FieldRef) -> Any:
        if self.fields is None or expr.name not in self.fields:
            raise EvalError(f"publisher field '{expr.name}' is not bound")
        return self.fields[expr.name]

    def _request(self, expr: A.Request) -> Any:
        return request_value(self.claims, expr.name)

    def _name(self, expr: A.NameRef) -> Any:
        raise EvalError(f"'{expr.name}' is not defined")

    def _function(self, expr: A.Call) -> Any:
        return self._call(expr.function, expr.args)

    def _index(self, expr: A.Index) -> Any:
        return op_index(self.value(expr.target), self.value(expr.index))

    def _concat(self, expr: A.Concat) -> Any:
        a, b = self.value(expr.left), self.value(expr.right)
        if a.__class__ is not str:
            raise EvalError(_null_or_type("'+'", expr.left, a))
        if b.__class__ is not str:
            raise EvalError(_null_or_type("'+'", expr.right, b))
        return a + b

    def _compare(self, expr: A.Compare) -> Any:
        op = expr.op
        a, b = self.value(expr.left), self.value(expr.right)
        if op == "==":
            return strict_equal(a, b)
        if op == "!=":
            return not strict_equal(a, b)
        if a.__class__ is not int or b.__class__ is not int:
            raise EvalError(f"'{op}' compares integers, not {describe_type(a)} "
                            f"and {describe_type(b)}")
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]

    def _in(self, expr: A.In) -> Any:
        found = strict_in(self.value(expr.item), self.value(expr.container))
        return not found if expr.negated else found

    def _not(self, expr: A.Not) -> Any:
        return not self.boolean(expr.operand)

    def _and(self, expr: A.And) -> Any:
        return self.boolean(expr.left) and self.boolean(expr.right)

    def _or(self, expr: A.Or) -> Any:
        return self.boolean(expr.left) or self.boolean(expr.right)

    def _conditional(self, expr: A.Conditional) -> Any:
        return self.value(expr.then) if self.boolean(expr.condition) \
            else self.value(expr.otherwise)

    # By node class, its evaluation (one dict lookup, not a chain of class patterns:
    # explaining ten thousand publishers evaluates every node of their rules).
    _evaluate: ClassVar[dict[type, Callable[[Interpreter, Any], Any]]] = {
        A.Literal: _literal, A.ListExpr: _list, A.Claim: _claim, A.FieldRef: _field,
        A.Request: _request, A.NameRef: _name, A.Call: _function, A.Index: _index,
        A.Concat: _concat, A.Compare: _compare, A.In: _in, A.Not: _not, A.And: _and,
        A.Or: _or, A.Conditional: _conditional,
    }

    def _call(self, function: str, args: tuple[A.Expr, ...]) -> Any:
        if function == "has":
            arg = args[0]
            if not isinstance(arg, A.Claim):
                raise EvalError("has() takes a claim")
            return self.claims.get(arg.name) is not None
        entry = FUNCTIONS.get(function)
        if entry is None:
            raise EvalError(f"unknown function '{function}'")
        implementation, arg_types, _ = entry
        values = [self.value(arg) for arg in args]
        for node, value, expected in zip(args, values, arg_types, strict=True):
            if value.__class__ not in argument_classes(expected):
                raise EvalError(_null_or_type(f"{function}()", node, value))
        return implementation(*values)


def argument_classes(expected: str) -> tuple[type, ...]:
    """A function argument's declared types ("string|list") as Python classes."""
    allowed = _ALLOWED.get(expected)
    if allowed is None:
        allowed = _ALLOWED[expected] = tuple(
            t for name in expected.split("|") for t in _PY_TYPES[name])
    return allowed


_ALLOWED: dict[str, tuple[type, ...]] = {}


class MemoInterpreter(Interpreter):
    """An `Interpreter` that keeps each node's value (or error), by node: for expressions
    of claims and literals only (bound rules), whose values depend on the node alone while
    the claims stay the same. `explain` ranks ten thousand publishers for one token: their
    bound rules share most nodes (those of no field, those of the values they share)."""

    __slots__ = ("_memo",)

    def __init__(self, claims: Mapping[str, Any], claim_types: Mapping[str, str]) -> None:
        super().__init__(claims, claim_types)
        self._memo: dict[int, tuple[A.Expr, Any, EvalError | None]] = {}

    def value(self, expr: A.Expr) -> Any:
        known = self._memo.get(id(expr))
        if known is not None and known[0] is expr:
            if known[2] is not None:
                raise known[2]
            value = known[1]
            return list(value) if value.__class__ is list else value  # a copy of its own
        try:
            value = Interpreter.value(self, expr)
        except EvalError as exc:
            self._memo[id(expr)] = (expr, None, exc)
            raise
        self._memo[id(expr)] = (expr, list(value) if value.__class__ is list else value, None)
        return value


def _null_or_type(where: str, node: A.Expr, value: Any) -> str:
    if value is None and isinstance(node, A.Claim):
        return f"token has no '{node.name}' claim"
    if value is None and isinstance(node, A.Request):
        return f"the request gives no '{node.name}' (the caller supplies it)"
    return f"{where} got {describe_type(value)}"
