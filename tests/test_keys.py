"""The JWKS key cache and its fetcher against a real HTTPS server on 127.0.0.1.

No HTTP is mocked: `HttpFetcher` talks TLS to `tests.jwks_server.JwksServer`, which
trusts a CA generated for the session. Cooldowns run on an injected clock, so no
test sleeps to wait for one; every network wait is bounded by a timeout of 0.5 s.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tppolicy.token.keys import FetchError, HttpFetcher, KeyCache, VerificationKey, parse_jwks

from .conftest import Clock
from .jwks_server import (
    DISCOVERY_PATH,
    FETCH_TIMEOUT,
    JWKS_PATH,
    JwksServer,
    garbage_reply,
    huge_reply,
    json_reply,
    raw_reply,
    redirect_reply,
    slow_reply,
    status_reply,
    trickle_reply,
)
from .tokens import ec_key, jwks, rsa_key

pytest_plugins = ("tests.jwks_server",)

COOLDOWN = 60.0
SLACK = 0.6  # scheduling slack on top of a timeout, for slow CI machines


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(jwks_server: JwksServer, clock: Clock) -> KeyCache:
    return KeyCache(fetch=jwks_server.fetcher(), cooldown=COOLDOWN, clock=clock)


def counts(server: JwksServer) -> tuple[int, int]:
    """(discovery requests, JWKS requests)."""
    return server.requests(DISCOVERY_PATH), server.requests(JWKS_PATH)


def timed(call: Callable[[], object]) -> tuple[BaseException | None, float]:
    """What `call` raised (None if it returned), and how long it took."""
    start = time.monotonic()
    try:
        call()
    except Exception as exc:
        return exc, time.monotonic() - start
    return None, time.monotonic() - start


# --------------------------------------------------------------------------- HttpFetcher


def test_fetch_returns_the_document(jwks_server: JwksServer) -> None:
    body = jwks_server.fetcher()(jwks_server.url + JWKS_PATH)
    assert json.loads(body) == jwks(rsa_key(), ec_key())
    assert jwks_server.requests() == 1


def test_fetch_refuses_plain_http_without_connecting(jwks_server: JwksServer) -> None:
    with pytest.raises(FetchError, match="only https"):
        jwks_server.fetcher()(f"http://127.0.0.1:{jwks_server.port}{JWKS_PATH}")
    assert jwks_server.connections == 0


def test_fetch_verifies_the_certificate(jwks_server: JwksServer) -> None:
    # The system's CAs do not trust the test CA: TLS verification is really on.
    fetcher = HttpFetcher(timeout=FETCH_TIMEOUT)
    with pytest.raises(FetchError, match="certificate"):
        fetcher(jwks_server.url + JWKS_PATH)
    assert jwks_server.requests() == 0


def test_the_system_cas_are_loaded_on_the_first_fetch_only(jwks_server: JwksServer) -> None:
    # an engine that never fetches (keys from files, decisions on claims) does not pay for
    # loading them: every Engine() made a fetcher
    def loaded(fetcher: HttpFetcher) -> bool:
        return fetcher._ssl_context is not None

    fetcher = HttpFetcher(timeout=FETCH_TIMEOUT)
    assert not loaded(fetcher)
    with pytest.raises(FetchError, match="certificate"):
        fetcher(jwks_server.url + JWKS_PATH)
    assert loaded(fetcher)
    assert fetcher.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert fetcher.ssl_context is fetcher.ssl_context


@pytest.mark.parametrize("status", [404, 500, 503])
def test_fetch_http_errors(jwks_server: JwksServer, status: int) -> None:
    jwks_server.set_jwks(status_reply(status))
    with pytest.raises(FetchError, match=f"HTTP {status}"):
        jwks_server.fetcher()(jwks_server.url + JWKS_PATH)


def test_fetch_unknown_path_is_404(jwks_server: JwksServer) -> None:
    with pytest.raises(FetchError, match="HTTP 404"):
        jwks_server.fetcher()(jwks_server.url + "/nothing-here")
    assert jwks_server.requests("/nothing-here") == 1


def test_fetch_size_cap_is_exact(jwks_server: JwksServer) -> None:
    document = json.dumps(jwks(rsa_key())).encode()
    fetcher = jwks_server.fetcher(max_bytes=len(document))
    jwks_server.serve("/exact", json_reply(jwks(rsa_key())))
    assert fetcher(jwks_server.url + "/exact") == document
    jwks_server.serve("/over", huge_reply(jwks(rsa_key()), size=1))  # one space more
    with pytest.raises(FetchError, match=f"larger than {len(document)} bytes"):
        fetcher(jwks_server.url + "/over")


def test_fetch_huge_body_stops_at_the_cap(jwks_server: JwksServer) -> None:
    # 10 MB of valid JSON (a JWKS, then spaces): only the cap refuses it.
    jwks_server.set_jwks(huge_reply(jwks(rsa_key())))
    error, elapsed = timed(lambda: jwks_server.fetcher()(jwks_server.url + JWKS_PATH))
    assert isinstance(error, FetchError)
    assert "larger than" in str(error)
    assert elapsed < FETCH_TIMEOUT + SLACK


def test_fetch_slow_answer_times_out(jwks_server: JwksServer) -> None:
    jwks_server.set_jwks(slow_reply(3.0, json_reply(jwks(rsa_key()))))
    error, elapsed = timed(lambda: jwks_server.fetcher()(jwks_server.url + JWKS_PATH))
    assert isinstance(error, FetchError)
    assert elapsed < FETCH_TIMEOUT + SLACK


@pytest.mark.slow  # the default run's budget (.ci/run runs it)
def test_fetch_trickling_body_times_out(jwks_server: JwksServer) -> None:
    # One byte every 0.1 s: each read gets data well within the 0.5 s socket timeout,
    # but the whole fetch must still end at its deadline (the server gives up at 2.5 s).
    jwks_server.set_jwks(trickle_reply(jwks(rsa_key()), 0.1, limit=2.5))
    error, elapsed = timed(lambda: jwks_server.fetcher()(jwks_server.url + JWKS_PATH))
    assert isinstance(error, FetchError)
    assert elapsed < FETCH_TIMEOUT + SLACK


def test_fetch_server_down_fails_at_once(down_url: str, jwks_server: JwksServer) -> None:
    error, elapsed = timed(lambda: jwks_server.fetcher()(down_url + JWKS_PATH))
    assert isinstance(error, FetchError)
    assert elapsed < FETCH_TIMEOUT


@pytest.mark.slow  # the default run's budget (.ci/run runs it)
def test_fetch_silent_port_times_out(blackhole_url: str, jwks_server: JwksServer) -> None:
    # TCP connects (the kernel's backlog) but the TLS handshake is never answered.
    error, elapsed = timed(lambda: jwks_server.fetcher()(blackhole_url + JWKS_PATH))
    assert isinstance(error, FetchError)
    assert elapsed < FETCH_TIMEOUT + SLACK


def test_fetch_never_follows_a_redirect_to_http(jwks_server: JwksServer) -> None:
    jwks_server.set_jwks(redirect_reply(f"http://127.0.0.1:{jwks_server.port}/plain"))
    with pytest.raises(FetchError, match="non-https"):
        jwks_server.fetcher()(jwks_server.url + JWKS_PATH)
    # Had it followed, the plain-HTTP request would have failed the TLS handshake here.
    assert jwks_server.connections == 1
    assert jwks_server.failed_connections == 0


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_fetch_follows_a_redirect_to_https(jwks_server: JwksServer, status: int) -> None:
    jwks_server.serve("/moved", redirect_reply(jwks_server.url + JWKS_PATH, status))
    assert json.loads(jwks_server.fetcher()(jwks_server.url + "/moved"))["keys"]
    assert jwks_server.requests("/moved") == jwks_server.requests(JWKS_PATH) == 1


@pytest.mark.parametrize("data", [b"HELLO\r\n\r\n", b"HTTP/1.1 2000 Odd\r\n\r\n"],
                         ids=["not-http", "bad-status"])
def test_fetch_answer_that_is_not_http(jwks_server: JwksServer, data: bytes) -> None:
    jwks_server.set_jwks(raw_reply(data))
    with pytest.raises(FetchError):
        jwks_server.fetcher()(jwks_server.url + JWKS_PATH)


# --------------------------------------------------------------------------- KeyCache


def test_first_fetch_uses_discovery(jwks_server: JwksServer, cache: KeyCache) -> None:
    key = cache.get(jwks_server.url, "rsa-1")
    assert isinstance(key, VerificationKey)
    assert (key.kid, key.kty) == ("rsa-1", "RSA")
    assert key.key.public_numbers() == rsa_key().private.public_key().public_numbers()
    assert counts(jwks_server) == (1, 1)


def test_discovery_for_another_issuer_is_refused(jwks_server: JwksServer,
                                                 cache: KeyCache) -> None:
    # OIDC Discovery: the document's issuer must be the issuer asked for, exactly.
    with pytest.raises(FetchError, match="the document is for issuer"):
        cache.get(jwks_server.url + "/", "rsa-1")


def test_known_kid_never_refetches(jwks_server: JwksServer, cache: KeyCache,
                                   clock: Clock) -> None:
    first = cache.get(jwks_server.url, "rsa-1")
    for _ in range(5):
        assert cache.get(jwks_server.url, "rsa-1") is first
        assert cache.get(jwks_server.url, "ec-1") is not None
        clock.advance(COOLDOWN * 2)  # not even once the cooldown is over
    assert counts(jwks_server) == (1, 1)


def test_key_rotation(jwks_server: JwksServer, cache: KeyCache, clock: Clock) -> None:
    old, new = rsa_key("rsa-1"), rsa_key("rsa-2")
    jwks_server.set_jwks(jwks(old))
    assert cache.get(jwks_server.url, old.kid) is not None
    jwks_server.set_jwks(jwks(new))  # the issuer rotates its key
    clock.advance(COOLDOWN)
    key = cache.get(jwks_server.url, new.kid)  # one refresh finds the new key
    assert key is not None
    assert key.key.public_numbers() == new.private.public_key().public_numbers()
    assert counts(jwks_server) == (2, 2)
    assert cache.get(jwks_server.url, old.kid) is None  # the removed key is gone
    assert counts(jwks_server) == (2, 2)  # and asking for it fetched nothing


def test_unknown_kid_refreshes_once_per_cooldown(jwks_server: JwksServer, cache: KeyCache,
                                                 clock: Clock) -> None:
    assert cache.get(jwks_server.url, "rsa-1") is not None
    assert counts(jwks_server) == (1, 1)
    jwks_server.set_jwks(jwks(rsa_key(), rsa_key("rsa-2")))
    for _ in range(3):  # within the cooldown: nothing fetched, the kid stays unknown
        clock.advance(COOLDOWN / 4)
        assert cache.get(jwks_server.url, "rsa-2") is None
        assert cache.get(jwks_server.url, "nope") is None
    assert counts(jwks_server) == (1, 1)
    clock.advance(COOLDOWN / 4)  # the cooldown is over: one refresh
    assert cache.get(jwks_server.url, "nope") is None
    assert counts(jwks_server) == (2, 2)
    assert cache.get(jwks_server.url, "rsa-2") is not None  # found by that refresh
    clock.advance(COOLDOWN - 1)
    assert cache.get(jwks_server.url, "nope") is None
    assert counts(jwks_server) == (2, 2)
    clock.advance(1)
    assert cache.get(jwks_server.url, "nope") is None
    assert counts(jwks_server) == (3, 3)


def test_failed_refresh_keeps_old_keys_and_starts_the_cooldown(
        jwks_server: JwksServer, cache: KeyCache, clock: Clock) -> None:
    assert cache.get(jwks_server.url, "rsa-1") is not None
    jwks_server.set_jwks(status_reply(500))
    clock.advance(COOLDOWN)
    assert cache.get(jwks_server.url, "rsa-2") is None  # unknown, not an error: keys remain
    assert counts(jwks_server) == (2, 2)
    assert cache.get(jwks_server.url, "rsa-1") is not None  # the old keys are kept
    jwks_server.set_jwks(jwks(rsa_key(), rsa_key("rsa-2")))  # the endpoint recovers
    clock.advance(COOLDOWN / 2)
    assert cache.get(jwks_server.url, "rsa-2") is None  # but the failure started a cooldown
    assert counts(jwks_server) == (2, 2)
    clock.advance(COOLDOWN / 2)
    assert cache.get(jwks_server.url, "rsa-2") is not None
    assert counts(jwks_server) == (3, 3)


def test_failed_first_fetch_raises_and_starts_the_cooldown(
        jwks_server: JwksServer, cache: KeyCache, clock: Clock) -> None:
    jwks_server.serve(DISCOVERY_PATH, status_reply(503))
    with pytest.raises(FetchError, match="HTTP 503"):
        cache.get(jwks_server.url, "rsa-1")
    clock.advance(COOLDOWN - 1)
    with pytest.raises(FetchError, match="HTTP 503"):  # the same error, nothing fetched
        cache.get(jwks_server.url, "rsa-1")
    assert counts(jwks_server) == (1, 0)
    jwks_server.set_jwks_uri(jwks_server.url + JWKS_PATH)  # the issuer recovers
    clock.advance(1)
    assert cache.get(jwks_server.url, "rsa-1") is not None
    assert counts(jwks_server) == (2, 1)


@pytest.mark.parametrize("document", [
    {"keys": []},
    {"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]},
], ids=["empty", "only-unusable"])
def test_empty_key_set_is_never_cached(jwks_server: JwksServer, cache: KeyCache, clock: Clock,
                                       document: dict[str, Any]) -> None:
    jwks_server.set_jwks(document)
    with pytest.raises(FetchError, match="no usable signing key"):
        cache.get(jwks_server.url, "rsa-1")
    jwks_server.set_jwks(jwks(rsa_key()))
    clock.advance(COOLDOWN)
    assert cache.get(jwks_server.url, "rsa-1") is not None
    # A refresh that brings no key keeps the old ones instead of emptying the cache.
    jwks_server.set_jwks(document)
    clock.advance(COOLDOWN)
    assert cache.get(jwks_server.url, "rsa-2") is None
    assert counts(jwks_server) == (3, 3)
    assert cache.get(jwks_server.url, "rsa-1") is not None


def test_server_down_is_a_fetch_error_at_once(down_url: str, jwks_server: JwksServer,
                                              clock: Clock) -> None:
    fetcher, tried = jwks_server.fetcher(), []

    def fetch(url: str) -> bytes:  # the real fetcher, counting its tries
        tried.append(url)
        return fetcher(url)

    cache = KeyCache(fetch=fetch, cooldown=COOLDOWN, clock=clock)
    error, elapsed = timed(lambda: cache.get(down_url, "rsa-1"))
    assert isinstance(error, FetchError)
    assert elapsed < FETCH_TIMEOUT
    attempts = len(tried)
    error, _ = timed(lambda: cache.get(down_url, "rsa-1"))  # cooldown: not even tried
    assert isinstance(error, FetchError)
    assert len(tried) == attempts


@pytest.mark.slow  # the default run's budget (.ci/run runs it)
@pytest.mark.parametrize("path", [DISCOVERY_PATH, JWKS_PATH])
def test_slow_endpoint_is_a_fetch_error_within_the_timeout(
        jwks_server: JwksServer, cache: KeyCache, path: str) -> None:
    jwks_server.serve(path, slow_reply(3.0))
    error, elapsed = timed(lambda: cache.get(jwks_server.url, "rsa-1"))
    assert isinstance(error, FetchError)
    assert elapsed < FETCH_TIMEOUT + SLACK


@pytest.mark.parametrize("path", [DISCOVERY_PATH, JWKS_PATH])
@pytest.mark.parametrize("reply", [
    status_reply(404),
    status_reply(500),
    garbage_reply(),
    json_reply(["a", "list"]),
    huge_reply({"keys": []}),
    json_reply({"jwks_uri": 3, "keys": 3}),
], ids=["404", "500", "garbage", "list", "huge", "wrong-types"])
def test_broken_endpoint_is_a_fetch_error(jwks_server: JwksServer, cache: KeyCache, path: str,
                                          reply: Any) -> None:
    jwks_server.serve(path, reply)
    error, elapsed = timed(lambda: cache.get(jwks_server.url, "rsa-1"))
    assert isinstance(error, FetchError), error
    assert elapsed < FETCH_TIMEOUT + SLACK
    assert jwks_server.requests(JWKS_PATH) == int(path == JWKS_PATH)


def test_jwks_redirected_to_http_is_a_fetch_error(jwks_server: JwksServer,
                                                  cache: KeyCache) -> None:
    jwks_server.set_jwks(redirect_reply(f"http://127.0.0.1:{jwks_server.port}{JWKS_PATH}"))
    with pytest.raises(FetchError, match="non-https"):
        cache.get(jwks_server.url, "rsa-1")
    assert counts(jwks_server) == (1, 1)
    assert jwks_server.failed_connections == 0


@pytest.mark.parametrize("uri", ["http://127.0.0.1:{port}/jwks", "//127.0.0.1:{port}/jwks",
                                 "/jwks", "HTTP://127.0.0.1:{port}/jwks", None])
def test_jwks_uri_must_be_https(jwks_server: JwksServer, cache: KeyCache,
                                uri: str | None) -> None:
    jwks_server.set_jwks_uri(None if uri is None else uri.format(port=jwks_server.port))
    with pytest.raises(FetchError, match="no https jwks_uri"):
        cache.get(jwks_server.url, "rsa-1")
    assert counts(jwks_server) == (1, 0)
    assert jwks_server.failed_connections == 0


def test_jwks_uri_elsewhere_on_https(jwks_server: JwksServer, cache: KeyCache) -> None:
    jwks_server.serve("/keys/v2", json_reply(jwks(rsa_key("rsa-2"))))
    jwks_server.set_jwks_uri(jwks_server.url + "/keys/v2")
    assert cache.get(jwks_server.url, "rsa-2") is not None
    assert cache.get(jwks_server.url, "rsa-1") is None
    assert counts(jwks_server) == (1, 0)
    assert jwks_server.requests("/keys/v2") == 1


def test_issuers_are_cached_separately(jwks_server: JwksServer, cache: KeyCache,
                                       down_url: str) -> None:
    with pytest.raises(FetchError):
        cache.get(down_url, "rsa-1")
    assert cache.get(jwks_server.url, "rsa-1") is not None
    with pytest.raises(FetchError):  # one issuer's keys never answer for another
        cache.get(down_url, "rsa-1")


@pytest.mark.parametrize("kid", ["rsa-1", "nope"])
def test_concurrent_unknown_kid_fetches_once(jwks_server: JwksServer, cache: KeyCache,
                                             kid: str) -> None:
    # The JWKS answers after 0.2 s, so all 16 threads pile up on the refresh.
    jwks_server.set_jwks(slow_reply(0.2, json_reply(jwks(rsa_key()))))
    threads_count = 16
    barrier = threading.Barrier(threads_count, timeout=60)  # bounds a hang
    results: list[object] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            value: object = cache.get(jwks_server.url, kid)
        except Exception as exc:
            value = exc
        with lock:
            results.append(value)

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert len(results) == threads_count
    if kid == "nope":
        assert results == [None] * threads_count
    else:
        assert all(isinstance(r, VerificationKey) for r in results)
        assert len({id(r) for r in results}) == 1
    assert counts(jwks_server) == (1, 1)


def test_concurrent_failing_first_fetch_tries_once(jwks_server: JwksServer,
                                                   cache: KeyCache) -> None:
    jwks_server.serve(DISCOVERY_PATH, slow_reply(0.2, status_reply(500)))
    barrier = threading.Barrier(16, timeout=60)  # bounds a hang
    errors: list[object] = []

    def worker() -> None:
        barrier.wait()
        try:
            cache.get(jwks_server.url, "rsa-1")
        except FetchError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(errors) == 16
    assert counts(jwks_server) == (1, 0)


def test_add_static_never_fetches(jwks_server: JwksServer, cache: KeyCache,
                                  clock: Clock) -> None:
    cache.add_static(jwks_server.url, jwks(rsa_key("offline")))
    assert cache.get(jwks_server.url, "offline") is not None
    for _ in range(3):
        clock.advance(COOLDOWN * 2)
        assert cache.get(jwks_server.url, "rsa-1") is None  # served online, never asked
    assert jwks_server.requests() == 0
    assert jwks_server.connections == 0


def test_add_static_refuses_a_document_without_keys() -> None:
    cache = KeyCache(fetch=HttpFetcher(timeout=FETCH_TIMEOUT))
    with pytest.raises(FetchError, match="no usable signing key"):
        cache.add_static("https://127.0.0.1:9", {"keys": []})


# --------------------------------------------------------------------------- parse_jwks


GOOD = rsa_key()


def only(*entries: dict[str, Any]) -> dict[str, Any]:
    """A JWKS with the good key and `entries`."""
    return {"keys": [GOOD.public_jwk, *entries]}


def test_parse_keeps_rsa_and_ec_signing_keys() -> None:
    keys = parse_jwks(jwks(rsa_key(), ec_key()), "test")
    assert sorted(keys) == ["ec-1", "rsa-1"]
    assert keys["rsa-1"].algorithms == {"RS256"}  # the JWK names its alg
    assert keys["ec-1"].algorithms == {"ES256"}
    without_alg = {k: v for k, v in rsa_key().public_jwk.items() if k != "alg"}
    assert "PS256" in parse_jwks({"keys": [without_alg]}, "test")["rsa-1"].algorithms


def test_parse_accepts_bytes_and_text() -> None:
    text = json.dumps(jwks(rsa_key()))
    assert list(parse_jwks(text, "t")) == list(parse_jwks(text.encode(), "t")) == ["rsa-1"]


def test_parse_skips_symmetric_keys() -> None:
    entry = {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ", "alg": "HS256"}
    assert list(parse_jwks(only(entry), "t")) == ["rsa-1"]


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_parse_skips_private_keys(kind: str) -> None:
    signing = rsa_key("private") if kind == "rsa" else ec_key("private")
    algorithm = RSAAlgorithm if kind == "rsa" else ECAlgorithm
    entry = json.loads(algorithm.to_jwk(signing.private))
    entry.update(kid="private", use="sig")
    assert "d" in entry
    assert list(parse_jwks(only(entry), "t")) == ["rsa-1"]
    with pytest.raises(FetchError, match="no usable signing key"):
        parse_jwks({"keys": [entry]}, "t")


def test_parse_skips_encryption_keys() -> None:
    entry = {**rsa_key("enc").public_jwk, "use": "enc"}
    assert list(parse_jwks(only(entry), "t")) == ["rsa-1"]


def test_parse_skips_weak_rsa_keys() -> None:
    weak = rsa_key("weak", bits=1024)
    assert weak.private.key_size == 1024
    assert list(parse_jwks(only(weak.public_jwk), "t")) == ["rsa-1"]
    with pytest.raises(FetchError, match="no usable signing key"):
        parse_jwks(jwks(weak), "t")


@pytest.mark.parametrize("kid", [None, 7, ["rsa-x"]], ids=["missing", "int", "list"])
def test_parse_skips_keys_without_a_kid(kid: object) -> None:
    entry = {k: v for k, v in rsa_key("x").public_jwk.items() if k != "kid"}
    if kid is not None:
        entry["kid"] = kid
    assert list(parse_jwks(only(entry), "t")) == ["rsa-1"]


@pytest.mark.parametrize("entry", [
    "not an object",
    {"kty": "RSA", "kid": "alg-type", "alg": 256, "n": "AQAB", "e": "AQAB"},
    {"kty": "PGP", "kid": "unknown-kty"},
], ids=["string", "alg-type", "unknown-kty"])
def test_parse_skips_entries_that_are_not_keys(entry: object) -> None:
    assert list(parse_jwks({"keys": [GOOD.public_jwk, entry]}, "t")) == ["rsa-1"]


@pytest.mark.parametrize("entry", [
    {"kty": "EC", "kid": "bad-curve", "crv": "P-999", "x": "AA", "y": "AA"},
    {"kty": "EC", "kid": "bad-point", "crv": "P-256", "x": "AA", "y": "AA"},
    {"kty": "RSA", "kid": "no-exponent", "n": "AQAB"},
    {"kty": "RSA", "kid": "no-material"},
    {"kty": "OKP", "kid": "no-curve", "x": "AA"},
], ids=["bad-curve", "bad-point", "no-exponent", "no-material", "okp-no-curve"])
def test_parse_skips_malformed_key_material(entry: dict[str, Any]) -> None:
    assert list(parse_jwks(only(entry), "t")) == ["rsa-1"]


@pytest.mark.parametrize("document", [b"not json", b"\xff\xfe", "[]", '{"keys": {}}', "{}",
                                      b'{"keys": null}'])
def test_parse_refuses_documents_that_are_not_jwks(document: bytes | str) -> None:
    with pytest.raises(FetchError, match="where"):
        parse_jwks(document, "where")


def test_a_failed_refresh_is_told_to_the_on_failure_hook() -> None:
    """An embedder's metrics hook hears of every failed refresh (here a real connection
    refused on 127.0.0.1); a hook that raises changes nothing."""
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    issuer = f"https://127.0.0.1:{port}"
    heard: list[tuple[str, str]] = []
    clock = Clock()
    cache = KeyCache(fetch=HttpFetcher(timeout=2), cooldown=60, clock=clock,
                     on_failure=lambda i, error: heard.append((i, error)))
    with pytest.raises(FetchError):
        cache.get(issuer, "rsa-1")
    assert [i for i, _ in heard] == [issuer]
    assert "127.0.0.1" in heard[0][1]

    def broken(issuer: str, error: str) -> None:
        raise RuntimeError("the metrics backend is down")

    cache.on_failure = broken
    clock.advance(61)
    with pytest.raises(FetchError):  # the refusal, not the hook's error
        cache.get(issuer, "rsa-1")
