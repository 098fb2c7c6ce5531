"""What a refused token costs is bounded: anyone may send one at will. Not timing tests:
they show the bounds (how many publishers a refusal explains) and that the provider's
data every explanation reads is worked out once."""

from __future__ import annotations

from typing import Any

import tppolicy
from tppolicy.decide.engine import Engine
from tppolicy.language.providers import load_providers
from tppolicy.limits import NEAR_MISS_SCAN, NEAR_MISSES

from .conftest import load_claims


def _row(i: int, owner: str = "octo-org", name: str = "sampleproject") -> dict[str, Any]:
    return {"provider": "github", "name": f"p{i}", "repository_owner": owner,
            "repository_name": name, "repository_owner_id": "65",
            "workflow_filename": f"release-{i}.yml", "projects": [f"project-{i}"]}


def test_the_provider_data_every_explanation_reads_is_worked_out_once() -> None:
    # each was rebuilt from the rules or claims on every explanation of a refusal
    for provider in load_providers().values():
        assert provider.identity_rules is provider.identity_rules
        assert provider.claim_types is provider.claim_types
        assert provider.case_aside is provider.case_aside
        assert provider.identity_rules == {r.name for r in provider.rules if r.identity}
        assert dict(provider.claim_types) == {n: s.type for n, s in provider.claims.items()}


def test_a_near_miss_explains_at_most_near_misses_publishers_of_its_identity() -> None:
    rows = [_row(i) for i in range(NEAR_MISSES + 15)]
    claims = load_claims("github-release")  # release.yml: none of them
    for front in (Engine(publishers=rows),
                  tppolicy.compile_publishers_text(_yaml(rows), "p.yaml")):
        decision = front.check_claims(claims).decision if isinstance(front, Engine) \
            else front.evaluate(claims)
        assert not decision.allowed and decision.shared
        assert decision.closest is not None
        assert len(decision.also) == NEAR_MISSES - 1  # the closest, and the others capped


def test_a_token_of_no_identity_is_compared_with_all_only_among_few_publishers() -> None:
    claims = load_claims("github-release")
    few = [_row(i, owner=f"org{i}") for i in range(NEAR_MISS_SCAN)]
    many = [_row(i, owner=f"org{i}") for i in range(NEAR_MISS_SCAN + 1)]
    closest = Engine(publishers=few).check_claims(claims).decision
    assert not closest.allowed and not closest.shared and closest.closest is not None
    none = Engine(publishers=many).check_claims(claims).decision
    assert not none.allowed and none.closest is None
    assert none.reasons[0].message == "valid token, but no corresponding github publisher"
    policy = tppolicy.compile_publishers_text(_yaml(many), "p.yaml")
    assert policy.evaluate(claims).closest is None


def _yaml(rows: list[dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump({"publishers": rows}, sort_keys=False)
