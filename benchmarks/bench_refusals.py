"""What a refused token costs through the public API, among 100 and 100 000 publishers.

Run: python benchmarks/bench_refusals.py [--sizes 100,100000] [--tokens 100] [--rounds 7]
     [--lookup memory|sql]

Anyone may send a refused token, at will: its cost must stay small and bounded whatever
the number of publishers. An `Engine` holds `size` GitHub publishers (each of its own
repository, as in bench_engine.py) and 100 more of one crowded repository (one workflow
each); tokens are refused for four reasons:

- stranger: a repository no publisher has (no identity shared: nothing explained);
- near miss: a publisher's repository, another workflow (its rules explained, the fix
  built from the provider file);
- crowded: another workflow of the crowded repository (at most NEAR_MISSES = 20 of its
  100 publishers explained, each once);
- case: the owner spelled in another case (the identity is shared, case aside).

and `allowed` (a matching token) for reference. With `--lookup sql` the publishers are
rows of the server's SQLite database (`Storage`, in a temporary directory) and the engine
looks them up per token (`SqlPublisherLookup`, as `tppolicy serve --lookup sql`).
Each is measured three ways:

- check_claims: `Engine.check_claims` on decoded claims (a fresh dict per check);
- check_token: `Engine.check_token` on distinct RS256 tokens (RSA-2048, a new jti each,
  the key given locally, the engine's replay store on): the signature verify included;
- answer: check_token, then the refusal's text as `tppolicy serve` answers it
  (`refusal_fixes`: the provider file's fixes filled in, and `describe_refusal`).

Timing: per check, the measuring thread's CPU time (`time.thread_time`) beside wall time,
medians of interleaved rounds (each round measures every kind one after the other, so a
disturbance hits all alike); each size in a fresh process.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)

ROOT = Path(__file__).resolve().parents[1]
ISSUER = "https://token.actions.githubusercontent.com"
CROWDED = 100
KINDS = ("allowed", "stranger", "near miss", "crowded", "case")


def _row(i: int) -> dict[str, Any]:
    owner = f"org{i // 50}"
    return {"provider": "github", "repository_owner": owner, "repository_name": f"repo{i}",
            "repository_owner_id": str(100000 + i // 50), "workflow_filename": "release.yml",
            "environment": "", "projects": [f"project-{i}"]}


def _crowded(i: int) -> dict[str, Any]:
    return {"provider": "github", "repository_owner": "crowd", "repository_name": "big",
            "repository_owner_id": "999", "workflow_filename": f"release-{i}.yml",
            "environment": "", "projects": [f"crowded-{i}"]}


def _claims(base: dict[str, Any], owner: str, name: str, owner_id: str,
            workflow: str = "release.yml") -> dict[str, Any]:
    repository = f"{owner}/{name}"
    return {**base, "repository": repository, "repository_owner": owner,
            "repository_owner_id": owner_id, "environment": "pypi",
            "job_workflow_ref": f"{repository}/.github/workflows/{workflow}@{base['ref']}"}


def _kind_claims(base: dict[str, Any], kind: str, i: int) -> dict[str, Any]:
    row = _row(i)
    owner, name, owner_id = row["repository_owner"], row["repository_name"], \
        row["repository_owner_id"]
    if kind == "stranger":
        return _claims(base, f"stranger{i}", "x", str(900000 + i))
    if kind == "near miss":
        return _claims(base, owner, name, owner_id, "other.yml")
    if kind == "crowded":
        return _claims(base, "crowd", "big", "999", "other.yml")
    if kind == "case":
        return _claims(base, owner.upper(), name, owner_id)
    return _claims(base, owner, name, owner_id)


def _sql_engine(size: int, scratch: str, **options: Any) -> Any:
    """An engine looking up `size` publishers and the crowded ones in SQLite."""
    from tppolicy.decide.engine import Engine
    from tppolicy.server.lookup import SqlPublisherLookup, key_rows
    from tppolicy.server.storage import Storage

    storage = Storage(Path(scratch) / "index.db", files=scratch)
    key_rows(storage, Engine())
    rows = [*((f"p{i}", _row(i)) for i in range(size)),
            *((f"c{i}", _crowded(i)) for i in range(CROWDED))]
    with storage.transaction() as tx:
        for publisher_id, row in rows:
            storage.put_publisher(publisher_id, row, created=0.0, db=tx)
    return Engine(lookup=SqlPublisherLookup(storage), **options)


def measure(size: int, tokens: int, rounds: int,
            lookup: str = "memory") -> dict[str, tuple[float, float]]:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tppolicy.decide.engine import Engine
    from tppolicy.server.core import describe_refusal, refusal_fixes
    from tppolicy.token.keys import KeyCache

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk["kid"] = "bench"
    keys = KeyCache()
    keys.add_static(ISSUER, {"keys": [jwk]})
    if lookup == "sql":
        scratch = tempfile.mkdtemp(prefix="bench-refusals-")
        atexit.register(shutil.rmtree, scratch, True)
        engine = _sql_engine(size, scratch, keys=keys)
    else:
        engine = Engine(keys=keys)  # its replay store: a MemoryReplayStore
        for first in range(0, size, 10_000):
            engine.add_publishers(_row(i) for i in range(first, min(size, first + 10_000)))
        engine.add_publishers(_crowded(i) for i in range(CROWDED))
    base = json.loads((ROOT / "examples/claims/github-release.json").read_text())
    now = int(time.time())
    step = max(1, size // tokens)

    def claims_of(kind: str) -> list[dict[str, Any]]:
        return [_kind_claims(base, kind, (n * step) % size) for n in range(tokens)]

    def signed(kind: str) -> list[str]:
        return [jwt.encode({**c, "iat": now, "nbf": now, "exp": now + 3600,
                            "jti": str(uuid.uuid4())}, key, algorithm="RS256",
                           headers={"kid": "bench"}) for c in claims_of(kind)]

    def answer(token: str) -> str:
        result = engine.check_token(token)
        return "" if result.allowed else describe_refusal(result, refusal_fixes(engine, result))

    for kind in KINDS:  # warm-up, and each refused as meant
        result = engine.check_claims(claims_of(kind)[0])
        assert result.allowed is (kind == "allowed"), (kind, result.decision.reasons)
        assert (result.closest is None) is (kind in ("allowed", "stranger")), kind
    plans: dict[str, tuple[Callable[[Any], Any], list[list[Any]]]] = {}
    for kind in KINDS:
        plans[f"check_claims {kind}"] = (engine.check_claims,
                                         [claims_of(kind) for _ in range(rounds)])
        plans[f"check_token {kind}"] = (engine.check_token,
                                        [signed(kind) for _ in range(rounds)])
        plans[f"answer {kind}"] = (answer, [signed(kind) for _ in range(rounds)])
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in plans}
    for round_ in range(rounds):
        for name, (function, batches) in plans.items():
            batch = batches[round_]
            cpu, wall = time.thread_time(), time.perf_counter()
            for item in batch:
                function(item)
            samples[name].append(((time.thread_time() - cpu) / len(batch),
                                  (time.perf_counter() - wall) / len(batch)))
    return {name: (statistics.median(s[0] for s in values),
                   statistics.median(s[1] for s in values))
            for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,100000")
    parser.add_argument("--tokens", type=int, default=100, help="per kind and round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--lookup", choices=("memory", "sql"), default="memory",
                        help="publishers held by the engine, or rows of a SQLite database")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.tokens, args.rounds, args.lookup)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    for size in sizes:
        done = subprocess.run([sys.executable, __file__, "--child", str(size), "--tokens",
                               str(args.tokens), "--rounds", str(args.rounds),
                               "--lookup", args.lookup],
                              capture_output=True, text=True, check=True)
        results[size] = json.loads(done.stdout)
    print(f"{cpu_model()}, {os.cpu_count()} logical CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; per check, medians of "
          f"{args.rounds} interleaved rounds of {args.tokens} checks, thread CPU / wall (us); "
          f"publishers: {'SQLite rows' if args.lookup == 'sql' else 'in memory'}")
    header = "".join(f"{f'{size:,} publishers':>24}" for size in sizes)
    print(f"{'':26}{header}")
    for name in results[sizes[0]]:
        cells = "".join(f"{results[s][name][0] * 1e6:11.1f} / {results[s][name][1] * 1e6:8.1f}"
                        for s in sizes)
        print(f"{name:26}{cells}")


if __name__ == "__main__":
    main()
