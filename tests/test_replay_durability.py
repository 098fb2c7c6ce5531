"""A jti claimed in the SQLite replay store survives the process being killed (kill -9)
right after `claim` returned (the store commits to its write-ahead log before returning)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.processes import child_env, race, reaped
from tppolicy.errors import TppolicyError
from tppolicy.token.replay import ReplayStoreError, SQLiteReplayStore

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
    with reaped(subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], env=child_env(),
                                 stdout=subprocess.PIPE, text=True)) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "claimed"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    store = SQLiteReplayStore(path)
    expires = int(time.time()) + 600
    assert not any(store.claim(f"jti-{i}", expires) for i in range(50))
    assert store.claim("jti-new", expires)


_RACER = """
import sys
from tppolicy.token.replay import SQLiteReplayStore
store = SQLiteReplayStore(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
won = [i for i in range(int(sys.argv[2])) if store.claim(f"iss/jti-{i}", 2**40)]
print(" ".join(map(str, won)), flush=True)
"""


def test_processes_racing_for_the_same_jtis_win_each_exactly_once(tmp_path: Path) -> None:
    path, count = tmp_path / "replay.db", 400
    SQLiteReplayStore(path)
    won = [int(i) for out, _ in race(_RACER, [str(path), str(count)], 3) for i in out.split()]
    assert sorted(won) == list(range(count))


def test_a_file_of_the_earlier_layout_keeps_its_claims(tmp_path: Path) -> None:
    path = tmp_path / "replay.db"
    with sqlite3.connect(path) as db:  # the layout of earlier versions
        db.execute("CREATE TABLE used_jti (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)")
        db.execute("CREATE INDEX used_jti_expiry ON used_jti (expires_at)")
        db.execute("INSERT INTO used_jti VALUES ('iss/old', ?)", (2**40,))
    db.close()
    store = SQLiteReplayStore(path)
    assert not store.claim("iss/old", 2**40)
    assert store.claim("iss/new", 2**40)
    assert not store.claim("iss/new", 2**40)
    with sqlite3.connect(path) as db:
        names = [name for (name,) in db.execute("SELECT name FROM sqlite_master")]
    db.close()
    assert names == ["used_jti", "sqlite_autoindex_used_jti_1"]  # the expiry index is gone


def test_a_new_file_keys_claims_by_their_key_alone(tmp_path: Path) -> None:
    SQLiteReplayStore(tmp_path / "replay.db")
    with sqlite3.connect(tmp_path / "replay.db") as db:
        rows = list(db.execute("SELECT type, name, sql FROM sqlite_master"))
    db.close()
    assert len(rows) == 1  # one B-tree: no rowid table beside the key's index
    assert rows[0][:2] == ("table", "used_jti")
    assert "WITHOUT ROWID" in rows[0][2]


def test_the_log_is_copied_back_every_4000_pages(tmp_path: Path) -> None:
    store = SQLiteReplayStore(tmp_path / "replay.db")
    assert store._connect().execute("PRAGMA wal_autocheckpoint").fetchone() == (4000,)
    assert store._connect().execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert store._connect().execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL


# ------------------------------------------------------------------ exclusive=True
_EXCLUSIVE_CHILD = """
import sys, time
from tppolicy.token.replay import SQLiteReplayStore
store = SQLiteReplayStore(sys.argv[1], exclusive=True)
for i in range(50):
    assert store.claim(f"jti-{i}", int(time.time()) + 600)
print("claimed", flush=True)
time.sleep(60)
"""

_OPENER = """
import sys
from tppolicy.token.replay import ReplayStoreError, SQLiteReplayStore
try:
    SQLiteReplayStore(sys.argv[1], exclusive=sys.argv[2] == "exclusive", timeout=0.2)
except ReplayStoreError as exc:
    print("refused:", exc)
else:
    print("opened")
"""


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], env=child_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _opened_by_another_process(path: Path, mode: str) -> str:
    opener = _child(_OPENER, str(path), mode)
    return opener.communicate(timeout=60)[0].strip()


def test_an_exclusive_stores_claims_survive_kill_9_and_it_is_the_files_only_user(
        tmp_path: Path) -> None:
    path = tmp_path / "replay.db"
    SQLiteReplayStore(path).close()  # closed: an exclusive store must be the file's only user
    with reaped(_child(_EXCLUSIVE_CHILD, str(path))) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "claimed"
        # while it runs, no other process can use the file, and each is told why
        for mode in ("shared", "exclusive"):
            answer = _opened_by_another_process(path, mode)
            assert answer.startswith(f"refused: replay store {path}: the file is locked"), answer
            assert "exclusive=True" in answer
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    for exclusive in (True, False):  # the lock went with the process; the claims stayed
        store = SQLiteReplayStore(path, exclusive=exclusive)
        expires = int(time.time()) + 600
        assert not any(store.claim(f"jti-{i}", expires) for i in range(50))
        assert store.claim(f"jti-new-{exclusive}", expires)
        store.close()


def test_an_exclusive_store_refuses_a_file_a_shared_store_has_open(tmp_path: Path) -> None:
    path = tmp_path / "replay.db"
    shared = SQLiteReplayStore(path)
    assert shared.claim("iss/a", 2**40)
    answer = _opened_by_another_process(path, "exclusive")
    assert answer.startswith(f"refused: replay store {path}: the file is locked"), answer
    assert "another process has it open" in answer and "hint:" in answer
    shared.close()
    assert _opened_by_another_process(path, "exclusive") == "opened"


def test_an_exclusive_stores_threads_win_each_key_once(tmp_path: Path) -> None:
    store = SQLiteReplayStore(tmp_path / "replay.db", exclusive=True)
    won: list[list[int]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def race(n: int) -> None:
        start.wait()
        won[n] = [i for i in range(300) if store.claim(f"iss/jti-{i}", 2**40)]

    threads = [threading.Thread(target=race, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(i for mine in won for i in mine) == list(range(300))
    assert store._connect().execute("PRAGMA locking_mode").fetchone() == ("exclusive",)
    store.close()  # the lock is released; a claim after it opens the file again
    assert not store.claim("iss/jti-1", 2**40)
    assert store.claim("iss/jti-300", 2**40)
    store.close()


@pytest.mark.parametrize("exclusive", [False, True])
def test_a_claim_after_an_expiry_takes_the_key_again(tmp_path: Path, exclusive: bool) -> None:
    now = [1000.0]
    store = SQLiteReplayStore(tmp_path / "replay.db", lambda: now[0], exclusive=exclusive)
    assert store.claim("iss/a", 1010)
    assert not store.claim("iss/a", 1010)
    now[0] = 1010.0
    assert store.claim("iss/a", 1020)  # its time passed: taken again, once
    assert not store.claim("iss/a", 1020)
    store.close()


def test_a_replay_file_that_cannot_be_opened_is_invalid_input_with_a_hint(
        tmp_path: Path) -> None:
    where = tmp_path / "missing-folder" / "replay.db"
    with pytest.raises(ReplayStoreError) as caught:
        SQLiteReplayStore(where)
    assert str(caught.value).startswith(f"replay store {where}: cannot use the file")
    assert "hint: give a SQLite file this process may read and write" in str(caught.value)
    assert isinstance(caught.value, TppolicyError)  # the command line exits 3, not 4
