"""Registering a custom issuer (`--issuer`, `serve ... issuers add`): an issuer is an https
URL naming a host, and a provider's built-in issuer cannot be registered for another
provider (GitHub's issuer registered for gitlab was accepted: the CLI ignored it, the
server's verifier took it for gitlab while its decisions stayed GitHub's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import EXAMPLES, run_cli

PUBLISHERS = str(EXAMPLES / "publishers.yaml")
CLAIMS = str(EXAMPLES / "claims" / "github-release.json")
GITHUB = "https://token.actions.githubusercontent.com"

BAD = {
    "built-in of another": (GITHUB, "the built-in issuer of provider 'github'"),
    "no host": ("https://", "an https URL naming a host"),
    "a space": ("https://gitlab.example.com x", "an https URL naming a host"),
    "a control": ("https://gitlab.example.com\x00", "an https URL naming a host"),
    # no token matches it: `iss` is compared exactly (OpenID Connect Discovery 1.0 §4.3),
    # and GitLab's `iss` is its instance URL without one
    "a trailing slash": ("https://gitlab.example.com/", "drop the trailing '/'"),
    "a path's trailing slash": ("https://example.com/gitlab/", "drop the trailing '/'"),
    "a query": ("https://gitlab.example.com?a=b", "an https URL naming a host"),
    "a fragment": ("https://gitlab.example.com#a", "an https URL naming a host"),
    # what a reader of the issuers list would take for another host or path
    "user information": ("https://token.actions.githubusercontent.com@evil.example",
                         "user information before its host"),
    "a look-alike letter": ("https://gitl\u0430b.example.com", "not in ASCII"),
    "an empty host": ("https://:443", "not a DNS name or an IP address"),
    "a bad port": ("https://gitlab.example.com:99999", "not a DNS name or an IP address"),
    "a port in letters": ("https://gitlab.example.com:https", "not a DNS name"),
    "an underscore host": ("https://gitlab_example.com", "not a DNS name"),
    "a dot-dot segment": ("https://gitlab.example.com/../x", "'.' or '..' segments"),
    "a dot segment": ("https://example.com/./gitlab", "'.' or '..' segments"),
}


@pytest.mark.parametrize("case", BAD)
def test_serve_refuses_a_bad_issuer(case: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    issuer, words = BAD[case]
    db = str(tmp_path / "index.db")
    code, _, err = run_cli(capsys, "serve", "--db", db, "issuers", "add", issuer, "gitlab")
    assert code == 3, err
    assert words in err
    code, out, _ = run_cli(capsys, "serve", "--db", db, "issuers", "list")
    assert code == 0 and out == ""  # nothing registered


@pytest.mark.parametrize("case", BAD)
def test_check_refuses_a_bad_issuer(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    issuer, words = BAD[case]
    code, _, err = run_cli(capsys, "check", "--publishers", PUBLISHERS, "--claims", CLAIMS,
                           "--issuer", f"{issuer}=gitlab")
    assert code in (2, 3), err
    assert words in err


def test_a_provider_may_name_its_own_issuer(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "serve", "--db", str(tmp_path / "index.db"), "issuers",
                           "add", "https://gitlab.com", "gitlab")
    assert code == 0, err


@pytest.mark.parametrize("issuer", [
    "https://gitlab.example.com", "https://gitlab.example.com:8443",
    "https://gitlab.example.com/gitlab", "https://10.0.0.7", "https://[2001:db8::7]:8443",
    "https://xn--gitlb-2ve.example.com", "https://example.com/a.b/..c",
])
def test_an_issuer_as_instances_write_them_is_registered(
        issuer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "index.db")
    code, _, err = run_cli(capsys, "serve", "--db", db, "issuers", "add", issuer, "gitlab")
    assert code == 0, err
    code, out, _ = run_cli(capsys, "serve", "--db", db, "issuers", "list")
    assert code == 0 and out == f"{issuer}\tgitlab\n"
