"""The publishers' reload and the token exchange's fast path (`Index.prepare_at_once`, on
the event loop): the fast path answers only while the publishers were checked less than
`reload_interval` ago. The follower started its check one interval after the last one
*ended*, so every interval the deadline passed some milliseconds before a worker thread
began the next check, and the exchanges arriving meanwhile (about 16 an interval at full
speed) took the worker-thread path; so did those of a server that took longer than the
interval to start. The follower now claims each check on the event loop ahead of its
deadline (`Index.claim_sync`), and at once when the app starts."""

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
    syncs: list[float] = []
    mint, sync = index.mint, index.sync

    def counted_mint(body: bytes) -> Any:
        threaded.append(time.monotonic())
        return mint(body)

    def counted_sync(*args: Any, **kwargs: Any) -> None:
        syncs.append(time.monotonic())
        sync(*args, **kwargs)

    monkeypatch.setattr(index, "mint", counted_mint)
    monkeypatch.setattr(index, "sync", counted_sync)
    app = create_app(index)
    time.sleep(INTERVAL)  # a server slower to start than the interval: due at once
    index.engine.verifier.keys.get(GITHUB, rsa_key().kid)  # the keys are fresh

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as \
                http, app.router.lifespan_context(app):
            end = time.monotonic() + 5 * INTERVAL

            async def client() -> list[int]:
                statuses = []
                while time.monotonic() < end:
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
    assert len(syncs) >= 5, syncs  # the follower did check, every interval
    assert threaded == [], (f"{len(threaded)} of {len(statuses)} exchanges took a worker "
                            f"thread, at {[round(t - syncs[0], 3) for t in threaded]} s; "
                            f"checks at {[round(t - syncs[0], 3) for t in syncs]} s")
