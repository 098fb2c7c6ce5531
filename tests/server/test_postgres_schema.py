"""`--db` as a PostgreSQL URL or a path, and versioned schema migrations (both
databases): an unknown scheme is refused, an old SQLite file is upgraded in place,
replicas starting together migrate once, a database ahead of the code is refused."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tppolicy.server.database import DatabaseUnavailable, open_database, redact
from tppolicy.server.migrations import MIGRATIONS, Migration, SchemaTooNew, current_version, migrate
from tppolicy.server.storage import Storage

from .conftest import free_port

GH_FIELDS = ["repository_owner=octo-org", "repository_name=sampleproject",
             "repository_owner_id=65", "workflow_filename=release.yml", "environment=pypi"]

# The schema an SQLite file had before migrations existed (tppolicy 1b2cd82).
OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('publishers_generation', 7);
CREATE TABLE publishers (id TEXT PRIMARY KEY, provider TEXT NOT NULL, row TEXT NOT NULL,
    pending_project TEXT, added_by TEXT, created REAL NOT NULL);
CREATE TABLE projects (normalized TEXT PRIMARY KEY, name TEXT NOT NULL, created REAL NOT NULL,
    created_by TEXT);
CREATE TABLE files (filename TEXT PRIMARY KEY, project TEXT NOT NULL, version TEXT NOT NULL,
    filetype TEXT NOT NULL, requires_python TEXT, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    uploaded REAL NOT NULL, uploaded_by TEXT);
CREATE TABLE credentials (hash TEXT PRIMARY KEY, publisher_id TEXT NOT NULL,
    publisher TEXT NOT NULL, projects TEXT NOT NULL, issued REAL NOT NULL,
    expires REAL NOT NULL, jti TEXT, revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE used_jti (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
INSERT INTO publishers VALUES ('release', 'github',
    '{"provider": "github", "projects": ["sampleproject"]}', NULL, 'alice', 1.5);
"""


@pytest.mark.parametrize("url", ["mysql://root@localhost/index", "redis://127.0.0.1:6379/0",
                                 "http://example.invalid/db"])
def test_an_unknown_url_scheme_is_refused(url: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "serve", "--db", url, "publishers", "list")
    assert code == 2
    assert "unknown database URL scheme" in err and "postgresql://" in err
    assert list(tmp_path.iterdir()) == []  # no SQLite file named after the URL
    code, _, err = run_cli(capsys, "serve", "--db", url, "--port", "0")
    assert code == 2 and "unknown database URL scheme" in err
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_postgresql_is_invalid_input_without_a_password_shown(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql://tpp:s3cret@127.0.0.1:{free_port()}/index"
    code, _, err = run_cli(capsys, "serve", "--db", url, "publishers", "list")
    assert code == 3
    assert "cannot open the database" in err and "unavailable" in err
    assert "s3cret" not in err and "tpp:***@127.0.0.1" in err
    assert "Traceback" not in err
    with pytest.raises(DatabaseUnavailable):
        open_database(url)


def test_serving_postgresql_needs_a_shared_files_folder(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    code, _, err = run_cli(capsys, "serve", "--db", "postgresql://u@127.0.0.1:1/x",
                           "--port", "0")
    assert code == 2 and "--files" in err


def test_redact() -> None:
    assert redact("postgresql://u:pw@h:5/d") == "postgresql://u:***@h:5/d"
    assert redact("postgresql://u@h/d") == "postgresql://u@h/d"
    assert redact("index.db") == "index.db"


def test_sqlite_url_and_path_are_the_same_file(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Storage("sqlite:///rel.db").close()
    Storage(f"sqlite:///{tmp_path / 'abs.db'}").close()
    assert (tmp_path / "rel.db").is_file() and (tmp_path / "abs.db").is_file()


def test_an_old_sqlite_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    storage = Storage(path)
    try:
        assert current_version(storage.database) == max(m.version for m in MIGRATIONS)
        assert [p.id for p in storage.publishers()] == ["release"]  # kept
        assert storage.generation() == 7
    finally:
        storage.close()
    again = Storage(path)  # opening again applies nothing
    try:
        assert migrate(again.database) == []
    finally:
        again.close()


def _later(dialect_check: list[str]) -> tuple[Migration, ...]:
    return (*MIGRATIONS, Migration(max(m.version for m in MIGRATIONS) + 1, "a test column", (
        "ALTER TABLE projects ADD COLUMN note TEXT",)))


def test_a_new_migration_is_applied_once_and_a_newer_database_is_refused(tmp_path: Path) -> None:
    db = open_database(tmp_path / "m.db")
    try:
        assert migrate(db) == [m.version for m in MIGRATIONS]
        later = _later([])
        assert migrate(db, later) == [later[-1].version]
        assert migrate(db, later) == []
        with pytest.raises(SchemaTooNew, match="upgrade tppolicy"):
            migrate(db)
    finally:
        db.close()


def test_cli_refuses_a_database_from_a_newer_tppolicy(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "new.db"
    db = open_database(path)
    migrate(db, _later([]))
    db.close()
    code, _, err = run_cli(capsys, "serve", "--db", str(path), "publishers", "list")
    assert code == 3 and "schema version" in err and "upgrade tppolicy" in err


# --------------------------------------------------------------------------- PostgreSQL


def test_publishers_commands_on_postgresql(pg_url: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # (in another environment than the examples' publisher of this workflow: the lookup
    # could not tell them apart, and `load` would refuse the examples' one)
    for url in (pg_url, pg_url.replace("postgresql://", "postgresql+psycopg://")):
        code, out, _ = run_cli(capsys, "serve", "--db", url, "publishers", "add", "github",
                               *GH_FIELDS[:-1], "environment=staging", "--project",
                               "sampleproject", "--name", "release")
        assert (code, out) == (0, "added publisher release\n")
    code, out, _ = run_cli(capsys, "serve", "--db", pg_url, "publishers", "list")
    assert code == 0 and out.startswith("release\tgithub\tsampleproject\t")
    code, out, _ = run_cli(capsys, "serve", "--db", pg_url, "publishers", "load",
                           str(Path(__file__).parents[2] / "examples" / "publishers.yaml"))
    assert code == 0 and out.startswith("loaded ")
    code, out, _ = run_cli(capsys, "serve", "--db", pg_url, "publishers", "remove", "release")
    assert (code, out) == (0, "removed publisher release\n")
    code, _, err = run_cli(capsys, "serve", "--db", pg_url, "publishers", "remove", "release")
    assert code == 3 and "no publisher with id 'release'" in err


def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    errors: list[BaseException] = []
    applied: list[list[int]] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            db = open_database(pg_url)
            barrier.wait()
            applied.append(migrate(db))
            db.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(applied, key=len) == [[], [], [], [m.version for m in MIGRATIONS]]


def test_storage_round_trip_on_postgresql(pg_url: str) -> None:
    storage = Storage(pg_url, files="unused")
    try:
        before = storage.generation()
        storage.put_publisher("p", {"provider": "github", "projects": ["a"]}, created=1.25)
        storage.put_publisher("p", {"provider": "github", "projects": ["a", "b"]}, created=1.25)
        assert storage.generation() == before + 2
        [row] = storage.publishers()
        assert row.row["projects"] == ["a", "b"] and row.created == 1.25
        assert storage.create_project("Sample_Project") is True
        assert storage.create_project("sample.project") is False
        assert storage.project_name("sample-project") == "Sample_Project"
        storage.add_credential("tpp-x", publisher_id="p", publisher="p", projects=("a",),
                               expires=storage.clock() + 60, jti="j")
        storage.add_credential_projects("p", "b")
        credential = storage.credential("tpp-x")
        assert credential is not None and credential.projects == ("a", "b")
        assert storage.revoke_credential("tpp-x")
        credential = storage.credential("tpp-x")
        assert credential is not None and credential.revoked
    finally:
        storage.close()



def test_schema_command_lists_then_applies_the_missing_migrations(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    latest = max(m.version for m in MIGRATIONS)
    code, out, _ = run_cli(capsys, "serve", "--db", str(path), "schema")
    assert code == 1
    assert f"schema version 0 (this tppolicy: {latest})" in out
    assert "missing 1: " in out and "schema --upgrade" in out
    code, out, _ = run_cli(capsys, "serve", "--db", str(path), "schema", "--upgrade")
    assert code == 0 and "applied 1: " in out
    assert f"schema version {latest} (this tppolicy: {latest})" in out
    code, out, _ = run_cli(capsys, "serve", "--db", str(path), "schema")
    assert code == 0 and "missing" not in out


def test_schema_command_on_postgresql(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "serve", "--db", pg_url, "schema")
    assert code == 1 and "schema version 0" in out
    code, out, _ = run_cli(capsys, "serve", "--db", pg_url, "schema", "--upgrade")
    assert code == 0 and "missing" not in out
