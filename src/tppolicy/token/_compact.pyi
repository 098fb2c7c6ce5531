"""The usual compact JWT taken apart in one call (C, `_compact.c`; see `split_usual`)."""

from collections.abc import Callable
from typing import Any

def split(token: object, max_bytes: int, loads: Callable[[bytes], Any],
          /) -> tuple[str, bytes, Any, bytes, int] | None: ...
def registered(claims: dict[str, Any], now: float, leeway: float, max_lifetime: float,
               audience: str, /) -> bool: ...
