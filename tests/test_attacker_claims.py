"""Hostile claims files (attacker sweep): numbers only a lax JSON reader takes are refused
with their place (exit 3), as a token's reader refuses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tppolicy.errors import ClaimsError
from tppolicy.readers.claims import parse_claims

from .conftest import ROOT, run_cli


@pytest.mark.parametrize(("text", "message", "column"), [
    ('{"iss": 1e999}', "1e999 is not a finite number", 9),
    ('{"x": "1e999", "y": -1e400}', "-1e400 is not a finite number", 21),
    ('{"x": ' + "9" * 5000 + "}", "an integer of 5000 digits is too large", 7),
    ('{"x": -' + "1" * 41 + "}", "an integer of 41 digits is too large", 7),
])
def test_a_number_no_token_can_hold_is_refused(text: str, message: str, column: int) -> None:
    # 5 000 digits: int() raised ValueError out of the reader (exit 4); 1e999 was read as
    # infinity and written back as `Infinity` (not JSON) by check --format json.
    with pytest.raises(ClaimsError) as caught:
        parse_claims(text, "c.json")
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.message.startswith(message)
    assert diagnostic.span is not None and diagnostic.span.column == column


def test_usual_numbers_are_kept() -> None:
    assert parse_claims('{"a": 1.5, "b": -2e3, "c": 18446744073709551615, "d": 0}') == {
        "a": 1.5, "b": -2000.0, "c": 18446744073709551615, "d": 0}


@pytest.mark.parametrize("number", ["9" * 5000, "1e999"])
def test_check_exits_3(number: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    claims = tmp_path / "claims.json"
    claims.write_text('{"iss": "https://token.actions.githubusercontent.com", "x": ' + number
                      + "}")
    code, out, err = run_cli(capsys, "check", "--publishers",
                             str(ROOT / "examples/publishers.yaml"), "--claims", str(claims),
                             "--format", "json")
    assert code == 3, (out, err)
    assert "internal error" not in err and "Infinity" not in out
