"""Hostile key sets (attacker sweep): keys a JWKS offers that must never verify a token."""

from __future__ import annotations

from typing import Any

import pytest

from tppolicy.token.keys import FetchError, parse_jwks

from .tokens import b64url, jwks, rsa_key


def _document(**changes: Any) -> dict[str, Any]:
    entry = {**rsa_key().public_jwk, **changes}
    for name, value in changes.items():
        if value is None:
            del entry[name]
    return {"keys": [entry]}


@pytest.mark.parametrize("operations", [["encrypt"], ["sign"], ["wrapKey", "encrypt"], [],
                                        "verify", {"verify": True}])
def test_a_key_whose_key_ops_do_not_list_verify_is_left_out(operations: object) -> None:
    # key_ops (RFC 7517 4.3) said what the key is for; it was ignored, and a key published
    # for encryption only verified tokens.
    with pytest.raises(FetchError, match="no usable signing key"):
        parse_jwks(_document(use=None, key_ops=operations), "JWKS")


@pytest.mark.parametrize("operations", [["verify"], ["verify", "encrypt"]])
def test_a_key_for_verifying_is_kept(operations: list[str]) -> None:
    assert list(parse_jwks(_document(key_ops=operations), "JWKS")) == ["rsa-1"]
    assert list(parse_jwks(jwks(rsa_key()), "JWKS")) == ["rsa-1"]


def _rsa_entry(bits: int, kid: str) -> dict[str, Any]:
    """An RSA JWK with a modulus of exactly `bits` bits (odd, not a product of two primes:
    only its size matters to the parser)."""
    modulus = (1 << (bits - 1)) | 0xABCDEF12345 | 1
    return {"kty": "RSA", "kid": kid, "use": "sig", "e": "AQAB",
            "n": b64url(modulus.to_bytes((bits + 7) // 8, "big"))}


@pytest.mark.parametrize("bits", [8193, 16384, 20000])
def test_an_rsa_modulus_over_8192_bits_is_left_out(bits: int) -> None:
    # A 16 384-bit key's verify cost 860 us, 48 times a 2048-bit one's (18 us): a key set
    # (a self-managed issuer's) made every token that costly. Over 16 384 bits OpenSSL
    # cannot verify at all: the token was refused as "bad-signature", not "unknown-key".
    keys = parse_jwks({"keys": [_rsa_entry(bits, "big"), _rsa_entry(2048, "ok")]}, "JWKS")
    assert list(keys) == ["ok"]


@pytest.mark.parametrize("bits", [2048, 3072, 4096, 8192])
def test_usual_rsa_sizes_are_kept(bits: int) -> None:
    assert list(parse_jwks({"keys": [_rsa_entry(bits, "k")]}, "JWKS")) == ["k"]
