"""Fail closed around the replay store: a `claim` that raises (a SQLite file read-only or
locked by another connection, a Redis server stopped, an embedder's own store) is a
denial with a clear reason, never an exception nor an allowed answer; a `jti` no store can
hold is denied before any store sees it; a dropped SQLite store frees its file at once."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tppolicy.decide.decision import (
    INVALID_PAYLOAD,
    INVALID_REUSE_TOKEN,
    REPLAY_FAILED,
    Decision,
)
from tppolicy.decide.engine import CheckResult, Engine
from tppolicy.decide.policy import Policy
from tppolicy.limits import MAX_JTI_CHARS
from tppolicy.token.keys import KeyCache
from tppolicy.token.replay import MemoryReplayStore, ReplayStore, SQLiteReplayStore
from tppolicy.token.verify import Verifier

from .conftest import EXAMPLES
from .conftest import run_cli as run
from .test_check_token import NORMAL, keys, token
from .tokens import GITHUB, jwks, rsa_key

PUBLISHERS = str(EXAMPLES / "publishers.yaml")


class Broken:
    """An embedder's own store that fails (its text names a host the holder must not
    learn)."""

    def __init__(self) -> None:
        self.calls = 0

    def claim(self, key: str, expires_at: int) -> bool:
        self.calls += 1
        raise ConnectionError("replay-db.internal:6379 refused the connection")


class Weird:
    """A store answering something else than a bool whose truth cannot be told."""

    def claim(self, key: str, expires_at: int) -> Any:
        class NoTruth:
            def __bool__(self) -> bool:
                raise RuntimeError("no truth")
        return NoTruth()


def failed(result: CheckResult | Decision) -> None:
    """`result` (a CheckResult or a Decision) is the denial of a failed replay store."""
    decision = result.decision if isinstance(result, CheckResult) else result
    assert not decision.allowed
    assert decision.code == INVALID_PAYLOAD
    [reason] = decision.reasons
    assert reason.code == REPLAY_FAILED
    assert reason.message.startswith("cannot record the token's use: the replay store "
                                     "failed (")
    shown = decision.disclosed()
    assert shown.to_json()["reasons"] == [{
        "rule": "jti", "passed": False, "expected": None, "actual": None,
        "message": "the index cannot record the token's use now; try again later",
        "code": REPLAY_FAILED}]


def test_a_store_that_raises_is_a_denial_seen_by_the_hooks(tmp_path: Path) -> None:
    seen: list[CheckResult] = []
    store = Broken()
    engine = Engine(publishers=[NORMAL], keys=keys(), replay=store, on_decision=seen.append)
    result = engine.check_token(token())  # was: ConnectionError escaped check_token
    failed(result)
    assert store.calls == 1
    assert "replay-db.internal:6379 refused" in result.decision.reasons[0].message
    assert "replay-db.internal" not in str(result.to_json())  # the holder's view
    assert seen == [result]
    assert result.publisher is None


def test_a_store_answering_no_bool_is_a_denial() -> None:
    failed(Engine(publishers=[NORMAL], keys=keys(), replay=Weird()).check_token(token()))


def test_records_see_the_denial(tmp_path: Path) -> None:
    from tppolicy.decide.engine import JsonLinesSink

    record = tmp_path / "decisions.jsonl"
    sink = JsonLinesSink(str(record))
    engine = Engine(publishers=[NORMAL], keys=keys(), replay=Broken(), records=sink)
    failed(engine.check_token(token()))
    sink.close()
    [line] = record.read_text().splitlines()
    written = __import__("json").loads(line)
    assert written["allowed"] is False
    assert REPLAY_FAILED in line


def test_replay_errors_raise_lets_a_server_answer_an_outage() -> None:
    engine = Engine(publishers=[NORMAL], keys=keys(), replay=Broken(), replay_errors="raise")
    with pytest.raises(ConnectionError):
        engine.check_token(token())
    with pytest.raises(ValueError, match="replay_errors 'ignore'"):
        Engine(publishers=[NORMAL], keys=keys(), replay_errors="ignore")


def test_policy_evaluate_token_denies_when_the_store_raises(
        example_policy: Policy) -> None:
    cache = KeyCache()
    cache.add_static(GITHUB, jwks(rsa_key()))
    verifier = Verifier.for_policy(example_policy, keys=cache, audience="pypi")
    decision = example_policy.evaluate_token(token(), verifier, Broken())
    failed(decision)
    assert example_policy.evaluate_token(token(), verifier, MemoryReplayStore()).allowed


# ------------------------------------------------------------------ real failing stores


@contextlib.contextmanager
def read_only(*paths: Path, opened: bool = False) -> Iterator[None]:
    """`paths` cannot be written, even by root (chattr +i), for the block. `opened`: also
    through a file descriptor opened before (only chattr does that)."""
    if os.geteuid() != 0:
        if opened:
            pytest.skip("only root (chattr +i) can refuse writes to a file already open")
        for path in paths:
            path.chmod(0o444)
        try:
            yield
        finally:
            for path in paths:
                path.chmod(0o644)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: no way to make a file read-only")
    names = [str(path) for path in paths]
    if subprocess.run(["chattr", "+i", *names], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *names], check=True)


def made_store(path: Path) -> None:
    store = SQLiteReplayStore(path)
    assert store.claim("https://example/first", int(time.time()) + 600)
    store.close()


def test_a_read_only_sqlite_file_is_a_denial(tmp_path: Path) -> None:
    path = tmp_path / "jti.db"
    made_store(path)
    with read_only(path):
        store = SQLiteReplayStore(path)
        result = Engine(publishers=[NORMAL], keys=keys(), replay=store).check_token(token())
        store.close()
    failed(result)
    assert str(path) in result.decision.reasons[0].message


def test_an_exclusive_store_whose_files_turn_read_only_is_a_denial(tmp_path: Path) -> None:
    path = tmp_path / "jti.db"
    store = SQLiteReplayStore(path, exclusive=True)  # opens read-only files: refused
    engine = Engine(publishers=[NORMAL], keys=keys(), replay=store)
    assert engine.check_token(token(jti="first")).allowed
    with read_only(path, tmp_path / "jti.db-wal", opened=True):
        result = engine.check_token(token(jti="second"))
    failed(result)
    assert engine.check_token(token(jti="second")).allowed  # writable again
    store.close()


def test_a_sqlite_file_locked_by_a_writer_is_a_denial(tmp_path: Path) -> None:
    path = tmp_path / "jti.db"
    made_store(path)
    store = SQLiteReplayStore(path, timeout=0.05)
    engine = Engine(publishers=[NORMAL], keys=keys(), replay=store)
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO used_jti VALUES ('https://example/other', 1)")
        result = engine.check_token(token())
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    failed(result)
    assert "locked" in result.decision.reasons[0].message
    again = token()
    assert engine.check_token(again).allowed  # the lock is gone: claims work again
    assert engine.check_token(again).error == INVALID_REUSE_TOKEN
    store.close()


def test_a_stopped_redis_server_is_a_denial(tmp_path: Path) -> None:
    redis = pytest.importorskip("redis")
    from tppolicy.server.auth import RedisReplayStore

    from .server.conftest import free_port

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # no retries: a stopped server fails the claim at once (redis-py's default
        # retries spent 3 s of the test run backing off)
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2,
                             socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)
        engine = Engine(publishers=[NORMAL], keys=keys(), replay=RedisReplayStore(client))
        assert engine.check_token(token(jti="before")).allowed
    finally:
        process.terminate()
        process.wait(10)
    result = engine.check_token(token(jti="after"))
    failed(result)
    assert "Redis (the replay store) is unavailable" in result.decision.reasons[0].message
    client.close()


def test_cli_replay_db_that_fails_at_the_claim_is_invalid_input(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    keys_file = tmp_path / "jwks.json"
    keys_file.write_text(__import__("json").dumps(jwks(rsa_key())))
    token_file = tmp_path / "release.jwt"
    token_file.write_text(token() + "\n")
    path = tmp_path / "jti.db"
    made_store(path)
    with read_only(path):
        code, out, err = run(capsys, "check", "--publishers", PUBLISHERS, "--token",
                             str(token_file), "--jwks", str(keys_file), "--replay-db",
                             str(path))
    assert code == 3, (out, err)
    assert "Traceback" not in err
    assert err.startswith(f"replay store {path}: cannot use the file: ")
    assert "hint: give a SQLite file this process may read and write" in err
    assert not out.startswith("ALLOWED")


# ------------------------------------------------------------------ dropped stores


@pytest.mark.parametrize("first_exclusive", [False, True])
def test_a_dropped_store_frees_its_file_at_once(tmp_path: Path,
                                                first_exclusive: bool) -> None:
    path = tmp_path / "jti.db"
    enabled = gc.isenabled()
    gc.disable()
    try:
        store: ReplayStore | None = SQLiteReplayStore(path, exclusive=first_exclusive)
        assert store is not None and store.claim("https://example/a", int(time.time()) + 60)
        del store  # no close(), no collection
        # was: "the file is locked" until a garbage collection closed the connection
        owner = SQLiteReplayStore(path, exclusive=True, timeout=0.05)
        assert owner.claim("https://example/b", int(time.time()) + 60)
        assert not owner.claim("https://example/a", int(time.time()) + 60)
        del owner
        shared = SQLiteReplayStore(path, timeout=0.05)
        assert shared.claim("https://example/c", int(time.time()) + 60)
    finally:
        if enabled:
            gc.enable()


# ------------------------------------------------------------------ hostile jti


def stores(tmp_path: Path) -> list[ReplayStore]:
    return [MemoryReplayStore(), SQLiteReplayStore(tmp_path / "shared.db"),
            SQLiteReplayStore(tmp_path / "exclusive.db", exclusive=True)]


@pytest.mark.parametrize(("jti", "what"), [
    ("a\x00b", "the control character '\\x00' at 1"),
    ("line\nbreak", "the control character '\\n' at 4"),
    ("\x1b[31mred", "the control character '\\x1b' at 0"),
    ("csi\x9b31m", "the control character '\\x9b' at 3"),
    ("x" * (MAX_JTI_CHARS + 1), f"has {MAX_JTI_CHARS + 1} characters"),
    ("é" * 600, "has 600 characters"),
], ids=["nul", "newline", "escape", "c1", "long", "long-non-ascii"])
def test_a_jti_no_store_can_hold_is_denied_before_any_store(tmp_path: Path, jti: str,
                                                            what: str) -> None:
    for store in stores(tmp_path):
        engine = Engine(publishers=[NORMAL], keys=keys(), replay=store)
        result = engine.check_token(token(jti=jti))
        assert not result.allowed and result.error == INVALID_PAYLOAD
        [reason] = result.decision.reasons
        assert reason.code == "bad-jti" and what in reason.message
        assert len(reason.message) < 300  # the value is cut short
        if isinstance(store, MemoryReplayStore):
            assert len(store) == 0


def test_unusual_but_printable_jti_values_are_claimed_once(tmp_path: Path) -> None:
    for jti in ("", "x" * MAX_JTI_CHARS, "üñí©ødé 🙂", "a'b\"c;DROP TABLE used_jti;--",
                "%s%n{}", "\u00a0\u2028 spaces"):
        for store in stores(tmp_path):
            engine = Engine(publishers=[NORMAL], keys=keys(), replay=store)
            used = token(jti=jti)
            assert engine.check_token(used).allowed, (jti, store)
            assert engine.check_token(used).error == INVALID_REUSE_TOKEN
            if isinstance(store, SQLiteReplayStore):
                store.close()


# ------------------------------------------------------------------ a store's own arguments


@pytest.mark.parametrize("kind", ["memory", "shared", "exclusive"])
def test_a_stores_claim_checks_its_arguments(tmp_path: Path, kind: str) -> None:
    store: Any = MemoryReplayStore() if kind == "memory" else SQLiteReplayStore(
        tmp_path / "jti.db", exclusive=kind == "exclusive")
    later = int(time.time()) + 600
    # was: memory: a NaN expiry left the key claimable again at once (a replay); SQLite:
    # "cannot use the file: NOT NULL constraint failed", or an OverflowError for 2**70
    for key, expires_at, error in (("a", float("nan"), ValueError),
                                   ("b", float("inf"), ValueError),
                                   ("c", True, TypeError), ("d", "soon", TypeError),
                                   (b"e", later, TypeError), (None, later, TypeError)):
        with pytest.raises(error, match=r"a replay store's (key|expiry)"):
            store.claim(key, expires_at)
    assert store.claim("a", later) and not store.claim("a", later)
    assert store.claim("huge", 2**70) and not store.claim("huge", 2**70)
    assert store.claim("float", later + 0.5) and not store.claim("float", later)
    assert store.claim("nul\x00in a key", later) and not store.claim("nul\x00in a key", later)
    assert store.claim("past", -5) and store.claim("past", -5)  # expired: taken again
    if isinstance(store, SQLiteReplayStore):
        store.close()


def test_a_megabyte_jti_costs_no_store_call(example_policy: Policy) -> None:
    """With a verifier that takes large tokens, a 1 MB jti is refused by its length."""
    cache = KeyCache()
    cache.add_static(GITHUB, jwks(rsa_key()))
    verifier = Verifier.for_policy(example_policy, keys=cache, audience="pypi",
                                   max_bytes=4 * 1024 * 1024)
    store = Broken()
    decision = example_policy.evaluate_token(token(jti="j" * 1024 * 1024), verifier, store)
    assert not decision.allowed and store.calls == 0
    [reason] = decision.reasons
    assert reason.code == "bad-jti" and "has 1048576 characters" in reason.message
    assert len(reason.message) < 300 and len(str(reason.actual)) < 100
