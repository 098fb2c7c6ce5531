"""Credentials and shared state for the index server.

* Minted credentials: random, 15 minutes, scoped to a publisher's projects; the
  server stores only their SHA-256 (`storage.Credential`).
* Upload authentication: HTTP basic with the user `__token__`, as PyPI.
* For several replicas: the `jti` replay set and the issuers' keys in Redis
  (`RedisReplayStore`, `ServerKeyCache(redis=...)`), so a token replayed against
  another replica is still refused and one replica's key refresh serves all.
* Issuers' keys from discovery, from a JWKS URL or from a JWKS file that is read
  again on refresh (a key rotation is a file rewrite).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tppolicy.readers.source import outside_link
from tppolicy.token.keys import (
    DEFAULT_MAX_DOCUMENT,
    Fetcher,
    FetchError,
    KeyCache,
    VerificationKey,
    parse_jwks,
)

from .database import Unavailable
from .storage import MAX_JTI_EXPIRY, Credential, Storage

if TYPE_CHECKING:
    import redis

log = logging.getLogger("tppolicy.server")

CREDENTIAL_PREFIX = "tpp-"
CREDENTIAL_TTL = 15 * 60  # PyPI: trusted publishing tokens last 15 minutes


def new_credential() -> str:
    return CREDENTIAL_PREFIX + secrets.token_urlsafe(32)


class KeysNotCached(Exception):
    """The issuer's key is not in the cache and `ServerKeyCache.cached_only` forbids a
    fetch: verify the token where fetching may block (a worker thread)."""


@dataclass(frozen=True, slots=True)
class AuthFailure:
    status: int
    message: str


def basic_auth(header: str | None) -> tuple[str, str] | AuthFailure:
    """(user, password) of an `Authorization: Basic ...` header."""
    if not header:
        return AuthFailure(403, "Invalid or non-existent authentication information: no "
                           "credentials were sent (user __token__, password: the token)")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return AuthFailure(403, "Invalid or non-existent authentication information: use HTTP "
                           "basic authentication (user __token__, password: the token)")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return AuthFailure(403, "Invalid or non-existent authentication information: the "
                           "basic credentials are not base64 of UTF-8 text")
    user, sep, password = decoded.partition(":")
    if not sep:
        return AuthFailure(403, "Invalid or non-existent authentication information: the "
                           "basic credentials have no ':'")
    return user, password


def authenticate(storage: Storage, header: str | None,
                 now: float | None = None) -> Credential | AuthFailure:
    """The credential an upload request carries, or why it is refused."""
    parsed = basic_auth(header)
    if isinstance(parsed, AuthFailure):
        return parsed
    user, password = parsed
    if user != "__token__":
        return AuthFailure(403, "Username/Password authentication is not supported: use the "
                           "user __token__ with a token minted by trusted publishing")
    credential = storage.credential(password) if password.startswith(CREDENTIAL_PREFIX) \
        else None
    if credential is None:
        return AuthFailure(403, "Invalid or non-existent authentication information: unknown "
                           "API token")
    if credential.revoked:
        return AuthFailure(403, "Invalid API Token: the token was revoked")
    now = time.time() if now is None else now
    if now >= credential.expires:
        ago = int(now - credential.expires)
        lifetime = int(credential.expires - credential.issued + 0.5)
        return AuthFailure(403, f"Invalid API Token: the token expired {_ago(ago)} ago "
                           f"(trusted publishing tokens last {_lifetime(lifetime)}: mint a "
                           "new one)")
    return credential


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _lifetime(seconds: int) -> str:
    return f"{seconds // 60} minutes" if seconds >= 60 and seconds % 60 == 0 else f"{seconds} s"


def _ago(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


# --------------------------------------------------------------------------- Redis


class RedisReplayStore:
    """The `jti` replay set in Redis, shared by every replica: `SET key "" NX EXAT`,
    as PyPI. A Redis error propagates (the request fails; nothing is minted)."""

    def __init__(self, client: redis.Redis, prefix: str = "tppolicy:jti:",
                 storage: Storage | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.storage = storage  # its open mint scope takes a claim back if it rolls back

    def claim(self, key: str, expires_at: int) -> bool:
        import redis as redis_module

        expires_at = min(int(expires_at), MAX_JTI_EXPIRY)  # Redis refuses larger EXAT values
        try:
            claimed = bool(self.client.set(self.prefix + key, b"", nx=True, exat=expires_at))
        except redis_module.RedisError as exc:  # down: an outage, not a bug
            raise ReplayUnavailable(f"Redis (the replay store) is unavailable: {exc}") from None
        scope = self.storage.open_scope() if self.storage is not None else None
        if claimed and scope is not None:
            # The exchange's credential is written after this claim: if that fails (the
            # database down, the server stopping), no credential exists for the token,
            # and the claim is taken back so the token can be used again.
            scope.undo.append(lambda: self._release(key))
            scope.taken.append(lambda: self._release(key))
        return claimed

    def _release(self, key: str) -> None:
        import redis as redis_module

        try:
            self.client.delete(self.prefix + key)
        except redis_module.RedisError as exc:  # the token stays spent: it fails closed
            log.warning("cannot take back the claim of a token whose exchange failed: %s",
                        exc)


class ReplayUnavailable(Unavailable):
    """The shared replay store (Redis) cannot be reached: nothing is minted (503)."""


def redis_client(url: str) -> redis.Redis:
    import redis as redis_module

    return redis_module.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


# --------------------------------------------------------------------------- keys


class ServerKeyCache(KeyCache):
    """A `KeyCache` whose issuers' keys may come from a JWKS file (read again on each
    refresh: rewriting the file rotates the keys), a JWKS URL (no discovery), or
    discovery; with `redis`, the documents and the refresh cooldown are shared by
    every replica (as PyPI keeps them in Redis).

    Refresh rules stay the base class's: on an unknown key id, at most once per
    cooldown per issuer, old keys kept when a refresh fails. With Redis, a replica
    that sees a refresh made by another within the cooldown takes its keys without
    fetching; a failed refresh also starts the shared cooldown.
    """

    def __init__(self, *, sources: Mapping[str, str] | None = None,
                 redis: redis.Redis | None = None, prefix: str = "tppolicy:jwks:",
                 fetch: Fetcher | None = None, cooldown: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(fetch=fetch, cooldown=cooldown, clock=clock)
        self.sources = dict(sources or {})
        self.redis = redis
        self.prefix = prefix
        self.fetches = 0  # documents loaded by this process (for tests and logs)
        self._cached_only = threading.local()

    def get(self, issuer: str, kid: str) -> VerificationKey | None:
        """As `KeyCache.get`; inside `cached_only()` on this thread, `KeysNotCached` is
        raised where a refresh would fetch (the caller retries where it may block)."""
        if getattr(self._cached_only, "on", False):
            entry = self._issuers.get(issuer)
            if entry is None or (not entry.static and kid not in entry.keys):
                raise KeysNotCached(issuer)
        return super().get(issuer, kid)

    @contextlib.contextmanager
    def cached_only(self) -> Iterator[None]:
        """On this thread, until the block ends: keys from the cache only, never fetched
        (the event loop verifies a token only if its key is at hand)."""
        self._cached_only.on = True
        try:
            yield
        finally:
            self._cached_only.on = False

    def refresh_keys(self, issuer: str) -> dict[str, VerificationKey]:
        try:
            return self._refresh(issuer)
        except FetchError as exc:
            log.warning("cannot refresh the keys of %s: %s", issuer, exc,
                        extra={"event": "key-fetch-failure", "issuer": issuer})
            raise  # the base class tells `on_failure`

    def _refresh(self, issuer: str) -> dict[str, VerificationKey]:
        if self.redis is None:
            return self._parse(issuer, self._load(issuer))
        import redis as redis_module

        document_key, marker_key = self.prefix + issuer, self.prefix + issuer + ":timeout"
        try:
            marker, shared = self.redis.mget([marker_key, document_key])
        except redis_module.RedisError as exc:
            log.warning("redis unavailable for the keys of %s (%s): fetching locally",
                        issuer, exc)
            return self._parse(issuer, self._load(issuer))
        if marker is not None:  # another replica refreshed within the cooldown
            if shared:
                return self._parse(issuer, shared)
            raise FetchError(f"keys of {issuer}: the last refresh failed "
                             f"({_text(marker)})")
        ttl = max(1, int(self.cooldown + 0.999))
        try:
            document = self._load(issuer)
            keys = self._parse(issuer, document)
        except FetchError as exc:
            with contextlib.suppress(redis_module.RedisError):
                self.redis.set(marker_key, str(exc).encode()[:500], ex=ttl)
            if shared:  # the old keys stay when a refresh fails
                return self._parse(issuer, shared)
            raise
        try:
            pipe = self.redis.pipeline()
            pipe.set(document_key, document)
            pipe.set(marker_key, b"ok", ex=ttl)
            pipe.execute()
        except redis_module.RedisError as exc:
            log.warning("cannot share the keys of %s in redis: %s", issuer, exc)
        return keys

    @staticmethod
    def _parse(issuer: str, document: bytes | str) -> dict[str, VerificationKey]:
        return parse_jwks(document, f"keys of {issuer}")

    def _load(self, issuer: str) -> bytes:
        """The JWKS document of `issuer` from its configured source, or discovery."""
        self.fetches += 1
        source = self.sources.get(issuer)
        if source is not None and not source.startswith("https://"):
            # At most what a fetched document may hold (a file replaced by a huge one,
            # or a device, is not read whole); never through a link out of the tree
            # (`tppolicy.readers.source`: checked at start, and again on each refresh).
            found = outside_link(Path(source))
            if found is not None:
                raise FetchError(f"{source}: a link to {found[1]}, outside the current "
                                 "folder's tree and the link's own folder: not read "
                                 "(name the target's own path)")
            try:
                with Path(source).open("rb") as handle:
                    document = handle.read(DEFAULT_MAX_DOCUMENT + 1)
            except OSError as exc:
                raise FetchError(f"{source}: {exc.strerror or exc}") from None
            if len(document) > DEFAULT_MAX_DOCUMENT:
                raise FetchError(f"{source}: document larger than {DEFAULT_MAX_DOCUMENT} "
                                 "bytes")
            return document
        if source is not None:
            return self._fetch(source)
        return self.load_document(issuer)  # OIDC discovery
