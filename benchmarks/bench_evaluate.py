"""Evaluation cost of a compiled GitHub publisher vs a hand-written Python check.

Run: python benchmarks/bench_evaluate.py

Both make the same decision on the same claims (asserted first), timed side by side
in one run, interleaved, best of several repeats. Target (issue 2): the compiled
publisher costs at most 2x the hand-written function.
"""

from __future__ import annotations

import json
import subprocess
import sys
import timeit
from pathlib import Path
from typing import Any

import tppolicy
from tppolicy.language.compile import compile_predicate

ROOT = Path(__file__).resolve().parents[1]
OWNER, NAME, OWNER_ID = "octo-org", "sampleproject", "65"
WORKFLOW, ENVIRONMENT = "release.yml", "pypi"
REPOSITORY = f"{OWNER}/{NAME}".lower()
WORKFLOW_BASE = f"{OWNER}/{NAME}/.github/workflows/{WORKFLOW}@"


def hand_written(claims: dict[str, Any]) -> bool:
    """What a careful programmer writes for this one publisher (PyPI's checks, typed)."""
    get = claims.get
    repository: Any = get("repository")
    owner = get("repository_owner")
    owner_id = get("repository_owner_id")
    workflow_ref = get("job_workflow_ref")
    event = get("event_name")
    ref: Any = get("ref")
    sha: Any = get("sha")
    jti = get("jti")
    environment: Any = get("environment")
    for value in (repository, owner, owner_id, workflow_ref, event, ref, sha, jti):
        if type(value) is not str:
            return False
    if environment is not None and type(environment) is not str:
        return False
    if repository == "" or repository.lower() != REPOSITORY:
        return False
    if owner != OWNER or owner_id != OWNER_ID or workflow_ref == "":
        return False
    if ref == "" and sha == "":
        return False
    base = WORKFLOW_BASE
    if not ((ref != "" and workflow_ref == base + ref)
            or (sha != "" and workflow_ref == base + sha)):
        return False
    if event == "pull_request_target":
        return False
    return environment is not None and environment.lower() == ENVIRONMENT


def best_of(function: Any, argument: Any, number: int, repeat: int) -> float:
    return min(timeit.repeat(lambda: function(argument), number=number, repeat=repeat)) / number


def startup_seconds() -> float:
    """Wall time of one `tppolicy check` on the examples, best of 5."""
    best = float("inf")
    for _ in range(5):
        start = timeit.default_timer()
        subprocess.run([sys.executable, "-m", "tppolicy", "check", "--publishers",
                        str(ROOT / "examples/publishers.yaml"), "--claims",
                        str(ROOT / "examples/claims/github-release.json")],
                       check=True, capture_output=True)
        best = min(best, timeit.default_timer() - start)
    return best


def main() -> None:
    policy = tppolicy.compile_publishers_file(ROOT / "examples/publishers.yaml")
    publisher = next(p for p in policy.publishers if p.label == "sampleproject-github")
    compiled = compile_predicate(publisher.provider, publisher.rules)
    allowed = json.loads((ROOT / "examples/claims/github-release.json").read_text())
    denied = {**allowed, "environment": "release"}
    for claims in (allowed, denied):
        assert compiled(claims) is hand_written(claims) is (claims is allowed)
        assert policy.evaluate(claims).allowed is (claims is allowed)

    number, repeat = 200_000, 7
    rows = []
    for label, claims in (("allowed", allowed), ("denied", denied)):
        # Interleave the three measurements so that machine noise hits them alike.
        hand = compiled_cost = full = float("inf")
        # A denial explains the closest publisher (~100x an allowed decision): fewer rounds.
        full_number = number // 4 if claims is allowed else number // 400
        for _ in range(3):
            hand = min(hand, best_of(hand_written, claims, number, repeat))
            compiled_cost = min(compiled_cost, best_of(compiled, claims, number, repeat))
            full = min(full, best_of(policy.evaluate, claims, full_number, repeat))
        rows.append((label, hand, compiled_cost, full))

    print(f"{'claims':8} {'hand-written':>13} {'compiled':>10} {'ratio':>6}   "
          f"{'evaluate()':>11} {'ratio':>6}")
    for label, hand, compiled_cost, full in rows:
        print(f"{label:8} {hand * 1e6:11.3f}us {compiled_cost * 1e6:8.3f}us "
              f"{compiled_cost / hand:5.2f}x   {full * 1e6:9.3f}us {full / hand:5.2f}x")
    print("compiled = the publisher's compiled rules (target <= 2x hand-written);")
    print("evaluate() = issuer -> provider -> indexed lookup -> rules -> Decision, "
          f"over {len(policy.publishers)} publishers")
    print(f"start-up: tppolicy check on the examples takes {startup_seconds():.3f} s (best of 5)")


if __name__ == "__main__":
    main()
