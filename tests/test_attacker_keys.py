"""Hostile key sets (attacker sweep): keys a JWKS offers that must never verify a token."""

from __future__ import annotations

from typing import Any

import pytest

from tppolicy.token.keys import FetchError, parse_jwks

from .tokens import jwks, rsa_key


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
