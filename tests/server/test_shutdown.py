"""Shutting the app down while publishers are being reloaded: the reload, which runs in
a worker thread, finishes before the lifespan ends (and so before `serve` closes the
storage). Cancelling only the awaiting task left the thread querying a SQLite
connection that was then closed under it: a segmentation fault."""

from __future__ import annotations

import threading
import time

from tppolicy.server import Index, create_app

from .conftest import TestClient


def test_a_reload_under_way_finishes_before_shutdown_returns(index: Index) -> None:
    started = threading.Event()
    finished = threading.Event()
    sync = index.sync

    def slow_sync(force: bool = False) -> None:
        started.set()
        time.sleep(0.5)
        sync(force)
        finished.set()

    index.sync = slow_sync  # type: ignore[method-assign]
    index.reload_interval = 0.01
    with TestClient(create_app(index), base_url="http://127.0.0.1") as client:
        assert client.get("/_/health").status_code == 200
        assert started.wait(10)
    assert finished.is_set()
