"""Hostile tokens (attacker sweep): headers that only a lax JSON reader takes, with real
keys and real signatures, through the verifier and `tppolicy decode`/`check --token`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tppolicy.token.keys import KeyCache
from tppolicy.token.verify import TokenError, Verifier

from .conftest import load_claims, run_cli
from .tokens import GITHUB, b64url, fresh, jwks, rsa_key


@pytest.fixture(autouse=True, params=["c-reader", "python-reader"])
def _both_token_readers(request: pytest.FixtureRequest) -> None:
    """Every test reads tokens with the C module (`_compact.split`) and with its Python
    form (`split_usual`), as an install without a compiler does (conftest)."""
    if request.param == "python-reader":
        request.getfixturevalue("pure_token_split")


def _signed(header: bytes, payload: bytes) -> str:
    """A token signed by the test key, its header and claims exactly these bytes."""
    signing_input = f"{b64url(header)}.{b64url(payload)}".encode()
    signature = rsa_key().private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{b64url(signature)}"


CLAIMS = json.dumps(fresh(load_claims("github-release"))).encode()
# Headers json.loads took (and the token was verified, or denied for its key id), while the
# claims' reader refuses the same bytes: printing them then failed (exit 4) or wrote
# `Infinity`, which is not JSON; nesting was never bounded.
HOSTILE_HEADERS = {
    "lone surrogate in kid": b'{"alg":"RS256","kid":"\\ud800"}',
    "lone surrogate in alg": b'{"alg":"RS256\\udc00","kid":"rsa-1"}',
    "lone surrogate as a name": b'{"alg":"RS256","kid":"rsa-1","\\ud800":1}',
    "number overflowing to infinity": b'{"alg":"RS256","kid":"rsa-1","x":1e999}',
    "nested 900 deep": b'{"alg":"RS256","kid":"rsa-1","x":' + b"[" * 900 + b"]" * 900 + b"}",
}


def _verifier() -> Verifier:
    keys = KeyCache()
    keys.add_static(GITHUB, jwks(rsa_key()))
    return Verifier(issuers={GITHUB: "github"}, algorithms={"github": ("RS256",)}, keys=keys)


@pytest.mark.parametrize("header", HOSTILE_HEADERS.values(), ids=HOSTILE_HEADERS.keys())
def test_a_header_the_strict_reader_refuses_is_malformed(header: bytes) -> None:
    token = _signed(header, CLAIMS)
    with pytest.raises(TokenError) as caught:
        _verifier().verify(token)
    assert caught.value.code == "malformed"


@pytest.mark.parametrize("header", HOSTILE_HEADERS.values(), ids=HOSTILE_HEADERS.keys())
@pytest.mark.parametrize("fmt", ["human", "json"])
def test_decode_refuses_it_as_invalid_input(header: bytes, fmt: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "token"
    path.write_text(_signed(header, CLAIMS))
    code, out, err = run_cli(capsys, "decode", "--format", fmt, str(path))
    assert code == 3, (out, err)
    assert "header" in err and "internal error" not in err


@pytest.mark.parametrize("header", HOSTILE_HEADERS.values(), ids=HOSTILE_HEADERS.keys())
def test_check_denies_it_with_json_output(header: bytes, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path, keys = tmp_path / "token", tmp_path / "jwks.json"
    path.write_text(_signed(header, CLAIMS))
    keys.write_text(json.dumps(jwks(rsa_key())))
    examples = Path(__file__).parents[1] / "examples/publishers.yaml"
    code, out, err = run_cli(capsys, "check", "--publishers", str(examples), "--token",
                             str(path), "--jwks", str(keys), "--format", "json")
    assert code == 1, (out, err)
    answer = json.loads(out)
    assert answer["allowed"] is False
    assert "malformed" in out
