"""Who may do what (deny by default) and every bad input a 4xx problem document with a stable code."""

from __future__ import annotations

QUOTE = {"period_start": "2026-03-01", "period_end": "2026-04-01", "volume": "10"}


async def test_roles(client, auth, gas_plan) -> None:
    body = gas_plan()
    assert (await client.post("/v1/tariff-plans", json=body, headers=auth("admin"))).status_code == 201
    code = body["code"]
    routes = {
        "list": ("GET", "/v1/tariff-plans", None),
        "versions": ("GET", f"/v1/tariff-plans/{code}/versions", None),
        "publish": ("POST", "/v1/tariff-plans", gas_plan()),
        "quote": ("POST", f"/v1/tariff-plans/{code}/quote", QUOTE),
    }
    allowed = {
        "billing_clerk": {"list", "versions", "publish", "quote"},
        "admin": {"list", "versions", "publish", "quote"},
        "agent": {"list", "versions", "quote"},
        "analyst": {"list", "versions", "quote"},
        "inspector": set(),
        "technician": set(),
        "dispatcher": set(),
        "resident": {"quote"},
    }
    for who, may in allowed.items():
        headers = auth(accounts=["2000000001"]) if who == "resident" else auth(who)
        for name, (method, url, payload) in routes.items():
            if name == "publish":
                payload = gas_plan()
            response = await client.request(method, url, json=payload, headers=headers)
            if name in may:
                assert response.status_code in (200, 201), (who, name, response.text)
            else:
                assert response.status_code == 403, (who, name, response.text)
                assert response.json()["code"] == "forbidden"
    response = await client.get("/v1/tariff-plans")
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")
    response = await client.get("/v1/tariff-plans", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401


async def test_bad_publications(client, auth, gas_plan) -> None:
    headers = auth("billing_clerk")

    async def refused(body, status, problem, extra_headers=None):
        response = await client.post("/v1/tariff-plans", json=body, headers=headers | (extra_headers or {}))
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == problem
        return response.json()

    float_price = gas_plan()
    float_price["components"][0]["tiers"][0]["price"] = 2.6
    await refused(float_price, 422, "validation_failed")
    unordered = gas_plan()
    unordered["components"][0]["tiers"][1]["up_to"] = "100"
    await refused(unordered, 422, "validation_failed")
    await refused(gas_plan(code="Not A Code"), 422, "validation_failed")
    await refused(gas_plan(utility="water"), 422, "validation_failed")
    await refused(gas_plan(components=[]), 422, "validation_failed")
    await refused(gas_plan(components=[{"kind": "mystery"}]), 422, "validation_failed")
    await refused(gas_plan(surprise=1), 422, "validation_failed")
    problem = await refused(gas_plan(volume_unit=None), 422, "invalid_tariff_plan")
    assert "volume_unit" in problem["errors"][0]["message"]
    await refused(gas_plan(effective_to="2025-12-31"), 422, "invalid_effective_period")
    response = await client.post(
        "/v1/tariff-plans", content=b"{not json", headers=headers | {"Content-Type": "application/json"}
    )
    assert (response.status_code, response.json()["code"]) == (400, "malformed_json")
    await refused(gas_plan(), 400, "invalid_idempotency_key", {"Idempotency-Key": "not-a-uuid"})
    await refused(gas_plan(), 422, "validation_failed", {"Idempotency-Key": "x" * 101})


async def test_bad_reads(client, auth) -> None:
    headers = auth("agent")
    response = await client.get("/v1/tariff-plans/no-such-plan/versions", headers=headers)
    assert (response.status_code, response.json()["code"]) == (404, "tariff_plan_not_found")
    response = await client.get("/v1/tariff-plans/Bad%20Code/versions", headers=headers)
    assert (response.status_code, response.json()["code"]) == (422, "validation_failed")
    response = await client.get("/v1/tariff-plans", params={"on": "2026-13-01"}, headers=headers)
    assert (response.status_code, response.json()["code"]) == (422, "validation_failed")
    response = await client.get("/v1/tariff-plans", params={"utility": "water"}, headers=headers)
    assert (response.status_code, response.json()["code"]) == (422, "validation_failed")
