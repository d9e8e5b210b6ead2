"""The proxy's HTTP/1.1 client (``gateway.adapters.http1``) against scripted servers on real sockets: what
it sends, how it reads every framing of an answer, when it reuses a connection and when it must not, its
timeouts and pool limits, and which failures say the request may have reached the service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.adapters.http1 import Pool, PoolLimits, TransportError
from gateway.adapters.upstreams import UpstreamConfig, Upstreams

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nx-up: 1\r\n\r\n{}"


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request (head and Content-Length body) as bytes, or None when the client closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


class Server:
    """A TCP server running ``handler`` per connection; records the requests and counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.origin = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def serving(make: Callable[[Server], Handler]) -> AsyncIterator[Server]:
    server = Server(lambda r, w: asyncio.sleep(0))
    server.handler = make(server)
    srv = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    server.origin = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    async with srv:
        yield server
        srv.close()


def answering(*answers: bytes, hold: float = 0.0) -> Callable[[Server], Handler]:
    """Answer each request on a connection with the next of ``answers`` (the last one repeats)."""

    def make(server: Server) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            n = 0
            while (request := await read_request(reader)) is not None:
                server.requests.append(request)
                if hold:
                    await asyncio.sleep(hold)
                writer.write(answers[min(n, len(answers) - 1)])
                await writer.drain()
                n += 1

        return handle

    return make


def limits(**overrides: float) -> PoolLimits:
    return PoolLimits(**{"connect_timeout": 1.0, "read_timeout": 2.0, "pool_timeout": 1.0, **overrides})


def get(path: str = "/v1/x", host: bytes = b"127.0.0.1") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nhost: " + host + b"\r\n\r\n"


async def test_answers_are_read_whole_and_a_connection_is_kept_for_the_next_request():
    async with serving(answering(OK)) as server:
        pool = Pool(server.origin, limits())
        first = await pool.request(get("/v1/a"))
        second = await pool.request(get("/v1/b"))
        await pool.aclose()
    assert (first.status_code, first.content) == (200, b"{}")
    assert (b"x-up", b"1") in first.headers and (b"content-type", b"application/json") in first.headers
    assert second.content == b"{}"
    assert server.connections == 1  # kept alive and reused
    assert [r.split(b"\r\n")[0] for r in server.requests] == [b"GET /v1/a HTTP/1.1", b"GET /v1/b HTTP/1.1"]


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", b"abcde"),
        (b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhello", b"hello"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", b"ok"),
    ],
)
async def test_every_framing_of_an_answer(answer, body):
    async with serving(answering(answer)) as server:
        pool = Pool(server.origin, limits())
        for _ in range(2):  # and the connection stays usable after each
            got = await pool.request(get())
            assert got.content == body and got.status_code != 100
        await pool.aclose()
    assert server.connections == 1


async def test_a_body_delimited_by_the_end_of_the_connection_and_connection_close():
    eof = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end"
    close = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"

    def closing(answer: bytes) -> Callable[[Server], Handler]:
        def make(server: Server) -> Handler:
            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                server.requests.append(await read_request(reader) or b"")
                writer.write(answer)
                await writer.drain()

            return handle

        return make

    for answer, body in ((eof, b"until the end"), (close, b"ok")):
        async with serving(closing(answer)) as server:
            pool = Pool(server.origin, limits())
            assert (await pool.request(get())).content == body
            assert (await pool.request(get())).content == body
            await pool.aclose()
        assert server.connections == 2  # never reused
        assert pool.open_connections == 0


async def test_an_answer_to_head_ends_with_its_headers():
    def by_method(server: Server) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while (request := await read_request(reader)) is not None:
                server.requests.append(request)
                head = request.startswith(b"HEAD ")
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n" if head else OK)
                await writer.drain()

        return handle

    async with serving(by_method) as server:
        pool = Pool(server.origin, limits(read_timeout=1.0))
        head = b"HEAD /v1/x HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
        answer = await asyncio.wait_for(pool.request(head, head_only=True), 2)
        assert answer.status_code == 200 and answer.content == b""
        assert (b"content-length", b"1234") in answer.headers
        assert (await pool.request(get())).content == b"{}"
        await pool.aclose()


async def test_a_silent_service_times_out_and_a_slow_but_steady_one_does_not():
    def trickle(server: Server) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while (request := await read_request(reader)) is not None:
                server.requests.append(request)
                if b"/silent" in request:
                    await asyncio.sleep(5)
                    continue
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
                for piece in (b"a", b"b", b"c", b"d"):  # 0.8 s in all, never 0.3 s of silence
                    await asyncio.sleep(0.2)
                    writer.write(piece)
                    await writer.drain()

        return handle

    async with serving(trickle) as server:
        pool = Pool(server.origin, limits(read_timeout=0.4))
        assert (await pool.request(get("/steady"))).content == b"abcd"
        with pytest.raises(TransportError) as failed:
            await asyncio.wait_for(pool.request(get("/silent")), 3)
        assert failed.value.kind == "read" and failed.value.reached
        assert pool.open_connections == 0  # a timed-out connection is never reused
        await pool.aclose()


async def test_failures_say_whether_the_request_may_have_reached_the_service():
    def hang_up(server: Server) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            server.requests.append(await read_request(reader) or b"")  # read it, answer nothing

        return handle

    async with serving(hang_up) as server:
        pool = Pool(server.origin, limits())
        with pytest.raises(TransportError) as failed:
            await pool.request(get())
        assert failed.value.kind == "protocol" and failed.value.reached
        assert len(server.requests) == 1
        await pool.aclose()

    async with serving(answering(b"HTTP/1.1 abc\r\n\r\n")) as server:
        pool = Pool(server.origin, limits())
        with pytest.raises(TransportError) as failed:
            await pool.request(get())
        assert failed.value.kind == "protocol" and failed.value.reached
        await pool.aclose()

    closed = Pool(server.origin, limits())  # the server is gone: nothing listens there
    with pytest.raises(TransportError) as failed:
        await closed.request(get())
    assert failed.value.kind == "connect" and not failed.value.reached
    assert closed.open_connections == 0


async def test_the_pool_bounds_connections_and_waiters_get_the_next_free_one():
    async with serving(answering(OK, hold=0.3)) as server:
        pool = Pool(server.origin, limits(max_connections=1, pool_timeout=2.0))
        answers = await asyncio.gather(*(pool.request(get()) for _ in range(3)))
        assert [a.content for a in answers] == [b"{}"] * 3
        assert server.connections == 1  # the waiters were handed the one connection in turn

        impatient = Pool(server.origin, limits(max_connections=1, pool_timeout=0.1))
        slow = asyncio.create_task(impatient.request(get()))
        await asyncio.sleep(0.05)
        with pytest.raises(TransportError) as failed:
            await impatient.request(get())
        assert failed.value.kind == "pool" and not failed.value.reached
        assert (await slow).content == b"{}"
        assert (await impatient.request(get())).content == b"{}"  # the place was not lost
        await pool.aclose()
        await impatient.aclose()

    closing = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}"
    async with serving(answering(closing, hold=0.2)) as server:
        pool = Pool(server.origin, limits(max_connections=1, pool_timeout=1.0))
        answers = await asyncio.gather(*(pool.request(get()) for _ in range(3)))
        assert [a.content for a in answers] == [b"{}"] * 3  # a closed connection's place passes on
        assert server.connections == 3 and pool.open_connections == 0
        await pool.aclose()


async def test_idle_connections_expire_and_a_connection_the_service_closed_is_not_used():
    async with serving(answering(OK)) as server:
        pool = Pool(server.origin, limits(keepalive_expiry=0.2))
        await pool.request(get())
        await asyncio.sleep(0.3)
        await pool.request(get())
        assert server.connections == 2  # the idle one had expired
        await pool.aclose()

    def one_per_connection(server: Server) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            server.requests.append(await read_request(reader) or b"")
            writer.write(OK)  # keep-alive announced, then closed anyway (an idle timeout)
            await writer.drain()

        return handle

    async with serving(one_per_connection) as server:
        pool = Pool(server.origin, limits())
        await pool.request(get())
        await asyncio.sleep(0.1)  # the close arrives while the connection is idle
        assert (await pool.request(get())).content == b"{}"
        assert server.connections == 2
        await pool.aclose()


async def test_a_cancelled_request_closes_its_connection_and_frees_its_place():
    async with serving(answering(OK, hold=1.0)) as server:
        pool = Pool(server.origin, limits(max_connections=1))
        task = asyncio.create_task(pool.request(get()))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.open_connections == 0 and pool.idle_connections == 0
        assert (await pool.request(get())).content == b"{}"
        assert server.connections == 2
        await pool.aclose()


async def test_the_request_the_service_sees():
    async with serving(answering(OK)) as server:
        upstreams = Upstreams({"customer": server.origin + "/base"}, UpstreamConfig(attempts=1))
        await upstreams.send(
            "customer",
            "GET",
            "/v1/customers/张 三?#",  # decoded, as the policy table matched it
            query=b"name=%E5%BC%A0&limit=5",
            headers=[(b"authorization", b"Bearer t"), (b"x-request-id", b"rid")],
            body=b"",
            retry_safe=True,
        )
        await upstreams.send(
            "customer",
            "POST",
            "/v1/accounts",
            query=b"",
            headers=[(b"idempotency-key", b"k")],
            body=b'{"a": 1}',
            retry_safe=True,
        )
        await upstreams.send(
            "customer", "POST", "/v1/empty", query=b"", headers=[], body=b"", retry_safe=False
        )
        await upstreams.aclose()
    port = server.origin.rsplit(":", 1)[1].encode()
    assert server.requests[0] == (
        b"GET /base/v1/customers/%E5%BC%A0%20%E4%B8%89%3F%23?name=%E5%BC%A0&limit=5 HTTP/1.1\r\n"
        b"host: 127.0.0.1:" + port + b"\r\nauthorization: Bearer t\r\nx-request-id: rid\r\n\r\n"
    )
    assert server.requests[1] == (
        b"POST /base/v1/accounts HTTP/1.1\r\nhost: 127.0.0.1:" + port + b"\r\n"
        b'idempotency-key: k\r\ncontent-length: 8\r\n\r\n{"a": 1}'
    )
    assert server.requests[2].endswith(b"\r\ncontent-length: 0\r\n\r\n")
