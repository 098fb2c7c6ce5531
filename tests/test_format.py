"""The canonical printer: golden files, idempotence, and a round trip over random trees."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

import pytest

from tppolicy.language.ast import (
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
from tppolicy.language.parse import parse_policy
from tppolicy.language.printer import (
    _KEYWORDS,
    _LINE_WIDTH,
    format_expr,
    format_policy,
    format_provider,
    format_publisher,
    format_value,
)

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "format"
GOLDEN = sorted(p.name.removesuffix(".in.tpp") for p in FIXTURES.glob("*.in.tpp"))
SHIPPED = sorted(p.name for p in (ROOT / "policies").glob("*.tpp"))


def reformat(text: str) -> str:
    return format_policy(parse_policy(text))


def parse_expr(text: str) -> Expr:
    policy = parse_policy(f"provider p {{ rule r: {text} }}")
    return policy.providers[0].rules[0].requires[0].condition


def n(name: str) -> NameRef:
    return NameRef(name)


# ---------------------------------------------------------------- golden files
@pytest.mark.parametrize("name", GOLDEN)
def test_golden(name: str) -> None:
    source = (FIXTURES / f"{name}.in.tpp").read_text("utf-8")
    expected = (FIXTURES / f"{name}.out.tpp").read_text("utf-8")
    assert reformat(source) == expected


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_output_is_a_fixed_point(name: str) -> None:
    expected = (FIXTURES / f"{name}.out.tpp").read_text("utf-8")
    assert reformat(expected) == expected


@pytest.mark.parametrize("name", GOLDEN)
def test_idempotent(name: str) -> None:
    once = reformat((FIXTURES / f"{name}.in.tpp").read_text("utf-8"))
    assert reformat(once) == once


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_round_trip(name: str) -> None:
    tree = parse_policy((FIXTURES / f"{name}.in.tpp").read_text("utf-8"))
    assert parse_policy(format_policy(tree)) == tree


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_policies(name: str) -> None:
    text = (ROOT / "policies" / name).read_text("utf-8")
    tree = parse_policy(text)
    formatted = format_policy(tree)
    assert parse_policy(formatted) == tree
    assert reformat(formatted) == formatted


def test_keywords_are_the_grammars() -> None:
    grammar = (ROOT / "src" / "tppolicy" / "language" / "policy.lark").read_text("utf-8")
    words = set(re.findall(r'"([a-z_]+)"', grammar))
    assert words == _KEYWORDS


# ---------------------------------------------------------------------- values
@pytest.mark.parametrize(("value", "text"), [
    (None, "null"),
    (True, "true"),
    (False, "false"),
    (0, "0"),
    (-42, "-42"),
    ("", '""'),
    ('a"b\\c/d', r'"a\"b\\c/d"'),
    ("\n\r\t\b\f", r'"\n\r\t\b\f"'),
    ("\x00\x1f\x7f\x85", r'"\u0000\u001f\u007f\u0085"'),
    ("\u2028\u2029\u00a0\u200b", r'"\u2028\u2029\u00a0\u200b"'),
    ("café 日本 😀", '"café 日本 😀"'),
    ("\U000e0001", r'"\udb40\udc01"'),  # a format character beyond the BMP: a surrogate pair
    ("# not a comment", '"# not a comment"'),
])
def test_format_value(value: str | int | bool | None, text: str) -> None:
    assert format_value(value) == text
    assert parse_expr(text) == Literal(value)
    assert type(parse_expr(text)).__name__ == "Literal"


def test_format_value_keeps_bools_apart_from_ints() -> None:
    # True == 1 in Python, so the round trip's equality alone would not notice.
    assert repr(parse_expr(format_value(True))) == repr(Literal(True))
    assert repr(parse_expr(format_value(1))) == repr(Literal(1))


# ----------------------------------------------------------------- expressions
@pytest.mark.parametrize(("expr", "text"), [
    (Or(Or(n("a"), n("b")), n("c")), "a or b or c"),
    (Or(n("a"), Or(n("b"), n("c"))), "a or (b or c)"),
    (And(n("a"), And(n("b"), n("c"))), "a and (b and c)"),
    (Or(And(n("a"), n("b")), And(n("c"), n("d"))), "a and b or c and d"),
    (And(Or(n("a"), n("b")), n("c")), "(a or b) and c"),
    (Not(Not(n("a"))), "not not a"),
    (Not(And(n("a"), n("b"))), "not (a and b)"),
    (Not(Compare("==", n("a"), n("b"))), "not a == b"),
    (Compare("==", Not(n("a")), n("b")), "(not a) == b"),
    (Compare("==", Compare("==", n("a"), n("b")), n("c")), "(a == b) == c"),
    (Compare("<", n("a"), Compare("<", n("b"), n("c"))), "a < (b < c)"),
    (In(In(n("a"), n("b"), False), n("c"), True), "(a in b) not in c"),
    (In(n("a"), Concat(n("b"), n("c")), False), "a in b + c"),
    (Concat(Concat(n("a"), n("b")), n("c")), "a + b + c"),
    (Concat(n("a"), Concat(n("b"), n("c"))), "a + (b + c)"),
    (Index(Concat(n("a"), n("b")), Literal(0)), "(a + b)[0]"),
    (Index(Index(n("a"), Literal(-1)), Or(n("b"), n("c"))), "a[-1][b or c]"),
    (Concat(Index(n("a"), Literal(0)), Index(n("b"), Literal(1))), "a[0] + b[1]"),
    (Conditional(n("a"), n("b"), n("c")), "if a then b else c"),
    (Or(Conditional(n("a"), n("b"), n("c")), n("d")), "(if a then b else c) or d"),
    (Not(Conditional(n("a"), n("b"), n("c"))), "not (if a then b else c)"),
    (Index(Conditional(n("a"), n("b"), n("c")), Conditional(n("d"), n("e"), n("f"))),
     "(if a then b else c)[if d then e else f]"),
    (Conditional(Conditional(n("a"), n("b"), n("c")), Or(n("d"), n("e")),
                 Conditional(n("f"), n("g"), n("h"))),
     "if if a then b else c then d or e else if f then g else h"),
    (Call("f", ()), "f()"),
    (Call("f", (Conditional(n("a"), n("b"), n("c")), ListExpr(()))),
     "f(if a then b else c, [])"),
    (ListExpr((Or(n("a"), n("b")), Literal(None), Literal("x"))), '[a or b, null, "x"]'),
    (Index(ListExpr((Literal(1),)), Literal(0)), "[1][0]"),
    (Claim("repository"), "claims.repository"),
    (Claim("oidc.example.com/org-id"), 'claims["oidc.example.com/org-id"]'),
    (Claim("if"), 'claims["if"]'),
    (Claim("required"), 'claims["required"]'),
    (Claim("9lives"), 'claims["9lives"]'),
    (Claim(""), 'claims[""]'),
    (Claim('a"b'), r'claims["a\"b"]'),
    (FieldRef("environment"), "publisher.environment"),
    (Concat(Literal("a"), Literal(-1)), '"a" + -1'),
])
def test_format_expr(expr: Expr, text: str) -> None:
    assert format_expr(expr) == text
    assert parse_expr(text) == expr


@pytest.mark.parametrize("expr", [
    NameRef("if"),
    NameRef("true"),
    NameRef("not"),
    NameRef("a-b"),
    NameRef(""),
    Call("claims", ()),
    Call("null", ()),
    Call("f.g", ()),
    FieldRef("a.b"),
    Compare("=", n("a"), n("b")),
])
def test_format_expr_refuses_what_no_text_can_say(expr: Expr) -> None:
    with pytest.raises(ValueError, match=r"cannot print|not a comparison"):
        format_expr(expr)


def test_refuses_unprintable_declarations() -> None:
    with pytest.raises(ValueError, match="pattern message needs a pattern"):
        format_provider(Provider("p", fields=(FieldDecl("f", "string", pattern_message="m"),)))
    with pytest.raises(ValueError, match="the rule name"):
        format_provider(Provider("p", rules=(Rule("a b", (Require(Literal(True)),)),)))
    with pytest.raises(ValueError, match="claim category"):
        format_provider(Provider("p", claims=(ClaimDecl("maybe", ("a",), "string"),)))
    with pytest.raises(ValueError, match="lookup item kind"):
        format_provider(Provider("p", lookup=(LookupItem("want", Literal(True)),)))
    with pytest.raises(ValueError, match="the provider name"):
        format_publisher(Publisher("x", "not a name"))


# ---------------------------------------------------------------------- blocks
def test_format_provider_without_rules() -> None:
    provider = Provider(
        "p", issuers=("https://issuer",),
        lets=(Let("x", Claim("a")),),
        rules=(Rule("r", (Require(Literal(True)),)),),
    )
    assert format_provider(provider, include_rules=False) == (
        'provider p {\n  issuer "https://issuer"\n\n  let x = claims.a\n}'
    )
    assert format_provider(provider).endswith("\n\n  rule r: true\n}")


def test_format_publisher() -> None:
    publisher = Publisher(None, "github", pending_project="new",
                          bindings=(Binding("owner", Literal("octo")),))
    assert format_publisher(publisher) == (
        'publisher {\n  provider github\n  pending_project "new"\n\n'
        '  fields {\n    owner = "octo"\n  }\n}'
    )


def test_format_policy_ends_with_one_newline() -> None:
    assert format_policy(PolicyFile("<policy>")) == ""
    assert format_policy(parse_policy("# only a comment\n")) == ""
    text = format_policy(PolicyFile("<policy>", providers=(Provider("a"), Provider("b"))))
    assert text == "provider a {}\n\nprovider b {}\n"


def test_publisher_with_several_or_no_providers_prints_what_was_read() -> None:
    text = 'publisher "x" {\n  provider a\n  provider b\n}\n'
    assert reformat(text) == text
    assert reformat("publisher {}") == "publisher {}\n"


def _rule_text(expr_text: str, message: str | None = None) -> list[str]:
    tail = "" if message is None else f" else {format_value(message)}"
    return reformat(f"provider p {{ rule r: {expr_text}{tail} }}").split("\n")[1:-2]


def test_line_width_boundary() -> None:
    prefix = "  rule r: "
    fits = '"' + "x" * (_LINE_WIDTH - len(prefix) - 2) + '"'
    assert len(prefix + fits) == _LINE_WIDTH
    assert _rule_text(fits) == [prefix + fits]
    longer = fits[:-1] + 'y"'
    assert _rule_text(longer) == [prefix + longer]  # not a chain: left long


def test_message_moves_at_one_column_past_the_width() -> None:
    prefix = "  rule r: "
    message = ' else "m"'
    room = _LINE_WIDTH - len(prefix) - len(message) - 2
    at_width = '"' + "x" * room + '"'
    assert _rule_text(at_width, "m") == [prefix + at_width + message]
    past = '"' + "x" * (room + 1) + '"'
    assert _rule_text(past, "m") == [prefix + past, '      else "m"']


def test_chain_breaks_only_past_the_width() -> None:
    prefix = "  rule r: "
    left = "claims.a or "
    at_width = left + '"' + "x" * (_LINE_WIDTH - len(prefix) - len(left) - 2) + '"'
    assert _rule_text(at_width) == [prefix + at_width]
    past = left + '"' + "x" * (_LINE_WIDTH - len(prefix) - len(left) - 1) + '"'
    assert _rule_text(past) == [prefix + "claims.a", "      " + past[len(left) - 3:]]
