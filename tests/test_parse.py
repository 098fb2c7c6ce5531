from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tppolicy import PolicySyntaxError
from tppolicy.language import ast as A
from tppolicy.language.parse import parse_policy
from tppolicy.language.printer import format_policy
from tppolicy.language.providers import policies_dir


def test_spans_point_at_the_source() -> None:
    policy = parse_policy('provider p {\n  rule r: claims.a == "x"\n}\n', "p.tpp")
    rule = policy.providers[0].rules[0]
    condition = rule.requires[0].condition
    assert isinstance(condition, A.Compare)
    assert (condition.span.source, condition.span.line, condition.span.column) == ("p.tpp", 2, 11)
    assert condition.left == A.Claim("a")


@pytest.mark.parametrize(("text", "rendered"), [
    ("provider x { issuer 3 }",
     "bad.tpp:1:21: syntax error: unexpected '3'\n"
     "    provider x { issuer 3 }\n"
     "                        ^\n"
     "    hint: expected a string"),
    ("provider x {\n  rule a: claims.x = 3 }",
     "bad.tpp:2:20: syntax error: unexpected '='\n"
     "      rule a: claims.x = 3 }\n"
     "                       ^\n"
     "    hint: expected '+', '[', 'advise', 'algorithms', 'and', 'claims', 'custom_issuers', "
     "'else', 'fields', 'identity', 'in', 'issuer', ..."),
    ('provider x { rule a: claims.x == "abc }',
     "bad.tpp:1:34: syntax error: unexpected character '\"'\n"
     '    provider x { rule a: claims.x == "abc }\n'
     "                                     ^\n"
     "    hint: expected '(', '[', a name, a string, an integer"),
    ("provider x {",
     "bad.tpp:1:12: syntax error: unexpected the end of the file\n"
     "    provider x {\n"
     "               ^\n"
     "    hint: expected 'advise', 'algorithms', 'claims', 'custom_issuers', 'fields', "
     "'identity', 'issuer', 'learn', 'let', 'lookup', 'note', 'optional', ..."),
    ("publisher { provider p projects [1] }",
     "bad.tpp:1:34: syntax error: unexpected '1'\n"
     "    publisher { provider p projects [1] }\n"
     "                                     ^\n"
     "    hint: expected ']', a string"),
])
def test_syntax_errors_name_file_line_and_column(text: str, rendered: str) -> None:
    # Pinned whole: the location, the message, the source line, the caret under the column
    # and the hint.
    with pytest.raises(PolicySyntaxError) as info:
        parse_policy(text, "bad.tpp")
    assert str(info.value) == rendered


def test_precedence() -> None:
    text = 'provider p { rule r: not claims.a == "x" or claims.b in ["y"] and true }'
    policy = parse_policy(text)
    condition = policy.providers[0].rules[0].requires[0].condition
    assert isinstance(condition, A.Or)
    assert isinstance(condition.left, A.Not)
    assert isinstance(condition.right, A.And)


def test_every_shipped_provider_parses() -> None:
    files = sorted(policies_dir().glob("*.tpp"))
    assert {f.stem for f in files} >= {"github", "gitlab", "google", "activestate"}
    for file in files:
        policy = parse_policy(file.read_text(), str(file))
        assert [p.name for p in policy.providers] == [file.stem]


def test_field_values_are_scalars() -> None:
    with pytest.raises(PolicySyntaxError, match="unexpected '\\['"):
        parse_policy('publisher { provider p fields { ids = [1, 2] } }', "bad.tpp")


def test_loading_providers_writes_no_cache(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing that could run code is kept between runs: no file appears in the cache
    home or the temporary directory when the shipped providers are parsed."""
    from tppolicy.language.providers import load_provider_files

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    first = load_provider_files([policies_dir()])
    assert first
    assert not (tmp_path / "cache").exists()
    assert list((tmp_path / "tmp").iterdir()) == []


# ------------------------------------------------- issue 12 item 15: deep nesting
def _deep_policy(expression: str) -> str:
    return ('publisher "p" {\n  provider github\n  projects ["x"]\n'
            '  fields { repository_owner = "o" repository_name = "r" '
            'repository_owner_id = "1" workflow_filename = "r.yml" }\n'
            f"  rule r: {expression}\n}}\n")


def _deep_expression(kind: str, depth: int) -> str:
    return {
        "not": lambda: "not " * depth + 'claims.repository == "x"',
        "or": lambda: " or ".join(f'claims.repository == "x{i}"' for i in range(depth)),
        "if": lambda: "if true then " * depth + "true" + " else false" * depth,
        "concat": lambda: "claims.repository == " + " + ".join(f'"a{i}"' for i in range(depth)),
    }[kind]()


# Three times Python's recursion limit: a stage that recursed over the tree before the
# nesting check would fail with RecursionError. The slow group tries 20 000 levels too.
DEPTH = 3_000
DEEP = {kind: _deep_expression(kind, DEPTH) for kind in ("not", "or", "if", "concat")}


def _refused_with_its_place(text: str) -> None:
    from tppolicy.language.parse import parse_policy_outline

    for parse in (parse_policy, lambda t, s: parse_policy_outline(t, s)[0]):
        with pytest.raises(PolicySyntaxError) as caught:
            parse(text, "deep.tpp")
        diagnostic = caught.value.diagnostics[0]
        assert "nested too deeply: more than 100 levels" in diagnostic.message
        assert diagnostic.span is not None
        assert diagnostic.span.source == "deep.tpp" and diagnostic.span.line == 5


@pytest.mark.parametrize("kind", [
    pytest.param(kind, marks=pytest.mark.slow) if kind in ("if", "or") else kind
    for kind in sorted(DEEP)])  # two in the slow group: the default run's budget
def test_deep_nesting_is_refused_with_its_place(kind: str) -> None:
    assert 2 * sys.getrecursionlimit() < DEPTH
    _refused_with_its_place(_deep_policy(DEEP[kind]))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["not", "or", "concat"])
def test_very_deep_nesting_is_refused_with_its_place(kind: str) -> None:
    _refused_with_its_place(_deep_policy(_deep_expression(kind, 20_000)))


@pytest.mark.parametrize("command", ["check", "fmt", "lint"])
def test_deep_nesting_exits_3_in_every_tool(tmp_path: Path, command: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import run_cli

    policy = tmp_path / "deep.tpp"
    policy.write_text(_deep_policy(DEEP["or"]))
    claims = tmp_path / "claims.json"
    claims.write_text('{"iss": "https://token.actions.githubusercontent.com", "aud": "pypi"}')
    argv = {"check": ["check", "--policy", str(policy), "--claims", str(claims)],
            "fmt": ["fmt", "--check", str(policy)], "lint": ["lint", str(policy)]}[command]
    code, _, err = run_cli(capsys, *argv)
    assert code == 3, err
    assert "nested too deeply" in err and "RecursionError" not in err


def test_nesting_within_the_bound_works_everywhere() -> None:
    text = _deep_policy("not " * 94 + 'claims.repository == "x"')
    policy = parse_policy(text)
    assert parse_policy(format_policy(policy)) == policy


def test_lets_filled_in_are_bounded_too() -> None:
    import tppolicy

    lets = "\n".join(f"  let l{i} = " + "not " * 90 + (f"l{i - 1}" if i else 'claims.a == "x"')
                     for i in range(30))
    text = (f'provider p {{\n  issuer "https://x.example.com"\n  claims {{ required a: string }}'
            f'\n  fields {{ a: string }}\n  lookup {{ key publisher.a == claims.a }}\n{lets}\n'
            "  rule r: l29\n}\n")
    with pytest.raises(tppolicy.TppolicyError, match="'l2' nests too deeply once the lets"):
        tppolicy.load_policy_text(text, "lets.tpp")
