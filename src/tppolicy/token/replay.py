"""Replay protection: each token's `jti` may be used once, claimed atomically.

An index server can back `ReplayStore` with its own store (PyPI uses Redis
`SET NX EXAT`); tppolicy ships an in-memory store, a SQLite one (`--replay-db`) and a
mapped file shared by a host's processes (`MappedReplayStore`).
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import stat
import struct
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar, Protocol

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


# ------------------------------------------------------------------ the mapped store

_HEADER = struct.Struct("=16sIIIIQqQ16s16s")  # _mapped.c's Header, host byte order
_MAGIC = b"tppolicy-replay\n"
_FORMAT_VERSION = 1
_HEADER_BYTES = 4096
_STATES_AT = 512
_PROBE_LIMIT = 64
_MAX_SEGMENTS = (_HEADER_BYTES - _STATES_AT) // 8
_MAX_SLOTS = 1 << 26
_MAX_WINDOW = 1 << 32


class _MappedUnavailable:
    """The stand-in for `_mapped.Mapped` when the install did not compile it (no C
    compiler, `TPPOLICY_NO_EXTENSION=1`, a free-threaded interpreter)."""

    closed = True
    parameters: dict[str, int] | None = None

    def _attach(self, fd: int, clock: Callable[[], float] | None,
                error: type[ReplayStoreError], path: str) -> None:
        raise NotImplementedError

    def claim(self, key: str, expires_at: int) -> bool:
        raise NotImplementedError

    def sync(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to close."""


if TYPE_CHECKING:
    from tppolicy.token._mapped import Mapped as _MappedBase
    from tppolicy.token._mapped import create as _create_mapped
    from tppolicy.token._mapped import reset_lock as _reset_lock
else:
    _MappedBase, _create_mapped, _reset_lock = _MappedUnavailable, None, None
    if EXTENSION_WANTED:
        with contextlib.suppress(ImportError):
            from tppolicy.token._mapped import Mapped as _MappedBase
            from tppolicy.token._mapped import create as _create_mapped
            from tppolicy.token._mapped import reset_lock as _reset_lock


class MappedReplayStore(_MappedBase):
    """Claimed keys in a file that every process of this host maps (`MAP_SHARED`): a
    claim is a SipHash and a few atomic operations on the page cache, no system call:
    about 0.2 µs of CPU here, called from Python (the SQLite store's committed write
    costs 16-19 µs). A page's first write in a window, or after a sync, costs the kernel
    a page fault (1-3 µs), paid by one claim in many when claims are frequent.

    Durability. A claim is written into the kernel's page cache before `claim` returns,
    so it survives kill -9 of the process, like the SQLite store's. A daemon thread
    writes the file to the disk (`msync`) every `sync_every` seconds (1 s; None: never,
    the kernel writes it back within about 30 s): a power cut or an OS crash loses at
    most about the last second of claims, the promise of PyPI's Redis (appendfsync
    everysec) and of the SQLite store (synchronous=NORMAL). A failed sync is kept in
    `sync_error` (claims go on: they are still in the page cache). Same host only:
    network file systems (NFS, SMB...) do not share a mapping's pages between hosts and
    are not supported; the processes share one PID namespace (the mutex is a robust
    futex, whose owner is a thread id: containers sharing the file each in their own PID
    namespace are not supported either). Linux (robust process-shared mutexes, hole
    punching; elsewhere the segment is zeroed in place).

    The file: a header page (magic, format version, parameters, a 16-byte random
    secret made at creation (SipHash's key is 128 bits), one state word per segment, a
    process-shared robust mutex)
    and `segments` segments of `slots` entries of 16 bytes {tag, expiry}. A claim's
    segment is its expiry's epoch (`expires_at // window`) modulo `segments`; its tag is
    SipHash-2-4 of the key's UTF-8 under the file's secret (64 bits: a collision can only
    refuse a claim, fail closed, and nobody who cannot read the file can aim one), plus
    the epoch times a constant. Within an epoch a segment is insert-only, with linear
    probing (the tag taken from 0 by compare-and-swap): claimants of one key meet on one
    slot and exactly one wins, across threads and processes. A key found whose expiry has
    passed is taken again, by one claimant. A segment is recycled for a later epoch
    under the mutex (zeroed: a hole punched, so the file stays sparse); a process killed
    while holding it leaves the work to the next (the mutex is robust: EOWNERDEAD). The
    header keeps the boot the mutex was made in (Linux's boot_id): after a reboot the
    first opener makes it afresh (under flock, which every opener takes), since an OS
    crash may have left it on the disk locked by a thread nobody will see exit.

    Limits, each a `ReplayStoreError` naming the file and a fix (the engine turns it
    into a denial, fail closed): an expiry more than `(segments - 2) * window` seconds
    ahead of now (the horizon: older epochs' claims have all expired when a segment is
    recycled); more than `PROBE_LIMIT` (64) taken slots in a row in a segment (give
    more slots); a claim whose segment already serves a later window (a process's clock
    ran ahead by a window or more and recycled it: the key cannot be looked up, so the
    claim is refused rather than taken as new, as the SQLite store would take it).

    An expiry already passed is True, nothing kept (as the other stores: the key would
    be taken again at once). Keys are kept per window of expiry: a key claimed again
    while live with an expiry in another window is another entry (True).
    tppolicy claims `issuer/jti` until the token's exp: a token used twice has one exp,
    so only an issuer signing two tokens with one jti and different exps would see both
    accepted.

    Defaults: `window` 900 s and 128 `segments` keep claims up to 31.5 h ahead (the
    verifier accepts tokens living up to 24 h, MAX_TOKEN_LIFETIME, plus leeway and
    margin; GitHub's live 5-10 min, GitLab's up to a few hours); 2^15 `slots` per
    segment (512 KiB) hold about 16 000 claims expiring within one 15-minute window at
    half load (64 000 an hour; an index with more gives more slots): filling one with
    random keys, the first claim refused for want of a slot within 64 probes came at
    62-76% load (30 fills; median 70%). The file is 64
    MiB, sparse, its pages made as claims touch them. Small segments in short windows
    keep the pages a claim may touch few: a page's first write in a window, and its
    first after each sync, is a page fault (bench_outside.py on a fresh file: with 2^17
    slots per hour-long window, check_token with this store measured about 0.1x of a
    bare RSA verify above the memory store; with these defaults, at or below it).

    Opening. A missing file is created atomically: its header written into a temporary
    file in the same directory, linked to `path` (if another process linked first, its
    file is used). An existing file's header is checked (magic, version, parameters in
    bounds, size): a truncated, foreign or damaged file raises `ReplayStoreError`. The
    parameters are the file's: one given (not None) that differs from the file's raises
    `ReplayStoreError` (remove the file once no token it recorded is live). The file is
    made readable by its owner only (the secret is in it): processes sharing it run as
    one user.

    Thread-safe (atomics; the GIL is released while waiting for the mutex and while
    syncing). After `os.fork` the child shares the mapping and its claims (the sync
    thread runs in the parent only). `close()` unmaps the file (later claims raise
    `ReplayStoreError`); a dropped store is unmapped too. The key's type and expiry are
    checked as the other stores do (`checked_claim`). `clock` (default `time.time`,
    then read in C from CLOCK_REALTIME) gives now.
    """

    PROBE_LIMIT = _PROBE_LIMIT
    DEFAULTS: ClassVar[Mapping[str, int]] = MappingProxyType(
        {"segments": 128, "slots": 1 << 15, "window": 900})

    sync_error: ReplayStoreError | None
    _boot: bytes  # the boot the file's lock was made in (its header)

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time, *,
                 segments: int | None = None, slots: int | None = None,
                 window: int | None = None, sync_every: float | None = 1.0) -> None:
        self.path = str(path)
        self.sync_error = None
        if _create_mapped is None:
            raise ReplayStoreError(
                self.path, "the C module tppolicy.token._mapped is not available (not "
                "compiled at install, TPPOLICY_NO_EXTENSION=1, or a free-threaded "
                "interpreter)", "install tppolicy where a C compiler is present, or use "
                "SQLiteReplayStore")
        asked = {"segments": segments, "slots": slots, "window": window}
        _check_parameters(asked)
        if sync_every is not None and not (math.isfinite(sync_every) and sync_every > 0):
            raise ValueError(f"sync_every must be a number of seconds > 0 or None, "
                             f"got {sync_every!r}")
        fd = self._open_file({name: value if value is not None else self.DEFAULTS[name]
                              for name, value in asked.items()})
        try:
            found = self._checked_header(fd)
            differ = [f"{name} {value} (the file has {found[name]})"
                      for name, value in asked.items()
                      if value is not None and value != found[name]]
            if differ:
                raise ReplayStoreError(
                    self.path, "the file was made with other parameters: asked "
                    f"{', '.join(differ)}",
                    "open it without those parameters (the file's are used), or remove the "
                    "file once no token it recorded is still live (it is made again)")
            self._lock_of_this_boot(fd)
            try:
                self._attach(fd, None if clock is time.time else clock, ReplayStoreError,
                             self.path)
            except (OSError, ValueError) as exc:
                raise ReplayStoreError(self.path, f"cannot map the file: {exc}",
                                       _MAPPED_HINT) from None
        finally:
            os.close(fd)
        self.sync_every = sync_every
        if sync_every is not None:
            stop = threading.Event()
            weakref.finalize(self, stop.set)
            self._stop_sync = stop
            threading.Thread(target=_sync_every, args=(weakref.ref(self), sync_every, stop),
                             name=f"tppolicy-replay-sync {self.path}", daemon=True).start()

    def _claim_slowly(self, key: object, expires_at: object) -> bool:
        """A claim whose key is not a str or expiry not an int: checked (TypeError,
        ValueError), then made."""
        key, expires_at = checked_claim(key, expires_at)
        return self.claim(key, expires_at)

    def _open_file(self, parameters: dict[str, int]) -> int:
        """The file open for reading and writing, created first when missing."""
        # O_NONBLOCK: a FIFO at the path is refused below, not waited on
        flags = os.O_RDWR | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | \
            getattr(os, "O_NOFOLLOW", 0)
        for _ in range(3):
            try:
                return os.open(self.path, flags)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise ReplayStoreError(self.path, f"cannot open the file: {exc.strerror}",
                                       _MAPPED_HINT) from None
            self._create(parameters)
        raise ReplayStoreError(self.path, "the file vanished while it was being opened",
                               "see what removes it")

    def _create(self, parameters: dict[str, int]) -> None:
        """The file made whole in a temporary file, then linked to its name (a file
        another process linked meanwhile is kept)."""
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tppolicy-replay-",
                                             suffix=".tmp")
        except OSError as exc:
            raise ReplayStoreError(self.path, f"cannot create a file in {folder}: "
                                   f"{exc.strerror}", _MAPPED_HINT) from None
        try:
            assert _create_mapped is not None
            _create_mapped(fd, parameters["segments"], parameters["slots"],
                           parameters["window"], _PROBE_LIMIT, os.urandom(16))
            os.fsync(fd)
            with contextlib.suppress(FileExistsError):
                os.link(temporary, self.path)
        except OSError as exc:
            raise ReplayStoreError(self.path, f"cannot create the file: {exc.strerror}",
                                   _MAPPED_HINT) from None
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        with contextlib.suppress(OSError):  # the new name durable too
            directory = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def _checked_header(self, fd: int) -> dict[str, int]:
        """The file's parameters, or `ReplayStoreError` saying what is wrong."""
        def bad(problem: str) -> ReplayStoreError:
            return ReplayStoreError(
                self.path, f"not a usable replay store file: {problem}",
                "give the path of a file MappedReplayStore made, or a path where none "
                "exists (it is made there); remove a damaged file once no token it "
                "recorded is still live")
        try:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                raise bad("not a regular file")
            size = status.st_size
            head = os.pread(fd, _HEADER_BYTES, 0)
        except OSError as exc:
            raise ReplayStoreError(self.path, f"cannot read the file: {exc.strerror}",
                                   _MAPPED_HINT) from None
        if len(head) < _HEADER.size:
            raise bad(f"{size} bytes, shorter than a header")
        magic, version, header_bytes, segments, probe, slots, window, file_bytes, _, boot = \
            _HEADER.unpack_from(head)
        if magic != _MAGIC:
            raise bad("it does not start with tppolicy's magic (another kind of file)")
        if version != _FORMAT_VERSION:
            raise bad(f"format version {version}; this tppolicy reads version "
                      f"{_FORMAT_VERSION}")
        if header_bytes != _HEADER_BYTES:
            raise bad(f"a header of {header_bytes} bytes (expected {_HEADER_BYTES})")
        found = {"segments": segments, "slots": slots, "window": window}
        try:
            _check_parameters(found)
        except ValueError as exc:
            raise bad(f"its header says {exc}") from None
        if not 1 <= probe <= slots:
            raise bad(f"its header says a probe limit of {probe}")
        expected = _HEADER_BYTES + segments * slots * 16
        if file_bytes != expected:
            raise bad(f"its header gives a size of {file_bytes} bytes, its parameters "
                      f"{expected}")
        if size != expected:
            raise bad(f"{size} bytes, its header says {expected} (truncated or extended)")
        states = struct.unpack_from(f"={segments}q", head, _STATES_AT)
        latest = _MAX_EXPIRY // window + 2
        if any(not 0 <= state <= latest for state in states):
            raise bad("a segment's state word is out of range")
        self._boot = boot
        return found

    def _lock_of_this_boot(self, fd: int) -> None:
        """The file's lock made afresh when it was made in another boot (an OS crash may
        have left it locked by a thread of that boot, whose exit nobody will see), under
        flock: every opener takes it, so no process of this boot uses the lock yet."""
        boot = _boot_id()
        if boot is None or boot == self._boot:
            return
        import fcntl  # here: Linux only (the module imports where there is none)

        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.pread(fd, 16, _BOOT_AT) != boot:  # another opener may have just
                    assert _reset_lock is not None
                    _reset_lock(fd, boot)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:
            raise ReplayStoreError(self.path, f"cannot set up the file's lock: {exc}",
                                   _MAPPED_HINT) from None

    def __enter__(self) -> MappedReplayStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Unmap the file (later claims raise `ReplayStoreError`) and stop the syncs,
        after a last one."""
        stop = getattr(self, "_stop_sync", None)
        if stop is not None:
            stop.set()
        if not self.closed:
            try:
                self.sync()
            except ReplayStoreError as exc:
                self.sync_error = exc
        super().close()


_BOOT_AT = 72  # _mapped.c's Header.boot


def _boot_id() -> bytes | None:
    """This boot's id (Linux: /proc/sys/kernel/random/boot_id), or None where there is
    none (the lock is then never made afresh)."""
    import uuid

    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return uuid.UUID(f.read().strip()).bytes
    except (OSError, ValueError):
        return None


_MAPPED_HINT = ("give a path on a local file system, in a directory where this process may "
                "create files, to a file it may read and write")


def _check_parameters(parameters: dict[str, int | None]) -> None:
    """`ValueError` naming the first parameter (not None) out of bounds."""
    bounds = {"segments": (3, _MAX_SEGMENTS), "slots": (64, _MAX_SLOTS),
              "window": (1, _MAX_WINDOW)}
    for name, value in parameters.items():
        if value is None:
            continue
        low, high = bounds[name]
        if value.__class__ is not int or not low <= value <= high:
            raise ValueError(f"{name} {value!r}: an int from {low} to {high}")
        if name == "slots" and value & (value - 1):
            raise ValueError(f"slots {value}: a power of two")


def _sync_every(ref: weakref.ref[MappedReplayStore], every: float,
                stop: threading.Event) -> None:
    """The sync thread: `msync` every `every` seconds while the store lives and is open."""
    while not stop.wait(every):
        store = ref()
        if store is None or store.closed:
            return
        try:
            store.sync()
        except ReplayStoreError as exc:  # closed meanwhile: seen at the next turn
            store.sync_error = exc
        del store
