"""The SQL publisher lookup at scale: GitHub publishers in PostgreSQL, one check's
latency through `Engine(lookup=SqlPublisherLookup(...))` beside the engine holding
the same publishers in memory.

Run: python benchmarks/bench_sql_lookup.py [--size 1000000] [--db postgresql://...]

Without --db, a throwaway PostgreSQL cluster is made (initdb into a temp dir, as the
`postgres` user when run as root) and removed at the end. The rows are the server's
own schema (`tppolicy.server.storage`, with its migrations and indexes), written with
COPY; each row's lookup key is computed by the engine, as the server does.

A check is Engine.check_claims on a GitHub token of a publisher picked at random, the
whole decision included; figures are medians of 2 000 checks, each timed alone:

- memory: the engine holding every publisher (loaded first: time and memory shown);
- sql, first use: each token's publisher looked up in PostgreSQL (one indexed query
  on a pooled connection over loopback TCP) and its row compiled into a record;
- sql, again: the same tokens again: the query still runs, the compiled record is
  reused (a server sees a publisher again within minutes: its release workflow).
- query alone: the SQL statement alone, for the share of the database.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CHECKS = 2000


def _row(i: int) -> dict[str, Any]:
    owner = f"org{i // 50}"
    return {"provider": "github", "repository_owner": owner, "repository_name": f"repo{i}",
            "repository_owner_id": str(100000 + i // 50), "workflow_filename": "release.yml",
            "environment": "pypi" if i % 2 else "", "projects": [f"project-{i}"]}


def _claims(base: dict[str, Any], i: int) -> dict[str, Any]:
    row = _row(i)
    repository = f"{row['repository_owner']}/{row['repository_name']}"
    ref = base["ref"]
    now = int(time.time())
    return {**base, "repository": repository, "repository_owner": row["repository_owner"],
            "repository_owner_id": row["repository_owner_id"],
            "job_workflow_ref": f"{repository}/.github/workflows/release.yml@{ref}",
            "workflow_ref": f"{repository}/.github/workflows/release.yml@{ref}",
            "environment": "pypi", "iat": now, "nbf": now, "exp": now + 3600}


def _rss_bytes() -> int:
    import resource

    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _median_us(check: Callable[[dict[str, Any]], Any],
               tokens: list[dict[str, Any]]) -> float:
    times = []
    gc.disable()
    for claims in tokens:
        start = time.perf_counter_ns()
        check(claims)
        times.append(time.perf_counter_ns() - start)
    gc.enable()
    return statistics.median(times) / 1000


def populate(url: str, size: int) -> float:
    """`size` publishers into the server's schema; seconds taken."""
    import psycopg

    from tppolicy.decide.engine import Engine
    from tppolicy.server.storage import Storage

    storage = Storage(url, files="unused")  # the schema, by its migrations
    storage.close()
    engine = Engine()
    start = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("TRUNCATE publishers")
        with conn.cursor().copy("COPY publishers (id, provider, row, pending_project, "
                                "added_by, created, lookup_key) FROM STDIN") as copy:
            for i in range(size):
                row = _row(i)
                _, key = engine.lookup_key(row)
                copy.write_row((f"p{i}", "github", json.dumps(row, sort_keys=True), None,
                                None, 0.0, key))
        conn.execute("ANALYZE publishers")
    return time.perf_counter() - start


def measure(url: str, size: int) -> dict[str, float]:
    from tppolicy.decide.engine import Engine
    from tppolicy.server.lookup import SqlPublisherLookup
    from tppolicy.server.storage import Storage

    base = json.loads((ROOT / "examples/claims/github-release.json").read_text())
    rng = random.Random(7)
    tokens = [_claims(base, rng.randrange(size)) for _ in range(CHECKS)]
    warm = [_claims(base, i) for i in range(50)]

    storage = Storage(url, files="unused")
    sql = Engine(lookup=SqlPublisherLookup(storage))
    for claims in warm:  # connections opened, statements prepared, code warm
        assert sql.check_claims(claims).allowed
    first = _median_us(sql.check_claims, tokens)
    again = _median_us(sql.check_claims, tokens)
    assert all(sql.check_claims(claims).allowed for claims in tokens[:100])
    query = "SELECT id, provider, row, added_by, created FROM publishers WHERE provider " \
        "= ? AND lookup_key = ? AND pending_project IS NULL"
    keys = [sql.lookup_key(_row(rng.randrange(size)))[1] for _ in range(CHECKS)]
    for key in keys[:50]:
        storage.database.query(query, ("github", key))
    times = []
    for key in keys:
        start = time.perf_counter_ns()
        storage.database.query(query, ("github", key))
        times.append(time.perf_counter_ns() - start)
    query_us = statistics.median(times) / 1000
    storage.close()

    import tppolicy

    tppolicy.load_providers()
    memory = Engine()
    gc.collect()
    before = _rss_bytes()
    began = time.perf_counter()
    for first_row in range(0, size, 10_000):
        memory.add_publishers(_row(i) for i in range(first_row, min(size, first_row + 10_000)))
    load = time.perf_counter() - began
    gc.collect()
    per_publisher = (_rss_bytes() - before) / size
    for claims in warm:
        assert memory.check_claims(claims).allowed
    in_memory = _median_us(memory.check_claims, tokens)
    return {"memory_us": in_memory, "sql_first_us": first, "sql_again_us": again,
            "query_us": query_us, "load_s": load, "bytes_per_publisher": per_publisher}


def _cluster() -> Generator[str, None, None]:
    import shutil
    import tempfile

    from tests.server.pg_cluster import PostgresCluster, _binaries, free_port

    binaries = _binaries()
    if binaries is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install -y postgresql), "
                         "or give --db URL")
    import os
    import pwd

    data = Path(tempfile.mkdtemp(prefix="tppolicy-bench-pg-"))
    run_as = "postgres" if os.geteuid() == 0 else None
    if run_as:
        entry = pwd.getpwnam(run_as)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    cluster = PostgresCluster(binaries, data, free_port(), run_as)
    try:
        cluster.initdb()
        cluster.start()
        yield cluster.create_database()
    finally:
        cluster.stop("immediate")
        cluster.kill()
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--db", help="an empty PostgreSQL database (default: a throwaway "
                        "cluster)")
    args = parser.parse_args()
    cluster = None if args.db else _cluster()
    url = args.db or next(cluster) if cluster is not None else args.db
    try:
        took = populate(url, args.size)
        figures = measure(url, args.size)
    finally:
        if cluster is not None:
            cluster.close()
    print(f"{args.size:,} GitHub publishers in PostgreSQL (COPY with lookup keys: "
          f"{took:.1f} s); medians of {CHECKS:,} checks of random publishers:")
    print(f"  memory (engine holds all)  {figures['memory_us']:8.1f} us   loaded in "
          f"{figures['load_s']:.1f} s, {figures['bytes_per_publisher']:,.0f} bytes each")
    print(f"  sql, first use             {figures['sql_first_us']:8.1f} us")
    print(f"  sql, again                 {figures['sql_again_us']:8.1f} us")
    print(f"  the SQL query alone        {figures['query_us']:8.1f} us")


if __name__ == "__main__":
    main()
