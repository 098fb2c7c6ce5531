"""Token to decision vs a bare RSA-2048 signature verification, side by side.

Run: python benchmarks/bench_verify.py

The same GitHub token throughout (RS256, RSA-2048, the example release claims).
"bare" is cryptography's RSAPublicKey.verify of the token's signing input: the
floor any verifier pays. "tppolicy" is Policy.evaluate_token: strict parse of the
compact form, header and key checks, signature, registered claims, provider and
publisher selection, rules. Target (issue 3): at most 1.5x bare. PyJWT's
jwt.decode (signature and registered claims only, no decision) for reference.
Best of many interleaved rounds, with the garbage collector paused while timing.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
import timeit
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import tppolicy
from tppolicy.token.keys import KeyCache
from tppolicy.token.verify import Verifier, split_token

ROOT = Path(__file__).resolve().parents[1]
ISSUER = "https://token.actions.githubusercontent.com"


def main() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    jwk["kid"] = "bench"
    claims = json.loads((ROOT / "examples/claims/github-release.json").read_text())
    now = int(time.time())
    claims.update(iat=now, nbf=now, exp=now + 3600)
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench"})
    _, _, signature, signing_input = split_token(token)

    policy = tppolicy.compile_publishers_file(ROOT / "examples/publishers.yaml")
    keys = KeyCache()
    keys.add_static(ISSUER, {"keys": [jwk]})
    verifier = Verifier.for_policy(policy, keys=keys)
    assert policy.evaluate_token(token, verifier).allowed

    measures = {
        "bare": lambda: public.verify(signature, signing_input, padding.PKCS1v15(),
                                      hashes.SHA256()),
        "tppolicy": lambda: policy.evaluate_token(token, verifier),
        "verify only": lambda: verifier.verify(token),
        "pyjwt decode": lambda: jwt.decode(token, public, algorithms=["RS256"], audience="pypi",
                                           issuer=ISSUER),
    }
    number, rounds = 2000, 25
    samples: dict[str, list[float]] = {name: [] for name in measures}
    gc.disable()
    try:
        for _ in range(rounds):
            for name, function in measures.items():
                samples[name].append(timeit.timeit(function, number=number) / number)
    finally:
        gc.enable()
    best = {name: min(values) for name, values in samples.items()}
    median = {name: statistics.median(values) for name, values in samples.items()}
    print(f"{'':14} {'best':>9} {'median':>9} {'x bare (best)':>14}")
    for name in measures:
        print(f"{name:14} {best[name] * 1e6:7.2f}us {median[name] * 1e6:7.2f}us "
              f"{best[name] / best['bare']:13.2f}x")
    print(f"token to decision / bare verify: {best['tppolicy'] / best['bare']:.2f}x "
          f"(target <= 1.5x); median {median['tppolicy'] / median['bare']:.2f}x")


if __name__ == "__main__":
    main()
