"""The limiter's pipelined Redis connection (``gateway.adapters.resp``) against the real Redis and against
scripted servers: replies reach the callers that asked, in order; scripts Redis does not know are sent
once; a late, lost or garbled connection fails what was pending on it and the next command reconnects;
AUTH and SELECT come first."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest

from gateway.adapters.resp import PipelinedRedis, RedisReplyError, RedisUnavailable
from gateway.settings import Settings


async def test_concurrent_commands_get_their_own_replies(settings: Settings):
    redis = PipelinedRedis(settings.redis_url)
    key = f"{settings.redis_prefix}resp-{uuid.uuid4().hex}"
    try:
        replies = await asyncio.gather(*(redis.execute(b"INCRBY", key, n) for n in range(1, 51)))
        # Sent in order on one connection, answered in order: each running total is its caller's.
        assert replies == [sum(range(1, n + 1)) for n in range(1, 51)]
        assert await redis.execute(b"GET", key) == str(sum(range(1, 51))).encode()
        with pytest.raises(RedisReplyError):
            await redis.execute(b"LPUSH", key, b"x")  # WRONGTYPE: an error reply is the caller's error
        assert await redis.execute(b"DEL", key) == 1  # and the connection goes on
    finally:
        await redis.aclose()


async def test_a_script_redis_does_not_know_is_sent_once(settings: Settings):
    script = f"-- {uuid.uuid4().hex}\nreturn {{tonumber(ARGV[1]) + 1, KEYS[1]}}"
    sha = hashlib.sha1(script.encode()).hexdigest()
    redis = PipelinedRedis(settings.redis_url)
    try:
        assert await redis.execute(b"SCRIPT", b"EXISTS", sha) == [0]
        assert await redis.evalsha(sha, script, ["k"], [41]) == [42, b"k"]  # NOSCRIPT, then EVAL
        assert await redis.execute(b"SCRIPT", b"EXISTS", sha) == [1]
        assert await redis.evalsha(sha, script, ["k"], [1]) == [2, b"k"]
    finally:
        await redis.aclose()


async def scripted(answer):
    """A server that records what it reads and lets ``answer(data, writer)`` reply."""
    seen: list[bytes] = []
    connections: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while data := await reader.read(65536):
            seen.append(data)
            await answer(data, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen, connections


async def test_a_late_reply_fails_everything_pending_and_the_next_command_reconnects():
    stuck: set[asyncio.StreamWriter] = set()

    async def slow_first(data: bytes, writer: asyncio.StreamWriter) -> None:
        if b"SLOW" in data:
            stuck.add(writer)  # like a Redis busy with a long script: nothing more on this connection
        if writer not in stuck:
            writer.write(b"+PONG\r\n" * data.count(b"PING"))

    server, port, _, connections = await scripted(slow_first)
    redis = PipelinedRedis(f"redis://127.0.0.1:{port}/0", timeout=0.3)
    try:
        slow = asyncio.ensure_future(redis.execute(b"SLOW"))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(redis.execute(b"PING"))  # behind the slow one on the same connection
        with pytest.raises(RedisUnavailable):
            await asyncio.wait_for(slow, 2)
        with pytest.raises(RedisUnavailable):
            await asyncio.wait_for(queued, 2)  # never given the slow one's late reply
        assert await asyncio.wait_for(redis.execute(b"PING"), 2) == b"PONG"
        assert len(connections) == 2
    finally:
        await redis.aclose()
        server.close()


async def test_a_lost_or_garbled_connection_fails_what_was_pending():
    async def hang_up(data: bytes, writer: asyncio.StreamWriter) -> None:
        if b"QUIT" in data:
            writer.close()
        elif b"GARBLE" in data:
            writer.write(b"HTTP/1.1 200 OK\r\n")
        else:
            writer.write(b":1\r\n")

    server, port, _, connections = await scripted(hang_up)
    redis = PipelinedRedis(f"redis://127.0.0.1:{port}", timeout=1)
    try:
        with pytest.raises(RedisUnavailable):
            await redis.execute(b"QUIT")
        assert await redis.execute(b"EXISTS", b"k") == 1
        with pytest.raises(RedisUnavailable, match="unreadable"):
            await redis.execute(b"GARBLE")
        assert await redis.execute(b"EXISTS", b"k") == 1
        assert len(connections) == 3
    finally:
        await redis.aclose()
        server.close()

    nobody = PipelinedRedis(f"redis://127.0.0.1:{port}", timeout=1)
    with pytest.raises(RedisUnavailable):
        await nobody.execute(b"PING")


async def test_auth_and_select_come_first():
    async def ok(data: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK\r\n" * data.count(b"*"))

    server, port, seen, _ = await scripted(ok)
    redis = PipelinedRedis(f"redis://gw:s3cret@127.0.0.1:{port}/3")
    try:
        assert await redis.execute(b"PING") == b"OK"
    finally:
        await redis.aclose()
        server.close()
    sent = b"".join(seen)
    assert sent.startswith(
        b"*3\r\n$4\r\nAUTH\r\n$2\r\ngw\r\n$6\r\ns3cret\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"
    )
    assert sent.endswith(b"*1\r\n$4\r\nPING\r\n")

    async def refuse(data: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"-WRONGPASS invalid username-password pair\r\n")

    server, port, _, _ = await scripted(refuse)
    redis = PipelinedRedis(f"redis://:bad@127.0.0.1:{port}")
    try:
        with pytest.raises(RedisReplyError, match="WRONGPASS"):
            await redis.execute(b"PING")
    finally:
        await redis.aclose()
        server.close()
