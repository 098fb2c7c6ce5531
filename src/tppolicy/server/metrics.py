"""Prometheus metrics of one index (`GET /_/metrics`), each app its own registry.

| metric | labels | what |
|---|---|---|
| `tppolicy_decisions_total` | `code`, `provider` | token exchanges: `allowed` or PyPI's code (1) |
| `tppolicy_uploads_total` | `status` | uploads by HTTP status |
| `tppolicy_key_fetch_failures_total` | `issuer` | failed refreshes of an issuer's keys |
| `tppolicy_rate_limited_total` | | mint-token requests refused with 429 |
| `tppolicy_mint_seconds` | | histogram: mint-token latency, body read to answer |
| `tppolicy_upload_seconds` | | histogram: upload latency, body read to answer |

(1) `provider` is the publisher's provider, else the token issuer's, else `unknown`.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0)


class KeyFailures:
    """Failed key refreshes per issuer (thread-safe), kept by the key cache and read
    by the metrics at scrape time."""

    def __init__(self) -> None:
        self._counts: Tally[str] = Tally()
        self._lock = threading.Lock()

    def add(self, issuer: str) -> None:
        with self._lock:
            self._counts[issuer] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class _KeyFailureCollector(Collector):
    def __init__(self, failures: KeyFailures) -> None:
        self.failures = failures

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("tppolicy_key_fetch_failures",
                                     "Failed refreshes of an issuer's signing keys",
                                     labels=["issuer"])
        for issuer, count in sorted(self.failures.snapshot().items()):
            family.add_metric([issuer], count)
        yield family


class Metrics:
    """The counters and histograms of one index."""

    def __init__(self, key_failures: KeyFailures | None = None) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter("tppolicy_decisions", "Token exchanges by outcome code and "
                                 "provider", ["code", "provider"], registry=self.registry)
        self.uploads = Counter("tppolicy_uploads", "Uploads by HTTP status", ["status"],
                               registry=self.registry)
        self.rate_limited = Counter("tppolicy_rate_limited", "mint-token requests refused "
                                    "by the rate limit", registry=self.registry)
        self.mint_seconds = Histogram("tppolicy_mint_seconds", "mint-token latency",
                                      buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.upload_seconds = Histogram("tppolicy_upload_seconds", "Upload latency",
                                        buckets=_LATENCY_BUCKETS, registry=self.registry)
        self._decision_counters: dict[tuple[str, str | None], Counter] = {}
        self.key_failures = key_failures or KeyFailures()
        self.registry.register(_KeyFailureCollector(self.key_failures))

    def decision(self, code: str, provider: str | None) -> None:
        key = (code, provider)
        counter = self._decision_counters.get(key)
        if counter is None:  # labels() is kept: a few microseconds a token exchange
            counter = self.decisions.labels(code=code, provider=provider or "unknown")
            self._decision_counters[key] = counter
        counter.inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
