"""Real keys and real signed tokens for the tests (RSA 2048 and P-256)."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

GITHUB = "https://token.actions.githubusercontent.com"


def b64url(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Any  # a cryptography private key
    alg: str

    @property
    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.algorithms.RSAAlgorithm if self.alg.startswith("RS") else \
            jwt.algorithms.ECAlgorithm
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        jwk.update(kid=self.kid, use="sig", alg=self.alg)
        return jwk

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        headers = {"kid": self.kid, **header}
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=headers)


@cache
def rsa_key(kid: str = "rsa-1", bits: int = 2048) -> SigningKey:
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=bits), "RS256")


@cache
def ec_key(kid: str = "ec-1") -> SigningKey:
    return SigningKey(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [key.public_jwk for key in keys]}


def fresh(claims: dict[str, Any], now: int | None = None, lifetime: int = 300) -> dict[str, Any]:
    """`claims` with iat/nbf/exp around now, as a CI would issue them."""
    now = int(time.time()) if now is None else now
    return {**claims, "iat": now, "nbf": now, "exp": now + lifetime}


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"x") -> str:
    """A token built by hand, for hostile shapes PyJWT would not produce."""
    return ".".join((b64url(json.dumps(header)), b64url(json.dumps(claims)), b64url(signature)))
