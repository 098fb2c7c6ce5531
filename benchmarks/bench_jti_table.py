"""The server's `used_jti` table in SQLite: what a jti claim costs with each layout, and
what the purge of expired ids costs.

Run: python benchmarks/bench_jti_table.py [--live 100000] [--purge-live 1000000]

Layouts (each in its own database file, the server's pragmas: WAL, synchronous=NORMAL):

- rowid+index: `key TEXT PRIMARY KEY` in a rowid table (the table's B-tree and the
  primary key's automatic index) and the index on `expires_at` (migrations 1-6);
- without-rowid+index: `WITHOUT ROWID` (one B-tree keyed by the key) and the index;
- without-rowid: `WITHOUT ROWID`, no other index (token/replay.py's store).

A claim is the statements `SQLiteJtiStore.claim_in` runs (INSERT ... ON CONFLICT DO
NOTHING) for a key such as the server makes (issuer URL / uuid4), 8 claims to a
transaction as `Storage.commit_mints` groups them, into a table already holding `--live`
live ids. Figures: pages appended to the write-ahead log per claim (counted, independent of
load) and CPU microseconds per claim (medians of rounds that alternate the layouts).
The purge is `DELETE FROM used_jti WHERE expires_at <= now` on `--purge-live` live ids
and 1% expired ones, with and without the expiry index.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import cpu_model  # noqa: E402 - benchmarks/machine.py (scripts run from their folder)

ISSUER = "https://token.actions.githubusercontent.com"
NOW = 1_800_000_000
LAYOUTS = {
    "rowid+index": ("CREATE TABLE used_jti (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)",
                    "CREATE INDEX used_jti_expires ON used_jti (expires_at)"),
    "without-rowid+index": ("CREATE TABLE used_jti (key TEXT PRIMARY KEY, "
                            "expires_at INTEGER NOT NULL) WITHOUT ROWID",
                            "CREATE INDEX used_jti_expires ON used_jti (expires_at)"),
    "without-rowid": ("CREATE TABLE used_jti (key TEXT PRIMARY KEY, "
                      "expires_at INTEGER NOT NULL) WITHOUT ROWID",),
}
GROUP = 8


def _open(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA wal_autocheckpoint=0")  # the log's growth is the figure
    return db


def _key() -> str:
    return f"{ISSUER}/{uuid.uuid4()}"


def _fill(db: sqlite3.Connection, live: int, expired: int = 0) -> None:
    db.execute("BEGIN")
    db.executemany("INSERT INTO used_jti VALUES (?, ?)",
                   ((_key(), NOW + 600 + i % 600) for i in range(live)))
    db.executemany("INSERT INTO used_jti VALUES (?, ?)",
                   ((_key(), NOW - 1 - i % 600) for i in range(expired)))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _claims(db: sqlite3.Connection, count: int) -> float:
    """CPU seconds for `count` claims, GROUP to a transaction."""
    keys = [_key() for _ in range(count)]
    start = time.process_time()
    for i in range(0, count, GROUP):
        db.execute("BEGIN IMMEDIATE")
        for key in keys[i:i + GROUP]:
            db.execute("INSERT INTO used_jti (key, expires_at) VALUES (?, ?) "
                       "ON CONFLICT DO NOTHING", (key, NOW + 900))
        db.execute("COMMIT")
    return time.process_time() - start


def _wal_pages(db: sqlite3.Connection) -> int:
    row = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(row[1])  # frames in the log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", type=int, default=100_000)
    parser.add_argument("--purge-live", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--claims", type=int, default=400)
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}; SQLite {sqlite3.sqlite_version}; {args.live} live ids")
    with tempfile.TemporaryDirectory() as folder:
        dbs = {}
        for name, statements in LAYOUTS.items():
            db = _open(Path(folder) / f"{name}.db")
            for statement in statements:
                db.execute(statement)
            _fill(db, args.live)
            dbs[name] = db
        pages: dict[str, list[float]] = {name: [] for name in dbs}
        cpu: dict[str, list[float]] = {name: [] for name in dbs}
        for _ in range(args.rounds):
            for name, db in dbs.items():
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                cpu[name].append(_claims(db, args.claims) / args.claims * 1e6)
                pages[name].append(_wal_pages(db) / args.claims)
        for name in dbs:
            print(f"claim, {name:20}: {statistics.median(pages[name]):5.2f} WAL pages, "
                  f"{statistics.median(cpu[name]):6.1f} us CPU (median of {args.rounds})")
        for db in dbs.values():
            db.close()
        for name in ("without-rowid+index", "without-rowid"):
            db = _open(Path(folder) / f"purge-{name}.db")
            for statement in LAYOUTS[name]:
                db.execute(statement)
            _fill(db, args.purge_live, args.purge_live // 100)
            start, cpu_start = time.perf_counter(), time.process_time()
            db.execute("BEGIN IMMEDIATE")
            deleted = db.execute("DELETE FROM used_jti WHERE expires_at <= ?",
                                 (NOW,)).rowcount
            db.execute("COMMIT")
            print(f"purge, {name:20}: {deleted} expired of {args.purge_live} live: "
                  f"{(time.perf_counter() - start) * 1e3:7.1f} ms wall, "
                  f"{(time.process_time() - cpu_start) * 1e3:7.1f} ms CPU, "
                  f"{_wal_pages(db)} WAL pages")
            if name == "without-rowid":
                _sweep(db, args.purge_live)
            db.close()


def _sweep(db: sqlite3.Connection, live: int) -> None:
    """`SQLiteJtiStore.purge`'s statements: one bounded sweep (`purge_rows` keys) from the
    middle of the table, 1% of it expired, and the unbounded scan it replaced."""
    from tppolicy.server.storage import SQLiteJtiStore

    budget = SQLiteJtiStore.purge_rows
    middle = db.execute("SELECT key FROM used_jti ORDER BY key LIMIT 1 OFFSET ?",
                        (live // 2,)).fetchone()[0]
    db.execute("BEGIN IMMEDIATE")
    db.executemany("UPDATE used_jti SET expires_at = ? WHERE key = ?",
                   ((NOW - 1, k) for (k,) in db.execute(
                       "SELECT key FROM used_jti WHERE key > ? ORDER BY key LIMIT ?",
                       (middle, budget)).fetchall()[::100]))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    timings = []
    end = middle
    statement: str
    params: tuple[Any, ...] | None
    for statement, params in (
            ("SELECT key FROM used_jti WHERE key > ? ORDER BY key LIMIT 1 OFFSET ?",
             (middle, budget - 1)),
            ("DELETE FROM used_jti WHERE key > ? AND key <= ? AND expires_at <= ?", None),
            ("DELETE FROM used_jti WHERE expires_at <= ?", (NOW,))):
        if params is None:
            params = (middle, end, NOW)
        start, cpu_start = time.perf_counter(), time.process_time()
        db.execute("BEGIN IMMEDIATE")
        cursor = db.execute(statement, params)
        row = cursor.fetchone() if statement.startswith("SELECT") else None
        count = cursor.rowcount
        db.execute("COMMIT")
        timings.append(((time.perf_counter() - start) * 1e3,
                        (time.process_time() - cpu_start) * 1e3, count))
        if row is not None:
            end = row[0]
    (w1, c1, _), (w2, c2, deleted), (w3, c3, _) = timings
    print(f"sweep of {budget} keys among {live} live ids: {deleted} expired deleted, "
          f"{w1 + w2:6.1f} ms wall, {c1 + c2:6.1f} ms CPU; the whole-table scan it replaced "
          f"(nothing expired): {w3:6.1f} ms wall, {c3:6.1f} ms CPU")


if __name__ == "__main__":
    main()
