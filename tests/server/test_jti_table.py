"""The server's used token ids (`used_jti`): keyed by the id alone since migration 7 (no
expiry index; in SQLite one B-tree, `WITHOUT ROWID`), an older database upgraded in place
with its ids kept, and the purge of expired ids a bounded sweep of the keys."""

from __future__ import annotations

from pathlib import Path

from tppolicy.server.database import Database, open_database
from tppolicy.server.migrations import MIGRATIONS, current_version, migrate
from tppolicy.server.storage import SQLiteJtiStore, Storage

LATEST = max(m.version for m in MIGRATIONS)
IDS = [("iss/live-a", 2_000_000_000), ("iss/spent-b", 5), ("iss/live-c", 2_000_000_000)]


def _version_6_with_ids(db: Database) -> None:
    assert migrate(db, target=6) == [1, 2, 3, 4, 5, 6]
    with db.transaction() as tx:
        for key, expires in IDS:
            tx.execute("INSERT INTO used_jti (key, expires_at) VALUES (?, ?)", (key, expires))


def _ids(db: Database) -> list[tuple[str, int]]:
    return [(str(k), int(e)) for k, e in db.query("SELECT key, expires_at FROM used_jti "
                                                  "ORDER BY key")]


def test_an_sqlite_database_is_upgraded_to_the_keyed_table(tmp_path: Path) -> None:
    db = open_database(tmp_path / "index.db")
    try:
        _version_6_with_ids(db)
        assert migrate(db) == list(range(7, LATEST + 1))
        assert current_version(db) == LATEST
        assert _ids(db) == sorted(IDS)
        (sql,), = db.query("SELECT sql FROM sqlite_master WHERE name = 'used_jti'")
        assert "WITHOUT ROWID" in str(sql)
        indexes = db.query("SELECT name FROM sqlite_master WHERE tbl_name = 'used_jti' "
                           "AND type = 'index' AND sql IS NOT NULL")
        assert indexes == []  # no expiry index: a claim writes one B-tree
    finally:
        db.close()
    storage = Storage(tmp_path / "index.db")  # reopened: nothing more to apply; claims work
    try:
        replay = SQLiteJtiStore(storage)
        assert replay.claim("iss/spent-b", 2_000_000_000)  # expired: claimed again
        assert not replay.claim("iss/live-a", 2_000_000_000)
        assert replay.claim("iss/new", 2_000_000_000)
        assert not replay.claim("iss/new", 2_000_000_000)
    finally:
        storage.close()


def test_a_postgresql_database_is_upgraded_to_the_keyed_table(pg_url: str) -> None:
    db = open_database(pg_url)
    try:
        _version_6_with_ids(db)
        assert migrate(db) == list(range(7, LATEST + 1))
        assert _ids(db) == sorted(IDS)
        indexes = [str(n) for (n,) in db.query(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'used_jti'")]
        assert len(indexes) == 1 and indexes[0].endswith("pkey")  # the key's alone
    finally:
        db.close()
    storage = Storage(pg_url)
    try:
        replay = SQLiteJtiStore(storage)
        assert replay.claim("iss/spent-b", 2_000_000_000)
        assert not replay.claim("iss/live-a", 2_000_000_000)
    finally:
        storage.close()


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_purge_sweeps_a_bounded_range_of_keys(tmp_path: Path) -> None:
    clock = _Clock()
    storage = Storage(tmp_path / "index.db", clock=clock)
    try:
        # 40 ids, every other one expired, in key order k00..k39
        with storage.transaction() as tx:
            for i in range(40):
                tx.execute("INSERT INTO used_jti (key, expires_at) VALUES (?, ?)",
                           (f"k{i:02}", 10 if i % 2 else 2_000_000_000))
        replay = SQLiteJtiStore(storage)
        replay.purge_rows = 8
        left = []
        for _ in range(6):
            with storage.transaction() as tx:
                replay.purge(tx)
                replay.purge(tx)  # not due again within the interval: nothing more
            left.append(len(storage.database.query("SELECT key FROM used_jti")))
            clock.now += replay.purge_interval
        # each purge visits 8 keys, deletes the 4 expired among them; the 6th starts over
        assert left == [36, 32, 28, 24, 20, 20]
        keys = [str(k) for (k,) in storage.database.query("SELECT key FROM used_jti")]
        assert keys == [f"k{i:02}" for i in range(0, 40, 2)]  # the live ones, all kept
    finally:
        storage.close()


def test_the_sweep_outpaces_the_claims(tmp_path: Path) -> None:
    clock = _Clock()
    storage = Storage(tmp_path / "index.db", clock=clock)
    try:
        replay = SQLiteJtiStore(storage)
        replay.purge_rows = 4
        replay.next_purge = clock.now + replay.purge_interval
        for i in range(30):  # 30 claims that expire before the next purge
            assert replay.claim(f"k{i:02}", int(clock.now) + 1)
        clock.now += replay.purge_interval
        with storage.transaction() as tx:
            replay.purge(tx)  # visits 4 x 30 keys (more than purge_rows): all of them
        assert storage.database.query("SELECT key FROM used_jti") == []
        assert replay.claimed == 0
    finally:
        storage.close()
