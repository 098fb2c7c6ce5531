"""tppolicy's token path in C (`_compact.c`): the compact JWT reader (see `split_usual`), the
registered claims' test (`registered_usual`), `Verifier.verify`'s straight path (`Usual`) and
MemoryReplayStore's claim (`Claims`)."""

from collections.abc import Callable
from typing import Any

SLOT_SECONDS: int

def split(token: object, max_bytes: int, loads: Callable[[bytes], Any],
          /) -> tuple[str, bytes, Any, bytes, int] | None: ...
def flat_loads(raw: bytes, /) -> dict[str, Any] | None: ...
def registered(claims: dict[str, Any], now: float, leeway: float, max_lifetime: float,
               audience: str, /) -> bool: ...

class Claims:
    _keys: dict[str, tuple[int]]
    _due: dict[int, list[str]]
    _clock: Callable[[], float]
    _next_sweep: float
    def claim(self, key: str, expires_at: int, /) -> bool: ...

class Usual:
    def __init__(self, max_bytes: int, max_nesting: int, flat: bool,
                 loads: Callable[[bytes], Any],
                 headers: dict[str, Any], issuers: dict[str, str],
                 algorithms: dict[str, frozenset[str]], held: dict[str, Any] | None,
                 get_key: Callable[[str, str], Any],
                 padding: Any, invalid: type[BaseException], clock: Callable[[], float],
                 leeway: float, max_lifetime: float, audience: str,
                 refuse_signature: Callable[[str], None],
                 refuse_claims: Callable[[dict[str, Any], float], None],
                 verified: type[tuple[Any, ...]], /) -> None: ...
    def verify(self, token: object, /) -> Any: ...
