"""Verifying a compact JWT as strictly as PyPI does, and faster.

PyJWT's key objects (`PyJWK`) and algorithm objects verify the signature; the
compact form is parsed here, strictly and once: three base64url segments (no
padding), JSON objects without duplicate keys or NaN, UTF-8 only. Every refusal
is a `TokenError` with a stable code (see `CODES`).
"""

from __future__ import annotations

import binascii
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from jwt.algorithms import get_default_algorithms

from ._decision import Decision, RuleResult
from ._errors import Diagnostic, TppolicyError
from ._keys import FetchError, KeyCache
from ._ops import describe_type
from ._replay import ReplayStore

if TYPE_CHECKING:
    from ._evaluate import Policy

MAX_TOKEN_BYTES = 8 * 1024
DEFAULT_LEEWAY = 30
REPLAY_MARGIN = 5  # seconds kept past exp + leeway, as PyPI does

CODES: dict[str, str] = {
    "token-too-large": "the token is longer than the size limit (checked before parsing)",
    "malformed": "not a compact JWT: segments, base64url, UTF-8 or JSON are wrong",
    "bad-header": "the header lacks a usable 'alg' or 'kid'",
    "alg-not-allowed": "'none', an HMAC algorithm, or one the provider file does not list",
    "forbidden-header": "the header embeds or points to a key (jwk, jku, x5u, x5c)",
    "unknown-crit": "the header has a 'crit' parameter; none is understood",
    "unknown-issuer": "'iss' is not a built-in or registered issuer",
    "keys-unavailable": "the issuer's keys could not be fetched and none are cached",
    "unknown-key": "no key of the issuer has the token's 'kid'",
    "key-mismatch": "the key with that 'kid' cannot verify the token's algorithm",
    "bad-signature": "the signature does not verify",
    "missing-claim": "'iss', 'aud', 'exp' or 'iat' is missing",
    "bad-claim-type": "a registered claim has the wrong type",
    "expired": "'exp' is in the past (beyond the leeway)",
    "not-yet-valid": "'nbf' is in the future (beyond the leeway)",
    "issued-in-future": "'iat' is in the future (beyond the leeway)",
    "audience": "'aud' is not the single string expected",
    "replayed": "the token's 'jti' was already used",
}
_FORBIDDEN_HEADERS = ("jwk", "jku", "x5u", "x5c")
_ALGORITHMS = get_default_algorithms()
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_PADDING = ("", "", "==", "=")
# Headers repeat across tokens (one per issuer key): parsed once, kept read-only.
_HEADER_CACHE: dict[str, dict[str, Any]] = {}
_HEADER_CACHE_SIZE = 256
_header_lock = threading.Lock()


class TokenError(TppolicyError):
    """A token was refused. `code` is stable (see `CODES`); the message says why."""

    def __init__(self, code: str, message: str, *, expected: Any = None,
                 actual: Any = None) -> None:
        assert code in CODES, code
        self.code = code
        self.message = message
        self.expected = expected
        self.actual = actual
        super().__init__([Diagnostic(message, hint=None, path=code)])

    def to_reason(self) -> RuleResult:
        return RuleResult("token", False, self.expected, self.actual, self.message, self.code)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    header: Mapping[str, Any]
    claims: dict[str, Any]
    issuer: str
    provider: str


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"the key {duplicate!r} appears twice")
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _segment(segment: str, what: str) -> bytes:
    """Unpadded base64url → bytes; strict: any other character is refused.

    '+', '/' and '=' are refused by the caller for the whole token, so after mapping
    '-_' to '+/' the standard alphabet check of strict mode is exactly base64url's.
    """
    if not segment:
        raise TokenError("malformed", f"the {what} segment is empty")
    padding = _PADDING[len(segment) % 4]
    if len(segment) % 4 == 1:
        raise TokenError("malformed", f"the {what} segment is not valid base64url (bad length)")
    try:
        return binascii.a2b_base64((segment + padding).encode("ascii").translate(_FROM_URLSAFE),
                                   strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise TokenError("malformed", f"the {what} segment is not unpadded base64url") from None


def _object(raw: bytes, what: str) -> dict[str, Any]:
    """Strict JSON: UTF-8 only, no NaN/Infinity, no lone surrogates (orjson)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TokenError("malformed", f"the {what} is not valid JSON: {exc}") from None
    if value.__class__ is not dict:
        raise TokenError("malformed", f"the {what} is {describe_type(value)}, not a JSON object")
    return value


def _header(segment: str) -> dict[str, Any]:
    header = _HEADER_CACHE.get(segment)
    if header is None:
        raw = _segment(segment, "header")
        try:  # the header is small and cached: check it for duplicate names too
            header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys,
                                parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise TokenError("malformed", f"the header is not valid JSON: {exc}") from None
        if header.__class__ is not dict:
            raise TokenError("malformed",
                             f"the header is {describe_type(header)}, not a JSON object")
        with _header_lock:
            if len(_HEADER_CACHE) >= _HEADER_CACHE_SIZE:
                _HEADER_CACHE.clear()
            _HEADER_CACHE[segment] = header
    return header


def split_token(token: object, max_bytes: int = MAX_TOKEN_BYTES
                ) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, claims, signature and signing input of a compact JWT, parsed strictly.
    Nothing is trusted yet."""
    if isinstance(token, bytes | bytearray):
        if len(token) > max_bytes:
            raise TokenError("token-too-large", f"the token has {len(token)} bytes; the limit "
                             f"is {max_bytes}", expected=max_bytes, actual=len(token))
        try:
            token = bytes(token).decode("ascii")
        except UnicodeDecodeError:
            raise TokenError("malformed", "the token is not ASCII") from None
    if not isinstance(token, str):
        raise TokenError("malformed", f"a token is a string, not {describe_type(token)}")
    if len(token) > max_bytes:
        raise TokenError("token-too-large", f"the token has {len(token)} bytes; the limit is "
                         f"{max_bytes}", expected=max_bytes, actual=len(token))
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed", f"a compact JWT has 3 segments separated by '.'; this "
                         f"has {len(parts)}", expected=3, actual=len(parts))
    if "+" in token or "/" in token or "=" in token:
        raise TokenError("malformed", "the token is not unpadded base64url ('+', '/' or '=')")
    header = _header(parts[0])
    claims = _object(_segment(parts[1], "claims"), "claims")
    signature = _segment(parts[2], "signature")
    return dict(header), claims, signature, token[: len(parts[0]) + 1 + len(parts[1])].encode(
        "ascii")


class Verifier:
    """Checks signature, header and registered claims of tokens for known issuers.

    `issuers` maps each trusted `iss` to its provider; `algorithms` gives each
    provider's allow-list (from its provider file). Thread-safe.
    """

    def __init__(self, *, issuers: Mapping[str, str], algorithms: Mapping[str, tuple[str, ...]],
                 keys: KeyCache, audience: str = "pypi", leeway: float = DEFAULT_LEEWAY,
                 max_bytes: int = MAX_TOKEN_BYTES,
                 clock: Callable[[], float] = time.time) -> None:
        self.issuers = dict(issuers)
        self.algorithms = {name: tuple(a for a in algs if a in _ALGORITHMS and
                                       not a.startswith("HS") and a != "none")
                           for name, algs in algorithms.items()}
        self.keys = keys
        self.audience = audience
        self.leeway = leeway
        self.max_bytes = max_bytes
        self.clock = clock

    @classmethod
    def for_policy(cls, policy: Policy, *, keys: KeyCache, audience: str = "pypi",
                   leeway: float = DEFAULT_LEEWAY, max_bytes: int = MAX_TOKEN_BYTES,
                   clock: Callable[[], float] = time.time) -> Verifier:
        algorithms = {name: p.ast.algorithms or ("RS256",) for name, p in policy.providers.items()}
        return cls(issuers=policy.issuers, algorithms=algorithms, keys=keys, audience=audience,
                   leeway=leeway, max_bytes=max_bytes, clock=clock)

    def verify(self, token: object) -> VerifiedToken:
        header, claims, signature, signing_input = split_token(token, self.max_bytes)
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise TokenError("bad-header", "the header has no 'alg'")
        if alg.lower() == "none" or alg.upper().startswith("HS"):
            raise TokenError("alg-not-allowed", f"algorithm {alg!r} is never accepted",
                             actual=alg)
        embedded = [name for name in _FORBIDDEN_HEADERS if name in header]
        if embedded:
            raise TokenError("forbidden-header", f"the header carries {', '.join(embedded)}: "
                             "keys come from the issuer, never from the token", actual=embedded)
        if "crit" in header:
            raise TokenError("unknown-crit", "the header has 'crit' extensions, which are not "
                             "understood", actual=header["crit"])
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("bad-header", "the header has no 'kid' (key id)")
        issuer = claims.get("iss")
        if not isinstance(issuer, str):
            raise TokenError("missing-claim" if issuer is None else "bad-claim-type",
                             "the token has no 'iss' string")
        provider = self.issuers.get(issuer)
        if provider is None:
            raise TokenError("unknown-issuer", f"unknown issuer {issuer!r}",
                             expected=sorted(self.issuers), actual=issuer)
        allowed = self.algorithms.get(provider, ())
        if alg not in allowed:
            raise TokenError("alg-not-allowed", f"algorithm {alg!r} is not accepted for "
                             f"{provider} (accepted: {', '.join(allowed)})",
                             expected=list(allowed), actual=alg)
        try:
            key = self.keys.get(issuer, kid)
        except FetchError as exc:
            raise TokenError("keys-unavailable", f"the keys of {issuer} cannot be fetched: "
                             f"{exc}") from None
        if key is None:
            raise TokenError("unknown-key", f"unknown key id {kid!r} for {issuer}", actual=kid)
        if not key.allows(alg):
            raise TokenError("key-mismatch", f"key {kid!r} ({key.kty}"
                             f"{', alg ' + key.alg if key.alg else ''}) cannot verify {alg}",
                             actual=alg)
        if alg.startswith("ES") and (not signature.strip(b"\0")
                                     or not signature[: len(signature) // 2].strip(b"\0")
                                     or not signature[len(signature) // 2:].strip(b"\0")):
            raise TokenError("bad-signature", "the ECDSA signature has r or s zero")
        if not _ALGORITHMS[alg].verify(signing_input, key.key, signature):
            raise TokenError("bad-signature", f"the signature does not verify with key {kid!r}")
        self._check_claims(claims)
        return VerifiedToken(header, claims, issuer, provider)

    def _check_claims(self, claims: dict[str, Any]) -> None:
        now = self.clock()
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        for name, value, required in (("exp", exp, True), ("iat", iat, True), ("nbf", nbf, False)):
            if value is None:
                if required:
                    raise TokenError("missing-claim", f"the token has no '{name}' claim")
            elif value.__class__ is not int:
                raise TokenError("bad-claim-type", f"'{name}' is {describe_type(value)}, "
                                 "expected an integer (seconds since 1970)", actual=value)
        assert isinstance(exp, int)
        assert isinstance(iat, int)
        if now >= exp + self.leeway:
            raise TokenError("expired", f"the token expired {_ago(now - exp)} ago (leeway "
                             f"{self.leeway:g} s)", expected=f"exp > {int(now - self.leeway)}",
                             actual=exp)
        if iat > now + self.leeway:
            raise TokenError("issued-in-future", f"the token is issued {_ago(iat - now)} in the "
                             f"future (leeway {self.leeway:g} s)", actual=iat)
        if nbf is not None and nbf > now + self.leeway:
            raise TokenError("not-yet-valid", f"the token is not valid for another "
                             f"{_ago(nbf - now)} (leeway {self.leeway:g} s)", actual=nbf)
        audience = claims.get("aud")
        if audience is None:
            raise TokenError("missing-claim", "the token has no 'aud' claim",
                             expected=self.audience)
        if audience.__class__ is not str or audience != self.audience:
            shape = ("a list (a single string is required, as PyPI does)"
                     if isinstance(audience, list) else repr(audience))
            raise TokenError("audience", f"audience {shape} is not {self.audience!r}",
                             expected=self.audience, actual=audience)
        for name in ("jti", "sub"):
            value = claims.get(name)
            if value is not None and value.__class__ is not str:
                raise TokenError("bad-claim-type", f"'{name}' is {describe_type(value)}, "
                                 "expected a string", actual=value)


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def evaluate_token(policy: Policy, token: object, verifier: Verifier,
                   replay: ReplayStore | None = None, explain: bool = False) -> Decision:
    """Verify, then decide; on an allowed decision, claim the `jti` atomically."""
    try:
        verified = verifier.verify(token)
    except TokenError as exc:
        return Decision(False, None, None, (), False, (exc.to_reason(),))
    decision = policy.evaluate(verified.claims, audience=verifier.audience, explain=explain)
    jti = verified.claims.get("jti")
    if decision.allowed and replay is not None and isinstance(jti, str):
        expires = int(verified.claims["exp"] + verifier.leeway + REPLAY_MARGIN)
        if not replay.claim(f"{verified.issuer}/{jti}", expires):
            reason = TokenError("replayed", f"the token was already used (jti {jti!r})",
                                actual=jti).to_reason()
            return Decision(False, decision.provider, None, (), False, (reason,),
                            issuer=verified.issuer)
    return decision
