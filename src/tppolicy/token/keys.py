"""Issuers' signing keys: JWKS documents from OIDC discovery or from files, cached
per issuer, refreshed on an unknown key id at most once per cooldown.

The cache is better than PyPI's in two ways (docs say so): a failed refresh also
starts the cooldown (a dead JWKS endpoint is not hammered by every token), and
every fetch has a size cap as well as a timeout.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jwt import PyJWK
from jwt.exceptions import PyJWTError

DEFAULT_TIMEOUT = 5.0
DEFAULT_COOLDOWN = 60.0
DEFAULT_MAX_DOCUMENT = 256 * 1024
_ASYMMETRIC_KTY = {"RSA", "EC", "OKP"}
_MIN_RSA_BITS = 2048
# One verify with a 16 384-bit modulus cost 860 us, 48 times a 2048-bit one (18 us); a
# self-managed issuer's key set could make every token that expensive. Real issuers use
# 2048 or 4096 bits; OpenSSL cannot verify with moduli over 16 384 bits at all.
_MAX_RSA_BITS = 8192


_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str
    kty: str
    alg: str | None  # the JWK's own "alg", if it states one
    key: Any  # a cryptography public key
    algorithms: frozenset[str]  # the signature algorithms this key may verify

    @classmethod
    def make(cls, kid: str, kty: str, alg: str | None, key: Any) -> VerificationKey:
        if kty == "RSA":
            usable = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
        elif kty == "EC":
            usable = {_EC_ALGORITHMS.get(getattr(key.curve, "name", ""), "")} - {""}
        else:
            usable = {"EdDSA"}
        if alg is not None:  # a key that names its algorithm verifies only that one
            usable &= {alg}
        return cls(kid, kty, alg, key, frozenset(usable))

    def allows(self, alg: str) -> bool:
        """May this key verify a signature made with `alg`?"""
        return alg in self.algorithms


class FetchError(Exception):
    """A document could not be fetched or read."""


class Fetcher(Protocol):
    def __call__(self, url: str) -> bytes: ...


class HttpFetcher:
    """GET over HTTPS with a hard deadline for the whole exchange and a size cap.

    The deadline covers connecting, the headers and the body: a watchdog shuts the
    socket when it passes, so a server that trickles bytes cannot hold a refresh
    (and the issuer's lock) longer than `timeout`. Redirects are followed to https
    URLs only, three at most.
    """

    max_redirects = 3

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_DOCUMENT,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._ssl_context = ssl_context

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The TLS settings of the fetches: the one given, else the system's trusted CAs,
        loaded on the first fetch (loading them costs ~20 ms of CPU, and an engine or a
        `tppolicy check` on keys from files never fetches)."""
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def __call__(self, url: str) -> bytes:
        deadline = time.monotonic() + self.timeout
        for _ in range(self.max_redirects + 1):
            location = self._get(url, deadline)
            if isinstance(location, bytes):
                return location
            url = urllib.parse.urljoin(url, location)
        raise FetchError(f"{url}: too many redirects")

    def _get(self, url: str, deadline: float) -> bytes | str:
        """The body, or the location of a redirect."""
        # The URL is the issuer's (a jwks_uri, a redirect's Location): a malformed one
        # ("https://[::1/", a blank or control character in the host) is a FetchError.
        # (http.client's InvalidURL is no ValueError: it escaped as an internal error.)
        try:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme != "https" or not parts.hostname:
                raise FetchError(f"{url}: only https URLs are fetched")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError(f"{url}: timed out after {self.timeout:g} s")
            connection = http.client.HTTPSConnection(parts.hostname, parts.port,
                                                     timeout=remaining,
                                                     context=self.ssl_context)
        except (ValueError, http.client.HTTPException) as exc:
            raise FetchError(f"{url!r}: not a URL that can be fetched: {exc}") from None
        expired = threading.Event()

        def abort() -> None:
            expired.set()
            sock = connection.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        watchdog = threading.Timer(remaining, abort)
        watchdog.daemon = True
        watchdog.start()
        response: http.client.HTTPResponse | None = None
        try:
            path = parts.path or "/"
            connection.request("GET", f"{path}?{parts.query}" if parts.query else path,
                               headers={"Accept": "application/json", "User-Agent": "tppolicy"})
            response = connection.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                target = response.getheader("Location")
                if not target or not urllib.parse.urljoin(url, target).startswith("https://"):
                    raise FetchError(f"{url}: redirected to a non-https URL")
                return target
            if response.status != 200:
                raise FetchError(f"{url}: HTTP {response.status}")
            chunks: list[bytes] = []
            size = 0
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or expired.is_set():
                    raise FetchError(f"{url}: timed out after {self.timeout:g} s")
                if connection.sock is not None:  # each read waits no longer than what is left
                    connection.sock.settimeout(remaining)
                chunk = response.read1(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:
                    raise FetchError(f"{url}: document larger than {self.max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if expired.is_set():
                raise FetchError(f"{url}: timed out after {self.timeout:g} s") from None
            raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from None
        finally:
            watchdog.cancel()
            if response is not None:  # its file keeps the socket open (a redirect's body)
                response.close()
            connection.close()


def parse_jwks(document: bytes | str | Mapping[str, Any], where: str) -> dict[str, VerificationKey]:
    """A JWKS document → keys by kid. Symmetric keys, keys without kid, RSA keys of
    fewer than 2048 or more than 8192 bits
    and keys for encryption (`use` other than "sig", `key_ops` without "verify") are
    left out; a document with no usable key is an error. Of usable keys sharing a kid
    the first is kept, as PyPI's key client (PyJWT's) chooses it: a later one under the
    same kid never verifies a token."""
    try:
        data = document if isinstance(document, Mapping) else json.loads(document)
    except (ValueError, RecursionError) as exc:
        raise FetchError(f"{where}: not JSON ({exc})") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        raise FetchError(f"{where}: not a JWKS document (no 'keys' list)")
    keys: dict[str, VerificationKey] = {}
    for entry in data["keys"]:
        if not isinstance(entry, dict):
            continue
        kid, kty = entry.get("kid"), entry.get("kty")
        if not isinstance(kid, str) or not isinstance(kty, str) or kty not in _ASYMMETRIC_KTY \
                or kid in keys:
            continue
        if entry.get("use", "sig") != "sig" or "d" in entry:  # never a private key
            continue
        operations = entry.get("key_ops")  # RFC 7517 4.3: when given, the operations allowed
        if operations is not None and (not isinstance(operations, list)
                                       or "verify" not in operations):
            continue
        alg = entry.get("alg")
        if alg is not None and not isinstance(alg, str):
            continue
        try:
            key = PyJWK(entry).key
        except (PyJWTError, ValueError, TypeError, KeyError, AttributeError):
            continue  # one unusable key does not spoil the others
        if kty == "RSA" and not _MIN_RSA_BITS <= key.key_size <= _MAX_RSA_BITS:
            continue
        keys[kid] = VerificationKey.make(kid, kty, alg, key)
    if not keys:
        raise FetchError(f"{where}: no usable signing key")
    return keys


@dataclass(slots=True)
class _IssuerKeys:
    keys: dict[str, VerificationKey]
    last_attempt: float | None
    lock: threading.Lock
    last_error: str | None = None
    static: bool = False


class KeyCache:
    """Signing keys per issuer, from discovery or given offline; safe across threads.

    `on_failure(issuer, error)` is told of every failed refresh (an embedder's metrics or
    alerts); what it raises is ignored, and it never changes a decision.
    """

    def __init__(self, *, fetch: Fetcher | None = None, cooldown: float = DEFAULT_COOLDOWN,
                 clock: Callable[[], float] = time.monotonic,
                 on_failure: Callable[[str, str], None] | None = None) -> None:
        self.on_failure = on_failure
        self._fetch: Fetcher = fetch or HttpFetcher()
        self.cooldown = cooldown
        self._clock = clock
        self._issuers: dict[str, _IssuerKeys] = {}
        self._guard = threading.Lock()

    def add_static(self, issuer: str, jwks: bytes | str | Mapping[str, Any],
                   where: str = "JWKS") -> None:
        """Use these keys for `issuer` and never fetch (offline keys, `--jwks`)."""
        keys = parse_jwks(jwks, where)
        self._issuers[issuer] = _IssuerKeys(keys, None, threading.Lock(), static=True)

    def _entry(self, issuer: str) -> _IssuerKeys:
        entry = self._issuers.get(issuer)
        if entry is None:
            with self._guard:
                entry = self._issuers.setdefault(issuer, _IssuerKeys({}, None, threading.Lock()))
        return entry

    def held_keys(self) -> dict[str, Any] | None:
        """The issuers' entries as `get` reads them first (issuer -> an entry whose `keys`
        maps each kid to its key), for the verifier's straight path in C, which takes a
        key found there as `get` would return it and asks `get` for any other; None for
        a cache whose `get` is its own (a subclass's): then every key is asked of it."""
        return self._issuers if type(self).get is KeyCache.get else None

    def get(self, issuer: str, kid: str) -> VerificationKey | None:
        """The key `kid` of `issuer`, refreshing once per cooldown if it is unknown.

        Returns None when the key is unknown; raises `FetchError` when the issuer has
        no keys at all and they cannot be fetched.
        """
        entry = self._issuers.get(issuer) or self._entry(issuer)
        key = entry.keys.get(kid)
        if key is not None or entry.static:
            return key
        with entry.lock:  # one refresh at a time per issuer; the others wait and reuse it
            key = entry.keys.get(kid)
            if key is not None:
                return key
            now = self._clock()
            if entry.last_attempt is None or now - entry.last_attempt >= self.cooldown:
                entry.last_attempt = now
                try:
                    entry.keys = self.refresh_keys(issuer)  # replaces the set: removed go
                    entry.last_error = None
                except FetchError as exc:
                    entry.last_error = str(exc)  # keep the old keys
                    if self.on_failure is not None:
                        with contextlib.suppress(Exception):  # a hook cannot change it
                            self.on_failure(issuer, entry.last_error)
            if not entry.keys and entry.last_error is not None:
                raise FetchError(entry.last_error)
            return entry.keys.get(kid)

    def refresh_keys(self, issuer: str) -> dict[str, VerificationKey]:
        """The issuer's current keys. Subclasses may share them between processes (an
        index server's replicas): see `tppolicy.server.auth.ServerKeyCache`."""
        return parse_jwks(self.load_document(issuer), f"keys of {issuer}")

    def load_document(self, issuer: str) -> bytes:
        """The issuer's JWKS document, through OIDC discovery."""
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            config = json.loads(self._fetch(url))
        except (ValueError, RecursionError):
            raise FetchError(f"{url}: not JSON") from None
        if not isinstance(config, dict):
            raise FetchError(f"{url}: not a JSON object")
        stated = config.get("issuer")
        if stated is not None and stated != issuer:  # OIDC Discovery 1.0, section 4.3
            raise FetchError(f"{url}: the document is for issuer {stated!r}, not {issuer!r}")
        jwks_uri = config.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise FetchError(f"{url}: no https jwks_uri")
        return self._fetch(jwks_uri)
