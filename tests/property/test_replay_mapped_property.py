"""`MappedReplayStore` answers as `MemoryReplayStore` does, claim after claim, as a fake
clock moves on over many windows (each segment recycled again and again), whichever of
two stores on one file (two processes) makes the claim.

A key claimed while live comes back with the same expiry (a token used twice: one exp) or
another in the same window; a key whose claim has passed comes back with any expiry
within the store's horizon (a later token with the same jti). A live key claimed with an
expiry in another window is another entry in the mapped store (its documented limit;
tests/test_replay_mapped.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from tppolicy.native import EXTENSION_WANTED
from tppolicy.token.replay import MappedReplayStore, MemoryReplayStore

if not EXTENSION_WANTED:
    pytest.skip("the mapped store is C only", allow_module_level=True)
pytest.importorskip("tppolicy.token._mapped")

pytestmark = pytest.mark.slow  # a hypothesis suite: the slow group, as tests/property/'s others

WINDOW, SEGMENTS = 10, 4
HORIZON = (SEGMENTS - 2) * WINDOW
KEYS = st.sampled_from(["a", "b", "https://issuer/c", "é", "", "a" * 200])


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class SameAsMemory(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.clock = Clock()
        path = Path(self.folder.name) / "replay.map"
        self.mapped = [MappedReplayStore(path, self.clock, segments=SEGMENTS, slots=64,
                                         window=WINDOW, sync_every=None),
                       MappedReplayStore(path, self.clock, sync_every=None)]
        self.memory = MemoryReplayStore(self.clock)
        self.expiry: dict[str, int] = {}  # each key's last claimed expiry

    def teardown(self) -> None:
        for store in self.mapped:
            store.close()
        self.folder.cleanup()

    @rule(seconds=st.one_of(st.integers(0, 3), st.integers(0, 3 * HORIZON)),
          fraction=st.sampled_from([0.0, 0.25, 0.999]))
    def advance(self, seconds: int, fraction: float) -> None:
        self.clock.now = float(int(self.clock.now) + seconds) + fraction

    @precondition(lambda self: any(e >= self.clock.now for e in self.expiry.values()))
    @rule(data=st.data())
    def advance_to_an_expiry(self, data: st.DataObject) -> None:
        """The boundary: an expiry is live while it is > now."""
        ahead = sorted(e for e in self.expiry.values() if e >= self.clock.now)
        self.clock.now = float(data.draw(st.sampled_from(ahead)))

    @rule(key=KEYS, ahead=st.integers(-5, HORIZON), which=st.integers(0, 1))
    def claim_anew_or_after_expiry(self, key: str, ahead: int, which: int) -> None:
        last = self.expiry.get(key)
        if last is not None and last > self.clock.now:
            return  # live: claim_again below
        self.claim(key, int(self.clock.now) + ahead, which)

    @precondition(lambda self: bool(self.expiry))
    @rule(data=st.data(), same=st.booleans(), which=st.integers(0, 1))
    def claim_again(self, data: st.DataObject, same: bool, which: int) -> None:
        key = data.draw(st.sampled_from(sorted(self.expiry)))
        last = self.expiry[key]
        if same or last <= self.clock.now:
            expires = last
        else:  # another expiry of the same window, within the horizon
            low = max(last - last % WINDOW, int(self.clock.now) + 1)
            high = min(last - last % WINDOW + WINDOW - 1, int(self.clock.now) + HORIZON)
            expires = data.draw(st.integers(low, high)) if low <= high else last
        self.claim(key, expires, which)

    def claim(self, key: str, expires: int, which: int) -> None:
        expected = self.memory.claim(key, expires)
        assert self.mapped[which].claim(key, expires) is expected, (key, expires)
        if expected:
            self.expiry[key] = expires


SameAsMemory.TestCase.settings = settings(max_examples=60, stateful_step_count=50,
                                          deadline=None)
test_same_as_memory = SameAsMemory.TestCase


def test_same_as_memory_at_length() -> None:
    run = SameAsMemory.TestCase("runTest")
    run.settings = settings(max_examples=500, stateful_step_count=120, deadline=None)
    run.runTest()
