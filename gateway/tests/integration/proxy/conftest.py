"""Fixtures for the front door's tests: a real upstream HTTP server on a real port (an echo service
standing in for a service, so failures can be provoked) and gateways configured against it, with the
gateway's real tokens, keys, database and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.domain.claims import Grant
from gateway.entrypoints.http import create
from gateway.settings import Settings


class Echo:
    """The stand-in service: answers every path with what it received. Headers steer it:
    ``x-test-fail-times: n`` answers 503 to the first n attempts of the request ``x-test-key``;
    ``x-test-status`` answers that status; ``x-test-sleep`` waits that many seconds first."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.attempts: dict[str, int] = {}

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        record = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": [(k, v) for k, v in request.headers.items()],
            "body": body.decode("latin-1"),
        }
        self.seen.append(record)
        key = request.headers.get("x-test-key", "")
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if sleep := request.headers.get("x-test-sleep"):
            await asyncio.sleep(float(sleep))
        if self.attempts[key] <= int(request.headers.get("x-test-fail-times", "0")):
            return JSONResponse({"attempt": self.attempts[key]}, status_code=503)
        status = int(request.headers.get("x-test-status", "200"))
        return JSONResponse(
            record,
            status_code=status,
            headers={"x-upstream": "echo", "proxy-authenticate": "Basic", "x-request-id": "upstream-own-id"},
        )

    def headers_of(self, index: int = -1) -> dict[str, str]:
        return {k: v for k, v in self.seen[index]["headers"]}


@pytest.fixture(scope="module")
async def echo() -> AsyncIterator[tuple[Echo, str]]:
    state = Echo()
    app = Starlette(
        routes=[Route("/{path:path}", state.handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])]
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn.Server exposes only this flag
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield state, f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
def gateway(settings: Settings, echo) -> Callable[..., contextlib.AbstractAsyncContextManager[Any]]:
    """``async with gateway(**settings overrides) as (app, client)``: a gateway whose customer and payment
    upstreams are the echo service, with its own Redis prefix (fresh limits) and client address."""
    _, echo_url = echo

    @contextlib.asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
        values = {
            "upstreams": {"customer": echo_url, "payment": echo_url},
            "redis_prefix": f"{settings.redis_prefix}proxy-{uuid.uuid4().hex[:6]}:",
            **overrides,
        }
        app = create(settings.model_copy(update=values))
        async with app.router.lifespan_context(app):
            ip = f"10.9.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
            transport = httpx.ASGITransport(app=app, client=(ip, 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
                yield app, c

    return make


@pytest.fixture
def token(app) -> Callable[..., Awaitable[str]]:
    """A gateway-signed access token (the session app's keys are the database's: any gateway verifies it)."""

    async def sign(
        kind: str = "staff",
        *,
        roles: tuple[str, ...] = (),
        scopes: frozenset[str] = frozenset(),
        account_nos: tuple[str, ...] = (),
        subject: str | None = None,
    ) -> str:
        grant = Grant(
            subject=subject or f"{kind}-{uuid.uuid4().hex[:8]}",
            kind=kind,
            client_id="test",
            channel="mobile_app" if kind == "resident" else "staff_console",
            roles=roles,
            scopes=scopes,
            account_nos=account_nos,
        )
        return await app.state.tokens.sign(grant)

    return sign
