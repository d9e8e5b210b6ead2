"""The FastAPI application every service API builds on: one factory, the same middleware everywhere.

``create_app`` wires: request id and correlation id (from ``X-Request-ID`` / ``X-Correlation-ID`` or
generated), a request body size limit, RED metrics by route template, a JSON access log that names the
subject but never the token, problem+json errors, ``/livez``, ``/readyz``, ``/metrics``, and an OpenAPI
document with the bearer security scheme and the ``Problem`` schema.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from utilis_shared.context import CORRELATION_ID_HEADER, REQUEST_ID_HEADER, correlation_id_var, request_id_var
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import PROBLEM_JSON, Problem, install_problem_handlers, unexpected_error_response
from utilis_shared.health import HealthCheck, livez, readyz_endpoint
from utilis_shared.metrics import MetricsMiddleware, metrics_endpoint, route_template
from utilis_shared.settings import ServiceSettings

access_log = logging.getLogger("utilis.access")


async def unit_of_work(request: Request) -> UnitOfWork:
    """The request's unit of work, from the app's session factory. ``async`` on purpose: FastAPI runs a
    plain ``def`` dependency in its thread pool, and that hop (and the GIL hand-over it costs) showed up
    as idle CPU and queued requests under the payment peak."""
    return UnitOfWork(request.app.state.session_factory, request.app.state.settings)


#: The dependency every write and read route takes: ``uow: Uow``.
Uow = Annotated[UnitOfWork, Depends(unit_of_work)]
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,100}$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class RequestContextMiddleware:
    """Sets request/correlation ids for logs and events, echoes them, and writes the access log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SAFE_ID.match(incoming) else str(uuid.uuid4())
        corr = _header(scope, b"x-correlation-id")
        correlation_id = corr if corr and _SAFE_ID.match(corr) else request_id
        rid_token = request_id_var.set(request_id)
        cid_token = correlation_id_var.set(correlation_id)
        status = {"code": 500, "started": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
                headers.append((CORRELATION_ID_HEADER.lower().encode(), correlation_id.encode()))
                message["headers"] = headers
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            # Answered here, not by Starlette's outermost ServerErrorMiddleware: there the request id is
            # already gone, so the 500 would carry neither X-Request-ID nor ``instance``.
            if status["started"]:
                raise
            await unexpected_error_response()(scope, receive, send_wrapper)
        finally:
            path = route_template(scope)
            if path not in ("/livez", "/readyz", "/metrics"):
                principal = (
                    getattr(scope.get("state", {}).get("principal"), "audit_actor", None)
                    if isinstance(scope.get("state"), dict)
                    else None
                )
                access_log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "route": path,
                        "status": status["code"],
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "subject": principal,
                    },
                )
            request_id_var.reset(rid_token)
            correlation_id_var.reset(cid_token)


class BodySizeLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        import json

        body = json.dumps(
            Problem(
                f"The request body exceeds {self.max_bytes} bytes.", status=413, code="payload_too_large"
            ).to_dict()
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(StarletteHTTPException):
    """An HTTPException, so that FastAPI's body reading re-raises it (it turns anything else into a 400
    "error parsing the body") and the problem handlers answer 413 ``payload_too_large``."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"The request body exceeds {max_bytes} bytes.")


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details with a stable machine-readable code.",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "example": "account_not_found"},
        "instance": {"type": "string", "description": "the request id"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}


def create_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    version: str,
    routers: list[APIRouter],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    readiness: Callable[[FastAPI], list[HealthCheck]],
) -> FastAPI:
    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    app.state.settings = settings
    install_problem_handlers(app)
    for router in routers:
        app.include_router(router)
    # API routes, not plain Starlette ones: FastAPI's router records only its own routes in scope["route"],
    # which the access log and the metrics need to recognise (and skip) these paths.
    probe = {"methods": ["GET", "HEAD"], "include_in_schema": False}
    app.add_api_route("/livez", livez, **probe)
    app.add_api_route("/readyz", readyz_endpoint(lambda request: readiness(request.app)), **probe)
    app.add_api_route("/metrics", metrics_endpoint, **probe)
    # Order: the last added runs first. Context (ids, access log) wraps everything.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, service=settings.service_name)
    app.add_middleware(RequestContextMiddleware)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=title, version=version, description=description, routes=app.routes)
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        components.setdefault("securitySchemes", {}).setdefault(
            "HTTPBearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


@asynccontextmanager
async def no_lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
