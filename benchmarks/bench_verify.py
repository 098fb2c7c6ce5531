"""The other front: `Policy.evaluate_token` vs a bare RSA-2048 verify, on distinct tokens.

Run: python benchmarks/bench_verify.py [--tokens 300] [--rounds 11]

The examples' publishers (`examples/publishers.yaml`), a `Verifier` with the key given
locally, and a `MemoryReplayStore`: each check gets a token of its own (RS256, RSA-2048,
the example release claims with a new jti), so every allowed check claims its jti, as a
server's would. Measured side by side, each on tokens of its own:

- bare: cryptography's `RSAPublicKey.verify` of the token's signing input, its padding and
  hash objects made once (the floor any verifier pays);
- evaluate_token: strict parse of the compact form, header and key checks, signature,
  registered claims, provider and publisher selection, rules, the jti claimed;
- Verifier.verify: the same without the decision and the jti claim;
- PyJWT's jwt.decode: signature and registered claims only, for reference.

Timing: CPU time of the measuring thread beside wall time, per token; rounds interleave
the measures; medians over rounds; the garbage collector runs as in a server. Target
(issue 13): evaluate_token <= 1.5x bare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from machine import cpu_model  # benchmarks/machine.py (scripts run from their folder)

import tppolicy
from tppolicy.token.keys import KeyCache
from tppolicy.token.replay import MemoryReplayStore
from tppolicy.token.verify import Verifier, split_token

ROOT = Path(__file__).resolve().parents[1]
ISSUER = "https://token.actions.githubusercontent.com"


def timed(function: Callable[[Any], Any], items: list[Any]) -> tuple[float, float]:
    """(thread CPU seconds, wall seconds) per item."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for item in items:
        function(item)
    return (time.thread_time() - cpu) / len(items), (time.perf_counter() - wall) / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=300, help="tokens per round and measure")
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    jwk["kid"] = "bench"
    claims = json.loads((ROOT / "examples/claims/github-release.json").read_text())
    now = int(time.time())

    def token() -> str:
        fresh = {**claims, "iat": now, "nbf": now, "exp": now + 900, "jti": str(uuid.uuid4())}
        return jwt.encode(fresh, key, algorithm="RS256", headers={"kid": "bench"})

    names = ("bare", "evaluate_token", "Verifier.verify", "PyJWT jwt.decode")
    print(f"signing {len(names) * (args.rounds + 1) * args.tokens} tokens...", flush=True)
    tokens = {name: [[token() for _ in range(args.tokens)] for _ in range(args.rounds + 1)]
              for name in names}
    signed = [[split_token(t)[2:] for t in batch] for batch in tokens["bare"]]

    policy = tppolicy.compile_publishers_file(ROOT / "examples/publishers.yaml")
    keys = KeyCache()
    keys.add_static(ISSUER, {"keys": [jwk]})
    verifier = Verifier.for_policy(policy, keys=keys)
    replay = MemoryReplayStore()
    pkcs1v15, sha256 = padding.PKCS1v15(), hashes.SHA256()

    def bare(parts: tuple[bytes, bytes]) -> None:
        public.verify(parts[0], parts[1], pkcs1v15, sha256)

    def evaluate(token: str) -> None:
        policy.evaluate_token(token, verifier, replay)

    def pyjwt(token: str) -> None:
        jwt.decode(token, public, algorithms=["RS256"], audience="pypi", issuer=ISSUER)

    measures: dict[str, tuple[Callable[[Any], Any], list[list[Any]]]] = {
        "bare": (bare, signed), "evaluate_token": (evaluate, tokens["evaluate_token"]),
        "Verifier.verify": (verifier.verify, tokens["Verifier.verify"]),
        "PyJWT jwt.decode": (pyjwt, tokens["PyJWT jwt.decode"])}
    for function, batches in measures.values():  # warm-up (and all are allowed)
        for item in batches[0]:
            function(item)
    assert all(policy.evaluate_token(t, verifier).allowed for t in tokens["bare"][0])
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in measures}
    for batch in range(1, args.rounds + 1):
        for name, (function, batches) in measures.items():
            samples[name].append(timed(function, batches[batch]))
    cpu = {name: statistics.median(s[0] for s in values) for name, values in samples.items()}
    wall = {name: statistics.median(s[1] for s in values) for name, values in samples.items()}
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.rounds} interleaved "
          f"rounds of {args.tokens} distinct tokens, medians; per token")
    print(f"{'':18} {'thread CPU':>11} {'wall':>10} {'x bare (CPU)':>13}")
    for name in measures:
        print(f"{name:18} {cpu[name] * 1e6:9.2f}us {wall[name] * 1e6:8.2f}us "
              f"{cpu[name] / cpu['bare']:12.2f}x")
    print(f"evaluate_token (MemoryReplayStore) / bare RSA-2048 verify: "
          f"{cpu['evaluate_token'] / cpu['bare']:.2f}x CPU (target <= 1.5x)")


if __name__ == "__main__":
    main()
