"""The engine measured from the outside, as an index server uses it (issue 13's ratios).

Run: python benchmarks/bench_outside.py [--publishers 1000] [--rounds 11]

Through the public API only, with what a server has: an `Engine` holding N GitHub
publishers (one per repository), the audience "pypi", keys given locally, and a replay
store on.

- claims: `Engine.check_claims` on N distinct claims (one per publisher, each allowed) vs
  a hand-written server check of the same claims: issuer, audience, a dict lookup of the
  publisher by (repository, workflow file), and PyPI's comparisons (repository ignoring
  case, owner, owner id, job_workflow_ref at the token's ref or sha, environment ignoring
  case, not pull_request_target). Target (issue 13): <= 2x.
- token: `Engine.check_token` on distinct signed tokens (RS256, RSA-2048; a fresh token
  per check, so every jti is new and is claimed in the replay store), with
  `MemoryReplayStore`, with `SQLiteReplayStore` (shared between processes, the default),
  with `SQLiteReplayStore(exclusive=True)` (a file one process owns: no file locks
  per claim) and with `MappedReplayStore` (a file every process of the host maps; its
  defaults, synced once a second), vs a bare RSA-2048 verify of the
  same tokens' signing inputs (cryptography's `RSAPublicKey.verify` with its padding and
  hash objects made once, as tppolicy makes them: the floor any verifier pays). Target:
  <= 1.5x. Beside it, on tokens of their own: `Engine.verifier.verify` alone (parse,
  header, key, signature, registered claims; no decision, no jti claim) and PyJWT's
  `jwt.decode` (signature and registered claims), each vs a bare verify of its tokens.

Timing: CPU time of the measuring thread (`time.thread_time`) beside wall time, per check,
over every claims or token of a round; rounds interleave the measures; figures are
medians over rounds (for the token path, each round's ratio is printed beside: its two
measures ran one after the other, under the same load). The garbage collector runs as in a
server (not paused).

--instructions (needs valgrind, about a minute): what the token path costs beside the RSA
call, in instructions (callgrind; they do not depend on the machine's load), piece by
piece. The key's verify is a no-op there (the RSA call is the bare verify's, measured
beside it; the key is looked up in the engine's own `KeyCache`), and each piece is the
difference of two measures on 1 000 distinct tokens: the parse and checks of
`Verifier.verify`; the decision and `check_token`'s glue
(`check_token` with a replay store that keeps nothing, minus `verify`); the jti's claim
in `MemoryReplayStore`, in `SQLiteReplayStore`, in `SQLiteReplayStore(exclusive=True)` and
in `MappedReplayStore` (user space only: callgrind does not count the kernel's work in
system calls, nor the page faults of the mapped file's first touches).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)

from tppolicy import Engine
from tppolicy.token.keys import KeyCache, VerificationKey
from tppolicy.token.replay import MappedReplayStore, MemoryReplayStore, SQLiteReplayStore
from tppolicy.token.verify import split_token

ISSUER = "https://token.actions.githubusercontent.com"



def row(i: int) -> dict[str, Any]:
    return {"provider": "github", "name": f"pub-{i}", "projects": [f"project-{i}"],
            "repository_owner": f"org{i // 10}", "repository_name": f"repo{i}",
            "repository_owner_id": str(100000 + i // 10), "workflow_filename": "release.yml",
            "environment": "pypi"}


def claims_of(i: int, now: int) -> dict[str, Any]:
    publisher = row(i)
    repository = f"{publisher['repository_owner']}/{publisher['repository_name']}"
    ref = "refs/tags/v1.0.0"
    return {
        "iss": ISSUER, "aud": "pypi", "sub": f"repo:{repository}:environment:pypi",
        "jti": str(uuid.uuid4()), "iat": now, "nbf": now, "exp": now + 900,
        "repository": repository, "repository_owner": publisher["repository_owner"],
        "repository_owner_id": publisher["repository_owner_id"], "repository_id": str(i),
        "job_workflow_ref": f"{repository}/.github/workflows/release.yml@{ref}",
        "workflow_ref": f"{repository}/.github/workflows/release.yml@{ref}",
        "ref": ref, "sha": "a" * 40, "event_name": "push", "environment": "pypi",
        "ref_type": "tag", "runner_environment": "github-hosted", "actor": "octocat",
    }


def hand_written_server(publishers: dict[tuple[str, str], dict[str, Any]]
                        ) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    """What a careful index programmer writes for GitHub publishers (PyPI's checks)."""
    def check(claims: dict[str, Any]) -> dict[str, Any] | None:
        get = claims.get
        if get("iss") != ISSUER or get("aud") != "pypi":
            return None
        repository: Any = get("repository")
        workflow_ref: Any = get("job_workflow_ref")
        ref: Any = get("ref")
        sha: Any = get("sha")
        environment: Any = get("environment")
        for value in (repository, workflow_ref, ref, sha, get("repository_owner"),
                      get("repository_owner_id"), get("event_name"), get("jti")):
            if type(value) is not str:
                return None
        path = workflow_ref.rsplit("@", 1)[0]
        publisher = publishers.get((repository.lower(), path.rsplit("/", 1)[-1]))
        if publisher is None:
            return None
        base = publisher["workflow_base"]
        if (repository.lower() != publisher["repository"]
                or get("repository_owner") != publisher["repository_owner"]
                or get("repository_owner_id") != publisher["repository_owner_id"]
                or get("event_name") == "pull_request_target"
                or not ((ref != "" and workflow_ref == base + ref)
                        or (sha != "" and workflow_ref == base + sha))):
            return None
        if publisher["environment"] and (
                type(environment) is not str or environment.lower() != publisher["environment"]):
            return None
        return publisher

    return check


def timed(function: Callable[[Any], Any], items: list[Any]) -> tuple[float, float]:
    """(thread CPU seconds, wall seconds) per item."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for item in items:
        function(item)
    return (time.thread_time() - cpu) / len(items), (time.perf_counter() - wall) / len(items)


class _NoOpKey:
    """A public key whose verify does nothing: the token path without its RSA call."""

    def verify(self, *args: Any) -> None:
        pass


class _KeepNothing:
    """A replay store that records nothing: check_token without the jti's claim."""

    def claim(self, key: str, expires_at: int) -> bool:
        return True


_PIECES = ("bare", "verify", "nothing", "memory", "sqlite", "sqlite-exclusive", "mapped")


def count(piece: str, data_file: str) -> None:
    """Under callgrind: one measure of the token path on the tokens of `data_file`,
    collected only inside functools.reduce (which nothing else calls meanwhile)."""
    with open(data_file) as f:
        data = json.load(f)
    rows = [row(i) for i in range(data["publishers"])]
    tokens: list[str] = data["tokens"]
    jwks = {"keys": [data["jwk"]]}
    if piece == "bare":
        real = KeyCache()
        real.add_static(ISSUER, jwks)
        found = real.get(ISSUER, "bench")
        assert found is not None
        public = found.key
        pkcs1v15, sha256 = padding.PKCS1v15(), hashes.SHA256()
        signed = [split_token(t)[2:] for t in tokens]
        _instrument()
        functools.reduce(lambda _, p: public.verify(p[0], p[1], pkcs1v15, sha256),
                         signed[10:], None)
        return

    # The engine's own KeyCache (its lookup counted), holding a key whose verify is a no-op.
    keys = KeyCache()
    keys.add_static(ISSUER, jwks)
    keys._issuers[ISSUER].keys = {"bench": VerificationKey.make("bench", "RSA", None, _NoOpKey())}

    replay: Any
    if piece in ("verify", "nothing"):
        replay = _KeepNothing()
    elif piece == "memory":
        replay = MemoryReplayStore()
    elif piece == "mapped":
        replay = MappedReplayStore(os.path.join(tempfile.mkdtemp(), "replay.map"))
    else:
        replay = SQLiteReplayStore(os.path.join(tempfile.mkdtemp(), "replay.db"),
                                   exclusive=piece == "sqlite-exclusive")
    engine = Engine(publishers=rows, audience="pypi", keys=keys, replay=replay)
    check: Any = engine.verifier.verify if piece == "verify" else engine.check_token
    for token in tokens[:10]:  # warm: the header cache, the store's connection
        check(token)
    _instrument()
    functools.reduce(lambda _, token: check(token), tokens[10:], None)


def _instrument() -> None:
    """Start callgrind's instrumentation (off while the engine loads: 50x faster)."""
    subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())], check=True,
                   capture_output=True)


def instructions(publishers: int) -> None:
    """The token path beside the RSA call, in instructions per check, piece by piece."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk["kid"] = "bench"
    now = int(time.time())
    tokens = [jwt.encode({**claims_of(i % publishers, now), "exp": now + 3600}, key,
                         algorithm="RS256", headers={"kid": "bench"}) for i in range(1010)]
    per_check: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        data_file = os.path.join(scratch, "tokens.json")
        with open(data_file, "w") as f:
            json.dump({"publishers": publishers, "jwk": jwk, "tokens": tokens}, f)
        runs = {piece: subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
             "--toggle-collect=functools_reduce",
             f"--callgrind-out-file={os.path.join(scratch, 'callgrind.' + piece)}",
             sys.executable, __file__, "--count", piece, data_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONHASHSEED": "0"}) for piece in _PIECES}
        for piece, run in runs.items():
            if run.wait() != 0:
                raise SystemExit(f"valgrind failed on {piece}")
            with open(os.path.join(scratch, f"callgrind.{piece}")) as f:
                totals = [line.split()[1] for line in f if line.startswith("totals:")]
            per_check[piece] = int(totals[0]) / (len(tokens) - 10)
    print(f"instructions per check (callgrind; {publishers} publishers, 1 000 distinct "
          "tokens; the RSA call excluded but for the first row)")
    rows_out = [
        ("bare RSA-2048 verify (cryptography, for scale)", per_check["bare"]),
        ("Verifier.verify beside its RSA call", per_check["verify"]),
        ("decision and check_token's glue", per_check["nothing"] - per_check["verify"]),
        ("jti claim: MemoryReplayStore", per_check["memory"] - per_check["nothing"]),
        ("jti claim: SQLiteReplayStore (user space)", per_check["sqlite"] - per_check["nothing"]),
        ("jti claim: SQLiteReplayStore(exclusive=True) (user space)",
         per_check["sqlite-exclusive"] - per_check["nothing"]),
        ("jti claim: MappedReplayStore", per_check["mapped"] - per_check["nothing"]),
        ("check_token (memory) beside its RSA call", per_check["memory"]),
    ]
    for name, value in rows_out:
        print(f"  {name:58} {value:>10,.0f}")
    print("(valgrind runs OpenSSL without the CPU's fastest code paths: its instructions for "
          "the RSA call are not its time)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--publishers", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=200, help="tokens per round and store")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per piece under valgrind instead of timing")
    parser.add_argument("--count", nargs=2, metavar=("PIECE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count:
        count(*args.count)
        return
    if args.instructions:
        instructions(args.publishers)
        return
    n, rounds = args.publishers, args.rounds
    now = int(time.time())
    rows = [row(i) for i in range(n)]

    # ------------------------------------------------------------------ claims
    engine = Engine(publishers=rows, audience="pypi", replay=MemoryReplayStore())
    table = {}
    for r in rows:
        repository = f"{r['repository_owner']}/{r['repository_name']}"
        table[(repository.lower(), r["workflow_filename"])] = {
            **r, "repository": repository.lower(),
            "workflow_base": f"{repository}/.github/workflows/{r['workflow_filename']}@"}
    hand = hand_written_server(table)
    claims = [claims_of(i, now) for i in range(n)]
    for c in claims:
        assert engine.check_claims(c).allowed
        assert hand(c) is not None

    # ------------------------------------------------------------------ tokens
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    jwk["kid"] = "bench"
    stores = ("memory", "sqlite", "sqlite-exclusive", "mapped")
    kinds = (*stores, "verify", "pyjwt")  # each measure signs its own tokens
    print(f"signing {len(kinds) * (rounds + 1) * args.tokens} tokens...", flush=True)
    tokens = {kind: [[jwt.encode(claims_of(i % n, now), key, algorithm="RS256",
                                 headers={"kid": "bench"}) for i in range(args.tokens)]
                     for _ in range(rounds + 1)] for kind in kinds}
    folder = tempfile.mkdtemp()
    engines = {}
    for store in stores:
        keys = KeyCache()
        keys.add_static(ISSUER, {"keys": [jwk]})
        replay: Any
        if store == "memory":
            replay = MemoryReplayStore()
        elif store == "mapped":
            replay = MappedReplayStore(os.path.join(folder, "replay.map"))
        else:
            replay = SQLiteReplayStore(os.path.join(folder, f"{store}.db"),
                                       exclusive=store == "sqlite-exclusive")
        engines[store] = Engine(publishers=rows, audience="pypi", keys=keys, replay=replay)
    signed = {kind: [[split_token(t)[2:] for t in batch] for batch in batches]
              for kind, batches in tokens.items()}
    pkcs1v15, sha256 = padding.PKCS1v15(), hashes.SHA256()  # made once, as tppolicy does

    def bare(parts: tuple[bytes, bytes]) -> None:
        public.verify(parts[0], parts[1], pkcs1v15, sha256)

    verify = engines["memory"].verifier.verify

    def pyjwt(token: str) -> None:
        jwt.decode(token, public, algorithms=["RS256"], audience="pypi", issuer=ISSUER)

    for store, engine_ in engines.items():  # warm-up round (and a check that all pass)
        assert all(engine_.check_token(t).allowed for t in tokens[store][0])
    for t in tokens["verify"][0]:
        verify(t)
        pyjwt(t)

    samples: dict[str, list[tuple[float, float]]] = {}
    for batch in range(1, rounds + 1):
        samples.setdefault("check_claims", []).append(timed(engine.check_claims, claims))
        samples.setdefault("hand-written", []).append(timed(hand, claims))
        for store, engine_ in engines.items():
            samples.setdefault(f"check_token ({store})", []).append(
                timed(engine_.check_token, tokens[store][batch]))
            samples.setdefault(f"bare verify ({store} tokens)", []).append(
                timed(bare, signed[store][batch]))
        samples.setdefault("Verifier.verify", []).append(timed(verify, tokens["verify"][batch]))
        samples.setdefault("bare verify (verify tokens)", []).append(
            timed(bare, signed["verify"][batch]))
        samples.setdefault("PyJWT jwt.decode", []).append(timed(pyjwt, tokens["pyjwt"][batch]))
        samples.setdefault("bare verify (pyjwt tokens)", []).append(
            timed(bare, signed["pyjwt"][batch]))
    cpu = {name: statistics.median(s[0] for s in values) for name, values in samples.items()}
    wall = {name: statistics.median(s[1] for s in values) for name, values in samples.items()}
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; {n} publishers; {rounds} "
          "interleaved rounds, medians; per check")
    print(f"{'':40} {'thread CPU':>11} {'wall':>10}")
    for name in samples:
        print(f"{name:40} {cpu[name] * 1e6:9.2f}us {wall[name] * 1e6:8.2f}us")
    print(f"check_claims / hand-written: {cpu['check_claims'] / cpu['hand-written']:.2f}x "
          "CPU (target <= 2x)")
    for store in engines:
        ratio = cpu[f"check_token ({store})"] / cpu[f"bare verify ({store} tokens)"]
        # each round's ratio too: its two measures ran one after the other, under the same
        # load; their spread shows how much the load moved the figure
        rounds_ = sorted(c[0] / b[0] for c, b in zip(samples[f"check_token ({store})"],
                                                      samples[f"bare verify ({store} tokens)"],
                                                      strict=True))
        print(f"check_token ({store} replay store) / bare RSA-2048 verify: {ratio:.2f}x CPU "
              f"(target <= 1.5x; per round {rounds_[0]:.2f}-{rounds_[-1]:.2f}x, median "
              f"{statistics.median(rounds_):.2f}x)")
    print(f"Verifier.verify alone / bare RSA-2048 verify: "
          f"{cpu['Verifier.verify'] / cpu['bare verify (verify tokens)']:.2f}x CPU; "
          f"PyJWT's jwt.decode / bare: "
          f"{cpu['PyJWT jwt.decode'] / cpu['bare verify (pyjwt tokens)']:.2f}x CPU")


if __name__ == "__main__":
    main()
