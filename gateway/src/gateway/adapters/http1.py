"""The proxy's HTTP/1.1 client: a keep-alive connection pool per service on asyncio protocols, with
httptools' response parser (llhttp, the C parser uvicorn uses for the same protocol on the server side).

Why not httpx on this path: httpx, httpcore, h11 and anyio together spent 1.4-1.8 ms of CPU per proxied GET
on the 2-core VM (request and URL models, cookie jar, cancel scopes, h11's pure-Python state machine);
this client spends under 0.1 ms on the same exchange, which was most of the gateway's own cost per request
(``make bench-gateway``). httpx stays for the gateway's other, rare calls (the services' OpenAPI documents).

What it does, and what it deliberately does not:

- One pool per service (``scheme://host:port``): at most ``max_connections`` open; idle connections kept
  (at most ``max_keepalive``, most recently used first) for ``keepalive_expiry`` seconds, shorter than the
  services' own keep-alive (75 s, ``utilis_shared.runner``) so a connection the service is closing is never
  picked; a caller waits ``pool_timeout`` for a free connection.
- Timeouts as httpx has them: ``connect``; ``read``, the longest silence while an answer is awaited;
  ``write``, only when the socket's buffer is full (flow control).
- One request at a time per connection (no pipelining); the whole request (head and body) in one write;
  the whole answer read into memory (the proxy's answers are small JSON documents). Bodies are framed by
  ``Content-Length``, chunked, or the connection's end, as the parser finds them; informational (1xx)
  answers are skipped; an answer to ``HEAD`` ends with its headers. A connection is reused only after a
  complete answer that allows it (HTTP/1.1 without ``Connection: close``); anything unusual (a parse
  error, a cancelled request, a timeout, bytes nobody asked for) closes it.
- No redirects, cookies, proxies from the environment, content decoding or protocol upgrades: a proxy
  passes the service's bytes and headers on as they are.

Every failure is a :class:`TransportError` that says whether the request may have reached the service
(``reached``), which is what decides whether a retry is safe.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httptools

Kind = Literal["connect", "pool", "write", "read", "protocol"]


class TransportError(Exception):
    """``connect``: no connection could be opened; ``pool``: none was free in time (neither reached the
    service); ``write`` / ``read``: a timeout after the request started; ``protocol``: the connection
    broke or the answer could not be parsed."""

    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def reached(self) -> bool:
        """Whether the service may have seen the request (then only an idempotent one may be repeated)."""
        return self.kind not in ("connect", "pool")


@dataclass(slots=True)
class Answer:
    status_code: int
    headers: list[tuple[bytes, bytes]]  # as received, names in the service's case
    content: bytes


@dataclass(frozen=True)
class PoolLimits:
    connect_timeout: float = 1.0
    read_timeout: float = 10.0
    write_timeout: float = 5.0
    pool_timeout: float = 2.0
    max_connections: int = 200
    max_keepalive: int = 64
    keepalive_expiry: float = 5.0


class _Connection(asyncio.Protocol):
    """One keep-alive connection: the transport, the parser of the answer being read, and the future the
    requesting task awaits."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser: httptools.HttpResponseParser | None = None
        self._waiter: asyncio.Future[Answer] | None = None
        self._head_only = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._headers_done = False
        self._informational = False
        self._until_eof = False
        self._reusable = False
        self._last_read = 0.0
        self._read_timeout = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._drained: asyncio.Future[None] | None = None

    # ---- asyncio.Protocol ----
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._parser is None:  # nothing was asked: a confused or hostile peer
            self._abort()
            return
        self._last_read = self.loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(TransportError("protocol", "the service switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(TransportError("protocol", f"the service's answer could not be parsed: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if self._waiter is None or self._waiter.done():
            return
        if self._headers_done and self._until_eof and not self._informational:
            self._finish()  # a body delimited by the end of the connection
            return
        self._fail(TransportError("protocol", "the service closed the connection without a complete answer"))

    def pause_writing(self) -> None:
        self._drained = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    # ---- httptools callbacks ----
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._informational = True  # 100 Continue, 103 Early Hints: the answer follows
            self._headers = []
            return
        self._informational = False
        self._headers_done = True
        lowered = {name.lower() for name, _ in self._headers}
        self._until_eof = (
            b"content-length" not in lowered
            and b"transfer-encoding" not in lowered
            and status not in (204, 304)
            and not self._head_only
        )
        if self._head_only:
            self._reusable = False  # the parser expects the body a HEAD answer announces: start afresh
            self._finish()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if self._waiter is None or self._waiter.done():
            return
        assert self._parser is not None
        self._reusable = self._parser.should_keep_alive() and not self._until_eof
        self._finish()

    # ---- the request ----
    async def exchange(
        self, data: bytes, *, head_only: bool, read_timeout: float, write_timeout: float
    ) -> tuple[Answer, bool]:
        """Send one request and read its answer: (answer, whether the connection may be reused)."""
        assert self.transport is not None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter = waiter = self.loop.create_future()
        self._head_only = head_only
        self._headers, self._body = [], []
        self._headers_done = self._informational = self._until_eof = self._reusable = False
        self._read_timeout = read_timeout
        self._last_read = self.loop.time()
        self._timer = self.loop.call_at(self._last_read + read_timeout, self._check_read_timeout)
        try:
            self.transport.write(data)
            if self._drained is not None:  # the kernel's buffer is full: wait for it to drain
                try:
                    await asyncio.wait_for(asyncio.shield(self._drained), write_timeout)
                except TimeoutError:
                    self._fail(TransportError("write", "writing the request to the service timed out"))
            answer = await waiter
        except BaseException:
            self._abort()  # cancelled or failed half-way: the connection's state is unknown
            raise
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._parser = None
            self._waiter = None
        return answer, self._reusable and not self.closed

    def _check_read_timeout(self) -> None:
        if self._waiter is None or self._waiter.done():
            self._timer = None
            return
        silent = self.loop.time() - self._last_read
        if silent >= self._read_timeout:
            self._timer = None
            self._fail(TransportError("read", "the service's answer timed out"))
        else:
            self._timer = self.loop.call_at(self._last_read + self._read_timeout, self._check_read_timeout)

    def _finish(self) -> None:
        assert self._parser is not None and self._waiter is not None
        if not self._waiter.done():
            content = b"".join(self._body) if len(self._body) != 1 else self._body[0]
            self._waiter.set_result(Answer(self._parser.get_status_code(), self._headers, content))

    def _fail(self, error: TransportError) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        self._abort()

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Pool:
    """Keep-alive connections to one origin (``http://host:port`` or ``https://...``)."""

    def __init__(self, origin: str, limits: PoolLimits) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {origin!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if parts.scheme == "https" else None
        default_port = parts.port is None or parts.port == (443 if parts.scheme == "https" else 80)
        self.host_header = (self.host if default_port else f"{self.host}:{self.port}").encode("idna")
        self.limits = limits
        self._idle: deque[_Connection] = deque()
        self._open = 0  # connecting, in use or idle
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._closed = False

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def request(self, data: bytes, *, head_only: bool = False) -> Answer:
        """Send ``data`` (a whole HTTP/1.1 request, ``Host`` included) and return the answer."""
        connection = await self._acquire()
        reusable = False
        try:
            answer, reusable = await connection.exchange(
                data,
                head_only=head_only,
                read_timeout=self.limits.read_timeout,
                write_timeout=self.limits.write_timeout,
            )
        finally:
            self._release(connection, reusable=reusable)
        return answer

    async def _acquire(self) -> _Connection:
        if self._closed:
            raise TransportError("connect", "the connection pool is closed")
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: warm, least likely to be stale
            if not connection.closed and now - connection.idle_since < self.limits.keepalive_expiry:
                return connection
            self._discard(connection)
        if self._open >= self.limits.max_connections:
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await asyncio.wait_for(waiter, self.limits.pool_timeout)
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():  # handed over just as we gave up: pass it on
                    self._pass_on(waiter.result())
                else:
                    waiter.cancel()
                if isinstance(exc, TimeoutError):
                    raise TransportError("pool", "no connection to the service was free in time") from None
                raise
            if handed is not None:
                return handed
            # A connection was discarded: its place in the pool is ours (already counted for us).
            return await self._connect(counted=True)
        return await self._connect(counted=False)

    async def _connect(self, *, counted: bool) -> _Connection:
        if not counted:
            self._open += 1
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.limits.connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
        except TimeoutError:
            self._give_back_place()
            raise TransportError("connect", "connecting to the service timed out") from None
        except OSError as exc:
            self._give_back_place()
            raise TransportError("connect", f"the service could not be reached: {exc}") from exc
        except BaseException:
            self._give_back_place()
            raise
        return connection

    def _release(self, connection: _Connection, *, reusable: bool) -> None:
        if not reusable or connection.closed or self._closed:
            self._discard(connection)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if len(self._idle) >= self.limits.max_keepalive:
            self._discard(connection)
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    def _pass_on(self, connection: _Connection | None) -> None:
        if connection is None:
            self._give_back_place()
        else:
            self._release(connection, reusable=True)

    def _discard(self, connection: _Connection) -> None:
        connection._abort()
        self._give_back_place()

    def _give_back_place(self) -> None:
        """A connection is gone (or never opened): a waiting caller may open one instead."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # its place passes to the waiter, still counted
                return
        self._open -= 1

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._discard(self._idle.pop())
