"""The verifier with real keys and real signatures: what it accepts, every way it
refuses, and that mangled tokens are only ever refused."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import jwt
import pytest

import tppolicy
from tppolicy.token.keys import KeyCache
from tppolicy.token.replay import MemoryReplayStore, SQLiteReplayStore
from tppolicy.token.verify import CODES, TokenError, Verifier

from .conftest import load_claims
from .tokens import GITHUB, b64url, ec_key, fresh, jwks, rsa_key, unsigned

NOW = 1_800_000_000


@pytest.fixture(autouse=True, params=["c-reader", "python-reader"])
def _both_token_readers(request: pytest.FixtureRequest) -> None:
    """Every test reads tokens with the C module (`_compact.split`) and with its Python
    form (`split_usual`), as an install without a compiler does (conftest)."""
    if request.param == "python-reader":
        request.getfixturevalue("pure_token_split")


@pytest.fixture(scope="module")
def policy() -> tppolicy.Policy:
    return tppolicy.compile_publishers_file(Path(__file__).parents[1] / "examples/publishers.yaml")


def verifier(policy: tppolicy.Policy, *, now: float = NOW,
             algorithms: tuple[str, ...] | None = None) -> Verifier:
    keys = KeyCache(fetch=_no_network)
    keys.add_static(GITHUB, jwks(rsa_key(), ec_key()))
    result = Verifier.for_policy(policy, keys=keys, clock=lambda: now)
    if algorithms is not None:
        result.algorithms["github"] = frozenset(algorithms)
    return result


def _no_network(url: str) -> bytes:
    raise AssertionError(f"no test reaches the network: {url}")


def claims(**changes: Any) -> dict[str, Any]:
    result = fresh(load_claims("github-release"), now=NOW)
    for name, value in changes.items():
        if value is _DROP:
            result.pop(name, None)
        else:
            result[name] = value
    return result


_DROP = object()


def refusal(policy: tppolicy.Policy, token: object, **kwargs: Any) -> str:
    with pytest.raises(TokenError) as info:
        verifier(policy, **kwargs).verify(token)
    assert info.value.code in CODES
    assert info.value.message
    return info.value.code


def test_a_valid_rs256_token_is_verified_and_allowed(policy: tppolicy.Policy) -> None:
    token = rsa_key().sign(claims())
    verified = verifier(policy).verify(token)
    assert verified.provider == "github"
    assert verified.claims["repository"] == "octo-org/sampleproject"
    decision = policy.evaluate_token(token, verifier(policy))
    assert decision.allowed
    assert decision.publisher == "sampleproject-github"


def test_es256_where_the_provider_allows_it(policy: tppolicy.Policy) -> None:
    token = ec_key().sign(claims())
    assert refusal(policy, token) == "alg-not-allowed"  # GitHub: RS256 only, as PyPI
    assert verifier(policy, algorithms=("RS256", "ES256")).verify(token).provider == "github"


def test_bytes_tokens_are_accepted(policy: tppolicy.Policy) -> None:
    assert verifier(policy).verify(rsa_key().sign(claims()).encode()).issuer == GITHUB


def _resigned(header: dict[str, Any], body: dict[str, Any]) -> str:
    """A properly RS256-signed token with any header."""
    signing_input = f"{b64url(json.dumps(header))}.{b64url(_dumps(body))}"
    signature = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).sign(
        signing_input.encode(), rsa_key().private)
    return f"{signing_input}.{b64url(signature)}"


def _dumps(value: Any) -> str:
    """json.dumps, where a string "<nested N>" becomes a list nested N deep (json.dumps
    itself recurses, and stops near Python's recursion limit)."""
    return re.sub(r'"<nested (\d+)>"', lambda m: "[" * int(m[1]) + "]" * int(m[1]),
                  json.dumps(value))


def _hand(claims_json: bytes) -> str:
    """A token whose claims segment is these exact bytes."""
    return f"{b64url(json.dumps({'alg': 'RS256', 'kid': 'rsa-1'}))}.{b64url(claims_json)}.eHg"


def _ecdsa_zero(part: str) -> str:
    header = {"alg": "ES256", "kid": "ec-1", "typ": "JWT"}
    good = ec_key().sign(claims())
    signature = jwt.utils.base64url_decode(good.split(".")[2])
    r, s = signature[:32], signature[32:]
    forged = (b"\0" * 32 + s) if part == "r" else (r + b"\0" * 32)
    head, body, _ = good.split(".")
    del header
    return f"{head}.{body}.{b64url(forged)}"


HOSTILE: list[tuple[str, Any, str]] = [
    ("alg none, empty signature", lambda: unsigned({"alg": "none", "kid": "rsa-1"}, claims(), b""),
     "alg-not-allowed"),
    ("alg none with a signature", lambda: unsigned({"alg": "none", "kid": "rsa-1"}, claims()),
     "alg-not-allowed"),
    ("alg NONE", lambda: unsigned({"alg": "NONE", "kid": "rsa-1"}, claims()), "alg-not-allowed"),
    ("HS256 keyed with the public key",
     lambda: jwt.api_jws.PyJWS().encode(json.dumps(claims()).encode(), "k" * 32,
                                        algorithm="HS256", headers={"kid": "rsa-1"}),
     "alg-not-allowed"),
    ("RS384, not in the list", lambda: jwt.encode(claims(), rsa_key().private, algorithm="RS384",
                                                  headers={"kid": "rsa-1"}), "alg-not-allowed"),
    ("PS256, not in the list", lambda: jwt.encode(claims(), rsa_key().private, algorithm="PS256",
                                                  headers={"kid": "rsa-1"}), "alg-not-allowed"),
    ("embedded jwk", lambda: _resigned({"alg": "RS256", "kid": "rsa-1",
                                        "jwk": rsa_key().public_jwk}, claims()),
     "forbidden-header"),
    ("jku", lambda: _resigned({"alg": "RS256", "kid": "rsa-1",
                               "jku": "https://evil.example/jwks"}, claims()), "forbidden-header"),
    ("x5u", lambda: _resigned({"alg": "RS256", "kid": "rsa-1", "x5u": "https://evil.example/c"},
                              claims()), "forbidden-header"),
    ("x5c", lambda: _resigned({"alg": "RS256", "kid": "rsa-1", "x5c": ["MIIB"]}, claims()),
     "forbidden-header"),
    ("unknown crit", lambda: _resigned({"alg": "RS256", "kid": "rsa-1", "crit": ["exp"],
                                        "exp": 1}, claims()), "unknown-crit"),
    ("no kid", lambda: _resigned({"alg": "RS256"}, claims()), "bad-header"),
    ("kid not a string", lambda: _resigned({"alg": "RS256", "kid": 7}, claims()), "bad-header"),
    ("no alg", lambda: _resigned({"kid": "rsa-1"}, claims()), "bad-header"),
    ("unknown kid", lambda: _resigned({"alg": "RS256", "kid": "other"}, claims()),
     "unknown-key"),
    ("kid of an EC key for RS256", lambda: _resigned({"alg": "RS256", "kid": "ec-1"}, claims()),
     "key-mismatch"),
    ("duplicate header names", lambda: "eyJhbGciOiJSUzI1NiIsImFsZyI6Im5vbmUiLCJraWQiOiJyc2EtMSJ9"
     + "." + rsa_key().sign(claims()).split(".", 1)[1], "malformed"),
    ("truncated", lambda: rsa_key().sign(claims())[:-20], "bad-signature"),
    ("truncated to two segments", lambda: rsa_key().sign(claims()).rsplit(".", 1)[0],
     "malformed"),
    ("an extra segment", lambda: rsa_key().sign(claims()) + ".e30", "malformed"),
    ("five segments (JWE)", lambda: "e30.e30.e30.e30.e30", "malformed"),
    ("one segment", lambda: rsa_key().sign(claims()).replace(".", ""), "malformed"),
    ("empty header", lambda: "." + rsa_key().sign(claims()).split(".", 1)[1], "malformed"),
    ("empty claims", lambda: ".".join(rsa_key().sign(claims()).split(".")[::2]).replace(
        ".", "..", 1), "malformed"),
    ("dots only", lambda: "..", "malformed"),
    ("an extra dot in the signature", lambda: rsa_key().sign(claims())[:-4] + "."
     + rsa_key().sign(claims())[-3:], "malformed"),
    ("empty signature", lambda: rsa_key().sign(claims()).rsplit(".", 1)[0] + ".", "malformed"),
    ("bad base64 character", lambda: rsa_key().sign(claims()).replace(".", ".*", 1), "malformed"),
    ("standard base64 '+'", lambda: rsa_key().sign(claims()).replace(".", ".+", 1), "malformed"),
    ("padding", lambda: rsa_key().sign(claims()) + "==", "malformed"),
    ("impossible base64 length", lambda: _hand(b"{}").split(".")[0] + ".e30AA.AAAA",
     "malformed"),
    ("header not an object", lambda: unsigned([1], claims()), "malformed"),  # type: ignore[arg-type]
    ("claims not an object", lambda: _hand(b'"text"'), "malformed"),
    ("claims not JSON", lambda: _hand(b"{not json"), "malformed"),
    ("claims with NaN", lambda: _hand(b'{"exp": NaN}'), "malformed"),
    ("claims not UTF-8", lambda: _hand(b'{"iss": "\xff"}'), "malformed"),
    ("claims with a lone surrogate", lambda: _hand(b'{"iss": "\\ud800"}'), "malformed"),
    ("not ASCII", lambda: rsa_key().sign(claims()) + "é", "malformed"),
    ("not a string", lambda: 12345, "malformed"),
    ("too large, refused before parsing", lambda: "A" * 9000, "token-too-large"),
    ("signature from another key", lambda: jwt.encode(
        claims(), rsa_key("rsa-2").private, algorithm="RS256", headers={"kid": "rsa-1"}),
     "bad-signature"),
    ("claims changed after signing", lambda: ".".join(
        (rsa_key().sign(claims()).split(".")[0], b64url(json.dumps(claims(repository="evil/x"))),
         rsa_key().sign(claims()).split(".")[2])), "bad-signature"),
    ("unknown issuer", lambda: rsa_key().sign(claims(iss="https://evil.example")),
     "unknown-issuer"),
    ("issuer with a trailing slash", lambda: rsa_key().sign(claims(iss=GITHUB + "/")),
     "unknown-issuer"),
    ("no iss", lambda: rsa_key().sign(claims(iss=_DROP)), "missing-claim"),
    ("iss not a string", lambda: _resigned({"alg": "RS256", "kid": "rsa-1"},
                                           claims(iss=[GITHUB])), "bad-claim-type"),
    ("no exp", lambda: rsa_key().sign(claims(exp=_DROP)), "missing-claim"),
    ("no iat", lambda: rsa_key().sign(claims(iat=_DROP)), "missing-claim"),
    ("exp a string", lambda: rsa_key().sign(claims(exp=str(NOW + 300))), "bad-claim-type"),
    ("exp a float", lambda: rsa_key().sign(claims(exp=NOW + 300.5)), "bad-claim-type"),
    ("exp a boolean", lambda: rsa_key().sign(claims(exp=True)), "bad-claim-type"),
    ("exp a huge number", lambda: rsa_key().sign(claims(exp=10**30)), "bad-claim-type"),
    ("nbf a string", lambda: rsa_key().sign(claims(nbf="0")), "bad-claim-type"),
    ("expired", lambda: rsa_key().sign(claims(exp=NOW - 31)), "expired"),
    ("not yet valid", lambda: rsa_key().sign(claims(nbf=NOW + 31)), "not-yet-valid"),
    ("issued in the future", lambda: rsa_key().sign(claims(iat=NOW + 31)), "issued-in-future"),
    ("audience list", lambda: rsa_key().sign(claims(aud=["pypi"])), "audience"),
    ("other audience", lambda: rsa_key().sign(claims(aud="testpypi")), "audience"),
    ("audience an integer", lambda: rsa_key().sign(claims(aud=1)), "audience"),
    ("no audience", lambda: rsa_key().sign(claims(aud=_DROP)), "missing-claim"),
    ("jti an integer", lambda: rsa_key().sign(claims(jti=7)), "bad-claim-type"),
    ("sub a list", lambda: rsa_key().sign(claims(sub=["repo"])), "bad-claim-type"),
    # nested deeper than the claims reader allows (every later stage walks claims recursively)
    ("claims nested 900 deep", lambda: _resigned({"alg": "RS256", "kid": "rsa-1"},
                                                 claims(extra=_nested(900))), "malformed"),
    ("claims nested 10 000 deep, in a larger token than allowed by default",
     lambda: _resigned({"alg": "RS256", "kid": "rsa-1"}, claims(extra=_nested(10_000))),
     "token-too-large"),
]


def _nested(depth: int) -> str:
    return f"<nested {depth}>"


@pytest.mark.parametrize(("name", "make", "code"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_tokens_are_refused(policy: tppolicy.Policy, name: str, make: Any,
                                    code: str) -> None:
    token = make()
    assert refusal(policy, token) == code
    decision = policy.evaluate_token(token, verifier(policy))
    assert not decision.allowed
    assert decision.reasons[0].code == code


@pytest.mark.parametrize("part", ["r", "s"])
def test_ecdsa_signatures_with_r_or_s_zero(policy: tppolicy.Policy, part: str) -> None:
    assert refusal(policy, _ecdsa_zero(part), algorithms=("ES256",)) == "bad-signature"


def test_leeway_edges(policy: tppolicy.Policy) -> None:
    check = verifier(policy).verify
    check(rsa_key().sign(claims(exp=NOW - 29)))   # expired 29 s ago: within the 30 s leeway
    check(rsa_key().sign(claims(nbf=NOW + 30, iat=NOW + 30)))
    with pytest.raises(TokenError, match=r"expired 30 s ago \(leeway 30 s\)"):
        check(rsa_key().sign(claims(exp=NOW - 30)))


def test_messages_say_what_was_wrong(policy: tppolicy.Policy) -> None:
    cases = {
        rsa_key().sign(claims(exp=NOW - 41)): "the token expired 41 s ago (leeway 30 s)",
        rsa_key().sign(claims(aud="testpypi")): "audience 'testpypi' is not 'pypi'",
        _resigned({"alg": "RS256", "kid": "abc"}, claims()): f"unknown key id 'abc' for {GITHUB}",
    }
    for token, message in cases.items():
        with pytest.raises(TokenError) as info:
            verifier(policy).verify(token)
        assert info.value.message == message


def test_deeply_nested_claims_in_a_large_token_are_malformed(policy: tppolicy.Policy) -> None:
    token = _resigned({"alg": "RS256", "kid": "rsa-1"}, claims(extra=_nested(10_000)))
    check = verifier(policy)
    check.max_bytes = 100_000
    with pytest.raises(TokenError) as info:
        check.verify(token)
    assert info.value.code == "malformed"
    assert "64 levels" in info.value.message or "depth" in info.value.message


def test_a_huge_input_is_refused_by_its_size(policy: tppolicy.Policy) -> None:
    # Refused for its length, before any decoding (how fast is the benchmarks' business).
    assert refusal(policy, "eyJ" + "A" * 50_000_000) == "token-too-large"


# ---------------------------------------------------------------- replay
def test_replay_memory_store(policy: tppolicy.Policy) -> None:
    token = rsa_key().sign(claims())
    store = MemoryReplayStore(clock=lambda: NOW)
    assert policy.evaluate_token(token, verifier(policy), store).allowed
    again = policy.evaluate_token(token, verifier(policy), store)
    assert not again.allowed
    assert again.reasons[0].code == "replayed"


def test_a_denied_token_does_not_use_up_its_jti(policy: tppolicy.Policy) -> None:
    store = MemoryReplayStore(clock=lambda: NOW)
    denied = rsa_key().sign(claims(environment="release"))
    assert not policy.evaluate_token(denied, verifier(policy), store).allowed
    assert len(store) == 0


def test_replay_entries_expire_after_exp_and_leeway() -> None:
    now = [1000.0]
    store = MemoryReplayStore(clock=lambda: now[0])
    assert store.claim("iss/a", expires_at=1035)
    assert not store.claim("iss/a", expires_at=1035)
    now[0] = 1036.0
    assert store.claim("iss/a", expires_at=2000)


def test_sqlite_store_is_shared_between_instances(tmp_path: Path) -> None:
    path = tmp_path / "replay.db"
    first, second = SQLiteReplayStore(path), SQLiteReplayStore(path)
    assert first.claim("iss/x", NOW + 10**6)
    assert not second.claim("iss/x", NOW + 10**6)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_concurrent_claims_of_one_jti_exactly_one_wins(tmp_path: Path, kind: str) -> None:
    store: Any = MemoryReplayStore() if kind == "memory" else SQLiteReplayStore(tmp_path / "r.db")
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait(timeout=10)
        results.append(store.claim("iss/same", 2**40))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [False] * 7 + [True]


def test_sqlite_store_reuses_expired_keys_and_purges(tmp_path: Path) -> None:
    now = [1000.0]
    store = SQLiteReplayStore(tmp_path / "r.db", clock=lambda: now[0])
    assert store.claim("iss/a", 1035)
    assert not store.claim("iss/a", 1035)
    now[0] = 1036.0
    assert store.claim("iss/a", 2000)  # its time had passed: taken again
    assert not store.claim("iss/a", 2000)
    import sqlite3

    assert store.claim("iss/b", 1040)
    now[0] = 5000.0
    store.claim("iss/c", 6000)  # a purge runs: b and a are gone
    with sqlite3.connect(tmp_path / "r.db") as db:
        assert [k for (k,) in db.execute("SELECT key FROM used_jti")] == ["iss/c"]


@pytest.fixture
def tiny_switch_interval() -> Any:
    """Threads switch every microsecond, so that races are tried, not just possible."""
    import sys

    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("tiny_switch_interval")
def test_memory_store_many_threads_many_keys_one_winner_each() -> None:
    store = MemoryReplayStore()
    keys = [f"iss/{i}" for i in range(3000)]
    won: list[list[str]] = []
    barrier = threading.Barrier(6)

    def claim() -> None:
        mine: list[str] = []
        barrier.wait(timeout=10)
        mine.extend(key for key in keys if store.claim(key, 2**40))
        won.append(mine)

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) == 6
    assert sorted(key for mine in won for key in mine) == sorted(keys)


@pytest.mark.usefixtures("tiny_switch_interval")
def test_memory_store_an_expired_key_is_taken_over_by_exactly_one_thread() -> None:
    now = [1000.0]
    store = MemoryReplayStore(clock=lambda: now[0], sweep_every=10**9)
    keys = [f"iss/{i}" for i in range(500)]
    for key in keys:
        assert store.claim(key, 1010)
    now[0] = 1020.0  # all expired, none swept yet
    won: list[str] = []
    barrier = threading.Barrier(6)

    def claim() -> None:
        barrier.wait(timeout=10)
        won.extend(key for key in keys if store.claim(key, 5000))

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(won) == sorted(keys)
    assert not any(store.claim(key, 5000) for key in keys)


def test_memory_store_sweeps_expired_keys_and_keeps_live_ones() -> None:
    now = [1000.0]
    store = MemoryReplayStore(clock=lambda: now[0], sweep_every=60)
    assert store.claim("iss/old", 1010)
    assert store.claim("iss/live", 2000)
    assert store.claim("iss/same", 1010)  # claimed again below before the sweep
    now[0] = 1030.0
    assert store.claim("iss/same", 1500)  # its time had passed: taken over
    assert len(store) == 3  # no sweep yet: the next is due at 1060
    now[0] = 1070.0
    assert store.claim("iss/new", 3000)
    assert len(store) == 3  # old is gone; live, same and new stay
    assert not store.claim("iss/live", 2000)
    assert not store.claim("iss/same", 1500)
    assert store.claim("iss/old", 3000)


def test_brackets_inside_claim_strings_are_not_nesting(policy: tppolicy.Policy) -> None:
    # More '[' and '{' characters than the nesting limit, all inside strings: the
    # verifier's quick bound is exceeded, so it walks the claims, which are flat.
    token = rsa_key().sign(claims(extra="[{" * 100))
    assert verifier(policy).verify(token).claims["extra"] == "[{" * 100


@pytest.mark.parametrize(("depth", "code"), [(63, None), (64, "malformed")])
def test_claims_nesting_at_the_limit(policy: tppolicy.Policy, depth: int,
                                     code: str | None) -> None:
    # The claims object is level 1: a value nested 63 deep is level 64, the limit.
    token = _resigned({"alg": "RS256", "kid": "rsa-1"}, claims(extra=_nested(depth)))
    if code is None:
        assert verifier(policy).verify(token).claims["extra"]
    else:
        assert refusal(policy, token) == code


def test_a_claim_named_twice_counts_once_with_its_last_value(policy: tppolicy.Policy) -> None:
    # As PyPI's JSON reader takes it (the header, smaller and ours to judge, refuses it).
    body = json.dumps(claims()).encode()[:-1] + b', "environment": "release"}'
    token = _resigned_raw({"alg": "RS256", "kid": "rsa-1"}, body)
    assert verifier(policy).verify(token).claims["environment"] == "release"


def _resigned_raw(header: dict[str, Any], body: bytes) -> str:
    signing_input = f"{b64url(json.dumps(header))}.{b64url(body)}"
    signature = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).sign(
        signing_input.encode(), rsa_key().private)
    return f"{signing_input}.{b64url(signature)}"


class _CountingDict(dict[str, Any]):
    """A dict that counts the entries a sweep reads (copies read them all)."""

    reads = 0

    def get(self, key: str, default: Any = None) -> Any:
        _CountingDict.reads += 1
        return super().get(key, default)

    def copy(self) -> dict[str, Any]:
        _CountingDict.reads += len(self)
        return dict(self)


def test_memory_store_sweep_reads_only_the_keys_whose_time_passed() -> None:
    now = [1000.0]
    store = MemoryReplayStore(clock=lambda: now[0], sweep_every=60)
    counting = _CountingDict()
    store._keys = counting
    for i in range(1000):  # live for an hour
        assert store.claim(f"iss/live-{i}", 4600)
    for i in range(10):  # expire within the minute
        assert store.claim(f"iss/short-{i}", 1030)
    assert store.claim("iss/edge", 1065)  # expired at the sweep, but in the current slot
    _CountingDict.reads = 0
    now[0] = 1070.0
    assert store.claim("iss/new", 4600)  # this claim sweeps
    assert _CountingDict.reads <= 10  # the ten short keys, not the thousand live ones
    assert len(store) == 1000 + 1 + 1  # the short ones are gone
    assert store.claim("iss/edge", 4600)  # expired, not yet swept: taken over
    assert not any(store.claim(f"iss/live-{i}", 4600) for i in range(0, 1000, 97))
    now[0] = 1200.0
    assert store.claim("iss/later", 4600)
    assert len(store) == 1000 + 3
