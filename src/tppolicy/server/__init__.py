"""A reference index server with trusted publishing (`tppolicy serve`, extra
`tppolicy[server]`): PyPI's token exchange and upload API, a PEP 503 simple index,
state in SQLite, optionally Redis for several replicas.

    from tppolicy.server import Settings, build_index, create_app

    index = build_index(Settings(db="index.db", jwks={ISSUER: "jwks.json"}))
    app = create_app(index)          # any ASGI server; `tppolicy serve` runs uvicorn
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .auth import CREDENTIAL_TTL, RedisReplayStore, ServerKeyCache, redis_client
from .core import DEFAULT_MAX_UPLOAD, Index
from .storage import SQLiteJtiStore, Storage

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from .demo import Demo

__all__ = ["Index", "RedisReplayStore", "ServerKeyCache", "Settings", "Storage", "build_index",
           "create_app", "serve"]

log = logging.getLogger("tppolicy.server")


@dataclass
class Settings:
    """What `build_index` makes an index of: the options of `tppolicy serve` (docs/server.md),
    with the same defaults: the database (a SQLite file or a PostgreSQL URL), the files
    folder, the audience, JWKS sources per issuer, Redis for replicas, custom issuers and
    provider files, the decision records, credential lifetime, upload size, reload
    interval, mint rate limit and where publishers are looked up (`memory` or `sql`)."""

    db: str | os.PathLike[str] = "tppolicy-index.db"
    files: str | os.PathLike[str] | None = None
    audience: str = "pypi"
    jwks: Mapping[str, str] = field(default_factory=dict)  # issuer -> JWKS file or https URL
    jwks_cooldown: float = 60.0
    fetch_timeout: float = 5.0
    redis: str | None = None  # redis://host:port/db: replay set and key cache shared
    issuers: Mapping[str, str] = field(default_factory=dict)  # custom issuer -> provider
    providers: tuple[str, ...] = ()
    record: str | None = None  # decision records, one JSON line each
    credential_ttl: float = CREDENTIAL_TTL
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    reload_interval: float = 2.0
    mint_rate_limit: str | None = None  # "30/minute": mint-token per client address
    # "memory": each process holds every publisher (reloaded on change); "sql": the
    # engine looks publishers up in the database per token (SqlPublisherLookup)
    lookup: str = "memory"


def build_index(settings: Settings) -> Index:
    """The storage, the engine (keys, replay store, records) and the index."""
    from tppolicy.decide.engine import Engine, JsonLinesSink
    from tppolicy.language.providers import load_providers
    from tppolicy.token.keys import HttpFetcher
    from tppolicy.token.replay import ReplayStore

    from .lookup import SqlPublisherLookup, key_rows
    from .metrics import Metrics
    from .ratelimit import RateLimit

    storage = Storage(settings.db, settings.files)
    client = redis_client(settings.redis) if settings.redis else None
    keys = ServerKeyCache(sources=settings.jwks, redis=client, cooldown=settings.jwks_cooldown,
                          fetch=HttpFetcher(timeout=settings.fetch_timeout))
    replay: ReplayStore = RedisReplayStore(client, storage=storage) if client is not None else \
        SQLiteJtiStore(storage)
    providers = load_providers(list(settings.providers))
    engine = Engine(audience=settings.audience, keys=keys, replay=replay,
                    issuers=settings.issuers,
                    providers=providers,
                    projects=storage,
                    records=JsonLinesSink(settings.record) if settings.record else None,
                    lookup=SqlPublisherLookup(storage) if settings.lookup == "sql" else None,
                    replay_errors="raise")  # an outage of the replay store: 503
    if settings.lookup == "sql":
        key_rows(storage, engine)
    elif settings.lookup != "memory":
        raise ValueError(f"lookup {settings.lookup!r}: memory or sql")
    metrics = Metrics()
    keys.on_failure = lambda issuer, error: metrics.key_failures.add(issuer)
    index = Index(storage, engine, credential_ttl=settings.credential_ttl,
                  max_upload_bytes=settings.max_upload_bytes,
                  reload_interval=settings.reload_interval, metrics=metrics,
                  providers=providers)
    if settings.mint_rate_limit:
        index.mint_limit = RateLimit.parse(settings.mint_rate_limit)
    return index


def create_app(index: Index, *, reload: bool = True, demo: Demo | None = None) -> Starlette:
    """The ASGI app (Starlette) serving `index`, for any ASGI server; with `reload`,
    publishers changed in the database by another process are picked up every
    `index.reload_interval` seconds. `demo` is for `tppolicy serve --demo` only."""
    from .app import create_app as create

    return create(index, reload=reload, demo=demo)


def serve(index: Index, *, host: str = "127.0.0.1", port: int = 8000,
          ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
          log_level: str = "info", log_format: str = "text", access_log: bool = True,
          announce: Any = None, demo: Demo | None = None) -> bool:
    """Run the index with uvicorn (one process, one event loop) until interrupted.

    The socket is bound first, so `port=0` picks a free port; the URL is printed on
    standard output (and given to `announce`) once the socket listens. Logs go to
    standard error: uvicorn's and the index's, at `log_level`, as `log_format` (text or
    json: `logs.py`)."""
    import uvicorn

    from .logs import logging_config
    from .protocol import ReasonH11Protocol

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say TCP;
    # with Nagle on, a keep-alive client waits for delayed ACKs (~40 ms a request).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    bound = sock.getsockname()[1]
    scheme = "https" if ssl_certfile else "http"
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    url = f"{scheme}://{shown}:{bound}"
    config = uvicorn.Config(create_app(index, demo=demo), http=ReasonH11Protocol,
                            log_level=log_level,
                            log_config=logging_config(log_level, log_format),
                            access_log=access_log, ssl_certfile=ssl_certfile,
                            ssl_keyfile=ssl_keyfile, lifespan="on", timeout_graceful_shutdown=5,
                            server_header=False)
    server = uvicorn.Server(config)
    print(f"tppolicy serve: listening on {url} (upload URL {url}/legacy/, index "
          f"{url}/simple/)", flush=True)
    if announce is not None:
        announce(url)
    # What start-up built (the publishers, compiled rules, modules) lives as long as the
    # server: out of the collector's generations, a collection no longer walks it
    # (measured: 5% of a mint's CPU with 100 000 publishers).
    gc.freeze()
    try:
        with _stop_signals_handled():
            server.run(sockets=[sock])
    finally:
        sock.close()
        close_storage(index)
    return bool(server.started)


@contextlib.contextmanager
def _stop_signals_handled() -> Iterator[None]:
    """uvicorn stops gracefully on SIGTERM or SIGINT, then raises the signal again for
    the handler it found: the default one would kill the process (SIGTERM) or raise
    KeyboardInterrupt (SIGINT) before the database is closed. The handlers it finds
    are these, which do nothing: the stop asked for is done, `serve` returns."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = (signal.SIGTERM, signal.SIGINT)
    previous = {number: signal.signal(number, _stopped) for number in stops}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _stopped(number: int, frame: Any) -> None:
    """A stop signal seen again once uvicorn has stopped (see `_stop_signals_handled`)."""


CLOSE_WAIT = 5.0  # after the lifespan's own wait (app.DRAIN_WAIT)


def close_storage(index: Index, wait: float = CLOSE_WAIT) -> bool:
    """Close the index's database once no worker thread uses it (uvicorn stopped taking
    requests and waited for those under way; the lifespan for reloads, purges and
    checkpoints). A thread still at work after `wait` seconds (one whose request was
    cancelled past the grace period) keeps the database open: logged, and the process
    exits without closing it; what it had not committed is not (SQLite's write-ahead
    log, PostgreSQL's sessions recover)."""
    if index.storage.close(wait):
        return True
    log.error("shutdown: a worker thread still uses the database after %.1f s: it is "
              "left open (nothing it has not committed will be); exiting", wait,
              extra={"event": "shutdown"})
    return False
