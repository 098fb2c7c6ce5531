"""The database under the index server: one SQLite file (one host) or PostgreSQL
(several replicas on several hosts), behind one small interface.

    db = open_database("index.db")                              # SQLite
    db = open_database("postgresql://tpp@db.internal:5432/index")  # PostgreSQL
    with db.transaction() as tx:
        tx.execute("INSERT INTO projects (...) VALUES (?, ?) ON CONFLICT DO NOTHING", (...))
    rows = db.query("SELECT ... WHERE id = ?", (publisher_id,))

SQL is written once, in the subset both understand (`?` placeholders, `ON CONFLICT`);
`?` becomes `%s` for PostgreSQL. The layer for PostgreSQL is psycopg 3 with its
connection pool: the server's statements are few and hand-written, so an ORM or
SQLAlchemy Core would add a layer (and its per-statement cost) without removing SQL;
psycopg gives the pool, prepared statements and LISTEN/NOTIFY directly.

A database that cannot be reached raises `DatabaseUnavailable` (the server answers
503); the pool re-checks a connection before lending it, so a restarted PostgreSQL
is used again without restarting the replicas.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class Unavailable(Exception):
    """A service the index needs (its database, Redis) cannot be reached now: the
    request fails with 503 and may be retried; the log gets one line, no traceback."""


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached now (down, restarting, no free connection):
    the request fails with 503 and may be retried; nothing was half-written."""


class Uses:
    """The uses of a database under way (a query, a transaction, a checkpoint), so that
    it is never closed under a thread still using it. Once `close` began, a new use is
    refused and a transaction under way does not commit: both raise
    `DatabaseUnavailable` (503), never reach a closed connection."""

    __slots__ = ("_idle", "_lock", "active", "closing", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.active = 0
        self.closing = False

    def enter(self) -> None:
        """One use begins (refused once closing)."""
        with self._lock:
            if self.closing:
                raise self.refusal()
            self.active += 1

    def leave(self) -> None:
        """One use ended."""
        with self._lock:
            self.active -= 1
            if self.active == 0 and self.closing:
                self._idle.notify_all()

    def check(self) -> None:
        """`DatabaseUnavailable` once closing."""
        if self.closing:
            raise self.refusal()

    def refusal(self) -> DatabaseUnavailable:
        return DatabaseUnavailable(f"the database {self.name} is closed: the server is "
                                   "stopping")

    def close(self, wait: float) -> bool:
        """Refuse new uses; True once none is under way, False if some still is after
        `wait` seconds."""
        with self._lock:
            self.closing = True
            return self._idle.wait_for(lambda: self.active == 0, max(0.0, wait))


class Cursor(Protocol):
    """What a statement returns (sqlite3's and psycopg's cursors both fit)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    """A transaction: statements with `?` placeholders."""

    def execute(self, sql: str, parameters: Sequence[Any] = ...) -> Cursor: ...


def is_url(target: str | os.PathLike[str]) -> bool:
    """Does `--db` name a URL (`scheme://...`) rather than a file?"""
    return isinstance(target, str) and bool(_URL.match(target))


def check_target(target: str | os.PathLike[str]) -> None:
    """Raise ValueError for a URL of a database this server cannot use."""
    if is_url(target):
        scheme = str(target).split("://", 1)[0].lower()
        if scheme not in POSTGRES_SCHEMES and scheme != "sqlite":
            raise ValueError(f"unknown database URL scheme {scheme!r}: give a file path "
                             "(SQLite), sqlite:///PATH, or postgresql://USER@HOST:PORT/DB")


def redact(target: str | os.PathLike[str]) -> str:
    """The database's name for messages: a URL without its password."""
    if not is_url(target):
        return str(target)
    parts = urlsplit(str(target))
    if parts.password is None:
        return str(target)
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def open_database(target: str | os.PathLike[str], *, max_connections: int = 10,
                  wait: float = 5.0) -> Database:
    """SQLite for a path or `sqlite:///PATH`, PostgreSQL for `postgresql://...`;
    ValueError for any other URL."""
    check_target(target)
    if not is_url(target):
        return SQLiteDatabase(Path(target))
    scheme, rest = str(target).split("://", 1)
    if scheme.lower() == "sqlite":
        return SQLiteDatabase(Path(rest[1:] if rest.startswith("/") else rest))  # as SQLAlchemy
    return PostgresDatabase("postgresql://" + rest, max_connections=max_connections,
                            wait=wait, name=redact(target))


class Database:
    """One database; thread-safe. Subclasses: SQLite and PostgreSQL."""

    dialect: str = ""
    name: str = ""

    def transaction(self) -> AbstractContextManager[Tx]:
        """All statements inside commit together, or none (an exception rolls back).
        On SQLite the transaction holds the write lock from its start."""
        raise NotImplementedError

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """The rows of one read-only statement (no transaction around it)."""
        raise NotImplementedError

    def lock(self, tx: Tx, name: str) -> None:
        """Serialize transactions on `name` (across processes and hosts) until `tx` ends."""

    def try_lock(self, tx: Tx, name: str) -> bool:
        """`lock` without waiting: False when another transaction holds `name`. SQLite:
        always True (a write transaction holds the database's write lock already)."""
        return True

    def listen(self, channel: str, callback: Callable[[], None],
               stop: threading.Event) -> bool:
        """Call `callback` on each notification of `channel` until `stop` is set; False
        when the database cannot notify (SQLite): poll instead."""
        return False

    def notify(self, tx: Tx, channel: str) -> None:
        """Notify `channel`'s listeners when `tx` commits."""

    def checkpoint(self) -> None:
        """Move what was committed into the database's files, where the database leaves
        that to its clients (SQLite's write-ahead log); else nothing."""

    def close(self, wait: float = 30.0) -> bool:
        """Refuse new uses (`DatabaseUnavailable`), let those under way end (a
        transaction not yet committed rolls back), waiting at most `wait` seconds, then
        close every connection: True. False when a use outlasted the wait: nothing was
        closed (closing a connection under the thread using it can crash the process);
        the process may exit, the database recovers (SQLite's log, PostgreSQL's
        sessions)."""
        return True


class _Connection(sqlite3.Connection):
    """A SQLite connection the database can hold weakly (`SQLiteDatabase._connections`)."""

    __slots__ = ("__weakref__",)


class SQLiteDatabase(Database):
    """One SQLite file in WAL mode: every process that opens it sees the same state.
    Each thread has its own connection; `BEGIN IMMEDIATE` serializes writers."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self._local = threading.local()
        # Held weakly: a worker thread's connection is closed when the thread ends (the
        # thread pool retires idle threads; each new one opens its own), not kept open
        # until the server stops.
        self._connections: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()
        self._guard = threading.Lock()
        self.uses = Uses(self.name)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connection()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; transactions are explicit);
        `DatabaseUnavailable` once the database is closing."""
        self.uses.check()
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                 check_same_thread=False, factory=_Connection)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            with self._guard:
                try:
                    self.uses.check()
                except DatabaseUnavailable:  # closed meanwhile: not left open
                    db.close()
                    raise
                self._connections.add(db)
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        uses = self.uses
        uses.enter()
        try:
            db = self.connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if uses.closing:  # nobody will be answered: nothing is stored
                db.execute("ROLLBACK")
                raise uses.refusal()
            db.execute("COMMIT")
        finally:
            uses.leave()

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        uses = self.uses
        uses.enter()
        try:
            return self.connection().execute(sql, parameters).fetchall()
        finally:
            uses.leave()

    def never_wait(self) -> None:
        """This thread's connection never waits for another connection's write lock
        (`sqlite3.OperationalError` at once instead) and never checkpoints the log (a
        checkpoint writes and syncs the database file): the event loop's connection.
        Another thread calls `checkpoint`."""
        self.uses.enter()
        try:
            connection = self.connection()
            connection.execute("PRAGMA busy_timeout=0")
            connection.execute("PRAGMA wal_autocheckpoint=0")
        finally:
            self.uses.leave()

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file, as far as no reader needs it
        (SQLite's PASSIVE checkpoint, what a commit does every 1000 pages by itself)."""
        self.uses.enter()
        try:
            self.connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            self.uses.leave()

    def close(self, wait: float = 30.0) -> bool:
        if not self.uses.close(wait):
            return False
        with self._guard:
            for db in list(self._connections):
                db.close()
            self._connections.clear()
        self._local = threading.local()
        return True


class _PgTx:
    """A psycopg connection inside a transaction, taking `?` placeholders."""

    __slots__ = ("connection",)

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        cursor: Cursor = self.connection.execute(sql.replace("?", "%s"), parameters,
                                                 prepare=True)
        return cursor


class PostgresDatabase(Database):
    """PostgreSQL through a psycopg 3 connection pool. Reads run in autocommit; writes
    in `transaction()` (READ COMMITTED, with `lock()` where a step must not race)."""

    dialect = "postgresql"

    def __init__(self, conninfo: str, *, max_connections: int = 10, wait: float = 5.0,
                 name: str = "") -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise ValueError(f"a PostgreSQL --db needs psycopg ({exc.name} is missing): "
                             "pip install 'tppolicy[postgres]'") from None
        self._errors: tuple[type[BaseException], ...] = (psycopg.OperationalError,
                                                         psycopg.InterfaceError)
        from psycopg_pool import PoolClosed, PoolTimeout

        # PoolClosed: a thread still at work while the server stops (`close`)
        self._errors += (PoolClosed, PoolTimeout)
        self.conninfo = conninfo
        self.name = name or conninfo
        self.uses = Uses(self.name)
        self.wait = wait
        try:  # fail at start, with PostgreSQL's own words, when it cannot be reached
            psycopg.connect(conninfo, connect_timeout=max(1, int(wait))).close()
        except psycopg.ProgrammingError as exc:  # a malformed URL
            raise ValueError(" ".join(str(exc).split())) from None
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"PostgreSQL at {self.name} is unavailable: "
                                      f"{' '.join(str(exc).split())}") from None
        self.pool: ConnectionPool[Any] = ConnectionPool(
            conninfo, min_size=1, max_size=max_connections, open=False, timeout=wait,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(wait))},
            check=self._check, reconnect_timeout=float("inf"), name="tppolicy")
        self.pool.open(wait=False)

    # Connections are checked (one more round trip) only for a while after a failure:
    # a restarted PostgreSQL leaves every pooled connection broken, and the first
    # failure makes the pool test and replace the others before lending them.
    SUSPECT_FOR = 30.0
    _suspect_until = 0.0

    def _check(self, connection: Any) -> None:
        if time.monotonic() < self._suspect_until:
            from psycopg_pool import ConnectionPool

            ConnectionPool.check_connection(connection)

    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            self._suspect_until = time.monotonic() + self.SUSPECT_FOR
            raise DatabaseUnavailable(f"PostgreSQL at {self.name} is unavailable: "
                                      f"{' '.join(str(exc).split()) or type(exc).__name__}"
                                      ) from exc

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        uses = self.uses
        uses.enter()
        try:
            with self._unavailable(), self.pool.connection() as connection, \
                    connection.transaction():
                yield _PgTx(connection)
                if uses.closing:  # nobody will be answered: rolled back
                    raise uses.refusal()
        finally:
            uses.leave()

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """A read: on a connection found broken (PostgreSQL restarted since it was
        pooled), tried once more on another."""
        self.uses.enter()
        try:
            return self._query(sql, parameters)
        finally:
            self.uses.leave()

    def _query(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        for attempt in (1, 2):
            connection: Any = None
            try:
                with self._unavailable(), self.pool.connection() as connection:
                    rows: list[Any] = connection.execute(sql.replace("?", "%s"), parameters,
                                                         prepare=True).fetchall()
                    return rows
            except DatabaseUnavailable:
                if attempt == 2 or connection is None or not connection.broken:
                    raise
        raise AssertionError("unreachable")

    def lock(self, tx: Tx, name: str) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (name,))

    def try_lock(self, tx: Tx, name: str) -> bool:
        row = tx.execute("SELECT pg_try_advisory_xact_lock(hashtext(?))", (name,)).fetchone()
        return bool(row[0])

    def notify(self, tx: Tx, channel: str) -> None:
        tx.execute("SELECT pg_notify(?, '')", (channel,))

    def listen(self, channel: str, callback: Callable[[], None],
               stop: threading.Event) -> bool:
        """LISTEN on a connection of its own (outside the pool), reconnecting after a
        failure; `callback` is also called after each (re)connection, since
        notifications sent while disconnected are lost."""
        import psycopg

        def run() -> None:
            while not stop.is_set():
                try:
                    with psycopg.connect(self.conninfo, autocommit=True,
                                         connect_timeout=max(1, int(self.wait))) as conn:
                        conn.execute(f'LISTEN "{channel}"')
                        callback()
                        while not stop.is_set():
                            for _ in conn.notifies(timeout=0.5, stop_after=1):
                                callback()
                except Exception:
                    stop.wait(0.5)

        threading.Thread(target=run, name=f"tppolicy-listen-{channel}", daemon=True).start()
        return True

    def close(self, wait: float = 30.0) -> bool:
        if not self.uses.close(wait):
            return False
        self.pool.close()
        return True
