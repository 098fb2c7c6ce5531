"""The ASGI application (Starlette): PyPI's trusted publishing and upload protocol.

| route | what |
|---|---|
| `GET /_/oidc/audience` | `{"audience": ...}` |
| `POST /_/oidc/mint-token` | `{"token": JWT}` → `{"success": true, "token", "expires"}` or 422 |
| `POST /_/oidc/burn-token` | revoke a minted credential (202) |
| `POST /legacy/` | the upload API (twine, uv): multipart form, `__token__` basic auth |
| `GET /simple/`, `/simple/<project>/` | the simple index: PEP 503 HTML or PEP 691 JSON (`Accept`) |
| `GET /files/<project>/<filename>` | the distributions, and `<wheel>.metadata` (PEP 658) |
| `GET /integrity/<project>/<version>/<file>/provenance` | PEP 740 provenance (`attestations.py`) |
| `GET /_/health` | `{"status": "ok"}`, or 503 when the database does not answer |
| `GET /_/metrics` | Prometheus metrics (`metrics.py`) |

The engine and SQLite are synchronous: requests run them in worker threads, so a
slow key refresh never stalls the event loop. The one exception is the usual token
exchange (`MintEndpoint`): decided on the event loop when nothing can block (the key
cached, SQLite never waiting for a lock), its writes grouped with those of the other
exchanges of the same turn of the loop into one transaction (`GroupCommit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, MutableMapping
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from .core import (
    MAX_MINT_BODY,
    Answer,
    FileStoreUnavailable,
    Index,
    PreparedMint,
    upload_error,
)
from .database import DatabaseUnavailable, Unavailable
from .demo import TOKEN_PATH as DEMO_TOKEN_PATH
from .demo import Demo
from .forms import InvalidForm, read_form
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .ratelimit import retry_after
from .simple import negotiate, not_acceptable_body
from .storage import normalize

log = logging.getLogger("tppolicy.server")

REASON_HEADER = "x-tppolicy-reason"  # becomes the reason phrase (protocol.py), then dropped
REASON_EXTENSION = "tppolicy.reason-phrase"  # a server that consumes the header says so

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def respond(answer: Answer) -> Response:
    headers = {}
    if answer.reason:
        headers[REASON_HEADER] = _header_safe(answer.reason)
    if isinstance(answer.body, str):
        return PlainTextResponse(answer.body, answer.status, headers=headers)
    return JSONResponse(answer.body, answer.status, headers=headers)


def _header_safe(text: str, limit: int = 400) -> str:
    safe = "".join(c if " " <= c <= "~" else "?" for c in text)
    return safe[:limit]


class BodyTooLarge(Exception):
    pass


class BodyTooSlow(Exception):
    """No part of the request body came for `BODY_IDLE_TIMEOUT` seconds: 408."""


# Seconds the server waits for the next part of a request body. A client that stopped
# sending (or sends a byte now and then: "slowloris") held its request, a connection and
# for an upload a spooled file, for ever.
BODY_IDLE_TIMEOUT = 30.0


async def _next_part(receive: Receive) -> Message:
    """The next ASGI message of a request whose body is not complete yet; `BodyTooSlow`
    if none comes within `BODY_IDLE_TIMEOUT` seconds."""
    try:
        return await asyncio.wait_for(receive(), BODY_IDLE_TIMEOUT)
    except TimeoutError:
        raise BodyTooSlow from None


async def _body_too_slow(request: Request, exc: Exception) -> Response:
    log.info("%s %s: the request body stopped coming (%.0f s): 408", request.method,
             request.url.path, BODY_IDLE_TIMEOUT)
    return JSONResponse({"message": f"408 Request Timeout: no part of the request body "
                         f"came for {BODY_IDLE_TIMEOUT:.0f} s"}, 408,
                        headers={"connection": "close"})


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None past `limit` bytes (read no further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(index: Index, *, reload: bool = True, demo: Demo | None = None) -> Starlette:
    """The server for one `Index`; with `reload`, publishers changed in the database
    by another process are picked up every `index.reload_interval` seconds; with
    `demo`, the demo's test issuer answers at `/_/demo/token` (NOT FOR PRODUCTION)."""

    async def audience(request: Request) -> Response:
        return respond(index.audience())

    mint_token = MintEndpoint(index)

    async def burn_token(request: Request) -> Response:
        body = await _read_body(request, MAX_MINT_BODY) or b""
        return respond(await run_in_threadpool(index.burn, body))

    async def upload(request: Request) -> Response:
        started = time.perf_counter()
        try:
            return await _upload(request)
        finally:
            index.metrics.upload_seconds.observe(time.perf_counter() - started)

    async def _upload(request: Request) -> Response:
        credential = await run_in_threadpool(index.authenticate,
                                             request.headers.get("authorization"))
        if isinstance(credential, Answer):
            return respond(credential)

        def refuse(status: int, message: str, filename: str | None = None) -> Response:
            index.refused_upload(status, message, credential.publisher, filename)
            return respond(upload_error(status, message))

        too_large = f"File too large: the limit is {index.max_upload_bytes} bytes"
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > index.max_upload_bytes + 1024 * 1024:
            return refuse(413, too_large)
        try:
            form = await read_form(request, max_files=1, max_fields=200)
        except InvalidForm as exc:
            return refuse(400, f"Invalid upload form: {exc.message}")
        except BodyTooLarge:
            return refuse(413, too_large)
        try:
            content = form.get("content")
            if not isinstance(content, UploadFile) or not content.filename:
                return refuse(400, "Upload payload does not have a file ('content')")
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            answer = await run_in_threadpool(index.upload, credential, fields, content.file,
                                             content.filename)
            return respond(answer)
        finally:
            await form.close()

    async def provenance(request: Request) -> Response:
        params = request.path_params
        text = await run_in_threadpool(index.provenance, params["project"], params["version"],
                                       params["filename"])
        if text is None:
            return JSONResponse({"message": "404 Not Found: no provenance for this file"}, 404)
        return Response(text, 200, media_type="application/vnd.pypi.integrity.v1+json")

    async def health(request: Request) -> Response:
        problem = await run_in_threadpool(index.health)
        if problem is not None:
            return JSONResponse({"status": "unavailable", "problem": problem}, 503)
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        return Response(index.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    async def simple_root(request: Request) -> Response:
        choice = negotiate(request.headers.get("accept"))
        if choice.media_type is None:
            return _not_acceptable()
        page = await run_in_threadpool(index.simple_root, choice.is_json)
        return _simple_page(page, choice.media_type)

    async def simple_project(request: Request) -> Response:
        project = request.path_params["project"]
        if normalize(project) != project:  # PEP 503: redirect to the normalized name
            return RedirectResponse(f"/simple/{normalize(project)}/", 301,
                                    headers={"Vary": "Accept"})
        choice = negotiate(request.headers.get("accept"))
        if choice.media_type is None:
            return _not_acceptable()
        page = await run_in_threadpool(index.simple_project, project, choice.is_json)
        if page is None:
            if choice.is_json:
                return JSONResponse({"message": f"404 Not Found: no project {project!r}"},
                                    404, headers={"Vary": "Accept"})
            return HTMLResponse("<html><body>404 Not Found</body></html>", 404,
                                headers={"Vary": "Accept"})
        return _simple_page(page, choice.media_type)

    async def download(request: Request) -> Response:
        path = await run_in_threadpool(index.file_path, request.path_params["project"],
                                       request.path_params["filename"])
        if path is None:
            return PlainTextResponse("404 Not Found", 404)
        return FileResponse(path, media_type="application/octet-stream")

    async def demo_token(request: Request) -> Response:
        assert demo is not None
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return JSONResponse({"message": "send Authorization: bearer <anything> (the "
                                 "demo's ACTIONS_ID_TOKEN_REQUEST_TOKEN)"}, 401)
        audience = request.query_params.get("audience")
        if not audience:
            return JSONResponse({"message": "audience: query parameter required"}, 400)
        changes = {k: v for k, v in request.query_params.items()
                   if k not in ("audience", "api-version")}
        token = await run_in_threadpool(demo.token, audience, changes)
        log.warning("demo issuer: signed a test token for %s (NOT FOR PRODUCTION)",
                    demo.claims.get("repository"), extra={"event": "demo-token"})
        return JSONResponse({"value": token, "count": 1})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(_follow(index, stop)) if reload else None
        if task is not None:
            await asyncio.sleep(0)  # the follower claims an overdue check before any request
        stop_listening = threading.Event()
        if reload:
            index.listen(stop_listening)
        try:
            yield
        finally:
            stop_listening.set()
            stop.set()
            if task is not None:
                # Not cancelled: a reload running in a worker thread finishes before the
                # storage is closed (closing a SQLite connection another thread is using
                # crashed the process). Bounded: past it, `Storage.close` waits again,
                # and leaves the database open rather than close it under the thread.
                await _finish((task,), DRAIN_WAIT, "a reload of the publishers")
            await mint_token.group.drain()  # the same for a purge or a checkpoint

    routes = [
        Route("/_/oidc/audience", audience, methods=["GET"]),
        Route("/_/oidc/mint-token", mint_token, methods=["POST"]),
        Route("/_/oidc/github/mint-token", mint_token, methods=["POST"]),
        Route("/_/oidc/burn-token", burn_token, methods=["POST"]),
        Route("/legacy/", upload, methods=["POST"]),
        Route("/legacy", upload, methods=["POST"]),
        Route("/simple/", simple_root, methods=["GET", "HEAD"]),
        Route("/simple/{project}/", simple_project, methods=["GET", "HEAD"]),
        Route("/files/{project}/{filename}", download, methods=["GET", "HEAD"]),
        Route("/integrity/{project}/{version}/{filename}/provenance", provenance,
              methods=["GET", "HEAD"]),
        Route("/_/health", health, methods=["GET", "HEAD"]),
        Route("/_/metrics", metrics, methods=["GET"]),
    ]
    if demo is not None:
        routes.append(Route(DEMO_TOKEN_PATH, demo_token, methods=["GET"]))
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={DatabaseUnavailable: _database_unavailable,
                                        FileStoreUnavailable: _file_store_unavailable,
                                        BodyTooSlow: _body_too_slow})
    app.add_middleware(BodyLimit, limit=index.max_upload_bytes + 1024 * 1024)
    app.add_middleware(ReasonHeader)
    app.add_middleware(MintFirst, endpoint=mint_token)
    return app


MINT_PATHS = frozenset(("/_/oidc/mint-token", "/_/oidc/github/mint-token"))


class MintFirst:
    """`POST` to a mint-token path goes straight to its endpoint (`MintEndpoint` does
    what the inner layers would: the body limit, the reason-phrase header, every
    error answered), past the other middleware and the router; any other request, and
    other methods on those paths (405), take the usual way."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 endpoint: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            root = scope.get("root_path") or ""
            if root and path.startswith(root):
                path = path[len(root):]
            if path in MINT_PATHS:
                await self.endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


# Exchanges stored by group commit between two checkpoints: about 3 000 pages of log
# (10 MB). A checkpoint's fixed costs (two disk syncs, the hand-off, the log started
# again) shared by four times more exchanges than at 256: mint-token 0.235 vs 0.240 and
# 0.245 ms of server CPU (bench_server.py, two interleaved pairs, load 7). A power loss
# (not a killed process) may lose what was committed since the last sync of the log.
CHECKPOINT_EVERY = 1024
# At most how long groups wait for a checkpoint (s), see `GroupCommit`.
CHECKPOINT_HOLD = 0.5
# At shutdown, how long the lifespan waits for a reload, a purge, a checkpoint under way
# in worker threads (then `serve` waits again, as long, before closing the database).
DRAIN_WAIT = 5.0


async def _finish(tasks: Collection[asyncio.Task[None]], wait: float, what: str) -> None:
    """Wait at most `wait` seconds for `tasks` (never cancelled: their worker threads
    would run on); log what is still under way after that."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=wait)
    if pending:
        log.warning("shutdown: %s still under way after %.1f s", what, wait)


class GroupCommit:
    """Exchanges decided on the event loop (`Index.prepare_at_once`) are stored together:
    those prepared during one turn of the loop wait for one transaction, run as the
    next turn begins (`Index.commit_at_once`), and each is answered only after that
    commit. If the group cannot be stored at once (the database busy, any failure),
    nothing of it was, and each exchange is made again by `Index.mint` in a worker
    thread.

    While a worker thread checkpoints the log (every `CHECKPOINT_EVERY` exchanges),
    groups wait (at most `CHECKPOINT_HOLD` seconds) and are stored together once it is
    done: a checkpoint copies the log up to where it was when it began, and SQLite
    starts the log again only once all of it was copied, so a checkpoint racing with
    the loop's writes never ended the log and it grew without bound (116 MB after
    15 000 exchanges of bench_server.py, each write extending the file and each page
    read searching a longer index of the log)."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self._group: list[tuple[PreparedMint, asyncio.Future[Answer | None]]] = []
        self._purging: asyncio.Task[None] | None = None
        self._checkpointing: asyncio.Task[None] | None = None
        self._since_checkpoint = 0  # exchanges stored since the last checkpoint began
        self._held = False  # groups wait for the checkpoint under way

    async def mint(self, body: bytes) -> Answer:
        """The answer to one exchange."""
        index = self.index
        prepared = index.prepare_at_once(body)
        if isinstance(prepared, PreparedMint):
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[Answer | None] = loop.create_future()
            if not self._group and not self._held:
                loop.call_soon(self._commit)
            self._group.append((prepared, waiter))
            prepared = await waiter
        if prepared is None:
            return await run_in_threadpool(index.mint, body)
        return prepared

    def _commit(self) -> None:
        # A request cancelled meanwhile (its client left, the server stopping past its
        # grace period) will not be answered: nothing of it is stored.
        group = [(prepared, waiter) for prepared, waiter in self._group if not waiter.done()]
        self._group = []
        if not group:
            return
        answers: list[Answer | None]
        try:
            answers = list(self.index.commit_at_once([prepared for prepared, _ in group]))
        except Exception as exc:  # nothing stored: each is made again in a worker thread
            if not isinstance(exc, sqlite3.OperationalError):
                log.warning("group commit of %d token exchanges failed (%s: %s); each "
                            "is made again alone", len(group), type(exc).__name__, exc)
            answers = [None] * len(group)
        for (_, waiter), answer in zip(group, answers, strict=True):
            waiter.set_result(answer)  # nothing awaited ran since the check above
        if self._purging is None and self.index.purge_due():
            # Deleting a minute of expired rows takes a while: not on the event loop.
            self._purging = asyncio.get_running_loop().create_task(self._purge())
        self._since_checkpoint += len(group)
        if self._since_checkpoint >= CHECKPOINT_EVERY and self._checkpointing is None:
            # The event loop's connection does not checkpoint (it syncs the disk): a
            # worker thread does (see CHECKPOINT_EVERY).
            self._since_checkpoint = 0
            self._held = True
            self._checkpointing = asyncio.get_running_loop().create_task(self._checkpoint())

    async def drain(self, wait: float | None = None) -> None:
        """Wait for the purge and the checkpoint under way in worker threads, if any
        (before the storage is closed), at most `wait` seconds (`DRAIN_WAIT`)."""
        tasks = [task for task in (self._purging, self._checkpointing) if task is not None]
        await _finish(tasks, DRAIN_WAIT if wait is None else wait,
                      "a purge or a checkpoint of the database")

    async def _checkpoint(self) -> None:
        # Past the bound (a slow disk) the groups are stored again meanwhile (the log
        # then grows until a later checkpoint finishes with nothing written meanwhile).
        bound = asyncio.get_running_loop().call_later(CHECKPOINT_HOLD, self._release)
        try:
            await run_in_threadpool(self.index.storage.database.checkpoint)
        except Exception as exc:  # tried again later
            log.warning("cannot checkpoint the database: %s", exc)
        finally:
            bound.cancel()
            self._checkpointing = None
            self._release()

    def _release(self) -> None:
        """The groups held during a checkpoint are stored (at the next turn)."""
        if self._held:
            self._held = False
            if self._group:
                asyncio.get_running_loop().call_soon(self._commit)

    async def _purge(self) -> None:
        try:
            await run_in_threadpool(self.index.purge_expired)
        except Exception as exc:  # tried again at the next group
            log.warning("cannot purge expired credentials and token ids: %s", exc)
        finally:
            self._purging = None


class MintEndpoint:
    """`POST /_/oidc/mint-token` as a bare ASGI endpoint: the body read from `receive`
    (at most `MAX_MINT_BODY` bytes), the usual exchange decided on the event loop and
    stored by group commit (`GroupCommit`), anything else by `Index.mint` in a worker
    thread, the JSON answer sent in two messages. It is the hot path of trusted
    publishing, so it builds no Request or Response objects."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.group = GroupCommit(index)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        index = self.index
        started = time.perf_counter()
        try:
            if index.mint_limit is not None:
                client = scope.get("client")
                address = str(client[0]) if client else "unknown"
                wait = index.mint_limit.check(address)
                if wait is not None:
                    index.metrics.rate_limited.inc()
                    log.info("mint-token rate limited: %s", address,
                             extra={"event": "mint", "code": "rate-limited",
                                    "client": address})
                    await _send_json(send, 429, {"message": "Token request failed", "errors": [
                        {"code": "rate-limited", "description": f"too many token requests "
                         f"from {address}: the limit is {index.mint_limit.describe()}; retry "
                         f"in {retry_after(wait)} s"}]},
                        ((b"retry-after", retry_after(wait).encode()),))
                    return
            # No deadline here (a timer a request costs 2-20 us on the hot path): under
            # `tppolicy serve` the protocol closes a connection whose body stops coming
            # (`protocol.BODY_TIMEOUT`), and `receive` then says the client left.
            body = await _receive_body(receive, MAX_MINT_BODY)
            if body is None:  # the client went away
                return
            try:
                answer = await self.group.mint(body)
            except Exception as exc:  # the replay store (Redis) or the database is down
                if isinstance(exc, Unavailable):  # an outage: one line, no traceback
                    log.warning("mint-token failed: %s", exc)
                else:
                    log.exception("mint-token failed")
                index.metrics.decision("server-error", None)
                await _send_json(send, 503, {"message": "Token request failed", "errors": [
                    {"code": "server-error", "description": f"the index cannot mint now "
                     f"({type(exc).__name__}); try again"}]})
                return
            extra: tuple[tuple[bytes, bytes], ...] = ()
            if answer.reason and REASON_EXTENSION in (scope.get("extensions") or {}):
                extra = ((REASON_HEADER.encode(), _header_safe(answer.reason).encode()),)
            await _send_json(send, answer.status, answer.body, extra)
        finally:
            index.metrics.mint_seconds.observe(time.perf_counter() - started)


async def _receive_body(receive: Receive, limit: int) -> bytes | None:
    """A request's body from ASGI messages; past `limit` bytes, `limit + 1` bytes (so
    the index refuses it as too large) and no more is read. None: the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b" " * (limit + 1)
        if not message.get("more_body", False):
            if not chunks:
                return bytes(chunk)
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


async def _send_json(send: Send, status: int, body: Any,
                     extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """`body` as JSON, as Starlette's JSONResponse renders it (compact UTF-8)."""
    try:
        content = orjson.dumps(body)
    except TypeError:  # text orjson will not write (a lone surrogate): escaped instead
        content = json.dumps(body, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(content)).encode()),
                            (b"content-type", b"application/json"), *extra]})
    await send({"type": "http.response.body", "body": content})


def _simple_page(page: str | dict[str, Any], media_type: str) -> Response:
    headers = {"Vary": "Accept"}
    if isinstance(page, dict):
        return Response(json.dumps(page, separators=(",", ":")), 200, headers=headers,
                        media_type=media_type)
    return HTMLResponse(page, 200, headers=headers, media_type=media_type)


def _not_acceptable() -> Response:
    return PlainTextResponse(not_acceptable_body(), 406, headers={"Vary": "Accept"})


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """The database is down or restarting (PostgreSQL): 503, retry later."""
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return respond(upload_error(503, "The index's database is unavailable; try again "
                                "in a moment"))


async def _file_store_unavailable(request: Request, exc: Exception) -> Response:
    """The file store cannot be written: 503, retry later (the path stays in the log)."""
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return respond(upload_error(503, "The index cannot store files now; try again later"))


# How long before its deadline the follower claims a check of the publishers (at most a
# quarter of the interval): longer than the event loop and a worker thread take to start it.
FOLLOW_LEAD = 0.25


async def _follow(index: Index, stop: asyncio.Event) -> None:
    """Reload publishers changed by other processes every `reload_interval` seconds,
    until `stop` is set (a reload under way is finished, never abandoned).

    Each check is claimed on the event loop (`Index.claim_sync`) a little ahead of its
    deadline, or by the first exchange that finds it due (`Index.on_check_due`), and then
    run in a worker thread; the next is timed from that claim, not from the end of the
    check. The fast path thus never finds the deadline passed while a check is on its
    way: waiting `reload_interval` after the last check ended left such a gap every
    interval, and the exchanges arriving in it took the worker threads (so did all those
    of a busy loop, whose timers and threads start late). A check still running at the
    next deadline is waited for, not doubled (the exchanges then take the worker threads,
    which wait for the reload: never served older publishers)."""
    lead = min(index.reload_interval / 4, FOLLOW_LEAD)
    checking: asyncio.Task[None] | None = None
    loop = asyncio.get_running_loop()

    def start() -> None:
        nonlocal checking
        checking = loop.create_task(_check(index))

    stopping = asyncio.ensure_future(stop.wait())
    index.on_check_due = start
    try:
        while not stop.is_set():
            # Claimed before the first wait: a server that took longer than the interval
            # to start checks before its first exchange (the lifespan lets this run).
            if index.claim_sync(lead):
                start()
            waits: set[asyncio.Future[Any]] = {stopping}
            if checking is not None and not checking.done():
                waits.add(checking)
            await asyncio.wait(waits, timeout=max(0.001, index.sync_due_in() - lead),
                               return_when=asyncio.FIRST_COMPLETED)
    finally:
        index.on_check_due = None
        stopping.cancel()
        if checking is not None:
            await checking


async def _check(index: Index) -> None:
    """One check of the publishers claimed by `Index.claim_sync`, in a worker thread."""
    try:
        await run_in_threadpool(index.sync, claimed=True)
    except DatabaseUnavailable as exc:
        log.warning("cannot reload the publishers: %s", exc)
    except Exception:
        log.exception("cannot reload the publishers")
    finally:
        index.release_sync()


class ReasonHeader:
    """The reason-phrase header leaves the app only for a server that advertises
    (`REASON_EXTENSION` in the scope) that it turns it into the status line; for any
    other ASGI server it is dropped here, and the message stays in the JSON body."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or REASON_EXTENSION in (scope.get("extensions") or {}):
            await self.app(scope, receive, send)
            return
        private = REASON_HEADER.encode()

        async def without(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [(k, v) for k, v in message.get("headers", ())
                                      if k.lower() != private]
            await send(message)

        await self.app(scope, receive, without)


class BodyLimit:
    """Requests bodies are cut at `limit` bytes: reading past it raises `BodyTooLarge`
    in the endpoint (which answers 413) instead of spooling a huge body to disk."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = 0
        complete = False

        async def limited() -> Message:
            nonlocal seen, complete
            # Once the body is complete, `receive` only waits for the client to leave
            # (a response streaming a file listens for it): no deadline then.
            message = await (receive() if complete else _next_part(receive))
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited, send)
