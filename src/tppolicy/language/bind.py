"""Binding a publisher's fields into its provider's rules, and constant folding.

The result is the concrete policy `tppolicy compile` prints: rules that read only
claims and literals, simplified so that a reviewer reads what a token must carry
(`lower("Octo-Org/repo")` becomes `"octo-org/repo"`; a rule whose publisher field
is empty folds to `true`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any, Literal, overload

from tppolicy.errors import Span
from tppolicy.language import ast as A
from tppolicy.language.interpret import Interpreter
from tppolicy.language.interpret import argument_classes as _argument_classes
from tppolicy.language.ops import FUNCTIONS, EvalError, op_index, strict_equal, strict_in
from tppolicy.memo import ByIdentity

_NO_CLAIMS: Mapping[str, Any] = {}
_OPEN = (A.Claim, A.FieldRef, A.NameRef, A.Request)


def _literal_node(value: Any, span: Span) -> A.Expr | None:
    if value is None or value.__class__ in (str, int, bool):
        return A.Literal(value, span)
    if value.__class__ is list and all(v is None or v.__class__ in (str, int, bool)
                                      for v in value):
        return A.ListExpr(tuple(A.Literal(v, span) for v in value), span)
    return None


def _is_closed(expr: A.Expr) -> bool:
    return not any(isinstance(node, _OPEN) for node in A.walk(expr))


def _closed_memo() -> Callable[[A.Expr], bool]:
    """`_is_closed` for one bottom-up pass: each node's answer from its children's, kept
    (with the node, so that its id stays its own) for the nodes above."""
    known: dict[int, tuple[A.Expr, bool]] = {}

    def closed(node: A.Expr) -> bool:
        found = known.get(id(node))
        if found is not None:
            return found[1]
        answer = not isinstance(node, _OPEN) and all(closed(k) for k in A.children(node))
        known[id(node)] = (node, answer)
        return answer

    return closed


def _simplify(expr: A.Expr, is_closed: Callable[[A.Expr], bool] = _is_closed) -> A.Expr:
    match expr:
        case A.Literal() | A.Claim():
            return expr
        case A.And(left=A.Literal(value=True), right=right):
            return right
        case A.And(left=A.Literal(value=False)):
            return A.Literal(False, expr.span)
        case A.And(left=left, right=A.Literal(value=True)):
            return left
        case A.Or(left=A.Literal(value=True)):
            return A.Literal(True, expr.span)
        case A.Or(left=A.Literal(value=False), right=right):
            return right
        case A.Or(left=left, right=A.Literal(value=False)):
            return left
        case A.Conditional(condition=A.Literal(value=True), then=then):
            return then
        case A.Conditional(condition=A.Literal(value=False), otherwise=otherwise):
            return otherwise
    if isinstance(expr, A.ListExpr) or not is_closed(expr):
        return expr
    try:
        value = Interpreter(_NO_CLAIMS, {}).value(expr)
    except EvalError:
        return expr  # left as written: it fails at run time, with its reason
    return _literal_node(value, expr.span) or expr


def fold(expr: A.Expr) -> A.Expr:
    """Evaluate every sub-expression that reads no claim."""
    return A.transform(expr, _simplify)


def bind_expr(expr: A.Expr, values: Mapping[str, Any]) -> A.Expr:
    """Replace `publisher.NAME` by its value, then fold (bottom-up, as `A.transform`).

    Each sub-expression's result is kept for the values of the fields it reads: the
    publishers of a file share most values, so their common parts are folded once. And
    each expression's largest parts of fields and literals (`lower(publisher.owner + "/"
    + publisher.name)`) are values once bound: where the folding around them read none
    of them but for their kinds (a string, true, false, null, an integer), another
    publisher's expression bound is the first one's with its own values put in their
    places (`_Shape`), not a new walk of the whole expression."""
    plan = _plan_of(expr)
    parts = plan.parts
    if not parts:
        return _bind_node(expr, values)[0]
    try:
        part_values = plan.evaluate(values)
        kinds = shape_kinds(part_values)
        shape: _Shape | None = plan.shapes.get(kinds, _NO_SHAPE)
    except (EvalError, TypeError):  # a part that fails (left written), or unhashable
        return _bind_node(expr, values)[0]
    if shape is not _NO_SHAPE:
        if shape is not None and (not shape.read or all(
                exact_value(part_values[i]) == exact for i, exact in shape.read)):
            made = shape.put(part_values, parts)
            if len(_PUT) >= _CACHE_LIMIT:
                _PUT.clear()
            _PUT[id(made)] = (made, shape, part_values, parts)
            return made
        return _bind_node(expr, values)[0]
    result = _bind_node(expr, values)[0]
    if len(plan.shapes) < _SHAPES_PER_EXPRESSION:  # bounded: integers are kinds of their own
        plan.shapes[kinds] = _shape_of(expr, parts, values, result)
    return result


def shaped(node: A.Expr) -> tuple[_Shape, Sequence[Any], Sequence[A.Expr]] | None:
    """For an expression `bind_expr` made by putting a publisher's values in a shape
    (while kept: the last few thousand), the shape, the values and the parts: another
    way to the same tree is `shape.put(values, parts)`, with other values (the printer
    writes such a tree once per shape, its values put in the text)."""
    found = _PUT.get(id(node))
    if found is None or found[0] is not node:
        return None
    return found[1], found[2], found[3]


# Per expression bound by a shape (kept with it, so that its id stays its own): the shape,
# the values, the parts.
_PUT: dict[int, tuple[A.Expr, _Shape, Sequence[Any], Sequence[A.Expr]]] = {}


class FieldParts:
    """Parts of fields and literals (`parts`) evaluated for many publishers: by the
    interpreter, then, once used a few times, by one Python function (`_evaluator`)."""

    __slots__ = ("compiled", "parts", "uses")

    def __init__(self, parts: tuple[A.Expr, ...]) -> None:
        self.parts = parts
        self.uses = 0
        self.compiled: Callable[[Mapping[str, Any]], list[Any]] | None = None

    def evaluate(self, values: Mapping[str, Any]) -> list[Any]:
        """The parts' values, as the interpreter gives them (its `EvalError` when one
        fails)."""
        compiled = self.compiled
        if compiled is None:
            self.uses += 1
            if self.uses == _COMPILE_AFTER:
                self.compiled = compiled = _evaluator(self.parts)
        if compiled is not None and compiled is not _NOT_COMPILED:
            try:
                return compiled(values)
            except Exception:
                pass
        interpreter = Interpreter(_NO_CLAIMS, {}, values)
        return [interpreter.value(part) for part in self.parts]


class _Plan(FieldParts):
    """An expression prepared for binding many publishers: its largest parts of fields and
    literals (`parts`, evaluated as `FieldParts` does), and its `_Shape` per tuple of their
    values' kinds (None: bound anew each time)."""

    __slots__ = ("expr", "shapes")

    def __init__(self, expr: A.Expr) -> None:
        super().__init__(_largest_valued(expr))
        self.expr = expr
        self.shapes: dict[tuple[Any, ...], _Shape | None] = {}



class _Shape:
    """An expression bound for one publisher, with the places its parts' values went
    (`places`: the id of a node of `bound` -> the part's index), the nodes above them
    (`above`), and the parts whose values the folding read (`read`: index, exact value),
    which another publisher's must equal for `put` to give its expression bound."""

    __slots__ = ("above", "bound", "make", "places", "read", "uses")

    def __init__(self, bound: A.Expr, places: dict[int, int], above: frozenset[int],
                 read: tuple[tuple[int, Any], ...]) -> None:
        self.bound = bound
        self.places = places
        self.above = above
        self.read = read
        self.uses = 0
        self.make: Callable[[Sequence[Any]], A.Expr] | None = None

    def put(self, part_values: Sequence[Any], parts: Sequence[A.Expr]) -> A.Expr:
        make = self.make
        if make is None:
            self.uses += 1
            if self.uses == _COMPILE_AFTER:
                self.make = make = _builder(self.bound, self.places, self.above, parts)
        if make is not None:
            return make(part_values)
        nodes = [_literal_node(v, part.span) for v, part in zip(part_values, parts,
                                                                   strict=True)]
        places, above = self.places, self.above

        def build(node: A.Expr) -> A.Expr:
            index = places.get(id(node))
            if index is not None:
                placed = nodes[index]
                assert placed is not None  # each kind's values make literal nodes
                return placed
            if id(node) not in above:
                return node
            return A.rebuild(node, [build(kid) for kid in A.children(node)])

        return build(self.bound)


_NO_SHAPE: Any = object()
_SHAPES_PER_EXPRESSION = 64
# Per expression (kept in its plan, so that its id stays its own): its `_Plan`.
_SHAPES: dict[int, _Plan] = {}
# An expression's parts, and a shape's building, are made Python functions when used this
# many times: a file of a few publishers does not pay for compiling them.
_COMPILE_AFTER = 4


# ------------------------------------------------- parts and shapes as Python functions
class _Unfit(Exception):
    """What the compiled evaluation of parts cannot give as the interpreter does: it
    evaluates them again, and fails (or not) with its own words."""


def _unfit() -> Any:
    raise _Unfit


def _cat(a: Any, b: Any) -> str:
    if a.__class__ is str and b.__class__ is str:
        return a + b
    raise _Unfit


def _truth(value: Any) -> bool:
    if value is True or value is False:
        return value
    raise _Unfit


def _order(op: str, a: Any, b: Any) -> bool:
    if a.__class__ is not int or b.__class__ is not int:
        raise _Unfit
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _function(name: str, *values: Any) -> Any:
    implementation, arg_types, _ = FUNCTIONS[name]
    if len(values) != len(arg_types):
        raise _Unfit
    for value, expected in zip(values, arg_types, strict=True):
        if value.__class__ not in _argument_classes(expected):
            raise _Unfit
    return implementation(*values)


_NOT_COMPILED: Any = lambda values: None  # noqa: E731 - a marker: parts that stay interpreted


def _evaluator(parts: Sequence[A.Expr]) -> Callable[[Mapping[str, Any]], list[Any]]:
    """`parts`' values for a publisher's fields, as one Python function: the interpreter's
    semantics (tests check both agree), raising where it would fail (`_Unfit`, or the
    operation's own error), so that the caller asks the interpreter instead. Values and
    names are the function's constants, never written into its source."""
    namespace: dict[str, Any] = {
        "_cat": _cat, "_truth": _truth, "_order": _order, "_function": _function,
        "_eq": strict_equal, "_in": strict_in, "_index": op_index, "_unfit": _unfit,
        "__builtins__": {}}

    def constant(value: Any) -> str:
        name = f"k{len(namespace)}"
        namespace[name] = value
        return name

    def py(node: A.Expr) -> str:
        if isinstance(node, A.Literal):
            return constant(node.value)
        if isinstance(node, A.FieldRef):
            return f"f[{constant(node.name)}]"
        kids = [py(kid) for kid in A.children(node)]
        if isinstance(node, A.ListExpr):
            return "[" + "".join(kid + ", " for kid in kids) + "]"
        if isinstance(node, A.Concat):
            return f"_cat({kids[0]}, {kids[1]})"
        if isinstance(node, A.Compare):
            if node.op in ("==", "!="):
                return f"({'' if node.op == '==' else 'not '}_eq({kids[0]}, {kids[1]}))"
            return f"_order({constant(node.op)}, {kids[0]}, {kids[1]})"
        if isinstance(node, A.In):
            found = f"_in({kids[0]}, {kids[1]})"
            return f"(not {found})" if node.negated else found
        if isinstance(node, A.Not):
            return f"(not _truth({kids[0]}))"
        if isinstance(node, A.And):
            return f"(_truth({kids[0]}) and _truth({kids[1]}))"
        if isinstance(node, A.Or):
            return f"(_truth({kids[0]}) or _truth({kids[1]}))"
        if isinstance(node, A.Conditional):
            return f"({kids[1]} if _truth({kids[0]}) else {kids[2]})"
        if isinstance(node, A.Index):
            return f"_index({kids[0]}, {kids[1]})"
        if isinstance(node, A.Call) and node.function in FUNCTIONS:
            return f"_function({constant(node.function)}, {', '.join(kids)})"
        return "_unfit()"  # has(), an unknown function: the interpreter's to say

    try:
        source = "lambda f: [" + "".join(py(part) + ", " for part in parts) + "]"
        function: Callable[[Mapping[str, Any]], list[Any]] = eval(
            compile(source, "<tppolicy bind>", "eval"), namespace)
    except (RecursionError, SyntaxError, MemoryError):  # pragma: no cover - bounded nesting
        return _NOT_COMPILED  # type: ignore[no-any-return]
    return function


def _builder(bound: A.Expr, places: Mapping[int, int], above: frozenset[int],
             parts: Sequence[A.Expr]) -> Callable[[Sequence[Any]], A.Expr] | None:
    """`_Shape.put`'s building as one Python function of the parts' values: a string's
    place gets a literal node of its own (the part's span), a place of any other kind the
    shape's own node (the shape holds that value exactly: it is one of its kinds), each
    node above a place made by its class's constructor (`A.rebuild`'s), the others the
    shape's own. None when it cannot be made (the walk then builds)."""
    namespace: dict[str, Any] = {"__builtins__": {}, "L": A.Literal}

    def constant(value: Any) -> str:
        name = f"k{len(namespace)}"
        namespace[name] = value
        return name

    def py(node: A.Expr) -> str:
        index = places.get(id(node))
        if index is not None:
            if isinstance(node, A.Literal) and node.value.__class__ is str:
                return f"L(v[{index}], {constant(parts[index].span)})"
            return constant(node)
        if id(node) not in above:
            return constant(node)
        kids = "".join(py(kid) + ", " for kid in A.children(node))
        return f"{constant(A.rebuilder(node))}({constant(node)}, ({kids}))"

    try:
        return eval(compile("lambda v: " + py(bound), "<tppolicy shape>", "eval"),  # type: ignore[no-any-return]
                    namespace)
    except (RecursionError, SyntaxError, MemoryError):  # pragma: no cover - bounded nesting
        return None


# A part's kind: what of its value the folding around it may read when it does not read
# the value itself. A string's content is never tested (only true, false, null and
# integers are: `true and X` is X, and the pattern True matches 1): every string's kind is
# STRING_CLASSES; any other value's is itself (`exact_value`).
STRING_CLASSES = (str,)


def exact_value(value: Any) -> Any:
    return (value.__class__, tuple(value) if value.__class__ is list else value)


def shape_kinds(part_values: Iterable[Any]) -> tuple[Any, ...]:
    """What a shape is kept under: any string alike (its class), every other value
    exactly (`exact_value`)."""
    return tuple([STRING_CLASSES if v.__class__ is str else exact_value(v)
                  for v in part_values])


def _largest_valued(expr: A.Expr) -> tuple[A.Expr, ...]:
    """The parts of `expr` that read fields and literals only, largest first met, in the
    order binding meets them (left to right); none inside a part reading no field."""
    found: list[A.Expr] = []

    def visit(node: A.Expr) -> None:
        _, _, fixed, valued = _node_info(node)
        if fixed is not None:
            return
        if valued:
            found.append(node)
            return
        for kid in A.children(node):
            visit(kid)

    visit(expr)
    return tuple(found)


def _shape_of(expr: A.Expr, parts: tuple[A.Expr, ...], values: Mapping[str, Any],
              result: A.Expr) -> _Shape | None:
    """`expr` bound again without the caches, each part's literal a node of its own, to
    see where each went; None when a part's value makes no literal node."""
    index = {id(part): i for i, part in enumerate(parts)}
    made: dict[int, tuple[A.Expr, int]] = {}
    interpreter = Interpreter(_NO_CLAIMS, {}, values)

    def bind(node: A.Expr) -> tuple[A.Expr, bool]:
        _, _, fixed, valued = _node_info(node)
        if fixed is not None:
            return fixed
        if valued:
            literal = _literal_node(interpreter.value(node), node.span)
            if literal is None:
                raise _Unshaped
            made[id(literal)] = (literal, index[id(node)])
            return literal, True
        result, closed = _combine(node, [bind(kid) for kid in A.children(node)], values)
        if closed and result.__class__ not in (A.Literal, A.ListExpr):
            # Reading parts and nothing open, yet not folded: its evaluation failed (or
            # made no literal), which may hang on a part's content (`before(X, "/")` of a
            # string without '/'): another publisher's may fold. Bound anew each time.
            raise _Unshaped
        return result, closed

    try:
        bound = bind(expr)[0]
    except (_Unshaped, EvalError):
        return None
    if bound != result:  # not the same binding: never shaped (a safeguard)
        return None
    places: dict[int, int] = {}
    above: set[int] = set()

    def mark(node: A.Expr) -> bool:
        placed = made.get(id(node))
        if placed is not None and placed[0] is node:
            places[id(node)] = placed[1]
            return True
        below = False
        for kid in A.children(node):
            below = mark(kid) or below
        if below:
            above.add(id(node))
        return below

    mark(bound)
    # A part met twice (a `let` used twice) whose value is in one place only was read too.
    placed_count = Counter(places.values())
    made_count = Counter(i for _, i in made.values())
    read = tuple((i, exact_value(interpreter.value(part))) for i, part in enumerate(parts)
                 if placed_count[i] < made_count[i])
    return _Shape(bound, places, frozenset(above), read)


class _Unshaped(Exception):
    """A part whose value makes no literal node, or a node of parts left unfolded: the
    expression is bound anew each time."""


_ABSENT = object()
# Per expression node: the node (so that its id stays its own), the fields it reads, and
# for a node reading none, the node folded and whether that reads no claim (binding
# leaves such a node as folding does, whatever the values: it is folded once). Per
# (node, the values of its fields): the node bound and folded, and whether that reads no
# claim. The last item: used again since the last eviction.
_NODE_INFO: dict[int, tuple[A.Expr, tuple[str, ...], tuple[A.Expr, bool] | None, bool]] = {}
_BOUND_NODES: dict[tuple[Any, ...], tuple[A.Expr, A.Expr, bool, bool]] = {}
_CACHE_LIMIT = 4096
_TOKEN_OR_NAME = (A.Claim, A.Request, A.NameRef)


def _node_info(node: A.Expr
               ) -> tuple[A.Expr, tuple[str, ...], tuple[A.Expr, bool] | None, bool]:
    """(node, the fields it reads, its fold if it reads none, whether it reads fields and
    nothing else that stays open: bound, it is a value)."""
    known = _NODE_INFO.get(id(node))
    if known is None or known[0] is not node:
        if len(_NODE_INFO) >= _CACHE_LIMIT:
            _NODE_INFO.clear()
        fields = tuple(sorted(A.fields_read(node)))
        fixed = None
        if not fields:
            folded = fold(node)
            fixed = (folded, _is_closed(folded))
        valued = bool(fields) and node.__class__ is not A.ListExpr and not any(
            isinstance(n, _TOKEN_OR_NAME) for n in A.walk(node))
        known = _NODE_INFO[id(node)] = (node, fields, fixed, valued)
    return known


def _bind_node(node: A.Expr, values: Mapping[str, Any]) -> tuple[A.Expr, bool]:
    """(`node` bound and folded, whether the result reads no claim, field or name)."""
    _, fields, fixed, valued = _node_info(node)
    if fixed is not None:
        return fixed
    key: tuple[Any, ...] | None = (id(node), *[
        (v.__class__, v) for v in [values.get(f, _ABSENT) for f in fields]])
    try:
        found = _BOUND_NODES.get(key)  # type: ignore[arg-type]
    except TypeError:  # a value that cannot be hashed: not kept
        key, found = None, None
    if found is not None and found[0] is node:
        if not found[3]:
            _BOUND_NODES[key] = (*found[:3], True)  # type: ignore[index]
        return found[1], found[2]
    if valued:  # fields and literals only: its value at once, not node by node
        try:
            literal = _literal_node(Interpreter(_NO_CLAIMS, {}, values).value(node), node.span)
        except EvalError:
            literal = None  # folded node by node below: the part that fails stays written
        if literal is not None:
            if key is not None:
                if len(_BOUND_NODES) >= _CACHE_LIMIT:
                    _evict_cold()
                _BOUND_NODES[key] = (node, literal, True, False)
            return literal, True
    result, result_closed = _combine(
        node, [_bind_node(k, values) for k in A.children(node)], values)
    if key is not None:
        if len(_BOUND_NODES) >= _CACHE_LIMIT:
            _evict_cold()
        _BOUND_NODES[key] = (node, result, result_closed, False)
    return result, result_closed


def _combine(node: A.Expr, bound_kids: list[tuple[A.Expr, bool]],
             values: Mapping[str, Any]) -> tuple[A.Expr, bool]:
    """`node` over its children bound (each with whether it reads no claim), folded."""
    kids = A.children(node)
    new_kids = [b[0] for b in bound_kids]
    rebuilt = node
    for new, old in zip(new_kids, kids, strict=True):
        if new is not old:
            rebuilt = A.rebuild(node, new_kids)
            break
    closed = not isinstance(rebuilt, _OPEN) and all(b[1] for b in bound_kids)
    if isinstance(rebuilt, A.FieldRef) and rebuilt.name in values:
        result = _literal_node(values[rebuilt.name], rebuilt.span) or rebuilt
    else:
        result = _simplify(rebuilt, lambda e: closed if e is rebuilt else _is_closed(e))
    kid_closed = (b[1] for b in bound_kids if b[0] is result)
    result_closed = closed if result is rebuilt else next(kid_closed, None)
    if result_closed is None:
        result_closed = _is_closed(result)
    return result, result_closed


def _evict_cold() -> None:
    """Make room: keep the entries used again since the last eviction (the values most
    publishers share), drop the others (one publisher's own values)."""
    hot = {k: (*v[:3], False) for k, v in _BOUND_NODES.items() if v[3]}
    _BOUND_NODES.clear()
    if len(hot) < _CACHE_LIMIT // 2:
        _BOUND_NODES.update(hot)


def _is_literal(expr: A.Expr, value: object) -> bool:
    return isinstance(expr, A.Literal) and expr.value is value


def bind_rules(rules: tuple[A.Rule, ...], values: Mapping[str, Any]) -> tuple[A.Rule, ...]:
    """The rules with the publisher's fields bound and folded.

    A `require` that folds to `true` is left out of a rule that keeps others; an optional
    rule all of whose requires fold to `true` is left out altogether (the publisher does not
    use that constraint). A rule kept is no longer optional: it is one of the publisher's.
    """
    # Each rule bound is kept for the values of the fields it reads: a publisher bound
    # again (explaining the same near miss again, as a server does) finds most of its
    # rules, and the publishers of a file share most of theirs.
    return _bind_rules(rules, values)


def guard_of(condition: A.Expr) -> A.Expr | None:
    """The operands of a condition's top-level `or` chain that read publisher fields and
    nothing of the token: when they hold, the condition holds whatever the token (an
    optional rule's `publisher.ref_pattern == ""`). None when there are none."""
    operands: list[A.Expr] = []
    stack = [condition]
    while stack:
        node = stack.pop()
        if isinstance(node, A.Or):
            stack += [node.right, node.left]
        elif A.fields_read(node) and not A.reads_token(node):
            operands.append(node)
    guard: A.Expr | None = None
    for operand in operands:
        guard = operand if guard is None else A.Or(guard, operand)
    return guard


def optional_rule_off(rule: A.Rule, values: Mapping[str, Any]) -> bool:
    """Is this optional rule off for these fields (left out when bound)? Decided on the
    guards alone, without binding the rule."""
    return _off(rule, values)


def _off(rule: A.Rule, values: Mapping[str, Any]) -> bool:
    """Is an optional rule off for these fields (each require's guard holds)? Decided on
    the guards alone, without binding the whole rule."""
    interpreter = Interpreter(_NO_CLAIMS, {}, values)
    for req in rule.requires:
        guard = _guard(req.condition)
        if guard is None:
            return False
        try:
            if interpreter.value(guard) is not True:
                return False
        except EvalError:
            return False
    return True


# guard_of per condition: every publisher's optional rules ask it.
_GUARDS: ByIdentity[A.Expr, A.Expr | None] = ByIdentity()


def _guard(condition: A.Expr) -> A.Expr | None:
    return _GUARDS.get(condition, guard_of)


def _bind_rules(rules: tuple[A.Rule, ...], values: Mapping[str, Any]) -> tuple[A.Rule, ...]:
    bound: list[A.Rule] = []
    if len(rules) < 2:  # (a tuple of one rule is often made for the call)
        for rule in rules:
            one = _bind_rule_cached(rule, values)
            if one is not None:
                bound.append(one)
        return tuple(bound)
    for rule, off in zip(rules, rules_off(rules, values), strict=True):
        if off:
            continue  # a constraint the publisher leaves off
        one = _bind_rule_cached(rule, values, off_asked=True)
        if one is not None:
            bound.append(one)
    return tuple(bound)


_ABSENT = object()
# Per rule: the publisher fields it reads (the rule kept with them, so that its id stays its
# own), and each rule bound for the values of just those fields. Publishers of a file share
# most of their values (a workflow file, an environment, a provider's defaults), so most of
# their rules are bound once, not once per publisher.
_RULE_FIELDS: dict[int, tuple[A.Rule, tuple[str, ...], Callable[[Mapping[str, Any]], Any]]] = {}


def _no_values(values: Mapping[str, Any]) -> Any:
    return ()


def _reader(names: Sequence[str]) -> Callable[[Mapping[str, Any]], Any]:
    """The values of these fields with their classes, as a key (0, false and 0.0 are
    equal keys of a dict, not equal values); `KeyError` for a field not given."""
    if not names:
        return _no_values
    if len(names) == 1:
        name = names[0]

        def one(values: Mapping[str, Any]) -> Any:
            value = values[name]
            return value.__class__, value

        return one
    get = itemgetter(*names)

    def several(values: Mapping[str, Any]) -> Any:
        read = get(values)
        return read, tuple(map(type, read))

    return several
_BOUND_RULES: dict[tuple[int, tuple[Any, ...]], tuple[A.Rule, A.Rule | None]] = {}
_BOUND_RULES_LIMIT = 1024


def _bind_rule_cached(rule: A.Rule, values: Mapping[str, Any], *,
                      off_asked: bool = False) -> A.Rule | None:
    """`_bind_rule`, kept per the values of the fields the rule reads. `off_asked`: an
    optional rule known not off."""
    if rule.optional and not off_asked and _off_cached(rule, values):
        return None  # a constraint the publisher leaves off (most leave most off)
    key = _rule_key(rule, values)
    try:
        found = _BOUND_RULES.get(key)
    except TypeError:  # a value that cannot be hashed: not cached
        return _bind_rule(rule, values)
    if found is not None and found[0] is rule:
        return found[1]
    result = _bind_rule_shaped(rule, values, off_asked=True)
    if len(_BOUND_RULES) >= _BOUND_RULES_LIMIT:
        _BOUND_RULES.clear()
    _BOUND_RULES[key] = (rule, result)
    return result


def _rule_key(rule: A.Rule, values: Mapping[str, Any]) -> tuple[int, Any]:
    """The key of `rule` bound for these values: its id and the values of the fields it
    reads, with their classes (a `TypeError` to hash when one cannot be hashed)."""
    known = _RULE_FIELDS.get(id(rule))
    if known is None or known[0] is not rule:
        names = sorted({name for req in rule.requires for name in A.fields_read(req.condition)})
        if len(_RULE_FIELDS) >= _BOUND_RULES_LIMIT:
            _RULE_FIELDS.clear()
        known = _RULE_FIELDS[id(rule)] = (rule, tuple(names), _reader(names))
    try:  # the values of the fields it reads (a publisher's fields hold every one)
        read = known[2](values)
    except KeyError:
        read = tuple(values.get(name, _ABSENT) for name in known[1])
        read = (read, tuple(map(type, read)))
    return (id(rule), read)


class DeferredRule:
    """A provider's rule bound for one publisher by the rule's shape (`_RuleShape`), not
    made: `rule()` makes the rule `bind_rules` gives (an equal tree). The printer writes
    it from its shape's text with its values put in, without the tree: `shape.live` gives
    per require kept (the require, its condition bound when its shape is None; the shape
    of its condition; where that shape's values are in `values`; its parts)."""

    __slots__ = ("printed", "shape", "values")

    def __init__(self, shape: _RuleShape, values: Sequence[Any]) -> None:
        self.shape = shape
        self.values = values
        self.printed: list[str] | None = None  # the printer's lines, kept with it

    @property
    def name(self) -> str:
        rule = self.shape.rule
        assert rule is not None  # a shape that leaves the rule out makes no DeferredRule
        return rule.name

    def rule(self) -> A.Rule:
        """The rule bound (as `bind_rules` makes it)."""
        made = self.shape.make(self.values)
        assert made is not None
        return made


def bind_rules_deferred(rules: tuple[A.Rule, ...], values: Mapping[str, Any]
                        ) -> tuple[A.Rule | DeferredRule, ...]:
    """`bind_rules`, each rule that a shape of the rule makes left as a `DeferredRule`
    (made by `DeferredRule.rule()`: the same rule), for a caller that prints the rules
    (the printer writes a shape's rule from its text). The others are `bind_rules`'s own
    (shared with it: kept per the values of the fields each reads)."""
    bound: list[A.Rule | DeferredRule] = []
    for rule, off in zip(rules, rules_off(rules, values), strict=True):
        if off:
            continue  # a constraint the publisher leaves off
        one = _bind_rule_deferred(rule, values)
        if one is not None:
            bound.append(one)
    return tuple(bound)


def rules_off(rules: tuple[A.Rule, ...], values: Mapping[str, Any]) -> tuple[bool, ...]:
    """Per rule, whether it is optional and off (`_off`), kept per the values of the fields
    all the optional rules' guards read: one look-up for a publisher's rules (most
    publishers leave most constraints at their defaults)."""
    known = _RULES_GUARDS.get(id(rules))
    if known is None or known[0] is not rules:
        names = sorted({name for rule in rules if rule.optional for req in rule.requires
                        if (guard := _guard(req.condition)) is not None
                        for name in A.fields_read(guard)})
        if len(_RULES_GUARDS) >= 256:
            _RULES_GUARDS.clear()
        known = _RULES_GUARDS[id(rules)] = (rules, _reader(names))
    try:
        key = (id(rules), known[1](values))
        found = _OFFS.get(key)
    except (KeyError, TypeError):  # a field not given, or a value not hashable
        return tuple(rule.optional and _off_cached(rule, values) for rule in rules)
    if found is None or found[0] is not rules:
        if len(_OFFS) >= _BOUND_RULES_LIMIT:
            _OFFS.clear()
        found = _OFFS[key] = (rules, tuple(rule.optional and _off_cached(rule, values)
                                           for rule in rules))
    return found[1]


# Per tuple of rules: the fields its optional rules' guards read (the tuple kept with
# them); per (tuple, their values): whether each rule is optional and off.
_RULES_GUARDS: dict[int, tuple[tuple[A.Rule, ...], Callable[[Mapping[str, Any]], Any]]] = {}
_OFFS: dict[tuple[int, Any], tuple[tuple[A.Rule, ...], tuple[bool, ...]]] = {}


def _bind_rule_deferred(rule: A.Rule, values: Mapping[str, Any]) -> A.Rule | DeferredRule | None:
    """`_bind_rule_cached` of a rule not off, deferred (`bind_rules_deferred`). A rule
    whose bindings are seldom found again (one per publisher: its repository) is not
    kept, once `_KEPT_TRIES` of them have shown it."""
    uses = _DEFERRED_USES.get(id(rule))
    if uses is None or uses[0] is not rule:
        if len(_DEFERRED_USES) >= _BOUND_RULES_LIMIT:
            _DEFERRED_USES.clear()
        uses = _DEFERRED_USES[id(rule)] = [rule, 0, 0]
    if uses[1] >= _KEPT_TRIES and uses[2] * 4 < uses[1]:  # found again for < 1 in 4
        return _bind_rule_shaped(rule, values, off_asked=True, defer=True)
    uses[1] += 1
    key = _rule_key(rule, values)
    try:
        found = _BOUND_RULES.get(key)
    except TypeError:  # a value that cannot be hashed: not cached
        return _bind_rule(rule, values)
    if found is not None and found[0] is rule:
        uses[2] += 1
        return found[1]
    deferred = _DEFERRED_RULES.get(key)
    if deferred is not None and deferred[0] is rule:
        uses[2] += 1
        return deferred[1]
    result = _bind_rule_shaped(rule, values, off_asked=True, defer=True)
    if result.__class__ is DeferredRule:
        if len(_DEFERRED_RULES) >= _BOUND_RULES_LIMIT:
            _DEFERRED_RULES.clear()
        _DEFERRED_RULES[key] = (rule, result)
        return result
    assert not isinstance(result, DeferredRule)
    if len(_BOUND_RULES) >= _BOUND_RULES_LIMIT:
        _BOUND_RULES.clear()
    _BOUND_RULES[key] = (rule, result)
    return result


# Per rule (kept with it, so that its id stays its own): [rule, bindings asked for in
# `_bind_rule_deferred`, found kept]; counted until `_KEPT_TRIES`, then while kept.
_DEFERRED_USES: dict[int, list[Any]] = {}
_KEPT_TRIES = 256
# Per (rule, the values of the fields it reads), as `_BOUND_RULES`: the rule deferred.
_DEFERRED_RULES: dict[tuple[int, Any], tuple[A.Rule, DeferredRule]] = {}


def _bind_rule(rule: A.Rule, values: Mapping[str, Any]) -> A.Rule | None:
    """One rule bound, or None when the publisher does not use it (see `bind_rules`)."""
    if rule.optional and _off(rule, values):
        return None
    return bind_requires(rule, values)


def _off_cached(rule: A.Rule, values: Mapping[str, Any]) -> bool:
    """`_off`, kept per values of the fields its guards read (a few: the constraint's own
    fields, which most publishers leave at their defaults)."""
    known = _GUARD_FIELDS.get(id(rule))
    if known is None or known[0] is not rule:
        names = sorted({name for req in rule.requires
                        if (guard := _guard(req.condition)) is not None
                        for name in A.fields_read(guard)})
        if len(_GUARD_FIELDS) >= _BOUND_RULES_LIMIT:
            _GUARD_FIELDS.clear()
        known = _GUARD_FIELDS[id(rule)] = (rule, _reader(names))
    try:
        key = (id(rule), known[1](values))
        found = _OFF.get(key)
    except (KeyError, TypeError):  # a field not given, or a value not hashable
        return _off(rule, values)
    if found is None or found[0] is not rule:
        if len(_OFF) >= _BOUND_RULES_LIMIT:
            _OFF.clear()
        found = _OFF[key] = (rule, _off(rule, values))
    return found[1]


# Per optional rule: the fields its guards read (the rule kept with them); per (rule, their
# values): whether the rule is off.
_GUARD_FIELDS: dict[int, tuple[A.Rule, Callable[[Mapping[str, Any]], Any]]] = {}
_OFF: dict[tuple[int, Any], tuple[A.Rule, bool]] = {}


@overload
def _bind_rule_shaped(rule: A.Rule, values: Mapping[str, Any], *, off_asked: bool = ...,
                      defer: Literal[False] = ...) -> A.Rule | None: ...


@overload
def _bind_rule_shaped(rule: A.Rule, values: Mapping[str, Any], *, off_asked: bool = ...,
                      defer: bool) -> A.Rule | DeferredRule | None: ...


def _bind_rule_shaped(rule: A.Rule, values: Mapping[str, Any], *,
                      off_asked: bool = False, defer: bool = False
                      ) -> A.Rule | DeferredRule | None:
    """`_bind_rule`, by the rule's shape for its parts' kinds when it has one (`_RuleShape`:
    the parts of all its requires evaluated at once, one look-up, the rule made by one
    function), else require by require. `off_asked`: an optional rule known not off."""
    if rule.optional and not off_asked and _off(rule, values):
        return None
    plan = RULE_PLANS.get(id(rule))
    if plan is None or plan.rule is not rule:
        if len(RULE_PLANS) >= _CACHE_LIMIT:
            RULE_PLANS.clear()
        plan = RULE_PLANS[id(rule)] = _RulePlan(rule)
    if not plan.parts:
        return bind_requires(rule, values)
    try:
        part_values = plan.evaluate(values)
        kinds = shape_kinds(part_values)
        shape: _RuleShape | None = plan.shapes.get(kinds, _NO_SHAPE)
    except (EvalError, TypeError):  # a part that fails, or unhashable: require by require
        return bind_requires(rule, values)
    if shape is _NO_SHAPE:
        result = bind_requires(rule, values)
        if len(plan.shapes) < _SHAPES_PER_EXPRESSION:
            plan.shapes[kinds] = _rule_shape(plan, kinds, part_values, values, result)
        return result
    if shape is None or (shape.read and not all(exact_value(part_values[i]) == exact
                                                for i, exact in shape.read)):
        return bind_requires(rule, values)
    if defer:
        return None if shape.rule is None else DeferredRule(shape, part_values)
    return shape.make(part_values)


class _RulePlan(FieldParts):
    """A rule prepared for binding many publishers: the parts of all its requires (each
    require's `_Plan`'s, one after the other: `spans` gives each require's), evaluated as
    `FieldParts` does, and its `_RuleShape` per kinds of their values."""

    __slots__ = ("plans", "rule", "shapes", "spans")

    def __init__(self, rule: A.Rule) -> None:
        plans = [_plan_of(req.condition) for req in rule.requires]
        spans: list[tuple[int, int]] = []
        parts: list[A.Expr] = []
        for plan in plans:
            spans.append((len(parts), len(parts) + len(plan.parts)))
            parts += plan.parts
        super().__init__(tuple(parts))
        self.rule = rule
        self.plans = plans
        self.spans = spans
        self.shapes: dict[tuple[Any, ...], _RuleShape | None] = {}


class _RuleShape:
    """A rule bound for one publisher, as its requires' shapes: for another publisher
    whose parts' values are of the same kinds (and equal where a require's folding read
    them: `read`), the rule bound is made from its values by `make`: each live require's
    condition put by its shape (a require of no part is the one bound before), the
    requires that fold to true left out as binding leaves them."""

    __slots__ = ("live", "read", "rule")

    def __init__(self, rule: A.Rule | None,
                 live: tuple[tuple[A.Require, _Shape | None, int, int,
                                   tuple[A.Expr, ...]], ...],
                 read: tuple[tuple[int, Any], ...]) -> None:
        self.rule = rule
        self.live = live
        self.read = read

    def make(self, part_values: Sequence[Any]) -> A.Rule | None:
        rule = self.rule
        if rule is None:
            return None
        requires: list[A.Require] = []
        for require, shape, start, stop, parts in self.live:
            if shape is None:
                requires.append(require)
                continue
            own = part_values[start:stop]
            made = shape.put(own, parts)
            if len(_PUT) >= _CACHE_LIMIT:
                _PUT.clear()
            _PUT[id(made)] = (made, shape, own, parts)
            requires.append(A.Require(made, require.message, require.span))
        return A.Rule(rule.name, tuple(requires), rule.span)


def _rule_shape(plan: _RulePlan, kinds: tuple[Any, ...], part_values: Sequence[Any],
                values: Mapping[str, Any], result: A.Rule | None) -> _RuleShape | None:
    """The rule's shape for these kinds, from its requires' shapes; None when one of them
    has none (it is then bound require by require), or when the shape does not make the
    rule `result` for these values (a safeguard)."""
    rule = plan.rule
    bound: list[tuple[A.Require, _Shape | None, int, int, tuple[A.Expr, ...]]] = []
    read: list[tuple[int, Any]] = []
    for req, expr_plan, (start, stop) in zip(rule.requires, plan.plans, plan.spans,
                                             strict=True):
        condition = bind_expr(req.condition, values)
        shape: _Shape | None = None
        if stop > start:
            found = expr_plan.shapes.get(kinds[start:stop])
            if not isinstance(found, _Shape):
                return None
            shape = found
            read += [(start + i, exact) for i, exact in shape.read]
        bound.append((A.Require(condition, req.message, req.span), shape, start, stop,
                      expr_plan.parts))
    live = tuple(item for item in bound if not _is_literal(item[0].condition, True))
    if not live:
        live = () if rule.optional else tuple(bound[-1:])
    made = _RuleShape(None if not live else rule, live, tuple(read))
    if made.make(part_values) != result:
        return None
    return made


def _plan_of(expr: A.Expr) -> _Plan:
    """`expr`'s `_Plan` (kept, and shared with `bind_expr`)."""
    plan = _SHAPES.get(id(expr))
    if plan is None or plan.expr is not expr:
        if len(_SHAPES) >= _CACHE_LIMIT:
            _SHAPES.clear()
        plan = _SHAPES[id(expr)] = _Plan(expr)
    return plan


# Per rule (kept in its plan, so that its id stays its own): its `_RulePlan`.
RULE_PLANS: dict[int, _RulePlan] = {}


def bind_requires(rule: A.Rule, values: Mapping[str, Any]) -> A.Rule | None:
    """`_bind_rule` of a rule not off, require by require."""
    requires = tuple(A.Require(bind_expr(req.condition, values), req.message, req.span)
                     for req in rule.requires)
    live = tuple(req for req in requires if not _is_literal(req.condition, True))
    if not live:
        if rule.optional:
            return None
        live = requires[-1:]
    return A.Rule(rule.name, live, rule.span)


def bind_learns(learns: tuple[A.Learn, ...], values: Mapping[str, Any]) -> tuple[A.Learn, ...]:
    """The learn items with the publisher's fields bound; those that fold to null (the
    publisher learns nothing there) are left out."""
    bound = (A.Learn(learn.name, bind_expr(learn.value, values), learn.span)
             for learn in learns)
    return tuple(learn for learn in bound if not _is_literal(learn.value, None))


def inline_lets(expr: A.Expr, lets: Mapping[str, A.Expr]) -> A.Expr:
    def substitute(node: A.Expr) -> A.Expr:
        if isinstance(node, A.NameRef) and node.name in lets:
            return lets[node.name]
        return node

    return A.transform(expr, substitute)
