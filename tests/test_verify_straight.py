"""`Verifier.verify`'s straight path in C (`_compact.Usual`) gives what the Python path
gives: the same verified token, or the same refusal (code and message), for usual tokens
and for each way a token can be refused; the verifier's values set after it is made are
the ones the straight path uses."""

from __future__ import annotations

from typing import Any

import pytest

from tests.tokens import GITHUB, b64url, ec_key, fresh, jwks, rsa_key, unsigned
from tppolicy.token import verify
from tppolicy.token.keys import FetchError, KeyCache
from tppolicy.token.verify import TokenError, VerifiedToken, Verifier

pytest.importorskip("tppolicy.token._compact")
NOW = 1_800_000_000
CLAIMS = {"iss": GITHUB, "aud": "pypi", "sub": "repo:o/r:ref:refs/tags/v1", "jti": "j-1",
          "repository": "o/r"}


def _verifier(keys: KeyCache | None = None, **values: Any) -> Verifier:
    if keys is None:
        keys = KeyCache(fetch=lambda url: b"{}")
        keys.add_static(GITHUB, jwks(rsa_key(), ec_key()))
    return Verifier(issuers={GITHUB: "github"}, algorithms={"github": ("RS256", "ES256")},
                    keys=keys, clock=lambda: NOW, **values)


def _answer(verifier: Verifier, token: object) -> Any:
    try:
        verified = verifier.verify(token)
    except TokenError as exc:
        return ("refused", exc.code, str(exc))
    assert type(verified) is VerifiedToken
    return ("verified", dict(verified.header), verified.claims, verified.issuer,
            verified.provider)


def _both(verifier: Verifier, token: object) -> Any:
    """The answer with the straight path, after checking the Python path gives it too."""
    straight = verifier._usual
    assert straight is not None
    with_c = _answer(verifier, token)
    verifier._usual = None
    try:
        with_python = _answer(verifier, token)
    finally:
        verifier._usual = straight
    assert with_c == with_python
    return with_c


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _signed(**changes: Any) -> str:
    return rsa_key().sign({**fresh(CLAIMS, NOW), **changes})


CASES = {
    "usual": (_signed(), "verified"),
    "a header of its own": (rsa_key().sign(fresh(CLAIMS, NOW), typ="JWT"), "verified"),
    "ES256 (the Python path)": (ec_key().sign(fresh(CLAIMS, NOW)), "verified"),
    "bad signature": (_signed()[:-6] + ("AAAAAA" if not _signed().endswith("AAAAAA")
                                         else "BBBBBB"), "bad-signature"),
    "another key's signature": (".".join([*_signed().split(".")[:2], rsa_key("rsa-2").sign(
        fresh(CLAIMS, NOW)).split(".")[2]]), "bad-signature"),
    "expired": (_signed(exp=NOW - 3600, iat=NOW - 4000, nbf=NOW - 4000), "expired"),
    "not yet valid": (_signed(nbf=NOW + 3600), "not-yet-valid"),
    "another audience": (_signed(aud="other"), "audience"),
    "unknown issuer": (_signed(iss="https://other.example"), "unknown-issuer"),
    "no iss": (rsa_key().sign({k: v for k, v in fresh(CLAIMS, NOW).items() if k != "iss"}),
               "missing-claim"),
    "unknown key": (rsa_key("rsa-9").sign(fresh(CLAIMS, NOW)), "unknown-key"),
    "alg none": (unsigned({"alg": "none", "kid": "rsa-1"}, fresh(CLAIMS, NOW)),
                 "alg-not-allowed"),
    "embedded jwk": (rsa_key().sign(fresh(CLAIMS, NOW), jwk={"kty": "RSA"}),
                     "forbidden-header"),
    "exp a string": (_signed(exp=str(NOW + 300)), "bad-claim-type"),
    "jti a number": (_signed(jti=5), "bad-claim-type"),
    "claims nested deeply": (_signed(x=_nested(70)), "malformed"),
    "claims not an object": (".".join([_signed().split(".")[0], b64url(b"[1]"),
                                       _signed().split(".")[2]]), "malformed"),
    "bytes": (_signed().encode(), "verified"),
    "padded": (_signed() + "=", "malformed"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_straight_path_answers_as_the_python_path(case: str) -> None:
    token, expected = CASES[case]
    answer = _both(_verifier(), token)
    assert (answer[0] if answer[0] == "verified" else answer[1]) == expected, answer


def test_values_set_later_are_the_ones_used() -> None:
    verifier = _verifier()
    token = _signed()
    assert _both(verifier, token)[0] == "verified"
    verifier.clock = lambda: NOW + 3600  # the token has expired meanwhile
    assert _both(verifier, token)[1] == "expired"
    verifier.clock = lambda: NOW
    verifier.audience = "other"
    assert _both(verifier, token)[1] == "audience"
    verifier.audience = "pypi"
    verifier.algorithms = {"github": frozenset({"ES256"})}
    assert _both(verifier, token)[1] == "alg-not-allowed"


def test_keys_that_cannot_be_fetched_are_said_so() -> None:
    def fail(url: str) -> bytes:
        raise FetchError(f"{url}: connection refused")

    keys = KeyCache(fetch=fail)
    answer = _both(_verifier(keys), _signed())
    assert answer[1] == "keys-unavailable" and "connection refused" in answer[2]


def test_a_key_look_up_that_fails_otherwise_propagates() -> None:
    class Broken(KeyCache):
        def get(self, issuer: str, kid: str) -> Any:
            raise KeyboardInterrupt

    verifier = _verifier(Broken())
    with pytest.raises(KeyboardInterrupt):
        verifier.verify(_signed())


def test_a_header_seen_first_is_read_by_the_python_path_then_by_c(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "_HEADER_CACHE", {})  # a fresh cache the C path does not hold
    verifier = _verifier()  # made after: holds the fresh one
    token = rsa_key().sign(fresh(CLAIMS, NOW), cty="x")
    calls: list[object] = []
    python_split = verify._split

    def counted(*args: Any) -> Any:
        calls.append(args[0])
        return python_split(*args)

    monkeypatch.setattr(verify, "_split", counted)
    assert _answer(verifier, token)[0] == "verified"
    assert len(calls) == 1  # the first: its header unknown to C, read by Python
    assert _answer(verifier, token)[0] == "verified"
    assert len(calls) == 1  # then the straight path alone


def test_a_forged_signature_costs_one_rsa_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad signature is refused by the straight path itself, not verified twice."""
    verifier = _verifier()
    key = verifier.keys.get(GITHUB, "rsa-1")
    assert key is not None
    calls = []
    real = key.key

    class Counting:
        def verify(self, *args: Any) -> None:
            calls.append(1)
            real.verify(*args)

    object.__setattr__(key, "key", Counting())
    token = CASES["bad signature"][0]
    assert _answer(verifier, token)[1] == "bad-signature"
    assert len(calls) == 1
    expired = CASES["expired"][0]
    assert _answer(verifier, expired)[1] == "expired"
    assert len(calls) == 2


@pytest.mark.parametrize("raw", [
    b'{"iss":"https://x","n":12,"t":true,"f":false,"z":null,"n":-0}',
    b' {\n "a" : "b" ,\t"c":[1]}', b'{"a":"\\u00e9"}', b'{"a":"\xc3\xa9"}', b'{"a":01}',
    b'{"a":1.5}', b'{"a":1e3}', b'{"a":12345678901234567890}', b'{"a":"x\x01"}',
    b'{"a":"x"} x', b'{"a":"x",}', b"{}", b"[]", b'{"a":"0123456789abcdef\\"x"}',
])
def test_flat_claims_are_read_as_orjson_reads_them(raw: bytes) -> None:
    import orjson

    from tppolicy.token import _compact

    flat = _compact.flat_loads(raw)
    if flat is None:  # left to orjson, which reads or refuses it
        return
    expected = orjson.loads(raw)
    assert list(flat.items()) == list(expected.items())
    assert [type(v) for v in flat.values()] == [type(v) for v in expected.values()]
