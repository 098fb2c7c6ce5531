"""`MappedReplayStore`: claimed keys in a file every process of the host maps. Its answers
(those of the other stores), its recycling of segments over the windows, real races
between processes and threads, kill -9 of a claimant and of the holder of the file's lock,
and every file or limit it cannot use: a `ReplayStoreError` naming the file and a fix, a
denial in the engine (tests/property/test_replay_mapped_property.py compares its answers
with `MemoryReplayStore`'s at length)."""

from __future__ import annotations

import gc
import math
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.processes import child_env, reaped
from tests.processes import race as racing
from tppolicy.decide.decision import INVALID_REUSE_TOKEN
from tppolicy.decide.engine import Engine
from tppolicy.errors import TppolicyError
from tppolicy.native import EXTENSION_WANTED
from tppolicy.token.replay import MappedReplayStore, ReplayStoreError

from .conftest import load_claims
from .test_check_token import NORMAL, keys, token
from .test_replay_failures import failed, read_only
from .tokens import fresh, rsa_key

if not EXTENSION_WANTED:
    pytest.skip("the mapped store is C only (TPPOLICY_NO_EXTENSION=1 or free-threaded)",
                allow_module_level=True)
mapped = pytest.importorskip("tppolicy.token._mapped")

KEY = "https://token.actions.githubusercontent.com/6a1b0b8e-0000-4000-8000-000000000000"


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "replay.map"


def small(path: Path, clock: Callable[[], float] = time.time) -> MappedReplayStore:
    """A store of 4 segments of 64 slots, windows of 10 s: a horizon of (4 - 2) * 10 s."""
    return MappedReplayStore(path, clock, segments=4, slots=64, window=10)


def later(seconds: int = 600) -> int:
    return int(time.time()) + seconds




# ------------------------------------------------------------------ the module


def test_the_install_built_the_module_and_the_store_uses_it() -> None:
    assert MappedReplayStore.__mro__[1] is mapped.Mapped
    assert "claim" not in vars(MappedReplayStore)  # the C method: no Python frame


def test_siphash_2_4_gives_the_paper_s_test_vector() -> None:
    """SipHash paper (Aumasson, Bernstein 2012), appendix A: key 00..0f, message 00..0e."""
    key = bytes(range(16))
    assert mapped.siphash24(key, bytes(range(15))) == 0xA129CA6149BE45E5
    # the reference implementation's vectors.h, messages 00..(n-1) for n = 0, 1, 7, 8
    assert mapped.siphash24(key, b"") == 0x726FDB47DD0E0E31
    assert mapped.siphash24(key, bytes(range(1))) == 0x74F839C593DC67FD
    assert mapped.siphash24(key, bytes(range(7))) == 0xAB0200F58B01D137
    assert mapped.siphash24(key, bytes(range(8))) == 0x93F5F5799A932462
    with pytest.raises(ValueError, match="16 bytes"):
        mapped.siphash24(b"short", b"")


# ------------------------------------------------------------------ answers


def test_a_key_is_won_once_until_its_time_passes(path: Path) -> None:
    clock = Clock()
    store = small(path, clock)
    expires = int(clock.now) + 15
    assert store.claim(KEY, expires)
    assert not store.claim(KEY, expires)
    assert not store.claim(KEY, expires - 1)  # the same window: the same entry, live
    assert store.claim(KEY + "x", expires)
    clock.now = expires  # an expiry is live while it is > now
    assert store.claim(KEY, expires + 5)  # taken again, once
    assert not store.claim(KEY, expires + 5)
    assert store.claim("passed", int(clock.now))  # already passed: True, nothing kept
    assert store.claim("passed", int(clock.now))
    store.close()


def test_types_are_checked_as_the_other_stores_do(path: Path) -> None:
    store = MappedReplayStore(path)
    with pytest.raises(TypeError, match="key is a string, not bytes"):
        store.claim(b"key", later())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not bool"):
        store.claim(KEY, True)
    with pytest.raises(ValueError, match="finite"):
        store.claim(KEY, math.nan)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="2 arguments"):
        store.claim(KEY, 1, 2, 3)  # type: ignore[call-arg]
    assert store.claim(KEY, float(later()))  # type: ignore[arg-type]  # whole seconds
    assert not store.claim(KEY, later())
    assert store.claim(key=KEY + "k", expires_at=later())  # type: ignore[call-arg]
    assert store.claim("\ud800 lone surrogate", later())  # its own bytes (surrogatepass)
    assert not store.claim("\ud800 lone surrogate", later())
    assert store.claim("\ud801 lone surrogate", later())
    assert store.claim("üñí©ødé 🙂", later()) and not store.claim("üñí©ødé 🙂", later())
    assert store.claim("", later()) and not store.claim("", later())
    store.close()


def test_segments_are_recycled_over_many_windows(path: Path) -> None:
    """Ten cycles of a 4-segment file: each segment zeroed for its next window."""
    clock = Clock(0.0)
    store = small(path, clock)
    other = MappedReplayStore(path, clock)  # another user of the file: the file's parameters
    for step in range(400):
        clock.now = float(step)
        expires = step + 1 + step % 19
        key = f"k{step % 7}-{expires}"
        assert store.claim(key, expires), step
        assert not other.claim(key, expires), step
        assert other.claim(f"o{step}", step + 20)
        assert not store.claim(f"o{step}", step + 20)
    states = struct.unpack_from("=4q", path.read_bytes(), mapped.STATES_AT)
    assert all(state >= 2 for state in states)  # every segment served a window
    store.close()
    other.close()


def test_a_recycled_segment_gives_its_pages_back(path: Path) -> None:
    """Zeroed by punching a hole (where the file system can): the file stays sparse."""
    clock = Clock(0.0)
    store = MappedReplayStore(path, clock, segments=4, slots=1 << 14, window=10)
    for i in range(4000):  # segment 0 (epoch 0), its pages made
        assert store.claim(f"k{i}", 5)
    store.sync()
    used = path.stat().st_blocks * 512
    assert used >= 200_000  # most of the segment's 256 KiB
    clock.now = 35.0
    assert store.claim("recycling", 45)  # epoch 4: segment 0 again, zeroed
    store.sync()
    if path.stat().st_blocks * 512 >= used:
        pytest.skip("this file system punches no holes (the segment was zeroed in place)")
    assert path.stat().st_blocks * 512 <= 16384
    assert store.claim("k1", 45)  # gone with its epoch
    store.close()


def test_a_live_key_claimed_with_an_expiry_in_another_window_is_another_entry(
        path: Path) -> None:
    """The documented limit: keys are kept per window of expiry (a token used twice has
    one exp, so it always meets its first claim)."""
    clock = Clock(0.0)
    store = MappedReplayStore(path, clock, segments=4, slots=64, window=10)
    assert store.claim(KEY, 5)
    assert store.claim(KEY, 15)  # another window: another entry
    assert not store.claim(KEY, 5) and not store.claim(KEY, 15)
    store.close()


def test_the_engine_uses_up_the_jti_in_the_file(path: Path) -> None:
    engine = Engine(publishers=[NORMAL], keys=keys(), replay=MappedReplayStore(path))
    used = token()
    assert engine.check_token(used).allowed
    assert engine.check_token(used).error == INVALID_REUSE_TOKEN
    # another process's engine (another store on the file) refuses it too
    again = Engine(publishers=[NORMAL], keys=keys(), replay=MappedReplayStore(path))
    assert again.check_token(used).error == INVALID_REUSE_TOKEN
    assert again.check_token(token(jti=str(uuid.uuid4()))).allowed
    for jti in ("", "x" * 512, "üñí©ødé 🙂", "%s%n{}", "\u00a0\u2028 spaces"):
        unusual = token(jti=jti)
        assert engine.check_token(unusual).allowed, jti
        assert again.check_token(unusual).error == INVALID_REUSE_TOKEN


# ------------------------------------------------------------------ opening


def test_the_file_s_parameters_are_kept_and_others_refused(path: Path) -> None:
    MappedReplayStore(path, segments=5, slots=128, window=60).close()
    store = MappedReplayStore(path)  # none given: the file's
    assert store.parameters == {"segments": 5, "slots": 128, "window": 60, "probe_limit": 64}
    store.close()
    MappedReplayStore(path, segments=5, window=60).close()  # the same: accepted
    with pytest.raises(ReplayStoreError) as caught:
        MappedReplayStore(path, slots=256, window=60)
    text = str(caught.value)
    assert str(path) in text and "slots 256 (the file has 128)" in text
    assert "window" not in text.split("hint:")[0]
    assert "remove the file once no token it recorded is still live" in text


def test_defaults_keep_a_day_long_token(path: Path) -> None:
    """The verifier accepts tokens living up to MAX_TOKEN_LIFETIME (24 h): with its leeway
    and margin, within the default horizon (31.5 h)."""
    from tppolicy.limits import DEFAULT_LEEWAY, MAX_TOKEN_LIFETIME, REPLAY_MARGIN

    store = MappedReplayStore(path)
    parameters = store.parameters
    assert parameters is not None
    horizon = (parameters["segments"] - 2) * parameters["window"]
    assert horizon >= MAX_TOKEN_LIFETIME + 2 * DEFAULT_LEEWAY + REPLAY_MARGIN + 3600
    assert store.claim(KEY, later(MAX_TOKEN_LIFETIME + 2 * DEFAULT_LEEWAY + REPLAY_MARGIN))
    assert parameters == {"segments": 128, "slots": 1 << 15, "window": 900, "probe_limit": 64}
    assert path.stat().st_size == 4096 + 128 * (1 << 15) * 16
    assert path.stat().st_mode & 0o777 == 0o600  # the secret is in it
    store.close()


@pytest.mark.parametrize(("parameter", "value", "message"), [
    ("segments", 2, "segments 2: an int from 3 to 448"),
    ("slots", 100, "slots 100: a power of two"),
    ("slots", 32, "slots 32: an int from 64"),
    ("window", 0, "window 0: an int from 1"),
    ("window", 1.5, "window 1.5: an int"),
])
def test_parameters_out_of_bounds_are_value_errors(path: Path, parameter: str, value: object,
                                                   message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MappedReplayStore(path, **{parameter: value})  # type: ignore[arg-type]
    assert not path.exists()
    with pytest.raises(ValueError, match="sync_every"):
        MappedReplayStore(path, sync_every=0)


def damaged(path: Path, how: str) -> None:
    """`path` made by the store, then damaged `how`."""
    small(path).close()
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(data[:5000])
    elif how == "extended":
        path.write_bytes(data + b"\0" * 16)
    elif how == "foreign":
        path.write_bytes(os.urandom(len(data)))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "version":
        data[16] = 9
        path.write_bytes(data)
    elif how == "segments":
        struct.pack_into("=I", data, 24, 1000)
        path.write_bytes(data)
    elif how == "size-field":
        struct.pack_into("=Q", data, 48, 12345)
        path.write_bytes(data)
    elif how == "state":
        struct.pack_into("=q", data, mapped.STATES_AT, -5)
        path.write_bytes(data)


@pytest.mark.parametrize(("how", "says"), [
    ("truncated", "5000 bytes, its header says 8192 (truncated or extended)"),
    ("extended", "8208 bytes, its header says 8192"),
    ("foreign", "does not start with tppolicy's magic"),
    ("empty", "0 bytes, shorter than a header"),
    ("version", "format version 9; this tppolicy reads version 1"),
    ("segments", "its header says segments 1000: an int from 3 to 448"),
    ("size-field", "its header gives a size of 12345 bytes"),
    ("state", "a segment's state word is out of range"),
])
def test_a_damaged_file_is_refused_with_its_path_and_a_fix(path: Path, how: str,
                                                           says: str) -> None:
    damaged(path, how)
    with pytest.raises(ReplayStoreError) as caught:
        MappedReplayStore(path)
    text = str(caught.value)
    assert text.startswith(f"replay store {path}: not a usable replay store file: ")
    assert says in text
    assert "hint: give the path of a file MappedReplayStore made" in text
    assert caught.value.path == str(path)


def test_paths_that_cannot_be_used(tmp_path: Path) -> None:
    folder = tmp_path / "a-directory"
    folder.mkdir()
    with pytest.raises(ReplayStoreError, match="cannot open the file: Is a directory"):
        MappedReplayStore(folder)
    missing = tmp_path / "no-such-folder" / "replay.map"
    with pytest.raises(ReplayStoreError) as caught:
        MappedReplayStore(missing)
    assert f"cannot create a file in {missing.parent}: No such file or directory" in str(
        caught.value)
    assert "in a directory where this process may create files" in str(caught.value)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ReplayStoreError, match="not a usable replay store file: not a "
                       "regular file"):
        MappedReplayStore(fifo)  # not waited on
    target = tmp_path / "target.map"
    MappedReplayStore(target).close()
    link = tmp_path / "link.map"
    link.symlink_to(target)
    with pytest.raises(ReplayStoreError, match="cannot open the file"):
        MappedReplayStore(link)  # O_NOFOLLOW: no file swapped in by a link


def test_an_unwritable_directory_or_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    with read_only(folder), pytest.raises(ReplayStoreError) as caught:
        MappedReplayStore(folder / "replay.map")
    assert f"cannot create a file in {folder}" in str(caught.value)
    made = tmp_path / "made.map"
    MappedReplayStore(made).close()
    with read_only(made), pytest.raises(ReplayStoreError) as caught:
        MappedReplayStore(made)
    text = str(caught.value)  # chmod: EACCES; chattr +i (root): EPERM
    assert text.startswith(f"replay store {made}: cannot open the file: ")
    assert "Permission denied" in text or "Operation not permitted" in text


def test_processes_creating_the_file_at_once_share_one(tmp_path: Path) -> None:
    """Each links its own whole file to the name; all but the first use the first's."""
    path = tmp_path / "replay.map"
    code = ("import sys\nfrom tppolicy.token.replay import MappedReplayStore\n"
            "s = MappedReplayStore(sys.argv[1])\n"
            "print(sum(s.claim(f'k{i}', int(sys.argv[2])) for i in range(300)))\n")
    runs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(later())], env=child_env(),
                             stdout=subprocess.PIPE, text=True) for _ in range(4)]
    won = [int(run.communicate(timeout=60)[0]) for run in runs]
    assert sum(won) == 300, won
    assert [p.name for p in tmp_path.iterdir()] == ["replay.map"]  # no temporary left


# ------------------------------------------------------------------ limits: denials


def test_a_full_segment_is_an_error_and_a_denial(path: Path) -> None:
    now = int(time.time())
    signed = rsa_key().sign(fresh(load_claims("github-release"), now=now))
    expires = now + 300 + 30 + 5  # the engine's: exp + leeway + margin
    store = MappedReplayStore(path, slots=64)
    for i in range(64):
        assert store.claim(f"filler-{i}", expires)
    with pytest.raises(ReplayStoreError) as caught:
        store.claim("one-more", expires)
    text = str(caught.value)
    assert str(path) in text and "no free slot within 64 probes" in text
    assert "hint: make the file with more slots per segment" in text
    result = Engine(publishers=[NORMAL], keys=keys(), replay=store).check_token(signed)
    failed(result)
    assert "no free slot" in result.decision.reasons[0].message
    store.close()


def test_an_expiry_beyond_the_horizon_is_an_error_and_a_denial(path: Path) -> None:
    store = MappedReplayStore(path, segments=3, window=60)  # horizon 60 s
    with pytest.raises(ReplayStoreError) as caught:
        store.claim(KEY, later(120))
    text = str(caught.value)
    assert f"replay store {path}: the expiry is more than 60 s ahead of now" in text
    assert "more segments or a longer window" in text
    with pytest.raises(ReplayStoreError, match="more than 60 s ahead"):
        store.claim(KEY, 10**30)
    assert store.claim(KEY, -(10**30))  # long passed
    result = Engine(publishers=[NORMAL], keys=keys(), replay=store).check_token(token())
    failed(result)  # a 300 s token: beyond
    assert "more than 60 s ahead" in result.decision.reasons[0].message
    store.close()


def test_a_clock_before_1970_is_an_error(path: Path) -> None:
    store = MappedReplayStore(path, Clock(-100.0))
    with pytest.raises(ReplayStoreError, match="before 1970"):
        store.claim(KEY, 10)
    store.close()


def test_a_clock_that_ran_ahead_is_an_error_not_a_free_pass(path: Path) -> None:
    """A process whose clock is a window or more ahead recycles a segment for a later
    window: the claims of the current window in it are refused (the SQLite store would
    take their keys again; here their entries are gone, so every replay would pass)."""
    right, ahead = Clock(1_000_000.0), Clock(1_000_040.0)  # 4 windows (a cycle) ahead
    store, runaway = small(path, right), small(path, ahead)
    assert store.claim(KEY, 1_000_005)  # epoch 100_000: segment 0
    assert runaway.claim("other", 1_000_045)  # epoch 100_004: segment 0 again, recycled
    with pytest.raises(ReplayStoreError) as caught:
        store.claim(KEY, 1_000_005)
    text = str(caught.value)
    assert "serves a window 40 s later than its expiry's: a clock of a process" in text
    assert "hint: set the system clock right" in text
    with pytest.raises(ReplayStoreError, match="a clock of a process"):
        store.claim("new", 1_000_007)
    assert store.claim("elsewhere", 1_000_015)  # segment 1: untouched
    store.close()
    runaway.close()


def test_a_closed_store_is_a_denial(path: Path) -> None:
    store = MappedReplayStore(path)
    engine = Engine(publishers=[NORMAL], keys=keys(), replay=store)
    assert engine.check_token(token()).allowed
    store.close()
    assert store.closed
    store.close()  # twice: nothing more
    with pytest.raises(ReplayStoreError, match="the store is closed"):
        store.claim(KEY, later())
    with pytest.raises(ReplayStoreError, match="the store is closed"):
        store.sync()
    failed(engine.check_token(token()))


# ------------------------------------------------------------------ life of a store


def test_syncs_run_and_stop_with_the_store(path: Path) -> None:
    with MappedReplayStore(path, sync_every=0.01) as store:
        assert store.claim(KEY, later())
        store.sync()
        thread = next(t for t in threading.enumerate() if t.name.endswith(str(path)))
        time.sleep(0.05)
        assert store.sync_error is None
    thread.join(5)
    assert not thread.is_alive()
    enabled = gc.isenabled()
    gc.disable()
    try:
        dropped = MappedReplayStore(path, sync_every=0.01)
        ref = weakref.ref(dropped)
        thread = next(t for t in threading.enumerate()
                      if t.name.endswith(str(path)) and t.is_alive())
        del dropped  # no close(): unmapped, its thread ends
        assert ref() is None
        thread.join(5)
        assert not thread.is_alive()
    finally:
        if enabled:
            gc.enable()
    quiet = MappedReplayStore(path, sync_every=None)
    assert not any(t.name.endswith(str(path)) and t.is_alive() for t in threading.enumerate())
    assert not quiet.claim(KEY, later())
    quiet.close()


def test_the_error_is_a_tppolicy_error(path: Path) -> None:
    store = MappedReplayStore(path, segments=3, window=1)
    with pytest.raises(TppolicyError):
        store.claim(KEY, later())
    store.close()


# ------------------------------------------------------------------ races


_RACER = """
import sys, threading
from tppolicy.token.replay import MappedReplayStore
store = MappedReplayStore(sys.argv[1], sync_every=0.05)
count, expires = int(sys.argv[2]), int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()
won = []
def run(order):
    for i in order:
        if store.claim(f"https://issuer/jti-{i}", expires + i % 7 * 900):  # 7 windows
            won.append(i)
threads = [threading.Thread(target=run, args=(range(count)[::step],)) for step in (1, -1)]
for t in threads: t.start()
for t in threads: t.join()
print(" ".join(map(str, won)), flush=True)
"""


def race(path: Path, processes: int, count: int, expires: int) -> list[int]:
    outputs = racing(_RACER, [str(path), str(count), str(expires)], processes, timeout=120)
    return [int(i) for out, _ in outputs for i in out.split()]


def test_processes_and_threads_racing_win_each_key_exactly_once(tmp_path: Path) -> None:
    """Three processes of two threads each (one claiming upwards, one downwards: they
    cross), on an overlapping set of keys, the segments made by their first claims."""
    path, count = tmp_path / "replay.map", 3000
    expires = later()
    won = race(path, 3, count, expires)
    assert sorted(won) == list(range(count))
    store = MappedReplayStore(path)
    assert not any(store.claim(f"https://issuer/jti-{i}", expires + i % 7 * 900)
                   for i in range(count))
    store.close()


@pytest.mark.slow
def test_many_races_win_each_key_exactly_once(tmp_path: Path) -> None:
    """20 000 keys in 7 windows: about 2 900 in a segment of 32 768 slots (a segment
    fuller than about 60% may refuse a key for want of a slot within 64 probes)."""
    for n in range(5):
        path, count = tmp_path / f"replay{n}.map", 20000
        won = race(path, 4, count, later())
        assert sorted(won) == list(range(count)), n


# ------------------------------------------------------------------ kill -9


_CLAIMER = """
import sys, time
from tppolicy.token.replay import MappedReplayStore
store = MappedReplayStore(sys.argv[1], sync_every=None)
expires = int(time.time()) + 600
for i in range(10**9):
    if store.claim(f"jti-{i}", expires):
        print(i, flush=True)
"""


def test_claims_reported_won_survive_kill_9_mid_claiming(path: Path) -> None:
    """Killed while claiming (no sync: the page cache holds the claims); every key it
    said it won is refused to the next process."""
    MappedReplayStore(path).close()
    reported = []
    with reaped(subprocess.Popen([sys.executable, "-c", _CLAIMER, str(path)],
                                 env=child_env(), stdout=subprocess.PIPE, text=True)) as child:
        assert child.stdout is not None
        for line in child.stdout:
            reported.append(int(line))
            if len(reported) == 2000:
                break
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        reported += [int(line) for line in child.stdout.read().split()]
    store = MappedReplayStore(path)
    expires = later()
    assert not any(store.claim(f"jti-{i}", expires) for i in reported)
    assert store.claim("jti-new", expires)
    store.close()


_HOLDER = """
import os, sys
from tppolicy.token import _mapped
from tppolicy.token.replay import MappedReplayStore
now = [1_000_000.0]
store = MappedReplayStore(sys.argv[1], lambda: now[0], sync_every=None)
assert store.claim("first", 1_000_005)     # epoch 100_000 (window 10): segment 0
now[0] = 1_000_030.0
_mapped._stop_while_clearing(1)            # stdout: 'c' once the clearing is half done
store.claim("second", 1_000_045)           # epoch 100_004: segment 0 recycled; never returns
"""


def state_words(path: Path) -> tuple[int, ...]:
    return struct.unpack_from("=4q", path.read_bytes(), mapped.STATES_AT)


def test_a_process_killed_while_holding_the_lock_leaves_a_working_store(path: Path) -> None:
    """Killed mid-clearing, the lock held and the segment marked: the next claim in that
    segment gets the lock (EOWNERDEAD: made consistent) and clears it again."""
    clock = Clock(1_000_000.0)
    small(path, clock).close()
    with reaped(subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)],
                                 env=child_env(), stdout=subprocess.PIPE)) as child:
        assert child.stdout is not None
        assert child.stdout.read(1) == b"c"
        assert state_words(path)[0] == 1  # marked: being cleared
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    clock.now = 1_000_030.0
    store = MappedReplayStore(path, clock)
    assert store.claim("second", 1_000_045)  # segment 0: recovered, cleared, served
    assert state_words(path)[0] == 100_004 + 2
    assert store.claim("other", 1_000_015)  # segment 1, first used: the lock taken again
    assert not store.claim("second", 1_000_045)
    assert store.claim("first", 1_000_005)  # passed
    # the lock works again: another recycling takes it and gives it back
    clock.now = 1_000_070.0
    assert store.claim("third", 1_000_085)  # epoch 100_008: segment 0 again
    assert not store.claim("third", 1_000_085)
    store.close()



# ------------------------------------------------------------------ after a reboot


_FIRST_CLAIM = """
import sys, time
from tppolicy.token.replay import MappedReplayStore
store = MappedReplayStore(sys.argv[1], sync_every=None)
print(store.claim("first", int(time.time()) + 600), flush=True)  # takes the lock
"""

MUTEX_AT = 128  # _mapped.c: the lock's place in the header; glibc's __lock word first


def locked_by_a_lost_thread(path: Path, boot: bytes | None) -> None:
    """`path`'s lock as an OS crash may leave it on the disk: held by a thread id no
    process of this boot has, no owner-died mark; `boot`: the boot recorded beside it."""
    data = bytearray(path.read_bytes())
    struct.pack_into("=i", data, MUTEX_AT, 0x3FFFFFF0)  # __lock: the owner's thread id
    struct.pack_into("=i", data, MUTEX_AT + 8, 0x3FFFFFF0)  # __owner
    if boot is not None:
        data[72:88] = boot
    path.write_bytes(data)


def boot_id() -> bytes:
    try:
        return uuid.UUID(Path("/proc/sys/kernel/random/boot_id").read_text().strip()).bytes
    except OSError:
        pytest.skip("no boot id here (/proc/sys/kernel/random/boot_id)")


def test_a_lock_left_held_by_another_boot_is_made_afresh(path: Path) -> None:
    current = boot_id()
    MappedReplayStore(path).close()
    assert path.read_bytes()[72:88] == current  # recorded by the first open
    locked_by_a_lost_thread(path, b"\x01" * 16)  # as after an OS crash and a reboot
    done = subprocess.run([sys.executable, "-c", _FIRST_CLAIM, str(path)], env=child_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "True", done.stderr  # was: waiting for ever on the lock
    assert path.read_bytes()[72:88] == current


@pytest.mark.slow
def test_a_lock_left_held_in_this_boot_is_kept(path: Path) -> None:
    """The control: the same lock word recorded in this boot is not made afresh (a
    process of this boot may hold it), so the claim waits on it."""
    current = boot_id()
    MappedReplayStore(path).close()
    locked_by_a_lost_thread(path, current)
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", _FIRST_CLAIM, str(path)], env=child_env(),
                       capture_output=True, text=True, timeout=3, check=False)
