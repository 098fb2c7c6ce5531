"""The embedding API as an index server uses it."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

import tppolicy
from tppolicy.decide.engine import (
    INVALID_PENDING_PUBLISHER,
    INVALID_PUBLISHER,
    INVALID_REUSE_TOKEN,
    INVALID_TOKEN,
    CreateProject,
    Engine,
    JsonLinesSink,
    ultranormalize_name,
)
from tppolicy.token.keys import KeyCache
from tppolicy.token.replay import SQLiteReplayStore

from .conftest import EXAMPLES, load_claims
from .tokens import GITHUB, fresh, jwks, rsa_key

GH = {"provider": "github", "repository_owner": "octo-org", "repository_name": "sampleproject",
      "repository_owner_id": "65", "workflow_filename": "release.yml"}


def github(**changes: Any) -> dict[str, Any]:
    return {**load_claims("github-release"), **changes}


class Catalog:
    def __init__(self, *names: str) -> None:
        self.names = set(names)

    def exists(self, name: str) -> bool:
        return name.lower() in {n.lower() for n in self.names}


def test_rows_in_and_out() -> None:
    row = {**GH, "name": "release", "projects": ["sampleproject"], "environment": "pypi"}
    engine = Engine(publishers=[row])
    stored = engine.get("release")
    assert stored is not None
    assert engine.row(stored) == row
    result = engine.check_claims(github())
    assert result.allowed
    assert result.publisher is not None
    assert result.publisher.label == "release"
    assert result.projects == ("sampleproject",)
    assert engine.remove_publisher("release") is not None
    assert not engine.check_claims(github()).allowed
    assert len(engine) == 0


def test_trust_on_first_use_from_rows() -> None:
    """Rows sharing their learn items (most: the constraint off) and rows that differ
    each get their own: a pinned id learns nothing, an unpinned one learns the token's.
    (`unpinned` and `pinned` differ in no lookup key: one at a time, as the lookup would
    never choose the second.)"""
    rows: list[dict[str, Any]] = [
        {**GH, "name": "off", "projects": ["a"]},
        {**GH, "name": "unpinned", "projects": ["b"], "environment": "pypi",
         "trust_on_first_use": True}]
    pinned = {**GH, "name": "pinned", "projects": ["c"], "environment": "pypi",
              "trust_on_first_use": True, "repository_id": "74"}
    engine = Engine(publishers=rows)
    token = github(environment="pypi", repository_id="74")
    first = engine.check_claims(token)
    assert first.publisher is not None and first.publisher.label == "unpinned"
    assert first.learned == {"repository_id": "74"}
    engine.remove_publisher("unpinned")
    engine.add_publisher(pinned, id="pinned")
    second = engine.check_claims(token)
    assert second.publisher is not None and second.publisher.label == "pinned"
    assert second.learned == {}
    engine.remove_publisher("pinned")
    third = engine.check_claims(token)
    assert third.publisher is not None and third.publisher.label == "off"
    assert third.learned == {}
    assert not engine.check_claims(github(environment="pypi", repository_id="75")).learned


def test_row_type_and_pattern_errors_name_the_field() -> None:
    with pytest.raises(tppolicy.ConfigError) as info:
        Engine(publishers=[
            {**GH, "projects": ["x"], "ref_protected": "yes"},
            {**GH, "projects": ["x"], "environment": " pypi"},
            {**GH, "projects": ["x"], "repository_owner": "octo org"},
            {"provider": "github", "projects": ["x"], "repository_name": "r"},
        ])
    text = str(info.value)
    assert "publishers[0].ref_protected: expected bool, found a string" in text
    assert "publishers[1].environment: ' pypi' is not printable ASCII without surrounding " \
           "blanks" in text
    assert "publishers[2].repository_owner: 'octo org': a GitHub user or organization name" \
           in text
    assert "publishers[3].repository_owner: missing" in text


def test_yaml_file() -> None:
    engine = Engine(publishers=EXAMPLES / "publishers.yaml")
    assert len(engine) == 5
    for name in ("github-release", "gitlab-release", "google-cloud-build", "activestate-build"):
        assert engine.check_claims(load_claims(name)).allowed, name


def test_bad_rows_are_refused_all_at_once() -> None:
    with pytest.raises(tppolicy.ConfigError) as info:
        Engine(publishers=[
            {**GH, "projects": ["x"], "workflow_filename": ".github/workflows/r.yml"},
            {**GH, "projects": ["x"], "enviroment": "pypi"},
            {"provider": "githb", "projects": ["x"]},
            {**GH, "projects": ["bad name!"], "repository_owner_id": 65},
        ])
    text = str(info.value)
    assert "publishers[0].workflow_filename" in text
    assert "publishers[1].enviroment" in text and "did you mean 'environment'" in text
    assert "unknown provider 'githb'" in text
    assert "'bad name!' is not a valid project name" in text
    assert "publishers[3].repository_owner_id: expected string, found an integer" in text


# ------------------------------------------------------------ selection order
def test_github_environment_publisher_wins() -> None:
    engine = Engine(publishers=[{**GH, "name": "any", "projects": ["a"]},
                                {**GH, "name": "pypi", "projects": ["b"], "environment": "PyPI"}])
    assert engine.check_claims(github()).projects == ("b",)  # token environment "pypi"
    assert engine.check_claims(github(environment="other")).projects == ("a",)
    no_environment = {k: v for k, v in github().items() if k != "environment"}
    assert engine.check_claims(no_environment).projects == ("a",)


def test_github_without_a_fallback_the_environment_must_match() -> None:
    engine = Engine(publishers=[{**GH, "name": "pypi", "projects": ["b"],
                                 "environment": "pypi"}])
    result = engine.check_claims(github(environment="release"))
    assert not result.allowed
    assert result.error == INVALID_PUBLISHER
    assert result.closest == "pypi"  # same repository: the difference may be disclosed
    assert [r.rule for r in result.reasons if not r.passed] == ["environment"]


def test_gitlab_environment_is_case_sensitive_in_selection() -> None:
    base = {"provider": "gitlab", "namespace": "octo-group/python", "project": "sampleproject",
            "workflow_filepath": "ci/release.yml"}
    engine = Engine(publishers=[{**base, "name": "any", "projects": ["a"]},
                                {**base, "name": "prod", "projects": ["b"],
                                 "environment": "production"}])
    claims = load_claims("gitlab-release")
    assert engine.check_claims(claims).projects == ("b",)
    assert engine.check_claims({**claims, "environment": "Production"}).projects == ("a",)


def test_google_sub_publisher_wins() -> None:
    base = {"provider": "google", "email": "publisher@octo-project.iam.gserviceaccount.com"}
    engine = Engine(publishers=[{**base, "name": "any", "projects": ["a"]},
                                {**base, "name": "sub", "projects": ["b"],
                                 "sub": "110987294251917851298"}])
    claims = load_claims("google-cloud-build")
    assert engine.check_claims(claims).projects == ("b",)
    assert engine.check_claims({**claims, "sub": "999"}).projects == ("a",)


def test_activestate_lookup() -> None:
    engine = Engine(publishers=EXAMPLES / "publishers.yaml")
    claims = load_claims("activestate-build")
    assert engine.check_claims(claims).projects == ("octo-runtime",)
    assert not engine.check_claims({**claims, "actor_id": "someone-else"}).allowed


# ----------------------------------------------------------------- disclosure
def test_a_token_of_another_repository_learns_nothing() -> None:
    engine = Engine(publishers=[{**GH, "name": "secret-name", "projects": ["x"]}])
    result = engine.check_claims(github(repository="mallory/sampleproject",
                                        repository_owner="mallory", repository_owner_id="666"))
    assert not result.allowed
    assert result.closest is None
    assert [r.message for r in result.reasons] == [
        "valid token, but no corresponding github publisher"]
    assert "secret-name" not in json.dumps(result.to_json())


def test_a_near_miss_of_the_same_repository_is_explained() -> None:
    engine = Engine(publishers=[{**GH, "name": "release", "projects": ["x"]}])
    wrong_workflow = github(
        job_workflow_ref="octo-org/sampleproject/.github/workflows/ci.yml@refs/tags/v1.2.0")
    result = engine.check_claims(wrong_workflow)
    assert not result.allowed
    assert result.closest == "release"
    [failed] = [r for r in result.reasons if not r.passed]
    assert failed.rule == "job_workflow_ref"


# ------------------------------------------------------------------- pending
def pending_row(name: str = "sampleproject-plugin", **changes: Any) -> dict[str, Any]:
    return {**GH, "repository_name": "sampleproject-plugin", "workflow_filename": "publish.yaml",
            "pending_project": name, **changes}


PLUGIN = load_claims("github-pending-plugin")


def test_pending_lifecycle_end_to_end() -> None:
    catalog = Catalog()
    engine = Engine(projects=catalog)
    engine.add_publisher(pending_row(), id="pend-1", added_by="alice")
    first = engine.check_claims(PLUGIN)
    assert first.allowed and first.pending
    assert first.action == CreateProject("sampleproject-plugin", "pend-1", "alice")
    catalog.names.add("sampleproject-plugin")  # the server creates the project...
    normal = engine.convert_pending(first.action)  # ...and tells the engine
    assert not normal.pending
    assert normal.projects == ("sampleproject-plugin",)
    again = engine.check_claims(PLUGIN)
    assert again.allowed and not again.pending and again.action is None
    assert again.projects == ("sampleproject-plugin",)


def test_a_pending_publisher_never_takes_a_token_from_a_normal_one() -> None:
    """Issue 12 item 8: a pending publisher copying a normal publisher's identity took
    its next exchange (PyPI looks pending publishers up first), scoping the victim's
    credential to the copier's project."""
    engine = Engine(projects=Catalog())
    engine.add_publisher({**pending_row(), "pending_project": None, "projects": ["victim"]},
                         id="normal", added_by="victim")
    engine.add_publisher(pending_row(), id="squatter", added_by="mallory")
    for _ in range(2):
        result = engine.check_claims(PLUGIN)
        assert result.allowed and not result.pending and result.action is None
        assert result.publisher is not None and result.publisher.id == "normal"
        assert result.projects == ("victim",)
    assert engine.get("squatter") is not None  # never selected, never converted


def test_conversion_reuses_an_identical_normal_publisher() -> None:
    """A normal publisher identical to a pending one added after the pending one was
    selected gains the project (as PyPI's reify)."""
    engine = Engine(projects=Catalog())
    engine.add_publisher(pending_row(), id="pend")
    result = engine.check_claims(PLUGIN)
    assert result.pending and result.action is not None
    existing = engine.add_publisher({**pending_row(), "pending_project": None,
                                     "projects": ["other"]}, id="normal")
    converted = engine.convert_pending(result.action)
    assert converted.id == existing.id
    assert converted.projects == ("other", "sampleproject-plugin")
    assert engine.get("pend") is None


def test_pending_for_an_existing_project_fails_and_is_dropped() -> None:
    engine = Engine(projects=Catalog("SampleProject-Plugin"))
    engine.add_publisher(pending_row(), id="pend")
    result = engine.check_claims(PLUGIN)
    assert not result.allowed
    assert result.error == INVALID_PENDING_PUBLISHER
    assert engine.get("pend") is None


def test_creating_a_project_voids_other_owners_colliding_pending_publishers() -> None:
    assert ultranormalize_name("Foo-Bar") == ultranormalize_name("foobar") == \
        ultranormalize_name("f00bar") == ultranormalize_name("F0O.B_A-R")
    removed: list[tuple[str, str]] = []
    engine = Engine(on_removed=lambda record, why: removed.append((record.id, why)))
    engine.add_publisher(pending_row("foobar"), id="bob", added_by="bob")
    engine.add_publisher(pending_row("f00bar", workflow_filename="other.yml"), id="carol",
                         added_by="carol")
    engine.add_publisher(pending_row("Foo-Bar", workflow_filename="mine.yml"), id="alice",
                         added_by="alice")
    voided = engine.project_created("Foo-Bar", created_by="alice")
    assert sorted(r.id for r in voided) == ["bob", "carol"]
    assert sorted(removed) == [("bob", "voided"), ("carol", "voided")]
    assert engine.get("alice") is not None  # the creator's own survives


def test_pending_publishers_expire_after_30_days() -> None:
    now = [1_800_000_000.0]
    engine = Engine(clock=lambda: now[0])
    engine.add_publisher(pending_row(), id="old", created=now[0] - 31 * 86400)
    engine.add_publisher(pending_row("other-name", workflow_filename="x.yml"), id="new")
    assert not engine.check_claims(PLUGIN).allowed  # expired: as if gone
    assert engine.get("old") is None
    now[0] += 31 * 86400
    assert [r.id for r in engine.expire_pending()] == ["new"]


# -------------------------------------------------------------------- tokens
def keys() -> KeyCache:
    cache = KeyCache()
    cache.add_static(GITHUB, jwks(rsa_key()))
    return cache


def test_check_token_and_replay_across_engines(tmp_path: Path) -> None:
    store = SQLiteReplayStore(tmp_path / "replay.db")
    rows = [{**GH, "name": "release", "projects": ["sampleproject"], "environment": "pypi"}]
    first = Engine(publishers=rows, keys=keys(), replay=store)
    second = Engine(publishers=rows, keys=keys(), replay=SQLiteReplayStore(tmp_path / "replay.db"))
    token = rsa_key().sign(fresh(load_claims("github-release")))
    assert first.check_token(token).allowed
    replayed = second.check_token(token)
    assert not replayed.allowed
    assert replayed.error == INVALID_REUSE_TOKEN
    bad = second.check_token(token[:-4] + "AAAA")
    assert bad.error == INVALID_TOKEN


# ------------------------------------------------------------------- records
def test_decision_records(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    sink = JsonLinesSink(path)
    engine = Engine(publishers=[{**GH, "name": "release", "projects": ["sampleproject"]}],
                    keys=keys(), records=sink)
    token = rsa_key().sign(fresh(load_claims("github-release")))
    engine.check_token(token)
    engine.check_claims(github(event_name="pull_request_target"))
    sink.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["allowed"] for r in lines] == [True, False]
    allowed, denied = lines
    assert allowed["publisher"] == "release"
    assert allowed["projects"] == ["sampleproject"]
    assert allowed["issuer"] == GITHUB
    assert allowed["run"]["repository"] == "octo-org/sampleproject"
    assert allowed["run"]["sha"] == load_claims("github-release")["sha"]
    assert allowed["run"]["run_id"] == "1959414638"
    assert "user_email" not in allowed["run"]
    assert token not in path.read_text()  # never the token itself
    assert denied["error"] == INVALID_PUBLISHER
    assert denied["reasons"][0]["rule"] == "event_name"


# --------------------------------------------------------------- concurrency
def test_checks_while_publishers_are_added_and_removed() -> None:
    engine = Engine(publishers=[{**GH, "name": "stable", "projects": ["sampleproject"],
                                 "environment": "pypi"}])
    stop = threading.Event()
    failures: list[str] = []
    checks = [0]

    lock = threading.Lock()

    def check() -> None:
        done = 0
        while not stop.is_set() or done < 200:  # during the churn, and 200 at least
            result = engine.check_claims(github())
            done += 1
            if not result.allowed or result.projects != ("sampleproject",):
                failures.append(repr(result))
        with lock:
            checks[0] += done

    def churn(worker: int) -> None:
        for i in range(300):
            publisher_id = f"w{worker}-{i}"
            engine.add_publisher({**GH, "repository_name": f"repo-{worker}-{i}",
                                  "projects": [f"project-{worker}-{i}"]}, id=publisher_id)
            if i % 2:
                engine.remove_publisher(publisher_id)

    readers = [threading.Thread(target=check) for _ in range(4)]
    writers = [threading.Thread(target=churn, args=(w,)) for w in range(4)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=60)
    stop.set()
    for thread in readers:
        thread.join(timeout=60)
    assert failures == []
    assert checks[0] >= 4 * 200
    assert len(engine) == 1 + 4 * 150


# ------------------------------------------------------- request values, learned
def test_version_tag_from_the_request() -> None:
    engine = Engine(publishers=[{**GH, "name": "tagged", "projects": ["sampleproject"],
                                 "environment": "pypi", "version_tag": "v{version}"}])
    claims = github()  # ref refs/tags/v1.2.0
    assert engine.check_claims(claims, request={"version": "1.2.0"}).allowed
    wrong = engine.check_claims(claims, request={"version": "1.3.0"})
    assert not wrong.allowed
    assert wrong.error == INVALID_PUBLISHER
    bad = engine.check_claims(claims, request={"colour": "red"})
    assert not bad.allowed
    assert "unknown request value 'colour'" in bad.reasons[0].message


def test_trust_on_first_use_reports_the_learned_id() -> None:
    engine = Engine(publishers=[{**GH, "name": "tofu", "projects": ["sampleproject"],
                                 "environment": "pypi", "trust_on_first_use": True}])
    result = engine.check_claims(github())
    assert result.allowed
    assert result.learned == {"repository_id": "74"}
    assert result.to_json()["learned"] == {"repository_id": "74"}
    record = engine.get("tofu")
    assert record is not None
    engine.add_publisher({**engine.row(record), **result.learned}, id="tofu")  # pinned
    assert engine.check_claims(github()).learned == {}
    assert not engine.check_claims(github(repository_id="75")).allowed


def test_a_batch_is_checked_for_shadowing_in_one_pass() -> None:
    """Each row of a batch is compared with the one earlier row that has its shadowing
    mark, found by hashing (a million rows were compared pairwise: loading 100 000
    publishers took 78 s instead of 3), and twins in a batch are still refused."""
    from tppolicy.decide.core import Decider

    seen: list[int] = []
    original = Decider.shadowing

    def counting(self: Decider, record: Any, batch: Any = ()) -> Any:
        batch = list(batch)
        seen.append(len(batch))
        return original(self, record, batch)

    rows = [{"provider": "github", "name": f"p{i}", "projects": [f"project-{i}"],
             "repository_owner": "o", "repository_name": f"r{i}", "repository_owner_id": "1",
             "workflow_filename": "release.yml"} for i in range(200)]
    engine = Engine()
    engine._core.shadowing = counting.__get__(engine._core)  # type: ignore[method-assign]
    engine.add_publishers(rows)
    assert len(seen) == 200 and max(seen) == 0
    twin = {**rows[0], "name": "twin", "projects": ["other"]}
    with pytest.raises(tppolicy.ConfigError) as raised:
        engine.add_publishers([*rows[1:3], {**rows[0], "repository_name": "new"},
                               {**twin, "repository_name": "new"}])
    assert "publishers[3]" in str(raised.value), raised.value
    assert max(seen) == 1


def test_the_providers_are_compiled_once_for_every_engine_and_policy() -> None:
    # each Engine and Policy indexes every provider: compiling each one's functions again
    # was a fifth of the default test run's time
    rows = [{"provider": "github", "name": "p", "projects": ["p"], "repository_owner": "o",
             "repository_name": "r", "repository_owner_id": "1",
             "workflow_filename": "release.yml"}]
    first, second = Engine(publishers=rows), Engine(publishers=rows)
    policy = tppolicy.compile_publishers_text(json.dumps({"publishers": rows}))
    indexes = [front._core.indexes["github"] for front in (first, second, policy)]
    for part in ("required", "lookup", "template"):
        assert len({id(getattr(index, part)) for index in indexes}) == 1, part
    claims = {"iss": "https://token.actions.githubusercontent.com", "aud": "pypi",
              "repository": "o/r", "repository_owner": "o", "repository_owner_id": "1",
              "job_workflow_ref": "o/r/.github/workflows/release.yml@refs/tags/v1",
              "ref": "refs/tags/v1", "sha": "a" * 40, "event_name": "push", "jti": "j"}
    assert [first.check_claims(claims).decision.publisher,
            policy.evaluate(claims).publisher] == ["p", "p"]
