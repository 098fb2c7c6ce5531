"""Hostile tokens at the mint endpoint (attacker sweep): every one is refused (422), never
minted and never a 5xx."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tests.tokens import b64url, rsa_key

from .conftest import TestClient, github_claims


def _signed(header: bytes, payload: bytes) -> str:
    signing_input = f"{b64url(header)}.{b64url(payload)}".encode()
    signature = rsa_key().private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{b64url(signature)}"


HEADERS = {
    "lone surrogate in kid": b'{"alg":"RS256","kid":"\\ud800"}',
    "lone surrogate in alg": b'{"alg":"RS256\\udc00","kid":"rsa-1"}',
    "number overflowing to infinity": b'{"alg":"RS256","kid":"rsa-1","x":1e999}',
    "nested 900 deep": b'{"alg":"RS256","kid":"rsa-1","x":' + b"[" * 900 + b"]" * 900 + b"}",
    "control characters in kid": b'{"alg":"RS256","kid":"a\\u0000\\u001b[31m\\u2028"}',
}


@pytest.mark.parametrize("header", HEADERS.values(), ids=HEADERS.keys())
def test_a_hostile_header_is_refused_as_an_invalid_token(client: TestClient,
                                                         header: bytes) -> None:
    token = _signed(header, json.dumps(github_claims()).encode())
    answer = client.post("/_/oidc/mint-token", json={"token": token})
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    assert error["code"] in ("invalid-payload", "invalid-token")
