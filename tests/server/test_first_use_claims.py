"""A token's jti claim on the exchanges that write more than a credential: a pending
publisher's first use (the project is created) and trust on first use (the publisher
learns). The claim is committed before those writes; when the exchange then mints
nothing (the credential cannot be stored, or the first use is refused) the claim is
taken back, as on the usual path (`Storage.mint_scope`): the token stays usable.

With the SQLite replay set and with a real redis-server; the storage failure is real
(a trigger refusing every credential row)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tppolicy.server import Index, create_app

from .conftest import GH_ROW, RedisServer, TestClient, fail_credential_writes, github_token

PENDING_ROW = {**GH_ROW, "repository_name": "sampleproject-plugin",
               "workflow_filename": "publish.yaml", "pending_project": "sampleproject-plugin"}
PENDING_CLAIMS: dict[str, Any] = {"repository": "octo-org/sampleproject-plugin",
                  "job_workflow_ref": "octo-org/sampleproject-plugin/.github/workflows/"
                                      "publish.yaml@refs/tags/v1.2.0"}
TOFU_ROW = {**GH_ROW, "trust_on_first_use": True, "projects": ["sampleproject"]}
TOFU_CLAIMS: dict[str, Any] = {"repository_id": "74"}


def _used_jti(index: Index) -> int:
    assert index.storage.path is not None
    with sqlite3.connect(index.storage.path) as db:
        count: int = db.execute("SELECT count(*) FROM used_jti").fetchone()[0]
    return count


@pytest.fixture(params=["sqlite", "redis"])
def replay(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The replay set: the server's database, or a real Redis (its URL)."""
    if request.param == "sqlite":
        yield None
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    yield server.url


def _index(make_index: Any, replay: str | None, row: dict[str, Any]) -> Index:
    settings: dict[str, Any] = {"redis": replay} if replay else {}
    index: Index = make_index(**settings)
    if replay:  # this test's own keys in the shared redis-server
        index.engine.replay.prefix = f"test:{uuid.uuid4()}:"  # type: ignore[attr-defined]
    index.storage.put_publisher("first", {**row, "name": "first"})
    index.sync(force=True)
    return index


def _claimed(index: Index, replay: str | None) -> int:
    """How many token ids are claimed (Redis: under this index's replay prefix)."""
    if replay is None:
        return _used_jti(index)
    prefix: str = index.engine.replay.prefix  # type: ignore[attr-defined]
    client = redis.Redis.from_url(replay)
    try:
        return sum(1 for _ in client.scan_iter(match=prefix + "*"))
    finally:
        client.close()


@pytest.mark.parametrize("kind", ["first-use", "trust-on-first-use"])
def test_a_token_whose_first_use_stored_no_credential_stays_usable(
        make_index: Any, replay: str | None, kind: str) -> None:
    row, claims = (PENDING_ROW, PENDING_CLAIMS) if kind == "first-use" else (
        TOFU_ROW, TOFU_CLAIMS)
    index = _index(make_index, replay, row)
    token = github_token(**claims, jti=str(uuid.uuid4()))
    fail_credential_writes(index, True)
    with TestClient(create_app(index)) as client:
        answer = client.post("/_/oidc/mint-token", json={"token": token})
        assert answer.status_code == 503, answer.text
        assert _claimed(index, replay) == 0  # minted nothing: the claim was taken back
        fail_credential_writes(index, False)
        answer = client.post("/_/oidc/mint-token", json={"token": token})
        assert answer.status_code == 200, answer.text
        assert _claimed(index, replay) == 1
        again = client.post("/_/oidc/mint-token", json={"token": token})
        assert again.json()["errors"][0]["code"] == "invalid-reuse-token"


def test_a_refused_first_use_leaves_no_claim(make_index: Any, replay: str | None) -> None:
    """The project exists already: the first use is refused (invalid-pending-publisher)
    and nothing was minted, so the token's id is not kept as used (PyPI claims it only
    once a publisher may mint)."""
    index = _index(make_index, replay, PENDING_ROW)
    index.storage.create_project("sampleproject-plugin", created_by="someone-else")
    with TestClient(create_app(index)) as client:
        answer = client.post("/_/oidc/mint-token",
                             json={"token": github_token(**PENDING_CLAIMS)})
        assert answer.json()["errors"][0]["code"] == "invalid-pending-publisher", answer.text
    assert _claimed(index, replay) == 0


def test_a_refused_trust_on_first_use_leaves_no_claim(make_index: Any,
                                                      replay: str | None) -> None:
    """Another token taught the publisher first; this one disagrees: refused, no claim."""
    index = _index(make_index, replay, TOFU_ROW)
    stale = make_index(**({"redis": replay} if replay else {}), reload_interval=3600)
    if replay:
        stale.engine.replay.prefix = index.engine.replay.prefix  # type: ignore[attr-defined]
    with TestClient(create_app(index)) as client:
        assert client.post("/_/oidc/mint-token",
                           json={"token": github_token(**TOFU_CLAIMS)}).status_code == 200
    with TestClient(create_app(stale)) as client:  # still holds the unlearned publisher
        answer = client.post("/_/oidc/mint-token",
                             json={"token": github_token(repository_id="99999")})
        assert answer.status_code == 422, answer.text
        assert "learned '74'" in answer.json()["errors"][0]["description"]
    assert _claimed(index, replay) == 1  # the first token's only


def _fail_pg_credential_writes(url: str, on: bool) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        if on:
            db.execute("CREATE FUNCTION refuse_credentials() RETURNS trigger AS $$ BEGIN "
                       "RAISE EXCEPTION 'the disk is full'; END $$ LANGUAGE plpgsql")
            db.execute("CREATE TRIGGER refuse_credentials BEFORE INSERT ON credentials "
                       "FOR EACH ROW EXECUTE FUNCTION refuse_credentials()")
        else:
            db.execute("DROP TRIGGER refuse_credentials ON credentials")


@pytest.mark.parametrize("kind", ["first-use", "trust-on-first-use"])
def test_on_postgresql_a_token_whose_first_use_stored_no_credential_stays_usable(
        make_index: Any, pg_url: str, tmp_path: Any, kind: str) -> None:
    """The same with the token ids in PostgreSQL (the server's database, replicas on
    several hosts)."""
    row, claims = (PENDING_ROW, PENDING_CLAIMS) if kind == "first-use" else (
        TOFU_ROW, TOFU_CLAIMS)
    index: Index = make_index(db=pg_url, files=tmp_path / "files")
    index.storage.put_publisher("first", {**row, "name": "first"})
    index.sync(force=True)
    token = github_token(**claims)
    _fail_pg_credential_writes(pg_url, True)
    with TestClient(create_app(index)) as client:
        answer = client.post("/_/oidc/mint-token", json={"token": token})
        assert answer.status_code == 503, answer.text
        assert index.storage.database.query("SELECT key FROM used_jti") == []
        _fail_pg_credential_writes(pg_url, False)
        answer = client.post("/_/oidc/mint-token", json={"token": token})
        assert answer.status_code == 200, answer.text
        again = client.post("/_/oidc/mint-token", json={"token": token})
        assert again.json()["errors"][0]["code"] == "invalid-reuse-token"
