"""The index's state: publishers, projects, files, minted credentials (only their
hashes) and the used token ids (`jti`) in a database; distributions in a folder.

The database is one SQLite file (one host) or PostgreSQL (replicas on several hosts),
see `database.py`; its schema is versioned (`migrations.py`). Every process that
opens it sees the same state: the CLI adds a publisher while the server runs,
replicas share it. Writes are transactions; a process killed at any point loses
nothing that was committed and leaves nothing half-written. With SQLite in WAL mode
(`synchronous=NORMAL`) only a power loss can lose the last transactions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tppolicy.decide.names import canonicalize_name, ultranormalize_name

from .database import Database, SQLiteDatabase, Tx, open_database
from .migrations import migrate

log = logging.getLogger("tppolicy.server")

PUBLISHERS_CHANNEL = "tppolicy_publishers"  # NOTIFY'd when the publishers table changes

_FILE_COLUMNS = ("filename, project, version, filetype, requires_python, sha256, size, "
                 "uploaded, uploaded_by, metadata_sha256")

# A token id is held until its token expires; a token whose `exp` no column can hold
# (2^63 and more) is held "for ever" instead of failing the exchange with a 503 (year
# ~31 million: fits SQLite's and PostgreSQL's 64-bit integers and Redis's EXAT in ms).
MAX_JTI_EXPIRY = 10**15
CREDENTIAL_PURGE_AFTER = 24 * 3600  # expired credentials are kept a day (as PyPI), then purged
CREDENTIAL_PURGE_INTERVAL = 60.0  # seconds between two purges by one process


def normalize(name: str) -> str:
    """PEP 503: the one spelling of a project name in URLs and lookups."""
    return canonicalize_name(name)


def hash_credential(credential: str) -> str:
    return hashlib.sha256(credential.encode("utf-8", "surrogatepass")).hexdigest()


def _projects_json(projects: tuple[str, ...]) -> str:
    """A credential's projects as stored: a JSON array of names."""
    return orjson.dumps(list(projects)).decode()


@dataclass(frozen=True, slots=True)
class PublisherRow:
    id: str
    provider: str
    row: dict[str, Any]  # the publishers-file fields: provider, name, projects | pending_project
    added_by: str | None
    created: float

    @property
    def pending_project(self) -> str | None:
        value = self.row.get("pending_project")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Credential:
    hash: str
    publisher_id: str
    publisher: str
    projects: tuple[str, ...]
    issued: float
    expires: float
    jti: str | None
    revoked: bool


class MintScope:
    """One token exchange's writes in ONE transaction: the jti claim and the credential
    (see `Storage.mint_scope`). The transaction begins at the first write (`begin`), so
    verifying and deciding hold no lock; it commits when the scope ends without an
    exception and rolls back otherwise: a credential is stored, and answered, only with
    the claim of its token's jti, and a failure leaves neither."""

    __slots__ = ("_entered", "_storage", "claims", "deferred", "taken", "tx", "undo")

    def __init__(self, storage: Storage, deferred: bool = False) -> None:
        self._storage = storage
        self._entered: AbstractContextManager[Tx] | None = None
        self.tx: Tx | None = None  # the open transaction, once begun
        # Deferred: the claims are only recorded here (and count as made), to be
        # written by `Storage.commit_mints`, which refuses those found taken then.
        self.deferred = deferred
        self.claims: list[tuple[str, int]] = []
        # Claims made outside the transaction (the Redis replay set), taken back if the
        # scope rolls back: a token whose exchange stored nothing stays usable.
        self.undo: list[Callable[[], None]] = []
        # How to take back each claim once the scope has committed (both replay sets):
        # for an exchange that writes more after the scope (a pending publisher's first
        # use, trust on first use) and then mints nothing (`take_back`).
        self.taken: list[Callable[[], None]] = []

    def begin(self) -> Tx:
        """The scope's transaction, begun now if it was not (the write lock from here)."""
        if self.tx is None:
            entered = self._storage.transaction()
            self.tx = entered.__enter__()
            self._entered = entered
        return self.tx

    def end(self, error: BaseException | None = None) -> None:
        """Commit (no `error`) or roll back what was written; later writes of this
        thread take transactions of their own."""
        entered, self._entered, self.tx = self._entered, None, None
        undo, self.undo = self.undo, []
        try:
            if entered is not None:
                if error is None:
                    entered.__exit__(None, None, None)
                else:
                    entered.__exit__(type(error), error, error.__traceback__)
        except BaseException:
            for step in undo:
                step()
            raise
        if error is not None:
            self.taken = []  # rolled back: nothing of this scope is left to take back
            for step in undo:
                step()

    def take_back(self) -> None:
        """After the scope committed, the exchange minted nothing: its token's claims are
        released, so the token can be used again (as when the scope rolls back)."""
        taken, self.taken = self.taken, []
        for step in taken:
            step()


@dataclass(frozen=True, slots=True)
class PendingMint:
    """A credential decided but not yet stored, with the jti claims it needs
    (`Storage.commit_mints`)."""

    claims: tuple[tuple[str, int], ...]
    credential: str
    publisher_id: str
    publisher: str
    projects: tuple[str, ...]
    expires: float
    jti: str | None


@dataclass(frozen=True, slots=True)
class StoredFile:
    filename: str
    project: str
    version: str
    filetype: str
    requires_python: str | None
    sha256: str
    size: int
    uploaded: float
    uploaded_by: str | None
    metadata_sha256: str | None = None  # of the wheel's METADATA, served as PEP 658


class Storage:
    """The server's database and its files folder; safe across threads, processes
    and (on PostgreSQL) hosts. `db` is a path (SQLite) or a `postgresql://` URL."""

    def __init__(self, path: str | os.PathLike[str] | Database,
                 files: str | os.PathLike[str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.database = path if isinstance(path, Database) else open_database(path)
        try:
            migrate(self.database)
        except BaseException:
            self.database.close()
            raise
        self.path: Path | None = self.database.path if isinstance(
            self.database, SQLiteDatabase) else None
        if files is not None:
            self.files_dir = Path(files)
        elif self.path is not None:
            self.files_dir = self.path.parent / (self.path.stem + "-files")
        else:
            self.files_dir = Path("tppolicy-files")
        self.clock = clock
        self._next_credential_purge = 0.0  # expired credentials: purged once a minute
        # row -> its lookup key (`Engine.lookup_key`), stored for the SQL publisher
        # lookup; rows written without one get it from `fill_lookup_keys`.
        self.keyer: Callable[[Mapping[str, Any]], str] | None = None
        # row -> its identity key (`Engine.identity_key`): who the publisher is, for the
        # near misses a refused token is told about (`identity_candidates`).
        self.identity_keyer: Callable[[Mapping[str, Any]], str] | None = None
        self._scopes = threading.local()  # this thread's MintScope, if one is open

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """All or nothing (an exception rolls back). On SQLite the transaction holds
        the write lock from its start (BEGIN IMMEDIATE)."""
        with self.database.transaction() as tx:
            yield tx

    @contextmanager
    def mint_scope(self, deferred: bool = False) -> Iterator[MintScope]:
        """A token exchange on this thread: the jti claim (`SQLiteJtiStore.claim`) and the
        credential (`add_credential(..., scope=)`) are written in one transaction,
        committed as the scope ends (rolled back on an exception). Other writes inside the
        scope must `end()` it first (they take transactions of their own). `deferred`:
        nothing is written, the claims are kept in the scope for `commit_mints`."""
        scope = MintScope(self, deferred)
        self._scopes.scope = scope
        try:
            yield scope
        except BaseException as exc:
            self._scopes.scope = None
            scope.end(exc)
            raise
        self._scopes.scope = None
        scope.end()

    def open_scope(self) -> MintScope | None:
        """This thread's open `mint_scope`, if any."""
        scope: MintScope | None = getattr(self._scopes, "scope", None)
        return scope

    def _query(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[Any]:
        return self.database.query(sql, parameters)

    def _one(self, sql: str, parameters: tuple[Any, ...] = ()) -> Any:
        rows = self.database.query(sql, parameters)
        return rows[0] if rows else None

    def close(self, wait: float = 30.0) -> bool:
        """Close the database once no thread uses it, waiting at most `wait` seconds;
        False (left open) if one still does then (see `Database.close`). Any use after
        this raises `DatabaseUnavailable`."""
        return self.database.close(wait)

    # ------------------------------------------------------------ publishers
    def generation(self) -> int:
        """Changes to the publishers table bump this number (any process)."""
        row = self._one("SELECT value FROM meta WHERE key = 'publishers_generation'")
        return int(row[0]) if row else 0

    def _bump(self, db: Tx) -> None:
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'publishers_generation'")
        self.database.notify(db, PUBLISHERS_CHANNEL)

    def put_publisher(self, publisher_id: str, row: Mapping[str, Any], *,
                      added_by: str | None = None, created: float | None = None,
                      db: Tx | None = None) -> PublisherRow:
        stored = PublisherRow(publisher_id, str(row["provider"]), dict(row), added_by,
                              self.clock() if created is None else created)
        sql = ("INSERT INTO publishers (id, provider, row, pending_project, added_by, created, "
               "lookup_key, identity_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO "
               "UPDATE SET provider = excluded.provider, row = excluded.row, pending_project = "
               "excluded.pending_project, added_by = excluded.added_by, created = "
               "excluded.created, lookup_key = excluded.lookup_key, identity_key = "
               "excluded.identity_key")
        values = (stored.id, stored.provider, json.dumps(stored.row, sort_keys=True),
                  stored.pending_project, stored.added_by, stored.created,
                  self._lookup_key(stored.row), self._identity_key(stored.row))
        if db is None:
            with self.transaction() as tx:
                return self.put_publisher(publisher_id, row, added_by=added_by,
                                          created=stored.created, db=tx)
        self.database.lock(db, f"publisher:{publisher_id}")
        old = db.execute("SELECT row FROM publishers WHERE id = ?", (publisher_id,)).fetchone()
        if old is not None and narrows(json.loads(old[0]), stored.row):
            self._revoke_publisher(db, publisher_id)
        db.execute(sql, values)
        self._bump(db)
        return stored

    def learn_publisher(self, publisher_id: str, learned: Mapping[str, Any],
                        apply: Callable[[PublisherRow], object] | None = None
                        ) -> PublisherRow | tuple[str, Any, Any] | None:
        """Trust on first use: store what a publisher learned from the first token it
        allowed, atomically (any process, any replica). Returns the updated row; or
        (field, value stored, value offered) when the publisher already holds another
        value for a field (another token taught it first); or None if the publisher is
        gone. `apply` sees the changed row inside the transaction: if it raises,
        nothing is stored."""
        with self.transaction() as db:
            self.database.lock(db, f"publisher:{publisher_id}")
            found = db.execute("SELECT id, provider, row, added_by, created FROM publishers "
                               "WHERE id = ?", (publisher_id,)).fetchone()
            if found is None:
                return None
            row = json.loads(found[2])
            changed = False
            for name, value in learned.items():
                held = row.get(name)
                if held is None or held == "":
                    row[name] = value
                    changed = True
                elif held != value:
                    return name, held, value
            stored = PublisherRow(found[0], found[1], row, found[3], found[4])
            if changed:
                if apply is not None:
                    apply(stored)
                db.execute("UPDATE publishers SET row = ?, lookup_key = ?, identity_key = ? "
                           "WHERE id = ?", (json.dumps(row, sort_keys=True),
                                            self._lookup_key(row), self._identity_key(row),
                                            publisher_id))
                self._bump(db)
            return stored

    def _lookup_key(self, row: Mapping[str, Any]) -> str | None:
        if self.keyer is None:
            return None
        try:
            return self.keyer(row)
        except Exception:  # a row the engine refuses is found by no lookup
            return None

    def _identity_key(self, row: Mapping[str, Any]) -> str | None:
        if self.identity_keyer is None:
            return None
        try:
            return self.identity_keyer(row)
        except Exception:  # a row the engine refuses is nobody's near miss
            return None

    def fill_lookup_keys(self, limit: int = 10_000) -> int:
        """Give rows written without a lookup key or an identity key (by a command without
        the engine, or before migrations 4 and 6) theirs; how many rows were filled."""
        filled: set[str] = set()
        for column, compute, present in (("lookup_key", self._lookup_key, self.keyer),
                                         ("identity_key", self._identity_key,
                                          self.identity_keyer)):
            if present is None:
                continue
            rows = self._query(f"SELECT id, row FROM publishers WHERE {column} IS NULL "
                               "LIMIT ?", (limit,))
            for publisher_id, text in rows:
                key = compute(json.loads(text))
                if key is None:
                    continue
                with self.transaction() as db:
                    if db.execute(f"UPDATE publishers SET {column} = ? WHERE id = ? AND "
                                  "row = ?", (key, publisher_id, text)).rowcount:
                        filled.add(publisher_id)
        return len(filled)

    def lookup_candidates(self, provider: str, key: str,
                          pending: bool) -> list[PublisherRow]:
        """The publishers of `provider` stored with this lookup key (index lookup)."""
        rows = self._query(
            "SELECT id, provider, row, added_by, created FROM publishers WHERE provider = ? "
            f"AND lookup_key = ? AND pending_project IS {'NOT ' if pending else ''}NULL",
            (provider, key))
        return [PublisherRow(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def identity_candidates(self, provider: str, identity: str,
                            limit: int) -> list[PublisherRow]:
        """At most `limit` publishers of `provider` stored with this identity key, the
        oldest first (index lookup): the near misses of a refused token."""
        rows = self._query(
            "SELECT id, provider, row, added_by, created FROM publishers WHERE provider = ? "
            "AND identity_key = ? ORDER BY created, id LIMIT ?", (provider, identity, limit))
        return [PublisherRow(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def delete_expired_pending(self, created_before: float, limit: int = 1000) -> list[str]:
        """Delete pending publishers created before `created_before` (expired: the lookup
        already ignores them), at most `limit`; their ids. A row converted meanwhile into
        a normal publisher is kept."""
        with self.transaction() as db:
            ids = [r[0] for r in db.execute(
                "SELECT id FROM publishers WHERE pending_project IS NOT NULL AND created < ? "
                "ORDER BY created LIMIT ?", (created_before, limit)).fetchall()]
            deleted = [publisher_id for publisher_id in ids if db.execute(
                "DELETE FROM publishers WHERE id = ? AND pending_project IS NOT NULL AND "
                "created < ?", (publisher_id, created_before)).rowcount]
            if deleted:
                self._bump(db)
        return deleted

    def void_pending(self, project: str, created_by: str | None,
                     db: Tx | None = None) -> list[str]:
        """A project was created: other owners' pending publishers for a name too
        similar to it are deleted (as the engine voids them). Their ids."""
        if db is None:
            with self.transaction() as tx:
                return self.void_pending(project, created_by, tx)
        target = ultranormalize_name(project)
        voided = []
        for publisher_id, pending, added_by in db.execute(
                "SELECT id, pending_project, added_by FROM publishers WHERE pending_project "
                "IS NOT NULL").fetchall():
            if ultranormalize_name(pending) == target and (created_by is None or
                                                           added_by != created_by):
                db.execute("DELETE FROM publishers WHERE id = ?", (publisher_id,))
                voided.append(publisher_id)
        if voided:
            self._bump(db)
        return voided

    def delete_publisher(self, publisher_id: str,
                         db: Tx | None = None) -> bool:
        if db is not None:
            deleted = db.execute("DELETE FROM publishers WHERE id = ?", (publisher_id,)).rowcount
            self._revoke_publisher(db, publisher_id)
            self._bump(db)
            return bool(deleted)
        with self.transaction() as tx:
            return self.delete_publisher(publisher_id, tx)

    def publishers(self) -> list[PublisherRow]:
        rows = self._query(
            "SELECT id, provider, row, added_by, created FROM publishers ORDER BY created, id")
        return [PublisherRow(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def publisher(self, publisher_id: str, db: Tx | None = None) -> PublisherRow | None:
        sql = "SELECT id, provider, row, added_by, created FROM publishers WHERE id = ?"
        r = db.execute(sql, (publisher_id,)).fetchone() if db is not None else \
            self._one(sql, (publisher_id,))
        return PublisherRow(r[0], r[1], json.loads(r[2]), r[3], r[4]) if r else None

    # ------------------------------------------------------------ custom issuers
    def add_issuer(self, issuer: str, provider: str, added_by: str | None = None) -> None:
        """Register a custom issuer (a self-managed GitLab...) for every replica: they
        trust it from their next sync (the publishers generation is bumped)."""
        with self.transaction() as db:
            db.execute("INSERT INTO issuers (issuer, provider, added_by, created) VALUES "
                       "(?, ?, ?, ?) ON CONFLICT (issuer) DO UPDATE SET provider = "
                       "excluded.provider", (issuer, provider, added_by, self.clock()))
            self._bump(db)

    def issuers(self) -> list[tuple[str, str]]:
        """(issuer, provider) of the custom issuers registered in the database."""
        return [(r[0], r[1]) for r in self._query(
            "SELECT issuer, provider FROM issuers ORDER BY issuer")]

    def pending_ids(self) -> set[str]:
        rows = self._query("SELECT id FROM publishers WHERE pending_project IS NOT NULL")
        return {r[0] for r in rows}

    # ------------------------------------------------------------ projects
    def project_exists(self, name: str) -> bool:
        return self._one("SELECT 1 FROM projects WHERE normalized = ?",
                         (normalize(name),)) is not None

    def exists(self, name: str) -> bool:  # the engine's ProjectCatalog
        return self.project_exists(name)

    def similar_project(self, name: str) -> str | None:
        """An existing project that `name` would be too similar to (PyPI's rule: the same
        ultranormalized name, `Foo-Bar` ~ `foobar` ~ `f00bar`), other than `name`'s own."""
        row = self._one("SELECT name FROM projects WHERE ultranormalized = ? AND "
                        "normalized != ? LIMIT 1", (ultranormalize_name(name), normalize(name)))
        return str(row[0]) if row else None

    def create_project(self, name: str, created_by: str | None = None,
                       db: Tx | None = None) -> bool:
        """True if the project was created now, False if it existed."""
        sql = ("INSERT INTO projects (normalized, name, created, created_by, ultranormalized) "
               "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
        values = (normalize(name), name, self.clock(), created_by, ultranormalize_name(name))
        if db is not None:
            return bool(db.execute(sql, values).rowcount)
        with self.transaction() as tx:
            return bool(tx.execute(sql, values).rowcount)

    def project_creator(self, name: str, db: Tx | None = None) -> str | None:
        """Who created the project (None: unknown, or no such project)."""
        sql = "SELECT created_by FROM projects WHERE normalized = ?"
        row = db.execute(sql, (normalize(name),)).fetchone() if db is not None else \
            self._one(sql, (normalize(name),))
        return str(row[0]) if row and row[0] is not None else None

    def projects(self) -> list[str]:
        """Names (as first spelled) of the projects that have files, sorted."""
        rows = self._query(
            "SELECT p.name FROM projects p WHERE EXISTS "
            "(SELECT 1 FROM files f WHERE f.project = p.normalized) ORDER BY p.normalized")
        return [r[0] for r in rows]

    def project_name(self, normalized: str) -> str | None:
        row = self._one("SELECT name FROM projects WHERE normalized = ?", (normalized,))
        return str(row[0]) if row else None

    # ------------------------------------------------------------ files
    def file_path(self, project: str, filename: str) -> Path:
        return self.files_dir / normalize(project) / filename

    def get_file(self, filename: str) -> StoredFile | None:
        row = self._one(f"SELECT {_FILE_COLUMNS} FROM files WHERE filename = ?", (filename,))
        return StoredFile(*row) if row else None

    def files(self, project: str) -> list[StoredFile]:
        rows = self._query(f"SELECT {_FILE_COLUMNS} FROM files WHERE project = ? "
                           "ORDER BY filename", (normalize(project),))
        return [StoredFile(*row) for row in rows]

    def add_file(self, stored: StoredFile, place: Callable[[], None] | None = None,
                 provenance: str | None = None) -> bool:
        """Record an uploaded file; False if a file of that name exists (see
        `add_release_file`)."""
        return self.add_release_file(stored, None, place, provenance) is None

    def add_release_file(self, stored: StoredFile, release: str | None,
                         place: Callable[[], None] | None = None,
                         provenance: str | None = None) -> str | None:
        """Record an uploaded file of the release `release` (a canonical version) with
        PyPI's rules, in one transaction: a file name is never reused (answers
        "exists"), a release holds one sdist (answers "sdist"); None when recorded.
        `provenance` (PEP 740) is stored with the file, in the same transaction.

        `place` puts the file's content at `file_path` (replacing whatever a writer
        killed earlier left there); it runs inside the transaction that inserts the
        row, after the insert, so it holds the name: a racing upload of the same name
        waits for this one's commit and then finds the row. A kill or a failure before
        the commit leaves no row, so the name stays free."""
        from packaging.utils import canonicalize_version

        with self.transaction() as db:
            if release is not None and stored.filetype == "sdist":
                self.database.lock(db, f"sdists:{normalize(stored.project)}")
                for (version,) in db.execute(
                        "SELECT version FROM files WHERE project = ? AND filetype = 'sdist'",
                        (normalize(stored.project),)).fetchall():
                    if canonicalize_version(version, strip_trailing_zero=True) == release:
                        return "sdist"
            inserted = bool(db.execute(
                f"INSERT INTO files ({_FILE_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (stored.filename, normalize(stored.project), stored.version, stored.filetype,
                 stored.requires_python, stored.sha256, stored.size, stored.uploaded,
                 stored.uploaded_by, stored.metadata_sha256)).rowcount)
            if inserted and provenance is not None:  # PEP 740: with its file or not at all
                self.put_provenance(stored.filename, stored.project, provenance, db=db)
            if inserted and place is not None:
                place()
            return None if inserted else "exists"

    def metadata_path(self, project: str, filename: str) -> Path:
        """Where a wheel's core metadata (PEP 658) lies: beside the wheel."""
        return self.files_dir / normalize(project) / (filename + ".metadata")

    # ------------------------------------------------------------ provenance (PEP 740)
    def put_provenance(self, filename: str, project: str, body: str,
                       db: Tx | None = None) -> None:
        sql = ("INSERT INTO provenance (filename, project, body) VALUES (?, ?, ?) "
               "ON CONFLICT (filename) DO UPDATE SET project = excluded.project, "
               "body = excluded.body")
        if db is not None:
            db.execute(sql, (filename, normalize(project), body))
            return
        with self.transaction() as tx:
            tx.execute(sql, (filename, normalize(project), body))

    def provenance(self, filename: str) -> str | None:
        row = self._one("SELECT body FROM provenance WHERE filename = ?", (filename,))
        return str(row[0]) if row else None

    def with_provenance(self, project: str) -> set[str]:
        """The file names of a project that have provenance."""
        rows = self._query("SELECT filename FROM provenance WHERE project = ?",
                           (normalize(project),))
        return {r[0] for r in rows}

    # ------------------------------------------------------------ credentials
    def add_credential(self, credential: str, *, publisher_id: str, publisher: str,
                       projects: tuple[str, ...], expires: float, jti: str | None,
                       scope: MintScope | None = None) -> None:
        """Store a minted credential: its hash only, never the credential. With `scope`,
        in the scope's transaction (with its token's jti claim), committed as it ends."""
        if scope is not None:
            self._add_credential(scope.begin(), credential, publisher_id, publisher,
                                 projects, expires, jti)
            return
        with self.transaction() as db:
            self._add_credential(db, credential, publisher_id, publisher, projects, expires,
                                 jti)

    def commit_mints(self, mints: list[PendingMint], replay: SQLiteJtiStore) -> list[bool]:
        """Group commit: the jti claims and credentials of several exchanges in ONE
        transaction (one lock, one write of the pages they share). For each, in order:
        its claims are made (`replay`'s rules), and only if all succeed is its credential
        stored; True for those minted. Raises (all rolled back) if the transaction fails,
        `sqlite3.OperationalError` at once when another writer holds the lock on a
        connection that never waits. Nothing expired is purged here (see `purge_expired`).

        One row a statement: a statement writing several rows keeps a journal of the
        pages it changes (to undo itself alone), which SQLite spills to a temporary file
        past 64 KiB (a group of 12 took 15.1 us an exchange that way, 12.3 one row a
        statement)."""
        minted = []
        with self.transaction() as db:
            for mint in mints:
                claimed = all(replay.claim_in(db, key, expires, purge=False)
                              for key, expires in mint.claims)
                if claimed:
                    self._add_credential(db, mint.credential, mint.publisher_id,
                                         mint.publisher, mint.projects, mint.expires,
                                         mint.jti, purge=False)
                minted.append(claimed)
        return minted

    def purge_due(self, replay: SQLiteJtiStore | None) -> bool:
        """Is a purge of expired credentials (or of `replay`'s token ids) due?"""
        now = self.clock()
        return now >= self._next_credential_purge or (
            replay is not None and now >= replay.next_purge)

    def purge_expired(self, replay: SQLiteJtiStore | None) -> None:
        """The purges that are due, in one transaction of their own (for writers that
        leave them out: `commit_mints`, whose thread must not wait on a long delete)."""
        with self.transaction() as db:
            self._purge_credentials(db, self.clock())
            if replay is not None:
                replay.purge(db)

    def _purge_credentials(self, db: Tx, now: float) -> None:
        # As PyPI's daily task: credentials expired for a day are deleted (at most
        # once a minute per process, not a statement more on every mint).
        if now >= self._next_credential_purge:
            self._next_credential_purge = now + CREDENTIAL_PURGE_INTERVAL
            db.execute("DELETE FROM credentials WHERE expires < ?",
                       (now - CREDENTIAL_PURGE_AFTER,))

    def _add_credential(self, db: Tx, credential: str, publisher_id: str, publisher: str,
                        projects: tuple[str, ...], expires: float, jti: str | None,
                        purge: bool = True) -> None:
        now = self.clock()
        db.execute("INSERT INTO credentials (hash, publisher_id, publisher, projects, "
                   "issued, expires, jti) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (hash_credential(credential), publisher_id, publisher,
                    _projects_json(projects), now, expires, jti))
        if purge:
            self._purge_credentials(db, now)

    def credential(self, credential: str) -> Credential | None:
        row = self._one(
            "SELECT hash, publisher_id, publisher, projects, issued, expires, jti, revoked "
            "FROM credentials WHERE hash = ?", (hash_credential(credential),))
        if row is None:
            return None
        return Credential(row[0], row[1], row[2], tuple(json.loads(row[3])), row[4], row[5],
                          row[6], bool(row[7]))

    def _revoke_publisher(self, db: Tx, publisher_id: str) -> int:
        """Revoke the unexpired credentials a publisher minted (it was removed, or
        narrowed: they must not outlive what it may do now)."""
        return int(db.execute("UPDATE credentials SET revoked = 1 WHERE publisher_id = ? AND "
                              "revoked = 0 AND expires > ?",
                              (publisher_id, self.clock())).rowcount)

    def revoke_credential(self, credential: str) -> bool:
        with self.transaction() as db:
            return bool(db.execute("UPDATE credentials SET revoked = 1 WHERE hash = ?",
                                   (hash_credential(credential),)).rowcount)

    def add_credential_projects(self, publisher_id: str, project: str) -> None:
        """Unexpired credentials of a publisher that gained a project may upload to it
        (a pending publisher's first use: the credential is minted with it)."""
        with self.transaction() as db:
            self.database.lock(db, f"credentials:{publisher_id}")
            rows = db.execute("SELECT hash, projects FROM credentials WHERE publisher_id = ? "
                              "AND expires > ?", (publisher_id, self.clock())).fetchall()
            for digest, projects in rows:
                names = json.loads(projects)
                if project not in names:
                    db.execute("UPDATE credentials SET projects = ? WHERE hash = ?",
                               (json.dumps([*names, project]), digest))


def narrows(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Does replacing publisher row `old` by `new` take anything away from credentials
    it minted: a project it may no longer upload to, or any changed identity field
    (a changed publisher is another publisher)? Gaining projects does not."""
    def rest(row: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k not in ("projects", "name")}

    before = {normalize(p) for p in old.get("projects") or () if isinstance(p, str)}
    after = {normalize(p) for p in new.get("projects") or () if isinstance(p, str)}
    return not before <= after or rest(old) != rest(new)


class SQLiteJtiStore:
    """The `ReplayStore` in the server's database (SQLite or PostgreSQL): a token id
    is claimed once, atomically across threads, processes and replicas (INSERT ...
    ON CONFLICT DO NOTHING in a transaction). Inside a `Storage.mint_scope` of the calling
    thread the claim is written in the scope's transaction (committed with the credential).

    The table is keyed by the id alone (no expiry index: a claim writes one B-tree in
    SQLite). Expired ids are purged once a minute, a bounded range of keys at a time
    (`purge`), by one replica of the database at a time: the sweep's position, when it
    is next due and the claims made since the last one are a row of `jti_sweep`, taken
    by the replica that finds it due. Each purge visits at most `purge_rows` ids, or four
    times the claims made since the last one (by every replica) when more, so the sweep
    outpaces the claims whatever the rate and a purge never scans the whole table (an
    expired id not yet swept is claimed again as a new one: the claim checks its
    expiry)."""

    purge_interval = 60.0
    # A replica looks at the shared sweep again this soon after it tried a purge: a
    # purge whose transaction rolled back (nothing of it kept) is made again then.
    purge_retry = 5.0
    purge_rows = 50_000
    SWEEP = "used_jti"  # the row of `jti_sweep`

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.next_purge = 0.0  # when this replica next looks at the sweep (clock time)
        self.claimed = 0  # claims made by this process, not yet counted in the sweep's row

    def claim(self, key: str, expires_at: int) -> bool:
        expires_at = min(int(expires_at), MAX_JTI_EXPIRY)  # a 64-bit column: never overflow
        scope = self.storage.open_scope()
        if scope is not None:
            if scope.deferred:  # made by Storage.commit_mints, or refused there
                scope.claims.append((key, expires_at))
                return True
            claimed = self.claim_in(scope.begin(), key, expires_at)
            if claimed:
                scope.taken.append(lambda: self.release(key, expires_at))
            return claimed
        with self.storage.transaction() as db:
            return self.claim_in(db, key, expires_at)

    def release(self, key: str, expires_at: int) -> None:
        """Take back a committed claim of this process (its exchange minted nothing); the
        row is deleted only if it is still that claim. A failure leaves the token spent
        (fail closed) and is logged."""
        try:
            with self.storage.transaction() as db:
                db.execute("DELETE FROM used_jti WHERE key = ? AND expires_at = ?",
                           (key, expires_at))
        except Exception as exc:  # the database down: the token stays spent (fail closed)
            log.warning("cannot take back the claim of a token whose exchange failed: %s",
                        exc)

    def purge(self, db: Tx) -> bool:
        """Delete the expired token ids among the sweep's next keys, if the shared sweep
        is due and no other replica is making it: two range scans of the primary key, of
        at most the budget each; True when this replica swept. Not due: this replica's
        claims are added to the sweep's count, and it looks again when it is due."""
        now = self.storage.clock()
        if now < self.next_purge:
            return False
        self.next_purge = now + self.purge_retry  # rolled back? tried again soon
        mine, self.claimed = self.claimed, 0
        if not self.storage.database.try_lock(db, "jti_sweep"):
            self.claimed += mine  # another replica is sweeping now: counted next time
            return False
        row = db.execute("SELECT position, due, claims FROM jti_sweep WHERE name = ?",
                         (self.SWEEP,)).fetchone()
        if row is None:  # the row was deleted by hand: start again
            db.execute("INSERT INTO jti_sweep (name, position, due, claims) "
                       "VALUES (?, '', 0, 0)", (self.SWEEP,))
            row = ("", 0.0, 0)
        start, due, claims = str(row[0]), float(row[1]), int(row[2])
        if now < due:  # another replica swept a moment ago
            if mine:
                db.execute("UPDATE jti_sweep SET claims = claims + ? WHERE name = ?",
                           (mine, self.SWEEP))
            self.next_purge = max(self.next_purge, due)
            return False
        budget = max(self.purge_rows, 4 * (claims + mine))
        row = db.execute("SELECT key FROM used_jti WHERE key > ? ORDER BY key LIMIT 1 "
                         "OFFSET ?", (start, budget - 1)).fetchone()
        if row is None:  # the rest of the table: the next sweep starts again at the first
            db.execute("DELETE FROM used_jti WHERE key > ? AND expires_at <= ?",
                       (start, int(now)))
            end = ""
        else:
            end = str(row[0])
            db.execute("DELETE FROM used_jti WHERE key > ? AND key <= ? AND expires_at <= ?",
                       (start, end, int(now)))
        db.execute("UPDATE jti_sweep SET position = ?, due = ?, claims = 0 WHERE name = ?",
                   (end, now + self.purge_interval, self.SWEEP))
        return True

    def claim_in(self, db: Tx, key: str, expires_at: int, purge: bool = True) -> bool:
        """`claim` in the transaction `db` (committed by its owner); with `purge`, the
        expired ids are deleted first when that is due."""
        now = self.storage.clock()
        if purge:
            self.purge(db)
        self.claimed += 1
        inserted = db.execute("INSERT INTO used_jti (key, expires_at) VALUES (?, ?) "
                              "ON CONFLICT DO NOTHING", (key, expires_at)).rowcount
        if not inserted:  # present: still valid, or expired and not yet purged
            inserted = db.execute("UPDATE used_jti SET expires_at = ? WHERE key = ? AND "
                                  "expires_at <= ?", (expires_at, key, int(now))).rowcount
        return bool(inserted == 1)
