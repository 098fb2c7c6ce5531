"""Tokens verified end to end with keys fetched from a real HTTPS server on 127.0.0.1.

A self-managed GitLab is the issuer: `https://127.0.0.1:PORT`, registered for the
`gitlab` provider, serves its discovery and JWKS documents from
`tests.jwks_server.JwksServer`. `Policy.evaluate_token` and `tppolicy check --token`
(as a subprocess trusting the test CA through SSL_CERT_FILE) decide on tokens signed
by keys generated in the tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import tppolicy
from tppolicy.token.keys import HttpFetcher, KeyCache
from tppolicy.token.verify import Verifier

from .conftest import ROOT, Clock, load_claims
from .jwks_server import (
    DISCOVERY_PATH,
    FETCH_TIMEOUT,
    JWKS_PATH,
    JwksServer,
    TlsFiles,
    raw_reply,
)
from .tokens import SigningKey, ec_key, fresh, jwks, rsa_key

pytest_plugins = ("tests.jwks_server",)

COOLDOWN = 60.0
PUBLISHER = "sampleproject-selfhosted"


def publishers_text(issuer: str, provider: str = "gitlab") -> str:
    return f"""\
publishers:
  - name: {PUBLISHER}
    provider: {provider}
    projects: [sampleproject]
    namespace: octo-group/python
    project: sampleproject
    workflow_filepath: ci/release.yml
    environment: production
    issuer_url: {issuer}
"""


def compile_policy(issuer: str, provider: str = "gitlab",
                   providers: dict[str, tppolicy.Provider] | None = None) -> tppolicy.Policy:
    return tppolicy.compile_publishers_text(publishers_text(issuer, provider),
                                            providers=providers, issuers={issuer: provider})


def gitlab_claims(issuer: str, **changes: Any) -> dict[str, Any]:
    """examples/claims/gitlab-release.json, issued now by the instance at `issuer`."""
    claims = fresh(load_claims("gitlab-release"))
    host = issuer.removeprefix("https://")
    claims.update(iss=issuer, ci_config_ref_uri=claims["ci_config_ref_uri"].replace(
        "gitlab.com/", f"{host}/", 1))
    claims.update(changes)
    return claims


class Site:
    """A policy for one issuer, and a verifier whose keys come over HTTPS."""

    def __init__(self, fetch: HttpFetcher, issuer: str, provider: str = "gitlab",
                 providers: dict[str, tppolicy.Provider] | None = None) -> None:
        self.issuer = issuer
        self.clock = Clock()
        self.policy = compile_policy(issuer, provider, providers)
        self.keys = KeyCache(fetch=fetch, cooldown=COOLDOWN, clock=self.clock)
        self.verifier = Verifier.for_policy(self.policy, keys=self.keys)

    def token(self, key: SigningKey, **changes: Any) -> str:
        return key.sign(gitlab_claims(self.issuer, **changes))

    def decide(self, token: str) -> tppolicy.Decision:
        return self.policy.evaluate_token(token, self.verifier)


def refused(decision: tppolicy.Decision) -> str | None:
    """The code of a refused token (None if the token was not refused)."""
    assert not decision.allowed
    reason = decision.reasons[0]
    return reason.code if reason.rule == "token" else None


def counts(server: JwksServer) -> tuple[int, int]:
    return server.requests(DISCOVERY_PATH), server.requests(JWKS_PATH)


def test_claims_fit_the_publisher(jwks_server: JwksServer) -> None:
    # The same claims, undecoded: the publisher matches (so the token tests test keys).
    claims = gitlab_claims(jwks_server.url)
    assert claims["ci_config_ref_uri"].startswith(f"127.0.0.1:{jwks_server.port}/octo-group/")
    decision = compile_policy(jwks_server.url).evaluate(claims)
    assert decision.allowed, decision.reasons


def test_a_token_verified_with_fetched_keys_is_allowed(jwks_server: JwksServer) -> None:
    site = Site(jwks_server.fetcher(), jwks_server.url)
    decision = site.decide(site.token(rsa_key()))
    assert decision.allowed, decision.reasons
    assert (decision.publisher, decision.provider, decision.issuer) == (
        PUBLISHER, "gitlab", jwks_server.url)
    assert counts(jwks_server) == (1, 1)
    for _ in range(3):  # the keys are cached
        assert site.decide(site.token(rsa_key())).allowed
    assert counts(jwks_server) == (1, 1)


def test_a_token_from_another_key_is_refused(jwks_server: JwksServer) -> None:
    site = Site(jwks_server.fetcher(), jwks_server.url)
    impostor = SigningKey("rsa-1", rsa_key("impostor").private, "RS256")
    assert refused(site.decide(site.token(impostor))) == "bad-signature"


def test_key_rotation_mid_run(jwks_server: JwksServer) -> None:
    old, new = rsa_key("rsa-1"), rsa_key("rsa-2")
    jwks_server.set_jwks(jwks(old))
    site = Site(jwks_server.fetcher(), jwks_server.url)
    assert site.decide(site.token(old)).allowed
    jwks_server.set_jwks(jwks(new))  # the instance rotates its signing key
    site.clock.advance(COOLDOWN / 2)
    # Within the cooldown of the last fetch the new kid is not looked up yet.
    assert refused(site.decide(site.token(new))) == "unknown-key"
    assert counts(jwks_server) == (1, 1)
    site.clock.advance(COOLDOWN / 2)
    decision = site.decide(site.token(new))  # one refresh, and the new key verifies
    assert decision.allowed, decision.reasons
    assert counts(jwks_server) == (2, 2)
    assert refused(site.decide(site.token(old))) == "unknown-key"  # the old key is gone
    assert site.decide(site.token(new)).allowed
    assert counts(jwks_server) == (2, 2)


def test_overlapping_rotation_accepts_both_keys(jwks_server: JwksServer) -> None:
    old, new = rsa_key("rsa-1"), rsa_key("rsa-2")
    jwks_server.set_jwks(jwks(old))
    site = Site(jwks_server.fetcher(), jwks_server.url)
    assert site.decide(site.token(old)).allowed
    jwks_server.set_jwks(jwks(old, new))  # the new key is published before it is used
    site.clock.advance(COOLDOWN)
    assert site.decide(site.token(new)).allowed
    assert site.decide(site.token(old)).allowed
    assert counts(jwks_server) == (2, 2)


def test_server_down_without_cached_keys_is_keys_unavailable(down_url: str,
                                                              tls_files: TlsFiles) -> None:
    fetch = HttpFetcher(timeout=FETCH_TIMEOUT, ssl_context=tls_files.client_context())
    site = Site(fetch, down_url)
    for _ in range(2):  # fetched, then the failure's cooldown: refused at once both times
        start = time.monotonic()
        decision = site.decide(site.token(rsa_key()))
        assert time.monotonic() - start < FETCH_TIMEOUT
        assert refused(decision) == "keys-unavailable"
        assert down_url in decision.reasons[0].message
        assert decision.publisher is None


def test_server_down_after_keys_were_cached_still_allows(fresh_jwks_server: JwksServer) -> None:
    server = fresh_jwks_server
    site = Site(server.fetcher(), server.url)
    assert site.decide(site.token(rsa_key())).allowed
    server.close()  # the instance goes down; its port refuses connections
    assert not server.running
    for _ in range(3):
        decision = site.decide(site.token(rsa_key()))
        assert decision.allowed, decision.reasons
    site.clock.advance(COOLDOWN)
    start = time.monotonic()
    # An unknown kid tries a refresh, which fails: the kid is unknown, the keys stay.
    assert refused(site.decide(site.token(rsa_key("rsa-2")))) == "unknown-key"
    assert time.monotonic() - start < FETCH_TIMEOUT
    assert site.decide(site.token(rsa_key())).allowed


def test_gitlab_accepts_only_rs256(jwks_server: JwksServer) -> None:
    site = Site(jwks_server.fetcher(), jwks_server.url)
    decision = site.decide(site.token(ec_key()))
    assert refused(decision) == "alg-not-allowed"
    assert "RS256" in decision.reasons[0].message
    assert jwks_server.requests() == 0  # refused before any key is fetched


def test_a_malformed_key_beside_the_signing_key_is_ignored(jwks_server: JwksServer) -> None:
    bad = {"kty": "EC", "kid": "bad", "crv": "P-256", "x": "AA", "y": "AA", "use": "sig"}
    jwks_server.set_jwks({"keys": [bad, rsa_key().public_jwk]})
    site = Site(jwks_server.fetcher(), jwks_server.url)
    decision = site.decide(site.token(rsa_key()))
    assert decision.allowed, decision.reasons


def test_an_issuer_answering_garbage_bytes_is_keys_unavailable(jwks_server: JwksServer) -> None:
    jwks_server.serve(DISCOVERY_PATH, raw_reply(b"SSH-2.0-OpenSSH_9.6\r\n"))
    site = Site(jwks_server.fetcher(), jwks_server.url)
    assert refused(site.decide(site.token(rsa_key()))) == "keys-unavailable"


@pytest.fixture
def es256_providers(tmp_path: Path) -> dict[str, tppolicy.Provider]:
    """A copy of the GitLab provider named gitlab_es that also accepts ES256."""
    text = (ROOT / "policies" / "gitlab.tpp").read_text()
    for old, new in (("provider gitlab {", "provider gitlab_es {"),
                     ('algorithms ["RS256"]', 'algorithms ["RS256", "ES256"]')):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (tmp_path / "gitlab_es.tpp").write_text(text)
    providers = tppolicy.load_providers([tmp_path])
    assert providers["gitlab_es"].ast.algorithms == ("RS256", "ES256")
    return providers


def test_es256_where_the_provider_file_allows_it(
        jwks_server: JwksServer, es256_providers: dict[str, tppolicy.Provider]) -> None:
    site = Site(jwks_server.fetcher(), jwks_server.url, "gitlab_es", es256_providers)
    decision = site.decide(site.token(ec_key()))
    assert decision.allowed, decision.reasons
    assert (decision.publisher, decision.provider) == (PUBLISHER, "gitlab_es")
    assert site.decide(site.token(rsa_key())).allowed  # RS256 still
    assert counts(jwks_server) == (1, 1)
    # A kid naming the RSA key on an ES256 token: the key cannot verify that algorithm.
    mismatched = SigningKey("rsa-1", ec_key().private, "ES256")
    assert refused(site.decide(site.token(mismatched))) == "key-mismatch"


# --------------------------------------------------------------------------- CLI


def run_check(tmp_path: Path, issuer: str, *, ca: Path | None, key: SigningKey | None = None,
              extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    publishers = tmp_path / "publishers.yaml"
    publishers.write_text(publishers_text(issuer))
    token = tmp_path / "token.jwt"
    token.write_text((key or rsa_key()).sign(gitlab_claims(issuer)) + "\n")
    env = {name: value for name, value in os.environ.items()
           if "proxy" not in name.lower() and not name.startswith("SSL_CERT_")}
    if ca is not None:
        env["SSL_CERT_FILE"] = str(ca)
    return subprocess.run(
        [sys.executable, "-m", "tppolicy", "check", "--publishers", str(publishers),
         "--token", str(token), "--issuer", f"{issuer}=gitlab", "--fetch-timeout", "1",
         *extra],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path, check=False)


def test_cli_check_fetches_keys_over_https(tmp_path: Path, jwks_server: JwksServer,
                                           tls_files: TlsFiles) -> None:
    done = run_check(tmp_path, jwks_server.url, ca=tls_files.ca)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"ALLOWED: publisher '{PUBLISHER}' (gitlab)")
    assert counts(jwks_server) == (1, 1)


def test_cli_check_json(tmp_path: Path, jwks_server: JwksServer, tls_files: TlsFiles) -> None:
    done = run_check(tmp_path, jwks_server.url, ca=tls_files.ca, extra=("--format", "json"))
    assert done.returncode == 0, done.stdout + done.stderr
    payload = json.loads(done.stdout)
    assert (payload["allowed"], payload["publisher"], payload["issuer"]) == (
        True, PUBLISHER, jwks_server.url)


def test_cli_check_server_down(tmp_path: Path, down_url: str, tls_files: TlsFiles) -> None:
    done = run_check(tmp_path, down_url, ca=tls_files.ca)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("DENIED: the token was refused")
    assert "[keys-unavailable]" in done.stdout
    assert down_url in done.stdout


def test_cli_check_server_down_json(tmp_path: Path, down_url: str, tls_files: TlsFiles) -> None:
    done = run_check(tmp_path, down_url, ca=tls_files.ca, extra=("--format", "json"))
    assert done.returncode == 1, done.stdout + done.stderr
    payload = json.loads(done.stdout)
    assert payload["allowed"] is False
    assert [r["code"] for r in payload["reasons"]] == ["keys-unavailable"]


def test_cli_check_without_the_ca_is_keys_unavailable(tmp_path: Path,
                                                      jwks_server: JwksServer) -> None:
    # Without SSL_CERT_FILE the system CAs do not trust the server: nothing is fetched.
    done = run_check(tmp_path, jwks_server.url, ca=None)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[keys-unavailable]" in done.stdout
    assert "certificate" in done.stdout
    assert jwks_server.requests() == 0
