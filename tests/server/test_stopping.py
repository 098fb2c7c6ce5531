"""`tppolicy serve` stopped (SIGTERM) while token exchanges and a purge of expired rows
are under way: it stops taking requests, lets those under way finish and the purge end,
then closes the database. Every exchange answered 200 is stored (its token cannot be used
again after a restart); one never answered leaves nothing (its token still works)."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tppolicy.server import Storage

from .conftest import github_claims, github_token, post_json

EXPIRED_ROWS = 200_000  # expired token ids: the first purge takes a while


def _fill_expired(db: Path) -> None:
    storage = Storage(db)
    try:
        connection = storage.database.connection()  # type: ignore[attr-defined]
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("INSERT INTO used_jti (key, expires_at) VALUES (?, 1)",
                               ((f"old-{i}",) for i in range(EXPIRED_ROWS)))
        connection.execute("COMMIT")
    finally:
        storage.close()


def _stop_while_minting(server_process: Any, db: Path, hold: bool) -> None:
    """Six client threads mint distinct tokens until the server, sent SIGTERM, stops
    answering. With `hold`, the test holds SQLite's write lock before the first: the
    exchanges (in worker threads, the group commit having found the database busy) and
    the purge wait for it; SIGTERM comes while they wait, the lock is let go after it."""
    _fill_expired(db)
    server = server_process(db=db)
    blocker = sqlite3.connect(db, isolation_level=None) if hold else None
    if blocker is not None:  # the server started: it has written what it writes then
        blocker.execute("BEGIN IMMEDIATE")
    try:
        answered: dict[str, int] = {}  # jti -> status
        tokens: dict[str, str] = {}  # jti -> token
        unanswered: list[str] = []
        lock = threading.Lock()
        url, ca = server.url + "/_/oidc/mint-token", server.tls.ca

        def client() -> None:
            while True:
                claims = github_claims()
                token = github_token(**{k: claims[k] for k in ("jti", "iat", "nbf", "exp")})
                jti = claims["jti"]
                with lock:
                    tokens[jti] = token
                try:
                    status, _ = post_json(url, {"token": token}, ca)
                except OSError:  # refused, reset: the server stopped
                    with lock:
                        unanswered.append(jti)
                    return
                with lock:
                    answered[jti] = status

        threads = [threading.Thread(target=client) for _ in range(6)]
        for thread in threads:
            thread.start()
        if blocker is not None:
            time.sleep(0.5)  # the requests reach the server and wait for the lock
            assert not answered
        else:
            deadline = time.monotonic() + 30
            while len(answered) < 12 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        if blocker is not None:
            time.sleep(0.5)
            blocker.execute("COMMIT")
        code = server.process.wait(30)
        for thread in threads:
            thread.join(30)
        server.process = None
    finally:
        if blocker is not None:
            blocker.close()
    log = server.log.read_text()
    assert code == 0, log
    assert "Traceback" not in log and "ERROR" not in log, log
    assert answered and set(answered.values()) == {200}, answered

    storage = Storage(db)
    try:
        stored = {row[0] for row in storage.database.query("SELECT jti FROM credentials")}
        left = [str(k) for (k,) in storage.database.query(
            "SELECT key FROM used_jti WHERE key LIKE 'old-%'")]
    finally:
        storage.close()
    assert stored == set(answered), (len(stored), len(answered))
    # the purge was waited for: it sweeps the keys in order, a bounded range at a time
    # (at most SQLiteJtiStore.purge_rows ids): the expired ids left are those after
    # the range it swept, which it emptied
    deleted = EXPIRED_ROWS - len(left)
    assert 0 < deleted <= EXPIRED_ROWS, deleted
    assert sorted(left) == sorted(f"old-{i}" for i in range(EXPIRED_ROWS))[deleted:]

    again = server_process(db=db)
    for jti in list(answered)[:3]:
        status, body = again.mint(tokens[jti])
        assert status == 422 and body["errors"][0]["code"] == "invalid-reuse-token"
    for jti in unanswered[:3]:
        assert again.mint(tokens[jti])[0] == 200


@pytest.mark.slow  # a server stopped under exchanges
def test_sigterm_while_exchanges_and_a_purge_run(server_process: Any, tmp_path: Path) -> None:
    _stop_while_minting(server_process, tmp_path / "index.db", hold=False)


@pytest.mark.slow
def test_sigterm_while_exchanges_and_the_purge_wait_for_the_database(
        server_process: Any, tmp_path: Path) -> None:
    _stop_while_minting(server_process, tmp_path / "index.db", hold=True)
