"""A refused token: `TokenError` and its stable codes.

Apart from `tppolicy.token.verify` (which imports cryptography and PyJWT) so that the
deciding core can catch a refusal without importing the verifier on every check.
"""

from __future__ import annotations

from typing import Any

from tppolicy.errors import Diagnostic, TppolicyError

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
    "lifetime": "'exp' minus 'iat' is longer than any provider's tokens live, or a time is "
                "out of range",
    "audience": "'aud' is not the single string expected",
    "replayed": "the token's 'jti' was already used",
}


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
