"""The engine at scale: lookup time with 100, 10 000 and 1 000 000 publishers loaded,
memory per loaded publisher, load time.

Run: python benchmarks/bench_engine.py [--sizes 100,10000,1000000]

Each size is measured in a fresh process (so that memory is its own). A check is
Engine.check_claims on a GitHub token matching one publisher, the whole decision
included: "cold" picks 2 000 publishers at random among those loaded (at a million,
most of what a check touches is out of the CPU caches), "warm" cycles the same 100 at
every size. Target (issue 4): lookup stays flat, at most 1.2x from the smallest size
to the largest.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    import resource

    return pages * resource.getpagesize()


def _row(i: int) -> dict[str, Any]:
    owner = f"org{i // 50}"
    return {"provider": "github", "repository_owner": owner, "repository_name": f"repo{i}",
            "repository_owner_id": str(100000 + i // 50), "workflow_filename": "release.yml",
            "environment": "pypi" if i % 2 else "", "projects": [f"project-{i}"]}


def _claims(base: dict[str, Any], i: int) -> dict[str, Any]:
    row = _row(i)
    repository = f"{row['repository_owner']}/{row['repository_name']}"
    ref = base["ref"]
    return {**base, "repository": repository, "repository_owner": row["repository_owner"],
            "repository_owner_id": row["repository_owner_id"],
            "job_workflow_ref": f"{repository}/.github/workflows/release.yml@{ref}",
            "environment": "pypi"}


def measure(size: int) -> dict[str, float]:
    import tppolicy
    from tppolicy._engine import Engine

    base = json.loads((ROOT / "examples/claims/github-release.json").read_text())
    tppolicy.load_providers()  # provider files parsed before the baseline
    engine = Engine()
    gc.collect()
    before = _rss_bytes()
    start = time.perf_counter()
    batch = 10_000
    for first in range(0, size, batch):
        engine.add_publishers(_row(i) for i in range(first, min(size, first + batch)))
    load = time.perf_counter() - start
    gc.collect()
    memory = (_rss_bytes() - before) / size
    rng = random.Random(7)
    picks = [_claims(base, rng.randrange(size)) for _ in range(2000)]
    for claims in picks[:50]:
        assert engine.check_claims(claims).allowed
    warm = [_claims(base, i) for i in range(min(size, 100))] * 20
    gc.disable()
    best = best_warm = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        for claims in picks:
            engine.check_claims(claims)
        best = min(best, (time.perf_counter() - start) / len(picks))
        start = time.perf_counter()
        for claims in warm:
            engine.check_claims(claims)
        best_warm = min(best_warm, (time.perf_counter() - start) / len(warm))
    gc.enable()
    return {"size": size, "check_us": best * 1e6, "warm_us": best_warm * 1e6,
            "bytes_per_publisher": memory, "load_s": load}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,10000,1000000")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        done = subprocess.run([sys.executable, __file__, "--child", str(size)],
                              capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout))
    print(f"{'publishers':>11} {'cold check':>11} {'warm check':>11} {'memory/publisher':>17} "
          f"{'load':>8}")
    for row in rows:
        print(f"{row['size']:>11,} {row['check_us']:9.2f}us {row['warm_us']:9.2f}us "
              f"{row['bytes_per_publisher']:13.0f} B {row['load_s']:7.2f}s")
    cold = rows[-1]["check_us"] / rows[0]["check_us"]
    warm = rows[-1]["warm_us"] / rows[0]["warm_us"]
    print(f"lookup, largest / smallest: cold {cold:.2f}x, warm {warm:.2f}x (target <= 1.2x)")
    print("cold: random tokens among all loaded publishers (memory latency included); "
          "warm: the same 100 tokens at every size (the lookup itself)")


if __name__ == "__main__":
    main()
