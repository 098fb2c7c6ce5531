"""The index's state in one SQLite file: publishers, projects, files, minted
credentials (only their hashes) and the used token ids (`jti`); distributions on disk.

Every process that opens the file sees the same state (WAL mode): the CLI adds a
publisher while the server runs, replicas on one host share it. Each thread has its
own connection. Writes are transactions; a process killed at any point loses nothing
that was committed (`synchronous=NORMAL` in WAL mode: only a power loss can lose the
last transactions).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('publishers_generation', 0);
CREATE TABLE IF NOT EXISTS publishers (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    row TEXT NOT NULL,
    pending_project TEXT,
    added_by TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS projects (
    normalized TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created REAL NOT NULL,
    created_by TEXT
);
CREATE TABLE IF NOT EXISTS files (
    filename TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    version TEXT NOT NULL,
    filetype TEXT NOT NULL,
    requires_python TEXT,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    uploaded REAL NOT NULL,
    uploaded_by TEXT
);
CREATE INDEX IF NOT EXISTS files_project ON files (project);
CREATE TABLE IF NOT EXISTS credentials (
    hash TEXT PRIMARY KEY,
    publisher_id TEXT NOT NULL,
    publisher TEXT NOT NULL,
    projects TEXT NOT NULL,
    issued REAL NOT NULL,
    expires REAL NOT NULL,
    jti TEXT,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS credentials_expires ON credentials (expires);
CREATE TABLE IF NOT EXISTS used_jti (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS used_jti_expires ON used_jti (expires_at);
CREATE TABLE IF NOT EXISTS provenance (
    filename TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS provenance_project ON provenance (project);
"""

# Columns added after a table was first created: (table, column, SQL type); a database
# made by an older version gains them when opened.
ADDED_COLUMNS = (("files", "metadata_sha256", "TEXT"),)
_FILE_COLUMNS = ("filename, project, version, filetype, requires_python, sha256, size, "
                 "uploaded, uploaded_by, metadata_sha256")

CREDENTIAL_PURGE_AFTER = 24 * 3600  # expired credentials are kept a day (as PyPI), then purged
_NORMALIZE = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """PEP 503: the one spelling of a project name in URLs and lookups."""
    return _NORMALIZE.sub("-", name).lower()


def hash_credential(credential: str) -> str:
    return hashlib.sha256(credential.encode("utf-8", "surrogatepass")).hexdigest()


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
    """The server's SQLite file and its files folder; safe across threads and processes."""

    def __init__(self, path: str | os.PathLike[str], files: str | os.PathLike[str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.files_dir = Path(files) if files is not None else self.path.parent / (
            self.path.stem + "-files")
        self.clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db().executescript(SCHEMA)
        self._add_columns()

    def _add_columns(self) -> None:
        with self.transaction() as db:
            for table, column, kind in ADDED_COLUMNS:
                present = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    # ------------------------------------------------------------ connections
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
            with self._guard:
                self._connections.append(db)
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception)."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        with self._guard:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    # ------------------------------------------------------------ publishers
    def generation(self) -> int:
        """Changes to the publishers table bump this number (any process)."""
        row = self._db().execute(
            "SELECT value FROM meta WHERE key = 'publishers_generation'").fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _bump(db: sqlite3.Connection) -> None:
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'publishers_generation'")

    def put_publisher(self, publisher_id: str, row: Mapping[str, Any], *,
                      added_by: str | None = None, created: float | None = None,
                      db: sqlite3.Connection | None = None) -> PublisherRow:
        stored = PublisherRow(publisher_id, str(row["provider"]), dict(row), added_by,
                              self.clock() if created is None else created)
        sql = ("INSERT OR REPLACE INTO publishers (id, provider, row, pending_project, "
               "added_by, created) VALUES (?, ?, ?, ?, ?, ?)")
        values = (stored.id, stored.provider, json.dumps(stored.row, sort_keys=True),
                  stored.pending_project, stored.added_by, stored.created)
        if db is not None:
            db.execute(sql, values)
            self._bump(db)
        else:
            with self.transaction() as tx:
                tx.execute(sql, values)
                self._bump(tx)
        return stored

    def delete_publisher(self, publisher_id: str,
                         db: sqlite3.Connection | None = None) -> bool:
        if db is not None:
            deleted = db.execute("DELETE FROM publishers WHERE id = ?", (publisher_id,)).rowcount
            self._bump(db)
            return bool(deleted)
        with self.transaction() as tx:
            return self.delete_publisher(publisher_id, tx)

    def publishers(self) -> list[PublisherRow]:
        rows = self._db().execute(
            "SELECT id, provider, row, added_by, created FROM publishers ORDER BY created, id"
        ).fetchall()
        return [PublisherRow(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def publisher(self, publisher_id: str) -> PublisherRow | None:
        r = self._db().execute("SELECT id, provider, row, added_by, created FROM publishers "
                               "WHERE id = ?", (publisher_id,)).fetchone()
        return PublisherRow(r[0], r[1], json.loads(r[2]), r[3], r[4]) if r else None

    def pending_ids(self) -> set[str]:
        rows = self._db().execute(
            "SELECT id FROM publishers WHERE pending_project IS NOT NULL").fetchall()
        return {r[0] for r in rows}

    # ------------------------------------------------------------ projects
    def project_exists(self, name: str) -> bool:
        return self._db().execute("SELECT 1 FROM projects WHERE normalized = ?",
                                  (normalize(name),)).fetchone() is not None

    def exists(self, name: str) -> bool:  # the engine's ProjectCatalog
        return self.project_exists(name)

    def create_project(self, name: str, created_by: str | None = None,
                       db: sqlite3.Connection | None = None) -> bool:
        """True if the project was created now, False if it existed."""
        sql = ("INSERT OR IGNORE INTO projects (normalized, name, created, created_by) "
               "VALUES (?, ?, ?, ?)")
        values = (normalize(name), name, self.clock(), created_by)
        if db is not None:
            return bool(db.execute(sql, values).rowcount)
        with self.transaction() as tx:
            return bool(tx.execute(sql, values).rowcount)

    def projects(self) -> list[str]:
        """Names (as first spelled) of the projects that have files, sorted."""
        rows = self._db().execute(
            "SELECT p.name FROM projects p WHERE EXISTS "
            "(SELECT 1 FROM files f WHERE f.project = p.normalized) ORDER BY p.normalized"
        ).fetchall()
        return [r[0] for r in rows]

    def project_name(self, normalized: str) -> str | None:
        row = self._db().execute("SELECT name FROM projects WHERE normalized = ?",
                                 (normalized,)).fetchone()
        return str(row[0]) if row else None

    # ------------------------------------------------------------ files
    def file_path(self, project: str, filename: str) -> Path:
        return self.files_dir / normalize(project) / filename

    def get_file(self, filename: str) -> StoredFile | None:
        row = self._db().execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE filename = ?", (filename,)).fetchone()
        return StoredFile(*row) if row else None

    def files(self, project: str) -> list[StoredFile]:
        rows = self._db().execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE project = ? ORDER BY filename",
            (normalize(project),)).fetchall()
        return [StoredFile(*row) for row in rows]

    def add_file(self, stored: StoredFile) -> bool:
        """Record an uploaded file; False if a file of that name exists."""
        with self.transaction() as db:
            return bool(db.execute(
                f"INSERT OR IGNORE INTO files ({_FILE_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (stored.filename, normalize(stored.project), stored.version, stored.filetype,
                 stored.requires_python, stored.sha256, stored.size, stored.uploaded,
                 stored.uploaded_by, stored.metadata_sha256)).rowcount)

    def metadata_path(self, project: str, filename: str) -> Path:
        """Where a wheel's core metadata (PEP 658) lies: beside the wheel."""
        return self.files_dir / normalize(project) / (filename + ".metadata")

    # ------------------------------------------------------------ provenance (PEP 740)
    def put_provenance(self, filename: str, project: str, body: str,
                       db: sqlite3.Connection | None = None) -> None:
        sql = ("INSERT OR REPLACE INTO provenance (filename, project, body) VALUES (?, ?, ?)")
        if db is not None:
            db.execute(sql, (filename, normalize(project), body))
            return
        with self.transaction() as tx:
            tx.execute(sql, (filename, normalize(project), body))

    def provenance(self, filename: str) -> str | None:
        row = self._db().execute("SELECT body FROM provenance WHERE filename = ?",
                                 (filename,)).fetchone()
        return str(row[0]) if row else None

    def with_provenance(self, project: str) -> set[str]:
        """The file names of a project that have provenance."""
        rows = self._db().execute("SELECT filename FROM provenance WHERE project = ?",
                                  (normalize(project),)).fetchall()
        return {r[0] for r in rows}

    # ------------------------------------------------------------ credentials
    def add_credential(self, credential: str, *, publisher_id: str, publisher: str,
                       projects: tuple[str, ...], expires: float, jti: str | None) -> None:
        """Store a minted credential: its hash only, never the credential."""
        now = self.clock()
        with self.transaction() as db:
            db.execute("INSERT INTO credentials (hash, publisher_id, publisher, projects, "
                       "issued, expires, jti) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (hash_credential(credential), publisher_id, publisher,
                        json.dumps(list(projects)), now, expires, jti))
            # As PyPI's daily task: credentials expired for a day are deleted.
            db.execute("DELETE FROM credentials WHERE expires < ?",
                       (now - CREDENTIAL_PURGE_AFTER,))

    def credential(self, credential: str) -> Credential | None:
        row = self._db().execute(
            "SELECT hash, publisher_id, publisher, projects, issued, expires, jti, revoked "
            "FROM credentials WHERE hash = ?", (hash_credential(credential),)).fetchone()
        if row is None:
            return None
        return Credential(row[0], row[1], row[2], tuple(json.loads(row[3])), row[4], row[5],
                          row[6], bool(row[7]))

    def revoke_credential(self, credential: str) -> bool:
        with self.transaction() as db:
            return bool(db.execute("UPDATE credentials SET revoked = 1 WHERE hash = ?",
                                   (hash_credential(credential),)).rowcount)

    def add_credential_projects(self, publisher_id: str, project: str) -> None:
        """Unexpired credentials of a publisher that gained a project may upload to it
        (a pending publisher's first use: the credential is minted with it)."""
        with self.transaction() as db:
            rows = db.execute("SELECT hash, projects FROM credentials WHERE publisher_id = ? "
                              "AND expires > ?", (publisher_id, self.clock())).fetchall()
            for digest, projects in rows:
                names = json.loads(projects)
                if project not in names:
                    db.execute("UPDATE credentials SET projects = ? WHERE hash = ?",
                               (json.dumps([*names, project]), digest))


class SQLiteJtiStore:
    """The `ReplayStore` on the server's SQLite file: a token id is claimed once,
    atomically across threads and processes (INSERT OR IGNORE in an IMMEDIATE
    transaction). Expired ids are purged at most once a minute, by index."""

    purge_interval = 60.0

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._next_purge = 0.0

    def claim(self, key: str, expires_at: int) -> bool:
        now = self.storage.clock()
        with self.storage.transaction() as db:
            if now >= self._next_purge:
                self._next_purge = now + self.purge_interval
                db.execute("DELETE FROM used_jti WHERE expires_at <= ?", (int(now),))
            inserted = db.execute("INSERT OR IGNORE INTO used_jti (key, expires_at) "
                                  "VALUES (?, ?)", (key, expires_at)).rowcount
            if not inserted:  # present: still valid, or expired and not yet purged
                inserted = db.execute("UPDATE used_jti SET expires_at = ? WHERE key = ? AND "
                                      "expires_at <= ?", (expires_at, key, int(now))).rowcount
        return inserted == 1
