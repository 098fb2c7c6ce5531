"""The publisher-lookup protocol: the engine computes a token's lookup key, the host's
database returns the candidate rows, the engine decides. The SQL lookup (on SQLite
and on PostgreSQL) decides as the engine's own index does; issuers registered at run
time; a hook sees every decision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_claims
from tppolicy.decide.engine import CheckResult, Engine
from tppolicy.errors import ConfigError
from tppolicy.server.lookup import SqlPublisherLookup, key_rows
from tppolicy.server.storage import Storage

from .conftest import github_claims

ROWS: list[tuple[str, dict[str, Any]]] = [
    ("release", {"provider": "github", "repository_owner": "octo-org",
                 "repository_name": "sampleproject", "repository_owner_id": "65",
                 "workflow_filename": "release.yml", "environment": "pypi",
                 "projects": ["sampleproject"]}),
    ("any-env", {"provider": "github", "repository_owner": "octo-org",
                 "repository_name": "sampleproject", "repository_owner_id": "65",
                 "workflow_filename": "release.yml", "projects": ["sample-any"]}),
    ("other-wf", {"provider": "github", "repository_owner": "octo-org",
                  "repository_name": "sampleproject", "repository_owner_id": "65",
                  "workflow_filename": "nightly.yml", "projects": ["sample-nightly"]}),
    ("plugin", {"provider": "github", "repository_owner": "octo-org",
                "repository_name": "sampleproject-plugin", "repository_owner_id": "65",
                "workflow_filename": "publish.yaml",
                "pending_project": "sampleproject-plugin"}),
    ("gitlab", {"provider": "gitlab", "namespace": "octo-group/python",
                "project": "sampleproject", "workflow_filepath": "ci/release.yml",
                "environment": "production", "projects": ["sampleproject"]}),
]

NIGHTLY = "octo-org/sampleproject/.github/workflows/nightly.yml@refs/tags/v1.2.0"
CASES: list[dict[str, Any]] = [
    github_claims(),                                  # release (prefers its environment)
    github_claims(environment="staging"),             # any-env
    github_claims(environment=None),                  # any-env
    github_claims(repository_owner_id="66"),          # nobody
    github_claims(job_workflow_ref=NIGHTLY, workflow_ref=NIGHTLY),  # other-wf
    github_claims(ref_type="branch"),                 # rules may refuse
    {**load_claims("github-pending-plugin"), "exp": 2**40},
    {**load_claims("gitlab-release"), "exp": 2**40},
    github_claims(repository="no-slash"),
    github_claims(repository_owner_id=65),            # a number where a string is kept
    # no row's lookup key: told about the publishers of the identity (closest: release)
    github_claims(job_workflow_ref=NIGHTLY.replace("nightly", "deploy"),
                  workflow_ref=NIGHTLY.replace("nightly", "deploy")),
    github_claims(repository="Octo-Org/sampleproject", repository_owner="Octo-Org"),
]


def summary(result: CheckResult) -> tuple[Any, ...]:
    return (result.allowed, result.error, result.publisher.id if result.publisher else None,
            result.projects, result.pending)


def sql_engine(storage: Storage, **options: Any) -> Engine:
    engine = Engine(lookup=SqlPublisherLookup(storage), **options)
    key_rows(storage, engine)
    return engine


def check_same_decisions(storage: Storage) -> None:
    memory = Engine()
    # in the order a server's engine adds them (`Storage.publishers`: created, then id),
    # which is the order of the near misses the SQL lookup finds
    for publisher_id, row in sorted(ROWS):
        memory.add_publisher(row, id=publisher_id, created=2e9)
    engine = sql_engine(storage)
    for publisher_id, row in ROWS:
        storage.put_publisher(publisher_id, row, created=2e9)
    engine.clock = memory.clock = lambda: 2e9 + 10
    outcomes = []
    for claims in CASES:
        claims = {**claims, "iat": 2e9, "nbf": 2e9, "exp": 2e9 + 300}
        expected, got = memory.check_claims(claims), engine.check_claims(claims)
        assert summary(got) == summary(expected), json.dumps(claims)
        # a refusal names the same closest publisher, and the same others of the identity
        assert (got.closest, got.decision.disclosed().also) == (
            expected.closest, expected.decision.disclosed().also), json.dumps(claims)
        outcomes.append(summary(got)[2])
    assert {"release", "any-env", "other-wf", "plugin", "gitlab", None} <= set(outcomes)
    assert len(engine) == 0  # the SQL engine holds no publisher of its own


def test_sql_lookup_decides_as_the_engines_index_on_sqlite(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "lookup.db")
    try:
        check_same_decisions(storage)
    finally:
        storage.close()


def test_sql_lookup_decides_as_the_engines_index_on_postgresql(pg_url: str) -> None:
    storage = Storage(pg_url, files="unused")
    try:
        check_same_decisions(storage)
        plan = storage.database.query(
            "EXPLAIN SELECT id FROM publishers WHERE provider = 'github' AND lookup_key = 'x' "
            "AND pending_project IS NULL")
        assert "publishers_lookup" in " ".join(r[0] for r in plan)
    finally:
        storage.close()


def test_rows_written_without_the_engine_get_their_keys(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "unkeyed.db")
    try:
        storage.put_publisher("release", ROWS[0][1])  # as `publishers add` without keyer
        engine = sql_engine(storage)
        assert not engine.check_claims(github_claims()).allowed
        assert storage.fill_lookup_keys() == 1
        assert storage.fill_lookup_keys() == 0
        assert engine.check_claims(github_claims()).publisher is not None
        # a changed row gets a new key at once
        storage.put_publisher("release", {**ROWS[0][1], "workflow_filename": "other.yml"})
        assert not engine.check_claims(github_claims()).allowed
    finally:
        storage.close()


def test_a_database_error_fails_the_check_closed(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "closed.db")
    engine = sql_engine(storage)
    storage.put_publisher("release", ROWS[0][1])
    assert engine.check_claims(github_claims()).allowed
    storage.database.query("DROP TABLE publishers")
    result = engine.check_claims(github_claims())
    assert not result.allowed and result.error == "invalid-payload"
    storage.close()


def test_issuers_registered_at_run_time_and_the_decision_hook() -> None:
    seen: list[CheckResult] = []
    custom = "https://gitlab.example.org"
    engine = Engine(on_decision=seen.append)
    engine.add_publisher({**ROWS[4][1], "issuer_url": custom}, id="self-hosted")
    base = load_claims("gitlab-release")
    claims = {**base, "iss": custom, "exp": 2**40, "ci_config_ref_uri": base[
        "ci_config_ref_uri"].replace("gitlab.com", "gitlab.example.org")}
    refused = engine.check_claims(claims)
    assert refused.error == "invalid-payload" and "unknown issuer" in str(refused.reasons)
    engine.register_issuer(custom, "gitlab")  # as an organisation registers its instance
    allowed = engine.check_claims(claims)
    assert allowed.allowed and allowed.publisher is not None
    assert allowed.publisher.id == "self-hosted"
    with pytest.raises(ConfigError, match="not a provider allowing custom issuers"):
        engine.register_issuer("https://ci.example.org", "github")
    with pytest.raises(ConfigError, match="https"):
        engine.register_issuer("http://gitlab.example.org", "gitlab")
    assert [r.allowed for r in seen] == [False, True]


@pytest.mark.slow  # a benchmark's smoke run, as tests/test_benchmarks.py's
def test_the_sql_lookup_benchmark_runs(pg_url: str) -> None:
    """benchmarks/bench_sql_lookup.py at a small size (no timing asserted here)."""
    import subprocess
    import sys

    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_sql_lookup.py"
    done = subprocess.run([sys.executable, str(bench), "--size", "2000", "--db", pg_url],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "2,000 GitHub publishers in PostgreSQL" in done.stdout
    for line in ("memory (engine holds all)", "sql, first use", "sql, again",
                 "the SQL query alone"):
        assert line in done.stdout


def test_expired_pending_publishers_are_deleted_from_the_database(make_index: Any) -> None:
    """With the SQL lookup, a pending publisher past its 30 days was ignored by every
    check but never deleted (the engine's own index drops it): the database kept it for
    ever. Now a sync deletes it, and only it."""
    index = make_index(lookup="sql")
    storage = index.storage
    expired = index.engine.clock() - index.engine.pending_ttl - 60
    pending = dict(ROWS[3][1])
    storage.put_publisher("expired", pending, created=expired)
    storage.put_publisher("fresh", {**pending, "workflow_filename": "other.yaml"})
    storage.put_publisher("old-normal", ROWS[0][1], created=expired)
    claims = {**load_claims("github-pending-plugin"), "iat": index.engine.clock(),
              "nbf": index.engine.clock(), "exp": index.engine.clock() + 300}
    assert not index.engine.check_claims(claims).allowed  # ignored already
    index.sync(force=True)
    assert storage.publisher("expired") is None
    assert storage.publisher("fresh") is not None
    assert storage.publisher("old-normal") is not None
    index.sync(force=True)  # nothing left to delete
    assert {p.id for p in storage.publishers()} == {"fresh", "old-normal"}
