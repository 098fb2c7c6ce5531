"""Versioned schema migrations: the database records which have been applied
(`schema_migrations`), and opening it applies the missing ones, in order, in one
transaction (with a lock, so replicas starting together migrate once). An upgrade
never needs a hand-written `ALTER`; a database made by an older tppolicy (an SQLite
file without `schema_migrations`) is upgraded in place, since migration 1 creates
only what is missing.

To change the schema: append a `Migration` with the next version. Never edit one
that was released. Keep each additive where possible (new tables, new nullable
columns, new indexes), so replicas of the previous version keep working during a
rolling upgrade.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .database import Database, Tx

# Types that differ: timestamps are float seconds (REAL is 4 bytes in PostgreSQL).
# `{without_rowid}`: a table stored as one B-tree keyed by its primary key (SQLite only).
_TYPES = {"sqlite": {"real": "REAL", "bigint": "INTEGER", "without_rowid": " WITHOUT ROWID"},
          "postgresql": {"real": "DOUBLE PRECISION", "bigint": "BIGINT", "without_rowid": ""}}


@dataclass(frozen=True, slots=True)
class Migration:
    """One step: statements with `{real}`/`{bigint}` for the types that differ."""

    version: int
    description: str
    statements: tuple[str, ...]
    # (table, column, SQL type): added unless present (a database made before
    # migrations existed may already have them)
    columns: tuple[tuple[str, str, str], ...] = ()

    def sql(self, dialect: str) -> list[str]:
        return [statement.format(**_TYPES[dialect]) for statement in self.statements]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "publishers, projects, files, credentials, used token ids", (
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value {bigint} NOT NULL)",
        "INSERT INTO meta (key, value) VALUES ('publishers_generation', 0) "
        "ON CONFLICT DO NOTHING",
        """CREATE TABLE IF NOT EXISTS publishers (
            id TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            row TEXT NOT NULL,
            pending_project TEXT,
            added_by TEXT,
            created {real} NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS projects (
            normalized TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            created {real} NOT NULL,
            created_by TEXT)""",
        """CREATE TABLE IF NOT EXISTS files (
            filename TEXT PRIMARY KEY,
            project TEXT NOT NULL,
            version TEXT NOT NULL,
            filetype TEXT NOT NULL,
            requires_python TEXT,
            sha256 TEXT NOT NULL,
            size {bigint} NOT NULL,
            uploaded {real} NOT NULL,
            uploaded_by TEXT)""",
        "CREATE INDEX IF NOT EXISTS files_project ON files (project)",
        """CREATE TABLE IF NOT EXISTS credentials (
            hash TEXT PRIMARY KEY,
            publisher_id TEXT NOT NULL,
            publisher TEXT NOT NULL,
            projects TEXT NOT NULL,
            issued {real} NOT NULL,
            expires {real} NOT NULL,
            jti TEXT,
            revoked INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX IF NOT EXISTS credentials_expires ON credentials (expires)",
        "CREATE TABLE IF NOT EXISTS used_jti (key TEXT PRIMARY KEY, "
        "expires_at {bigint} NOT NULL)",
        "CREATE INDEX IF NOT EXISTS used_jti_expires ON used_jti (expires_at)",
    )),
    Migration(2, "core metadata of wheels (PEP 658), provenance (PEP 740)", (
        """CREATE TABLE IF NOT EXISTS provenance (
            filename TEXT PRIMARY KEY,
            project TEXT NOT NULL,
            body TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS provenance_project ON provenance (project)",
    ), columns=(("files", "metadata_sha256", "TEXT"),)),
    Migration(3, "projects' ultranormalized names (look-alikes), credentials by publisher", (
        "ALTER TABLE projects ADD COLUMN ultranormalized TEXT",
        # ultranormalize_name in SQL: `normalized` is lowercase already
        "UPDATE projects SET ultranormalized = replace(replace(replace(replace(replace("
        "replace(normalized, '.', ''), '_', ''), '-', ''), 'l', '1'), 'i', '1'), 'o', '0') "
        "WHERE ultranormalized IS NULL",
        "CREATE INDEX IF NOT EXISTS projects_ultranormalized ON projects (ultranormalized)",
        "CREATE INDEX IF NOT EXISTS credentials_publisher ON credentials (publisher_id)",
    )),
    Migration(4, "publishers' lookup keys (the SQL publisher lookup)", (
        "CREATE INDEX IF NOT EXISTS publishers_lookup ON publishers (provider, lookup_key)",
        "CREATE INDEX IF NOT EXISTS publishers_unkeyed ON publishers (id) "
        "WHERE lookup_key IS NULL",
    ), columns=(("publishers", "lookup_key", "TEXT"),)),
    Migration(5, "custom issuers registered at run time", (
        """CREATE TABLE IF NOT EXISTS issuers (
            issuer TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            added_by TEXT,
            created {real} NOT NULL)""",
    )),
    Migration(6, "publishers' identity keys (near misses with the SQL publisher lookup)", (
        "CREATE INDEX IF NOT EXISTS publishers_identity ON publishers (provider, identity_key)",
        "CREATE INDEX IF NOT EXISTS publishers_unidentified ON publishers (id) "
        "WHERE identity_key IS NULL",
        "CREATE INDEX IF NOT EXISTS publishers_pending_created ON publishers (created) "
        "WHERE pending_project IS NOT NULL",
    ), columns=(("publishers", "identity_key", "TEXT"),)),
    # A claim wrote three B-trees in SQLite (the rowid table, its key's index, the expiry
    # index): now one (2.0 -> 1.6 log pages and 12.8 -> 10.4 us CPU a claim, measured by
    # benchmarks/bench_jti_table.py); PostgreSQL: one index fewer. The purge sweeps a
    # bounded range of keys (`SQLiteJtiStore.purge`), which needs no expiry index.
    Migration(7, "used token ids keyed by the id alone, without the expiry index", (
        "CREATE TABLE used_jti_keyed (key TEXT PRIMARY KEY, "
        "expires_at {bigint} NOT NULL){without_rowid}",
        "INSERT INTO used_jti_keyed (key, expires_at) SELECT key, expires_at FROM used_jti",
        "DROP TABLE used_jti",
        "ALTER TABLE used_jti_keyed RENAME TO used_jti",
    )),
    # The sweep of expired token ids, shared by every replica (`SQLiteJtiStore.purge`):
    # where it stands, when it is next due, the claims made since the last one. Each
    # replica used to sweep from a position of its own (many replicas, the same keys).
    Migration(8, "the sweep of expired token ids shared by the replicas", (
        "CREATE TABLE IF NOT EXISTS jti_sweep (name TEXT PRIMARY KEY, position TEXT NOT NULL, "
        "due {real} NOT NULL, claims {bigint} NOT NULL)",
        "INSERT INTO jti_sweep (name, position, due, claims) VALUES ('used_jti', '', 0, 0) "
        "ON CONFLICT DO NOTHING",
    )),
    # A minted credential wrote four B-trees: the table, its hash's index, the expiry
    # index and the publisher index, that last at a random place (a log page more for
    # each exchange of a group commit, of about three). Credentials are looked up by
    # publisher only to revoke them (a publisher removed or narrowed) or to widen them (a
    # pending publisher's first use), among the unexpired ones: the expiry index finds
    # those (at most `credential_ttl` of them) as fast.
    Migration(9, "credentials without the publisher index (a minted credential writes "
              "one B-tree less)", (
        "DROP INDEX IF EXISTS credentials_publisher",
    )),
)


class SchemaTooNew(Exception):
    """The database was migrated by a newer tppolicy than this one."""


def current_version(db: Database) -> int:
    """The highest applied migration (0: none, or no `schema_migrations` table)."""
    try:
        rows = db.query("SELECT MAX(version) FROM schema_migrations")
    except Exception:
        return 0
    return int(rows[0][0] or 0) if rows else 0


def _add_column(dialect: str, tx: Tx, table: str, column: str, kind: str) -> None:
    if dialect == "postgresql":
        tx.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")
        return
    present = {r[1] for r in tx.execute(f"PRAGMA table_info({table})").fetchall()}
    if column not in present:
        tx.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def migrate(db: Database, migrations: tuple[Migration, ...] = MIGRATIONS,
            target: int | None = None) -> list[int]:
    """Apply the missing migrations up to `target` (default: all). Returns the
    versions applied now; raises SchemaTooNew for a database ahead of this code."""
    latest = max(m.version for m in migrations)
    target = latest if target is None else target
    with db.transaction() as tx:
        db.lock(tx, "tppolicy-schema-migrations")
        tx.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                   "description TEXT NOT NULL, applied {real} NOT NULL)".format(
                       **_TYPES[db.dialect]))
        row = tx.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        version = int(row[0] or 0) if row else 0
        if version > latest:
            raise SchemaTooNew(f"the database {db.name} has schema version {version}; this "
                               f"tppolicy knows versions up to {latest}: upgrade tppolicy")
        applied = []
        for migration in sorted(migrations, key=lambda m: m.version):
            if version < migration.version <= target:
                for table, column, kind in migration.columns:  # first: statements use them
                    _add_column(db.dialect, tx, table, column, kind)
                for statement in migration.sql(db.dialect):
                    tx.execute(statement)
                tx.execute("INSERT INTO schema_migrations (version, description, applied) "
                           "VALUES (?, ?, ?)", (migration.version, migration.description,
                                                time.time()))
                applied.append(migration.version)
    return applied
