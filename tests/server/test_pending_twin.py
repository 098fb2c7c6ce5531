"""The server's side of a pending publisher that would become a normal one's twin (see
tests/test_pending_twin.py): its first exchange is refused and no project is created,
whether the engine sees the normal publisher at the check or only at the conversion."""

from __future__ import annotations

from typing import Any

from tppolicy.server import Index, create_app
from tppolicy.server.core import Answer

from .conftest import GH_ROW, TestClient, github_token

# the same repository, workflow and environment as the fixture's "release" (for
# sampleproject), one more constraint; and a normal publisher refusing this tag
PLUGIN = {**GH_ROW, "pending_project": "sampleproject-plugin", "ref_pattern": "refs/tags/*"}
STRICT = {**GH_ROW, "projects": ["sampleproject"], "ref_pattern": "refs/tags/v9*"}


def _error(answer: Any) -> tuple[str, str]:
    assert answer.status_code == 422, answer.text
    [only] = answer.json()["errors"]
    return only["code"], only["description"]


def test_the_first_exchange_is_refused_when_the_normal_one_came_after(
        make_index: Any) -> None:
    index: Index = make_index()
    index.storage.put_publisher("plugin", PLUGIN, added_by="alice")
    index.storage.put_publisher("strict", STRICT)  # added later (allowed: not blocked)
    index.sync(force=True)
    with TestClient(create_app(index), base_url="http://127.0.0.1") as client:
        answer = client.post("/_/oidc/mint-token", json={"token": github_token()})
    code, description = _error(answer)
    assert code == "invalid-publisher"
    assert "would become a twin of publisher" in description and "strict" in description
    assert not index.storage.project_exists("sampleproject-plugin")
    stored = index.storage.publisher("plugin")
    assert stored is not None and stored.pending_project == "sampleproject-plugin"


def test_the_conversion_fails_closed_when_the_normal_one_came_meanwhile(
        make_index: Any) -> None:
    index: Index = make_index()
    index.storage.put_publisher("plugin", PLUGIN, added_by="alice")
    index.sync(force=True)
    result = index.engine.check_token(github_token())
    assert result.allowed and result.action is not None
    index.engine.add_publisher(STRICT, id="strict")  # between the check and the creation
    answer = index._first_use(result)
    assert isinstance(answer, Answer) and answer.status == 422
    [error] = answer.body["errors"]
    assert error["code"] == "invalid-publisher" and "would become a twin" in error["description"]
    assert not index.storage.project_exists("sampleproject-plugin")
    assert index.engine.get("plugin") is not None


def test_the_served_engine_refuses_such_a_pending_publisher(index: Index) -> None:
    from tppolicy.errors import ConfigError

    try:
        index.engine.add_publisher({**PLUGIN, "name": "plugin"})
    except ConfigError as exc:
        assert "would become a twin of release" in exc.render()
    else:  # pragma: no cover - the failure this test is for
        raise AssertionError("a pending twin was added")
