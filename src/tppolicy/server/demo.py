"""`tppolicy serve --demo`: a first try in two minutes, NOT FOR PRODUCTION.

The demo index carries its own test issuer on the same port. At start it makes, in a
fresh directory:

* an RSA signing key, whose public JWKS the index trusts for GitHub's issuer
  (`https://token.actions.githubusercontent.com`): tokens the demo signs pass as
  GitHub's, so anyone who can reach the port can publish;
* a CA and an HTTPS certificate for 127.0.0.1 and localhost (uv reaches the token
  endpoints over HTTPS only), the CA written to `ca.pem` for `SSL_CERT_FILE`;
* the database, with one publisher (`demo.json`: octo-org/sampleproject's release
  workflow may publish `sampleproject`).

`GET /_/demo/token?api-version=2.0&audience=AUD` answers as GitHub's
`ACTIONS_ID_TOKEN_REQUEST_URL` does: `{"value": <a signed token>}` with the claims of
`demo.json`, fresh times and `jti`; any other query parameter replaces the claim of
that name (`&environment=release` shows a refusal). So `uv publish
--trusted-publishing always` with `GITHUB_ACTIONS=true` and the two `ACTIONS_ID_TOKEN_*`
variables pointing at the demo runs the whole exchange.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
TOKEN_PATH = "/_/demo/token"
KEY_ID = "tppolicy-demo"
TOKEN_LIFETIME = 300
BANNER = ("*** tppolicy serve --demo: NOT FOR PRODUCTION. A built-in test issuer signs "
          "tokens that pass as GitHub's; anyone who reaches this port can publish. ***")


def demo_data() -> dict[str, Any]:
    """The publisher and the claims of `demo.json`."""
    text = resources.files(__package__ or "tppolicy.server").joinpath("demo.json").read_text(
        encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@dataclass
class Demo:
    """The demo's key, certificate files and token endpoint."""

    directory: Path
    jwks: Path
    ca: Path
    cert: Path
    key: Path
    signing_key: Any
    claims: dict[str, Any]
    publisher: dict[str, Any]

    @classmethod
    def create(cls, directory: Path) -> Demo:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from jwt.algorithms import RSAAlgorithm

        directory.mkdir(parents=True, exist_ok=True)
        signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
        public.update({"kid": KEY_ID, "alg": "RS256", "use": "sig"})
        jwks = directory / "demo-jwks.json"
        jwks.write_text(json.dumps({"keys": [public]}), encoding="utf-8")
        ca, cert, key = _tls_files(directory)
        data = demo_data()
        return cls(directory, jwks, ca, cert, key, signing_key, dict(data["claims"]),
                   dict(data["publisher"]))

    def token(self, audience: str, changes: dict[str, str] | None = None) -> str:
        import jwt

        now = int(time.time())
        claims = {**self.claims, **(changes or {}), "aud": audience, "iat": now,
                  "nbf": now, "exp": now + TOKEN_LIFETIME, "jti": str(uuid.uuid4())}
        return jwt.encode(claims, self.signing_key, algorithm="RS256",
                          headers={"kid": KEY_ID})

    def instructions(self, url: str) -> str:
        """What to run in another terminal: the README shows the same lines (for
        https://127.0.0.1:8000), the test runs the printed ones."""
        return "\n".join([
            BANNER,
            "In another terminal, from a project named sampleproject with its "
            "distributions in dist/:",
            f"  export TPPOLICY_DEMO={self.directory}",
            "  export SSL_CERT_FILE=$TPPOLICY_DEMO/ca.pem GITHUB_ACTIONS=true "
            f"ACTIONS_ID_TOKEN_REQUEST_URL='{url}{TOKEN_PATH}?api-version=2.0' "
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN=demo",
            f"  uv publish --trusted-publishing always --publish-url {url}/legacy/ dist/*",
            f"  pip install --index-url {url}/simple/ --cert $TPPOLICY_DEMO/ca.pem "
            "sampleproject",
            ""])


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1 and localhost signed by it (one day)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                            "tppolicy demo CA (not for production)")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    usage = {"content_commitment": False, "key_encipherment": False,
             "data_encipherment": False, "key_agreement": False, "encipher_only": False,
             "decipher_only": False}
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True,
                                            crl_sign=True, **usage), critical=True)
               .add_extension(ca_ski, critical=False)
               .sign(ca_key, hashes.SHA256()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False,
                                     crl_sign=False, **usage), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256()))
    ca, cert, key = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(server_key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    os.chmod(key, 0o600)
    return ca, cert, key
