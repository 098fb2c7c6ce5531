"""A throwaway PostgreSQL cluster for the tests: initdb into a temporary directory,
pg_ctl start on a free loopback port (as the `postgres` user when the tests run as
root: PostgreSQL refuses root), one fresh database per test. Skips, saying why and
how to install it, when PostgreSQL or psycopg is absent."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL = ("apt-get install -y postgresql (Debian's package; .ci/run installs it) and "
           "pip install -e '.[postgres]'")


def _binaries() -> Path | None:
    given = os.environ.get("TPPOLICY_PG_BIN")
    if given:
        return Path(given)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class PostgresCluster:
    """One PostgreSQL server (a cluster) on 127.0.0.1:`port`, trust authentication."""

    bin: Path
    data: Path
    port: int
    run_as: str | None
    user: str = "tppolicy"

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return subprocess.run([*prefix, *command], check=check, capture_output=True,
                              text=True, timeout=120)

    def initdb(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data / "db"), "-U", self.user,
                  "--auth=trust", "--encoding=UTF8", "--no-instructions")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=200")
        result = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data / "db"), "-l",
                           str(self.data / "server.log"), "-o", options, "-w", "-t", "60",
                           "start", check=False)
        if result.returncode != 0:
            log = (self.data / "server.log")
            raise AssertionError(f"PostgreSQL did not start: {result.stderr}\n"
                                 f"{log.read_text() if log.exists() else ''}")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data / "db"), "-m", mode, "-w",
                  "stop", check=False)

    def kill(self) -> None:
        """Make sure this cluster's postmaster is gone (a stop that failed leaves it
        running with no parent): its pid is the first line of its own pid file."""
        pid_file = self.data / "db" / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        with contextlib.suppress(ProcessLookupError):  # gone already
            os.kill(pid, signal.SIGKILL)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    pytest.importorskip("psycopg", reason=f"psycopg is not installed: {INSTALL}")
    pytest.importorskip("psycopg_pool", reason=f"psycopg_pool is not installed: {INSTALL}")
    binaries = _binaries()
    if binaries is None or not (binaries / "pg_ctl").exists():
        pytest.skip(f"PostgreSQL is not installed (no initdb found): {INSTALL}")
    run_as = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run PostgreSQL "
                        "as (PostgreSQL refuses root)")
        run_as = "postgres"
    data = Path(tempfile.mkdtemp(prefix="tppolicy-pg-"))
    if run_as:
        entry = pwd.getpwnam(run_as)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    cluster = PostgresCluster(binaries, data, free_port(), run_as)
    try:
        cluster.initdb()
        cluster.start()
        yield cluster
    finally:
        cluster.stop("immediate")
        cluster.kill()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh, empty database on the session's cluster."""
    return postgres_cluster.create_database()
