"""Shutting the app down while publishers are being reloaded: the reload, which runs in
a worker thread, finishes before the lifespan ends (and so before `serve` closes the
storage). Cancelling only the awaiting task left the thread querying a SQLite
connection that was then closed under it: a segmentation fault.

Closing the database itself (`Database.close`) never closes a connection under a thread
using it: it refuses new uses, waits (bounded) for those under way, whose uncommitted
writes roll back; past the wait it leaves the database open. A request after the close
is answered 503, without a traceback. (`test_stopping.py`: the same with a real
`tppolicy serve` and SIGTERM.)"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.tokens import GITHUB, rsa_key
from tppolicy.server import Index, Storage, create_app
from tppolicy.server.app import GroupCommit
from tppolicy.server.database import Database, DatabaseUnavailable

from .conftest import GH_ROW, RedisServer, TestClient, github_token


def test_a_reload_under_way_finishes_before_shutdown_returns(index: Index) -> None:
    started = threading.Event()
    finished = threading.Event()
    sync = index.sync

    def slow_sync(force: bool = False, **options: Any) -> None:
        started.set()
        time.sleep(0.5)
        sync(force, **options)
        finished.set()

    index.sync = slow_sync  # type: ignore[method-assign]
    index.reload_interval = 0.01
    with TestClient(create_app(index), base_url="http://127.0.0.1") as client:
        assert client.get("/_/health").status_code == 200
        assert started.wait(10)
    assert finished.is_set()


# ------------------------------------------------------------------- closing the database


class _Holder:
    """A thread inside a transaction of `database` (a real write), until `release`;
    what the transaction raised in the end, in `error`."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.inside = threading.Event()
        self.release = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        assert self.inside.wait(10)

    def _run(self) -> None:
        try:
            with self.database.transaction() as tx:
                tx.execute("INSERT INTO used_jti (key, expires_at) VALUES ('held', 1)")
                self.inside.set()
                assert self.release.wait(10)
                tx.execute("INSERT INTO used_jti (key, expires_at) VALUES ('held-2', 1)")
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        self.release.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def _closing(storage: Storage) -> bool:
    return bool(storage.database.uses.closing)  # type: ignore[attr-defined]


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_close_waits_for_a_transaction_under_way_and_stores_nothing_of_it(
        tmp_path: Path) -> None:
    storage = Storage(tmp_path / "index.db")
    holder = _Holder(storage.database)
    closed: list[bool] = []
    closer = threading.Thread(target=lambda: closed.append(storage.close(wait=30)))
    closer.start()
    _wait_until(lambda: _closing(storage))
    with pytest.raises(DatabaseUnavailable, match="closed"):  # no new use
        storage.generation()
    assert not closed  # not closed under the holder's transaction
    holder.finish()
    closer.join(10)
    assert closed == [True]
    assert isinstance(holder.error, DatabaseUnavailable)  # its commit refused: rolled back
    again = Storage(tmp_path / "index.db")
    try:
        assert again.database.query("SELECT key FROM used_jti") == []
    finally:
        assert again.close()


def test_past_its_wait_close_leaves_the_database_open(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "index.db")
    holder = _Holder(storage.database)
    assert storage.close(wait=0.05) is False  # the holder's connection is not closed
    with pytest.raises(DatabaseUnavailable):
        storage.database.query("SELECT 1")
    holder.finish()
    assert isinstance(holder.error, DatabaseUnavailable)
    assert storage.close(wait=0) is True


def test_a_purge_in_a_worker_thread_while_the_fixture_closes_the_index(index: Index) -> None:
    """The fault seen once: the test's fixture closed the database while a purge
    (started by the group commit) ran in a worker thread. The purge waits here for a
    write lock held by another connection; the close waits for the purge."""
    db = index.storage.path
    assert db is not None
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    errors: list[BaseException] = []

    def purge() -> None:
        try:
            index.purge_expired()
        except BaseException as exc:
            errors.append(exc)

    purging = threading.Thread(target=purge)
    purging.start()
    _wait_until(lambda: index.storage.database.uses.active == 1)  # type: ignore[attr-defined]
    closed: list[bool] = []
    closer = threading.Thread(target=lambda: closed.append(index.storage.close()))
    closer.start()
    _wait_until(lambda: _closing(index.storage))
    assert not closed
    blocker.execute("COMMIT")
    blocker.close()
    purging.join(40)
    closer.join(10)
    assert closed == [True]
    assert len(errors) == 1 and isinstance(errors[0], DatabaseUnavailable)


def test_after_close_every_request_is_refused_cleanly(index: Index,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(index, reload=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        token = github_token()
        minted = client.post("/_/oidc/mint-token", json={"token": token})
        assert minted.status_code == 200
        credential = minted.json()["token"]
        assert index.storage.close()
        caplog.clear()
        answer = client.post("/_/oidc/mint-token", json={"token": github_token()})
        assert answer.status_code == 503
        assert answer.json()["errors"][0]["code"] == "server-error"
        assert client.get("/_/health").status_code == 503
        assert client.get("/simple/").status_code == 503
        assert client.get("/simple/sampleproject/").status_code == 503
        assert client.post("/_/oidc/burn-token", json={"token": credential}).status_code == 503
        upload = client.post("/legacy/", auth=("__token__", credential),
                             data={":action": "file_upload", "name": "sampleproject",
                                   "version": "1.0"})
        assert upload.status_code == 503
    assert not [r for r in caplog.records if r.exc_info], caplog.text


def test_postgresql_close_waits_for_a_transaction_under_way(pg_url: str) -> None:
    storage = Storage(pg_url, files="unused")
    holder = _Holder(storage.database)
    closed: list[bool] = []
    closer = threading.Thread(target=lambda: closed.append(storage.close(wait=30)))
    closer.start()
    _wait_until(lambda: _closing(storage))
    with pytest.raises(DatabaseUnavailable, match="closed"):
        storage.generation()
    assert not closed
    holder.finish()
    closer.join(10)
    assert closed == [True]
    assert isinstance(holder.error, DatabaseUnavailable)  # rolled back
    with pytest.raises(DatabaseUnavailable):
        storage.database.query("SELECT 1")
    again = Storage(pg_url, files="unused")
    try:
        assert again.database.query("SELECT key FROM used_jti") == []
    finally:
        assert again.close()


def _open_files_under(folder: Path) -> int:
    """How many files in `folder` this process holds open (Linux's /proc)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        count += target.startswith(str(folder))
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_a_finished_threads_connection_is_not_kept_open(tmp_path: Path) -> None:
    """Each thread has its own SQLite connection; the thread pool retires idle threads
    and starts new ones. A finished thread's connection was kept open until the database
    closed: two more open files per thread the server ever ran."""
    storage = Storage(tmp_path / "index.db")

    def threads_come_and_go() -> int:
        for _ in range(30):
            thread = threading.Thread(target=storage.generation)
            thread.start()
            thread.join()
        gc.collect()
        return _open_files_under(tmp_path)

    try:
        first = threads_come_and_go()
        threads_come_and_go()
        # Kept open: 60 more files a round, 120 in these two. Closed: SQLite reuses the
        # files it holds (a closed connection's are kept while others hold locks on the
        # same file); a few threads' connections may not be freed yet when counted.
        assert threads_come_and_go() - first < 20
    finally:
        assert storage.close()


def test_with_redis_a_token_whose_credential_was_not_stored_stays_usable(
        make_index: Any, redis_server: RedisServer) -> None:
    """With Redis as the replay set, the token's claim is made in Redis before the
    credential is written to the database. When that write fails (here a trigger makes
    it fail; at shutdown, the database refusing the commit) nothing was minted: the
    claim is taken back, the token can be used again (it was spent for nothing)."""
    index: Index = make_index(redis=redis_server.url)
    index.storage.put_publisher("release", {**GH_ROW, "name": "release",
                                            "projects": ["sampleproject"]})
    index.sync(force=True)
    trigger = ("CREATE TRIGGER no_credentials BEFORE INSERT ON credentials "
               "BEGIN SELECT RAISE(ABORT, 'the disk is full'); END")
    with index.storage.transaction() as tx:
        tx.execute(trigger)
    token = github_token()
    with pytest.raises(sqlite3.IntegrityError):
        index.mint(json.dumps({"token": token}).encode())
    with index.storage.transaction() as tx:
        tx.execute("DROP TRIGGER no_credentials")
    assert index.mint(json.dumps({"token": token}).encode()).status == 200
    assert index.mint(json.dumps({"token": token}).encode()).body["errors"][0]["code"] == \
        "invalid-reuse-token"


def test_an_exchange_cancelled_before_its_group_commit_stores_nothing(
        make_index: Any) -> None:
    """A request cancelled while it waits for its group's commit (its client left, or
    the server stopping past its grace period) is answered by no one: nothing of it is
    stored, its token stays usable. Its group commit used to store it all the same."""
    index: Index = make_index(reload_interval=3600, jwks_cooldown=0)
    index.storage.put_publisher("release", {**GH_ROW, "name": "release",
                                            "projects": ["sampleproject"]})
    index.sync(force=True)
    index.engine.verifier.keys.get(GITHUB, rsa_key().kid)  # cached: decided at once
    index.purge_expired()  # no purge in a worker thread
    group = GroupCommit(index)
    body = json.dumps({"token": github_token()}).encode()

    async def cancelled() -> None:
        task = asyncio.ensure_future(group.mint(body))
        await asyncio.sleep(0)  # the exchange is prepared, its group commit scheduled
        task.cancel()  # before the commit runs
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await group.mint(body)).status == 200  # made alone: the token is unused

    asyncio.run(cancelled())
    assert len(index.storage.database.query("SELECT jti FROM credentials")) == 1
