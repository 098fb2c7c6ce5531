"""Several replicas: the replay set and the issuers' keys in a real Redis server."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.tokens import GITHUB, rsa_key
from tppolicy.server import Index, create_app
from tppolicy.server.auth import RedisReplayStore, ServerKeyCache
from tppolicy.token.keys import FetchError

from .conftest import GH_ROW, RedisServer, TestClient, free_port, github_token, write_jwks


@pytest.fixture
def client_of(redis_server: RedisServer) -> Any:
    return redis.Redis.from_url(redis_server.url)


def test_replay_store_set_nx_exat(client_of: redis.Redis) -> None:
    store = RedisReplayStore(client_of, prefix=f"test:{uuid.uuid4()}:")
    expires = int(time.time()) + 100
    assert store.claim("https://issuer/jti-1", expires)
    assert not store.claim("https://issuer/jti-1", expires)
    assert store.claim("https://issuer/jti-2", expires)
    ttl = client_of.ttl(store.prefix + "https://issuer/jti-1")
    assert 95 <= ttl <= 100


def replica(make_index: Any, tmp_path: Path, name: str, url: str, **settings: Any) -> Index:
    index: Index = make_index(db=tmp_path / f"{name}.db", redis=url, **settings)
    index.storage.put_publisher("release", {**GH_ROW, "projects": ["sampleproject"]})
    index.sync(force=True)
    return index


def test_a_token_replayed_against_another_replica_is_refused(
        make_index: Any, tmp_path: Path, redis_server: RedisServer) -> None:
    first = replica(make_index, tmp_path, "a", redis_server.url)
    second = replica(make_index, tmp_path, "b", redis_server.url)
    token = github_token()
    with TestClient(create_app(first)) as a, TestClient(create_app(second)) as b:
        assert a.post("/_/oidc/mint-token", json={"token": token}).status_code == 200
        answer = b.post("/_/oidc/mint-token", json={"token": token})
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["code"] == "invalid-reuse-token"
        # each replica's own SQLite knows nothing of it: Redis made the difference
        assert b.post("/_/oidc/mint-token", json={"token": github_token()}).status_code == 200


def test_one_replicas_key_refresh_serves_the_others(tmp_path: Path,
                                                    client_of: redis.Redis) -> None:
    prefix = f"test:{uuid.uuid4()}:"
    source = write_jwks(tmp_path / "jwks.json", rsa_key())
    a = ServerKeyCache(sources={GITHUB: str(source)}, redis=client_of, prefix=prefix,
                       cooldown=30)
    b = ServerKeyCache(sources={GITHUB: str(tmp_path / "b-cannot-read-this.json")},
                       redis=client_of, prefix=prefix, cooldown=30)
    assert a.get(GITHUB, "rsa-1") is not None
    assert a.fetches == 1
    assert b.get(GITHUB, "rsa-1") is not None  # from Redis: b never reads its source
    assert b.fetches == 0
    assert client_of.get(prefix + GITHUB) == source.read_bytes()


def test_a_failed_refresh_starts_the_shared_cooldown(tmp_path: Path,
                                                     client_of: redis.Redis) -> None:
    prefix = f"test:{uuid.uuid4()}:"
    missing = str(tmp_path / "missing.json")
    a = ServerKeyCache(sources={GITHUB: missing}, redis=client_of, prefix=prefix, cooldown=30)
    b = ServerKeyCache(sources={GITHUB: missing}, redis=client_of, prefix=prefix, cooldown=30)
    with pytest.raises(FetchError, match=r"missing\.json"):
        a.get(GITHUB, "rsa-1")
    with pytest.raises(FetchError, match="the last refresh failed"):
        b.get(GITHUB, "rsa-1")
    assert (a.fetches, b.fetches) == (1, 0)


def test_redis_down_refuses_to_mint_without_a_traceback(make_index: Any, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    index = replica(make_index, tmp_path, "down", f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(index), raise_server_exceptions=False) as client:
        answer = client.post("/_/oidc/mint-token", json={"token": github_token()})
    # An outage is one log line that says what is down, not a traceback.
    failures = [r for r in caplog.records if "mint-token failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is None
    assert "Redis (the replay store) is unavailable" in failures[0].getMessage()
    assert answer.status_code == 503
    assert answer.json()["errors"][0]["code"] == "server-error"
    with index.storage.transaction() as db:
        assert db.execute("SELECT COUNT(*) FROM credentials").fetchone() == (0,)
