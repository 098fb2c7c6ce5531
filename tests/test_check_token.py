"""`Engine.check_token` on every branch of its path, with real keys and signed tokens: the
usual answer (the engine's quick decision, then the jti), the whole decision on a verified
token (pending publishers, requests, denials), refused tokens, replays and the hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tppolicy.decide.decision import INVALID_PUBLISHER, INVALID_REUSE_TOKEN, INVALID_TOKEN
from tppolicy.decide.engine import CheckResult, CreateProject, Engine
from tppolicy.token.keys import KeyCache
from tppolicy.token.replay import MemoryReplayStore, SQLiteReplayStore

from .conftest import load_claims
from .tokens import GITHUB, fresh, jwks, rsa_key


@pytest.fixture(autouse=True, params=["c-reader", "python-reader"])
def _both_token_readers(request: pytest.FixtureRequest) -> None:
    """Every test reads tokens with the C module (`_compact.split`) and with its Python
    form (`split_usual`), as an install without a compiler does (conftest)."""
    if request.param == "python-reader":
        request.getfixturevalue("pure_token_split")

GH = {"provider": "github", "repository_owner": "octo-org", "repository_name": "sampleproject",
      "repository_owner_id": "65", "workflow_filename": "release.yml"}
NORMAL = {**GH, "name": "release", "projects": ["sampleproject"], "environment": "pypi"}
PENDING = {**GH, "name": "plugin", "repository_name": "sampleproject-plugin",
           "workflow_filename": "publish.yaml", "pending_project": "sampleproject-plugin"}


def keys() -> KeyCache:
    cache = KeyCache()
    cache.add_static(GITHUB, jwks(rsa_key()))
    return cache


def token(name: str = "github-release", **changes: Any) -> str:
    return rsa_key().sign(fresh({**load_claims(name), **changes}))


def engine(**options: Any) -> Engine:
    return Engine(publishers=[NORMAL, PENDING], keys=keys(), **options)


def test_the_usual_answer_uses_up_the_jti() -> None:
    store = MemoryReplayStore()
    checked = engine(replay=store)
    used = token()
    result = checked.check_token(used)
    assert result.allowed
    assert result.publisher is not None and result.publisher.label == "release"
    assert result.action is None
    assert result.claims is not None and result.claims["repository"] == "octo-org/sampleproject"
    assert len(store) == 1
    again = checked.check_token(used)
    assert not again.allowed
    assert again.error == INVALID_REUSE_TOKEN
    assert again.claims is not None  # verified, then refused as used


def test_a_pending_publisher_takes_the_whole_path_and_its_jti_is_used_up() -> None:
    store = MemoryReplayStore()
    checked = engine(replay=store)
    used = token("github-pending-plugin")
    result = checked.check_token(used)
    assert result.allowed and result.pending
    assert isinstance(result.action, CreateProject)
    assert result.action.project == "sampleproject-plugin"
    assert len(store) == 1
    assert checked.check_token(used).error == INVALID_REUSE_TOKEN


def test_a_denied_token_keeps_its_jti_and_says_why() -> None:
    store = MemoryReplayStore()
    result = engine(replay=store).check_token(token(environment="release"))
    assert not result.allowed
    assert result.error == INVALID_PUBLISHER
    assert result.closest == "release"
    assert len(store) == 0


def test_a_refused_token_has_no_claims() -> None:
    good = token()
    result = engine().check_token(good[:-4] + "AAAA")
    assert not result.allowed
    assert result.error == INVALID_TOKEN
    assert result.claims is None
    assert result.reasons[0].code == "bad-signature"


def test_request_values_take_the_whole_path() -> None:
    checked = engine()
    assert checked.check_token(token(), request={"version": "1.0"}).allowed
    bad = checked.check_token(token(), request={"size": 3})
    assert not bad.allowed
    assert bad.reasons[0].rule == "request"


def test_hooks_and_records_see_the_usual_answer(tmp_path: Path) -> None:
    seen: list[CheckResult] = []
    store = SQLiteReplayStore(tmp_path / "replay.db")
    checked = engine(replay=store, on_decision=seen.append)
    used = token()
    assert checked.check_token(used).allowed
    assert not checked.check_token(used).allowed
    assert [r.allowed for r in seen] == [True, False]
    assert seen[1].error == INVALID_REUSE_TOKEN


def test_the_usual_answer_equals_the_whole_decision() -> None:
    # The same publishers decided by the quick path and by the whole path (a request
    # forces it): the same publisher, projects and decision.
    quick = engine().check_token(token())
    whole = engine().check_token(token(), request={"version": "1.0"})
    assert quick.allowed and whole.allowed
    assert quick.decision.publisher == whole.decision.publisher
    assert quick.decision.projects == whole.decision.projects
    assert quick.decision.provider == whole.decision.provider
