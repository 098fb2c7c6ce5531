from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tppolicy import PolicySyntaxError
from tppolicy.language import ast as A
from tppolicy.language.parse import parse_policy
from tppolicy.language.providers import policies_dir


def test_spans_point_at_the_source() -> None:
    policy = parse_policy('provider p {\n  rule r: claims.a == "x"\n}\n', "p.tpp")
    rule = policy.providers[0].rules[0]
    condition = rule.requires[0].condition
    assert isinstance(condition, A.Compare)
    assert (condition.span.source, condition.span.line, condition.span.column) == ("p.tpp", 2, 11)
    assert condition.left == A.Claim("a")


@pytest.mark.parametrize(("text", "where", "found"), [
    ("provider x { issuer 3 }", "bad.tpp:1:21", "unexpected '3'"),
    ("provider x {\n  rule a: claims.x = 3 }", "bad.tpp:2:20", "unexpected '='"),
    ('provider x { rule a: claims.x == "abc }', "bad.tpp:1:34", "unexpected character '\"'"),
    ("provider x {", "bad.tpp:1:12", "unexpected the end of the file"),
    ("publisher { provider p projects [1] }", "bad.tpp:1:34", "unexpected '1'"),
])
def test_syntax_errors_name_file_line_and_column(text: str, where: str, found: str) -> None:
    with pytest.raises(PolicySyntaxError) as info:
        parse_policy(text, "bad.tpp")
    rendered = str(info.value)
    assert rendered.startswith(f"{where}: syntax error: {found}")
    assert "^" in rendered  # the caret under the source line
    assert "expected" in rendered


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


@given(st.text(max_size=200))
def test_arbitrary_text_parses_or_raises_a_syntax_error(text: str) -> None:
    try:
        parse_policy(text, "fuzz.tpp")
    except PolicySyntaxError as exc:
        assert exc.diagnostics[0].span is not None
        assert exc.diagnostics[0].span.source == "fuzz.tpp"


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
