"""One claims reader (readers/claims.py) for `tppolicy check`, `explain` and `test`: a key
given twice, NaN, a lone surrogate or a non-object top level are refused by all of them, with
the file, line and column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tppolicy.errors import ClaimsError
from tppolicy.readers.claims import parse_claims
from tppolicy.tools.testrunner import run_files

from .conftest import EXAMPLES, run_cli

BAD = [
    ('{"iss": "a",\n "aud": "pypi",\n "aud": "testpypi"}', 3, 2, "the claim 'aud' appears twice"),
    ('{"iss": "a", "n": NaN}', 1, 19, "NaN is not a JSON number"),
    ('{"s": "Infinity", "n": -Infinity}', 1, 24, "-Infinity is not a JSON number"),
    ('{"iss": "a",\n  "sub": "x\\udc00"}', 2, 12, "a string holds a lone surrogate"),
    ('{"iss": "a",\n  "sub": "\\ud800x"}', 2, 11, "a string holds a lone surrogate"),
    ('[{"iss": "a"}]', 1, 1, "claims must be a JSON object, found an array"),
    ('  "pypi"', 1, 3, "claims must be a JSON object, found a string"),
    ('{"a": 1} {"b": 2}', 1, 10, "expected one JSON object, found 2 documents"),
    ('{"a": 1,\n "b": }', 2, 7, "invalid JSON: Expecting value"),
    # nested 900 and 100 000 deep: measured without recursion (900 was an internal error, exit 4,
    # in check and explain); the 65th level is pointed at
    ('{"iss": "a",\n "l": ' + "[" * 900 + "]" * 900 + "}", 2, 70,
     "arrays and objects nest more than 64 levels deep"),
    ('{"l": ' + "[{\"k\": " * 50_000 + "1" + "}]" * 50_000 + "}", 1, 225,
     "arrays and objects nest more than 64 levels deep"),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), BAD, ids=range(len(BAD)))
def test_refused_with_line_and_column(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ClaimsError) as info:
        parse_claims(text, "claims.json")
    (problem,) = info.value.diagnostics
    assert problem.message.startswith(message)
    assert problem.span is not None
    assert (problem.span.source, problem.span.line, problem.span.column) == (
        "claims.json", line, column)


def test_accepted() -> None:
    assert parse_claims('{"sub": "\\ud83d\\ude00", "n": 1.5, "l": [1, {"x": null}]}') == {
        "sub": "\U0001f600", "n": 1.5, "l": [1, {"x": None}]}
    # `python -m id -d`: the JOSE header, then the claims
    assert parse_claims('{"alg": "RS256", "typ": "JWT"}\n{"iss": "x"}\n') == {"iss": "x"}


def test_nesting_up_to_the_limit_is_accepted() -> None:
    from tppolicy.limits import MAX_CLAIMS_NESTING
    inner = MAX_CLAIMS_NESTING - 1
    assert parse_claims('{"l": ' + "[" * inner + "]" * inner + "}")["l"]


def test_a_token_is_named_as_such() -> None:
    with pytest.raises(ClaimsError, match="signed token"):
        parse_claims("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln\n")


@pytest.mark.parametrize(("text", "line", "column", "message"), BAD[:5] + BAD[-2:],
                         ids=range(7))
def test_check_explain_and_test_refuse_alike(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            text: str, line: int, column: int,
                                            message: str) -> None:
    claims = tmp_path / "claims.json"
    claims.write_text(text, "utf-8")
    publishers = str(EXAMPLES / "publishers.yaml")
    for command in ("check", "explain"):
        code, _, err = run_cli(capsys, command, "--publishers", publishers,
                               "--claims", str(claims))
        assert code == 3, (command, err)
        assert f"{claims}:{line}:{column}: {message}" in err, (command, err)
    test = tmp_path / "t.tptest.yaml"
    test.write_text(f"publishers: {json.dumps(publishers)}\nclaims:\n  run: claims.json\n"
                    "cases:\n  - {claims: run, allowed: true}\n", "utf-8")
    report = run_files([test], root=tmp_path.parent.parent)
    assert report.results == ()
    (error,) = report.errors
    rendered = " ".join(d.message for d in error.diagnostics)
    assert f"claims.json:{line}:{column}: {message}" in rendered


def test_the_line_shown_is_the_line_counted_after_line_separators_in_strings() -> None:
    """Inside a JSON string a line separator (U+2028) or NEL is text, not a line break:
    the line shown under the error is the one its line number names."""
    text = '{\n  "a": "x\u2028y\u0085z",\r\n  "b": 1,\n  "c": NaN\n}\n'
    with pytest.raises(ClaimsError) as raised:
        parse_claims(text, "c.json")
    shown = str(raised.value).splitlines()
    assert shown[0].startswith("c.json:4:8: NaN is not a JSON number"), shown
    assert shown[1] == '      "c": NaN', shown
    assert shown[2] == "    " + " " * 7 + "^", shown
