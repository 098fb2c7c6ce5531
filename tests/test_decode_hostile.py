"""`tppolicy decode` shows a token nobody has verified: its claims are anyone's text, so
what it prints cannot hold terminal controls or break its own lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_cli
from .tokens import b64url


def _token(claims: dict[str, object]) -> str:
    header = b64url(json.dumps({"alg": "RS256", "kid": "k"}))
    return f"{header}.{b64url(json.dumps(claims, ensure_ascii=False))}.c2ln"


@pytest.mark.parametrize("fmt", ["human", "json"])
def test_controls_in_claims_are_escaped(fmt: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A C1 control (U+009B is CSI to a terminal), NEL (U+0085: Python's splitlines broke
    the shown JSON there), a line separator and a bidirectional override were printed as
    they are; they are shown as JSON escapes, and the output is still the same JSON."""
    claims = {"iss": "https://ci.example", "sub": "a\x9b31mred\u202eevil\x1b[0m",
              "n\x85l": 1, "x\u2028y": "\u2066z"}
    path = tmp_path / "t.jwt"
    path.write_text(_token(claims))
    code, out, _ = run_cli(capsys, "decode", str(path), "--format", fmt)
    assert code == 0
    for char in "\x9b\x85\u2028\u202e\u2066\x1b":
        assert char not in out, repr(char)
    if fmt == "json":
        assert json.loads(out)["claims"] == claims
    else:
        body = out[out.index("claims:\n") + len("claims:\n"):].split("\n\n")[0]
        assert json.loads(body) == claims
        assert '"n\\u0085l": 1' in out
