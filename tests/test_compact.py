"""The compact token reader in C (`tppolicy/token/_compact.c`): built by the install,
the same parts as its Python form (`split_usual`) for the usual token, None for any
other shape (the verifier then reads the token step by step), never a read past a
segment. tests/property/test_compact.py compares the two at length."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from tppolicy.native import EXTENSION_WANTED
from tppolicy.token import verify
from tppolicy.token.verify import split_usual

from .tokens import b64url, rsa_key

compact: Any
try:
    import tppolicy.token._compact as compact
except ImportError:  # not built: every test but the first is skipped, the first fails
    compact = None

pytestmark = pytest.mark.skipif(compact is None and not EXTENSION_WANTED,
                                reason="TPPOLICY_NO_EXTENSION=1")
MAX = 8192
TOKEN = rsa_key().sign({"iss": "https://issuer.example", "aud": "pypi", "jti": "é-1",
                        "groups": [{"a": [1, 2]}], "exp": 2_000_000_000})


def test_the_install_built_the_module_and_the_verifier_uses_it() -> None:
    if not EXTENSION_WANTED:
        assert verify._split is split_usual
    else:
        assert compact is not None, "the install did not build _compact (a C compiler?)"
        assert verify._split is compact.split


def test_the_usual_token_in_parts() -> None:
    parts = compact.split(TOKEN, MAX, orjson.loads)
    assert parts == split_usual(TOKEN, MAX, orjson.loads)
    head, signed, claims, signature, brackets = parts
    assert f"{signed.decode()}.{b64url(signature)}" == TOKEN
    assert head == TOKEN.partition(".")[0]
    assert claims["jti"] == "é-1" and len(signature) == 256
    assert brackets == 4  # the claims' "{", "groups": "[", its object's "{", "a": "["
    raw = json.dumps({"a": "[{[{"}).encode()
    assert compact.split(f"e30.{b64url(raw)}.AA", MAX, orjson.loads)[4] == 5


def _segments(token: str) -> list[str]:
    return token.split(".")


def _one_mod_4(segment: str) -> str:
    return segment + "A" * ((1 - len(segment)) % 4)


@pytest.mark.parametrize("change", [
    lambda h, c, s: f"{h}.{c}",                      # two segments
    lambda h, c, s: f"{h}.{c}.{s}.",                 # four
    lambda h, c, s: f"{h}..{s}",                      # an empty segment
    lambda h, c, s: f".{c}.{s}",
    lambda h, c, s: f"{h}.{c}.",
    lambda h, c, s: f"{h}.{c}.{s}=",                 # padding
    lambda h, c, s: f"{h}+.{c}.{s}",                 # the other alphabet, in each segment
    lambda h, c, s: f"{h}.{c[:-1]}/.{s}",
    lambda h, c, s: f"{h}.{c}.{s[:-1]}+",
    lambda h, c, s: f"{h}.{c} .{s}",                 # a space, a control, non-ASCII
    lambda h, c, s: f"{h}.{c}.{s[:-1]}\x00",
    lambda h, c, s: f"{h}é.{c}.{s}",
    lambda h, c, s: f"{h}.{_one_mod_4(c)}.{s}",      # a length of 1 mod 4
    lambda h, c, s: f"{h}.{c}.{_one_mod_4(s)}",
    lambda h, c, s: f"{h}.{b64url(b'[1]')}.{s}",     # claims that are JSON but no object
    lambda h, c, s: f"{h}.{b64url(b'{')}.{s}",       # claims that are not JSON
])
def test_any_other_shape_is_left_to_the_careful_path(change: Any) -> None:
    token = change(*_segments(TOKEN))
    parts = compact.split(token, MAX, orjson.loads)
    assert parts is None or parts[2].__class__ is not dict  # the verifier re-reads those
    if parts is not None:
        assert parts == split_usual(token, MAX, orjson.loads)


def test_bits_past_the_last_byte_are_left_to_the_careful_path() -> None:
    """"AB" and "AC" both decode to b"\\x00" for a lenient reader (PyPI's accepts
    them); only the canonical form takes the quick path."""
    head, claims, _ = _segments(TOKEN)
    for tail, canonical in (("AA", True), ("AB", False), ("AP", False), ("AAA", True),
                            ("AAB", False), ("AAD", False)):
        parts = compact.split(f"{head}.{claims}.{tail}", MAX, orjson.loads)
        assert (parts is not None) is canonical, tail
        if canonical:
            assert parts == split_usual(f"{head}.{claims}.{tail}", MAX, orjson.loads)
        else:
            assert split_usual(f"{head}.{claims}.{tail}", MAX, orjson.loads) is not None


def test_what_is_not_a_str_of_the_allowed_size() -> None:
    class Token(str):
        pass

    for token in (TOKEN.encode(), bytearray(TOKEN.encode()), Token(TOKEN), None, 7):
        assert compact.split(token, MAX, orjson.loads) is None
        assert split_usual(token, MAX, orjson.loads) is None
    assert compact.split(TOKEN, len(TOKEN), orjson.loads) is not None
    assert compact.split(TOKEN, len(TOKEN) - 1, orjson.loads) is None


def test_the_reader_s_own_failures_pass_through() -> None:
    """A claims reader that is not JSON's failing otherwise than with ValueError (no
    memory, a bug) is not taken for a malformed token."""

    def broken(raw: bytes) -> Any:
        raise RuntimeError("broken reader")

    with pytest.raises(RuntimeError, match="broken reader"):
        compact.split(TOKEN, MAX, broken)
    with pytest.raises(TypeError):
        compact.split(TOKEN, MAX)
    with pytest.raises(OverflowError):
        compact.split(TOKEN, 1 << 70, orjson.loads)


def test_every_length_of_segment_decodes_as_base64url_does() -> None:
    for size in range(40):
        data = bytes(range(200, 200 + size))
        token = f"e30.{b64url(json.dumps({'x': data.hex()}).encode())}.{b64url(data)}"
        got = compact.split(token, MAX, orjson.loads)
        if size == 0:
            assert got is None  # an empty signature
        else:
            assert got == split_usual(token, MAX, orjson.loads)
            assert got[3] == data


def test_registered_claims_in_c() -> None:
    """True for the usual claims; False (the Python test decides) for anything else:
    there the verifier answers as without the module (tests/test_verify.py runs both)."""
    registered = compact.registered
    now = 1_800_000_000
    usual = {"iss": "i", "aud": "pypi", "iat": now, "nbf": now, "exp": now + 300,
             "jti": "j", "sub": "s"}
    assert registered(usual, now, 30, 86400, "pypi") is True
    assert registered(usual, float(now) + 0.5, 30.0, 86400.0, "pypi") is True
    assert registered({k: v for k, v in usual.items() if k not in ("nbf", "jti", "sub")},
                      now, 30, 86400, "pypi") is True
    for change in ({"exp": now - 31}, {"exp": now + 86401}, {"iat": now + 31}, {"iat": -1},
                   {"nbf": now + 31}, {"nbf": True}, {"exp": float(now + 300)},
                   {"exp": 2**53}, {"aud": ["pypi"]}, {"aud": "other"}, {"jti": 1},
                   {"sub": None, "jti": None, "exp": None}):
        assert registered({**usual, **change}, now, 30, 86400, "pypi") is False, change
    assert registered(usual, now, 30, 86400, "other") is False
    assert registered(dict(usual), float("nan"), 30, 86400, "pypi") is False
    with pytest.raises(TypeError):
        registered(usual, now, 30, 86400)


def test_memory_store_claims_in_c() -> None:
    """MemoryReplayStore's claim is the C base's (`Claims`) when the module is built: a new
    key wins once, a live key is refused, an expired one is taken over (Python, under the
    lock), keywords and other types go to the Python method, which says what is wrong."""
    from tppolicy.token.replay import MemoryReplayStore, _ClaimsInPython

    if EXTENSION_WANTED:
        assert issubclass(MemoryReplayStore, compact.Claims)
        assert MemoryReplayStore.claim is compact.Claims.claim
    else:  # TPPOLICY_NO_EXTENSION=1: the Python claim, which answers alike (below)
        assert MemoryReplayStore.claim is _ClaimsInPython.claim
    now = [1000.0]
    store = MemoryReplayStore(clock=lambda: now[0])
    assert store.claim("iss/a", 1035) is True
    assert store.claim("iss/a", 1035) is False
    assert store.claim(key="iss/b", expires_at=1035) is True
    assert store.claim("iss/b", expires_at=1035) is False
    assert store._due == {1035 // 16: ["iss/a", "iss/b"]}
    now[0] = 1036.0
    assert store.claim("iss/a", 2000) is True  # taken over
    assert store.claim("iss/a", 2000) is False
    with pytest.raises(TypeError):
        store.claim(b"iss/c", 2000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        store.claim("iss/c", float("nan"))  # type: ignore[arg-type]
    assert store.claim("iss/c", 2000.0) is True  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.claim("iss/d")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        store.claim("iss/d", 1, 2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        store.claim("iss/d", 1, expires_at=2)  # type: ignore[misc]


def test_a_failing_clock_or_sweep_fails_the_claim() -> None:
    """An exception from the clock or the sweep propagates (the engine then denies, as for
    any failing store), and the key is not held."""
    from tppolicy.token.replay import MemoryReplayStore

    def broken() -> float:
        raise OSError("no clock")

    store = MemoryReplayStore(clock=broken)
    with pytest.raises(OSError, match="no clock"):
        store.claim("iss/a", 2000)
    assert len(store) == 0

    class Sweeping(MemoryReplayStore):
        def _sweep(self, now: float) -> None:
            raise RuntimeError("sweep failed")

    store = Sweeping(clock=lambda: 1000.0)
    with pytest.raises(RuntimeError, match="sweep failed"):
        store.claim("iss/a", 2000)
    assert len(store) == 0
