"""Syntax tree → policy text: the canonical printer (formatter) of policy files.

The layout is deterministic: two-space indentation, the items of a block in a fixed order,
one blank line between top-level blocks, between the sections of a block and between rules,
and the fewest parentheses that the grammar's precedence allows. Printing a parsed file and
parsing the result gives back an equal tree (spans aside), and printing is idempotent.

What the printer does not keep, because the syntax tree does not hold it:

* **Comments** are dropped (preserving them is a later issue).
* The order of the items inside a block: a provider prints its issuers, `custom_issuers`
  (only when true), `algorithms`, `claims`, `fields`, `let`s, `lookup`, then its rules; a
  publisher its `provider`, `projects` / `pending_project`, `fields`, then its rules. Several
  `claims`, `fields` or `lookup` blocks are merged into one.
* The order of top-level blocks: all providers come first, then all publishers.
* The form of a rule: a rule with one `require` prints as `rule NAME: EXPR`, any other as a
  block.

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
from collections.abc import Iterable

from ._ast import (
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
    In,
    Index,
    Let,
    ListExpr,
    Literal,
    LookupItem,
    NameRef,
    Not,
    Or,
    PolicyFile,
    Provider,
    Publisher,
    Require,
    Rule,
)

__all__ = ["format_expr", "format_policy", "format_provider", "format_publisher",
           "format_value"]

_LINE_WIDTH = 100
_INDENT = "  "
_CONTINUATION = "    "

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Every keyword of the grammar. A claim whose name is one of them is printed in the bracket
#: form (`claims["if"]`), which never depends on how the lexer treats keywords in context.
_KEYWORDS = frozenset({
    "provider", "issuer", "custom_issuers", "algorithms", "claims", "ignore", "prefix",
    "fields", "matches", "else", "let", "lookup", "key", "prefer", "publisher", "projects",
    "pending_project", "rule", "require", "if", "then", "or", "and", "not", "in", "true",
    "false", "null", "required", "present", "optional", "unchecked",
})

# The keywords that can start an expression: a `let` reference or a function name spelled
# like one of them would be read as that keyword.
_EXPRESSION_KEYWORDS = frozenset({
    "if", "not", "claims", "publisher", "true", "false", "null",
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
    return "[" + ", ".join(_quote(v) for v in values) + "]"


# ----------------------------------------------------------------- expressions
def _level(expr: Expr) -> int:
    """The lowest grammar level at which `expr` can be written without parentheses."""
    match expr:
        case Conditional():
            return _EXPR
        case Or():
            return _OR
        case And():
            return _AND
        case Not():
            return _NOT
        case Compare() | In():
            return _COMPARISON
        case Concat():
            return _SUM
        case Index():
            return _POSTFIX
        case _:
            return _ATOM


def _sub(expr: Expr, level: int) -> str:
    """`expr` where the grammar expects an expression of `level` (or higher)."""
    text = _expr(expr)
    return f"({text})" if _level(expr) < level else text


def _expr(expr: Expr) -> str:
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
    first = f"{indent}{head}{_expr(condition)}"
    tail = "" if message is None else f" else {_quote(message)}"
    if len(first) + len(tail) <= _LINE_WIDTH:
        return [first + tail]
    continuation = indent + _CONTINUATION
    lines = [first]
    chain = _chain(condition) if len(first) > _LINE_WIDTH else None
    if chain is not None:
        lines = [f"{indent}{head}{chain[0]}"] + [continuation + part for part in chain[1:]]
    if message is not None:
        lines.append(f"{continuation}else {_quote(message)}")
    return lines


# ---------------------------------------------------------------------- blocks
def _block(indent: str, opening: str, sections: list[list[str]]) -> list[str]:
    """`opening {`, the non-empty `sections` separated by blank lines, `}`."""
    body: list[str] = []
    for section in sections:
        if not section:
            continue
        if body:
            body.append("")
        body.extend(section)
    if not body:
        return [f"{indent}{opening} {{}}"]
    return [f"{indent}{opening} {{", *body, f"{indent}}}"]


def _rule(rule: Rule, indent: str) -> list[str]:
    name = _name(rule.name, "the rule name")
    if len(rule.requires) == 1:
        require = rule.requires[0]
        return _condition_lines(indent, f"rule {name}: ", require.condition, require.message)
    inner = indent + _INDENT
    lines: list[str] = []
    for require in rule.requires:
        lines.extend(_require(require, inner))
    return _block(indent, f"rule {name}", [lines])


def _require(require: Require, indent: str) -> list[str]:
    return _condition_lines(indent, "require ", require.condition, require.message)


def _claim_decl(decl: ClaimDecl) -> str:
    if decl.category not in ("required", "present", "optional", "unchecked"):
        raise ValueError(f"not a claim category: {decl.category!r}")
    if not decl.names:
        raise ValueError("cannot print a claim declaration without names")
    names = ", ".join(_claim_name(n) for n in decl.names)
    return f"{decl.category} {names}: {_name(decl.type, 'the claim type')}"


def _field_decl(decl: FieldDecl) -> str:
    text = f"{_name(decl.name, 'the field name')}: {_name(decl.type, 'the field type')}"
    if decl.default is not None:
        text += f" = {_expr(decl.default)}"
    if decl.pattern is not None:
        text += f" matches {_quote(decl.pattern)}"
        if decl.pattern_message is not None:
            text += f" else {_quote(decl.pattern_message)}"
    elif decl.pattern_message is not None:
        raise ValueError(f"cannot print field {decl.name!r}: a pattern message needs a pattern")
    return text


def _let(let: Let) -> str:
    return f"let {_name(let.name, 'the let name')} = {_expr(let.value)}"


def _lookup_item(item: LookupItem) -> str:
    if item.kind not in ("key", "prefer"):
        raise ValueError(f"not a lookup item kind: {item.kind!r}")
    return f"{item.kind} {_expr(item.condition)}"


def _binding(binding: Binding) -> str:
    return f"{_name(binding.name, 'the field name')} = {_expr(binding.value)}"


def _provider_lines(provider: Provider, include_rules: bool) -> list[str]:
    inner = _INDENT * 2
    header = [f"{_INDENT}issuer {_quote(i)}" for i in provider.issuers]
    if provider.custom_issuers:
        header.append(f"{_INDENT}custom_issuers true")
    if provider.algorithms:
        header.append(f"{_INDENT}algorithms {_string_list(provider.algorithms)}")
    sections = [header]
    if provider.claims or provider.ignored_prefixes:
        claims = [inner + _claim_decl(c) for c in provider.claims]
        claims += [f"{inner}ignore prefix {_quote(p)}" for p in provider.ignored_prefixes]
        sections.append(_block(_INDENT, "claims", [claims]))
    if provider.fields:
        fields = [inner + _field_decl(f) for f in provider.fields]
        sections.append(_block(_INDENT, "fields", [fields]))
    sections.append([_INDENT + _let(let) for let in provider.lets])
    if provider.lookup:
        lookup = [inner + _lookup_item(i) for i in provider.lookup]
        sections.append(_block(_INDENT, "lookup", [lookup]))
    if include_rules:
        sections.extend(_rule(rule, _INDENT) for rule in provider.rules)
    return _block("", f"provider {_name(provider.name, 'the provider name')}", sections)


def _publisher_lines(publisher: Publisher) -> list[str]:
    opening = "publisher" if publisher.name is None else f"publisher {_quote(publisher.name)}"
    # The parser joins several `provider` items with "," and gives "" for none: print back
    # what it read.
    header = [f"{_INDENT}provider {_name(p, 'the provider name')}"
              for p in publisher.provider.split(",") if publisher.provider]
    if publisher.projects:
        header.append(f"{_INDENT}projects {_string_list(publisher.projects)}")
    if publisher.pending_project is not None:
        header.append(f"{_INDENT}pending_project {_quote(publisher.pending_project)}")
    sections = [header]
    if publisher.bindings:
        bindings = [_INDENT * 2 + _binding(b) for b in publisher.bindings]
        sections.append(_block(_INDENT, "fields", [bindings]))
    sections.extend(_rule(rule, _INDENT) for rule in publisher.rules)
    return _block("", opening, sections)


def format_provider(provider: Provider, *, include_rules: bool = True) -> str:
    """A `provider` block, without a final newline; `include_rules=False` leaves out its rules."""
    return "\n".join(_provider_lines(provider, include_rules))


def format_publisher(publisher: Publisher) -> str:
    """A `publisher` block, without a final newline."""
    return "\n".join(_publisher_lines(publisher))


def format_policy(policy: PolicyFile) -> str:
    """A whole policy file: its providers, then its publishers, separated by blank lines.

    The text ends with one newline (an empty policy prints as the empty string).
    """
    blocks = [format_provider(p) for p in policy.providers]
    blocks += [format_publisher(p) for p in policy.publishers]
    return "\n\n".join(blocks) + "\n" if blocks else ""
