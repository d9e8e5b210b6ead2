"""create_app: problem+json errors, request ids, body size limit, health and metrics."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field

from utilis_shared.auth import Actor, Principal
from utilis_shared.errors import PROBLEM_JSON, Problem
from utilis_shared.health import HealthCheck
from utilis_shared.logging import configure_logging
from utilis_shared.settings import ServiceSettings
from utilis_shared.web import create_app, no_lifespan

MAX_BODY = 1024
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SECRET_MESSAGE = "db password is hunter2 for 13845671234"


class ItemIn(BaseModel):
    quantity: int
    label: str = Field(max_length=10)


def _router() -> APIRouter:
    router = APIRouter()

    @router.post("/items/{item_id}")
    async def update_item(item_id: int, body: ItemIn) -> dict:
        return {"item_id": item_id, "quantity": body.quantity, "label": body.label}

    @router.get("/things/{thing_id}")
    async def get_thing(thing_id: str) -> dict:
        raise Problem(f"No thing {thing_id}.", code="thing_missing", status=404)

    @router.get("/boom")
    async def boom() -> dict:
        raise RuntimeError(SECRET_MESSAGE)

    return router


def _app(readiness: list[HealthCheck] | None = None) -> FastAPI:
    settings = ServiceSettings(service_name="webtest", environment="test", max_body_bytes=MAX_BODY)
    return create_app(
        settings,
        title="Web test",
        description="test app",
        version="0.0.1",
        routers=[_router()],
        lifespan=no_lifespan,
        readiness=lambda app: list(readiness or []),
    )


@pytest.fixture
def app() -> FastAPI:
    return _app()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def _assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(f"/problems/{code}")
    assert body["title"]
    request_id = response.headers["x-request-id"]
    assert body["instance"] == request_id
    return body


async def test_happy_path(client: httpx.AsyncClient) -> None:
    response = await client.post("/items/7", json={"quantity": 3, "label": "阀门"})
    assert response.status_code == 200
    assert response.json() == {"item_id": 7, "quantity": 3, "label": "阀门"}
    assert UUID_RE.match(response.headers["x-request-id"])


async def test_malformed_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/items/7", content=b'{"quantity": 3,', headers={"content-type": "application/json"}
    )
    _assert_problem(response, 400, "malformed_json")


async def test_validation_failed_lists_fields_without_echoing_input(client: httpx.AsyncClient) -> None:
    response = await client.post("/items/7", json={"quantity": "13845671234x", "label": "11010119900307123X"})
    body = _assert_problem(response, 422, "validation_failed")
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"body.quantity", "body.label"}
    for error in body["errors"]:
        assert error["message"]
        assert error["type"]
    assert "13845671234" not in response.text
    assert "11010119900307123X" not in response.text


async def test_validation_failed_on_path_parameter(client: httpx.AsyncClient) -> None:
    response = await client.post("/items/13845671234x", json={"quantity": 1, "label": "a"})
    body = _assert_problem(response, 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["path.item_id"]
    assert "13845671234" not in json.dumps(body["errors"])


async def test_missing_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/items/7")
    body = _assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["field"] == "body"


async def test_body_over_limit_by_content_length(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/items/7",
        content=json.dumps({"quantity": 1, "label": "x" * (MAX_BODY * 2)}).encode(),
        headers={"content-type": "application/json"},
    )
    body = _assert_problem(response, 413, "payload_too_large")
    assert str(MAX_BODY) in body["detail"]


async def test_body_at_limit_is_read(client: httpx.AsyncClient) -> None:
    raw = json.dumps({"quantity": 1, "label": "x"}).encode()
    raw = raw + b" " * (MAX_BODY - len(raw))
    assert len(raw) == MAX_BODY
    response = await client.post("/items/7", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 200


async def test_body_over_limit_streamed_without_content_length(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"quantity": 1, "label": "'
        for _ in range(8):
            yield b"x" * 256
        yield b'"}'

    response = await client.post("/items/7", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    body = _assert_problem(response, 413, "payload_too_large")
    assert str(MAX_BODY) in body["detail"]


async def test_streamed_body_under_limit_is_read(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"quantity": 5, '
        yield b'"label": "ok"}'

    response = await client.post("/items/7", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert response.json()["quantity"] == 5


async def test_problem_raised_by_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/things/t-9")
    body = _assert_problem(response, 404, "thing_missing")
    assert body["detail"] == "No thing t-9."


async def test_unknown_path(client: httpx.AsyncClient) -> None:
    _assert_problem(await client.get("/nowhere/at/all"), 404, "not_found")


async def test_method_not_allowed(client: httpx.AsyncClient) -> None:
    _assert_problem(await client.delete("/items/7"), 405, "method_not_allowed")


async def test_unexpected_error_is_an_opaque_500(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/boom", headers={"X-Request-ID": "req-boom-1"})
    body = _assert_problem(response, 500, "internal_error")
    assert response.headers["x-request-id"] == "req-boom-1"
    assert body["instance"] == "req-boom-1"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert "13845671234" not in response.text


async def test_request_id_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = await client.get("/things/a")
    second = await client.get("/things/a")
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(UUID_RE.match(i) for i in ids)
    assert ids[0] != ids[1]
    assert first.json()["instance"] == ids[0]
    # Without an incoming correlation id, the request id is the correlation id.
    assert first.headers["x-correlation-id"] == ids[0]


@pytest.mark.parametrize("incoming", ["abc-123", "gw:2026.11.21_0001", "x" * 100])
async def test_safe_request_id_is_echoed(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/things/a", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming
    assert response.json()["instance"] == incoming


async def test_correlation_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/things/a", headers={"X-Request-ID": "r-1", "X-Correlation-ID": "c-1"})
    assert response.headers["x-request-id"] == "r-1"
    assert response.headers["x-correlation-id"] == "c-1"


async def _raw_request(app: FastAPI, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict, dict]:
    """Drive the ASGI app directly: httpx refuses to send some of the headers we want to test."""
    sent: list[dict] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/things/a",
        "raw_path": b"/things/a",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test"), *headers],
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
    }

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    response_headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], response_headers, json.loads(body)


@pytest.mark.parametrize(
    "unsafe",
    [b"a\nb", b"a\r\nSet-Cookie: x=1", b"x" * 300, b"", b"has space", "请求".encode(), b"<script>"],
)
async def test_unsafe_request_id_is_replaced(app: FastAPI, unsafe: bytes) -> None:
    status, headers, body = await _raw_request(app, [(b"x-request-id", unsafe)])
    assert status == 404
    assert headers["x-request-id"] != unsafe.decode("latin-1")
    assert UUID_RE.match(headers["x-request-id"])
    assert body["instance"] == headers["x-request-id"]


async def test_unsafe_correlation_id_falls_back_to_request_id(app: FastAPI) -> None:
    _, headers, _ = await _raw_request(app, [(b"x-request-id", b"r-9"), (b"x-correlation-id", b"a\nb")])
    assert headers["x-correlation-id"] == "r-9"


async def test_livez(client: httpx.AsyncClient) -> None:
    response = await client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


async def test_readyz_with_no_checks(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {}}


async def test_readyz_reports_failures() -> None:
    async def ok() -> None:
        return None

    async def broken() -> None:
        raise ConnectionError("redis at 10.0.0.1 refused")

    checks = [
        HealthCheck("database", ok),
        HealthCheck("kafka", broken, critical=False),
    ]
    transport = httpx.ASGITransport(app=_app(checks))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        degraded = await client.get("/readyz")
        assert degraded.status_code == 200  # only a non-critical check failed
        assert degraded.json()["checks"]["kafka"]["status"] == "failed"
        assert degraded.json()["checks"]["kafka"]["error"] == "ConnectionError"
        assert "10.0.0.1" not in degraded.text

    checks[1] = HealthCheck("kafka", broken, critical=True)
    transport = httpx.ASGITransport(app=_app(checks))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        down = await client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["status"] == "unavailable"
        assert down.json()["checks"]["database"]["status"] == "ok"


def _metric_value(text: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith("utilis_http_requests_total{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.rindex("}") + 1]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_metrics_use_the_route_template(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    start = _metric_value(before, service="webtest", method="POST", route="/items/{item_id}", status="200")
    for item_id in (101, 202, 303):
        await client.post(f"/items/{item_id}", json={"quantity": 1, "label": "a"})
    await client.get("/no/such/path/8812")
    await client.get("/livez")

    response = await client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert "utilis_http_requests_total" in text
    count = _metric_value(text, service="webtest", method="POST", route="/items/{item_id}", status="200")
    assert count == (start or 0) + 3
    assert _metric_value(text, service="webtest", route="unmatched", status="404") is not None
    for raw in ("/items/101", "/items/202", "/items/303", "/no/such/path/8812"):
        assert f'route="{raw}"' not in text
    assert _metric_value(text, service="webtest", route="/livez", status="200") is not None
    assert _metric_value(text, service="webtest", route="/metrics") is None  # scrapes are not counted
    assert _metric_value(text, service="webtest", route="unmatched", status="200") is None


async def test_openapi_has_problem_schema_and_bearer(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "Problem" in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "/items/{item_id}" in schema["paths"]
    assert "/livez" not in schema["paths"]


async def test_access_log_names_route_and_subject_not_token(
    app: FastAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    @app.get("/whoami/{account_no}")
    async def whoami(account_no: str, request: Request) -> dict:
        request.state.principal = Principal(
            subject="u-42", kind="resident", actor=Actor(subject="agent-7", roles=frozenset({"agent"}))
        )
        return {"ok": True}

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("webtest", "INFO")
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.get("/livez")
            response = await client.get(
                "/whoami/1009876543",
                headers={"Authorization": "Bearer secret.token.value", "X-Request-ID": "req-log-1"},
            )
            assert response.status_code == 200
            boom = await client.get("/boom", headers={"X-Request-ID": "req-log-2"})
            assert boom.status_code == 500
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)

    out = capsys.readouterr().out
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    access = [r for r in records if r.get("logger") == "utilis.access"]
    assert [r["route"] for r in access] == ["/whoami/{account_no}", "/boom"]  # /livez is not logged
    first = access[0]
    assert first["request_id"] == "req-log-1"
    assert first["status"] == 200
    assert first["method"] == "GET"
    assert first["subject"] == "agent-7 on behalf of u-42"
    assert access[1]["status"] == 500
    assert "secret.token.value" not in out
    assert "1009876543" not in out
    errors = [r for r in records if r.get("event") == "unhandled error"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "req-log-2"
    assert "RuntimeError" in errors[0]["exc_info"]
    assert "13845671234" not in out
