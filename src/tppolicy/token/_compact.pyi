"""tppolicy's token path in C (`_compact.c`): the compact JWT reader (see `split_usual`), the
registered claims' test (`registered_usual`) and MemoryReplayStore's claim (`Claims`)."""

from collections.abc import Callable
from typing import Any

SLOT_SECONDS: int

def split(token: object, max_bytes: int, loads: Callable[[bytes], Any],
          /) -> tuple[str, bytes, Any, bytes, int] | None: ...
def registered(claims: dict[str, Any], now: float, leeway: float, max_lifetime: float,
               audience: str, /) -> bool: ...

class Claims:
    _keys: dict[str, tuple[int]]
    _due: dict[int, list[str]]
    _clock: Callable[[], float]
    _next_sweep: float
    def claim(self, key: str, expires_at: int, /) -> bool: ...
