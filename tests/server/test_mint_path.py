"""The token exchange's hot path: the jti claim and the credential in one transaction,
and the bare ASGI endpoint that serves it (in process, the real app and database)."""

from __future__ import annotations

import sqlite3
from typing import Any

from tppolicy.server import Index

from .conftest import TestClient, github_token


def _rows(index: Index, table: str) -> int:
    assert index.storage.path is not None
    with sqlite3.connect(index.storage.path) as db:
        count: int = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return count


def _fail_credential_writes(index: Index, on: bool) -> None:
    assert index.storage.path is not None
    with sqlite3.connect(index.storage.path) as db:
        if on:
            db.execute("CREATE TRIGGER refuse_credentials BEFORE INSERT ON credentials "
                       "BEGIN SELECT RAISE(ABORT, 'the disk is full'); END")
        else:
            db.execute("DROP TRIGGER refuse_credentials")


def test_a_credential_that_cannot_be_stored_leaves_the_token_unused(client: TestClient,
                                                                     index: Index) -> None:
    """The claim of the token's jti and the credential commit together: a failure to
    store the credential answers 503, mints nothing, and the token may be retried
    (before, the claim was committed alone and the retry was refused as a reuse)."""
    token = github_token()
    _fail_credential_writes(index, True)
    answer = client.post("/_/oidc/mint-token", json={"token": token})
    assert answer.status_code == 503, answer.text
    assert answer.json()["errors"][0]["code"] == "server-error"
    assert (_rows(index, "used_jti"), _rows(index, "credentials")) == (0, 0)
    _fail_credential_writes(index, False)
    answer = client.post("/_/oidc/mint-token", json={"token": token})
    assert answer.status_code == 200, answer.text
    assert index.storage.credential(answer.json()["token"]) is not None
    assert (_rows(index, "used_jti"), _rows(index, "credentials")) == (1, 1)
    again = client.post("/_/oidc/mint-token", json={"token": token})
    assert again.json()["errors"][0]["code"] == "invalid-reuse-token"
    assert (_rows(index, "used_jti"), _rows(index, "credentials")) == (1, 1)


def test_a_refused_token_writes_nothing(client: TestClient, index: Index) -> None:
    answer = client.post("/_/oidc/mint-token",
                         json={"token": github_token(repository_owner_id="66")})
    assert answer.status_code == 422
    assert (_rows(index, "used_jti"), _rows(index, "credentials")) == (0, 0)


def test_the_mint_endpoint_answers_as_before(client: TestClient) -> None:
    answer = client.post("/_/oidc/github/mint-token", json={"token": github_token()})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert int(answer.headers["content-length"]) == len(answer.content)
    assert client.get("/_/oidc/mint-token").status_code == 405
    chunks: Any = iter([b'{"tok', b'en": "', github_token().encode(), b'"}'])
    answer = client.post("/_/oidc/mint-token", content=chunks)
    assert answer.status_code == 200, answer.text
