"""Policy text → syntax tree (`_ast`), with syntax errors that point at the source.

`parse_policy` gives the tree. For the formatter, `parse_policy_with_comments` also gives the
file's comments with their positions, and `parse_policy_outline` the position of every item
as written (a block, a declaration, a rule, a `require`, ...), which the tree does not keep.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import lark
from lark import Lark, Token, Transformer, v_args
from lark.tree import Meta

from tppolicy.errors import Diagnostic, PolicySyntaxError, Span
from tppolicy.language import ast as A
from tppolicy.limits import MAX_POLICY_NESTING

_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "INT": "an integer",
    "COMPARE": "a comparison (==, !=, <, <=, >, >=)",
    "CATEGORY": "a claim category (required, present, optional, unchecked)",
    "$END": "the end of the file",
}


# ------------------------------------------------------------- building the parser
# Building the LALR tables from policy.lark costs about 60 ms, a fifth of a `tppolicy check`.
# They are prepared at build time instead, as data shipped inside the package: JSON (never a
# pickle, never a file in a cache or temporary directory another user could write), made by
# `python -m tppolicy.language.tables` and used only when it records the SHA-256 of this very
# grammar and the lark version that reads it; otherwise the parser is built from the grammar.
TABLES_FILE = "policy.tables.json"
GRAMMAR_FILE = "policy.lark"
PARSER_OPTIONS: dict[str, Any] = {"parser": "lalr", "propagate_positions": True,
                                  "maybe_placeholders": True}


def grammar_text() -> str:
    """The policy language's grammar (lark syntax), as shipped in the package."""
    return resources.files(__package__).joinpath(GRAMMAR_FILE).read_text("utf-8")


def grammar_digest(grammar: str) -> str:
    """The SHA-256 (hex) that prepared tables record of the grammar they were made from."""
    return hashlib.sha256(grammar.encode("utf-8")).hexdigest()


def _int_keys(pairs: list[tuple[str, Any]]) -> dict[Any, Any]:
    # JSON object keys are strings; lark's tables number states, tokens and memo entries.
    return {int(key) if key.isdigit() else key: value for key, value in pairs}


def prepared_tables(grammar: str) -> dict[str, Any] | None:
    """The shipped parse tables when they were made from `grammar` for the installed lark
    (major.minor), else None."""
    try:
        text = resources.files(__package__).joinpath(TABLES_FILE).read_text("utf-8")
        tables = json.loads(text, object_pairs_hook=_int_keys)
    except (OSError, ValueError):
        return None
    if not isinstance(tables, dict):
        return None
    if (tables.get("grammar_sha256") != grammar_digest(grammar)
            or tables.get("lark") != lark_series()):
        return None
    return tables


def lark_series() -> str:
    """The installed lark's major.minor version (prepared tables name the one they need)."""
    return ".".join(lark.__version__.split(".")[:2])


def build_parser(*, prepared: bool = True, **options: Any) -> tuple[Lark, bool]:
    """The policy parser (and whether it came from the prepared tables). `options` are lark
    options that do not change the tables (`lexer_callbacks`)."""
    grammar = grammar_text()
    tables = prepared_tables(grammar) if prepared else None
    if tables is not None:
        load = Lark._load_from_dict  # noqa: SLF001 (lark's own loader of its tables)
        try:
            parser: Lark = load(tables["data"], tables["memo"], **options)  # type: ignore[no-untyped-call]
            return parser, True
        except (KeyError, TypeError, ValueError, AttributeError):
            pass  # tables this lark cannot read: build them from the grammar instead
    # No lark cache=True: it is a pickle in a shared temporary directory.
    return Lark(grammar, **PARSER_OPTIONS, **options), False


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return build_parser()[0]


def _describe_terminal(parser: Lark, name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        pattern = parser.get_terminal(name).pattern
    except KeyError:
        return name
    return f"'{pattern.value}'" if pattern.type == "str" else name


# What the grammar's strings admit but no string may hold: a raw control character (JSON
# refuses it when the literal is decoded) and an escaped lone surrogate (no UTF-8 text can
# carry it: printing it fails).
# A carriage return not ending a line with a line feed (old Mac line ends) too: the parser
# reads such a file as one line (a comment, the whole file), which editors show as many.
# Characters that make an editor or a review show other text than the parser reads: the
# C1 controls, line separators (U+0085, U+2028, U+2029: shown as line breaks, not counted
# as lines) and bidirectional controls (U+202E... reorder what is shown: "Trojan Source",
# CVE-2021-42574): refused wherever they are, comments and strings included.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                      r"\u202a-\u202e\u2066-\u2069]")
_INVISIBLE = {"\u061c": "bidirectional", "\u200e": "bidirectional", "\u200f": "bidirectional",
              "\u2028": "line separator", "\u2029": "line separator", "\x85": "line separator"}
_BARE_CR = re.compile(r"\r(?!\n)")
_LONE_SURROGATE = re.compile(
    r"(?<!\\)(?:\\\\)*(\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<![89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2})")


def _refuse_characters(text: str, source: str) -> None:
    """`PolicySyntaxError` at the first character no policy file may hold."""
    found = _CONTROL.search(text)
    if found is None and "\r" in text and text.count("\r") != text.count("\r\n"):
        found = _BARE_CR.search(text)  # (counting is 4 times faster than that search)
    problem = f"the control character U+{ord(found.group()):04X}" if found else ""
    hint = "remove it; write text as UTF-8 characters or \\u escapes of whole characters"
    kind = _INVISIBLE.get(found.group()) if found is not None else None
    if found is not None and ("\u202a" <= found.group() <= "\u202e"
                              or "\u2066" <= found.group() <= "\u2069"):
        kind = "bidirectional"
    if kind == "bidirectional":
        problem += (" (a bidirectional control: it reorders the text an editor or a review "
                    "shows, so that it reads otherwise than it parses)")
        hint = "remove it; to put one in a string's value, write its \\u escape"
    elif kind == "line separator":
        problem += " (shown as a line break by editors, not one to the parser)"
        hint = "end lines with \\n; to put one in a string's value, write its \\u escape"
    if found is not None and found.group() == "\r":
        problem += " (a carriage return without a line feed)"
        hint = "end lines with \\n (or \\r\\n), not \\r alone"
    if found is None:
        found = _LONE_SURROGATE.search(text)
        problem = f"the escape {found.group(1)} (half of a surrogate pair)" if found else ""
    if found is None:
        return
    at = found.start(1) if found.lastindex else found.start()
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    raise PolicySyntaxError([Diagnostic(
        f"{problem} is not allowed in a policy file", Span(source, line, column, line, column + 1),
        hint=hint)],
        text)


def parse_policy(text: str, source: str = "<policy>") -> A.PolicyFile:
    """Parse a policy file; raise `PolicySyntaxError` at the first syntax error."""
    from tppolicy.language.prepared import prepared_policy

    prepared = prepared_policy(text, source)
    if prepared is not None:
        return prepared
    return parse_policy_fresh(text, source)


def parse_policy_fresh(text: str, source: str = "<policy>") -> A.PolicyFile:
    """`parse_policy` without the prepared trees: always runs the parser."""
    _refuse_characters(text, source)
    parser = _parser()
    try:
        tree = parser.parse(text)
    except lark.UnexpectedInput as exc:
        raise _syntax_error(parser, exc, text, source) from None
    _check_nesting(tree, text, source)
    return _Builder(source).transform(tree)  # type: ignore[no-any-return]


def _check_nesting(tree: lark.Tree[Token], text: str, source: str) -> None:
    """Refuse a tree deeper than `MAX_POLICY_NESTING` (walked without recursion): every
    later stage (the tree builder, the checker, the printer, the compiler) recurses over
    it. A chain of `or`, `and` or `+` counts one level per operand."""
    stack: list[tuple[lark.Tree[Token], int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_POLICY_NESTING:
            meta = node.meta
            line = getattr(meta, "line", 1) or 1
            column = getattr(meta, "column", 1) or 1
            raise PolicySyntaxError([Diagnostic(
                f"nested too deeply: more than {MAX_POLICY_NESTING} levels of expressions "
                "and blocks", Span(source, line, column, line, column + 1),
                hint="name parts with `let`, or write a long `or` of comparisons as "
                     "`claims.NAME in [...]`")], text)
        for child in node.children:
            if isinstance(child, lark.Tree):
                stack.append((child, depth + 1))
            elif getattr(child, "type", None) == "INT":  # (children may be None)
                _check_integer(child, text, source)


# Integer literals: at most 40 digits, twice those of the largest number a claim can hold
# (a JSON reader gives 64-bit integers). A literal of more than 4 300 digits made int()
# raise inside the tree builder (exit 4); the digits of a large one cost every stage.
_MAX_INTEGER_DIGITS = 40


def _check_integer(token: Token, text: str, source: str) -> None:
    digits = len(token.lstrip("-"))
    if digits <= _MAX_INTEGER_DIGITS:
        return
    line, column = token.line or 1, token.column or 1
    raise PolicySyntaxError([Diagnostic(
        f"the integer {token[:20]}... is too large: it has {digits} digits; an integer has "
        f"at most {_MAX_INTEGER_DIGITS}", Span(source, line, column, line, column + len(token)),
        hint="write a smaller number, or compare the value as a string")], text)


# ------------------------------------------------------------ comments and outline
@dataclass(frozen=True, slots=True)
class Comment:
    """A `#` comment: its text from `#` to the end of the line (trailing blanks removed).

    `own_line` is true when only blanks precede it on its line (a full-line comment), false
    for a comment at the end of a line of code. `blank_before` / `blank_after` tell whether
    the line before / after it is blank (the formatter keeps such separations).
    """

    text: str
    span: Span
    own_line: bool
    blank_before: bool = False
    blank_after: bool = False


@dataclass(frozen=True, slots=True)
class SourceItem:
    """Where one item of a policy file is written, and the items inside it.

    `kind` is the grammar rule: "provider", "publisher", "issuer", "custom_issuers",
    "algorithms", "claims", "claim_decl", "ignore_prefix", "fields", "field_decl", "let",
    "lookup", "identity", "key", "prefer", "learn", "short_rule", "block_rule",
    "optional_short_rule", "optional_block_rule", "require", "fix", "note", "advise",
    "workflows", "workflow_item", "uses", "projects", "pending_project", "bindings" or
    "binding". Blocks ("provider", "publisher", "claims", "fields", "lookup", "bindings",
    "workflows", "block_rule", "optional_block_rule") have `children`, in source order.
    """

    kind: str
    span: Span
    children: tuple[SourceItem, ...] = ()


_BLOCK_KINDS = frozenset({"provider", "publisher", "claims", "fields", "lookup", "bindings",
                          "workflows", "block_rule", "optional_block_rule"})
_ITEM_KINDS = _BLOCK_KINDS | frozenset({
    "issuer", "custom_issuers", "algorithms", "claim_decl", "ignore_prefix", "field_decl",
    "let", "identity", "key", "prefer", "learn", "short_rule", "optional_short_rule",
    "require", "fix", "note", "advise", "workflows", "workflow_item", "uses", "projects",
    "pending_project", "binding",
})

# The comments lexed by the current thread's parse (the lexer callback appends to it).
_collected = threading.local()


def _collect_comment(token: Token) -> None:
    _collected.comments.append(token)


@lru_cache(maxsize=1)
def _comment_parser() -> Lark:
    callback: Callable[[Token], None] = _collect_comment
    return build_parser(lexer_callbacks={"COMMENT": callback})[0]


def _parse_tree(text: str, source: str) -> tuple[lark.Tree[Token], list[Token]]:
    _refuse_characters(text, source)
    parser = _comment_parser()
    _collected.comments = []
    try:
        tree = parser.parse(text)
    except lark.UnexpectedInput as exc:
        raise _syntax_error(parser, exc, text, source) from None
    finally:
        tokens: list[Token] = _collected.comments
        _collected.comments = []
    _check_nesting(tree, text, source)
    return tree, tokens


def _comments(tokens: list[Token], text: str, source: str) -> tuple[Comment, ...]:
    lines = text.split("\n")

    def blank(number: int) -> bool:  # 1-based; a line outside the file is not blank
        return 1 <= number <= len(lines) and not lines[number - 1].strip()

    comments: list[Comment] = []
    for token in tokens:
        line, column = token.line or 1, token.column or 1
        own_line = not lines[line - 1][:column - 1].strip()
        body = str(token).rstrip()
        comments.append(Comment(
            body, Span(source, line, column, line, column + len(body)), own_line,
            blank_before=own_line and blank(line - 1),
            blank_after=blank(line + 1),
        ))
    return tuple(comments)


def _outline(tree: lark.Tree[Token], source: str) -> tuple[SourceItem, ...]:
    def items(node: lark.Tree[Token]) -> tuple[SourceItem, ...]:
        found: list[SourceItem] = []
        for child in node.children:
            if isinstance(child, lark.Tree) and child.data in _ITEM_KINDS:
                meta = child.meta
                span = Span(source, meta.line, meta.column, meta.end_line, meta.end_column)
                inner = items(child) if child.data in _BLOCK_KINDS else ()
                found.append(SourceItem(str(child.data), span, inner))
        return tuple(found)

    return items(tree)


def parse_policy_with_comments(text: str, source: str = "<policy>",
                               ) -> tuple[A.PolicyFile, tuple[Comment, ...]]:
    """Parse a policy file like `parse_policy`, and also give its comments in file order."""
    tree, tokens = _parse_tree(text, source)
    policy: A.PolicyFile = _Builder(source).transform(tree)
    return policy, _comments(tokens, text, source)


def parse_policy_outline(text: str, source: str = "<policy>") -> tuple[
        A.PolicyFile, tuple[SourceItem, ...], tuple[Comment, ...]]:
    """`parse_policy_with_comments`, plus the top-level items of the file as written."""
    tree, tokens = _parse_tree(text, source)
    policy: A.PolicyFile = _Builder(source).transform(tree)
    return policy, _outline(tree, source), _comments(tokens, text, source)


def _syntax_error(parser: Lark, exc: lark.UnexpectedInput, text: str,
                  source: str) -> PolicySyntaxError:
    line, column = max(exc.line, 1), max(exc.column, 1)
    expected: set[str] = set()
    if isinstance(exc, lark.UnexpectedToken):
        token = exc.token
        found = "the end of the file" if token.type == "$END" else f"'{token}'"
        expected = set(exc.accepts or exc.expected)
        width = max(1, len(str(token)))
    elif isinstance(exc, lark.UnexpectedCharacters):
        position: int = getattr(exc, "pos_in_stream", 0) or 0
        found = f"character {text[position]!r}" if position < len(text) else "the end of the file"
        expected = set(exc.allowed or ())
        width = 1
    else:  # UnexpectedEOF
        found = "the end of the file"
        expected = set(getattr(exc, "expected", ()) or ())
        width = 1
    words = sorted({_describe_terminal(parser, name) for name in expected})
    hint = None
    if words:
        shown = ", ".join(words[:12]) + (", ..." if len(words) > 12 else "")
        hint = f"expected {shown}"
    span = Span(source, line, column, line, column + width)
    return PolicySyntaxError([Diagnostic(f"syntax error: unexpected {found}", span, hint=hint)],
                             text)


def _string(token: Token) -> str:
    # strict=False: a raw tab inside a string is the tab (other control characters are
    # refused before parsing, by `_refuse_characters`).
    value = json.loads(str(token), strict=False)
    assert isinstance(value, str)
    return value


def _provider_from_items(name: str, items: list[tuple[str, Any]], span: Span,
                         extends: str | None = None) -> A.Provider:
    """Gather a provider's items; duplicates are kept so that the checker can report them."""
    grouped: dict[str, list[Any]] = {}
    for kind, value in items:
        grouped.setdefault(kind, []).append(value)
    custom = grouped.get("custom_issuers", [False])
    return A.Provider(
        name=name,
        issuers=tuple(grouped.get("issuer", [])),
        custom_issuers=bool(custom[-1]),
        algorithms=tuple(a for group in grouped.get("algorithms", []) for a in group),
        claims=tuple(c for group in grouped.get("claims", []) for c in group[0]),
        ignored_prefixes=tuple(p for group in grouped.get("claims", []) for p in group[1]),
        fields=tuple(f for group in grouped.get("fields", []) for f in group),
        lets=tuple(grouped.get("let", [])),
        lookup=tuple(i for group in grouped.get("lookup", []) for i in group),
        rules=tuple(grouped.get("rule", [])),
        span=span,
        learns=tuple(grouped.get("learn", [])),
        notes=tuple(grouped.get("note", [])),
        advice=tuple(grouped.get("advise", [])),
        extends=extends,
        workflows=",".join(k for k, _ in grouped["workflows"]) if "workflows" in grouped
        else None,
        workflow_items=tuple(i for _, group in grouped.get("workflows", []) for i in group),
    )


@v_args(meta=True, inline=True)
class _Builder(Transformer[Token, Any]):
    """Builds `_ast` nodes; never raises (lark would wrap the error in a VisitError)."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def _span(self, meta: Meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.source, 0, 0, 0, 0)
        return Span(self.source, meta.line, meta.column, meta.end_line, meta.end_column)

    # -- file
    @v_args(meta=True, inline=False)
    def start(self, meta: Meta, children: list[Any]) -> A.PolicyFile:
        providers = tuple(c for c in children if isinstance(c, A.Provider))
        publishers = tuple(c for c in children if isinstance(c, A.Publisher))
        return A.PolicyFile(self.source, providers, publishers)

    # -- providers
    def provider(self, meta: Meta, name: Token, extends: str | None,
                 *items: tuple[str, Any]) -> A.Provider:
        return _provider_from_items(str(name), list(items), self._span(meta), extends)

    def extends(self, meta: Meta, name: Token) -> str:
        return str(name)

    def workflows(self, meta: Meta, name: Token, *items: A.WorkflowItem | None
                  ) -> tuple[str, Any]:
        return ("workflows", (str(name), [i for i in items if i is not None]))

    def workflow_item(self, meta: Meta, name: Token, value: A.Expr) -> A.WorkflowItem:
        return A.WorkflowItem(str(name), value, self._span(meta))

    def note(self, meta: Meta, condition: A.Expr | None, text: Token) -> tuple[str, Any]:
        return ("note", A.Note(condition, _string(text), self._span(meta)))

    def advise(self, meta: Meta, name: Token, condition: A.Expr | None,
               text: Token) -> tuple[str, Any]:
        return ("advise", A.Advice(str(name), condition, _string(text), self._span(meta)))

    def issuer(self, meta: Meta, value: Token) -> tuple[str, Any]:
        return ("issuer", _string(value))

    def custom_issuers(self, meta: Meta, value: A.Literal) -> tuple[str, Any]:
        return ("custom_issuers", value.value)

    def algorithms(self, meta: Meta, *values: Token | None) -> tuple[str, Any]:
        return ("algorithms", [_string(v) for v in values if v is not None])

    @v_args(meta=True, inline=False)
    def claims(self, meta: Meta, children: list[Any]) -> tuple[str, Any]:
        decls = [c for c in children if isinstance(c, A.ClaimDecl)]
        prefixes = [c for c in children if isinstance(c, str)]
        return ("claims", (decls, prefixes))

    def claim_decl(self, meta: Meta, category: Token, *rest: Token) -> A.ClaimDecl:
        *names, type_name = rest
        return A.ClaimDecl(str(category),
                           tuple(_string(n) if n.type == "STRING" else str(n) for n in names),
                           str(type_name), self._span(meta))

    def ignore_prefix(self, meta: Meta, value: Token) -> str:
        return _string(value)

    @v_args(meta=True, inline=False)
    def fields(self, meta: Meta, children: list[A.FieldDecl]) -> tuple[str, Any]:
        return ("fields", children)

    def field_decl(self, meta: Meta, name: Token, type_name: Token, default: A.Literal | None,
                   pattern: tuple[str, str | None, Span] | None,
                   exact_case: str | None) -> A.FieldDecl:
        return A.FieldDecl(str(name), str(type_name), default,
                           pattern[0] if pattern else None, pattern[1] if pattern else None,
                           self._span(meta), exact_case,
                           pattern[2] if pattern else self._span(meta))

    def exact_case(self, meta: Meta, reason: Token) -> str:
        return _string(reason)

    def default(self, meta: Meta, value: A.Expr) -> A.Expr:
        return value

    def pattern(self, meta: Meta, regex: Token, message: Token | None
                ) -> tuple[str, str | None, Span]:
        return (_string(regex), _string(message) if message is not None else None,
                Span(self.source, regex.line or 0, regex.column or 0, regex.end_line or 0,
                     regex.end_column or 0))

    def let(self, meta: Meta, name: Token, value: A.Expr) -> tuple[str, Any]:
        return ("let", A.Let(str(name), value, self._span(meta)))

    @v_args(meta=True, inline=False)
    def lookup(self, meta: Meta, children: list[A.LookupItem]) -> tuple[str, Any]:
        return ("lookup", children)

    def identity(self, meta: Meta, condition: A.Expr) -> A.LookupItem:
        return A.LookupItem("identity", condition, self._span(meta))

    def key(self, meta: Meta, condition: A.Expr) -> A.LookupItem:
        return A.LookupItem("key", condition, self._span(meta))

    def prefer(self, meta: Meta, condition: A.Expr) -> A.LookupItem:
        return A.LookupItem("prefer", condition, self._span(meta))

    def learn(self, meta: Meta, name: Token, value: A.Expr) -> tuple[str, Any]:
        return ("learn", A.Learn(str(name), value, self._span(meta)))

    # -- publishers
    def publisher(self, meta: Meta, name: Token | None, *items: tuple[str, Any]) -> A.Publisher:
        grouped: dict[str, list[Any]] = {}
        for kind, value in items:
            grouped.setdefault(kind, []).append(value)
        providers = grouped.get("provider", [])
        pending = grouped.get("pending_project", [])
        return A.Publisher(
            name=_string(name) if name is not None else None,
            provider=providers[0] if len(providers) == 1 else ",".join(providers),
            projects=tuple(p for group in grouped.get("projects", []) for p in group),
            pending_project=pending[0] if len(pending) == 1 else None,
            bindings=tuple(b for group in grouped.get("fields", []) for b in group),
            rules=tuple(grouped.get("rule", [])),
            span=self._span(meta),
            learns=tuple(grouped.get("learn", [])),
        )

    def uses(self, meta: Meta, name: Token) -> tuple[str, Any]:
        return ("provider", str(name))

    def projects(self, meta: Meta, *names: Token | None) -> tuple[str, Any]:
        return ("projects", [_string(n) for n in names if n is not None])

    def pending_project(self, meta: Meta, name: Token) -> tuple[str, Any]:
        return ("pending_project", _string(name))

    @v_args(meta=True, inline=False)
    def bindings(self, meta: Meta, children: list[A.Binding]) -> tuple[str, Any]:
        return ("fields", children)

    def binding(self, meta: Meta, name: Token, value: A.Literal) -> A.Binding:
        return A.Binding(str(name), value, self._span(meta))

    # -- rules
    def short_rule(self, meta: Meta, identity: bool | None, name: Token, condition: A.Expr,
                   message: str | None) -> tuple[str, Any]:
        span = self._span(meta)
        return ("rule", A.Rule(str(name), (A.Require(condition, message, span),), span,
                               identity=bool(identity)))

    def block_rule(self, meta: Meta, identity: bool | None, name: Token,
                   *items: A.Require | A.Fix) -> tuple[str, Any]:
        requires = tuple(i for i in items if isinstance(i, A.Require))
        fixes = tuple(i for i in items if isinstance(i, A.Fix))
        return ("rule", A.Rule(str(name), requires, self._span(meta), identity=bool(identity),
                               fixes=fixes))

    def identity_mark(self, meta: Meta) -> bool:
        return True

    def fix(self, meta: Meta, place: str | None, condition: A.Expr | None,
            text: Token) -> A.Fix:
        return A.Fix(place, condition, _string(text), self._span(meta))

    @v_args(meta=True, inline=False)
    def fix_place(self, meta: Meta, names: list[Token]) -> str:
        return " or ".join(str(n) for n in names)

    def optional_short_rule(self, meta: Meta, name: Token, condition: A.Expr,
                            message: str | None) -> tuple[str, Any]:
        span = self._span(meta)
        return ("rule", A.Rule(str(name), (A.Require(condition, message, span),), span,
                               optional=True))

    def optional_block_rule(self, meta: Meta, name: Token,
                            *items: A.Require | A.Fix) -> tuple[str, Any]:
        requires = tuple(i for i in items if isinstance(i, A.Require))
        fixes = tuple(i for i in items if isinstance(i, A.Fix))
        return ("rule", A.Rule(str(name), requires, self._span(meta), optional=True,
                               fixes=fixes))

    def require(self, meta: Meta, condition: A.Expr, message: str | None) -> A.Require:
        return A.Require(condition, message, self._span(meta))

    def message(self, meta: Meta, value: Token) -> str:
        return _string(value)

    # -- expressions
    def conditional(self, meta: Meta, cond: A.Expr, then: A.Expr, other: A.Expr) -> A.Expr:
        return A.Conditional(cond, then, other, self._span(meta))

    def or_(self, meta: Meta, left: A.Expr, right: A.Expr) -> A.Expr:
        return A.Or(left, right, self._span(meta))

    def and_(self, meta: Meta, left: A.Expr, right: A.Expr) -> A.Expr:
        return A.And(left, right, self._span(meta))

    def not_(self, meta: Meta, operand: A.Expr) -> A.Expr:
        return A.Not(operand, self._span(meta))

    def compare(self, meta: Meta, left: A.Expr, op: Token, right: A.Expr) -> A.Expr:
        return A.Compare(str(op), left, right, self._span(meta))

    def in_(self, meta: Meta, item: A.Expr, container: A.Expr) -> A.Expr:
        return A.In(item, container, False, self._span(meta))

    def not_in(self, meta: Meta, item: A.Expr, container: A.Expr) -> A.Expr:
        return A.In(item, container, True, self._span(meta))

    def concat(self, meta: Meta, left: A.Expr, right: A.Expr) -> A.Expr:
        return A.Concat(left, right, self._span(meta))

    def index(self, meta: Meta, target: A.Expr, index: A.Expr) -> A.Expr:
        return A.Index(target, index, self._span(meta))

    def claim(self, meta: Meta, name: Token) -> A.Expr:
        return A.Claim(_string(name) if name.type == "STRING" else str(name), self._span(meta))

    def field_ref(self, meta: Meta, name: Token) -> A.Expr:
        return A.FieldRef(str(name), self._span(meta))

    def request_ref(self, meta: Meta, name: Token) -> A.Expr:
        return A.Request(str(name), self._span(meta))

    def call(self, meta: Meta, name: Token, *args: A.Expr | None) -> A.Expr:
        return A.Call(str(name), tuple(a for a in args if a is not None), self._span(meta))

    def name_ref(self, meta: Meta, name: Token) -> A.Expr:
        return A.NameRef(str(name), self._span(meta))

    def literal(self, meta: Meta, value: A.Expr) -> A.Expr:
        return value

    def string(self, meta: Meta, value: Token) -> A.Expr:
        return A.Literal(_string(value), self._span(meta))

    def integer(self, meta: Meta, value: Token) -> A.Expr:
        return A.Literal(int(str(value)), self._span(meta))

    def boolean(self, meta: Meta, value: A.Literal) -> A.Literal:
        return value

    def true(self, meta: Meta) -> A.Literal:
        return A.Literal(True, self._span(meta))

    def false(self, meta: Meta) -> A.Literal:
        return A.Literal(False, self._span(meta))

    def null(self, meta: Meta) -> A.Expr:
        return A.Literal(None, self._span(meta))

    def list_(self, meta: Meta, *items: A.Expr | None) -> A.Expr:
        return A.ListExpr(tuple(i for i in items if i is not None), self._span(meta))
