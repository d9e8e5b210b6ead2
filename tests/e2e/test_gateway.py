"""Issue 3's acceptance, end to end: the running gateway in front of the running customer service, with
tokens the gateway issues and the services verify against its JWKS."""

from __future__ import annotations

import json

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

MOBILE_APP = "mobile-app"
STAFF_CONSOLE = "staff-console"
SMS_OTP = "urn:utilis:params:oauth:grant-type:sms-otp"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_resident_reads_their_own_360_view_and_not_another_residents(
    customer_api, staff_login, resident_for, phone, open_account
):
    agent = await staff_login("agent")
    mine_phone, theirs_phone = phone(), phone()
    mine = await open_account(customer_api, agent, mine_phone)
    theirs = await open_account(customer_api, agent, theirs_phone)
    me = await resident_for(mine_phone, mine)
    view = await customer_api.get(f"/v1/accounts/{mine}/view", headers=me)
    assert view.status_code == 200, view.text
    assert view.json()["accounts"][0]["account"]["account_no"] == mine
    assert mine_phone not in view.text  # masked
    other = await customer_api.get(f"/v1/accounts/{theirs}/view", headers=me)
    assert other.status_code == 404 and other.json()["code"] == "account_not_found"
    # Residents cannot search the archive at all: refused at the gateway by the policy table.
    search = await customer_api.get("/v1/customers", params={"phone": theirs_phone}, headers=me)
    assert search.status_code == 403 and search.json()["code"] == "forbidden"


async def test_an_agent_searches_customers_and_an_inspector_cannot(
    customer_api, staff_login, phone, open_account
):
    agent, inspector = await staff_login("agent"), await staff_login("inspector")
    number = phone()
    no = await open_account(customer_api, agent, number)
    found = await customer_api.get("/v1/customers", params={"phone": number}, headers=agent)
    assert found.status_code == 200 and found.json()["items"][0]["account_nos"] == [no]
    refused = await customer_api.get("/v1/customers", params={"phone": number}, headers=inspector)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"


async def test_a_partner_gets_only_its_scopes_by_client_credentials(
    gateway_api, customer_api, partner_client, staff_login, phone, open_account
):
    client_id, secret = await partner_client("accounts:read", "bills:read")
    auth = (client_id, secret)
    issued = await gateway_api.post(
        "/oauth/token", data={"grant_type": "client_credentials", "scope": "accounts:read"}, auth=auth
    )
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assert issued.json()["scope"] == "accounts:read" and "refresh_token" not in issued.json()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["kind"] == "partner" and claims["scope"] == "accounts:read" and claims["sub"] == client_id
    wider = await gateway_api.post(
        "/oauth/token", data={"grant_type": "client_credentials", "scope": "payments:write"}, auth=auth
    )
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"

    no = await open_account(customer_api, await staff_login("agent"), phone())
    looked_up = await customer_api.get(f"/v1/accounts/{no}", headers=bearer(token))
    assert looked_up.status_code == 200 and looked_up.json()["account_no"] == no
    view = await customer_api.get(f"/v1/accounts/{no}/view", headers=bearer(token))
    assert view.status_code == 403


def _b64(data: dict) -> str:
    return jwt.utils.base64url_encode(json.dumps(data).encode()).decode()


async def test_forged_tokens_are_refused_by_the_gateway_and_by_the_service_itself(
    customer_api, staff_login, platform
):
    agent = (await staff_login("agent"))["Authorization"].removeprefix("Bearer ")
    header, payload, signature = agent.split(".")
    claims = jwt.decode(agent, options={"verify_signature": False})
    kid = jwt.get_unverified_header(agent)["kid"]
    foreign_key = ec.generate_private_key(ec.SECP256R1())
    forged = {
        "tampered payload": ".".join([header, _b64({**claims, "roles": ["admin"]}), signature]),
        "alg none": ".".join([_b64({"alg": "none", "typ": "JWT", "kid": kid}), payload, ""]),
        "unknown kid": jwt.encode(claims, foreign_key, algorithm="ES256", headers={"kid": "not-published"}),
        "right kid, wrong key": jwt.encode(claims, foreign_key, algorithm="ES256", headers={"kid": kid}),
        "HS256 with the public key": ".".join([_b64({"alg": "HS256", "kid": kid}), payload, signature]),
    }
    direct_port = platform.services["customer"].processes["api"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{direct_port}", timeout=10) as direct:
        assert (await direct.get("/v1/customers", headers=bearer(agent))).status_code == 200
        for name, token in forged.items():
            through_gateway = await customer_api.get("/v1/customers", headers=bearer(token))
            assert through_gateway.status_code == 401, (name, through_gateway.text)
            # A request that bypassed the gateway meets the same verification in the service.
            bypass = await direct.get("/v1/customers", headers=bearer(token))
            assert bypass.status_code == 401, (name, bypass.text)


async def test_a_refresh_token_used_twice_revokes_the_family(gateway_api, new_staff):
    username, password = await new_staff("agent")
    first = await gateway_api.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "username": username,
            "password": password,
            "client_id": STAFF_CONSOLE,
        },
    )
    refresh = first.json()["refresh_token"]
    form = {"grant_type": "refresh_token", "client_id": STAFF_CONSOLE}
    second = await gateway_api.post("/oauth/token", data={**form, "refresh_token": refresh})
    assert second.status_code == 200
    reused = await gateway_api.post("/oauth/token", data={**form, "refresh_token": refresh})
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # The whole family is gone, the token rotated in between too.
    newest = await gateway_api.post(
        "/oauth/token", data={**form, "refresh_token": second.json()["refresh_token"]}
    )
    assert newest.status_code == 400 and newest.json()["error"] == "invalid_grant"


async def test_a_revoked_access_token_is_refused(gateway_api, customer_api, staff_login):
    agent = await staff_login("agent")
    token = agent["Authorization"].removeprefix("Bearer ")
    assert (await customer_api.get("/v1/customers", headers=agent)).status_code == 200
    revoked = await gateway_api.post("/oauth/revoke", data={"token": token, "client_id": STAFF_CONSOLE})
    assert revoked.status_code == 200
    after = await customer_api.get("/v1/customers", headers=agent)
    assert after.status_code == 401 and after.json()["code"] == "token_revoked"


async def test_an_sms_code_guessed_past_the_limit_is_burned(resident_app, phone, sms_code):
    number = phone()
    sent = await resident_app.post("/oauth/sms-codes", data={"phone": number, "client_id": MOBILE_APP})
    assert sent.status_code == 202
    code = sms_code(number)
    form = {"grant_type": SMS_OTP, "phone": number, "client_id": MOBILE_APP}
    for attempt in range(5):
        wrong = f"{(int(code) + 1 + attempt) % 10**6:06d}"
        refused = await resident_app.post("/oauth/token", data={**form, "code": wrong})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    # The right code no longer works: five wrong guesses burned it.
    late = await resident_app.post("/oauth/token", data={**form, "code": code})
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/customer/v1/internal/anything"),
        ("DELETE", "/api/customer/v1/customers"),
        ("GET", "/api/customer/docs"),
    ],
)
async def test_a_route_with_no_policy_is_refused(gateway_api, staff_login, method, path):
    admin = await staff_login("admin")
    refused = await gateway_api.request(method, path, headers=admin)
    assert refused.status_code == 403 and refused.json()["code"] == "no_policy"


async def test_the_merged_openapi_covers_every_customer_route_with_its_policy(gateway_api, platform):
    merged = (await gateway_api.get("/api/openapi.json")).json()
    port = platform.services["customer"].processes["api"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as direct:
        own = (await direct.get("/openapi.json")).json()
    service_operations = {
        (method, f"/api/customer{path}")
        for path, item in own["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete") and path.startswith("/v1/")
    }
    merged_operations = {
        (method, path)
        for path, item in merged["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    # Every route the customer service publishes has a row in the policy table (a route without one would
    # be refused: this keeps the table and the service in step).
    assert service_operations <= merged_operations, service_operations - merged_operations
    view = merged["paths"]["/api/customer/v1/accounts/{account_no}/view"]["get"]
    assert "residents" in view["x-utilis-access"] and view["security"]
    assert "/oauth/token" in merged["paths"]
    assert {"bearer", "oauth2"} <= set(merged["components"]["securitySchemes"])
    assert "x-utilis-unavailable" not in merged


async def test_the_gateway_attributes_requests_to_the_client_channel(gateway_api, customer_api, staff_login):
    agent = await staff_login("agent")
    claims = jwt.decode(agent["Authorization"].removeprefix("Bearer "), options={"verify_signature": False})
    metrics = (await gateway_api.get("/metrics")).text
    before = _sample(metrics, "utilis_gateway_channel_requests_total", channel=claims["channel"])
    assert (await customer_api.get("/v1/customers", headers=agent)).status_code == 200
    after = _sample(
        (await gateway_api.get("/metrics")).text,
        "utilis_gateway_channel_requests_total",
        channel=claims["channel"],
    )
    assert after == before + 1


def _sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
