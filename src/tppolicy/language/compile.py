"""Checked rules → Python functions, built with the `ast` module (never from strings
of source), so that a decision costs about what a hand-written check costs.

Claims are loaded into locals once, with their declared type enforced: a value of
the wrong type becomes `_WRONG_TYPE`, on which every operation raises, so that any
rule touching it fails (the same result as `_interpret`). Every exception inside the
generated function means deny.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tppolicy.language import ast as A
from tppolicy.language.bind import guard_of
from tppolicy.language.check import CheckedProvider, LookupKey
from tppolicy.language.ops import (
    FUNCTIONS,
    REQUEST_KEY,
    REQUEST_VALUES,
    EvalError,
    Glob,
    op_index,
    strict_equal,
    strict_in,
)
from tppolicy.native import EXTENSION_WANTED

Predicate = Callable[[Mapping[str, Any]], bool]
KeyFunction = Callable[[Mapping[str, Any]], tuple[Any, ...]]

_PY_CLASS = {"string": "str", "int": "int", "bool": "bool", "list": "list", "object": "dict"}

# The claims prologue in one C call (`_prologue.c`: the same reads and tests), when the
# install compiled it; below `_PROLOGUE_FROM` claims the Python reads cost no more.
_Prologue: Any = None
_PROLOGUE_FROM = 2
if EXTENSION_WANTED:
    with contextlib.suppress(ImportError):
        from tppolicy.language._prologue import Prologue as _Prologue
_counter = itertools.count()


class _WrongType:
    """Stands for a claim of the wrong type: every use raises."""

    __slots__ = ()

    def _fail(self, *args: object) -> Any:
        raise EvalError("claim of the wrong type")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _fail
    __hash__ = __bool__ = __contains__ = __add__ = __radd__ = __len__ = _fail
    __iter__ = __getitem__ = _fail


_WRONG_TYPE = _WrongType()


def _concat(left: Any, right: Any) -> str:
    if left.__class__ is not str or right.__class__ is not str:
        raise EvalError("'+' joins strings")
    return str(left + right)


def _ordered(op: str) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        if left.__class__ is not int or right.__class__ is not int:
            raise EvalError(f"'{op}' compares integers")
        return {"<": left < right, "<=": left <= right, ">": left > right,
                ">=": left >= right}[op]
    return compare


def _lazy_claim(get: Callable[[Any], Any], name: str, cls: type | None) -> Any:
    """A claim read where it is needed (see `_lazy_reads`), typed as in the prologue."""
    value = get(name)
    if value is None or cls is None or value.__class__ is cls:
        return value
    return _WRONG_TYPE


def _request(get: Callable[[Any], Any], name: str, cls: type | None) -> Any:
    """A request value: None when the caller gave none; of the wrong type, `_WRONG_TYPE`."""
    values = get(REQUEST_KEY)
    if values is None:
        return None
    return _lazy_claim(values.get, name, cls)


def _lookup_value(value: Any) -> Any:
    """Index keys: strings as they are, other values tagged with their type (1 != true)."""
    return value if value.__class__ is str else (value.__class__.__name__, value)


_BASE_NAMESPACE: dict[str, Any] = {
    "_WRONG_TYPE": _WRONG_TYPE, "str": str, "int": int, "bool": bool, "list": list, "dict": dict,
    "len": len,
    "_concat": _concat, "_index": op_index, "_strict_eq": strict_equal, "_strict_in": strict_in,
    "_key": _lookup_value, "_lazy": _lazy_claim, "_request": _request,
    **{f"_f_{name}": implementation for name, (implementation, _, _) in FUNCTIONS.items()},
}


def _lazy_reads(conditions: Sequence[A.Expr]) -> set[tuple[str, str]]:
    """Claims and request values read only where evaluation may not reach: the right side
    of `and` / `or`, a branch of `if`. They are read at their place, not in the prologue,
    so that a constraint a publisher does not use (`v3 or glob(claims.ref, v4)`) costs
    nothing (the claims the provider requires are in the prologue anyway)."""
    eager: set[tuple[str, str]] = set()
    lazy: set[tuple[str, str]] = set()
    seen: set[tuple[str, str]] = set()
    stack: list[tuple[A.Expr, bool]] = [(c, False) for c in conditions]
    while stack:
        node, deferred = stack.pop()
        match node:
            case A.Claim(name=name) | A.Request(name=name):
                read = ("claim" if isinstance(node, A.Claim) else "request", name)
                # Read twice: once in the prologue is cheaper than twice at its places.
                (lazy if deferred and read not in seen else eager).add(read)
                seen.add(read)
            case A.And(left=left, right=right) | A.Or(left=left, right=right):
                stack += [(left, deferred), (right, True)]
            case A.Conditional(condition=condition, then=then, otherwise=otherwise):
                stack += [(condition, deferred), (then, True), (otherwise, True)]
            case _:
                stack += [(kid, deferred) for kid in A.children(node)]
    return lazy - eager


class _Emitter:
    """Translates one function's expressions; records which claims it loads."""

    def __init__(self, provider: CheckedProvider) -> None:
        self.provider = provider
        self.locals: dict[str, str] = {}
        self.request_locals: dict[str, str] = {}
        self.lazy: set[tuple[str, str]] = set()
        self.namespace: dict[str, Any] = {}
        self.types = provider.claim_types
        # Publisher-side values: fields (in derive) or hoisted slots (in templates).
        self.value_locals: dict[str, str] = {}
        self.value_types: dict[str, str] = {name: _PY_CLASS.get(decl.type, "any")
                                             for name, decl in provider.fields.items()}

    def value_local(self, name: str) -> str:
        if name not in self.value_locals:
            self.value_locals[name] = f"v{len(self.value_locals)}"
        return self.value_locals[name]

    def claim_local(self, name: str) -> str:
        if name not in self.locals:
            self.locals[name] = f"c{len(self.locals)}"
        return self.locals[name]

    def request_local(self, name: str) -> str:
        if name not in self.request_locals:
            self.request_locals[name] = f"q{len(self.request_locals)}"
        return self.request_locals[name]

    def defer(self, conditions: Sequence[A.Expr], loaded: Sequence[str]) -> None:
        """Read lazily what `conditions` read only in deferred places (see `_lazy_reads`),
        except the claims in `loaded`, which the prologue reads anyway."""
        self.lazy = {read for read in _lazy_reads(conditions)
                     if not (read[0] == "claim" and read[1] in loaded)}

    def _class(self, declared: str | None) -> ast.expr:
        name = _PY_CLASS.get(declared or "any")
        return ast.Name(name, ast.Load()) if name else ast.Constant(None)

    def static_type(self, expr: A.Expr) -> str:
        """The runtime class an expression is sure to have (or 'any')."""
        match expr:
            case A.Literal(value=value):
                return "any" if value is None else type(value).__name__
            case A.Claim(name=name):
                declared = self.types.get(name, "any")
                return _PY_CLASS.get(declared, "any")
            case A.FieldRef(name=name):
                return self.value_types.get(name, "any")
            case A.Concat():
                return "str"
            case A.Compare() | A.In() | A.Not() | A.And() | A.Or():
                return "bool"
            case A.Call(function=function):
                result = FUNCTIONS[function][2] if function in FUNCTIONS else "any"
                return _PY_CLASS.get(result, "any")
            case A.Conditional(then=then, otherwise=otherwise):
                kind = self.static_type(then)
                return kind if kind == self.static_type(otherwise) else "any"
        return "any"

    def py(self, expr: A.Expr) -> ast.expr:
        match expr:
            case A.Literal(value=value):
                return ast.Constant(value)
            case A.ListExpr(items=items):
                return ast.List([self.py(i) for i in items], ast.Load())
            case A.Claim(name=name):
                if ("claim", name) in self.lazy:
                    return _call("_lazy", [ast.Name("get", ast.Load()), ast.Constant(name),
                                           self._class(self.types.get(name))])
                return ast.Name(self.claim_local(name), ast.Load())
            case A.Request(name=name):
                if ("request", name) in self.lazy:
                    return _call("_request", [ast.Name("get", ast.Load()), ast.Constant(name),
                                              self._class(REQUEST_VALUES.get(name))])
                return ast.Name(self.request_local(name), ast.Load())
            case A.FieldRef(name=name):
                return ast.Name(self.value_local(name), ast.Load())
            case A.Call(function="has", args=(A.Claim() as claim,)):
                return ast.Compare(self.py(claim), [ast.IsNot()], [ast.Constant(None)])
            case A.Call(function="glob", args=(text, A.Literal(value=str(pattern)))):
                matcher = f"_glob{next(_counter)}"
                self.namespace[matcher] = Glob(pattern)
                return _call(matcher, [self.py(text)])
            case A.Call(function=("before" | "after" | "before_last" | "after_last") as function,
                        args=(subject, A.Literal(value=str(separator)))) if (
                    separator and self.static_type(subject) == "str"):
                return self._slice(function, subject, separator)
            case A.Call(function="lower", args=(subject,)) if (
                    self.static_type(subject) == "str"):
                # op_lower inline: str.lower for ASCII text (about every value), else
                # the function; None or a mistyped claim raises as it does.
                first, later = self._named(subject)
                return ast.IfExp(_method(first, "isascii", []), _method(later, "lower", []),
                                 _call("_f_lower", [later]))
            case A.Call(function="strip_suffix", args=(subject, suffix)) if (
                    self.static_type(subject) == "str" and self.static_type(suffix) == "str"):
                # op_strip_suffix inline; the function raises its error when the suffix
                # is not there.
                first, later = self._named(subject)
                tail, tail_later = self._named(suffix)
                cut = ast.BinOp(_call("len", [later]), ast.Sub(), _call("len", [tail_later]))
                return ast.IfExp(_method(first, "endswith", [tail]),
                                 ast.Subscript(later, ast.Slice(None, cut, None), ast.Load()),
                                 _call("_f_strip_suffix", [later, tail_later]))
            case A.Call(function=function, args=args):
                return _call(f"_f_{function}", [self.py(a) for a in args])
            case A.Index(target=target, index=index):
                return _call("_index", [self.py(target), self.py(index)])
            case A.Concat(left=left, right=right):
                if self.static_type(left) == "str" and self.static_type(right) == "str":
                    return ast.BinOp(self.py(left), ast.Add(), self.py(right))
                return _call("_concat", [self.py(left), self.py(right)])
            case A.Compare(op=op, left=left, right=right):
                return self._compare(op, left, right)
            case A.In(item=item, container=A.ListExpr(items=items), negated=negated) if (
                    all(isinstance(i, A.Literal) and isinstance(i.value, str) for i in items)
                    and self.static_type(item) == "str"):
                return ast.Compare(self.py(item), [ast.NotIn() if negated else ast.In()],
                                   [ast.Tuple([self.py(i) for i in items], ast.Load())])
            case A.In(item=item, container=container, negated=negated):
                found = _call("_strict_in", [self.py(item), self.py(container)])
                return ast.UnaryOp(ast.Not(), found) if negated else found
            case A.Not(operand=operand):
                return ast.UnaryOp(ast.Not(), self.py(operand))
            case A.And(left=left, right=right):
                return ast.BoolOp(ast.And(), [self.py(left), self.py(right)])
            case A.Or(left=left, right=right):
                return ast.BoolOp(ast.Or(), [self.py(left), self.py(right)])
            case A.Conditional(condition=condition, then=then, otherwise=otherwise):
                return ast.IfExp(self.py(condition), self.py(then), self.py(otherwise))
        raise EvalError(f"cannot compile {type(expr).__name__}")

    def _named(self, expr: A.Expr) -> tuple[ast.expr, ast.expr]:
        """(the expression's first use, a later use): a local as it is, anything else
        bound to a fresh name by its first use (`(t := ...)`)."""
        value = self.py(expr)
        if isinstance(value, ast.Name):
            return value, value
        name = f"t{next(_counter)}"
        return (ast.NamedExpr(ast.Name(name, ast.Store()), value),
                ast.Name(name, ast.Load()))

    def _slice(self, function: str, subject: A.Expr, separator: str) -> ast.expr:
        """`s[:s.index(sep)]` and friends: str.index raises when the separator is absent
        (an error, as in `_ops`), and on None or a mistyped claim (no such method).

        Python evaluates the subscripted object before the slice, so a computed subject
        is bound there with `:=` and the slice reads the name.
        """
        value = self.py(subject)
        if isinstance(value, ast.Name):
            obj: ast.expr = value
            name = value.id
        else:
            name = f"t{next(_counter)}"
            obj = ast.NamedExpr(ast.Name(name, ast.Store()), value)
        method = "index" if function in ("before", "after") else "rindex"
        position: ast.expr = ast.Call(
            ast.Attribute(ast.Name(name, ast.Load()), method, ast.Load()),
            [ast.Constant(separator)], [])
        if function.startswith("before"):
            return ast.Subscript(obj, ast.Slice(None, position, None), ast.Load())
        start = ast.BinOp(position, ast.Add(), ast.Constant(len(separator)))
        return ast.Subscript(obj, ast.Slice(start, None, None), ast.Load())

    def _compare(self, op: str, left: A.Expr, right: A.Expr) -> ast.expr:
        a, b = self.static_type(left), self.static_type(right)
        if op in ("==", "!="):
            exact = a != "any" and a == b
            null_check = isinstance(right, A.Literal) and right.value is None
            if exact or null_check:
                operator: ast.cmpop = ast.Eq() if op == "==" else ast.NotEq()
                return ast.Compare(self.py(left), [operator], [self.py(right)])
            test = _call("_strict_eq", [self.py(left), self.py(right)])
            return ast.UnaryOp(ast.Not(), test) if op == "!=" else test
        if a == "int" and b == "int":
            operators = {"<": ast.Lt(), "<=": ast.LtE(), ">": ast.Gt(), ">=": ast.GtE()}
            return ast.Compare(self.py(left), [operators[op]], [self.py(right)])
        name = f"_ordered{next(_counter)}"
        self.namespace[name] = _ordered(op)
        return _call(name, [self.py(left), self.py(right)])

    def prologue(self, required: Sequence[str], body_claims: Sequence[str],
                 typed: Sequence[str] = (), request_values: Sequence[str] = (),
                 refused: Any = False) -> list[ast.stmt]:
        """Load claims into locals. Required ones that are missing or mistyped return
        `refused` (False), and so do `typed` ones that are present with another type.
        Claims and request values read lazily (`defer`) are left out."""
        statements: list[ast.stmt] = [_assign("get", ast.Attribute(ast.Name("claims", ast.Load()),
                                                                   "get", ast.Load()))]
        taken = self._taken(required, typed, body_claims, refused)
        if taken is not None:
            statements += taken
            required, typed, body_claims = (), (), ()
        for name in required:
            local = self.claim_local(name)
            statements.append(_assign(local, _call("get", [ast.Constant(name)])))
            declared = _PY_CLASS.get(self.types.get(name, "any"))
            if declared is None:
                test: ast.expr = ast.Compare(ast.Name(local, ast.Load()), [ast.Is()],
                                             [ast.Constant(None)])
            else:
                test = _class_is_not(local, declared)
            statements.append(ast.If(test, [ast.Return(ast.Constant(refused))], []))
        for name in typed:
            local = self.claim_local(name)
            statements.append(_assign(local, _call("get", [ast.Constant(name)])))
            test = ast.BoolOp(ast.And(), [
                _class_is_not(local, _PY_CLASS[self.types[name]]),
                ast.Compare(ast.Name(local, ast.Load()), [ast.IsNot()], [ast.Constant(None)])])
            statements.append(ast.If(test, [ast.Return(ast.Constant(refused))], []))
        for name in body_claims:
            if name in required or name in typed or ("claim", name) in self.lazy:
                continue
            local = self.claim_local(name)
            statements.append(_assign(local, _call("get", [ast.Constant(name)])))
            declared = _PY_CLASS.get(self.types.get(name, "any"))
            if declared is not None:
                # A value of another type stands as _WRONG_TYPE; None stays None.
                # The class test first: for the usual well-typed claim it settles the test.
                test = ast.BoolOp(ast.And(), [
                    _class_is_not(local, declared),
                    ast.Compare(ast.Name(local, ast.Load()), [ast.IsNot()], [ast.Constant(None)])])
                statements.append(ast.If(test, [_assign(local, ast.Name("_WRONG_TYPE",
                                                                        ast.Load()))], []))
        for name in request_values:
            if ("request", name) not in self.lazy:
                statements.append(_assign(self.request_local(name), _call("_request", [
                    ast.Name("get", ast.Load()), ast.Constant(name),
                    self._class(REQUEST_VALUES.get(name))])))
        return statements

    def _taken(self, required: Sequence[str], typed: Sequence[str],
               body_claims: Sequence[str], refused: Any) -> list[ast.stmt] | None:
        """The claims of a prologue read and tested by one C call (`_prologue.Prologue`):
        `values = take(claims)`, None refusing, else unpacked into the claims' locals; None
        without the C module or for fewer than `_PROLOGUE_FROM` claims."""
        reads: list[tuple[str, str | None, int]] = []
        for kind, names in enumerate((required, typed, body_claims)):
            for name in names:
                if kind == 2 and (name in required or name in typed
                                  or ("claim", name) in self.lazy):
                    continue
                declared = _PY_CLASS.get(self.types.get(name, "any"))
                reads.append((name, declared, kind))
        if _Prologue is None or len(reads) < _PROLOGUE_FROM \
                or len({name for name, _, _ in reads}) != len(reads):
            return None
        take = f"_take{next(_counter)}"
        self.namespace[take] = _Prologue(
            tuple(name for name, _, _ in reads),
            tuple(None if declared is None else _BASE_NAMESPACE[declared]
                  for _, declared, _ in reads),
            tuple(kind for _, _, kind in reads), _WRONG_TYPE).take
        values = "_claims_taken"
        targets: list[ast.expr] = [ast.Name(self.claim_local(name), ast.Store())
                                   for name, _, _ in reads]
        return [_assign(values, _call(take, [ast.Name("claims", ast.Load())])),
                ast.If(ast.Compare(ast.Name(values, ast.Load()), [ast.Is()], [ast.Constant(None)]),
                       [ast.Return(ast.Constant(refused))], []),
                ast.Assign([ast.Tuple(targets, ast.Store())], ast.Name(values, ast.Load()))]

    def unpack(self, argument: str, names: Sequence[str]) -> ast.stmt:
        """`v0, v1, ... = argument`: publisher values into locals, in the given order."""
        targets: list[ast.expr] = [ast.Name(self.value_local(n), ast.Store()) for n in names]
        if not targets:
            return ast.Pass()
        target: ast.expr = ast.Tuple(targets, ast.Store()) if len(targets) > 1 else targets[0]
        if len(targets) == 1:
            return ast.Assign([target], ast.Subscript(ast.Name(argument, ast.Load()),
                                                      ast.Constant(0), ast.Load()))
        return ast.Assign([target], ast.Name(argument, ast.Load()))

    def build(self, name: str, statements: list[ast.stmt],
              parameters: Sequence[str] = ("claims",)) -> Callable[..., Any]:
        arguments = ast.arguments(posonlyargs=[], args=[ast.arg(p) for p in parameters],
                                  kwonlyargs=[], kw_defaults=[], defaults=[])
        function = ast.FunctionDef(name=name, args=arguments, body=statements,
                                   decorator_list=[], returns=None)
        if sys.version_info >= (3, 12):
            function.type_params = []
        module = ast.fix_missing_locations(ast.Module([function], type_ignores=[]))
        namespace = {**_BASE_NAMESPACE, **self.namespace}
        exec(compile(module, f"<tppolicy {name}>", "exec"), namespace)
        return namespace[name]  # type: ignore[no-any-return]


def _call(name: str, args: list[ast.expr]) -> ast.expr:
    return ast.Call(ast.Name(name, ast.Load()), args, [])


def _method(subject: ast.expr, name: str, args: list[ast.expr]) -> ast.expr:
    return ast.Call(ast.Attribute(subject, name, ast.Load()), args, [])


def _assign(name: str, value: ast.expr) -> ast.stmt:
    return ast.Assign([ast.Name(name, ast.Store())], value)


def _class_is_not(local: str, class_name: str) -> ast.expr:
    return ast.Compare(ast.Attribute(ast.Name(local, ast.Load()), "__class__", ast.Load()),
                       [ast.IsNot()], [ast.Name(class_name, ast.Load())])


def _guarded(body: ast.expr) -> list[ast.stmt]:
    """`try: return <body> except Exception: return False`: any error denies."""
    return [ast.Try(
        body=[ast.Return(body)],
        handlers=[ast.ExceptHandler(ast.Name("Exception", ast.Load()), None,
                                    [ast.Return(ast.Constant(False))])],
        orelse=[], finalbody=[])]


def compile_predicate(provider: CheckedProvider, rules: Sequence[A.Rule],
                      parameters: Sequence[str] = ("claims",)) -> Any:
    """One function deciding a publisher: required claims present and typed, every rule true.
    With `parameters=("claims", "slots")` it has the signature of a template predicate."""
    emitter = _Emitter(provider)
    conditions = [req.condition for rule in rules for req in rule.requires]
    prologue, expression = _decision_body(emitter, provider, conditions)
    return emitter.build(f"publisher_{next(_counter)}", [*prologue, *_guarded(expression)],
                         parameters)


def _decision_body(emitter: _Emitter, provider: CheckedProvider,
                   conditions: Sequence[A.Expr], sides: Sequence[A.Expr] = (),
                   refused: Any = False) -> tuple[list[ast.stmt], ast.expr]:
    """The claims prologue (required and typed claims checked, else return `refused`)
    and the conjunction of every condition, `true` ones left out. The prologue also
    loads the claims `sides` read (the lookup's, for `compile_template`'s check)."""
    live = [c for c in conditions if not (isinstance(c, A.Literal) and c.value is True)]
    required = [spec.name for spec in provider.required_claims]
    typed = [spec.name for spec in provider.optional_claims]
    body_claims = sorted({n for c in (*live, *sides) for n in A.claims_read(c)})
    requests = sorted({n for c in live for n in A.requests_read(c)})
    emitter.defer([*live, *sides], [*required, *typed])
    if not live:
        expression: ast.expr = ast.Constant(True)
    else:
        parts = [emitter.py(c) for c in live]
        expression = parts[0] if len(parts) == 1 else ast.BoolOp(ast.And(), parts)
    return emitter.prologue(required, body_claims, typed, requests, refused), expression


def compile_required(provider: CheckedProvider) -> Predicate:
    """Are all required and present claims there, with their declared types?"""
    emitter = _Emitter(provider)
    required = [spec.name for spec in provider.required_claims]
    typed = [spec.name for spec in provider.optional_claims]
    statements = [*emitter.prologue(required, [], typed), ast.Return(ast.Constant(True))]
    return emitter.build(f"required_{next(_counter)}", statements)


def compile_claims_side(provider: CheckedProvider, keys: Sequence[LookupKey]) -> KeyFunction:
    """The token's side of lookup keys as a tuple; raises when a key cannot be computed."""
    emitter = _Emitter(provider)
    body_claims = sorted({n for k in keys for n in A.claims_read(k.claims_side)})
    values = [emitter.py(k.claims_side) if emitter.static_type(k.claims_side) == "str"
              else _call("_key", [emitter.py(k.claims_side)]) for k in keys]
    statements = emitter.prologue([], body_claims)
    statements.append(ast.Return(ast.Tuple(values, ast.Load())))
    return emitter.build(f"keys_{next(_counter)}", statements)


class _Missing:
    """A `prefer` value the token cannot give: equal to nothing."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0


MISSING = _Missing()
LookupFunction = Callable[[Mapping[str, Any]], tuple[tuple[Any, ...], tuple[Any, ...]]]


def compile_lookup(provider: CheckedProvider) -> LookupFunction:
    """One function giving the token's side of every key (raises when one cannot be
    computed: the token matches nothing) and of every `prefer` (MISSING when not)."""
    emitter = _Emitter(provider)
    sides = [k.claims_side for k in (*provider.keys, *provider.prefers)]
    body_claims = sorted({n for side in sides for n in A.claims_read(side)})
    emitter.defer(sides, [])
    statements = emitter.prologue([], body_claims)
    keys, prefers, names = _lookup_sides(emitter, provider)
    statements += [_assign("keys", ast.Tuple(keys, ast.Load())), *prefers]
    statements.append(ast.Return(ast.Tuple([ast.Name("keys", ast.Load()),
                                            ast.Tuple(names, ast.Load())], ast.Load())))
    emitter.namespace["_MISSING"] = MISSING
    return emitter.build(f"lookup_{next(_counter)}", statements)


def _lookup_sides(emitter: _Emitter, provider: CheckedProvider
                  ) -> tuple[list[ast.expr], list[ast.stmt], list[ast.expr]]:
    """The token's side of the lookup: the key values (expressions, raising when one
    cannot be computed), the statements computing each `prefer` into `p0`, `p1`...
    (MISSING when it cannot be computed), and those names."""
    keys = [emitter.py(k.claims_side) if emitter.static_type(k.claims_side) == "str"
            else _call("_key", [emitter.py(k.claims_side)]) for k in provider.keys]
    statements: list[ast.stmt] = []
    names: list[ast.expr] = []
    for position, prefer in enumerate(provider.prefers):
        name = f"p{position}"
        names.append(ast.Name(name, ast.Load()))
        side = prefer.claims_side
        if isinstance(side, A.Literal) and isinstance(side.value, str):
            statements.append(_assign(name, ast.Constant(side.value)))  # nothing can fail
            continue
        value = emitter.py(side)
        if emitter.static_type(side) != "str":
            value = _call("_key", [value])
        statements.append(ast.Try(
            body=[_assign(name, value)],
            handlers=[ast.ExceptHandler(ast.Name("Exception", ast.Load()), None,
                                        [_assign(name, ast.Name("_MISSING", ast.Load()))])],
            orelse=[], finalbody=[]))
    return keys, statements, names


def lookup_value(value: Any) -> Any:
    return _lookup_value(value)


# ------------------------------------------------------------------ templates
TemplatePredicate = Callable[[Mapping[str, Any], tuple[Any, ...]], bool]
Derive = Callable[[tuple[Any, ...]], tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]]
Check = Callable[[Mapping[str, Any], Mapping[Any, Any]], Any]
_SEPARATOR = "\x1f"  # between the parts of a bucket key (tppolicy.decide.index.bucket_key)


@dataclass(frozen=True, slots=True)
class Template:
    """A provider's rules compiled once for all its publishers.

    Every largest sub-expression reading only publisher fields (such as
    `lower(publisher.repository_owner + "/" + publisher.repository_name)`) is
    hoisted into a slot that `derive` computes once per publisher, with its lookup
    key and prefer values. A publisher is then a few tuples, not a function (compiling
    one per publisher takes 0.6 ms: ten minutes for a million, which load in 25 s).
    """

    predicate: TemplatePredicate  # (claims, slots) -> allowed
    derive: Derive  # field values in declaration order -> (keys, prefers, slots)
    fields: tuple[str, ...]
    check: Check  # (claims, entries) -> the allowed decision, or None: see _compile_check
    kept: tuple[int, ...]  # the slots an entry's shape holds, after its prefer values


def _hoist(expr: A.Expr, slots: list[A.Expr]) -> A.Expr:
    """`expr` with its publisher-only sub-expressions replaced by slot references."""
    if A.fields_read(expr) and not A.reads_token(expr):
        for position, existing in enumerate(slots):
            if existing == expr:
                return A.FieldRef(f"#{position}", expr.span)
        slots.append(expr)
        return A.FieldRef(f"#{len(slots) - 1}", expr.span)
    kids = A.children(expr)
    if not kids:
        return expr
    return A.rebuild(expr, [_hoist(kid, slots) for kid in kids])


def _template_parts(provider: CheckedProvider
                    ) -> tuple[list[A.Expr], A.Expr | None, list[A.Expr]]:
    """The provider's conditions, and its optional rules' apart with their guard: `off`,
    true when a publisher leaves every optional rule off. None when some optional rule
    has no guard (its conditions then join the others)."""
    conditions = [req.condition for rule in provider.rules if not rule.optional
                  for req in rule.requires]
    optional = [req.condition for rule in provider.rules if rule.optional
                for req in rule.requires]
    guards = [guard for guard in map(guard_of, optional) if guard is not None]
    if not optional or len(guards) != len(optional):
        return [*conditions, *optional], None, []
    off = guards[0]
    for guard in guards[1:]:
        off = A.And(off, guard)
    return conditions, off, optional


def compile_template(provider: CheckedProvider) -> Template:
    """The provider's rules as one predicate over (claims, slots), and `derive`.

    The optional rules (constraints most publishers leave off) are compiled into a second
    function with slots of their own, nested last in the publisher's slots, and called
    only when the publisher uses one: `off or optional(claims, slots[-1])`. A publisher
    that uses none pays one test for all of them.
    """
    fields = tuple(provider.fields)
    main, off, optional = _template_parts(provider)
    slots: list[A.Expr] = []
    conditions = [_hoist(c, slots) for c in main]
    off_slot = _hoist(off, slots) if off is not None else None
    optional_slots: list[A.Expr] = []
    optional_conditions = [_hoist(c, optional_slots) for c in optional]

    # derive(fields) -> (keys, prefers, slots)
    derive = _Emitter(provider)
    statements: list[ast.stmt] = [derive.unpack("fields", fields)]
    keys = [_call("_key", [derive.py(k.publisher_side)]) for k in provider.keys]
    statements.append(_assign("keys", ast.Tuple(keys, ast.Load())))
    names: list[ast.expr] = []

    def compute(expr: A.Expr, prefer: bool) -> list[ast.stmt]:
        name = f"d{len(names)}"
        names.append(ast.Name(name, ast.Load()))
        value = _call("_key", [derive.py(expr)]) if prefer else derive.py(expr)
        failed = "_MISSING" if prefer else "_WRONG_TYPE"
        return [ast.Try(
            body=[_assign(name, value)],
            handlers=[ast.ExceptHandler(ast.Name("Exception", ast.Load()), None,
                                        [_assign(name, ast.Name(failed, ast.Load()))])],
            orelse=[], finalbody=[])]

    for prefer in provider.prefers:
        statements += compute(prefer.publisher_side, True)
    for expr in slots:
        statements += compute(expr, False)
    count, main_count = len(provider.prefers), len(provider.prefers) + len(slots)
    slot_values = names[count:main_count]
    if off_slot is not None:
        # A publisher that leaves every optional rule off never reads their slots: they
        # are not computed, and all such publishers share one empty tuple.
        computing: list[ast.stmt] = []
        for expr in optional_slots:
            computing += compute(expr, False)
        computing.append(_assign("optional", ast.Tuple(names[main_count:], ast.Load())))
        assert isinstance(off_slot, A.FieldRef)  # publisher-only: hoisted whole
        off_name = names[count + int(off_slot.name.removeprefix("#"))]
        statements.append(ast.If(
            ast.Compare(off_name, [ast.Is()], [ast.Constant(True)]),
            [_assign("optional", ast.Tuple([], ast.Load()))], computing))
        slot_values.append(ast.Name("optional", ast.Load()))
    statements.append(ast.Return(ast.Tuple([
        ast.Name("keys", ast.Load()), ast.Tuple(names[:count], ast.Load()),
        ast.Tuple(slot_values, ast.Load())], ast.Load())))
    derive.namespace["_MISSING"] = MISSING
    derive_function = derive.build(f"derive_{next(_counter)}", statements, ("fields",))

    # predicate(claims, slots), and check(claims, table)
    optional_function = None if off_slot is None else _optional_predicate(
        provider, optional_conditions, optional_slots)

    def body(emitter: _Emitter, sides: Sequence[A.Expr], refused: Any
             ) -> tuple[list[ast.stmt], ast.expr, list[str]]:
        for position, expr in enumerate(slots):
            emitter.value_types[f"#{position}"] = emitter.static_type(expr)
        prologue, expression = _decision_body(emitter, provider, conditions, sides, refused)
        slot_names = [f"#{i}" for i in range(len(slots))]
        if off_slot is not None:
            emitter.namespace["_optional"] = optional_function
            slot_names.append("#optional")
            use = ast.BoolOp(ast.Or(), [emitter.py(off_slot), _call("_optional", [
                ast.Name("claims", ast.Load()), ast.Name(emitter.value_local("#optional"),
                                                         ast.Load())])])
            expression = use if isinstance(expression, ast.Constant) else ast.BoolOp(
                ast.And(), [expression, use])
        return prologue, expression, slot_names

    emitter = _Emitter(provider)
    prologue, expression, slot_names = body(emitter, (), False)
    unpack = emitter.unpack("slots", slot_names)
    predicate = emitter.build(f"template_{next(_counter)}",
                              [*prologue, unpack, *_guarded(expression)], ("claims", "slots"))
    check, kept = _compile_check(provider, body, slots)
    return Template(predicate, derive_function, fields, check, kept)


def _compile_check(provider: CheckedProvider, body: Callable[
        [_Emitter, Sequence[A.Expr], Any], tuple[list[ast.stmt], ast.expr, list[str]]],
                   slots: Sequence[A.Expr]) -> tuple[Check, tuple[int, ...]]:
    """The common decision in one function, and the layout of the entries it reads.

    `check(claims, table)` computes the token's lookup key as the index joins it
    (`"\x1f".join`), finds its entry, and returns the entry's value (the publisher's
    allowed decision) when the entry's `prefer` values choose it (as
    `ProviderIndex.choose` does for one candidate) and the rules allow; None in any
    other case (no such key, a key not made of strings, a claim missing or mistyped,
    any error), where the general path decides. The index keeps an entry only for a
    key that a single publisher of the template holds: its allowed decision, with the
    shape `(*prefer, *kept slots)` as its aux (`QuickTable.put`), the slots kept being
    those at the positions returned. Publishers configured alike share one shape
    object (the index keeps one per distinct shape), so a random check among a million
    publishers reads few cache lines: the table's slot and the decision's first line,
    not a record, its tuples and values.

    Those two lines come from main memory, the second found in the first: the check
    asks for the slot as soon as it has the key (`table.prefetch`), runs meanwhile
    the rules that read no value of the shape, then takes the shape (`table.aux`,
    which asks for the decision's lines), runs the other rules, and takes the
    decision last (`table.value`, only while the entry still holds that shape). Among
    a million publishers a check then waits on memory for about 0.4 us less.

    A slot that is a lookup key's field (`publisher.repository_owner`) is not kept:
    when the token's key equals the publisher's, the token's part is the field's value
    (the index keeps entries only for keys holding exactly n-1 separators: equal keys
    then have equal parts).
    """
    emitter = _Emitter(provider)
    sides = [k.claims_side for k in (*provider.keys, *provider.prefers)]
    prologue, expression, slot_names = body(emitter, sides, None)
    keys, prefers, names = _lookup_sides(emitter, provider)
    parts = {key.publisher_side.name: f"k{position}"
             for position, key in enumerate(provider.keys)
             if isinstance(key.publisher_side, A.FieldRef)
             and provider.fields[key.publisher_side.name].type == "string"}
    halves = {}
    split: dict[int, tuple[int, str, str]] = {}  # before's key -> (after's, local, sep)
    for (i, left), (j, right) in itertools.permutations(enumerate(provider.keys), 2):
        match left.publisher_side, left.claims_side, right.publisher_side, right.claims_side:
            case (A.FieldRef(name=a), A.Call(function="before", args=(whole, A.Literal(
                    value=str(sep)))), A.FieldRef(name=b), A.Call(
                    function="after", args=(other, A.Literal(value=str(same))))) if (
                    whole == other and sep and sep == same and a in parts and b in parts):
                local = emitter.py(whole)  # a claim's local, read by the key: a str
                if isinstance(local, ast.Name):
                    halves[a, sep, b] = local.id
                    split[i] = (j, local.id, sep)
    # Slots made of key fields and string literals only: rebuilt from the key's parts.
    given = {f"#{i}": _joined(expr, parts, halves) for i, expr in enumerate(slots)
             if _joined(expr, parts, halves) is not None}
    kept = tuple(i for i, name in enumerate(slot_names) if name not in given)

    def refuse(test: ast.expr) -> ast.stmt:
        return ast.If(test, [ast.Return(ast.Constant(None))], [])

    statements: list[ast.stmt] = []
    halved = {j for j, _, _ in split.values()}
    for i, key in enumerate(keys):
        if i in split:  # before(X, sep) and after(X, sep): one partition
            j, whole_local, sep = split[i]
            statements.append(ast.Assign([ast.Tuple([ast.Name(f"k{i}", ast.Store()), ast.Name(
                f"s{i}", ast.Store()), ast.Name(f"k{j}", ast.Store())], ast.Store())], _method(
                    ast.Name(whole_local, ast.Load()), "partition", [ast.Constant(sep)])))
            statements.append(refuse(ast.UnaryOp(ast.Not(), ast.Name(f"s{i}", ast.Load()))))
        elif i not in halved:
            statements.append(_assign(f"k{i}", key))
    statements.append(_assign("key", ast.Call(
        ast.Attribute(ast.Constant(_SEPARATOR), "join", ast.Load()),
        [ast.Tuple([ast.Name(f"k{i}", ast.Load()) for i in range(len(keys))], ast.Load())],
        [])))
    targets: list[ast.expr] = [ast.Name(f"e{i}", ast.Store()) for i in range(len(names))]
    targets += [ast.Name(emitter.value_local(slot_names[i]), ast.Store()) for i in kept]
    # The rules that read no value of the entry's shape run while the CPU fetches the
    # entry (`table.prefetch`), the others while it fetches the decision (`table.aux`).
    shape_names = {target.id for target in targets if isinstance(target, ast.Name)}
    early, late = _split_conjuncts(expression, shape_names)
    givens = [_assign(emitter.value_local(slot), value) for slot, value in given.items()
              if value is not None]
    if early:
        statements.append(ast.Expr(_method(ast.Name("table", ast.Load()), "prefetch",
                                           [ast.Name("key", ast.Load())])))
        statements += givens
        statements += prefers
        statements.append(refuse(ast.UnaryOp(ast.Not(), _conjunction(early))))
    statements.append(_assign("shape", _method(ast.Name("table", ast.Load()), "aux",
                                               [ast.Name("key", ast.Load())])))
    if targets:
        statements.append(ast.Assign([ast.Tuple(targets, ast.Store())],
                                     ast.Name("shape", ast.Load())))
    if not early:
        statements += prefers
    if names:
        chosen: list[ast.expr] = [
            ast.Compare(ast.Name(f"e{i}", ast.Load()), [ast.Eq()], [name])
            for i, name in enumerate(names)]
        statements.append(refuse(ast.UnaryOp(ast.Not(), chosen[0] if len(chosen) == 1
                                             else ast.BoolOp(ast.Or(), chosen))))
    if not early:
        statements += givens
    found = ast.Return(_method(ast.Name("table", ast.Load()), "value",
                              [ast.Name("key", ast.Load()), ast.Name("shape", ast.Load())]))
    statements.append(ast.If(_conjunction(late), [found], []) if late else found)
    checked = ast.Try(body=statements, handlers=[ast.ExceptHandler(
        ast.Name("Exception", ast.Load()), None, [ast.Return(ast.Constant(None))])],
                      orelse=[], finalbody=[])
    emitter.namespace["_MISSING"] = MISSING
    function: Check = emitter.build(f"check_{next(_counter)}",
                                    [*prologue, checked, ast.Return(ast.Constant(None))],
                                    ("claims", "table"))
    return function, kept


def _conjunction(parts: Sequence[ast.expr]) -> ast.expr:
    return parts[0] if len(parts) == 1 else ast.BoolOp(ast.And(), list(parts))


def _split_conjuncts(expression: ast.expr, late_names: set[str]
                     ) -> tuple[list[ast.expr], list[ast.expr]]:
    """The top-level conjuncts of `expression` in two lists, each in its order: those
    reading none of `late_names` (nor a name a late one assigns, `:=`), and the others.
    Both lists hold, together, exactly when `expression` does: a quick check only
    answers when every conjunct held, and None (the general path decides) on any
    exception, whichever conjunct raised it first. A constant expression stays late."""
    conjuncts: list[ast.expr] = []
    stack = [expression]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
            stack += reversed(node.values)
        else:
            conjuncts.append(node)
    if len(conjuncts) == 1 and isinstance(conjuncts[0], ast.Constant):
        return [], conjuncts
    late = set(late_names)
    is_late = [False] * len(conjuncts)
    changed = True
    while changed:
        changed = False
        for position, conjunct in enumerate(conjuncts):
            if is_late[position]:
                continue
            read = {n.id for n in ast.walk(conjunct) if isinstance(n, ast.Name)}
            if read & late:
                is_late[position] = changed = True
                late |= {n.target.id for n in ast.walk(conjunct)
                         if isinstance(n, ast.NamedExpr) and isinstance(n.target, ast.Name)}
    return ([c for c, lazy in zip(conjuncts, is_late, strict=True) if not lazy],
            [c for c, lazy in zip(conjuncts, is_late, strict=True) if lazy])


def _joined(expr: A.Expr, parts: Mapping[str, str],
            halves: Mapping[tuple[str, str, str], str]) -> ast.expr | None:
    """A slot made of lookup-key fields (`parts`: field -> local holding the token's
    key part, a str) and string literals, joined by `+`: the same value built from the
    token's key parts (one f-string: every piece is a str, so formatting is joining);
    None for any other slot. `halves` (field a, separator, field b) -> local X, when the
    keys are `a == before(X, sep)` and `b == after(X, sep)`: `a + sep + b` is X."""
    leaves: list[A.Expr] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, A.Concat):
            stack += [node.right, node.left]
        elif (isinstance(node, A.FieldRef) and node.name in parts) or (
                isinstance(node, A.Literal) and isinstance(node.value, str)):
            leaves.append(node)
        else:
            return None
    pieces: list[ast.expr] = []
    position = 0
    while position < len(leaves):
        match leaves[position:position + 3]:
            case [A.FieldRef(name=a), A.Literal(value=str(sep)), A.FieldRef(name=b)] if (
                    (a, sep, b) in halves):
                pieces.append(ast.FormattedValue(ast.Name(halves[a, sep, b], ast.Load()), -1,
                                                 None))
                position += 3
                continue
        match leaves[position]:
            case A.FieldRef(name=name):
                pieces.append(ast.FormattedValue(ast.Name(parts[name], ast.Load()), -1, None))
            case A.Literal(value=str(text)):
                pieces.append(ast.Constant(text))
        position += 1
    if len(pieces) == 1 and isinstance(pieces[0], ast.FormattedValue):
        return pieces[0].value
    return ast.JoinedStr(pieces)


def _optional_predicate(provider: CheckedProvider, conditions: Sequence[A.Expr],
                        slots: Sequence[A.Expr]) -> Callable[..., bool]:
    """The optional rules' conditions over (claims, their slots). Called after the main
    predicate's prologue: the required claims are there, with their types."""
    emitter = _Emitter(provider)
    for position, expr in enumerate(slots):
        emitter.value_types[f"#{position}"] = emitter.static_type(expr)
    body_claims = sorted({n for c in conditions for n in A.claims_read(c)})
    requests = sorted({n for c in conditions for n in A.requests_read(c)})
    emitter.defer(conditions, [])
    parts = [emitter.py(c) for c in conditions]
    expression = parts[0] if len(parts) == 1 else ast.BoolOp(ast.And(), parts)
    prologue = emitter.prologue([], body_claims, (), requests)
    unpack = emitter.unpack("slots", [f"#{i}" for i in range(len(slots))])
    function: Callable[..., bool] = emitter.build(
        f"optional_{next(_counter)}", [*prologue, unpack, *_guarded(expression)],
        ("claims", "slots"))
    return function
