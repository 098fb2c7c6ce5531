"""Syntax tree → policy text: the canonical printer (formatter) of policy files.

The layout is deterministic: two-space indentation, the items of a block in a fixed order,
one blank line between top-level blocks, between the sections of a block and between rules,
and the fewest parentheses that the grammar's precedence allows. Printing a parsed file and
parsing the result gives back an equal tree (spans aside), and printing is idempotent.

What the printer does not keep, because the syntax tree does not hold it:

* **Comments** are dropped by `format_policy`; `format_policy_with_comments` keeps them
  (see its docstring for where each one goes).
* The order of the items inside a block: a provider prints its issuers, `custom_issuers`
  (only when true), `algorithms`, `workflows`, `claims`, `fields`, `let`s, `lookup`,
  `learn`s, `note`s, `advise` items, then its rules (inside a rule: its `require`s, then its
  `fix`es); a publisher its `provider`, `projects` / `pending_project`, `fields`, `learn`s, then its
  rules. Several `claims`, `fields` or `lookup` blocks are merged into one.
* The order of top-level blocks: all providers come first, then all publishers.
* The form of a rule: a rule with one `require` and no `fix` prints as `rule NAME: EXPR`,
  any other as a block.

Long lines: a `require` or short rule longer than 100 columns moves its `else "message"` to the
next line (4 more spaces of indentation), and when it is still too long and its expression is an
`and` / `or` chain, the chain is broken before each top-level `and` / `or` (the grammar ignores
line breaks). Other long lines are left as they are.

Strings are printed as JSON strings (what the parser decodes with `json.loads`) with every
character that is not printable escaped, so the text shows what a string holds.

A tree that no text can produce (a name that is not a NAME of the grammar, a keyword used as
a `let` reference or a function name, a field's message without its pattern) raises
`ValueError` rather than printing text that would parse differently or not at all.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from tppolicy.language.ast import (
    Advice,
    And,
    Binding,
    Call,
    Claim,
    ClaimDecl,
    Compare,
    Concat,
    Conditional,
    Expr,
    FieldDecl,
    FieldRef,
    Fix,
    In,
    Index,
    Learn,
    Let,
    ListExpr,
    Literal,
    LookupItem,
    NameRef,
    Not,
    Note,
    Or,
    PolicyFile,
    Provider,
    Publisher,
    Request,
    Require,
    Rule,
    WorkflowItem,
    fields_read,
)
from tppolicy.language.bind import (
    RULE_PLANS,
    DeferredRule,
    FieldParts,
    bind_requires,
    bind_rules_deferred,
    exact_value,
    rules_off,
    shape_kinds,
    shaped,
)
from tppolicy.language.ops import EvalError
from tppolicy.memo import ByIdentity

if TYPE_CHECKING:
    from tppolicy.language.parse import Comment, SourceItem

__all__ = ["format_expr", "format_policy", "format_policy_with_comments", "format_provider",
           "format_publisher", "format_value"]

_LINE_WIDTH = 100
_INDENT = "  "
_CONTINUATION = "    "

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Every keyword of the grammar. A claim whose name is one of them is printed in the bracket
#: form (`claims["if"]`), which never depends on how the lexer treats keywords in context.
_KEYWORDS = frozenset({
    "provider", "issuer", "custom_issuers", "algorithms", "claims", "ignore", "prefix",
    "fields", "matches", "else", "let", "lookup", "identity", "key", "prefer", "publisher",
    "projects",
    "pending_project", "rule", "require", "if", "then", "or", "and", "not", "in", "true",
    "false", "null", "required", "present", "optional", "unchecked", "request", "learn",
    "extends", "workflows", "note", "advise", "fix", "when", "exact_case",
})

# The keywords that can start an expression: a `let` reference or a function name spelled
# like one of them would be read as that keyword.
_EXPRESSION_KEYWORDS = frozenset({
    "if", "not", "claims", "publisher", "request", "true", "false", "null",
})

# Precedence levels, lowest first: the grammar's `expr`, `or_expr`, `and_expr`, `not_expr`,
# `comparison`, `sum`, `postfix` and `atom` rules.
_EXPR, _OR, _AND, _NOT, _COMPARISON, _SUM, _POSTFIX, _ATOM = range(8)

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                  "\b": "\\b", "\f": "\\f"}


# ---------------------------------------------------------------------- values
def _quote(text: str) -> str:
    """A JSON string literal that the grammar's STRING reads back as `text`.

    Like `json.dumps(text, ensure_ascii=False)`, but every character that is not printable
    (control and format characters, line and paragraph separators, spaces other than ' ',
    unassigned code points) is escaped, so that the text shows what the string holds.
    """
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # nothing to escape (the usual string): no walk
    parts = ['"']
    for char in text:
        escape = _SHORT_ESCAPES.get(char)
        if escape is not None:
            parts.append(escape)
        elif char == " " or char.isprintable():
            parts.append(char)
        else:
            code = ord(char)
            if code > 0xFFFF:  # a UTF-16 surrogate pair, as JSON spells it
                code -= 0x10000
                parts.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                parts.append(f"\\u{code:04x}")
    parts.append('"')
    return "".join(parts)


def format_value(value: str | int | bool | None) -> str:
    """A literal: a JSON-style double-quoted string, an integer, `true`, `false` or `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _quote(value)
    raise ValueError(f"not a literal value: {value!r}")


def _name(name: str, what: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"cannot print {what} {name!r}: it is not a name ([A-Za-z_][A-Za-z0-9_]*)")
    return name


def _expression_name(name: str, what: str) -> str:
    if name in _EXPRESSION_KEYWORDS:
        raise ValueError(f"cannot print {what} {name!r}: it would be read as a keyword")
    return _name(name, what)


def _claim_name(name: str) -> str:
    """A claim name as `claim_decl` spells it: a NAME when it is one, else a string."""
    if _NAME.fullmatch(name) and name not in _KEYWORDS:
        return name
    return _quote(name)


def _string_list(values: Iterable[str]) -> str:
    return "[" + ", ".join([_quote(v) for v in values]) + "]"


# ----------------------------------------------------------------- expressions
def _level(expr: Expr) -> int:
    """The lowest grammar level at which `expr` can be written without parentheses."""
    return _LEVELS.get(expr.__class__, _ATOM)


_LEVELS: dict[type, int] = {Conditional: _EXPR, Or: _OR, And: _AND, Not: _NOT,
                            Compare: _COMPARISON, In: _COMPARISON, Concat: _SUM,
                            Index: _POSTFIX}


def _sub(expr: Expr, level: int) -> str:
    """`expr` where the grammar expects an expression of `level` (or higher)."""
    text = _expr(expr)
    return f"({text})" if _level(expr) < level else text


# Each expression's text, by node: the publishers of a compiled policy share most nodes of
# their bound rules (those of no field, and those of the values they share), which are
# then written once.
_WRITTEN: ByIdentity[Expr, str] = ByIdentity(2048)


def _expr(expr: Expr) -> str:
    if expr.__class__ is Literal:  # written at once: a bound rule's values are its own
        return format_value(expr.value)
    return _WRITTEN.get(expr, _write)


def _write(expr: Expr) -> str:
    lines = _from_shape(expr, _WALKED, _walked)
    if lines is not None and lines is not _UNSHAPED:
        return lines[0]
    return _walk(expr)


def _walked(expr: Expr) -> list[str] | None:
    return [_walk(expr)]


_UNSHAPED: list[str] = []


def _from_shape(expr: Expr, templates: ByIdentity[object, _Template | None],
                render: Callable[[Expr], list[str] | None]) -> list[str] | None:
    """`render(expr)` for an expression that binding made by putting a publisher's values
    in a shape (`bind.shaped`): the shape's rendering with the values written in (a
    shape's trees differ from publisher to publisher only in the strings at its places,
    and writing is the same walk whatever a string holds). `_UNSHAPED` when `expr` is not
    such an expression or its shape has no template (the caller renders it)."""
    made = shaped(expr)
    if made is None:
        return _UNSHAPED
    shape, values, parts = made
    template = templates.get(shape, lambda _: _template(shape, values, parts, render))
    if template is None:
        return _UNSHAPED
    if template is _NONE:
        return None
    return [_fill(line, values) for line in template]


def _fill(line: tuple[tuple[str, ...], tuple[int, ...]], values: Sequence[object]) -> str:
    pieces, holes = line
    if not holes:
        return pieces[0]
    if len(holes) == 1:
        return pieces[0] + _quote(values[holes[0]]) + pieces[1]  # type: ignore[arg-type]
    out = [pieces[0]]
    for hole, piece in zip(holes, pieces[1:], strict=True):
        out.append(_quote(values[hole]))  # type: ignore[arg-type]
        out.append(piece)
    return "".join(out)


_Template = tuple[tuple[tuple[str, ...], tuple[int, ...]], ...]
_NONE: _Template = ()  # the rendering is None


def _template(shape: object, values: Sequence[object], parts: Sequence[Expr],
              render: Callable[[Expr], list[str] | None]) -> _Template | None:
    """A shape's rendering: of the tree it makes with a marker for each string (one no
    value writes: this process's own nonce between NULs), each line cut at the markers.
    Kept only when the rendering with these values written in is the walk's (None:
    render each tree)."""
    put = getattr(shape, "put", None)
    if put is None:  # pragma: no cover - bind's shapes have put
        return None
    marked = [f"\x00{_NONCE}{i}\x00" if v.__class__ is str else v
              for i, v in enumerate(values)]
    try:
        lines = render(put(marked, parts))
        expected = render(put(values, parts))
    except ValueError:  # a name that cannot be written: the walk says so, each time
        return None
    if lines is None or expected is None:
        return _NONE if lines is None and expected is None else None
    template = []
    for line in lines:
        cut = _MARKER.split(line)
        template.append((tuple(cut[0::2]), tuple(int(h) for h in cut[1::2])))
    if any(values[h].__class__ is not str for _, holes in template for h in holes) or \
            [_fill(line, values) for line in template] != expected:
        return None
    return tuple(template)


_NONCE = secrets.token_hex(8)
_MARKER = re.compile(re.escape('"\\u0000' + _NONCE) + "([0-9]+)" + re.escape('\\u0000"'))
# Per shape: its text (`_write`), and its `and` / `or` chain (`_chain`).
_WALKED: ByIdentity[object, _Template | None] = ByIdentity(1024)
_CHAINED: ByIdentity[object, _Template | None] = ByIdentity(1024)


def _walk(expr: Expr) -> str:
    match expr:
        case Literal(value=value):
            return format_value(value)
        case ListExpr(items=items):
            return "[" + ", ".join(_sub(i, _EXPR) for i in items) + "]"
        case Claim(name=name):
            if _NAME.fullmatch(name) and name not in _KEYWORDS:
                return f"claims.{name}"
            return f"claims[{_quote(name)}]"
        case FieldRef(name=name):
            return f"publisher.{_name(name, 'the publisher field')}"
        case Request(name=name):
            return f"request.{_name(name, 'the request value')}"
        case NameRef(name=name):
            return _expression_name(name, "the name")
        case Call(function=function, args=args):
            name = _expression_name(function, "the function name")
            return name + "(" + ", ".join(_sub(a, _EXPR) for a in args) + ")"
        case Index(target=target, index=index):
            return f"{_sub(target, _POSTFIX)}[{_sub(index, _EXPR)}]"
        case Concat(left=left, right=right):
            return f"{_sub(left, _SUM)} + {_sub(right, _POSTFIX)}"
        case Compare(op=op, left=left, right=right):
            if op not in ("==", "!=", "<", "<=", ">", ">="):
                raise ValueError(f"not a comparison operator: {op!r}")
            return f"{_sub(left, _SUM)} {op} {_sub(right, _SUM)}"
        case In(item=item, container=container, negated=negated):
            op = "not in" if negated else "in"
            return f"{_sub(item, _SUM)} {op} {_sub(container, _SUM)}"
        case Not(operand=operand):
            return f"not {_sub(operand, _NOT)}"
        case And(left=left, right=right):
            return f"{_sub(left, _AND)} and {_sub(right, _NOT)}"
        case Or(left=left, right=right):
            return f"{_sub(left, _OR)} or {_sub(right, _AND)}"
        case Conditional(condition=condition, then=then, otherwise=otherwise):
            return (f"if {_sub(condition, _EXPR)} then {_sub(then, _EXPR)}"
                    f" else {_sub(otherwise, _EXPR)}")
    raise ValueError(f"not an expression: {expr!r}")


def format_expr(expr: Expr) -> str:
    """An expression on one line, with the fewest parentheses the grammar allows."""
    return _expr(expr)


def _chain(expr: Expr) -> list[str] | None:
    """The operands and operators of a top-level `and` / `or` chain, or None.

    `["a", "or b", "or c"]` for `a or b or c`; joined with spaces they give `_expr(expr)`.
    """
    lines = _from_shape(expr, _CHAINED, _chain_walk)
    if lines is not _UNSHAPED:
        return lines
    return _chain_walk(expr)


def _chain_walk(expr: Expr) -> list[str] | None:
    if isinstance(expr, Or):
        kind: type[Or] | type[And] = Or
        word, left_level, right_level = "or", _OR, _AND
    elif isinstance(expr, And):
        kind, word, left_level, right_level = And, "and", _AND, _NOT
    else:
        return None
    rights: list[Expr] = []
    node: Expr = expr
    while isinstance(node, kind):
        rights.append(node.right)
        node = node.left
    return [_sub(node, left_level)] + [f"{word} {_sub(r, right_level)}" for r in reversed(rights)]


def _condition_lines(indent: str, head: str, condition: Expr, message: str | None) -> list[str]:
    """`head EXPR [else "message"]` at `indent`, broken as the module docstring describes."""
    return _laid_out(indent, head, _expr(condition), message, _chain, condition)


_T = TypeVar("_T")


def _laid_out(indent: str, head: str, text: str, message: str | None,
              chain_of: Callable[[_T], list[str] | None], condition: _T) -> list[str]:
    """`_condition_lines` of a condition written `text`, whose `and` / `or` chain is
    `chain_of(condition)` (asked only when the line is too long)."""
    first = f"{indent}{head}{text}"
    tail = "" if message is None else f" else {_quote(message)}"
    if len(first) + len(tail) <= _LINE_WIDTH:
        return [first + tail]
    continuation = indent + _CONTINUATION
    lines = [first]
    chain = chain_of(condition) if len(first) > _LINE_WIDTH else None
    if chain is not None:
        lines = [f"{indent}{head}{chain[0]}"] + [continuation + part for part in chain[1:]]
    if message is not None:
        lines.append(f"{continuation}else {_quote(message)}")
    return lines


# ---------------------------------------------------------------------- blocks
def _join_sections(sections: list[list[str]]) -> list[str]:
    """The non-empty `sections`, separated by blank lines."""
    body: list[str] = []
    for section in sections:
        if not section:
            continue
        if body:
            body.append("")
        body.extend(section)
    return body


def _block(indent: str, opening: str, sections: list[list[str]]) -> list[str]:
    """`opening {`, the non-empty `sections` separated by blank lines, `}`."""
    body = _join_sections(sections)
    if not body:
        return [f"{indent}{opening} {{}}"]
    return [f"{indent}{opening} {{", *body, f"{indent}}}"]


def _rule_head(rule: Rule) -> str:
    if rule.optional and rule.identity:
        raise ValueError(f"cannot print rule {rule.name!r}: an optional rule is not an "
                         "identity rule")
    kind = "optional rule " if rule.optional else "identity rule " if rule.identity else "rule "
    return kind + _name(rule.name, "the rule name")


def _rule(rule: Rule, indent: str) -> list[str]:
    head = _rule_head(rule)
    if len(rule.requires) == 1 and not rule.fixes:
        require = rule.requires[0]
        return _condition_lines(indent, f"{head}: ", require.condition, require.message)
    inner = indent + _INDENT
    lines: list[str] = []
    for require in rule.requires:
        lines.extend(_require(require, inner))
    for fix in rule.fixes:
        lines.extend(_fix(fix, inner))
    return _block(indent, head, [lines])


def _place(place: str) -> str:
    words = place.split(" or ")
    for word in words:
        if word in ("when", "or"):
            raise ValueError(f"cannot print the place {place!r}: {word!r} is a keyword")
        _name(word, "the place of a fix")
    return " or ".join(words)


def _texted_lines(indent: str, head: str, condition: Expr | None, text: str) -> list[str]:
    """`head [when EXPR] "text"`: the text on the next line when the line is too long."""
    first = head if condition is None else f"{head} when {_expr(condition)}"
    line = f"{indent}{first} {_quote(text)}"
    if len(line) <= _LINE_WIDTH:
        return [line]
    return [f"{indent}{first}", f"{indent}{_CONTINUATION}{_quote(text)}"]


def _fix(fix: Fix, indent: str) -> list[str]:
    head = "fix" if fix.place is None else f"fix {_place(fix.place)}"
    return _texted_lines(indent, head, fix.condition, fix.text)


def _note(note: Note, indent: str) -> list[str]:
    return _texted_lines(indent, "note", note.condition, note.text)


def _advise(item: Advice, indent: str) -> list[str]:
    return _texted_lines(indent, f"advise {_name(item.name, 'the advised field')}",
                         item.condition, item.text)


def _workflow_item(item: WorkflowItem, indent: str) -> list[str]:
    return _condition_lines(indent, f"{_name(item.name, 'the workflows item')}: ", item.value,
                            None)


def _workflows_opening(provider: Provider) -> str:
    assert provider.workflows is not None
    return f"workflows {_name(provider.workflows, 'the workflow kind')}"


def _workflows_lines(provider: Provider, indent: str) -> list[str]:
    """`workflows KIND`, with its block of items when it has any."""
    if not provider.workflow_items:
        return [indent + _workflows_opening(provider)]
    items = [line for item in provider.workflow_items
             for line in _workflow_item(item, indent + _INDENT)]
    return _block(indent, _workflows_opening(provider), [items])


def _learn(learn: Learn, indent: str) -> list[str]:
    return _condition_lines(indent, f"learn {_name(learn.name, 'the learned field')}: ",
                            learn.value, None)


def _require(require: Require, indent: str) -> list[str]:
    return _condition_lines(indent, "require ", require.condition, require.message)


def _claim_decl(decl: ClaimDecl) -> str:
    if decl.category not in ("required", "present", "optional", "unchecked"):
        raise ValueError(f"not a claim category: {decl.category!r}")
    if not decl.names:
        raise ValueError("cannot print a claim declaration without names")
    names = ", ".join(_claim_name(n) for n in decl.names)
    return f"{decl.category} {names}: {_name(decl.type, 'the claim type')}"


def _field_lines(decl: FieldDecl, indent: str) -> list[str]:
    """A field declaration; its `else "message"` on the next line when it is too long."""
    text = f"{indent}{_name(decl.name, 'the field name')}: {_name(decl.type, 'the field type')}"
    if decl.default is not None:
        text += f" = {_expr(decl.default)}"
    lines = _field_head(decl, text, indent)
    if decl.exact_case is not None:
        lines.append(f"{indent}{_CONTINUATION}exact_case {_quote(decl.exact_case)}")
    return lines


def _field_head(decl: FieldDecl, text: str, indent: str) -> list[str]:
    if decl.pattern is None:
        if decl.pattern_message is not None:
            raise ValueError(f"cannot print field {decl.name!r}: a pattern message needs a "
                             "pattern")
        return [text]
    text += f" matches {_quote(decl.pattern)}"
    if decl.pattern_message is None:
        return [text]
    tail = f"else {_quote(decl.pattern_message)}"
    if len(text) + 1 + len(tail) <= _LINE_WIDTH:
        return [f"{text} {tail}"]
    return [text, f"{indent}{_CONTINUATION}{tail}"]


def _let_lines(let: Let, indent: str) -> list[str]:
    """`let NAME = EXPR`; too long, the value goes below, a conditional one part a line."""
    head = f"{indent}let {_name(let.name, 'the let name')} ="
    value = _expr(let.value)
    if len(head) + 1 + len(value) <= _LINE_WIDTH:
        return [f"{head} {value}"]
    inner = indent + _INDENT
    if isinstance(let.value, Conditional):
        lines = [head]
        node: Expr = let.value
        word = "if"
        while isinstance(node, Conditional):  # `else if ... then ...`, a line each
            lines += [f"{inner}{word} {_sub(node.condition, _EXPR)}",
                      f"{inner}then {_sub(node.then, _EXPR)}"]
            node, word = node.otherwise, "else if"
        return [*lines, f"{inner}else {_sub(node, _EXPR)}"]
    return [head, inner + value]


def _lookup_item(item: LookupItem) -> str:
    if item.kind not in ("identity", "key", "prefer"):
        raise ValueError(f"not a lookup item kind: {item.kind!r}")
    return f"{item.kind} {_expr(item.condition)}"


def _binding(binding: Binding) -> str:
    found = _BINDINGS.get(id(binding))
    if found is not None and found[0] is binding:
        return found[1]
    text = f"{_name(binding.name, 'the field name')} = {_expr(binding.value)}"
    if len(_BINDINGS) >= 4096:
        _BINDINGS.clear()
    _BINDINGS[id(binding)] = (binding, text)
    return text


# A binding's line, by binding (kept with it, so that its id stays its own): a file's
# publishers share the bindings of the values they share (`concrete_publisher`).
_BINDINGS: dict[int, tuple[Binding, str]] = {}


def _provider_lines(provider: Provider, include_rules: bool) -> list[str]:
    inner = _INDENT * 2
    header = [f"{_INDENT}issuer {_quote(i)}" for i in provider.issuers]
    if provider.custom_issuers:
        header.append(f"{_INDENT}custom_issuers true")
    if provider.algorithms:
        header.append(f"{_INDENT}algorithms {_string_list(provider.algorithms)}")
    if provider.workflows is not None:
        header += _workflows_lines(provider, _INDENT)
    sections = [header]
    if provider.claims or provider.ignored_prefixes:
        claims = [inner + _claim_decl(c) for c in provider.claims]
        claims += [f"{inner}ignore prefix {_quote(p)}" for p in provider.ignored_prefixes]
        sections.append(_block(_INDENT, "claims", [claims]))
    if provider.fields:
        fields = [line for f in provider.fields for line in _field_lines(f, inner)]
        sections.append(_block(_INDENT, "fields", [fields]))
    sections.append([line for let in provider.lets for line in _let_lines(let, _INDENT)])
    if provider.lookup:
        lookup = [inner + _lookup_item(i) for i in provider.lookup]
        sections.append(_block(_INDENT, "lookup", [lookup]))
    if include_rules:
        sections.extend(_learn(learn, _INDENT) for learn in provider.learns)
        sections.extend(_note(note, _INDENT) for note in provider.notes)
        sections.extend(_advise(item, _INDENT) for item in provider.advice)
        sections.extend(_rule(rule, _INDENT) for rule in provider.rules)
    return _block("", _provider_opening(provider), sections)


def _provider_opening(provider: Provider) -> str:
    opening = f"provider {_name(provider.name, 'the provider name')}"
    if provider.extends is not None:
        opening += f" extends {_name(provider.extends, 'the parent provider')}"
    return opening


def _publisher_lines(publisher: Publisher,
                     rules: Sequence[Rule | DeferredRule] | None = None,
                     fields: Sequence[str] | None = None,
                     printed_rules: list[str] | None = None) -> list[str]:
    opening = "publisher" if publisher.name is None else f"publisher {_quote(publisher.name)}"
    # As `_block("", opening, sections)` lays it out, built in one list: the header, then
    # the sections (none empty), a blank line before each but the first line.
    lines = [""]  # the opening line, once known
    # The parser joins several `provider` items with "," and gives "" for none: print back
    # what it read.
    if publisher.provider:
        provider_lines = _PROVIDER_LINES.get(publisher.provider)
        if provider_lines is None:
            provider_lines = [f"{_INDENT}provider {_name(p, 'the provider name')}"
                              for p in publisher.provider.split(",")]
            if len(_PROVIDER_LINES) >= 256:  # bounded
                _PROVIDER_LINES.clear()
            _PROVIDER_LINES[publisher.provider] = provider_lines
        lines += provider_lines
    if publisher.projects:
        lines.append(f"{_INDENT}projects {_string_list(publisher.projects)}")
    if publisher.pending_project is not None:
        lines.append(f"{_INDENT}pending_project {_quote(publisher.pending_project)}")
    bindings = [_FIELD_INDENT + f for f in fields] if fields is not None else \
        [_FIELD_INDENT + _binding(b) for b in publisher.bindings]
    if bindings:
        if len(lines) > 1:
            lines.append("")
        lines.append(f"{_INDENT}fields {{")
        lines += bindings
        lines.append(f"{_INDENT}}}")
    for learn in publisher.learns:
        if len(lines) > 1:
            lines.append("")
        lines += _learn(learn, _INDENT)
    if printed_rules is not None and len(lines) > 1:  # each rule after a blank line
        lines += printed_rules
        rules = ()
    for rule in (publisher.rules if rules is None else rules):
        if isinstance(rule, DeferredRule):
            printed = rule.printed
            if printed is None:
                printed = rule.printed = _deferred_rule(rule)
        else:
            printed = _PUBLISHER_RULES.get(rule, _publisher_rule)
        if len(lines) > 1:
            lines.append("")
        lines += printed
    if len(lines) == 1:
        return [f"{opening} {{}}"]
    lines[0] = f"{opening} {{"
    lines.append("}")
    return lines


# A publisher's `provider` item's lines, by its text (the same few for every publisher).
_PROVIDER_LINES: dict[str, list[str]] = {}
_FIELD_INDENT = _INDENT * 2


def _publisher_rule(rule: Rule) -> list[str]:
    return _rule(rule, _INDENT)


# A publisher's rule printed, by rule: the publishers of a file share most of their bound
# rules (the same objects: binding keeps them per value), each printed once. Callers copy
# nothing out of these lists, they only read them. (A `DeferredRule` keeps its own.)
_PUBLISHER_RULES: ByIdentity[Rule, list[str]] = ByIdentity(1024)


def _deferred_rule(deferred: DeferredRule) -> list[str]:
    """`_rule(deferred.rule(), _INDENT)`, each condition its shape's text with the values
    written in (the template `_from_shape` fills for the tree), the tree not made; made
    and walked when a shape has no template."""
    items = _RULE_TEXTS.get(deferred.shape, lambda _: _rule_text(deferred))
    if items is None:
        return _rule(deferred.rule(), _INDENT)
    return _fill_rule(items, deferred.values)


def _fill_rule(items: tuple[Any, ...], values: Sequence[Any]) -> list[str]:
    """The lines of `_rule_text`'s items with these values written in."""
    lines: list[str] = []
    for item in items:
        if item.__class__ is list:
            lines.extend(item)
            continue
        indent, head, pieces, holes, message, tail, shape, start, stop, parts = item
        if len(holes) == 1:
            text = pieces[0] + _quote(values[holes[0]]) + pieces[1]
        else:
            out = [pieces[0]]
            for hole, piece in zip(holes, pieces[1:], strict=True):
                out.append(_quote(values[hole]))
                out.append(piece)
            text = "".join(out)
        first = indent + head + text
        if len(first) + len(tail) <= _LINE_WIDTH:
            lines.append(first + tail)
        else:
            lines.extend(_laid_out(indent, head, text, message, _deferred_chain,
                                   (shape, values[start:stop], parts)))
    return lines


# Per rule shape (`DeferredRule.shape`): its lines as `_rule_text` gives them, or None.
_RULE_TEXTS: ByIdentity[object, tuple[Any, ...] | None] = ByIdentity(1024)


def _rule_text(deferred: DeferredRule) -> tuple[Any, ...] | None:
    """The lines of the rules of `deferred`'s shape: per line or require, in order, either
    the lines themselves (the opening and closing of a block, a require bound whatever the
    values) or (indent, head, the condition's text template: pieces and holes, the holes
    indexes of the shape's values; message, its ` else "message"`, the condition's shape,
    its values' start and stop, its parts). None when a condition's shape has no template
    of one line of strings, or when these lines filled with `deferred`'s values are not
    the rule's (`deferred.rule()`) as `_rule` writes it (a safeguard)."""
    live = deferred.shape.live
    head = "rule " + _name(deferred.name, "the rule name")  # a rule bound: no longer optional
    single = len(live) == 1
    indent = _INDENT if single else _INDENT * 2
    items: list[Any] = [] if single else [[f"{_INDENT}{head} {{"]]
    values = deferred.values
    for require, shape, start, stop, parts in live:
        opening = f"{head}: " if single else "require "
        if shape is None:  # the require bound before, whatever the values
            items.append(_condition_lines(indent, opening, require.condition, require.message))
            continue
        own = values[start:stop]
        template = _walked_template(shape, own, parts)
        if template is None or template is _NONE or len(template) != 1:
            return None
        pieces, holes = template[0]
        if any(own[h].__class__ is not str for h in holes):
            return None
        message = require.message
        items.append((indent, opening, pieces, tuple(start + h for h in holes), message,
                      "" if message is None else f" else {_quote(message)}", shape, start,
                      stop, parts))
    if not single:
        items.append([f"{_INDENT}}}"])
    made = tuple(items)
    if _fill_rule(made, values) != _rule(deferred.rule(), _INDENT):
        return None
    return made


def _walked_template(shape: object, values: Sequence[object], parts: Sequence[Expr]
                     ) -> _Template | None:
    """The shape's text template, as `_write` fills it (`_from_shape`)."""
    return _WALKED.get(shape, lambda _: _template(shape, values, parts, _walked))


def _deferred_chain(made: tuple[Any, Sequence[object], Sequence[Expr]]) -> list[str] | None:
    """`_chain` of the condition a shape makes with these values, as `_from_shape` gives
    it (the tree made and walked when the shape has no chain template)."""
    shape, values, parts = made
    template = _CHAINED.get(shape, lambda _: _template(shape, values, parts, _chain_walk))
    if template is None:
        return _chain_walk(shape.put(values, parts))
    if template is _NONE:
        return None
    return [_fill(line, values) for line in template]


def format_provider(provider: Provider, *, include_rules: bool = True) -> str:
    """A `provider` block, without a final newline; `include_rules=False` leaves out its rules."""
    return "\n".join(_provider_lines(provider, include_rules))


def format_publisher(publisher: Publisher,
                     rules: Sequence[Rule | DeferredRule] | None = None,
                     fields: Sequence[str] | None = None) -> str:
    """A `publisher` block, without a final newline. `rules`: its rules, in place of
    `publisher.rules` (`bind_rules_deferred`'s: a `DeferredRule` is written as the rule it
    makes); `fields`: its bindings' text (`binding_text`'s), in place of
    `publisher.bindings`."""
    return "\n".join(_publisher_lines(publisher, rules, fields))


def format_bound_publisher(publisher: Publisher, rules: tuple[Rule, ...],
                           values: Mapping[str, Any], fields: Sequence[str]) -> str:
    """`format_publisher(publisher, bind_rules_deferred(rules, values), fields)`: a
    publisher's block, its provider's `rules` bound to its fields' `values` (`publisher`
    without rules, `fields` its bindings' text). The rules are written from a template
    of all of them (`_RulesTemplate`) when one is kept for the rules the publisher leaves
    on and its parts' kinds; else bound and printed as `format_publisher` does, and a
    template made from them for the next publisher of those kinds."""
    if publisher.provider:  # (a provider line: every rule after a blank line)
        printed = _templated_rules(rules, values)
        if printed is not None:
            return "\n".join(_publisher_lines(publisher, None, fields, printed))
    lines = _publisher_lines(publisher, bind_rules_deferred(rules, values), fields)
    if publisher.provider:
        head = len(_publisher_lines(publisher, (), fields)) - 1  # without its brace
        _learn_rules(rules, values, lines[head:-1])
    return "\n".join(lines)


class _RulesParts:
    """The rules of a provider that a publisher leaves on (`rules_off`), prepared for printing
    many publishers: the parts of all of them (each rule's `_RulePlan`'s, one rule's after
    another's) evaluated at once, and per tuple of their values' kinds the template of the
    rules' lines (`_RulesTemplate`), or None: printed rule by rule."""

    __slots__ = ("parts", "plans", "rules", "templates")

    def __init__(self, rules: tuple[Rule, ...], plans: tuple[Any, ...]) -> None:
        self.rules = rules  # kept: its id is the key's
        self.plans = plans  # per rule on: its `_RulePlan`
        self.parts = FieldParts(tuple(part for plan in plans for part in plan.parts))
        self.templates: dict[tuple[Any, ...], _RulesTemplate | None] = {}


class _RulesTemplate:
    """The lines of a publisher's rules as `_fill_rule` items over the values of all their
    parts (each rule's items from its shape's text, `_RULE_TEXTS`, its holes moved to its
    parts' place; a blank line before each rule; a rule reading no field as its lines),
    for the publishers whose parts' values are of these kinds and equal where a rule's
    shape read them (`read`: index, exact value)."""

    __slots__ = ("items", "read")

    def __init__(self, items: tuple[Any, ...], read: tuple[tuple[int, Any], ...]) -> None:
        self.items = items
        self.read = read


def _rules_parts(rules: tuple[Rule, ...], offs: tuple[bool, ...]) -> _RulesParts | None:
    """The `_RulesParts` of these rules with these left off, or None while a rule has no
    `_RulePlan` (binding makes them)."""
    plans = []
    for rule, off in zip(rules, offs, strict=True):
        if off:
            continue
        plan = RULE_PLANS.get(id(rule))
        if plan is None or plan.rule is not rule:
            return None
        plans.append(plan)
    return _RulesParts(rules, tuple(plans))


def _templated_rules(rules: tuple[Rule, ...], values: Mapping[str, Any]) -> list[str] | None:
    """The rules' lines from their template (`format_bound_publisher`), or None."""
    offs = rules_off(rules, values)
    known = _RULES_PARTS.get((id(rules), offs))
    if known is None or known.rules is not rules:
        return None
    try:
        part_values = known.parts.evaluate(values)
        template = known.templates.get(shape_kinds(part_values))
    except (EvalError, TypeError):  # a part that fails, or a value that cannot be kept
        return None
    if template is None:
        return None
    for index, exact in template.read:
        if exact_value(part_values[index]) != exact:
            return None
    return _fill_rule(template.items, part_values)


def _learn_rules(rules: tuple[Rule, ...], values: Mapping[str, Any],
                 printed: list[str]) -> None:
    """Keep the template of these rules for the kinds of these values' parts, made from
    the rules' plans and shapes (binding them made those) and kept only when it writes
    `printed`, their lines as `format_publisher` wrote them; or keep that there is none."""
    offs = rules_off(rules, values)
    key = (id(rules), offs)
    known = _RULES_PARTS.get(key)
    if known is None or known.rules is not rules:
        made = _rules_parts(rules, offs)
        if made is None:
            return
        if len(_RULES_PARTS) >= 256:  # bounded
            _RULES_PARTS.clear()
        known = _RULES_PARTS[key] = made
    try:
        part_values = known.parts.evaluate(values)
        kinds = shape_kinds(part_values)
        if kinds in known.templates or len(known.templates) >= 64:
            return
    except (EvalError, TypeError):
        return
    template = _rules_template(known, part_values, kinds)
    if template is not None and _fill_rule(template.items, part_values) != printed:
        template = None  # a safeguard: only the printer's own lines
    known.templates[kinds] = template


def _rules_template(known: _RulesParts, part_values: list[Any],
                    kinds: tuple[Any, ...]) -> _RulesTemplate | None:
    """`_learn_rules`'s template, or None (a rule without a shape or a text for its
    kinds)."""
    items: list[Any] = []
    read: list[tuple[int, Any]] = []
    at = 0
    for plan in known.plans:
        count = len(plan.parts)
        if not count:  # reads no field: the same lines for every publisher
            lines = _CONSTANT_RULES.get(plan.rule, _constant_rule)
            if lines is None:
                return None
            if lines:
                items.append(["", *lines])
            continue
        own = part_values[at:at + count]
        shape = plan.shapes.get(kinds[at:at + count])
        if shape is None:
            return None
        read += [(at + index, exact) for index, exact in shape.read]
        if shape.rule is not None:  # (else the rule folds away: binding leaves it out)
            texts = _shape_texts(shape, own)
            if texts is None:
                return None
            items.append([""])
            for item in texts:
                if item.__class__ is list:
                    items.append(item)
                    continue
                indent, head, pieces, holes, message, tail, shape_, start, stop, parts = item
                items.append((indent, head, pieces, tuple(at + h for h in holes), message,
                              tail, shape_, at + start, at + stop, parts))
        at += count
    merged: list[Any] = []  # runs of lines written whatever the values: one list each
    for item in items:
        if item.__class__ is list and merged and merged[-1].__class__ is list:
            merged[-1] = merged[-1] + item
        else:
            merged.append(item)
    return _RulesTemplate(tuple(merged), tuple(read))


def _shape_texts(shape: Any, values: Sequence[Any]) -> tuple[Any, ...] | None:
    """`_RULE_TEXTS` of a rule shape, made (and kept) on these values if not kept."""
    return _RULE_TEXTS.get(shape, lambda _: _rule_text(DeferredRule(shape, values)))


def _constant_rule(rule: Rule) -> list[str] | None:
    """The lines of a rule that reads no field, bound: the same for every publisher
    (None: it reads one)."""
    if any(fields_read(req.condition) for req in rule.requires):
        return None
    bound = bind_requires(rule, {})
    return [] if bound is None else _rule(bound, _INDENT)


# Per (rules, the rules left off): the `_RulesParts`; per rule reading no field: its lines.
_RULES_PARTS: dict[tuple[int, tuple[bool, ...]], _RulesParts] = {}
_CONSTANT_RULES: ByIdentity[Rule, list[str] | None] = ByIdentity(1024)


def binding_text(name: str, value: str | int | bool | None) -> str:
    """`name = value` as a publisher's `fields` block writes its binding of `value`."""
    head = _BINDING_HEADS.get(name)
    if head is None:
        head = f"{_name(name, 'the field name')} = "
        if len(_BINDING_HEADS) >= 4096:
            _BINDING_HEADS.clear()
        _BINDING_HEADS[name] = head
    return head + (_quote(value) if value.__class__ is str else format_value(value))


_BINDING_HEADS: dict[str, str] = {}


def format_policy(policy: PolicyFile) -> str:
    """A whole policy file: its providers, then its publishers, separated by blank lines.

    The text ends with one newline (an empty policy prints as the empty string).
    """
    blocks = [format_provider(p) for p in policy.providers]
    blocks += [format_publisher(p) for p in policy.publishers]
    return "\n\n".join(blocks) + "\n" if blocks else ""



# ------------------------------------------------------------ keeping comments
@dataclass
class _Notes:
    """The comments attached to one item, by where they go when it is printed."""

    before: list[Comment] = field(default_factory=list)  # own lines above the item
    head: list[Comment] = field(default_factory=list)  # end of a block's opening line
    end: list[Comment] = field(default_factory=list)  # own lines before a block's "}"
    after: list[Comment] = field(default_factory=list)  # end of the item's last line

    def merge(self, other: _Notes) -> None:
        self.before += other.before
        self.head += other.head
        self.end += other.end
        self.after += other.after

    def all(self) -> list[Comment]:
        found = self.before + self.head + self.end + self.after
        return sorted(found, key=lambda c: (c.span.line, c.span.column))


def _start(item: SourceItem) -> tuple[int, int]:
    return (item.span.line, item.span.column)


def _end(item: SourceItem) -> tuple[int, int]:
    return (item.span.end_line, item.span.end_column)


_BLOCKS = frozenset({"provider", "publisher", "claims", "fields", "lookup", "bindings",
                     "workflows", "block_rule", "optional_block_rule"})
_RULE_KINDS = ("short_rule", "block_rule", "optional_short_rule", "optional_block_rule")


class _Attacher:
    """Decides which item each comment belongs to (see `format_policy_with_comments`)."""

    def __init__(self) -> None:
        self.notes: dict[int, _Notes] = {}
        self.file_end: list[Comment] = []

    def of(self, item: SourceItem) -> _Notes:
        return self.notes.setdefault(id(item), _Notes())

    def place(self, comment: Comment, siblings: Sequence[SourceItem],
              parent: SourceItem | None) -> None:
        position = (comment.span.line, comment.span.column)
        if not comment.own_line:
            ended = [s for s in siblings
                     if s.span.end_line == comment.span.line and _end(s) <= position]
            if ended:
                self.of(ended[-1]).after.append(comment)
                return
        containing = next((s for s in siblings if _start(s) <= position < _end(s)), None)
        if containing is not None:
            if containing.kind in _BLOCKS:
                self.place(comment, containing.children, containing)
            elif comment.own_line:
                self.of(containing).before.append(comment)
            else:
                self.of(containing).after.append(comment)
            return
        following = next((s for s in siblings if _start(s) > position), None)
        if parent is None:
            if following is not None:
                self.of(following).before.append(comment)
            else:
                self.file_end.append(comment)
        elif comment.own_line:
            if following is not None:
                self.of(following).before.append(comment)
            else:
                self.of(parent).end.append(comment)
        elif any(_start(s) < position for s in siblings):
            self.of(parent).end.append(comment)
        else:
            self.of(parent).head.append(comment)


def _comment_lines(group: Sequence[Comment], indent: str) -> list[str]:
    lines: list[str] = []
    for i, comment in enumerate(group):
        if i and comment.blank_before:
            lines.append("")
        lines.append(indent + comment.text)
    return lines


def _settle(notes: _Notes) -> tuple[list[Comment], Comment | None, Comment | None]:
    """The comments above an item, and the one on its opening and on its last line.

    A line holds one comment: when several compete for it, the last one stays there and the
    others go above the item.
    """
    before = list(notes.before)
    head = notes.head[-1] if notes.head else None
    after = notes.after[-1] if notes.after else None
    before += notes.head[:-1] + notes.after[:-1]
    return before, head, after


def _with_notes(lines: list[str], notes: _Notes, indent: str) -> list[str]:
    """An item's `lines` with its comments: above it, and at the end of its last line."""
    before, head, after = _settle(notes)
    if head is not None:  # a leaf has no opening line: the comment goes above it
        before.append(head)
    out = _comment_lines(before, indent)
    if before and before[-1].own_line and before[-1].blank_after:
        out.append("")
    out += lines
    if after is not None:
        out[-1] += "  " + after.text
    return out


def _noted_block(indent: str, opening: str, sections: list[list[str]],
                 notes: _Notes) -> list[str]:
    """`_block` with comments: above, on the opening line, before "}" and after it."""
    before, head, after = _settle(notes)
    body = _join_sections(sections)
    if notes.end:
        if body and notes.end[0].blank_before:
            body.append("")
        body += _comment_lines(notes.end, indent + _INDENT)
    if not body and head is None:
        lines = [f"{indent}{opening} {{}}"]
    else:
        lines = [f"{indent}{opening} {{" + ("" if head is None else "  " + head.text),
                 *body, f"{indent}}}"]
    return _with_notes(lines, _Notes(before=before, after=[after] if after else []), indent)


def _matching(items: Sequence[SourceItem], values: Sequence[object], what: str) -> None:
    if len(items) != len(values):
        raise ValueError(f"the outline does not match the policy: {len(items)} {what} "
                         f"written, {len(values)} in the tree")


class _CommentPrinter:
    """Prints a policy file with its comments, item by item, as `format_policy` lays it out."""

    def __init__(self, attacher: _Attacher) -> None:
        self.attacher = attacher

    def notes(self, items: Iterable[SourceItem]) -> _Notes:
        """The comments of `items` (printed as one), in source order."""
        merged = _Notes()
        for item in items:
            found = self.attacher.notes.get(id(item))
            if found is not None:
                merged.merge(found)
        return merged

    def rehome(self, children: Sequence[SourceItem], printed: set[int],
               parent: SourceItem) -> None:
        """Give the comments of items that print nothing (such as `custom_issuers false`)
        to the next item that prints, or else to the end of the block."""
        moved: list[Comment] = []
        for item in children:
            if id(item) not in printed:
                found = self.attacher.notes.pop(id(item), None)
                if found is not None:
                    moved += found.all()
            elif moved:
                notes = self.attacher.of(item)
                notes.before = moved + notes.before
                moved = []
        if moved:
            notes = self.attacher.of(parent)
            notes.end = moved + notes.end

    # -- rules
    def rule(self, rule: Rule, item: SourceItem, indent: str) -> list[str]:
        head = _rule_head(rule)
        notes = self.notes([item])
        if len(rule.requires) == 1 and not rule.fixes:
            require = rule.requires[0]
            if item.children:  # a block rule with one require prints as a short rule
                inner = self.notes(item.children)
                notes = _Notes(before=notes.before + inner.before + inner.head + notes.end,
                               head=notes.head, after=inner.after + notes.after)
            lines = _condition_lines(indent, f"{head}: ", require.condition, require.message)
            return _with_notes(lines, notes, indent)
        requires = [c for c in item.children if c.kind == "require"]
        fixes = [c for c in item.children if c.kind == "fix"]
        _matching(requires, rule.requires, f"requires in rule {rule.name!r}")
        _matching(fixes, rule.fixes, f"fixes in rule {rule.name!r}")
        inner_indent = indent + _INDENT
        body: list[str] = []
        for require, child in zip(rule.requires, requires, strict=True):
            body += _with_notes(_require(require, inner_indent), self.notes([child]),
                                inner_indent)
        for fix, child in zip(rule.fixes, fixes, strict=True):
            body += _with_notes(_fix(fix, inner_indent), self.notes([child]), inner_indent)
        return _noted_block(indent, head, [body], notes)

    def learns(self, learns: Sequence[Learn], items: Sequence[SourceItem]) -> list[list[str]]:
        _matching(items, learns, "learn items")
        return [_with_notes(_learn(learn, _INDENT), self.notes([child]), _INDENT)
                for learn, child in zip(learns, items, strict=True)]

    def workflows(self, provider: Provider, blocks: list[SourceItem]) -> list[str]:
        """`workflows KIND` and its items, with their comments."""
        entries = [c for b in blocks for c in b.children]
        _matching(entries, provider.workflow_items, "workflows items")
        notes = self.notes(blocks)
        if not provider.workflow_items:  # `workflows KIND {}`: its comments go above
            notes = _Notes(before=notes.before + notes.head + notes.end, after=notes.after)
            return _with_notes([_INDENT + _workflows_opening(provider)], notes, _INDENT)
        inner = _INDENT * 2
        lines: list[str] = []
        for entry, child in zip(provider.workflow_items, entries, strict=True):
            lines += _with_notes(_workflow_item(entry, inner), self.notes([child]), inner)
        return _noted_block(_INDENT, _workflows_opening(provider), [lines], notes)

    # -- providers
    def provider(self, provider: Provider, item: SourceItem) -> list[str]:
        inner = _INDENT * 2
        kinds: dict[str, list[SourceItem]] = {}
        for child in item.children:
            kinds.setdefault(child.kind, []).append(child)

        def of(*names: str) -> list[SourceItem]:
            return [c for c in item.children if c.kind in names]

        printed: set[int] = {id(c) for c in item.children}
        for kind, shown in (("custom_issuers", provider.custom_issuers),
                            ("algorithms", bool(provider.algorithms)),
                            ("claims", bool(provider.claims or provider.ignored_prefixes)),
                            ("fields", bool(provider.fields)),
                            ("lookup", bool(provider.lookup))):
            if not shown:
                printed -= {id(c) for c in kinds.get(kind, [])}
        self.rehome(item.children, printed, item)

        _matching(of("issuer"), provider.issuers, "issuers")
        header: list[str] = []
        for issuer, child in zip(provider.issuers, of("issuer"), strict=True):
            header += _with_notes([f"{_INDENT}issuer {_quote(issuer)}"], self.notes([child]),
                                  _INDENT)
        if provider.custom_issuers:
            header += _with_notes([f"{_INDENT}custom_issuers true"],
                                  self.notes(of("custom_issuers")), _INDENT)
        if provider.algorithms:
            header += _with_notes([f"{_INDENT}algorithms {_string_list(provider.algorithms)}"],
                                  self.notes(of("algorithms")), _INDENT)
        if provider.workflows is not None:
            header += self.workflows(provider, of("workflows"))
        sections = [header]
        if provider.claims or provider.ignored_prefixes:
            blocks = of("claims")
            decls = [c for b in blocks for c in b.children if c.kind == "claim_decl"]
            prefixes = [c for b in blocks for c in b.children if c.kind == "ignore_prefix"]
            _matching(decls, provider.claims, "claim declarations")
            _matching(prefixes, provider.ignored_prefixes, "ignored prefixes")
            claims: list[str] = []
            for decl, child in zip(provider.claims, decls, strict=True):
                claims += _with_notes([inner + _claim_decl(decl)], self.notes([child]), inner)
            for prefix, child in zip(provider.ignored_prefixes, prefixes, strict=True):
                claims += _with_notes([f"{inner}ignore prefix {_quote(prefix)}"],
                                      self.notes([child]), inner)
            sections.append(_noted_block(_INDENT, "claims", [claims], self.notes(blocks)))
        if provider.fields:
            blocks = of("fields")
            decls = [c for b in blocks for c in b.children]
            _matching(decls, provider.fields, "field declarations")
            fields: list[str] = []
            for fdecl, child in zip(provider.fields, decls, strict=True):
                fields += _with_notes(_field_lines(fdecl, inner), self.notes([child]), inner)
            sections.append(_noted_block(_INDENT, "fields", [fields], self.notes(blocks)))
        _matching(of("let"), provider.lets, "lets")
        lets: list[str] = []
        for let, child in zip(provider.lets, of("let"), strict=True):
            lets += _with_notes(_let_lines(let, _INDENT), self.notes([child]), _INDENT)
        sections.append(lets)
        if provider.lookup:
            blocks = of("lookup")
            entries = [c for b in blocks for c in b.children]
            _matching(entries, provider.lookup, "lookup items")
            lookup: list[str] = []
            for entry, child in zip(provider.lookup, entries, strict=True):
                lookup += _with_notes([inner + _lookup_item(entry)], self.notes([child]), inner)
            sections.append(_noted_block(_INDENT, "lookup", [lookup], self.notes(blocks)))
        sections.extend(self.learns(provider.learns, of("learn")))
        _matching(of("note"), provider.notes, "notes")
        sections.extend(_with_notes(_note(note, _INDENT), self.notes([child]), _INDENT)
                        for note, child in zip(provider.notes, of("note"), strict=True))
        _matching(of("advise"), provider.advice, "advice")
        sections.extend(_with_notes(_advise(advice, _INDENT), self.notes([child]), _INDENT)
                        for advice, child in zip(provider.advice, of("advise"), strict=True))
        rules = of(*_RULE_KINDS)
        _matching(rules, provider.rules, "rules")
        sections.extend(self.rule(rule, child, _INDENT)
                        for rule, child in zip(provider.rules, rules, strict=True))
        return _noted_block("", _provider_opening(provider), sections, self.notes([item]))

    # -- publishers
    def publisher(self, publisher: Publisher, item: SourceItem) -> list[str]:
        def of(*names: str) -> list[SourceItem]:
            return [c for c in item.children if c.kind in names]

        printed: set[int] = {id(c) for c in item.children}
        for kind, shown in (("projects", bool(publisher.projects)),
                            ("pending_project", publisher.pending_project is not None),
                            ("bindings", bool(publisher.bindings))):
            if not shown:
                printed -= {id(c) for c in of(kind)}
        self.rehome(item.children, printed, item)

        names = publisher.provider.split(",") if publisher.provider else []
        _matching(of("uses"), names, "provider lines")
        header: list[str] = []
        for name, child in zip(names, of("uses"), strict=True):
            header += _with_notes([f"{_INDENT}provider {_name(name, 'the provider name')}"],
                                  self.notes([child]), _INDENT)
        if publisher.projects:
            header += _with_notes([f"{_INDENT}projects {_string_list(publisher.projects)}"],
                                  self.notes(of("projects")), _INDENT)
        if publisher.pending_project is not None:
            header += _with_notes(
                [f"{_INDENT}pending_project {_quote(publisher.pending_project)}"],
                self.notes(of("pending_project")), _INDENT)
        sections = [header]
        if publisher.bindings:
            blocks = of("bindings")
            entries = [c for b in blocks for c in b.children]
            _matching(entries, publisher.bindings, "field bindings")
            bindings: list[str] = []
            for binding, child in zip(publisher.bindings, entries, strict=True):
                bindings += _with_notes([_INDENT * 2 + _binding(binding)], self.notes([child]),
                                        _INDENT * 2)
            sections.append(_noted_block(_INDENT, "fields", [bindings], self.notes(blocks)))
        sections.extend(self.learns(publisher.learns, of("learn")))
        rules = of(*_RULE_KINDS)
        _matching(rules, publisher.rules, "rules")
        sections.extend(self.rule(rule, child, _INDENT)
                        for rule, child in zip(publisher.rules, rules, strict=True))
        opening = "publisher" if publisher.name is None else f"publisher {_quote(publisher.name)}"
        return _noted_block("", opening, sections, self.notes([item]))


def format_policy_with_comments(policy: PolicyFile, outline: Sequence[SourceItem],
                                comments: Sequence[Comment]) -> str:
    """`format_policy`, keeping the file's comments (`parse_policy_outline` gives all three).

    Without comments the text is exactly `format_policy(policy)`. Each comment stays with
    the item it is written on or just above, wherever the canonical order moves that item:

    * a comment on its own line belongs to the next item of its block (a block, a
      declaration, a `let`, a rule, a `require`, a field binding, ...) and is printed above
      it; after the last item of a block it stays at the end of the block, and after the
      last block at the end of the file. A blank line between the comments of a group, and
      one between the group and its item, is kept (one at most).
    * a comment at the end of a line belongs to the item that ends on that line (the last
      one, the outermost when several end there) and is printed at the end of that item's
      last line, after two spaces; on a block's opening line it stays there. A line holds
      one comment: the others a line would hold are printed above the item.
    * a comment inside a multi-line item is printed above the item (on its own line) or at
      the end of it (at the end of a line).
    * items that print as one (several `claims` blocks, a block rule with one `require`)
      keep all their comments; the comments of an item that prints nothing (such as
      `custom_issuers false`) go to the next item of the block, or to its end.
    """
    attacher = _Attacher()
    for comment in comments:
        attacher.place(comment, outline, None)
    printer = _CommentPrinter(attacher)
    providers = [i for i in outline if i.kind == "provider"]
    publishers = [i for i in outline if i.kind == "publisher"]
    _matching(providers, policy.providers, "providers")
    _matching(publishers, policy.publishers, "publishers")
    blocks = [printer.provider(p, i) for p, i in zip(policy.providers, providers, strict=True)]
    blocks += [printer.publisher(p, i)
               for p, i in zip(policy.publishers, publishers, strict=True)]
    text = "\n\n".join("\n".join(lines) for lines in blocks)
    if attacher.file_end:
        tail = "\n".join(_comment_lines(attacher.file_end, ""))
        if text:
            text += ("\n\n" if attacher.file_end[0].blank_before else "\n") + tail
        else:
            text = tail
    return text + "\n" if text else ""
