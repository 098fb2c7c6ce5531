"""The one decision core behind both fronts: `Policy` (tppolicy check) and `Engine` (the
server) decide alike on every case table, with the same messages, codes and issuer
registration; and the engine's publisher bookkeeping holds under reuse and threads."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

import tppolicy
from tppolicy.decide.decision import Decision
from tppolicy.decide.engine import INVALID_PAYLOAD, INVALID_TOKEN, Engine
from tppolicy.decide.names import canonicalize_name, ultranormalize_name
from tppolicy.language.printer import format_policy
from tppolicy.limits import MAX_TOKEN_LIFETIME
from tppolicy.token.keys import KeyCache
from tppolicy.token.replay import SQLiteReplayStore
from tppolicy.token.verify import Verifier

from .conftest import load_claims
from .tokens import GITHUB, jwks, rsa_key

CASES_DIR = Path(__file__).parent / "cases"


def _tables() -> list[tuple[str, dict[str, Any]]]:
    return [(path.stem, yaml.safe_load(path.read_text("utf-8")))
            for path in sorted(CASES_DIR.glob("*.yaml"))]


TABLES = _tables()  # read once: the cases and their ids


def _claims(table: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    claims = dict(table["claims"][case["claims"]])
    claims.update(case.get("set") or {})
    for name in case.get("unset") or []:
        claims.pop(name, None)
    return claims


def _first_failing(decision: Decision) -> str | None:
    failed = decision.failed
    return failed[0].rule if failed else None


def _summary(decision: Decision) -> tuple[Any, ...]:
    return (decision.allowed, decision.publisher, decision.code, decision.pending,
            dict(decision.learned), decision.closest, [r.rule for r in decision.failed])


@pytest.mark.parametrize(("stem", "table"), TABLES, ids=[s for s, _ in TABLES])
def test_both_fronts_decide_alike_on_every_case_table(stem: str, table: dict[str, Any]) -> None:
    issuers = table.get("issuers") or {}
    text = yaml.safe_dump({"publishers": table["publishers"]}, sort_keys=False)
    policy = tppolicy.compile_publishers_text(text, f"{stem}.yaml", issuers=issuers)
    engines: dict[str, Engine] = {}
    for case in table["cases"]:
        claims, request = _claims(table, case), case.get("request")
        audience = case.get("audience", "pypi")
        engine = engines.get(audience)
        if engine is None:
            engine = engines[audience] = Engine(publishers=table["publishers"],
                                                issuers=issuers, audience=audience)
        decided = policy.evaluate(claims, audience=audience, request=request)
        result = engine.check_claims(claims, request=request)
        where = f"{stem}: {case['name']}"
        assert decided.allowed is case["allowed"], where
        # The whole decision (what the operator sees) is the same ...
        assert _summary(result.decision) == _summary(decided), where
        assert result.error == decided.code, where
        assert (result.publisher.label if result.publisher else None) == decided.publisher
        # ... and so is what the token's holder is shown.
        shown = decided.disclosed()
        assert _first_failing(result.disclosed()) == _first_failing(shown), where
        assert result.closest == shown.closest, where
        if not decided.allowed:
            assert decided.code is not None, where


# ------------------------------------------------------- the two disagreements
def test_an_issuer_registered_for_a_provider_without_custom_issuers_is_refused_alike() -> None:
    issuers = {"https://ghe.example.com/_services/token": "github"}
    with pytest.raises(tppolicy.ConfigError) as from_policy:
        tppolicy.compile_publishers_text("publishers: []\n", issuers=issuers)
    with pytest.raises(tppolicy.ConfigError) as from_engine:
        Engine(issuers=issuers)
    assert [d.message for d in from_policy.value.diagnostics] == \
        [d.message for d in from_engine.value.diagnostics]
    assert "not a provider allowing custom issuers" in from_engine.value.diagnostics[0].message


def test_an_unknown_issuer_reads_the_same_on_both_fronts() -> None:
    claims = {**load_claims("github-release"), "iss": "https://evil.example"}
    policy = tppolicy.compile_publishers_text("publishers: []\n")
    decided = policy.evaluate(claims)
    result = Engine().check_claims(claims)
    assert [r.message for r in decided.reasons] == [r.message for r in result.reasons]
    assert decided.reasons[0].message.startswith(
        "unknown issuer 'https://evil.example': no provider trusts it (known issuers: ")
    assert decided.code == result.error == INVALID_PAYLOAD
    # the verifier, for a signed token of that issuer, says the same
    token = rsa_key().sign({**claims, "iat": 1000, "exp": 1300})
    verifier = Verifier(issuers=policy.issuers, algorithms={}, keys=KeyCache(),
                        clock=lambda: 1100)
    refused = policy.evaluate_token(token, verifier)
    assert refused.reasons[0].message == decided.reasons[0].message
    assert refused.code == INVALID_PAYLOAD


# --------------------------------------------------------------- names
def test_one_name_normaliser() -> None:
    assert canonicalize_name("Foo.Bar__baz") == "foo-bar-baz"
    assert ultranormalize_name("Foo-Bar") == ultranormalize_name("foobar") == \
        ultranormalize_name("f00bar") == ultranormalize_name("F0O.B_A-R") == "f00bar"
    assert ultranormalize_name("SampIeproject") == ultranormalize_name("sample_project")
    assert tppolicy.ultranormalize_name is ultranormalize_name


# ------------------------------------------------------- issue 12, item 1
GH = {"provider": "github", "repository_owner": "octo-org", "repository_name": "sampleproject",
      "repository_owner_id": "65", "workflow_filename": "release.yml"}


def test_a_named_publisher_is_never_overwritten_by_a_generated_id() -> None:
    """A publisher named `p2`, then two unnamed ones: the second got the id `p2` and
    overwrote it without taking it out of the index, so it could not be removed."""
    engine = Engine()
    alice = engine.add_publisher({**GH, "name": "p2", "projects": ["alice-pkg"]})
    engine.add_publisher({**GH, "repository_name": "one", "projects": ["one"]})
    engine.add_publisher({**GH, "repository_name": "two", "projects": ["two"]})
    assert len(engine) == 3
    ids = [r.id for r in engine.publishers()]
    assert len(set(ids)) == 3 and alice.id in ids
    claims = load_claims("github-release")
    assert engine.check_claims(claims).projects == ("alice-pkg",)
    assert engine.remove_publisher(alice.id) is alice
    assert not engine.check_claims(claims).allowed
    assert len(engine) == 2
    # in one batch too
    batch = Engine(publishers=[{**GH, "repository_name": "x", "projects": ["x"]},
                               {**GH, "name": "p1", "projects": ["y"]}])
    assert sorted(r.id for r in batch.publishers()) == ["p1", "p2"]
    assert len(batch) == 2


# ------------------------------------------------------- issue 12, item 7
def test_replacing_a_publisher_is_atomic_for_checks() -> None:
    """Re-adding an identical publisher (the server's reload) while threads check
    tokens denied some checks: the publisher was out of the index for a moment."""
    row = {**GH, "name": "release", "projects": ["sampleproject"], "environment": "pypi"}
    other = {**GH, "name": "other", "workflow_filename": "other.yml", "projects": ["o"]}
    engine = Engine()
    engine.add_publisher(other, id="other")  # shares the bucket's identity
    engine.add_publisher(row, id="release")
    claims = load_claims("github-release")
    stop = threading.Event()
    denied: list[str] = []
    counts = [0, 0]

    def check(slot: int) -> None:
        while not stop.is_set():
            result = engine.check_claims(claims)
            counts[slot] += 1
            if not result.allowed:
                denied.append(str(result.reasons))

    readers = [threading.Thread(target=check, args=(i,)) for i in range(2)]
    for thread in readers:
        thread.start()
    try:
        for i in range(3000):
            engine.add_publisher(row, id="release")
            if i % 3 == 0:  # and a replacement moving the publisher to another bucket
                engine.add_publisher({**row, "repository_owner_id": "65"}, id="release")
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=60)
    assert denied == []
    assert sum(counts) > 0
    assert len(engine) == 2
    assert [r.id for r in engine.publishers()] == ["other", "release"]


def test_replacing_a_publisher_moves_it_between_buckets() -> None:
    engine = Engine()
    engine.add_publisher({**GH, "name": "release", "projects": ["a"]}, id="release")
    engine.add_publisher({**GH, "name": "release", "repository_name": "moved",
                          "projects": ["a"]}, id="release")
    assert len(engine) == 1
    assert not engine.check_claims(load_claims("github-release")).allowed
    moved = {**load_claims("github-release"), "repository": "octo-org/moved",
             "job_workflow_ref": "octo-org/moved/.github/workflows/release.yml@refs/tags/v1.2.0"}
    assert engine.check_claims(moved).allowed


# ------------------------------------------------------- issue 12, item 9
def _token_engine(tmp_path: Path, **options: Any) -> Engine:
    keys = KeyCache()
    keys.add_static(GITHUB, jwks(rsa_key()))
    return Engine(publishers=[{**GH, "name": "release", "projects": ["sampleproject"]}],
                  keys=keys, replay=SQLiteReplayStore(tmp_path / "replay.db"),
                  clock=lambda: 1_700_000_000.0, **options)


@pytest.mark.parametrize(("changes", "code", "what"), [
    ({"exp": 2**63}, "lifetime", "exp >= 2^63 (overflowed SQLite: 503)"),
    ({"exp": 2**63 - 1}, "lifetime", "exp at the top of 64 bits"),
    ({"exp": 2**64 + 5}, "bad-claim-type", "exp beyond 64 bits (a JSON float to the parser)"),
    ({"exp": 1_700_000_000 + 400 * 24 * 3600}, "lifetime", "a lifetime of 400 days"),
    ({"iat": -(2**63), "nbf": -(2**63)}, "lifetime", "iat far in the past"),
    ({"nbf": -(2**62)}, "lifetime", "nbf far in the past"),
])
def test_lifetimes_no_provider_issues_are_invalid_tokens(tmp_path: Path, changes: dict[str, Any],
                                                         code: str, what: str) -> None:
    engine = _token_engine(tmp_path)
    claims = {**load_claims("github-release"), "iat": 1_700_000_000, "nbf": 1_700_000_000,
              "exp": 1_700_000_300, **changes}
    result = engine.check_token(rsa_key().sign(claims))
    assert not result.allowed, what
    assert result.error == INVALID_TOKEN, what
    assert result.reasons[0].code == code, what


def test_the_lifetime_bound_holds_and_can_be_raised(tmp_path: Path) -> None:
    now = 1_700_000_000
    long_job = {**load_claims("github-release"), "iat": now, "nbf": now,
                "exp": now + MAX_TOKEN_LIFETIME + 60}
    assert _token_engine(tmp_path).check_token(rsa_key().sign(long_job)).error == INVALID_TOKEN
    raised = _token_engine(tmp_path, max_lifetime=2 * MAX_TOKEN_LIFETIME)
    assert raised.check_token(rsa_key().sign(long_job)).allowed
    within = {**long_job, "jti": "another", "exp": now + MAX_TOKEN_LIFETIME}
    assert _token_engine(tmp_path).check_token(rsa_key().sign(within)).allowed


def test_converting_a_pending_publisher_is_atomic_for_checks() -> None:
    """The pending publisher went out of the index before its normal form came in: a
    check in between was denied."""
    engine = Engine()
    base = load_claims("github-release")
    current: list[dict[str, Any]] = []
    stop = threading.Event()
    denied: list[str] = []

    def check() -> None:
        while not stop.is_set():
            if current:
                result = engine.check_claims(current[-1])
                if not result.allowed:
                    denied.append(str(result.reasons))

    reader = threading.Thread(target=check)
    reader.start()
    try:
        for i in range(300):
            repository = f"repo-{i}"
            engine.add_publisher({**GH, "repository_name": repository,
                                  "pending_project": f"project-{i}"}, id=f"pend-{i}")
            claims = {**base, "repository": f"octo-org/{repository}",
                      "job_workflow_ref": f"octo-org/{repository}/.github/workflows/"
                      "release.yml@refs/tags/v1.2.0"}
            action = engine.check_claims(claims).action
            assert action is not None
            current.append(claims)
            converted = engine.convert_pending(action)
            assert converted.projects == (f"project-{i}",)
            assert engine.check_claims(claims).projects == (f"project-{i}",)
    finally:
        stop.set()
        reader.join(timeout=60)
    assert denied == []
    assert len(engine) == 300


def test_a_check_between_the_two_buckets_reads_sees_a_conversion() -> None:
    """The interleaving the threaded test above hits only now and then (under load): a
    check read the normal bucket before the conversion added the normal publisher and
    the pending bucket after it took the pending one out, and was denied. Made
    deterministic: the conversion runs when the check reads the normal bucket."""
    engine = Engine()
    engine.add_publisher({**GH, "pending_project": "project-x"}, id="pend")
    engine.add_publisher({**GH, "repository_name": "other", "projects": ["o"]}, id="other")
    claims = load_claims("github-release")
    action = engine.check_claims(claims).action
    assert action is not None
    create = action
    index = engine._core.indexes["github"]  # the interleaving's hook

    class ConvertOnRead(dict[Any, Any]):
        armed = True

        def get(self, *args: Any) -> Any:
            found = super().get(*args)
            if ConvertOnRead.armed:  # this check has read the normal bucket: convert now
                ConvertOnRead.armed = False
                engine.convert_pending(create)
            return found

    index.normal = ConvertOnRead(index.normal)
    result = engine.check_claims(claims)
    assert not ConvertOnRead.armed
    assert result.allowed, result.reasons
    assert result.projects == ("project-x",)


# ------------------------------------------- the same kind of fault as item 8
def test_a_pending_publisher_copying_another_pending_one_is_refused() -> None:
    """A second pending publisher with a first one's fields took its exchanges when it
    was added first (the bucket's order chose); `tppolicy check` refused such a file
    while the engine accepted the rows. PyPI refuses it at registration."""
    pending = {**GH, "pending_project": "victim-project"}
    squatter = {**GH, "pending_project": "squatter-project"}
    text = yaml.safe_dump({"publishers": [pending, squatter]})
    with pytest.raises(tppolicy.ConfigError) as from_policy:
        tppolicy.compile_publishers_text(text)
    assert "has the same identity as" in from_policy.value.diagnostics[0].message
    engine = Engine()
    engine.add_publisher(squatter, id="squatter", added_by="mallory")
    with pytest.raises(tppolicy.ConfigError) as from_engine:
        engine.add_publisher(pending, id="victim", added_by="victim")
    assert "has the same identity as" in from_engine.value.diagnostics[0].message
    with pytest.raises(tppolicy.ConfigError):  # in one batch too (all or none)
        Engine(publishers=[pending, squatter])
    # replacing a pending publisher by its id, or one differing in a field, is fine
    engine.add_publisher({**squatter, "pending_project": "renamed"}, id="squatter")
    engine.add_publisher({**pending, "environment": "pypi"}, id="victim")
    assert len(engine) == 2


# (first, second, refused): two publishers of one repository and workflow, for different
# projects. The lookup chooses one candidate per lookup key and `prefer` values: a second
# one with the same is never used, and both fronts refuse it.
_TWINS = [
    ({**GH, "projects": ["a"]}, {**GH, "projects": ["b"]}, True),
    # only a field no lookup reads differs: still never chosen
    ({**GH, "projects": ["a"]}, {**GH, "projects": ["b"], "ref_pattern": "refs/tags/b-*"},
     True),
    ({**GH, "pending_project": "a"}, {**GH, "pending_project": "b",
                                      "ref_pattern": "refs/tags/b-*"}, True),
    # another environment: the lookup tells them apart (prefer)
    ({**GH, "projects": ["a"]}, {**GH, "projects": ["b"], "environment": "pypi"}, False),
    # a pending publisher never takes a token from a normal one: both may exist
    ({**GH, "projects": ["a"]}, {**GH, "pending_project": "b"}, False),
    ({**GH, "projects": ["a"]}, {**GH, "projects": ["b"], "workflow_filename": "b.yml"},
     False),
]


@pytest.mark.parametrize(("first", "second", "refused"), _TWINS)
def test_check_and_the_engine_refuse_the_same_twins(first: dict[str, Any],
                                                     second: dict[str, Any],
                                                     refused: bool) -> None:
    """The engine accepted two normal publishers of one identity for different projects
    (and two pending ones differing in a field no lookup reads), which `tppolicy check`
    refused: the second was never used. One rule now (`Decider.shadowing`), both fronts."""
    rows = [{**first, "name": "first"}, {**second, "name": "second"}]

    def policy_file() -> None:  # publisher blocks, as `tppolicy compile` prints them
        blocks = [tppolicy.compile_publishers_text(yaml.safe_dump({"publishers": [row]}))
                  .to_policy_file() for row in rows]
        both = dataclasses.replace(blocks[0], publishers=blocks[0].publishers
                                   + blocks[1].publishers)
        tppolicy.load_policy_text(format_policy(both), "both.tpp")

    def one_by_one() -> None:
        engine = Engine()
        engine.add_publisher(rows[0], id="first")
        engine.add_publisher(rows[1], id="second")

    fronts = {"file": lambda: tppolicy.compile_publishers_text(
                  yaml.safe_dump({"publishers": rows})),
              "policy file": policy_file, "engine batch": lambda: Engine(publishers=rows),
              "engine one by one": one_by_one}
    outcomes = {}
    for name, front in fronts.items():
        try:
            front()
            outcomes[name] = "accepted"
        except (tppolicy.ConfigError, tppolicy.PolicyCheckError) as exc:
            message = exc.diagnostics[0].message
            assert "second has the same identity as first" in message, (name, message)
            outcomes[name] = "refused"
    assert outcomes == dict.fromkeys(fronts, "refused" if refused else "accepted")
    # the second replacing the first (the same id) is always fine
    engine = Engine()
    engine.add_publisher(rows[0], id="first")
    engine.add_publisher(rows[1], id="first")
    assert len(engine) == 1


def test_a_failure_to_decide_is_not_described_to_the_holder() -> None:
    """A decision that failed (here the host's publisher lookup raises) denies; its cause
    is the operator's (decision records), never the answer's (it named the database)."""

    class Broken:
        def candidates(self, provider: str, key: str, pending: bool) -> list[Any]:
            raise RuntimeError("no such table: publishers (db.internal:5432)")

    result = Engine(lookup=Broken()).check_claims(load_claims("github-release"))
    assert not result.allowed and result.error == INVALID_PAYLOAD
    assert "db.internal" in result.decision.reasons[0].message
    assert [r.message for r in result.reasons] == ["cannot evaluate these claims"]
    assert "db.internal" not in str(result.to_json())


# ------------------------------------- an issuer registered again for another provider
def test_an_issuer_registered_again_for_another_provider_is_decided_by_that_provider(
        tmp_path: Path) -> None:
    """The verifier and the decision follow the last registration alike (the decision kept
    the first provider's index while the verifier took the new one)."""
    issuer = "https://ghe.example/_services/token"
    keys = KeyCache()
    keys.add_static(issuer, jwks(rsa_key()))
    enterprise = {**GH, "provider": "github_enterprise", "issuer_url": issuer,
                  "name": "release", "projects": ["sampleproject"]}
    engine = Engine(publishers=[enterprise], keys=keys,
                    replay=SQLiteReplayStore(tmp_path / "replay.db"),
                    clock=lambda: 1_700_000_000.0)
    engine.register_issuer(issuer, "gitlab")
    engine.register_issuer(issuer, "github_enterprise")
    claims = {**load_claims("github-release"), "iss": issuer, "iat": 1_700_000_000,
              "nbf": 1_700_000_000, "exp": 1_700_000_300}
    result = engine.check_token(rsa_key().sign(claims))
    assert result.allowed, result.reasons
    assert engine.check_claims(claims).allowed
