"""The token exchange's hot path: the jti claim and the credential in one transaction,
and the bare ASGI endpoint that serves it (in process, the real app and database)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.tokens import GITHUB, rsa_key
from tppolicy.server import Index

from .conftest import GH_ROW, TestClient, fail_credential_writes, github_token, write_jwks


def _rows(index: Index, table: str) -> int:
    assert index.storage.path is not None
    with sqlite3.connect(index.storage.path) as db:
        count: int = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return count


def test_a_credential_that_cannot_be_stored_leaves_the_token_unused(client: TestClient,
                                                                     index: Index) -> None:
    """The claim of the token's jti and the credential commit together: a failure to
    store the credential answers 503, mints nothing, and the token may be retried
    (before, the claim was committed alone and the retry was refused as a reuse)."""
    token = github_token()
    fail_credential_writes(index, True)
    answer = client.post("/_/oidc/mint-token", json={"token": token})
    assert answer.status_code == 503, answer.text
    assert answer.json()["errors"][0]["code"] == "server-error"
    assert (_rows(index, "used_jti"), _rows(index, "credentials")) == (0, 0)
    fail_credential_writes(index, False)
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


def _body(token: str) -> bytes:
    return json.dumps({"token": token}).encode()


@pytest.fixture
def steady(make_index: Any) -> Index:
    """An index whose publishers are not due for a reload (`mint_at_once` may answer)."""
    index: Index = make_index(reload_interval=3600, jwks_cooldown=0)
    index.storage.put_publisher("release", {**GH_ROW, "name": "release",
                                            "projects": ["sampleproject"]})
    index.sync(force=True)
    index.engine.verifier.keys.get(GITHUB, rsa_key().kid)  # the keys are read once
    # Purged now: no purge starts in a worker thread (one still running when the test
    # closes the database would use a closed connection).
    index.purge_expired()
    return index


def test_mint_at_once_answers_the_usual_exchange(steady: Index) -> None:
    token = github_token()
    answer = steady.mint_at_once(_body(token))
    assert answer is not None and answer.status == 200
    assert steady.storage.credential(answer.body["token"]) is not None
    again = steady.mint_at_once(_body(token))
    assert again is not None and again.body["errors"][0]["code"] == "invalid-reuse-token"
    refused = steady.mint_at_once(_body(github_token(repository_owner_id="66")))
    assert refused is not None and refused.body["errors"][0]["code"] == "invalid-publisher"
    assert (_rows(steady, "used_jti"), _rows(steady, "credentials")) == (1, 1)


def test_mint_at_once_never_waits_for_another_writer(steady: Index) -> None:
    """The event loop's connection does not wait for the write lock: it leaves the
    exchange to a worker thread, having written nothing."""
    token = github_token()
    assert steady.storage.path is not None
    other = sqlite3.connect(steady.storage.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        assert steady.mint_at_once(_body(token)) is None
    finally:
        other.execute("COMMIT")
        other.close()
    assert (_rows(steady, "used_jti"), _rows(steady, "credentials")) == (0, 0)
    answer = steady.mint(_body(token))
    assert answer.status == 200


def test_mint_at_once_leaves_a_first_use_to_mint(steady: Index) -> None:
    steady.storage.put_publisher("plugin", {**GH_ROW, "repository_name": "sampleproject-plugin",
                                            "workflow_filename": "publish.yaml",
                                            "pending_project": "sampleproject-plugin"})
    steady.sync(force=True)
    claims: dict[str, Any] = {
        "repository": "octo-org/sampleproject-plugin",
        "job_workflow_ref": "octo-org/sampleproject-plugin/.github/workflows/"
                            "publish.yaml@refs/tags/v1.2.0"}
    token = github_token(**claims)
    assert steady.mint_at_once(_body(token)) is None
    assert _rows(steady, "used_jti") == 0  # the claim was rolled back
    assert not steady.storage.project_exists("sampleproject-plugin")
    answer = steady.mint(_body(token))
    assert answer.status == 200, answer.body
    assert steady.storage.project_exists("sampleproject-plugin")


def test_mint_at_once_leaves_a_key_to_fetch_to_mint(steady: Index, jwks_file: Path) -> None:
    rotated = rsa_key("rotated-key")
    write_jwks(jwks_file, rotated)
    token = github_token(rotated)
    assert steady.mint_at_once(_body(token)) is None  # the new key is not cached yet
    answer = steady.mint(_body(token))  # a worker thread may read the keys again
    assert answer.status == 200, answer.body
    at_once = steady.mint_at_once(_body(github_token(rotated)))
    assert at_once is not None and at_once.status == 200


def _exchange_all(index: Index, bodies: list[bytes],
                  locked_until_started: bool = False) -> list[tuple[int, Any]]:
    """The bodies posted to mint-token at once (one event loop, the real app); with
    `locked_until_started`, another connection holds the write lock until every
    request was read, so the group cannot be stored at once."""
    import asyncio

    import httpx

    from tppolicy.server import create_app

    async def run() -> list[tuple[int, Any]]:
        app = create_app(index, reload=False)
        transport = httpx.ASGITransport(app=app)
        other = None
        if locked_until_started:
            assert index.storage.path is not None
            other = sqlite3.connect(index.storage.path, isolation_level=None,
                                    check_same_thread=False)
            other.execute("BEGIN IMMEDIATE")

        async def release() -> None:
            await asyncio.sleep(0.2)  # the group found the database busy meanwhile
            if other is not None:
                other.execute("COMMIT")
                other.close()

        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            answers, _ = await asyncio.gather(
                asyncio.gather(*(http.post("/_/oidc/mint-token", content=body)
                                 for body in bodies)), release())
        return [(a.status_code, a.json()) for a in answers]

    return asyncio.run(run())


def test_a_group_commit_gives_one_winner_per_token(steady: Index) -> None:
    reused = github_token()
    bodies = [_body(github_token()) for _ in range(6)] + [_body(reused)] * 4
    answers = _exchange_all(steady, bodies)
    assert [status for status, _ in answers[:6]] == [200] * 6
    codes = sorted("ok" if status == 200 else body["errors"][0]["code"]
                   for status, body in answers[6:])
    assert codes == ["invalid-reuse-token"] * 3 + ["ok"]
    assert (_rows(steady, "used_jti"), _rows(steady, "credentials")) == (7, 7)
    for status, body in answers:
        if status == 200:
            assert steady.storage.credential(body["token"]) is not None


def test_a_group_that_finds_the_database_busy_is_made_again_alone(steady: Index) -> None:
    reused = github_token()
    bodies = [_body(github_token()) for _ in range(4)] + [_body(reused)] * 2
    answers = _exchange_all(steady, bodies, locked_until_started=True)
    assert [status for status, _ in answers[:4]] == [200] * 4
    assert sorted(status for status, _ in answers[4:]) == [200, 422]
    assert (_rows(steady, "used_jti"), _rows(steady, "credentials")) == (5, 5)


def test_a_group_commit_leaves_the_purges_to_a_worker_thread(tmp_path: Path) -> None:
    """Deleting a minute of expired rows is not done by `commit_mints` (on the event
    loop) but by `purge_expired`, which the app runs in a worker thread when due."""
    from tppolicy.server.storage import (
        CREDENTIAL_PURGE_AFTER,
        PendingMint,
        SQLiteJtiStore,
        Storage,
    )

    now = [1_000_000.0]
    storage = Storage(tmp_path / "index.db", clock=lambda: now[0])
    replay = SQLiteJtiStore(storage)
    try:
        def pending(name: str, expires: float, jti: str) -> PendingMint:
            return PendingMint(((jti, int(expires)),), name, "p", "p", ("a",), expires, jti)

        assert storage.purge_due(replay)
        assert storage.commit_mints([pending("old", now[0] - CREDENTIAL_PURGE_AFTER - 10,
                                             "iss/old")], replay) == [True]
        assert storage.commit_mints([pending("new", now[0] + 900, "iss/new")],
                                    replay) == [True]
        assert storage.credential("old") is not None  # not purged by a group commit
        assert storage.purge_due(replay)
        storage.purge_expired(replay)
        assert storage.credential("old") is None and storage.credential("new") is not None
        assert [r[0] for r in storage.database.query("SELECT key FROM used_jti")] == \
            ["iss/new"]
        assert not storage.purge_due(replay)  # once a minute
    finally:
        storage.close()


def test_the_event_loops_connection_neither_waits_nor_checkpoints(steady: Index) -> None:
    """Its writes never wait for a lock, and it leaves checkpoints (which write and sync
    the database file) to `checkpoint`, which the app runs in a worker thread."""
    answer = steady.mint_at_once(_body(github_token()))  # on this thread, as on the loop
    assert answer is not None and answer.status == 200
    connection = steady.storage.database.connection()  # type: ignore[attr-defined]
    assert connection.execute("PRAGMA busy_timeout").fetchone()[0] == 0
    assert connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    steady.storage.database.checkpoint()
    busy, log_frames, done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and log_frames == done


def test_a_group_commit_claims_as_one_exchange_at_a_time_would(tmp_path: Path) -> None:
    """`commit_mints` answers as the exchanges made one by one would: an id in use
    refused, an expired one claimed again, an id twice in a group won by the first, an
    exchange without a jti minted, a large group."""
    from tppolicy.server.storage import PendingMint, SQLiteJtiStore, Storage

    now = 1_000_000.0
    storage = Storage(tmp_path / "index.db", clock=lambda: now)
    replay = SQLiteJtiStore(storage)

    def pending(name: str, *jtis: str) -> PendingMint:
        return PendingMint(tuple((j, int(now) + 900) for j in jtis), name, "p", "p", ("a",),
                           now + 900, jtis[0] if jtis else None)

    try:
        with storage.transaction() as db:
            db.execute("INSERT INTO used_jti (key, expires_at) VALUES ('iss/live', ?), "
                       "('iss/spent', ?)", (int(now) + 60, int(now) - 60))
        group = [pending("fresh-1", "iss/1"), pending("live", "iss/live"),
                 pending("spent", "iss/spent"), pending("fresh-2", "iss/2")]
        assert storage.commit_mints(group, replay) == [True, False, True, True]
        twice = [pending("first", "iss/3"), pending("second", "iss/3"), pending("no-jti")]
        assert storage.commit_mints(twice, replay) == [True, False, True]
        many = [pending(f"many-{i}", f"iss/many-{i}") for i in range(70)]
        assert storage.commit_mints([*many, pending("again", "iss/1")], replay) == \
            [True] * len(many) + [False]
        minted = ["fresh-1", "spent", "fresh-2", "first", "no-jti",
                  *(m.credential for m in many)]
        for name in minted:
            credential = storage.credential(name)
            assert credential is not None and credential.projects == ("a",), name
        for name in ("live", "second", "again"):
            assert storage.credential(name) is None, name
        (count,), = storage.database.query("SELECT count(*) FROM credentials")
        assert count == len(minted)
        expiry = dict(storage.database.query("SELECT key, expires_at FROM used_jti"))
        assert expiry["iss/spent"] == int(now) + 900  # claimed again, for its new token
        assert expiry["iss/live"] == int(now) + 60  # untouched
        assert len(expiry) == 2 + 3 + len(many)
    finally:
        storage.close()


def test_credentials_have_no_publisher_index(tmp_path: Path) -> None:
    """Migration 9: a credential writes three B-trees, not four; revoking a publisher's
    credentials finds them by the expiry index, among the unexpired ones."""
    from tppolicy.server.storage import Storage

    storage = Storage(tmp_path / "index.db")
    try:
        names = {str(n) for (n,) in storage.database.query(
            "SELECT name FROM sqlite_master WHERE tbl_name = 'credentials' AND type = 'index'")}
        assert "credentials_publisher" not in names and "credentials_expires" in names
        for sql in ("UPDATE credentials SET revoked = 1 WHERE publisher_id = ? AND "
                    "revoked = 0 AND expires > ?",
                    "SELECT hash, projects FROM credentials WHERE publisher_id = ? AND "
                    "expires > ?"):
            plan = " ".join(str(row[-1]) for row in storage.database.query(
                "EXPLAIN QUERY PLAN " + sql, ("p", 1.0)))
            assert "USING INDEX credentials_expires" in plan, plan
    finally:
        storage.close()


def test_the_log_starts_again_under_a_steady_stream_of_exchanges(
        steady: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint (a worker thread) copies the log up to where it was when it began;
    SQLite starts the log again only once all of it was copied. Exchanges stored while
    it ran kept it from ever finishing, and the log grew without bound (116 MB after
    15 000 exchanges of bench_server.py): groups now wait for the checkpoint."""
    import asyncio
    import time

    import httpx

    from tppolicy.server import app as app_module
    from tppolicy.server import create_app

    monkeypatch.setattr(app_module, "CHECKPOINT_EVERY", 8)
    database = steady.storage.database
    checkpoint = database.checkpoint

    def slow_checkpoint() -> None:  # a slower disk: the loop stores groups meanwhile
        time.sleep(0.01)
        checkpoint()

    monkeypatch.setattr(database, "checkpoint", slow_checkpoint)
    bodies = [[_body(github_token()) for _ in range(60)] for _ in range(4)]

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=create_app(steady, reload=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            async def client(mine: list[bytes]) -> list[int]:  # one after the other
                return [(await http.post("/_/oidc/mint-token", content=body)).status_code
                        for body in mine]

            return [s for statuses in await asyncio.gather(*map(client, bodies))
                    for s in statuses]

    assert asyncio.run(run()) == [200] * 240
    assert steady.storage.path is not None
    with sqlite3.connect(steady.storage.path) as db:
        # the frames in the log: those written since it last started again
        log_frames = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    assert log_frames < 100, log_frames  # was: all of them (about 250), never started again


def test_groups_wait_for_a_checkpoint_only_a_moment(steady: Index,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint that does not finish (a disk that does not answer) holds the groups
    `CHECKPOINT_HOLD` seconds at most: then they are stored meanwhile."""
    import asyncio
    import threading

    import httpx

    from tppolicy.server import app as app_module
    from tppolicy.server import create_app

    monkeypatch.setattr(app_module, "CHECKPOINT_EVERY", 4)
    monkeypatch.setattr(app_module, "CHECKPOINT_HOLD", 0.05)
    database = steady.storage.database
    checkpoint = database.checkpoint
    answered = threading.Event()
    waited: list[bool] = []

    def stuck_checkpoint() -> None:
        waited.append(answered.wait(30))  # until the exchanges below were answered
        checkpoint()

    monkeypatch.setattr(database, "checkpoint", stuck_checkpoint)

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=create_app(steady, reload=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            async def wave() -> list[int]:
                answers = await asyncio.gather(*(
                    http.post("/_/oidc/mint-token", content=_body(github_token()))
                    for _ in range(4)))
                return [a.status_code for a in answers]

            statuses = await wave()  # the fourth exchange starts a checkpoint
            statuses += await wave()  # held, then stored while the checkpoint hangs
            answered.set()
            while not waited:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # the checkpoint ends before the loop closes
            return statuses

    assert asyncio.run(run()) == [200] * 8
    assert waited == [True]
    assert (_rows(steady, "used_jti"), _rows(steady, "credentials")) == (8, 8)
