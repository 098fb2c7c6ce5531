"""The publishers' reload and the token exchange's fast path (`Index.prepare_at_once`, on
the event loop): the fast path answers only while the publishers were checked less than
`reload_interval` ago. The follower started its check one interval after the last one
*ended*, so every interval the deadline passed some milliseconds before a worker thread
began the next check, and the exchanges arriving meanwhile (about 16 an interval at full
speed) took the worker-thread path; so did those of a server that took longer than the
interval to start. The follower now claims each check on the event loop ahead of its
deadline (`Index.claim_sync`), and at once when the app starts.

Under load the test failed now and then: a claimed check is run by a worker thread, which
a loop kept busy by the clients (and a loaded machine) took 0.2-0.4 s to start (the check
itself takes a millisecond), so a check claimed at t was still under way past its bound
(t + 2 intervals), where the server by design sends exchanges to the worker threads (they
wait for the reload: publishers never older than that). So were the clients' fixed 1.5 s
too short for 5 checks. Now the clients run until the follower has made its checks (a
deadline only bounds a hang), and an exchange sent to a worker thread is a fault unless a
claimed check was then under way past its bound; the gap this test was written for
(no check under way) always fails it."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from tests.tokens import GITHUB, rsa_key
from tppolicy.server import Index, create_app

from .conftest import GH_ROW, github_token

INTERVAL = 0.3
CLIENTS = 8
CHECKS = 6  # the follower's checks the clients run through
HANG = 60.0  # bounds a hang only


@pytest.mark.slow  # the default run's budget (.ci/run runs it)
def test_exchanges_under_reloads_all_take_the_fast_path(
        make_index: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    index: Index = make_index(reload_interval=INTERVAL, jwks_cooldown=0)
    index.storage.put_publisher("release", {**GH_ROW, "name": "release",
                                            "projects": ["sampleproject"]})
    index.sync(force=True)
    index.purge_expired()
    # A refused exchange writes nothing: the same one, again and again, at full speed.
    body = json.dumps({"token": github_token(repository_owner_id="66")}).encode()
    threaded: list[float] = []  # the exchanges `Index.mint` made (a worker thread)
    # sent to a worker thread while no check was due, or one was but none claimed was
    # under way within its bound: the fault
    faults: list[float] = []
    overdue: list[float] = []  # sent there while a claimed check ran past its bound
    syncs: list[float] = []
    mint, sync, prepare = index.mint, index.sync, index.prepare_at_once

    def counted_mint(body: bytes) -> Any:
        threaded.append(time.monotonic())
        return mint(body)

    def watched_prepare(body: bytes) -> Any:
        prepared = prepare(body)
        if prepared is None:  # on the event loop, where checks are claimed and released
            now = time.monotonic()
            late = getattr(index, "_checking", False) and now >= index._next_check + INTERVAL
            (overdue if late else faults).append(now)
        return prepared

    def counted_sync(*args: Any, **kwargs: Any) -> None:
        now = time.monotonic()
        if args or kwargs or now >= index._next_check:  # a check, not a call returning at once
            syncs.append(now)
        sync(*args, **kwargs)

    monkeypatch.setattr(index, "mint", counted_mint)
    monkeypatch.setattr(index, "sync", counted_sync)
    monkeypatch.setattr(index, "prepare_at_once", watched_prepare)
    app = create_app(index)
    time.sleep(INTERVAL)  # a server slower to start than the interval: due at once
    index.engine.verifier.keys.get(GITHUB, rsa_key().kid)  # the keys are fresh

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as \
                http, app.router.lifespan_context(app):
            hang = time.monotonic() + HANG

            async def client() -> list[int]:
                statuses = []
                while len(syncs) < CHECKS and time.monotonic() < hang:
                    statuses.append((await http.post("/_/oidc/mint-token",
                                                     content=body)).status_code)
                    # In memory, a refused exchange never suspends: without this, one
                    # client would keep the loop (a server's socket reads yield to it).
                    await asyncio.sleep(0)
                return statuses

            return [s for mine in await asyncio.gather(*(client() for _ in
                                                         range(CLIENTS))) for s in mine]

    statuses = asyncio.run(run())
    assert statuses and set(statuses) == {422}
    assert len(syncs) >= CHECKS, syncs  # the follower did check, every interval
    assert len(threaded) == len(faults) + len(overdue)
    assert faults == [], (f"{len(faults)} of {len(statuses)} exchanges took a worker "
                          f"thread, at {[round(t - syncs[0], 3) for t in faults]} s; "
                          f"checks at {[round(t - syncs[0], 3) for t in syncs]} s "
                          f"({len(overdue)} more while a check ran past its bound)")
