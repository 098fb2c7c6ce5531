"""The sweep of expired token ids (`SQLiteJtiStore.purge`) shared by every replica of one
database: its position and when it is next due live in the database (`jti_sweep`), taken
by one replica at a time, so replicas do not sweep the same keys (each used to sweep from
a position of its own: N replicas, N sweeps a minute over the same first keys); a purge
whose transaction rolls back is tried again soon, not a minute later.

On one SQLite file (replicas in this process, and in several processes) and on
PostgreSQL (a replica whose purge would wait on another's is not held up)."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

from tppolicy.server.storage import SQLiteJtiStore, Storage

KEYS = 48  # all expired, swept 8 at a time
FAR = 2_000_000_000


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        return tmp_path / "index.db"
    return request.getfixturevalue("pg_url")


def _fill(storage: Storage, expired: int = KEYS, live: int = 0) -> None:
    with storage.transaction() as tx:
        for i in range(expired):
            tx.execute("INSERT INTO used_jti (key, expires_at) VALUES (?, ?)", (f"k{i:03}", 10))
        for i in range(live):
            tx.execute("INSERT INTO used_jti (key, expires_at) VALUES (?, ?)",
                       (f"live{i:03}", FAR))


def _count(storage: Storage) -> int:
    return int(storage.database.query("SELECT count(*) FROM used_jti")[0][0])


def _replicas(target: Any, clock: _Clock, n: int) -> list[tuple[Storage, SQLiteJtiStore]]:
    made = []
    for _ in range(n):
        storage = Storage(target, clock=clock)
        replay = SQLiteJtiStore(storage)
        replay.purge_rows = 8
        made.append((storage, replay))
    return made


def _purge(storage: Storage, replay: SQLiteJtiStore) -> bool:
    with storage.transaction() as tx:
        return replay.purge(tx)


def test_replicas_take_turns_on_one_sweep(target: Any) -> None:
    """Six replicas due at the same moment: one sweeps the next 8 keys, the others
    leave it; a minute later the next 8 keys, and so on, each key visited once."""
    clock = _Clock()
    replicas = _replicas(target, clock, 6)
    try:
        _fill(replicas[0][0])
        left = []
        for _ in range(KEYS // 8):
            swept = [_purge(storage, replay) for storage, replay in replicas]
            assert swept.count(True) == 1, swept
            left.append(_count(replicas[0][0]))
            clock.now += SQLiteJtiStore.purge_interval
        assert left == list(range(KEYS - 8, -1, -8))  # 40, 32, ..., 0: no range twice
    finally:
        for storage, _ in replicas:
            storage.close()


def test_a_replica_that_was_not_due_follows_the_shared_schedule(target: Any) -> None:
    """A replica started later (its own schedule says due now) does not sweep before
    the sweep is due, then sweeps where the other left off."""
    clock = _Clock()
    (first, a), = _replicas(target, clock, 1)
    try:
        _fill(first)
        assert _purge(first, a)
        clock.now += 10
        (second, b), = _replicas(target, clock, 1)
        try:
            assert not _purge(second, b)  # swept 10 s ago: due in 50 s
            assert _count(second) == KEYS - 8
            clock.now += SQLiteJtiStore.purge_interval - 10
            assert _purge(second, b)
            assert _count(second) == KEYS - 16  # the next 8 keys, not the first 8 again
        finally:
            second.close()
    finally:
        first.close()


def test_a_purge_that_rolled_back_is_tried_again_soon(target: Any) -> None:
    clock = _Clock()
    (storage, replay), = _replicas(target, clock, 1)
    try:
        _fill(storage)
        swept: list[bool] = []

        def failing_exchange() -> None:
            with storage.transaction() as tx:
                swept.append(replay.purge(tx))
                raise RuntimeError("the exchange's transaction failed")

        with pytest.raises(RuntimeError):
            failing_exchange()
        assert swept == [True]
        assert _count(storage) == KEYS  # rolled back: nothing deleted
        clock.now += replay.purge_retry
        assert replay.purge_retry < replay.purge_interval / 4
        assert _purge(storage, replay)  # not a minute later
        assert _count(storage) == KEYS - 8  # from the first key: the position rolled back too
    finally:
        storage.close()


def test_the_budget_counts_every_replicas_claims(target: Any) -> None:
    """The sweep visits four times the claims made since the last one by all replicas
    (each reports its claims when it finds the sweep not due), at least purge_rows."""
    clock = _Clock()
    replicas = _replicas(target, clock, 3)
    try:
        _fill(replicas[0][0], expired=200)
        (s0, r0), (s1, r1), (s2, r2) = replicas
        assert _purge(s0, r0)  # the first sweep: 8 keys
        r1.next_purge = r2.next_purge = clock.now + 30  # their own schedules
        for i in range(10):  # 10 claims on each of the other two replicas
            assert r1.claim(f"x1-{i}", FAR)
            assert r2.claim(f"x2-{i}", FAR)
        clock.now += 30
        assert not _purge(s1, r1) and not _purge(s2, r2)  # not due: their claims counted
        clock.now += SQLiteJtiStore.purge_interval - 30
        before = _count(s0)
        assert _purge(s0, r0)
        assert before - _count(s0) == 4 * 20  # 80 expired keys visited, not 8
    finally:
        for storage, _ in replicas:
            storage.close()


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_a_replica_is_not_held_up_by_a_sweep_under_way(target: Any) -> None:
    """PostgreSQL: while one replica's sweep is in a transaction not yet committed,
    another due replica neither sweeps the same keys nor waits on the first's row locks."""
    clock = _Clock()
    (first, a), (second, b) = _replicas(target, clock, 2)
    try:
        _fill(first)
        result: list[bool] = []
        with first.transaction() as tx:
            assert a.purge(tx)
            thread = threading.Thread(target=lambda: result.append(_purge(second, b)))
            thread.start()
            thread.join(20)
            done = not thread.is_alive()
        thread.join()
        assert done, "the second replica waited for the first one's sweep"
        assert result == [False]
        assert _count(first) == KEYS - 8
    finally:
        first.close()
        second.close()


def _sweeps_in_a_process(path: str, now: float, rounds: int, start: Any) -> int:
    """A replica in a process of its own: purges `rounds` times at the clock time `now`,
    the sweeps it made."""
    storage = Storage(path, clock=lambda: now)
    try:
        replay = SQLiteJtiStore(storage)
        replay.purge_rows = 8
        start.wait()
        swept = 0
        for _ in range(rounds):
            replay.next_purge = 0.0  # as if due on this replica's own schedule each time
            with storage.transaction() as tx:
                swept += replay.purge(tx)
        return swept
    finally:
        storage.close()


@pytest.mark.slow
def test_processes_on_one_sqlite_file_sweep_once(tmp_path: Path) -> None:
    """Five processes due at the same moment, each trying 20 times: one sweep in all."""
    path = tmp_path / "index.db"
    storage = Storage(path)
    try:
        _fill(storage)
    finally:
        storage.close()
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Barrier(5)
        with context.Pool(5) as pool:
            counts = pool.starmap(_sweeps_in_a_process,
                                  [(str(path), 1_000_000.0, 20, start)] * 5)
    assert sum(counts) == 1, counts
    storage = Storage(path)
    try:
        assert _count(storage) == KEYS - 8
    finally:
        storage.close()
