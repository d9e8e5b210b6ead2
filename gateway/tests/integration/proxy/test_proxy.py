"""The front door against a real upstream HTTP server on a real port (an echo service standing in for a
service, so failures can be provoked), with the gateway's real tokens, keys, Redis limits and deny list:
the policy table (deny by default), token checks, forwarding rules, retries, timeouts, the circuit
breaker, rate limits, revocation and provider callbacks."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from prometheus_client import generate_latest

CUSTOMERS = "/api/customer/v1/customers"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bearer(t: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {t}"}


async def test_an_allowed_request_reaches_the_service_with_the_forwarding_headers(gateway, token, echo):
    state, _ = echo
    agent = await token(roles=("agent",))
    async with gateway() as (_, client):
        r = await client.get(
            "/api/customer/v1/accounts/2301000001/view?lang=zh&x=1",
            headers={
                **bearer(agent),
                "X-Request-ID": "req-abc-123",
                "Connection": "keep-alive, x-private-hop",
                "X-Private-Hop": "secret",
                "Keep-Alive": "timeout=5",
                "Proxy-Authorization": "Basic Zm9vOmJhcg==",
                "X-Forwarded-For": "203.0.113.9",
            },
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "GET" and body["path"] == "/v1/accounts/2301000001/view"
    assert body["query"] == "lang=zh&x=1"
    seen = {k: v for k, v in body["headers"]}
    assert seen["authorization"] == f"Bearer {agent}"  # the service verifies the token itself
    assert seen["x-request-id"] == "req-abc-123" and seen["x-correlation-id"] == "req-abc-123"
    assert seen["x-forwarded-prefix"] == "/api/customer"
    assert seen["x-forwarded-for"].startswith("203.0.113.9, 10.9.")
    for hop in ("x-private-hop", "keep-alive", "proxy-authorization"):
        assert hop not in seen, hop
    # The answer: the service's headers minus hop-by-hop ones, and the gateway's own request id once.
    assert r.headers["x-upstream"] == "echo"
    assert "proxy-authenticate" not in r.headers
    assert r.headers.get_list("x-request-id") == ["req-abc-123"]
    assert len(state.seen) >= 1


@pytest.mark.parametrize(
    ("method", "path", "kind", "roles", "status", "code"),
    [
        ("GET", "/api/customer/v1/internal/settings", "staff", ("admin",), 403, "no_policy"),
        ("DELETE", "/api/customer/v1/accounts/2301000001", "staff", ("admin",), 403, "no_policy"),
        ("GET", "/api/nosuchservice/anything", "staff", ("admin",), 404, "unknown_service"),
        ("GET", "/api/customer/v1/customers", "staff", ("inspector",), 403, "forbidden"),
        ("GET", "/api/customer/v1/customers", "resident", (), 403, "forbidden"),
        ("POST", "/api/customer/v1/customers/x/merges", "staff", ("agent",), 403, "forbidden"),
        ("GET", "/api/customer/v1/customers", "partner", (), 403, "forbidden"),
    ],
)
async def test_the_policy_table_refuses_before_the_service_sees_anything(
    gateway, token, echo, method, path, kind, roles, status, code
):
    state, _ = echo
    before = len(state.seen)
    t = await token(kind, roles=roles, scopes=frozenset({"accounts:read"}))
    async with gateway() as (_, client):
        r = await client.request(method, path, headers=bearer(t))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code
    assert len(state.seen) == before


async def test_roles_scopes_and_residents_that_the_table_admits(gateway, token):
    async with gateway() as (_, client):
        agent = await token(roles=("agent",))
        assert (await client.get("/api/customer/v1/customers?q=x", headers=bearer(agent))).status_code == 200
        admin = await token(roles=("admin",))  # admin passes every role check
        assert (await client.get("/api/customer/v1/duplicates", headers=bearer(admin))).status_code == 200
        resident = await token("resident", account_nos=("2301000001",))
        r = await client.get("/api/customer/v1/accounts/2301000002/view", headers=bearer(resident))
        # The gateway admits residents on this route; the object-level check is the service's.
        assert r.status_code == 200


def forged(claims: dict[str, Any], *, alg: str = "ES256", kid: str | None = None) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid or "not-a-published-kid"})


async def test_tokens_the_front_door_refuses(gateway, token, settings, echo):
    state, _ = echo
    now = int(time.time())
    good = await token(roles=("agent",))
    header, payload, signature = good.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    kid = jwt.get_unverified_header(good)["kid"]
    tampered_claims = {**claims, "roles": ["admin"]}
    tampered = ".".join(
        [header, jwt.utils.base64url_encode(json.dumps(tampered_claims).encode()).decode(), signature]
    )
    unsigned = ".".join(
        [
            jwt.utils.base64url_encode(
                json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode()
            ).decode(),
            payload,
            "",
        ]
    )
    base = {"sub": "x", "kind": "staff", "roles": ["agent"], "iat": now, "jti": "j"}
    cases = {
        "missing": None,
        "garbage": "not.a.jwt",
        "tampered": tampered,
        "alg none": unsigned,
        "unknown kid": forged(
            {**base, "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "exp": now + 60}
        ),
        "foreign key, real kid": forged(
            {**base, "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "exp": now + 60}, kid=kid
        ),
    }
    before = len(state.seen)
    async with gateway() as (app, client):
        signed = app.state.keys

        async def sign_with_real_key(extra: dict[str, Any]) -> str:
            active = await signed.active()
            return jwt.encode(
                {**base, **extra}, active.private_key, algorithm="ES256", headers={"kid": active.kid}
            )

        cases["expired"] = await sign_with_real_key(
            {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "exp": now - 120, "iat": now - 1000}
        )
        cases["wrong issuer"] = await sign_with_real_key(
            {"iss": "https://evil.example", "aud": settings.jwt_audience, "exp": now + 60}
        )
        cases["wrong audience"] = await sign_with_real_key(
            {"iss": settings.jwt_issuer, "aud": "someone-else", "exp": now + 60}
        )
        for name, t in cases.items():
            headers = {} if t is None else bearer(t)
            r = await client.get("/api/customer/v1/customers", headers=headers)
            assert r.status_code == 401, (name, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer"), name
            assert r.json()["code"] in ("unauthorized", "invalid_token", "token_expired"), name
        assert (await client.get("/api/customer/v1/customers", headers=bearer(good))).status_code == 200
    assert len(state.seen) == before + 1


async def test_a_revoked_access_token_is_refused_at_the_front_door(gateway, staff, settings):
    username, password = await staff("agent")
    async with gateway() as (_, client):
        issued = await client.post(
            "/oauth/token",
            data={
                "grant_type": "password",
                "username": username,
                "password": password,
                "client_id": "staff-console",
            },
        )
        assert issued.status_code == 200, issued.text
        access = issued.json()["access_token"]
        assert (await client.get("/api/customer/v1/customers", headers=bearer(access))).status_code == 200
        revoked = await client.post("/oauth/revoke", data={"token": access, "client_id": "staff-console"})
        assert revoked.status_code == 200
        r = await client.get("/api/customer/v1/customers", headers=bearer(access))
        assert r.status_code == 401 and r.json()["code"] == "token_revoked"


async def test_rate_limits_per_user_answer_429_with_retry_after(gateway, token):
    async with gateway(rate_limit_user_per_minute=3) as (_, client):
        first, second = await token(roles=("agent",)), await token(roles=("agent",))
        statuses = [(await client.get(CUSTOMERS, headers=bearer(first))).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        r = await client.get("/api/customer/v1/customers", headers=bearer(first))
        assert r.json()["code"] == "rate_limited"
        assert 0 < int(r.headers["retry-after"]) <= 20  # one request per 20 s refills
        # Another user is not affected.
        assert (await client.get("/api/customer/v1/customers", headers=bearer(second))).status_code == 200


async def test_rate_limit_per_ip_and_per_partner(gateway, token):
    async with gateway(rate_limit_ip_per_minute=2, rate_limit_user_per_minute=100) as (_, client):
        statuses = []
        for _ in range(3):
            t = await token(roles=("agent",))  # a new user each time: the address is what is limited
            statuses.append((await client.get("/api/customer/v1/customers", headers=bearer(t))).status_code)
        assert statuses == [200, 200, 429]
    async with gateway(rate_limit_partner_per_minute=1) as (_, client):
        bank = await token("partner", scopes=frozenset({"accounts:read"}), subject="bank-x")
        again = await token("partner", scopes=frozenset({"accounts:read"}), subject="bank-x")
        assert (await client.get("/api/customer/v1/accounts/1/view", headers=bearer(bank))).status_code == 403
        r1 = await client.get("/api/customer/v1/accounts/1", headers=bearer(bank))
        r2 = await client.get("/api/customer/v1/accounts/1", headers=bearer(again))  # same client, new token
        assert (r1.status_code, r2.status_code) == (200, 429)


async def test_idempotent_requests_are_retried_and_writes_are_not(gateway, token, echo):
    state, _ = echo
    agent = await token(roles=("agent",))
    async with gateway(upstream_attempts=3) as (_, client):
        key = uuid.uuid4().hex
        r = await client.get(
            CUSTOMERS, headers={**bearer(agent), "x-test-key": key, "x-test-fail-times": "2"}
        )
        assert r.status_code == 200 and state.attempts[key] == 3
        key = uuid.uuid4().hex
        r = await client.post(
            "/api/customer/v1/customers",
            headers={**bearer(agent), "x-test-key": key, "x-test-fail-times": "1"},
            json={},
        )
        assert r.status_code == 503 and state.attempts[key] == 1  # a write without a key: never repeated
        key = uuid.uuid4().hex
        r = await client.post(
            "/api/customer/v1/customers",
            headers={**bearer(agent), "x-test-key": key, "x-test-fail-times": "1", "Idempotency-Key": key},
            json={},
        )
        assert r.status_code == 200 and state.attempts[key] == 2  # the service dedupes a keyed write


async def test_a_slow_service_is_a_504_and_a_dead_one_a_502(gateway, token):
    agent = await token(roles=("agent",))
    async with gateway(upstream_read_timeout_seconds=0.2, upstream_attempts=1) as (_, client):
        r = await client.get("/api/customer/v1/customers", headers={**bearer(agent), "x-test-sleep": "0.6"})
        assert r.status_code == 504 and r.json()["code"] == "upstream_timeout"
    dead = f"http://127.0.0.1:{free_port()}"
    async with gateway(upstreams={"customer": dead}, upstream_attempts=2) as (_, client):
        r = await client.post("/api/customer/v1/customers", headers=bearer(agent), json={})
        assert r.status_code == 502 and r.json()["code"] == "bad_gateway"
    async with gateway(upstreams={}) as (_, client):
        r = await client.get("/api/customer/v1/customers", headers=bearer(agent))
        assert r.status_code == 503 and r.json()["code"] == "service_unavailable"


async def test_the_circuit_opens_after_repeated_failures_and_closes_after_a_good_trial(gateway, token, echo):
    state, _ = echo
    agent = await token(roles=("agent",))
    async with gateway(breaker_failures=3, breaker_reset_seconds=0.5, upstream_attempts=1) as (app, client):
        failing = {**bearer(agent), "x-test-status": "503"}
        for _ in range(3):
            assert (await client.post(CUSTOMERS, headers=failing, json={})).status_code == 503
        before = len(state.seen)
        r = await client.get("/api/customer/v1/customers", headers=bearer(agent))
        assert r.status_code == 503 and r.json()["code"] == "upstream_unavailable"
        assert "retry-after" in r.headers
        assert len(state.seen) == before  # not called while open
        await asyncio.sleep(0.6)
        assert (await client.get("/api/customer/v1/customers", headers=bearer(agent))).status_code == 200
        assert not app.state.upstreams.breakers["customer"].is_open


async def test_paths_that_could_mean_another_route_and_oversized_bodies_are_refused(gateway, token, echo):
    state, _ = echo
    agent = await token(roles=("admin",))
    before = len(state.seen)
    async with gateway(max_body_bytes=1000) as (_, client):
        for path in (
            "/api/customer/v1/accounts/1%2F..%2F..%2Fduplicates",
            "/api/customer/v1/accounts//view",
        ):
            r = await client.get(path, headers=bearer(agent))
            assert r.status_code in (400, 403), (path, r.text)
            assert r.json()["code"] in ("bad_path", "no_policy"), path
        r = await client.post("/api/customer/v1/customers", headers=bearer(agent), content=b"x" * 5000)
        assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert len(state.seen) == before


async def test_provider_callbacks_pass_without_oauth_from_allowed_networks_only(gateway, echo):
    state, _ = echo
    body = b'{"id":"EV-1","resource":{"ciphertext":"..."}}'
    headers = {
        "Wechatpay-Signature": "c2ln",
        "Wechatpay-Timestamp": "1700000000",
        "Authorization": "Bearer x",
    }
    async with gateway(callback_networks={"wechat": ["10.9.0.0/16"], "alipay": ["192.0.2.0/24"]}) as (
        _,
        client,
    ):
        r = await client.post("/callbacks/wechat/notify", content=body, headers=headers)
        assert r.status_code == 200, r.text
        seen = state.headers_of()
        assert (
            state.seen[-1]["path"] == "/callbacks/wechat/notify" and state.seen[-1]["body"] == body.decode()
        )
        assert seen["wechatpay-signature"] == "c2ln" and "authorization" not in seen
        before = len(state.seen)
        r = await client.post(
            "/callbacks/alipay/notify", content=b"a=1", headers={"content-type": "text/plain"}
        )
        assert r.status_code == 403 and r.json()["code"] == "ip_not_allowed"
        r = await client.post("/callbacks/unknown-provider/notify", content=b"{}")
        assert r.status_code == 403 and r.json()["code"] == "ip_not_allowed"
        assert len(state.seen) == before
    async with gateway(
        rate_limit_callback_ip_per_minute=2, callback_networks={"wechat": ["10.9.0.0/16"]}
    ) as (_, c):
        statuses = [(await c.post("/callbacks/wechat/notify", content=body)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]


async def test_proxied_requests_are_counted_per_route_channel_and_refusal_reason(gateway, token):
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    resident = await token("resident", account_nos=("2301000001",))
    route = {
        "upstream": "customer",
        "route": "/api/customer/v1/accounts/{account_no}/view",
        "method": "GET",
        "status": "200",
    }
    before = value("utilis_gateway_upstream_requests_total", **route)
    channel_before = value("utilis_gateway_channel_requests_total", channel="mobile_app")
    refused_before = value("utilis_gateway_auth_failures_total", reason="no_policy")
    red = {"service": "gateway", "method": "GET", "route": route["route"], "status": "200"}
    red_before = value("utilis_http_requests_total", **red)
    async with gateway() as (_, client):
        assert (
            await client.get("/api/customer/v1/accounts/2301000001/view", headers=bearer(resident))
        ).status_code == 200
        refused = await client.get("/api/customer/v1/nothing-here", headers=bearer(resident))
        assert refused.status_code == 403
    assert value("utilis_gateway_upstream_requests_total", **route) == before + 1
    assert value("utilis_gateway_channel_requests_total", channel="mobile_app") == channel_before + 1
    assert value("utilis_gateway_auth_failures_total", reason="no_policy") == refused_before + 1
    # The shared RED metrics (and the access log) name the policy's route template, not the catch-all.
    assert value("utilis_http_requests_total", **red) == red_before + 1


async def test_proxied_requests_take_the_front_door_past_the_application_router(gateway, token):
    """Proxied paths are answered by ``api.proxy.FrontDoor`` inside the shared middleware, with the same
    answers, refusals and metric names; the gateway's own routes still go through the router."""
    agent = await token(roles=("agent",))
    async with gateway() as (app, client):
        assert (await client.get("/livez")).status_code == 200  # the middleware stack is built
        routed: list[str] = []
        inner = app.router.middleware_stack

        async def recording(scope, receive, send):
            routed.append(scope["path"])
            await inner(scope, receive, send)

        app.router.middleware_stack = recording
        ok = await client.get("/api/customer/v1/accounts/2301000001", headers=bearer(agent))
        assert ok.status_code == 200 and ok.headers["x-upstream"] == "echo"
        unknown = await client.get("/api/nowhere/v1/x", headers=bearer(agent))
        assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_service"
        assert unknown.headers["content-type"] == "application/problem+json"
        assert unknown.json()["instance"] == unknown.headers["x-request-id"]
        callback = await client.post("/callbacks/nowhere/notify", content=b"{}")
        assert callback.status_code == 403 and callback.json()["code"] == "ip_not_allowed"
        assert routed == []
        assert (await client.get("/.well-known/jwks.json")).status_code == 200
        assert (await client.get("/api/gateway/reports/channel-usage")).status_code == 401
        assert (await client.request("TRACE", "/api/customer/v1/x")).status_code == 405
        assert routed == [
            "/.well-known/jwks.json",
            "/api/gateway/reports/channel-usage",
            "/api/customer/v1/x",
        ]
    assert "/api/nowhere" not in generate_latest().decode()  # metric labels never carry a concrete path
