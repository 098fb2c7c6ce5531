"""A jti claimed in the SQLite replay store survives the process being killed (kill -9)
right after `claim` returned (the store commits to its write-ahead log before returning)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tppolicy.token.replay import SQLiteReplayStore

_CHILD = """
import sys, time
from tppolicy.token.replay import SQLiteReplayStore
store = SQLiteReplayStore(sys.argv[1])
for i in range(50):
    assert store.claim(f"jti-{i}", int(time.time()) + 600)
print("claimed", flush=True)
time.sleep(60)
"""


def test_claims_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "replay.db"
    SQLiteReplayStore(path)  # the table exists before the child starts
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "claimed"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    store = SQLiteReplayStore(path)
    expires = int(time.time()) + 600
    assert not any(store.claim(f"jti-{i}", expires) for i in range(50))
    assert store.claim("jti-new", expires)
