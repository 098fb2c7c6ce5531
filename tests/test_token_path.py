"""`Engine.check_token`'s usual answer in C (`_usual.TokenPath`) is the answer the engine
gives in Python: for the usual token and for every way off the usual path (a token
refused by the verifier, denied by the rules, a pending publisher, a jti used, unusual,
absent or too long, a replay store that fails, raises or answers something else than a
bool, a float leeway, decision records and hooks, upload values), each engine with its
own store seeing the same tokens in the same order."""

from __future__ import annotations

from typing import Any

import pytest

from tppolicy.decide.engine import CheckResult, Engine
from tppolicy.limits import MAX_JTI_CHARS, REPLAY_MARGIN
from tppolicy.token.replay import MemoryReplayStore

from .test_check_token import NORMAL, PENDING, keys, token
from .test_replay_failures import Broken, Weird
from .tokens import GITHUB

_usual = pytest.importorskip("tppolicy.decide._usual")


class Truthy:
    """A store answering 1 (true) and 0 (false) instead of True and False."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def claim(self, key: str, expires_at: int) -> int:
        fresh = key not in self.seen
        self.seen.add(key)
        return int(fresh)


def _view(result: CheckResult) -> Any:
    decision = result.decision
    return (result.allowed, result.error, decision.code, result.to_json(),
            [(r.rule, r.passed, r.code, r.message) for r in decision.reasons],
            None if result.action is None else (result.action.project,),
            None if result.publisher is None else result.publisher.label,
            dict(result.claims) if result.claims is not None else None)


def _pair(**options: Any) -> tuple[Engine, Engine]:
    """Two engines alike, the first with the C path, the second without."""
    made = []
    for _ in range(2):
        store = options.get("replay")
        fresh = {**options, "replay": type(store)() if store is not None else MemoryReplayStore()}
        made.append(Engine(publishers=[NORMAL, PENDING], keys=keys(), **fresh))
    with_c, python = made
    assert with_c._token_path is not None
    python._token_path = None
    return with_c, python


def _alike(engines: tuple[Engine, Engine], tokens: list[str],
           request: dict[str, Any] | None = None) -> list[Any]:
    with_c, python = engines
    seen = []
    for sent in tokens:
        c = _view(with_c.check_token(sent, request))
        p = _view(python.check_token(sent, request))
        assert c == p, sent
        seen.append(c)
    return seen


TOKENS = {
    "usual": lambda: [token()],
    "used twice": lambda: [token(jti="twice")] * 2,
    "no jti": lambda: [token(jti=None)],
    "jti absent": lambda: [token(jti=None) for _ in range(1)],
    "jti with a control character": lambda: [token(jti="a\x00b"), token(jti="a\x9bb")],
    "jti not printable yet no control character": lambda: [token(jti="a\u2028b")] * 2,
    "jti too long": lambda: [token(jti="x" * (MAX_JTI_CHARS + 1)), token(jti="x" * MAX_JTI_CHARS)],
    "jti a number": lambda: [token(jti=7)],
    "jti non-ASCII": lambda: [token(jti="é-1")] * 2,
    "denied by the rules": lambda: [token("github-wrong-environment")],
    "pending publisher": lambda: [token("github-pending-plugin")],
    "bad signature": lambda: [token()[:-4] + ("AAAA" if not token().endswith("AAAA") else "BBBB")],
    "another audience": lambda: [token(aud="other")],
    "garbage": lambda: ["not a token"],
}


@pytest.mark.parametrize("case", sorted(TOKENS))
@pytest.mark.parametrize("store", [MemoryReplayStore, Broken, Weird, Truthy])
def test_answers_alike(case: str, store: type) -> None:
    _alike(_pair(replay=store()), TOKENS[case]())


def test_the_usual_token_is_answered_in_c() -> None:
    with_c, _ = _pair()
    path = with_c._token_path
    assert path is not None
    done = path(token())
    assert type(done) is CheckResult and done.allowed
    # made in C from CheckResult's slots, without __init__: the same as one made by it
    made = CheckResult(done.decision, None, done.claims)
    assert done == made and repr(done) == repr(made) and done.action is None
    assert done.claims is not None and done.claims["jti"]


def test_a_result_made_by_another_callable_is_called() -> None:
    """The C path sets a result's slots itself only for a class of CheckResult's slots
    made by object.__new__; any other callable is called with (decision, None, claims)."""
    with_c, _ = _pair()
    made: list[tuple[Any, ...]] = []

    def result(*args: Any) -> str:
        made.append(args)
        return "made"

    path = _usual.TokenPath(with_c, with_c._core, with_c.verifier, with_c.replay,
                            with_c.audience, REPLAY_MARGIN, MAX_JTI_CHARS, result)
    assert path.check(token(jti="callable-1")) == "made"
    decision, action, claims = made[0]
    assert decision.allowed and action is None and claims["jti"] == "callable-1"


def test_replay_errors_raise_propagate_alike() -> None:
    for engine in _pair(replay=Broken(), replay_errors="raise"):
        with pytest.raises(ConnectionError):
            engine.check_token(token())


def test_a_float_leeway_and_values_set_later() -> None:
    engines = _pair(leeway=30.5)
    _alike(engines, [token(jti="f-1")] * 2)
    for engine in engines:
        engine.replay = MemoryReplayStore()  # set later: the C path takes the new store
        engine.audience = "other"
    _alike(engines, [token(jti="f-1"), token(aud="other")])


def test_records_hooks_and_upload_values_take_the_python_path() -> None:
    seen: list[CheckResult] = []
    engines = _pair()
    for engine in engines:
        engine.on_decision = seen.append
    paths = [engines[0]._token_path]  # set later: the C path is dropped...
    engines[0].on_decision = None
    paths.append(engines[0]._token_path)  # ...and made again once it is unset
    assert paths[0] is None and paths[1] is not None
    engines[0].on_decision = seen.append
    _alike(engines, [token(jti="h-1")] * 2)
    assert len(seen) == 4
    _alike(_pair(), [token(jti="r-1")], request={"version": "1.0"})


def test_a_quick_decision_of_a_pending_publisher_is_left_to_python() -> None:
    """The C path answers only a normal publisher's decision (its `pending` false); any
    other goes back to the engine, verified."""
    import dataclasses

    from tppolicy.token.verify import VerifiedToken

    with_c, _ = _pair()
    index = with_c.decider.issuers[GITHUB]
    key, decision = next(iter(index.quick.items()))
    changed = dataclasses.replace(decision, pending=True)
    index.quick.put(key, changed, index.quick.aux(key))
    path = with_c._token_path
    assert path is not None
    done = path(token(jti="p-1"))
    assert type(done) is VerifiedToken
