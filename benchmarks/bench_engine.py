"""The engine at scale: one check with 100, 10 000 and 1 000 000 publishers loaded,
memory per loaded publisher, load time.

Run: python benchmarks/bench_engine.py [--sizes 100,10000,1000000] [--instructions] [--fresh]
          [--no-huge-pages] [--with-dict]

A check is Engine.check_claims on a GitHub token matching one publisher, the whole
decision included. Each size is measured in a fresh process (so that memory is its own):

- hot: the same 100 tokens cycled at every size. What the lookup itself costs; the
  target of issue 4 (flat: at most 1.2x from the smallest size to the largest).
- random: 2 000 tokens of publishers picked at random among all those loaded. With 100
  publishers their data stays in the CPU caches; among a million (2 GB) it cannot,
  and each check waits on main memory for the lines it reads. Without --fresh the same
  2 000 are checked every round: the lines each reads (2-3 with the C quick table, 5-6
  with a dict: up to 700 KB) may stay in a large cache from one round to the next on a
  quiet machine, and not when other processes run (the figure then depends on the load).
  With --fresh, before each round (not timed) the same claims dicts are made to name
  newly drawn publishers: every round's publishers are cold, as a server's among a
  million are.
- --with-dict: every size measured twice, with the C quick table and with a dict
  (`TPPOLICY_NO_EXTENSION=1`, as an install without a C compiler has it), the rounds of
  all the processes interleaved: an A/B in one run. The variable alone, set for the
  whole run, measures the dict only.
- --no-huge-pages: `Engine(huge_pages=False)`. By default an engine backs its memory
  with 2 MB pages after a bulk load leaving 50 000 publishers or more (Linux,
  `tppolicy.decide.memory`): on this VM a page-table walk per page missed costs about
  as much as the line itself. The load time includes that collapse.
- --instructions (needs valgrind; about 6 minutes at a million): the random checks
  again under callgrind, counting instructions and last-level-cache misses per check.
  Instructions show the work is the same at every size; the misses, times the
  machine's memory latency, are what "random" adds at a million.

Timings: per check, medians over rounds of the measuring thread's CPU time
(`time.thread_time`) beside wall time; the garbage collector paused, the loaded objects
frozen out of its generations (as `tppolicy serve` does). Every size is loaded in its own
process first (one at a time), then the rounds are interleaved across the processes
(random then hot tokens, each size in turn, the order rotated each round): a burst of
load from other processes hits every size alike. Every size checks claims built the same
way (2 000 distinct dicts for the random tokens, 100 cycled for the hot). The ratios are
those of the thread-CPU medians (wall time on a shared machine also counts the time other
processes ran). Memory: resident set growth per publisher loaded (the engine's records,
indexes and quick entries).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 15
# The last-level cache callgrind simulates: the share a process gets on these machines
# (a pointer chase over 8 MB stays near 27 ns per load, over 16 MB it is 99 ns).
SIMULATED_LL = "--LL=8388608,16,64"


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


def _loaded(size: int, huge_pages: bool = True
            ) -> tuple[Callable[[Any], Any], tuple[float, float], float]:
    """(check, (load seconds, load thread CPU seconds), bytes per publisher) with `size`
    publishers loaded (the wall time includes waiting for the CPU on a busy machine)."""
    import tppolicy
    from tppolicy.decide.engine import Engine

    tppolicy.load_providers()  # provider files parsed before the baseline
    engine = Engine(huge_pages=None if huge_pages else False)
    gc.collect()
    before = _rss_bytes()
    start, cpu = time.perf_counter(), time.thread_time()
    batch = 10_000
    for first in range(0, size, batch):
        engine.add_publishers(_row(i) for i in range(first, min(size, first + batch)))
    load, load_cpu = time.perf_counter() - start, time.thread_time() - cpu
    gc.collect()
    return engine.check_claims, (load, load_cpu), (_rss_bytes() - before) / size


def _tokens(size: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(random, hot): claims of random publishers, and of the first 100 cycled."""
    base = json.loads((ROOT / "examples/claims/github-release.json").read_text())
    rng = random.Random(7)
    picks = [_claims(base, rng.randrange(size)) for _ in range(2000)]
    hot = [_claims(base, i) for i in range(min(size, 100))] * 20
    return picks, hot


class Child:
    """One size loaded in its own process (so that memory is its own), measuring a round
    when asked: the parent interleaves the sizes' rounds, so that a burst of load from
    other processes hits every size alike, not the one measured at that moment."""

    def __init__(self, size: int, fresh: bool, huge_pages: bool = True,
                 dict_table: bool = False) -> None:
        self.size = size
        self.dict_table = dict_table  # TPPOLICY_NO_EXTENSION=1: the quick table a dict
        env = {**os.environ, **({"TPPOLICY_NO_EXTENSION": "1"} if dict_table else {})}
        self.process = subprocess.Popen([sys.executable, __file__, "--child", str(size),
                                         *(["--fresh"] if fresh else []),
                                         *([] if huge_pages else ["--no-huge-pages"])],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=env)
        self.loaded: dict[str, float] = self._read()  # load seconds, bytes per publisher
        self.rounds: list[dict[str, float]] = []

    def _read(self) -> dict[str, float]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the child measuring {self.size:,} publishers failed")
        answer: dict[str, float] = json.loads(line)
        return answer

    def round(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        self.rounds.append(self._read())

    def close(self) -> dict[str, float]:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()

        def median(name: str) -> float:
            return statistics.median(r[name] for r in self.rounds) * 1e6

        return {"size": self.size, "dict": float(self.dict_table), "hot_us": median("hot_wall"),
                "hot_cpu_us": median("hot_cpu"), "median_us": median("wall"),
                "median_cpu_us": median("cpu"), **self.loaded}


def _retarget(picks: list[dict[str, Any]], size: int, rng: random.Random) -> None:
    """The same claims dicts made to name other publishers drawn at random (`--fresh`)."""
    base = picks[0]
    for claims in picks:
        claims.update(_claims(base, rng.randrange(size)))


def serve_rounds(size: int, fresh: bool, huge_pages: bool = True) -> None:
    """The child: load, say so, then measure one round per line read (until EOF).
    The collector is paused while measuring and the loaded objects are frozen out of
    its generations, as `tppolicy serve` does after start-up. `fresh`: before each
    round (not timed), the random claims are made to name newly drawn publishers.
    `huge_pages`: False for `Engine(huge_pages=False)` (else the engine's default)."""
    check, (load, load_cpu), memory = _loaded(size, huge_pages)
    picks, hot = _tokens(size)
    for claims in picks[:50]:
        assert check(claims).allowed
    gc.freeze()
    rng = random.Random(11)
    print(json.dumps({"bytes_per_publisher": memory, "load_s": load, "load_cpu_s": load_cpu}),
          flush=True)
    for _ in sys.stdin:
        if fresh:
            _retarget(picks, size, rng)
        gc.disable()
        cpu, wall = time.thread_time(), time.perf_counter()
        for claims in picks:
            check(claims)
        random_cpu, random_wall = time.thread_time() - cpu, time.perf_counter() - wall
        cpu, wall = time.thread_time(), time.perf_counter()
        for claims in hot:
            check(claims)
        hot_cpu, hot_wall = time.thread_time() - cpu, time.perf_counter() - wall
        gc.enable()
        print(json.dumps({"cpu": random_cpu / len(picks), "wall": random_wall / len(picks),
                          "hot_cpu": hot_cpu / len(hot), "hot_wall": hot_wall / len(hot)}),
              flush=True)


def count(size: int) -> None:
    """Under callgrind (instrumentation off while loading): the random checks, each
    publisher's data read for the first time (as a server meets it among a million),
    everything else warm: the engine's code by the hot tokens, the claims by a read.
    Collection is toggled by functools.reduce, which nothing else calls meanwhile."""
    check, _, _ = _loaded(size)
    picks, hot = _tokens(size)
    gc.disable()
    subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())], check=True,
                   capture_output=True)
    for claims in hot:
        check(claims)
    for claims in picks:
        for value in claims.values():
            hash(value)
    functools.reduce(lambda _, claims: check(claims), picks, None)


def _counted(size: int, dict_table: bool = False) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                        "--collect-atstart=no", "--toggle-collect=functools_reduce",
                        "--cache-sim=yes", SIMULATED_LL, f"--callgrind-out-file={out}",
                        sys.executable, __file__, "--count", str(size)],
                       check=True, capture_output=True,
                       env={**os.environ, "PYTHONHASHSEED": "0",  # the same probes each run
                            **({"TPPOLICY_NO_EXTENSION": "1"} if dict_table else {})})
        events: list[str] = []
        totals: list[int] = []
        for line in out.read_text().splitlines():
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith(("summary:", "totals:")):
                totals = [int(v) for v in line.split()[1:]]
        values = dict(zip(events, totals, strict=False))
    checks = 2000
    return {"instructions": values["Ir"] / checks,
            "ll_misses": (values.get("DLmr", 0) + values.get("DLmw", 0)) / checks}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,10000,1000000")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions and cache misses per check (valgrind)")
    parser.add_argument("--fresh", action="store_true",
                        help="each round, the random tokens name newly drawn publishers "
                             "(so that they are not in the CPU caches from an earlier round)")
    parser.add_argument("--no-huge-pages", dest="huge_pages", action="store_false",
                        help="Engine(huge_pages=False): the loaded publishers left in 4 KB "
                             "pages (by default an engine of 50 000 publishers or more "
                             "backs them with 2 MB pages on Linux)")
    parser.add_argument("--with-dict", action="store_true",
                        help="also measure every size with the quick table a dict "
                             "(TPPOLICY_NO_EXTENSION=1, as without a C compiler), its "
                             "rounds interleaved with the others: an A/B in one run")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        serve_rounds(args.child, args.fresh, args.huge_pages)
        return
    if args.count:
        count(args.count)
        return
    if args.instructions and not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        parser.error("--instructions needs valgrind (Debian: apt-get install valgrind)")
    children = [Child(int(size), args.fresh, args.huge_pages, dict_table)  # one by one
                for dict_table in ((False, True) if args.with_dict else (False,))
                for size in args.sizes.split(",")]
    for position in range(ROUNDS):
        for child in children[position % len(children):] + children[:position % len(children)]:
            child.round()
    rows = [child.close() for child in children]
    if args.instructions:
        for row in rows:
            row.update(_counted(int(row["size"]), bool(row["dict"])))
    counted = " instructions  LL misses" if args.instructions else ""
    print(f"{cpu_model()}, {os.cpu_count()} logical CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; per check, medians of {ROUNDS} "
          "interleaved rounds, thread CPU / wall"
          + "".join(f"; {flag}" for flag, on in (("fresh publishers each round", args.fresh),
                                                  ("4 KB pages (--no-huge-pages)",
                                                   not args.huge_pages)) if on))
    print(f"{'publishers':>13} {'hot (100 tokens)':>18} {'random (2 000)':>18} "
          f"{'memory/publisher':>17} {'load CPU / wall':>17}{counted}")
    for row in rows:
        label = f"{row['size']:,}" + (" (dict)" if row["dict"] else "")
        line = (f"{label:>13} {row['hot_cpu_us']:7.2f} / {row['hot_us']:5.2f}us "
                f"{row['median_cpu_us']:7.2f} / {row['median_us']:5.2f}us "
                f"{row['bytes_per_publisher']:13.0f} B "
                f"{row['load_cpu_s']:6.2f} / {row['load_s']:6.2f}s")
        if args.instructions:
            line += f" {row['instructions']:12,.0f} {row['ll_misses']:10.1f}"
        print(line)
    for kind in (False, True):
        _ratios([row for row in rows if bool(row["dict"]) is kind], args.instructions)


def _ratios(rows: list[dict[str, float]], instructions: bool) -> None:
    """Each size against the first, for one kind of quick table."""
    if not rows:
        return
    first = rows[0]
    table = " (quick table a dict)" if first["dict"] else ""
    if instructions:
        last = rows[-1]
        extra = last["ll_misses"] - first["ll_misses"]
        print(f"instructions per check {last['instructions'] / first['instructions']:.3f}x; "
              f"random tokens add {extra:.1f} last-level cache misses per check{table}")
    for row in rows[1:]:
        print(f"at {row['size']:,} vs {first['size']:,}{table}: hot "
              f"{row['hot_cpu_us'] / first['hot_cpu_us']:.2f}x (target <= 1.2x), random "
              f"{row['median_cpu_us'] / first['median_cpu_us']:.2f}x thread CPU "
              f"({row['median_us'] / first['median_us']:.2f}x wall; targets: <= 1.3x at "
              "100 000, <= 1.5x at 1 000 000)")


if __name__ == "__main__":
    main()
