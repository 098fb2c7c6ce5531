"""Operating the index: its log lines (text and JSON, never a token or a credential),
the health endpoint, Prometheus metrics, the mint-token rate limit."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import ssl
from pathlib import Path
from typing import Any

import pytest

from tests.tokens import GITHUB, rsa_key
from tppolicy.server import Index, create_app
from tppolicy.server.logs import JsonFormatter, TextFormatter, logging_config, mask
from tppolicy.server.ratelimit import RateLimit, parse_rate

from .conftest import TestClient, github_token
from .test_app import credential, upload, wheel


def metric(text: str, line: str) -> float:
    """The value of one sample line (`name{labels}`) of a Prometheus exposition."""
    for row in text.splitlines():
        if row.startswith(line + " "):
            return float(row.split()[-1])
    raise AssertionError(f"{line} not in:\n{text}")


# ------------------------------------------------------------------ metrics, health
def test_metrics_count_decisions_uploads_and_latency(client: TestClient) -> None:
    token = credential(client)
    assert client.post("/_/oidc/mint-token", json={
        "token": github_token(environment="release")}).status_code == 422
    assert client.post("/_/oidc/mint-token", json={"token": "not a jwt"}).status_code == 422
    assert upload(client, token).status_code == 200
    assert upload(client, token, name="otherproject").status_code == 403
    assert client.post("/legacy/", data={}, auth=("__token__", "nope")).status_code == 403
    answer = client.get("/_/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert metric(text, 'tppolicy_decisions_total{code="allowed",provider="github"}') == 1
    assert metric(text, 'tppolicy_decisions_total{code="invalid-publisher",'
                  'provider="github"}') == 1
    assert metric(text, 'tppolicy_decisions_total{code="invalid-payload",'
                  'provider="unknown"}') == 1
    assert metric(text, 'tppolicy_uploads_total{status="200"}') == 1
    assert metric(text, 'tppolicy_uploads_total{status="403"}') == 2
    assert metric(text, "tppolicy_mint_seconds_count") == 3
    assert metric(text, "tppolicy_upload_seconds_count") == 3
    assert metric(text, "tppolicy_rate_limited_total") == 0


def test_key_fetch_failures_are_counted(make_index: Any, tmp_path: Path) -> None:
    index: Index = make_index(jwks={GITHUB: str(tmp_path / "missing-jwks.json")})
    with TestClient(create_app(index), base_url="http://127.0.0.1") as client:
        answer = client.post("/_/oidc/mint-token", json={"token": github_token(rsa_key())})
        assert answer.status_code == 422
        text = client.get("/_/metrics").text
    assert metric(text, f'tppolicy_key_fetch_failures_total{{issuer="{GITHUB}"}}') == 1
    assert metric(text, 'tppolicy_decisions_total{code="invalid-token",'
                  'provider="github"}') == 1


def test_health(make_index: Any, tmp_path: Path) -> None:
    index: Index = make_index(db=tmp_path / "health" / "index.db")
    with TestClient(create_app(index, reload=False), base_url="http://127.0.0.1") as client:
        assert client.get("/_/health").json() == {"status": "ok"}
        # the database goes: its file becomes a directory sqlite cannot open
        index.storage.close()
        shutil.rmtree(tmp_path / "health")
        (tmp_path / "health" / "index.db").mkdir(parents=True)
        answer = client.get("/_/health")
    assert answer.status_code == 503
    assert answer.json()["status"] == "unavailable"
    assert "database" in answer.json()["problem"]


# ------------------------------------------------------------------ rate limit
def test_mint_token_is_rate_limited_per_address(make_index: Any) -> None:
    index: Index = make_index(mint_rate_limit="2/minute")
    index.storage.put_publisher("release", {"provider": "github",
                                            "repository_owner": "octo-org",
                                            "repository_name": "sampleproject",
                                            "repository_owner_id": "65",
                                            "workflow_filename": "release.yml",
                                            "environment": "pypi", "name": "release",
                                            "projects": ["sampleproject"]})
    index.sync(force=True)
    with TestClient(create_app(index), base_url="http://127.0.0.1") as client:
        for _ in range(2):
            assert client.post("/_/oidc/mint-token",
                               json={"token": github_token()}).status_code == 200
        refused = client.post("/_/oidc/mint-token", json={"token": github_token()})
        legacy = client.post("/_/oidc/github/mint-token", json={"token": github_token()})
        text = client.get("/_/metrics").text
    assert refused.status_code == 429 and legacy.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    [error] = refused.json()["errors"]
    assert error["code"] == "rate-limited"
    assert "too many token requests from testclient: the limit is 2 per 60 s" in \
        error["description"]
    assert metric(text, "tppolicy_rate_limited_total") == 2
    assert metric(text, 'tppolicy_decisions_total{code="allowed",provider="github"}') == 2


def test_rate_limit_window_and_addresses() -> None:
    now = [0.0]
    limit = RateLimit(2, 10, clock=lambda: now[0])
    assert limit.check("a") is None and limit.check("a") is None
    assert limit.check("a") == 10
    assert limit.check("b") is None  # another address has its own budget
    now[0] = 4
    assert limit.check("a") == 6
    now[0] = 10  # both requests of t=0 left the window
    assert limit.check("a") is None and limit.check("a") is None
    assert limit.check("a") == 10
    assert parse_rate("30/minute") == (30, 60)
    assert parse_rate("100 per hour") == (100, 3600)
    assert parse_rate("5/10s") == (5, 10)
    for bad in ("", "30", "0/minute", "x/minute", "30/fortnight"):
        with pytest.raises(ValueError, match=r"COUNT/PERIOD|positive"):
            parse_rate(bad)


def test_cli_refuses_a_bad_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import run_cli

    code, _, err = run_cli(capsys, "serve", "--db", str(tmp_path / "x.db"),
                           "--mint-rate-limit", "lots")
    assert code == 2
    assert "--mint-rate-limit: expected COUNT/PERIOD" in err


# ------------------------------------------------------------------ logs
def test_mask_hides_tokens_and_credentials() -> None:
    token = github_token()
    text = mask(f"got {token} and tpp-{'a' * 43}, and eyJ-not-a-token")
    assert token not in text and "tpp-aaaa" not in text
    assert text == "got [token] and [credential], and eyJ-not-a-token"


def test_formatters() -> None:
    record = logging.LogRecord("tppolicy.server", logging.INFO, __file__, 1,
                               "mint %s: %s", ("allowed", "tpp-" + "x" * 30), None)
    record.__dict__.update({"event": "mint", "code": "allowed", "publisher": "release"})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "info" and entry["logger"] == "tppolicy.server"
    assert entry["message"] == "mint allowed: [credential]"
    assert (entry["event"], entry["code"], entry["publisher"]) == ("mint", "allowed", "release")
    assert entry["time"].endswith("Z")
    line = TextFormatter().format(record)
    assert line.endswith(" INFO tppolicy.server: mint allowed: [credential]")
    config = logging_config("debug", "json")
    assert config["loggers"]["tppolicy"]["level"] == "DEBUG"
    with pytest.raises(ValueError, match="log format"):
        logging_config("info", "xml")


@pytest.mark.e2e
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_the_server_logs_every_decision_without_secrets(server_process: Any, fmt: str) -> None:
    import httpx

    server = server_process("--log-level", "info", "--log-format", fmt)
    token = github_token()
    status, minted = server.mint(token)
    assert status == 200, minted
    refused_token = github_token(environment="release")
    status, _ = server.mint(refused_token)
    assert status == 422
    filename, data = wheel()
    fields = {":action": "file_upload", "protocol_version": "1", "name": "sampleproject",
              "version": "1.0", "filetype": "bdist_wheel",
              "sha256_digest": hashlib.sha256(data).hexdigest()}
    with httpx.Client(verify=ssl.create_default_context(cafile=str(server.tls.ca))) as http:
        answer = http.post(server.url + "/legacy/", data=fields,
                           files={"content": (filename, data)},
                           auth=("__token__", minted["token"]))
        assert answer.status_code == 200, answer.text
        answer = http.post(server.url + "/legacy/", data={**fields, "name": "otherproject"},
                           files={"content": ("otherproject-1.0-py3-none-any.whl", data)},
                           auth=("__token__", minted["token"]))
        assert answer.status_code == 403
    server.stop()
    log = server.log.read_text()
    for secret in (token, refused_token, minted["token"], token.split(".")[1]):
        assert secret not in log
    if fmt == "text":
        assert "INFO tppolicy.server: mint allowed: publisher sampleproject-github, " \
            "provider github" in log
        assert "INFO tppolicy.server: mint invalid-publisher: publisher " \
            "sampleproject-github, provider github" in log
        assert "upload accepted: sampleproject-1.0-py3-none-any.whl by publisher " \
            "sampleproject-github" in log
        assert '"POST /legacy/ HTTP/1.1" 200' in log  # uvicorn's access log, same handler
        return
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    events = [(e.get("event"), e.get("code"), e.get("publisher")) for e in entries
              if e["logger"] == "tppolicy.server"]
    assert ("mint", "allowed", "sampleproject-github") in events
    assert ("mint", "invalid-publisher", "sampleproject-github") in events
    assert ("upload", 200, "sampleproject-github") in events
    assert ("upload", 403, "sampleproject-github") in events
    assert any(e["logger"] == "uvicorn.access" for e in entries)
    assert any(e["logger"] == "uvicorn.error" for e in entries)  # "Application startup"
