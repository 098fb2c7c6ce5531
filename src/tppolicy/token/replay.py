"""Replay protection: each token's `jti` may be used once, claimed atomically.

An index server can back `ReplayStore` with its own store (PyPI uses Redis
`SET NX EXAT`); tppolicy ships an in-memory store and a SQLite one (`--replay-db`).
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tppolicy.errors import Diagnostic, TppolicyError
from tppolicy.native import EXTENSION_WANTED


class ReplayStore(Protocol):
    """Remembers used token ids (`jti`) until the token expires, so that a token is used
    once: `MemoryReplayStore` for one process, `SQLiteReplayStore` shared between processes."""

    def claim(self, key: str, expires_at: int) -> bool:
        """Record `key` until `expires_at` (Unix time); False if it was already recorded."""


_SLOT = 16  # seconds of expiry listed together for the sweep


class _ClaimsInPython:
    """`MemoryReplayStore.claim` in Python: the stand-in for `_compact.Claims` (C), which
    takes the same steps in one call when the install compiled it."""

    _keys: dict[str, tuple[int]]
    _due: dict[int, list[str]]  # expiry slot -> the keys claimed in it
    _clock: Callable[[], float]
    _next_sweep: float

    def claim(self, key: str, expires_at: int) -> bool:
        """Record `key` until `expires_at` (Unix time); False if it is recorded and live.
        A key that is not a string or an expiry that is not a finite number raises
        `TypeError`/`ValueError` (a NaN expiry left its key claimable again at once)."""
        if key.__class__ is not str or expires_at.__class__ is not int:
            return self._claim_slowly(key, expires_at)
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        mine = (expires_at,)  # a new object: only the claim that inserted it sees it back
        current = self._keys.setdefault(key, mine)
        if current is mine:
            # Listed for the sweep. Only a key claimed with an expiry already past, while a
            # sweep pops that slot, can miss its listing: it then stays (expired) until
            # its key is claimed again, which takes it over.
            due = self._due.get(expires_at // _SLOT)
            if due is None:
                due = self._due.setdefault(expires_at // _SLOT, [])
            due.append(key)
            return True
        if current[0] > now:
            return False
        return self._take_over(key, expires_at, now)

    def _claim_slowly(self, key: object, expires_at: object) -> bool:
        raise NotImplementedError

    def _take_over(self, key: str, expires_at: int, now: float) -> bool:
        raise NotImplementedError

    def _sweep(self, now: float) -> None:
        raise NotImplementedError


_ClaimsBase = _ClaimsInPython
if EXTENSION_WANTED and not TYPE_CHECKING:
    # compiled at install (hatch_build.py): the claim in one call, no Python frame
    with contextlib.suppress(ImportError):
        from tppolicy.token._compact import SLOT_SECONDS, Claims

        if SLOT_SECONDS == _SLOT:  # the C claim lists keys in the same slots
            _ClaimsBase = Claims


class MemoryReplayStore(_ClaimsBase):
    """A set of claimed keys with expiry, for one process; thread-safe.

    A claim of a new key is one `dict.setdefault`, atomic under the GIL: of concurrent
    claims of one key exactly one inserts its own entry and wins. Only taking over a key
    whose time has passed, and the sweep of expired keys (one pass every `sweep_every`
    seconds, made by whichever claim comes first, without stopping the others), take a
    lock; nothing else ever changes or removes an entry. The claim runs in C when the
    install compiled `tppolicy/token/_compact.c` (the same steps; `_ClaimsInPython`).

    Each claimed key is also listed under its expiry's slot (16 s wide): a sweep visits
    only the keys of the slots that have passed, each key once, instead of every live key
    each minute (a million live keys took a 0.3 s pass, made by one claim, every minute).
    """

    def __init__(self, clock: Callable[[], float] = time.time, *,
                 sweep_every: float = 60.0) -> None:
        self._keys: dict[str, tuple[int]] = {}
        self._due: dict[int, list[str]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._sweep_every = sweep_every
        self._next_sweep = 0.0

    def _claim_slowly(self, key: object, expires_at: object) -> bool:
        """A claim whose key is not a str or expiry not an int: checked (TypeError,
        ValueError), then made."""
        key, expires_at = checked_claim(key, expires_at)
        return _ClaimsInPython.claim(self, key, expires_at)

    def _take_over(self, key: str, expires_at: int, now: float) -> bool:
        """A key taken, but its time has passed: taken over, once (under the lock)."""
        with self._lock:
            current = self._keys.get(key)
            if current is not None and current[0] > now:
                return False
            self._keys[key] = (expires_at,)
            self._due.setdefault(expires_at // _SLOT, []).append(key)
            return True

    def _sweep(self, now: float) -> None:
        if not self._lock.acquire(blocking=False):
            return  # another thread is sweeping
        try:
            if now < self._next_sweep:
                return
            self._next_sweep = now + self._sweep_every
            keys, due = self._keys, self._due
            passed = now // _SLOT  # every expiry in a slot below it is <= now
            # list(due) copies the slots at once (claims add slots meanwhile). Under the
            # lock no entry can change: an expired one is removed as it was seen.
            for slot in list(due):
                if slot < passed:
                    for key in due.pop(slot):
                        entry = keys.get(key)
                        if entry is not None and entry[0] <= now:
                            del keys[key]
        finally:
            self._lock.release()

    def __len__(self) -> int:
        return len(self._keys)


_MAX_EXPIRY = 253_402_300_799  # 9999-12-31T23:59:59Z


def checked_claim(key: object, expires_at: object) -> tuple[str, int]:
    """A claim's key and expiry as a store keeps them (a string; whole seconds), or
    `TypeError`/`ValueError` saying what is wrong: stores call this when a claim's
    arguments are not a `str` and an `int`."""
    if not isinstance(key, str):
        raise TypeError(f"a replay store's key is a string, not {type(key).__name__}")
    if isinstance(expires_at, bool) or not isinstance(expires_at, (int, float)):
        raise TypeError("a replay store's expiry is a Unix time in seconds (an int), not "
                        f"{type(expires_at).__name__}")
    if not math.isfinite(expires_at):
        raise ValueError(f"a replay store's expiry is a finite Unix time, not {expires_at}")
    return str(key), int(expires_at)


class ReplayStoreError(TppolicyError):
    """A replay store cannot be used: its file is held by another process, or cannot be
    opened or written. The message says which file and why, the hint what to change."""

    def __init__(self, path: str, problem: str, hint: str) -> None:
        super().__init__([Diagnostic(f"replay store {path}: {problem}", hint=hint)])
        self.path = path


class SQLiteReplayStore:
    """Claimed keys in a SQLite file, shared by every process that opens it.

    A claim is one prepared statement in its own transaction, committed to the
    write-ahead log before `claim` returns (it survives kill -9 of the process). The
    table is keyed by the claimed key alone (`WITHOUT ROWID`, no other index): a claim
    writes one B-tree. Expired keys are swept at most once a minute per process.

    `exclusive=True` is for a single process that owns the file (one index server process,
    `tppolicy check --replay-db`): the file is locked once, when the store opens, and held
    until it closes (SQLite's `locking_mode=EXCLUSIVE`; the log's index lives in this
    process's memory). A claim then makes no file-lock system calls: 6 fewer per claim,
    about a fifth of its CPU here. Every claim is still committed to the log before `claim`
    returns and survives kill -9 (the next opener recovers the log), and each key is still
    won once (the process's threads share one connection, one claim at a time). Another
    process cannot use the file meanwhile: opening it, shared or exclusive, raises
    `ReplayStoreError` (after `timeout` seconds of waiting for the lock); an exclusive store
    also refuses to open while a shared one has the file open. A shared store (the
    default) takes and drops SQLite's locks around each claim, so any number of processes
    can claim from one file at once.
    """

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time, *,
                 exclusive: bool = False, timeout: float = 30.0) -> None:
        self.path = str(path)
        self.exclusive = exclusive
        self.timeout = timeout
        self._clock = clock
        self._local = threading.local()
        self._next_purge = 0.0
        self._purge_lock = threading.Lock()
        self._open_lock = threading.Lock()
        # exclusive: the one connection every thread uses, one claim at a time
        self._owner: tuple[threading.Lock, sqlite3.Cursor] | None = None
        # Every connection still open, closed when the store is dropped: a connection is
        # in a reference cycle (its statement cache refers to it), so without this it
        # stayed open, and an exclusive store's file locked, until a garbage collection.
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        weakref.finalize(self, _close_all, self._connections)
        db = self._connect()
        try:
            db.execute("CREATE TABLE IF NOT EXISTS used_jti "
                       "(key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID")
            # Files made by earlier versions: a rowid table (kept) and an index on the
            # expiry (dropped: every claim paid for it, the sweep a minute does not need it).
            db.execute("DROP INDEX IF EXISTS used_jti_expiry")
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None

    def _unusable(self, exc: sqlite3.Error) -> ReplayStoreError:
        if "locked" not in str(exc):
            return ReplayStoreError(self.path, f"cannot use the file: {exc}",
                                    "give a SQLite file this process may read and write, in "
                                    "a directory where it may create files (the store adds "
                                    "-wal and -shm files beside it)")
        if self.exclusive:
            return ReplayStoreError(
                self.path, f"the file is locked ({exc}): another process has it open, and a "
                "store opened with exclusive=True must be the file's only user",
                "stop the other process, or open this store without exclusive=True so that "
                "processes share the file")
        return ReplayStoreError(
            self.path, f"the file is locked ({exc}): another process holds its lock (a store "
            "opened with exclusive=True, or a transaction left open)",
            "stop that process, or open every store of this file without exclusive=True")

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection (with its cursor, reused by every claim); exclusive:
        the process's one connection."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            return db
        if self.exclusive:
            with self._open_lock:  # one connection, even when threads claim at once
                owner = self._owner
                if owner is None:
                    self._open()
                    owner = self._owner
                assert owner is not None
                return owner[1].connection
        self._open()
        db = self._local.db
        assert db is not None
        return db

    def _open(self) -> None:
        try:
            # Any thread may close it: the finalizer runs in the thread that drops the
            # store (each thread still uses its own connection, exclusive: one at a time).
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                 check_same_thread=False, factory=_Connection)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        self._connections.add(db)
        try:
            if self.exclusive:  # before WAL is entered: the log's index stays in memory
                db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode, NORMAL: a claim is committed to the log before `claim` returns
            # and survives the process being killed (kill -9); only a power cut or an OS
            # crash may lose the last second of claims, as PyPI's own store (Redis, fsync
            # once a second) does. FULL synced the disk on every claim: 8 ms of a 9 ms check.
            db.execute("PRAGMA synchronous=NORMAL")
            # Each claim appends a page to the log; copying the log back into the database
            # (and syncing it) every 4 000 pages instead of SQLite's 1 000 cut a third of a
            # claim's wall time and a tenth of its CPU here. The log grows to about 16 MB; a
            # claim is as durable either way (it is in the log once committed).
            db.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
            if self.exclusive:  # the lock is taken now, not at the first claim
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            db.close()
            raise self._unusable(exc) from None
        if self.exclusive:
            self._owner = (threading.Lock(), db.cursor())
        else:
            self._local.cursor = db.cursor()
            self._local.db = db

    def claim(self, key: str, expires_at: int) -> bool:
        """Record `key` until `expires_at` (Unix time); False if it is recorded and live.
        A key that is not a string or an expiry that is not a finite number raises
        `TypeError`/`ValueError`; an expiry past the year 9999 is kept as that year."""
        if key.__class__ is not str or expires_at.__class__ is not int \
                or not -_MAX_EXPIRY <= expires_at <= _MAX_EXPIRY:
            key, expires_at = checked_claim(key, expires_at)
            expires_at = max(-_MAX_EXPIRY, min(expires_at, _MAX_EXPIRY))  # a 64-bit column
        now = int(self._clock())
        owner = self._owner
        try:
            if owner is not None:
                with owner[0]:
                    claimed: int = owner[1].execute(_CLAIM, (key, expires_at, now)).rowcount
                    if now >= self._next_purge:
                        self._next_purge = now + 60
                        owner[1].execute(_PURGE, (now,))
                return claimed == 1
            try:
                cursor: sqlite3.Cursor = self._local.cursor
            except AttributeError:  # this thread's first claim (or the first after close)
                self._connect()
                return self.claim(key, expires_at)
            # One statement, atomic in SQLite: a new key is inserted; a key whose time has
            # passed is taken again; a live key is left alone (no row changed: refused).
            claimed = cursor.execute(_CLAIM, (key, expires_at, now)).rowcount
            if now >= self._next_purge and self._purge_lock.acquire(blocking=False):
                try:  # at most once a minute per process: the table stays small
                    self._next_purge = now + 60
                    cursor.execute(_PURGE, (now,))
                finally:
                    self._purge_lock.release()
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        return claimed == 1

    def close(self) -> None:
        """Close the connection this thread (exclusive: the process) uses, releasing an
        exclusive store's lock on the file. A later claim opens it again."""
        owner, self._owner = self._owner, None
        if owner is not None:
            with owner[0]:
                owner[1].connection.close()
        db = getattr(self._local, "db", None)
        if db is not None:
            del self._local.db, self._local.cursor
            db.close()


class _Connection(sqlite3.Connection):
    """A SQLite connection a weak reference can point to (`sqlite3.Connection` takes
    none), so that a dropped store's finalizer can find and close it."""


def _close_all(connections: weakref.WeakSet[_Connection]) -> None:
    """Close the connections of a store that was dropped (its finalizer)."""
    for db in list(connections):
        db.close()


_CHECKPOINT_PAGES = 4000
_CLAIM = ("INSERT INTO used_jti (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
          "SET expires_at = excluded.expires_at WHERE used_jti.expires_at <= ?")
_PURGE = "DELETE FROM used_jti WHERE expires_at <= ?"
