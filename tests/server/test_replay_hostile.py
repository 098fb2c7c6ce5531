"""Hostile `jti` values at the mint endpoint, with each of the server's replay stores (its
SQL table on SQLite and PostgreSQL, Redis): a refusal (4xx) saying why, never a 5xx, and
nothing written to the store."""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

import pytest

from tppolicy.limits import MAX_JTI_CHARS
from tppolicy.server import Index, create_app

from .conftest import GH_ROW, RedisServer, TestClient, github_token

# 4 000 random letters: PostgreSQL cannot compress them into an index entry (2 704 bytes)
_RANDOM = "".join(random.Random(1).choices(string.ascii_letters + string.digits, k=4000))
HOSTILE = {"over-an-index-entry": _RANDOM, "nul": "a\x00b", "newline": "a\nb",
           "long": "j" * (MAX_JTI_CHARS + 1), "long-non-ascii": "é" * 600}


def mint_all(index: Index) -> None:
    index.storage.put_publisher("release", {**GH_ROW, "projects": ["sampleproject"]})
    index.sync(force=True)
    with TestClient(create_app(index), raise_server_exceptions=False) as client:
        for name, jti in HOSTILE.items():
            answer = client.post("/_/oidc/mint-token", json={"token": github_token(jti=jti)})
            assert answer.status_code == 422, (name, answer.status_code, answer.text)
            [error] = answer.json()["errors"]
            assert error["code"] == "invalid-payload", name
            assert "'jti' claim" in error["description"], name
        # an ordinary one still mints, and is refused when used again
        token = github_token(jti="ordinary")
        assert client.post("/_/oidc/mint-token", json={"token": token}).status_code == 200
        again = client.post("/_/oidc/mint-token", json={"token": token})
        assert again.json()["errors"][0]["code"] == "invalid-reuse-token"


def used_jti(index: Index) -> list[Any]:
    with index.storage.transaction() as db:
        return [row[0] for row in db.execute("SELECT key FROM used_jti").fetchall()]


def test_sqlite_table(make_index: Any) -> None:
    index = make_index()
    mint_all(index)
    assert [key.rsplit("/", 1)[1] for key in used_jti(index)] == ["ordinary"]


def test_postgresql_table(make_index: Any, pg_url: str, tmp_path: Path) -> None:
    # was: a NUL in the jti reached PostgreSQL, which refuses it in text, and a key over
    # 2 704 bytes cannot be indexed: a 503 each
    index = make_index(db=pg_url, files=str(tmp_path / "files"))
    mint_all(index)
    assert [key.rsplit("/", 1)[1] for key in used_jti(index)] == ["ordinary"]


def test_redis(make_index: Any, redis_server: RedisServer, tmp_path: Path) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    for key in client.scan_iter("tppolicy:jti:*ordinary"):
        client.delete(key)
    index = make_index(db=tmp_path / "replica.db", redis=redis_server.url)
    mint_all(index)
    keys = [key.decode() for key in client.scan_iter("tppolicy:jti:*")]
    assert not [key for key in keys if "\x00" in key or len(key) > MAX_JTI_CHARS]
    client.close()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_engine_never_calls_the_store(make_index: Any, name: str) -> None:
    index = make_index()
    calls: list[str] = []
    replay = index.engine.replay

    class Counting:
        def claim(self, key: str, expires_at: int) -> bool:
            calls.append(key)
            return bool(replay.claim(key, expires_at))

    index.engine.replay = Counting()
    index.storage.put_publisher("release", {**GH_ROW, "projects": ["sampleproject"]})
    index.sync(force=True)
    result = index.engine.check_token(github_token(jti=HOSTILE[name]))
    assert not result.allowed and calls == []
