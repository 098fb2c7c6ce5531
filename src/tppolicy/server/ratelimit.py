"""Rate limiting of mint-token per client address, as PyPI limits token minting.

`RateLimit(30, 60)` lets each address make 30 requests in any 60 seconds (a sliding
window); the next one is told how long to wait (`Retry-After`). The state lives in the
process: replicas limit separately. The address is the TCP peer's: behind a proxy, the
proxy's address (put the limit in the proxy there).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable

_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_SPEC = re.compile(r"^\s*(\d+)\s*(?:/|\s+per\s+)\s*(second|minute|hour|day|\d+(?:\.\d+)?s)"
                   r"\s*$")
MAX_ADDRESSES = 100_000  # past this many tracked addresses, idle ones are forgotten


def parse_rate(text: str) -> tuple[int, float]:
    """`30/minute`, `30 per minute`, `5/10s` -> (count, period in seconds)."""
    match = _SPEC.match(text.lower())
    if match is None:
        raise ValueError(f"expected COUNT/PERIOD such as 30/minute, 100/hour or 5/10s, "
                         f"got {text!r}")
    count, unit = int(match.group(1)), match.group(2)
    period = _UNITS.get(unit) or float(unit[:-1])
    if count <= 0 or period <= 0:
        raise ValueError(f"{text!r}: the count and the period must be positive")
    return count, period


class RateLimit:
    """`count` requests per `period` seconds per address (thread-safe)."""

    def __init__(self, count: int, period: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.count = count
        self.period = period
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        return cls(*parse_rate(text))

    def describe(self) -> str:
        return f"{self.count} per {self.period:g} s"

    def check(self, address: str) -> float | None:
        """None if `address` may go on (the request is counted), else the seconds to
        wait."""
        now = self.clock()
        with self._lock:
            times = self._seen.get(address)
            if times is None:
                if len(self._seen) >= MAX_ADDRESSES:
                    self._forget(now)
                times = self._seen[address] = deque()
            while times and times[0] <= now - self.period:
                times.popleft()
            if len(times) >= self.count:
                return max(0.0, times[0] + self.period - now)
            times.append(now)
            return None

    def _forget(self, now: float) -> None:
        idle = [a for a, t in self._seen.items() if not t or t[-1] <= now - self.period]
        for address in idle:
            del self._seen[address]
        if len(self._seen) >= MAX_ADDRESSES:  # all active: drop the oldest half
            for address in sorted(self._seen, key=lambda a: self._seen[a][-1])[
                    :len(self._seen) // 2]:
                del self._seen[address]


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
