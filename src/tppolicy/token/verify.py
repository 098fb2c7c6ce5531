"""Verifying a compact JWT as strictly as PyPI does, and faster.

Keys are read once per JWKS (`keys`); RSA signatures are checked by cryptography
directly, others by PyJWT's algorithm objects. The compact form is parsed here,
strictly and once: three base64url segments (no padding), JSON objects (no NaN, UTF-8
only; a header naming a parameter twice is refused, a claim named twice counts once,
its last value, as PyPI's JSON reader takes it). Every refusal is a `TokenError` with
a stable code (see `CODES`).

The usual token takes one straight path in `Verifier.verify`: taken apart in one call
(`split_usual`: the segments, their base64url, the claims' JSON, the signing input), the
last header's verdict reused, the registered claims tested in one call
(`registered_usual`); both are C functions when the install compiled
`tppolicy/token/_compact.c`, which give the same answers or hand the token back. Anything
unusual goes to the careful functions, which say what is wrong.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import math
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

import orjson
import pybase64
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from jwt.algorithms import get_default_algorithms
from orjson import loads
from pybase64 import b64decode

from tppolicy.language.ops import describe_type
from tppolicy.limits import (
    DEFAULT_LEEWAY,
    MAX_CLAIMS_NESTING,
    MAX_TIMESTAMP,
    MAX_TOKEN_BYTES,
    MAX_TOKEN_LIFETIME,
)
from tppolicy.native import EXTENSION_WANTED
from tppolicy.readers.claims import nested_too_deeply
from tppolicy.text import show
from tppolicy.token.keys import FetchError, KeyCache
from tppolicy.token.refusal import CODES as CODES
from tppolicy.token.refusal import TokenError as TokenError

_FORBIDDEN_HEADERS = ("jwk", "jku", "x5u", "x5c")
_ALGORITHMS = get_default_algorithms()
_PADDING = ("", "", "==", "=")
_RSA_HASHES = {"RS256": hashes.SHA256(), "RS384": hashes.SHA384(), "RS512": hashes.SHA512()}
_PKCS1V15 = padding.PKCS1v15()


class VerifiedToken(NamedTuple):
    """A token whose signature, header and registered claims passed: its JOSE header, its
    claims, the issuer and the name of the provider that issuer selects."""

    header: Mapping[str, Any]
    claims: dict[str, Any]
    issuer: str
    provider: str


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the name {key!r} appears twice")
            seen.add(key)
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode(segment: str, what: str) -> bytes:
    """Unpadded base64url → bytes. '+', '/' and '=' were refused for the whole token, so
    the alphabet check of `validate=True` is exactly base64url's."""
    if not segment:
        raise TokenError("malformed", f"the {what} segment is empty")
    if len(segment) % 4 == 1:
        raise TokenError("malformed", f"the {what} segment is not valid base64url (bad length)")
    try:
        return pybase64.b64decode(segment + _PADDING[len(segment) % 4], altchars=b"-_",
                                  validate=True)
    except (binascii.Error, ValueError):
        raise TokenError("malformed", f"the {what} segment is not unpadded base64url") from None


def _object(raw: bytes, what: str) -> dict[str, Any]:
    """Strict JSON: UTF-8 only, no NaN/Infinity, no lone surrogates (orjson)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TokenError("malformed", f"the {what} is not valid JSON: {exc}") from None
    if value.__class__ is not dict:
        raise TokenError("malformed", f"the {what} is {describe_type(value)}, not a JSON object")
    if nested_too_deeply(value):
        raise TokenError("malformed", f"arrays and objects in the {what} nest more than "
                                      f"{MAX_CLAIMS_NESTING} levels deep")
    return value


class _Header:
    """A header segment, parsed and judged once: its alg and kid, or why it is refused.
    (Slots, not a named tuple: each token reads four of them, and a slot is read by the
    interpreter's specialised instruction; a named tuple's field is a descriptor call.)"""

    __slots__ = ("alg", "fields", "kid", "refusal", "rsa_hash")

    def __init__(self, fields: Mapping[str, Any], alg: str, kid: str,
                 refusal: tuple[str, str, Any] | None, rsa_hash: Any) -> None:
        self.fields = fields
        self.alg = alg
        self.kid = kid
        self.refusal = refusal  # (code, message, actual)
        self.rsa_hash = rsa_hash  # the hash of an RS256/384/512 signature (None: others)


_HEADER_CACHE: dict[str, _Header] = {}
_HEADER_CACHE_SIZE = 1024


def _judge_header(segment: str) -> _Header:
    raw = _decode(segment, "header")
    # Small and parsed once per distinct header, twice: orjson is the claims' strict reader
    # (no lone surrogates, no number overflowing to infinity: json.loads took both, and
    # printing such a header failed), json.loads refuses a name given twice.
    _object(raw, "header")
    try:
        fields = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys,
                            parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise TokenError("malformed", f"the header is not valid JSON: {exc}") from None
    alg, kid = fields.get("alg"), fields.get("kid")
    refusal: tuple[str, str, Any] | None = None
    embedded = [name for name in _FORBIDDEN_HEADERS if name in fields]
    if not isinstance(alg, str):
        refusal = ("bad-header", "the header has no 'alg'", alg)
    elif alg.lower() == "none" or alg.upper().startswith("HS"):
        refusal = ("alg-not-allowed", f"algorithm {alg!r} is never accepted", alg)
    elif embedded:
        refusal = ("forbidden-header", f"the header carries {', '.join(embedded)}: keys come "
                   "from the issuer, never from the token", embedded)
    elif "crit" in fields:
        refusal = ("unknown-crit", "the header has 'crit' extensions, which are not understood",
                   fields["crit"])
    elif not isinstance(kid, str) or not kid:
        refusal = ("bad-header", "the header has no 'kid' (key id)", kid)
    return _Header(MappingProxyType(fields), alg if isinstance(alg, str) else "",
                   kid if isinstance(kid, str) else "", refusal,
                   _RSA_HASHES.get(alg) if isinstance(alg, str) else None)


def _header(segment: str) -> _Header:
    header = _HEADER_CACHE.get(segment)
    if header is None:
        header = _judge_header(segment)
        if len(_HEADER_CACHE) >= _HEADER_CACHE_SIZE:
            _HEADER_CACHE.clear()  # a flood of distinct headers only costs re-parsing
        _HEADER_CACHE[segment] = header
    return header


def _text(token: object, max_bytes: int) -> str:
    """The token as text, its size checked before anything else."""
    if token.__class__ is not str:
        if not isinstance(token, bytes | bytearray):
            raise TokenError("malformed", f"a token is a string, not {describe_type(token)}")
        if len(token) > max_bytes:
            raise TokenError("token-too-large", f"the token has {len(token)} bytes; the limit "
                             f"is {max_bytes}", expected=max_bytes, actual=len(token))
        try:
            token = bytes(token).decode("ascii")
        except UnicodeDecodeError:
            raise TokenError("malformed", "the token is not ASCII") from None
    assert isinstance(token, str)
    if len(token) > max_bytes:
        raise TokenError("token-too-large", f"the token has {len(token)} characters; the "
                         f"limit is {max_bytes}", expected=max_bytes, actual=len(token))
    return token


def _segments(token: object, max_bytes: int) -> tuple[str, str, str]:
    """The three segments of a compact JWT; the size is checked before anything else."""
    token = _text(token, max_bytes)
    first = token.find(".")
    second = token.find(".", first + 1)
    if first < 0 or second < 0 or token.find(".", second + 1) >= 0:
        count = token.count(".") + 1
        raise TokenError("malformed", f"a compact JWT has 3 segments separated by '.'; this "
                         f"has {count}", expected=3, actual=count)
    if "+" in token or "/" in token or "=" in token or not token.isascii():
        raise TokenError("malformed", "the token is not unpadded base64url")
    return token[:first], token[first + 1:second], token[second + 1:]


def split_token(token: object, max_bytes: int = MAX_TOKEN_BYTES
                ) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, claims, signature and signing input of a compact JWT, parsed strictly.
    Nothing is trusted: for display (`tppolicy decode`) and tests."""
    parts = _segments(token, max_bytes)
    header = _header(parts[0])
    claims = _object(_decode(parts[1], "claims"), "claims")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return dict(header.fields), claims, _decode(parts[2], "signature"), signing_input


def _verify_signature(alg: str, key: Any, signature: bytes, signing_input: bytes) -> bool:
    hash_algorithm = _RSA_HASHES.get(alg)
    if hash_algorithm is not None:
        try:
            key.verify(signature, signing_input, _PKCS1V15, hash_algorithm)
        except InvalidSignature:
            return False
        return True
    if alg.startswith("ES"):
        half = len(signature) // 2
        if not signature[:half].strip(b"\0") or not signature[half:].strip(b"\0"):
            return False  # r or s zero
    return bool(_ALGORITHMS[alg].verify(signing_input, key, signature))


def split_usual(token: object, max_bytes: int, loads: Callable[[bytes], Any]
                ) -> tuple[str, bytes, Any, bytes, int] | None:
    """The usual compact JWT taken apart: (header segment, signing input, `loads` of the
    claims, signature, how many "[" and "{" the claims hold), or None for a token of any
    other shape, which `Verifier` reads again step by step. The pure-Python form of
    `tppolicy.token._compact.split` (C), which gives the same or None."""
    if token.__class__ is not str or len(token) > max_bytes:
        return None
    assert isinstance(token, str)
    # Two splits from either end (memrchr and memchr, one argument each: str.find
    # parses its arguments as a tuple, which cost more than the scans)
    signed, dot, tail = token.rpartition(".")
    head, dot, body = signed.partition(".")
    if not dot or "." in body or "+" in token or "/" in token or "=" in token \
            or not token.isascii() or not body or not tail:
        return None
    try:
        # positional arguments: parsing keywords costs as much as decoding the signature
        raw = b64decode(body + _PADDING[len(body) & 3], b"-_", True)
        claims = loads(raw)
        signature = b64decode(tail + _PADDING[len(tail) & 3], b"-_", True)
    except (binascii.Error, ValueError):
        return None
    # Flat claims have no bracket but the first (0x5B is "[": an int is one memchr, where
    # b"[" in raw tries the bytes as an int first; find is memchr, count is not)
    brackets = raw.count(b"[") + raw.count(b"{") if 0x5B in raw or raw.find(b"{", 1) >= 0 \
        else int(raw[:1] == b"{")
    return head, signed.encode("ascii"), claims, signature, brackets


def registered_usual(claims: dict[str, Any], now: float, leeway: float, max_lifetime: float,
                     audience: str) -> bool:
    """Whether the registered claims pass: exp, iat (and nbf, when present) integers, exp
    after `now` (less the leeway), iat and nbf not after it (plus the leeway) nor before
    1970, a lifetime (exp - iat) within `max_lifetime`, aud exactly `audience`, jti and sub
    strings when present. The pure-Python form of `tppolicy.token._compact.registered` (C),
    which gives the same or False (then this one decides)."""
    late = now + leeway
    get = claims.get
    exp, iat, nbf, aud = get("exp"), get("iat"), get("nbf"), get("aud")
    jti, sub = get("jti"), get("sub")
    return (exp.__class__ is int and iat.__class__ is int and now - leeway < exp
            and 0 <= iat <= late and exp - iat <= max_lifetime
            and (nbf is None or (nbf.__class__ is int and 0 <= nbf <= late))
            and aud.__class__ is str and aud == audience
            and (jti is None or jti.__class__ is str)
            and (sub is None or sub.__class__ is str))


_split: Callable[[object, int, Callable[[bytes], Any]],
                 tuple[str, bytes, Any, bytes, int] | None] = split_usual
_registered: Callable[[dict[str, Any], float, float, float, str], bool] = registered_usual
_Usual: Any = None
if EXTENSION_WANTED:
    # compiled at install (hatch_build.py): the same in one call each, about 1 us and
    # 1 us less a token, beside a 19 us RSA verify (bench_outside.py); `Usual` is the
    # whole straight path of `Verifier.verify` in one call
    with contextlib.suppress(ImportError):
        from tppolicy.token._compact import Usual as _Usual
        from tppolicy.token._compact import registered as _registered
        from tppolicy.token._compact import split as _split

# The verifier's values its straight path in C holds: setting one makes it anew.
_USUAL_READS = frozenset({"issuers", "algorithms", "keys", "audience", "leeway", "max_bytes",
                          "clock", "max_lifetime"})


def _bad_signature(kid: str) -> None:
    raise TokenError("bad-signature", f"the signature does not verify with key {kid!r}")


class _PolicyLike(Protocol):
    """What `Verifier.for_policy` reads of a policy: its issuers and providers."""

    @property
    def issuers(self) -> Mapping[str, str]: ...

    @property
    def providers(self) -> Mapping[str, Any]: ...


class Verifier:
    """Checks signature, header and registered claims of tokens for known issuers.

    `issuers` maps each trusted `iss` to its provider; `algorithms` gives each
    provider's allow-list (from its provider file). A token living longer than
    `max_lifetime` seconds (`exp - iat`), or with a time outside [0, MAX_TIMESTAMP], is
    refused (code "lifetime"). Thread-safe.
    """

    def __init__(self, *, issuers: Mapping[str, str], algorithms: Mapping[str, tuple[str, ...]],
                 keys: KeyCache, audience: str = "pypi", leeway: float = DEFAULT_LEEWAY,
                 max_bytes: int = MAX_TOKEN_BYTES,
                 clock: Callable[[], float] = time.time,
                 max_lifetime: float = MAX_TOKEN_LIFETIME) -> None:
        if not (math.isfinite(leeway) and leeway >= 0):  # inf accepted any expired token
            raise ValueError(f"leeway must be a finite number of seconds >= 0, got {leeway!r}")
        self.issuers = dict(issuers)
        self.algorithms = {name: frozenset(a for a in algs if a in _ALGORITHMS
                                           and not a.startswith("HS") and a != "none")
                           for name, algs in algorithms.items()}
        self.keys = keys
        self.audience = audience
        self.leeway = leeway
        self.max_bytes = max_bytes
        self.clock = clock
        self.max_lifetime = max_lifetime
        # A segment never holds a ".": the placeholder never matches a token's header.
        self._last_header = (".", _Header(MappingProxyType({}), "", "", ("bad-header", "", None),
                                          None))
        self._usual: Callable[[object], VerifiedToken | None] | None = self._straight_path()

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _USUAL_READS and "_usual" in self.__dict__:
            object.__setattr__(self, "_usual", self._straight_path())

    def _straight_path(self) -> Callable[[object], VerifiedToken | None] | None:
        """`verify`'s straight path in C (`_compact.Usual`) for this verifier's values, or
        None without the module (or for values C does not hold: the Python path then
        takes every token)."""
        if _Usual is None or self.audience.__class__ is not str \
                or self.max_bytes.__class__ is not int or self.issuers.__class__ is not dict:
            return None
        usual = _Usual(self.max_bytes, MAX_CLAIMS_NESTING, True, loads, _HEADER_CACHE,
                       self.issuers, self.algorithms, self.keys.held_keys(), self.keys.get,
                       _PKCS1V15, InvalidSignature, self.clock, self.leeway, self.max_lifetime,
                       self.audience, _bad_signature, self._refuse_claims, VerifiedToken)
        return usual.verify  # type: ignore[no-any-return]

    @classmethod
    def for_policy(cls, policy: _PolicyLike, *, keys: KeyCache, audience: str = "pypi",
                   leeway: float = DEFAULT_LEEWAY, max_bytes: int = MAX_TOKEN_BYTES,
                   clock: Callable[[], float] = time.time,
                   max_lifetime: float = MAX_TOKEN_LIFETIME) -> Verifier:
        """A verifier for a policy's issuers, with its providers' algorithms."""
        algorithms = {name: p.ast.algorithms or ("RS256",) for name, p in policy.providers.items()}
        return cls(issuers=policy.issuers, algorithms=algorithms, keys=keys, audience=audience,
                   leeway=leeway, max_bytes=max_bytes, clock=clock, max_lifetime=max_lifetime)

    def verify(self, token: object) -> VerifiedToken:
        """The token's header and claims, verified; raises `TokenError` otherwise."""
        # The usual token takes the straight path (in C, else below); anything unusual is
        # handed to the careful functions above, which say exactly what is wrong.
        usual = self._usual
        if usual is not None:
            straight = usual(token)
            if straight is not None:
                return straight
        parts = _split(token, self.max_bytes, loads)
        if parts is None:  # not the usual shape: read again, carefully
            parts = self._careful(token)
        head, signing_input, claims, signature, brackets = parts
        if claims.__class__ is not dict or (brackets > MAX_CLAIMS_NESTING
                                            and nested_too_deeply(claims)):
            # A depth can be no more than the brackets opened: most claims need no walk.
            head, signing_input, claims, signature, brackets = self._careful(token)
        last_head, header = self._last_header  # most tokens share the last one's header
        if head != last_head:
            header = _HEADER_CACHE.get(head) or _header(head)
            self._last_header = (head, header)  # one tuple: atomic between threads
        if header.refusal is not None:
            code, message, actual = header.refusal
            raise TokenError(code, message, actual=actual)
        issuer = claims.get("iss")
        if issuer.__class__ is not str:
            raise TokenError("missing-claim" if issuer is None else "bad-claim-type",
                             "the token has no 'iss' string", actual=issuer)
        provider = self.issuers.get(issuer)
        if provider is None:
            known = sorted(self.issuers)
            raise TokenError("unknown-issuer", f"unknown issuer {show(issuer)}: no provider trusts "
                             f"it (known issuers: {', '.join(known)})", expected=known,
                             actual=issuer)
        alg = header.alg
        if alg not in self.algorithms.get(provider, ()):
            allowed = sorted(self.algorithms.get(provider, ()))
            raise TokenError("alg-not-allowed", f"algorithm {alg!r} is not accepted for "
                             f"{provider} (accepted: {', '.join(allowed)})",
                             expected=allowed, actual=alg)
        try:
            key = self.keys.get(issuer, header.kid)
        except FetchError as exc:
            raise TokenError("keys-unavailable", f"the keys of {issuer} cannot be fetched: "
                             f"{exc}") from None
        if key is None:
            raise TokenError("unknown-key", f"unknown key id {header.kid!r} for {issuer}",
                             actual=header.kid)
        if alg not in key.algorithms:
            raise TokenError("key-mismatch", f"key {header.kid!r} ({key.kty}"
                             f"{', alg ' + key.alg if key.alg else ''}) cannot verify {alg}",
                             actual=alg)
        hash_algorithm = header.rsa_hash
        if hash_algorithm is not None:  # RS256 and its kin, without a detour
            try:
                key.key.verify(signature, signing_input, _PKCS1V15, hash_algorithm)
                verified = True
            except InvalidSignature:
                verified = False
        else:
            verified = _verify_signature(alg, key.key, signature, signing_input)
        if not verified:
            _bad_signature(header.kid)
        now = self.clock()
        # The usual token passes these tests at once; the slow path says what is wrong.
        if not _registered(claims, now, self.leeway, self.max_lifetime, self.audience):
            self._refuse_claims(claims, now)
        # tuple.__new__ skips the named tuple's Python-level __new__: 0.3 us a token.
        return tuple.__new__(VerifiedToken, (header.fields, claims, issuer, provider))

    def _careful(self, token: object) -> tuple[str, bytes, dict[str, Any], bytes, int]:
        """The parts `split_usual` gives, read step by step: raises `TokenError` naming
        the first problem (a refused header before its claims), or returns the parts of a
        token of a rarer shape (given as bytes, or with bits set past a segment's last
        byte, which PyPI's reader accepts too)."""
        head, body, tail = _segments(token, self.max_bytes)
        refusal = _header(head).refusal
        if refusal is not None:
            raise TokenError(refusal[0], refusal[1], actual=refusal[2])
        claims = _object(_decode(body, "claims"), "claims")
        return head, f"{head}.{body}".encode("ascii"), claims, _decode(tail, "signature"), 0

    def _refuse_claims(self, claims: dict[str, Any], now: float) -> None:
        """Raise `TokenError` saying what is wrong with the registered claims; return when
        they pass after all (the C test leaves numbers past 2^52 to this one)."""
        if registered_usual(claims, now, self.leeway, self.max_lifetime, self.audience):
            return
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        for name, value, required in (("exp", exp, True), ("iat", iat, True),
                                      ("nbf", nbf, False)):
            if value is None:
                if required:
                    raise TokenError("missing-claim", f"the token has no '{name}' claim")
            elif value.__class__ is not int:
                raise TokenError("bad-claim-type", f"'{name}' is {describe_type(value)}, "
                                 "expected an integer (seconds since 1970)", actual=value)
        assert isinstance(exp, int)
        assert isinstance(iat, int)
        for name, value in (("exp", exp), ("iat", iat), ("nbf", nbf)):
            if value is not None and not 0 <= value <= MAX_TIMESTAMP:
                raise TokenError("lifetime", f"'{name}' is {value}, outside the range of "
                                 f"times a token can have (0 to {MAX_TIMESTAMP})",
                                 expected=f"0 <= {name} <= {MAX_TIMESTAMP}", actual=value)
        if exp - iat > self.max_lifetime:
            raise TokenError("lifetime", f"the token claims to live {_ago(exp - iat)} (exp - "
                             f"iat); no provider issues tokens living longer than "
                             f"{_ago(self.max_lifetime)}", expected=f"exp - iat <= "
                             f"{self.max_lifetime:g}", actual=exp - iat)
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
        raise AssertionError("claims refused without a reason")  # pragma: no cover


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
