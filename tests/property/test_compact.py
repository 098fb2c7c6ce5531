"""The token path in C and in Python agree.

A token is judged alike with the C reader (`_compact.split`), with its Python form
(`split_usual`) and by the verifier's straight path in C (`_compact.Usual`): signed
tokens of drawn claims and headers, then cut, padded, given characters of the other
alphabet, control or non-ASCII characters, bits past the last byte; the verifier's answer
(claims, or the refusal's code and message) is the same each way, and where the C reader
gives parts they are the Python form's. The C claims test passes only what Python's
passes; MemoryReplayStore claims alike in C and Python.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tests.tokens import GITHUB, b64url, jwks, rsa_key
from tppolicy.token import verify
from tppolicy.token.keys import KeyCache
from tppolicy.token.replay import MemoryReplayStore, _ClaimsInPython
from tppolicy.token.verify import TokenError, Verifier, registered_usual, split_usual

compact = pytest.importorskip("tppolicy.token._compact")

# Hypothesis runs of hundreds of examples each: the slow group (.ci/run runs it).
pytestmark = pytest.mark.slow
NOW = 1_800_000_000

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=12)
CLAIMS = st.fixed_dictionaries(
    {"iss": st.sampled_from([GITHUB, "https://other.example"]), "aud": st.just("pypi"),
     "iat": st.just(NOW), "exp": st.sampled_from([NOW + 300, NOW - 300])},
    optional={"jti": st.text(max_size=10), "sub": st.text(max_size=10), "nested": JSON,
              "nbf": st.integers(NOW - 10, NOW + 10)})
EDIT = st.one_of(
    st.none(),
    st.tuples(st.just("insert"), st.integers(0, 2000),
              st.sampled_from(["A", "-", "_", "+", "/", "=", ".", " ", "\x00", "é", "\u2028"])),
    st.tuples(st.just("delete"), st.integers(0, 2000), st.integers(1, 3)),
    st.tuples(st.just("segment"), st.integers(0, 2), st.binary(max_size=40)),
    st.tuples(st.just("last"), st.integers(0, 2), st.sampled_from("ABCDEFGHIJKLMNOP")),
)


def _edited(token: str, edit: Any) -> str:
    if edit is None:
        return token
    if edit[0] == "insert":
        at, inserted = edit[1] % (len(token) + 1), str(edit[2])
        return token[:at] + inserted + token[at:]
    if edit[0] == "delete":
        at = edit[1] % len(token)
        return token[:at] + token[at + edit[2]:]
    segments = token.split(".")
    if edit[0] == "segment":  # a segment replaced by other bytes (JSON or not)
        segments[edit[1]] = b64url(edit[2])
    else:  # the last character changed: maybe bits past the last byte
        segments[edit[1]] = segments[edit[1]][:-1] + edit[2]
    return ".".join(segments)


def _answer(verifier: Verifier, token: str) -> Any:
    try:
        verified = verifier.verify(token)
    except TokenError as exc:
        return ("refused", exc.code, str(exc))
    return ("verified", dict(verified.header), verified.claims, verified.issuer)


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    keys = KeyCache(fetch=lambda url: b"{}")
    keys.add_static(GITHUB, jwks(rsa_key()))
    return Verifier(issuers={GITHUB: "github"}, algorithms={"github": ("RS256",)}, keys=keys,
                    clock=lambda: NOW)


@settings(max_examples=300, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(claims=CLAIMS, header=st.dictionaries(st.sampled_from(["typ", "cty", "x"]),
                                             st.text(max_size=4), max_size=2), edit=EDIT)
def test_judged_alike_with_either_reader(verifier: Verifier, claims: dict[str, Any],
                                         header: dict[str, Any], edit: Any,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    token = _edited(rsa_key().sign(claims, **header), edit)
    parts = compact.split(token, 8192, orjson.loads)
    if parts is not None:
        assert parts == split_usual(token, 8192, orjson.loads)
    straight = _answer(verifier, token)  # the straight path in C (`_compact.Usual`)
    with monkeypatch.context() as patch:
        patch.setattr(verifier, "_usual", None)
        patch.setattr(verify, "_split", compact.split)
        with_c = _answer(verifier, token)
        patch.setattr(verify, "_split", split_usual)
        with_python = _answer(verifier, token)
    event(f"{with_c[0]} {with_c[1] if with_c[0] == 'refused' else ''}; "
          f"C parts: {parts is not None}")
    assert json.dumps(with_c, sort_keys=True, default=str) == \
        json.dumps(with_python, sort_keys=True, default=str) == \
        json.dumps(straight, sort_keys=True, default=str)


# Numbers at the edges of what the C test holds exactly (2^52), of 64 bits and past them.
EDGES = [0, 1, -1, 2**52 - 1, 2**52, 2**52 + 1, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), 2**64]
NUMBER = st.one_of(st.integers(NOW - 1000, NOW + 1000), st.sampled_from(EDGES), st.integers(),
                   st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
                   st.just(float(NOW)), st.just(NOW + 0.5))
VALUE = st.one_of(NUMBER, st.text(max_size=3), st.just("pypi"), st.lists(st.just("pypi"),
                                                                          max_size=1))
REGISTERED = st.dictionaries(st.sampled_from(["exp", "iat", "nbf", "aud", "jti", "sub", "x"]),
                             VALUE, max_size=7)


@settings(max_examples=1000, deadline=None)
@given(claims=REGISTERED, now=st.one_of(st.just(NOW), st.just(NOW + 0.25), NUMBER),
       leeway=st.sampled_from([0, 30, 0.5, 30.0, 2**53, 1e300]),
       max_lifetime=st.sampled_from([86400, 86400.0, 0, 2**60, 0.5]),
       audience=st.sampled_from(["pypi", "other"]))
def test_registered_claims_pass_in_c_only_when_they_pass_in_python(
        claims: dict[str, Any], now: Any, leeway: Any, max_lifetime: Any,
        audience: str) -> None:
    """The C test says True only where the Python one does (never lets more through), and
    says the same for the usual claims (within 2^52)."""
    usual = {**claims, "exp": NOW + 300, "iat": NOW, "nbf": NOW, "aud": audience}
    for drawn in (claims, usual):
        in_python = _python_says(drawn, now, leeway, max_lifetime, audience)
        in_c = compact.registered(drawn, now, leeway, max_lifetime, audience)
        assert in_c is False or in_python is True, (drawn, now, leeway, max_lifetime)
        if in_python is True and exact_value(drawn, now, leeway, max_lifetime):
            assert in_c is True, (drawn, now, leeway, max_lifetime)


def _python_says(claims: dict[str, Any], *args: Any) -> bool | str:
    try:
        return registered_usual(claims, *args)
    except TypeError:  # a comparison of a str with a number, say: the verifier refuses it
        return "error"


def exact_value(claims: dict[str, Any], *numbers: Any) -> bool:
    """Whether every number the test reads lies where a double is exact (the C test's
    range): outside it, False is allowed."""
    values = [claims.get(name) for name in ("exp", "iat", "nbf")] + list(numbers)
    return all(v is None or (type(v) in (int, float) and abs(v) <= 2**52) for v in values)


class _PythonStore(MemoryReplayStore):
    claim = _ClaimsInPython.claim  # the Python form, over the C base's


class SameClaimsAsPython(RuleBasedStateMachine):
    """MemoryReplayStore claiming in C and in Python, on one clock: the same answers, the
    same keys held, the same keys listed for the sweep, through sweeps and take-overs."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.c = MemoryReplayStore(clock=self.clock, sweep_every=30)
        self.python = _PythonStore(clock=self.clock, sweep_every=30)

    def clock(self) -> float:
        return self.now

    @rule(key=st.sampled_from(["iss/a", "iss/b", "iss/c", "iss/é", "iss/" + "x" * 300]),
          after=st.integers(-40, 200), fraction=st.sampled_from([0, 0.5]))
    def claim(self, key: str, after: int, fraction: float) -> None:
        expires_at = int(self.now) + after
        assert self.c.claim(key, expires_at) == self.python.claim(key, expires_at)
        if fraction:  # a float expiry goes the checked way in both
            later: Any = expires_at + fraction
            assert self.c.claim(key, later) == self.python.claim(key, later)

    @rule(seconds=st.sampled_from([0, 1, 15, 16, 17, 31, 60, 250]))
    def wait(self, seconds: int) -> None:
        self.now += seconds

    @invariant()
    def same_state(self) -> None:
        assert self.c._keys == self.python._keys
        assert self.c._due == self.python._due
        assert self.c._next_sweep == self.python._next_sweep


TestSameClaimsAsPython = SameClaimsAsPython.TestCase
TestSameClaimsAsPython.settings = settings(max_examples=300, stateful_step_count=40,
                                           deadline=None)


# Flat claims: JSON text of one object of names and values, written with any spacing,
# some values of the shapes the C reader leaves to orjson, some text broken.
_SPACE = st.sampled_from(["", " ", "\t", "\n", "\r\n", "  "])
_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2100), max_size=12)
_PLAIN = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7F), max_size=30)
_NUMBER = st.sampled_from(["0", "-0", "7", "-12", "01", "1.5", "1e3", "-", "123456789012345678",
                           "1234567890123456789", "-999999999999999999", "18446744073709551616"])
_VALUE = st.one_of(
    _PLAIN.map(json.dumps), _PLAIN.map(json.dumps), _NUMBER.filter(lambda n: n.isdigit()),
    _TEXT.map(json.dumps),
    _TEXT.map(lambda t: json.dumps(t, ensure_ascii=False)),
    _NUMBER, st.sampled_from(["true", "false", "null", "tru", "[1]", '{"a":1}', '"\\/"',
                              '"a\\u00e9"', '"\x7f"', '"\x1f"']))


@st.composite
def _flat_text(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):  # all plain: the claims of the usual token
        plain = draw(st.dictionaries(_PLAIN, st.one_of(
            _PLAIN, st.integers(-(10**18) + 1, 10**18 - 1), st.booleans(), st.none()),
            max_size=25))
        separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]))
        return json.dumps(plain, separators=separators).encode()
    names = draw(st.lists(st.one_of(st.sampled_from(["iss", "aud", "jti", "sub"]), _PLAIN,
                                    _TEXT), max_size=8))
    items = [f"{draw(_SPACE)}{json.dumps(name, ensure_ascii=draw(st.booleans()))}"
             f"{draw(_SPACE)}:{draw(_SPACE)}{draw(_VALUE)}{draw(_SPACE)}" for name in names]
    text = f"{draw(_SPACE)}{{{','.join(items)}}}{draw(_SPACE)}"
    if draw(st.integers(0, 19)) == 0:  # broken: cut, or something after the object
        text = draw(st.sampled_from([text[:-1], text + "x", text + "{}", text.replace(":", "", 1)]))
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=2000, deadline=None)
@given(raw=_flat_text())
def test_flat_claims_read_as_orjson_reads_them(raw: bytes) -> None:
    """What the C reader of flat claims gives is what orjson gives: the same keys in the
    same order, values of the same classes; it reads nothing orjson refuses."""
    flat = compact.flat_loads(raw)
    event("read in C" if flat is not None else "left to orjson")
    if flat is None:
        return
    expected = orjson.loads(raw)
    assert list(flat.items()) == list(expected.items())
    assert [type(v) for v in flat.values()] == [type(v) for v in expected.values()]


@pytest.mark.parametrize("stop", ["\\n", "\\\\", "\\u00e9", "é", "\x1f", "\x7f", "\x80"])
def test_flat_strings_end_at_their_first_stop_byte_wherever_it_falls(stop: str) -> None:
    """The C reader finds a string's end eight bytes at a time: a stop byte (an escape, a
    control character, a byte past ASCII) at every position of the eight, in names and
    values, gives what orjson gives (or is left to it); a plain string of every length
    ends at its quote."""
    for length in range(26):
        for at in range(length + 1):
            text = "a" * at + stop + "b" * (length - at)
            for raw in (f'{{"{text}": 1}}', f'{{"name": "{text}", "x": 2}}',
                        f'{{"n": "{"c" * length}"}}'):
                encoded = raw.encode("utf-8", "surrogatepass")
                try:
                    expected = orjson.loads(encoded)
                except orjson.JSONDecodeError:
                    assert compact.flat_loads(encoded) is None
                    continue
                flat = compact.flat_loads(encoded)
                if flat is not None:
                    assert list(flat.items()) == list(expected.items())


def test_names_alike_at_both_ends_are_read_as_themselves() -> None:
    """The names' table finds a slot from a name's first and last eight bytes and its
    length: names alike there (and of one length) are still told apart."""
    names = [f"prefix__{middle}__suffix" for middle in ("aa", "ab", "ba", "zz")] \
        + ["", "a", "ab", "abcdefg", "abcdefgh", "abcdefghi", "x" * 64, "x" * 65]
    for _ in range(3):  # again: the second time from the table
        raw = json.dumps({name: i for i, name in enumerate(names)}).encode()
        flat = compact.flat_loads(raw)
        assert flat is not None and list(flat.items()) == list(orjson.loads(raw).items())
