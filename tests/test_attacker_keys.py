"""Hostile key sets (attacker sweep): keys a JWKS offers that must never verify a token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tppolicy.token.keys import FetchError, KeyCache, parse_jwks

from .conftest import ROOT, load_claims, run_cli
from .jwks_server import JWKS_PATH, JwksServer, redirect_reply
from .tokens import b64url, fresh, jwks, rsa_key

pytest_plugins = ("tests.jwks_server",)


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


BAD_URLS = ["https://[::1/jwks", "https://exa mple.com/jwks", "https://a\x00b.example/jwks"]


@pytest.mark.parametrize("uri", BAD_URLS)
def test_a_malformed_jwks_uri_is_a_fetch_error(jwks_server: JwksServer, uri: str) -> None:
    # An issuer's discovery document names the URL: a bracket left open or a blank in the
    # host raised ValueError / http.client.InvalidURL out of the key cache, an internal
    # error (exit 4, a 500) instead of "keys-unavailable".
    jwks_server.set_jwks_uri(uri)
    cache = KeyCache(fetch=jwks_server.fetcher())
    with pytest.raises(FetchError, match="not a URL that can be fetched"):
        cache.get(jwks_server.url, "rsa-1")


@pytest.mark.parametrize("uri", BAD_URLS[:2])
def test_a_redirect_to_a_malformed_url_is_a_fetch_error(jwks_server: JwksServer,
                                                        uri: str) -> None:
    jwks_server.serve(JWKS_PATH, redirect_reply(uri))
    cache = KeyCache(fetch=jwks_server.fetcher())
    with pytest.raises(FetchError):
        cache.get(jwks_server.url, "rsa-1")


@pytest.mark.parametrize("kty", [{}, [], ["RSA"], {"RSA": 1}])
def test_a_kty_that_is_an_object_or_a_list_is_left_out(kty: object,
                                                       tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # `kty in {...}` raised TypeError (unhashable) out of parse_jwks: a JWKS fetched from an
    # issuer, or given with --jwks, was an internal error (exit 4).
    document = {"keys": [{**rsa_key("odd").public_jwk, "kty": kty}, rsa_key().public_jwk]}
    assert list(parse_jwks(document, "JWKS")) == ["rsa-1"]
    with pytest.raises(FetchError, match="no usable signing key"):
        parse_jwks({"keys": document["keys"][:1]}, "JWKS")
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps({"keys": document["keys"][:1]}))
    token = tmp_path / "token"
    token.write_text(rsa_key().sign(fresh(load_claims("github-release"))))
    code, out, err = run_cli(capsys, "check", "--publishers",
                             str(ROOT / "examples/publishers.yaml"), "--token", str(token),
                             "--jwks", str(keys))
    assert code == 3, (out, err)
    assert "internal error" not in err


def test_of_two_usable_keys_sharing_a_kid_the_first_is_kept() -> None:
    """PyPI (PyJWT's key client) takes the first usable key of a kid; the last one won
    here, so a token signed with a key added after it under the same kid verified."""
    first, second = rsa_key("dup-1"), rsa_key("dup-2")  # two keys (rsa_key is cached by kid)

    def entry(key: Any, **changes: Any) -> dict[str, Any]:
        return {**key.public_jwk, "kid": "shared", **changes}

    def numbers(key: Any) -> Any:
        return key.private.public_key().public_numbers()

    keys = parse_jwks({"keys": [entry(first), entry(second)]}, "JWKS")
    assert list(keys) == ["shared"]
    assert keys["shared"].key.public_numbers() == numbers(first)
    # an unusable first entry does not hide a usable one under the same kid
    kept = parse_jwks({"keys": [entry(first, use="enc"), entry(second)]}, "JWKS")
    assert kept["shared"].key.public_numbers() == numbers(second)
