"""A tree-walking evaluator: the reference semantics, used for constant folding,
publisher-side lookup keys and explanations. The hot path uses `_compile` instead;
tests check that both agree on arbitrary tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
        match expr:
            case A.Literal(value=value):
                return value
            case A.ListExpr(items=items):
                return [self.value(item) for item in items]
            case A.Claim(name=name):
                return claim_value(self.claims, name, self.claim_types.get(name))
            case A.FieldRef(name=name):
                if self.fields is None or name not in self.fields:
                    raise EvalError(f"publisher field '{name}' is not bound")
                return self.fields[name]
            case A.Request(name=name):
                return request_value(self.claims, name)
            case A.NameRef(name=name):
                raise EvalError(f"'{name}' is not defined")
            case A.Call(function=function, args=args):
                return self._call(function, args)
            case A.Index(target=target, index=index):
                return op_index(self.value(target), self.value(index))
            case A.Concat(left=left, right=right):
                a, b = self.value(left), self.value(right)
                if a.__class__ is not str:
                    raise EvalError(_null_or_type("'+'", left, a))
                if b.__class__ is not str:
                    raise EvalError(_null_or_type("'+'", right, b))
                return a + b
            case A.Compare(op=op, left=left, right=right):
                a, b = self.value(left), self.value(right)
                if op == "==":
                    return strict_equal(a, b)
                if op == "!=":
                    return not strict_equal(a, b)
                if a.__class__ is not int or b.__class__ is not int:
                    raise EvalError(f"'{op}' compares integers, not {describe_type(a)} "
                                    f"and {describe_type(b)}")
                return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
            case A.In(item=item, container=container, negated=negated):
                found = strict_in(self.value(item), self.value(container))
                return not found if negated else found
            case A.Not(operand=operand):
                return not self.boolean(operand)
            case A.And(left=left, right=right):
                return self.boolean(left) and self.boolean(right)
            case A.Or(left=left, right=right):
                return self.boolean(left) or self.boolean(right)
            case A.Conditional(condition=condition, then=then, otherwise=otherwise):
                return self.value(then) if self.boolean(condition) else self.value(otherwise)
        raise EvalError(f"cannot evaluate {type(expr).__name__}")

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
            allowed = tuple(t for name in expected.split("|") for t in _PY_TYPES[name])
            if value.__class__ not in allowed:
                raise EvalError(_null_or_type(f"{function}()", node, value))
        return implementation(*values)


def _null_or_type(where: str, node: A.Expr, value: Any) -> str:
    if value is None and isinstance(node, A.Claim):
        return f"token has no '{node.name}' claim"
    if value is None and isinstance(node, A.Request):
        return f"the request gives no '{node.name}' (the caller supplies it)"
    return f"{where} got {describe_type(value)}"
