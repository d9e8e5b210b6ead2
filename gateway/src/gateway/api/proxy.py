"""The front door's routes: ``/api/<service>/...`` to the services, ``/callbacks/...`` to the payment
service, and the merged OpenAPI document with its Swagger UI. Included first: the service name never
matches ``gateway``, whose own routes (``/api/gateway/...``) come after."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.convertors import Convertor, register_url_convertor
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.service_layer import openapi
from gateway.service_layer.proxy import Proxy
from utilis_shared.errors import Problem, problem_response

router = APIRouter()
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _proxy(request: Request) -> Proxy:
    return request.app.state.proxy


@router.get("/api/openapi.json", include_in_schema=False)
async def merged_openapi(request: Request) -> JSONResponse:
    state = request.app.state
    documents, missing = await state.merged_openapi.documents()
    own: dict[str, Any] = request.app.openapi()
    doc = openapi.merge(
        own, documents, state.proxy.policy, token_url=f"{state.settings.public_url.rstrip('/')}/oauth/token"
    )
    if missing:
        doc["x-utilis-unavailable"] = missing
    return JSONResponse(doc)


@router.get("/api/docs", include_in_schema=False)
async def merged_docs() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/api/openapi.json", title="Utilis API (through the gateway)")


async def to_service(request: Request) -> Response:
    params = request.path_params
    return await _proxy(request).api(request, params["service"], params["path"])


async def provider_callback(request: Request) -> Response:
    return await _proxy(request).callback(request, request.path_params["path"])


# Plain Starlette routes, not FastAPI operations: nothing to validate or inject (the proxy reads the raw
# request), and FastAPI's per-request dependency machinery is measurable at the gateway's request rates.
class UpstreamConvertor(Convertor[str]):
    """A service name in ``/api/<service>/...``, never ``gateway`` (the gateway's own ``/api/gateway/...``
    routes), so the proxy's routes can be matched first: most requests are proxied, and Starlette tries
    routes in order."""

    regex = r"(?!gateway/)[a-z][a-z0-9-]{0,39}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("upstream", UpstreamConvertor())
router.add_route("/api/{service:upstream}/{path:path}", to_service, methods=METHODS, include_in_schema=False)
router.add_route("/callbacks/{path:path}", provider_callback, methods=METHODS, include_in_schema=False)


# ---- The fast path ----
_API = re.compile(r"/api/(" + UpstreamConvertor.regex + r")/(.*)")
_CALLBACK = re.compile(r"/callbacks/(.*)")
_METHODS = frozenset(METHODS)


class FrontDoor:
    """Proxied requests go from the shared middleware (ids, metrics, access log, body limit), which this
    sits inside, straight to the proxy: the same routes as above, matched the same way, without FastAPI's
    route matching, telemetry hook, exception and exit-stack layers, which cost a proxied request about a
    sixth of the gateway's CPU. A refusal (a ``Problem``) is answered here as the problem handlers would;
    anything else propagates as it would from the route. Every other request goes on to the application."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _METHODS:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):  # as Starlette's router matches
            path = path[len(root) :]
        if match := _API.fullmatch(path):
            service, rest = match.groups()
            handle = "api"
        elif match := _CALLBACK.fullmatch(path):
            service, rest = "payment", match.group(1)
            handle = "callback"
        else:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        proxy: Proxy = scope["app"].state.proxy
        try:
            if handle == "api":
                response = await proxy.api(request, service, rest)
            else:
                response = await proxy.callback(request, rest)
        except Problem as exc:
            response = problem_response(exc)
        await response(scope, receive, send)


def install_front_door(app: FastAPI) -> None:
    """Put :class:`FrontDoor` innermost among the application's middleware (after the shared ones)."""
    app.user_middleware.append(Middleware(FrontDoor))
