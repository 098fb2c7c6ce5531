"""The index server under load: requests per second of POST /_/oidc/mint-token for
valid tokens against 100 000 publishers, beside GET /_/oidc/audience (the framework's
floor: Starlette on uvicorn doing nothing), as a ratio.

Run: python benchmarks/bench_server.py [--publishers 100000] [--tokens 12000]
                                       [--connections 16] [--seconds 5] [--parts 3000]

`tppolicy serve` runs in its own process pinned to core 0 (one uvicorn worker, plain
HTTP on 127.0.0.1, access log off, the default SQLite state); the load generator runs
in a second process pinned to core 1: `wrk` (Debian's package) when installed, else an
asyncio client of this file. Every mint-token request carries a distinct token (its
own jti, signed RS256, matching a publisher drawn at random among the 100 000), so
every one is a full exchange: verify, look up, decide, claim the jti in SQLite, mint
and store the credential (claim and credential committed, with those of the other
exchanges of the same turn of the event loop, before the answer). The server's CPU
is read from /proc/<pid>/stat (user and system apart, all threads), with its context
switches from /proc/<pid>/task/*/status; the size of the database's write-ahead log is
printed after the runs (it grew without bound before the checkpoints held the writes).

`--parts N` then measures in this process, on a copy of the same database, what the
pieces of a mint cost (thread CPU, interleaved rounds, medians): `Index.prepare_at_once`
(parse, verify, look up, decide: what runs on the event loop), `Index.commit_at_once`
per exchange in groups of 8 (jti claims and credentials, one transaction a group) and
`Index.mint` (the worker-thread path: one transaction an exchange). In process the CPU
caches stay warm, so these are lower than their share of the server's figure.
Loopback only; counts and durations are bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)

ROOT = Path(__file__).resolve().parents[1]
GITHUB = "https://token.actions.githubusercontent.com"
SERVER_CORE, CLIENT_CORE = 0, 1

_KEY: Any = None


def _row(i: int) -> dict[str, Any]:
    owner = f"org{i // 50}"
    return {"provider": "github", "repository_owner": owner, "repository_name": f"repo{i}",
            "repository_owner_id": str(100000 + i // 50), "workflow_filename": "release.yml",
            "environment": "pypi", "projects": [f"project-{i}"]}


def _claims(i: int, now: int) -> dict[str, Any]:
    row = _row(i)
    repository = f"{row['repository_owner']}/{row['repository_name']}"
    ref = "refs/tags/v1.0.0"
    return {"iss": GITHUB, "aud": "pypi", "iat": now, "nbf": now, "exp": now + 3600,
            "jti": str(uuid.uuid4()), "sub": f"repo:{repository}:environment:pypi",
            "repository": repository, "repository_owner": row["repository_owner"],
            "repository_owner_id": row["repository_owner_id"], "ref": ref,
            "sha": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", "event_name": "release",
            "job_workflow_ref": f"{repository}/.github/workflows/release.yml@{ref}",
            "workflow_ref": f"{repository}/.github/workflows/release.yml@{ref}",
            "environment": "pypi", "run_id": "1", "run_attempt": "1"}


def _init_signer(pem: bytes) -> None:
    global _KEY
    from cryptography.hazmat.primitives import serialization

    _KEY = serialization.load_pem_private_key(pem, None)


def _sign(indices: list[int]) -> list[str]:
    import jwt

    now = int(time.time())
    return [jwt.encode(_claims(i, now), _KEY, algorithm="RS256", headers={"kid": "bench-1"})
            for i in indices]


def make_state(directory: Path, publishers: int, tokens: int) -> tuple[Path, Path, Path]:
    """The server's database with `publishers` rows, its JWKS file, and a file of
    `tokens` distinct signed tokens (one per line)."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tppolicy.server.storage import Storage

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="bench-1", use="sig", alg="RS256")
    jwks_file = directory / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [jwk]}))
    db = directory / "index.db"
    storage = Storage(db)
    with storage.transaction() as tx:
        for i in range(publishers):
            storage.put_publisher(f"p{i}", _row(i), created=0.0, db=tx)
        for i in range(publishers):  # their projects exist (as the server would make them)
            storage.create_project(f"project-{i}", db=tx)
    storage.close()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    chosen = [random.randrange(publishers) for _ in range(tokens)]
    chunks = [chosen[i:i + 500] for i in range(0, len(chosen), 500)]
    with ProcessPoolExecutor(os.cpu_count() or 2, initializer=_init_signer,
                             initargs=(pem,)) as pool:
        signed = [t for chunk in pool.map(_sign, chunks) for t in chunk]
    tokens_file = directory / "tokens.txt"
    tokens_file.write_text("\n".join(signed) + "\n")
    return db, jwks_file, tokens_file


def _pin(core: int) -> Any:
    def pin() -> None:
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > core:
            os.sched_setaffinity(0, {core})
    return pin


def start_server(db: Path, jwks_file: Path) -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tppolicy", "serve", "--db", str(db), "--port", "0",
         "--jwks", f"{GITHUB}={jwks_file}", "--log-level", "warning"],
        stdout=subprocess.PIPE, preexec_fn=_pin(SERVER_CORE))
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    match = re.search(r"listening on (\S+)", line)
    if not match:
        process.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    url = match.group(1)
    deadline = time.monotonic() + 60
    import urllib.request

    while True:
        try:
            urllib.request.urlopen(url + "/_/oidc/audience", timeout=2).read()
            return process, url
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise SystemExit("the server does not answer") from None
            time.sleep(0.1)


# --------------------------------------------------------------------------- wrk

_WRK_SCRIPT = """
local tokens = {}
local i = 0
errors = 0  -- global: done() reads it with thread:get
local mint = os.getenv("BENCH_TOKENS") ~= nil
local t = nil
if mint then
  for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
end
function setup(thread) t = thread end
function request()
  if not mint then return wrk.format("GET", "/_/oidc/audience") end
  i = i + 1
  if i > #tokens then i = 1 end
  return wrk.format("POST", "/_/oidc/mint-token", {["Content-Type"] = "application/json"},
                    '{"token": "' .. tokens[i] .. '"}')
end
function response(status, headers, body)
  if status ~= 200 then errors = errors + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %f %f %d %d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    t:get("errors"), (summary.errors.status or 0)))
end
"""


def run_wrk(url: str, seconds: float, connections: int, tokens_file: Path | None,
            directory: Path) -> dict[str, float]:
    script = directory / "bench.lua"
    script.write_text(_WRK_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "BENCH_TOKENS"}
    if tokens_file is not None:
        env["BENCH_TOKENS"] = str(tokens_file)
    done = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout",
                           "10s", "-s", str(script), url], capture_output=True, text=True,
                          env=env, timeout=seconds + 60, preexec_fn=_pin(CLIENT_CORE),
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed: {done.stdout}{done.stderr}")
    match = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+) (\d+)", done.stdout)
    assert match, done.stdout + done.stderr
    requests, micros = int(match.group(1)), int(match.group(2))
    return {"requests": requests, "rps": requests / (micros / 1e6),
            "p50_ms": float(match.group(3)) / 1000, "p99_ms": float(match.group(4)) / 1000,
            "errors": int(match.group(5))}


# --------------------------------------------------------------------------- asyncio


async def _client(host: str, port: int, bodies: list[bytes], connections: int
                  ) -> tuple[int, int, list[float]]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    errors = 0
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        while not queue.empty():
            request = queue.get_nowait()
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
        writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return len(bodies), errors, latencies


def run_asyncio(url: str, count: int, connections: int, tokens: list[str] | None
                ) -> dict[str, float]:
    host, port = url.split("//")[1].rsplit(":", 1)
    if tokens is None:
        bodies = [f"GET /_/oidc/audience HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()] * count
    else:
        bodies = []
        for token in tokens[:count]:
            payload = json.dumps({"token": token}).encode()
            bodies.append(f"POST /_/oidc/mint-token HTTP/1.1\r\nHost: {host}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(payload)}"
                          f"\r\n\r\n".encode() + payload)
    _pin(CLIENT_CORE)()
    started = time.perf_counter()
    done, errors, latencies = asyncio.run(_client(host, int(port), bodies, connections))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"requests": done, "rps": done / elapsed,
            "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000, "errors": errors}


def server_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user, system; all threads) the process `pid` has used so far, from
    /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of all the threads of `pid` so far."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.split()[1])
        except OSError:  # a thread that ended meanwhile
            continue
    return total


def measured(pid: int, run: Any, *args: Any) -> dict[str, float]:
    """`run(*args)`'s result with the server's CPU milliseconds per request added
    (`cpu_ms`, and apart `user_ms`, `sys_ms`) and its context switches per request."""
    user, system = server_cpu(pid)
    switches = context_switches(pid)
    result: dict[str, float] = run(*args)
    count = max(1, result["requests"])
    user_after, system_after = server_cpu(pid)
    result["user_ms"] = (user_after - user) / count * 1000
    result["sys_ms"] = (system_after - system) / count * 1000
    result["cpu_ms"] = result["user_ms"] + result["sys_ms"]
    result["switches"] = (context_switches(pid) - switches) / count
    return result


def measure_parts(db: Path, jwks_file: Path, tokens: list[str], rounds: int,
                  group: int = 8) -> dict[str, float]:
    """Thread CPU microseconds per exchange of the pieces of a mint, in this process
    (see the module's docstring), medians of `rounds` interleaved rounds."""
    import logging

    from tppolicy.server import Settings, build_index
    from tppolicy.server.core import PreparedMint

    logging.getLogger("tppolicy").setLevel(logging.WARNING)
    copy = db.with_name("parts.db")
    shutil.copy(db, copy)
    index = build_index(Settings(db=copy, jwks={GITHUB: str(jwks_file)},
                                 reload_interval=3600))
    gc.freeze()  # as `tppolicy serve` does after start-up
    bodies = iter([json.dumps({"token": t}).encode() for t in tokens])
    share = len(tokens) // (3 * rounds + 1)
    index.mint(next(bodies))  # the keys are read once
    results: dict[str, list[float]] = {"prepare": [], "commit": [], "mint": []}
    try:
        for _ in range(rounds):
            batch = [next(bodies) for _ in range(share)]
            started = time.thread_time()
            prepared = [index.prepare_at_once(body) for body in batch]
            results["prepare"].append((time.thread_time() - started) / share * 1e6)
            assert all(isinstance(p, PreparedMint) for p in prepared), "not the usual case"
            ready = [p for p in prepared if isinstance(p, PreparedMint)]
            started = time.thread_time()
            for first in range(0, len(ready), group):
                index.commit_at_once(ready[first:first + group])
            results["commit"].append((time.thread_time() - started) / share * 1e6)
            batch = [next(bodies) for _ in range(share)]
            started = time.thread_time()
            for body in batch:
                assert index.mint(body).status == 200
            results["mint"].append((time.thread_time() - started) / share * 1e6)
    finally:
        index.storage.close()
    return {name: _median(values) for name, values in results.items()}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--publishers", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=12_000,
                        help="distinct tokens signed in advance (bounds the mint run)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--client", choices=("auto", "wrk", "asyncio"), default="auto")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds (audience, mint); medians are reported")
    parser.add_argument("--parts", type=int, default=3000,
                        help="more tokens, for the in-process cost of a mint's pieces "
                        "(0: not measured)")
    args = parser.parse_args()
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "asyncio"
    with tempfile.TemporaryDirectory(prefix="bench-server-") as name:
        directory = Path(name)
        started = time.perf_counter()
        db, jwks_file, tokens_file = make_state(directory, args.publishers,
                                                args.tokens + args.parts)
        pristine = directory / "pristine.db"
        if args.parts:
            shutil.copy(db, pristine)
        print(f"state: {args.publishers} publishers, {args.tokens} + {args.parts} signed "
              f"tokens ({time.perf_counter() - started:.1f} s)", flush=True)
        started = time.perf_counter()
        server, url = start_server(db, jwks_file)
        print(f"server: {url}, up in {time.perf_counter() - started:.1f} s (core "
              f"{SERVER_CORE}); load generator: {client} (core {CLIENT_CORE}), "
              f"{args.connections} connections", flush=True)
        floors: list[dict[str, float]] = []
        mints: list[dict[str, float]] = []
        try:
            pid = server.pid
            tokens = tokens_file.read_text().split()
            tokens, part_tokens = tokens[:args.tokens], tokens[args.tokens:]
            share = len(tokens) // args.rounds
            for round_ in range(args.rounds):
                mine = tokens[round_ * share:(round_ + 1) * share]
                if client == "wrk":
                    part = directory / f"tokens{round_}.txt"
                    part.write_text("\n".join(mine) + "\n")
                    floors.append(measured(pid, run_wrk, url, args.seconds,
                                           args.connections, None, directory))
                    mints.append(measured(pid, run_wrk, url, args.seconds,
                                          args.connections, part, directory))
                    if mints[-1]["requests"] > len(mine):
                        print(f"note: {mints[-1]['requests']:.0f} requests for {len(mine)} "
                              "tokens: re-used tokens were refused (errors); raise --tokens")
                else:
                    floors.append(measured(pid, run_asyncio, url, len(mine) * 2,
                                           args.connections, None))
                    mints.append(measured(pid, run_asyncio, url, len(mine),
                                          args.connections, mine))
                print(f"round {round_ + 1}: audience {floors[-1]['cpu_ms']:.3f} ms CPU/req, "
                      f"mint {mints[-1]['cpu_ms']:.3f} ms CPU/req", flush=True)
            wal = db.with_name(db.name + "-wal")
            log_mb = wal.stat().st_size / 1e6 if wal.exists() else 0.0
        finally:
            server.terminate()
            server.wait(30)
        parts = measure_parts(pristine, jwks_file, part_tokens, args.rounds) \
            if args.parts else None
    print()
    print(f"CPU: {cpu_model()} x{os.cpu_count()}; {args.rounds} interleaved rounds, medians; "
          "server CPU is "
          "user+system of the whole server process (all threads) from /proc/<pid>/stat")
    print("| endpoint | requests/round | req/s | p50 ms | p99 ms | non-200 | server CPU "
          "ms/req (user + sys) | context switches/req |")
    print("|---|---|---|---|---|---|---|---|")
    for label, results in (("GET /_/oidc/audience (floor)", floors),
                           ("POST /_/oidc/mint-token", mints)):
        row = {key: _median([r[key] for r in results]) for key in results[0]}
        print(f"| {label} | {row['requests']:.0f} | {row['rps']:.0f} | "
              f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['errors']:.0f} | "
              f"{row['cpu_ms']:.3f} ({row['user_ms']:.3f} + {row['sys_ms']:.3f}) | "
              f"{row['switches']:.2f} |")
    if parts is not None:
        print(f"\nin process, thread CPU per exchange (medians of {args.rounds} rounds): "
              f"prepare_at_once {parts['prepare']:.1f} us, commit_at_once in groups of 8 "
              f"{parts['commit']:.1f} us, the worker-thread path Index.mint "
              f"{parts['mint']:.1f} us")
    print(f"\nthe database's write-ahead log after the runs: {log_mb:.1f} MB (bounded: "
          "the checkpoints start it again)")
    floor_cpu = _median([r["cpu_ms"] for r in floors])
    mint_cpu = _median([r["cpu_ms"] for r in mints])
    ratios = [f["cpu_ms"] / m["cpu_ms"] for f, m in zip(floors, mints, strict=True)]
    print(f"\nmint-token vs audience by server CPU per request (audience / mint, target >= 0.5): "
          f"{floor_cpu / mint_cpu:.3f} (per round: "
          f"{', '.join(f'{r:.3f}' for r in ratios)}); by req/s: "
          f"{_median([m['rps'] for m in mints]) / _median([f['rps'] for f in floors]):.3f}")



if __name__ == "__main__":
    main()
