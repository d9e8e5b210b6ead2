"""Heating telemetry through the app against the real PostgreSQL: bulk samples (re-sent once, implausible
ones refused), the agent's view of an account (latest values, under the minimum with the Chinese sentence,
a site's own minimum, staleness, the substation when the premise has no data), access and bad input."""

from __future__ import annotations

import uuid
from datetime import timedelta

from utilis_shared.timeutil import utcnow


def sample(site_id, minutes_ago, supply=None, ret=None, kind="premise", device="d1"):
    body = {
        "site_kind": kind,
        "site_id": site_id,
        "measured_at": (utcnow() - timedelta(minutes=minutes_ago)).isoformat(),
        "device_id": device,
    }
    if supply is not None:
        body["supply_c"] = supply
    if ret is not None:
        body["return_c"] = ret
    return body


async def view(client, auth, account_no, who="agent"):
    headers = auth(who) if isinstance(who, str) else who
    return await client.get(f"/v1/accounts/{account_no}/heating-telemetry", headers=headers)


async def test_the_agent_sees_the_latest_values_and_the_return_under_the_minimum(
    client, auth, open_account, issuer
) -> None:
    premise = uuid.uuid4()
    account_no = await open_account(utility="heating", premise_id=premise)
    site = str(premise)
    samples = [
        sample(site, 120, "62.5", "50"),
        sample(site, 30, "60", "38"),
        sample(site, 10, "61.25"),  # supply only: the latest supply, the return stays at 38
        sample(site, 5, "500", "38"),  # a sensor fault
        sample(site, 20, None, None),
    ]
    scada = {"Authorization": f"Bearer {issuer.partner('scada-1', 'telemetry:write')}"}
    first = await client.post("/v1/telemetry/samples", json={"samples": samples}, headers=scada)
    assert first.status_code == 200, first.text
    assert first.json()["counts"] == {"accepted": 3, "duplicate": 0, "rejected": 2}
    codes = [i["code"] for i in first.json()["items"]]
    assert codes == [None, None, None, "implausible_temperature", "no_temperature"]
    again = await client.post(
        "/v1/telemetry/samples", json={"samples": samples[:3]}, headers=auth("technician")
    )
    assert again.json()["counts"] == {"accepted": 0, "duplicate": 3, "rejected": 0}

    response = await view(client, auth, account_no)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "below_minimum" and body["below_minimum"] is True
    assert body["sentence_zh"] == "您家的回水温度为 38°C，低于 45°C 的标准，我们将安排检查。"
    premise_view = body["premise"]
    assert (premise_view["supply_c"], premise_view["return_c"]) == ("61.25", "38.00")
    assert premise_view["difference_c"] == "23.25"
    assert premise_view["min_return_c"] == "45"
    assert 1700 <= premise_view["age_seconds"] <= 1900
    assert premise_view["needs_inspection"] is True
    assert body["substation"] is None

    # the site's own minimum
    configured = await client.put(
        f"/v1/telemetry/sites/premise/{site}",
        json={"name": "", "min_return_c": "35"},
        headers=auth("technician"),
    )
    assert configured.status_code == 200, configured.text
    body = (await view(client, auth, account_no, who="billing_clerk")).json()
    assert body["status"] == "ok"
    assert body["sentence_zh"] == "您家的回水温度为 38°C，达到 35°C 的标准，供热运行正常。"


async def test_stale_values_and_the_substation_fallback(client, auth, open_account) -> None:
    stale_premise, bare_premise = uuid.uuid4(), uuid.uuid4()
    stale = await open_account(utility="heating", premise_id=stale_premise)
    bare = await open_account(utility="heating", premise_id=bare_premise)
    substation = f"SUB-{uuid.uuid4().hex[:6]}"
    samples = [
        sample(str(stale_premise), 8 * 60, "55", "46"),
        sample(substation, 15, "70", "40", kind="substation"),
    ]
    posted = await client.post("/v1/telemetry/samples", json={"samples": samples}, headers=auth("technician"))
    assert posted.json()["counts"]["accepted"] == 2

    body = (await view(client, auth, stale)).json()
    assert body["status"] == "stale"
    assert "数据已超过 6 小时未更新" in body["sentence_zh"]

    no_data = (await view(client, auth, bare)).json()
    assert no_data["status"] == "no_data"
    assert no_data["sentence_zh"] == "暂未收到您家的回水温度数据，我们将安排核实。"

    for kind, site_id, config in (
        ("substation", substation, {"name": "阳光小区换热站"}),
        ("premise", str(bare_premise), {"substation_id": substation}),
    ):
        response = await client.put(
            f"/v1/telemetry/sites/{kind}/{site_id}", json=config, headers=auth("billing_clerk")
        )
        assert response.status_code == 200, response.text
    body = (await view(client, auth, bare)).json()
    assert body["status"] == "below_minimum"
    assert body["sentence_zh"] == "阳光小区换热站的回水温度为 40°C，低于 45°C 的标准，我们将安排检查。"
    assert body["premise"]["status"] == "no_data"
    assert body["substation"]["site_id"] == substation


async def test_telemetry_access_and_bad_input(client, auth, open_account, issuer) -> None:
    premise = uuid.uuid4()
    account_no = await open_account(utility="heating", premise_id=premise)
    other = await open_account(utility="heating")
    resident = auth(accounts=[account_no])
    assert (await view(client, auth, account_no, who=resident)).status_code == 200
    refused = await view(client, auth, other, who=resident)
    assert (refused.status_code, refused.json()["code"]) == (404, "account_not_found")
    unknown = await view(client, auth, "19999999999")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "account_not_found")
    for who in ("inspector", "analyst"):
        assert (await view(client, auth, account_no, who=who)).status_code == 403
    one = {"samples": [sample(str(premise), 1, "60", "50")]}
    for headers in (
        auth("agent"),
        auth(accounts=[account_no]),
        {"Authorization": f"Bearer {issuer.partner('x', 'readings:write')}"},
    ):
        assert (await client.post("/v1/telemetry/samples", json=one, headers=headers)).status_code == 403

    bad = [
        {"samples": []},
        {"samples": [sample(str(premise), 1, "sixty", "50")]},
        {"samples": [sample(str(premise), 1, "60.123", "50")]},
        {"samples": [sample(str(premise), 1, "60", "50", kind="building")]},
        {"samples": [{**sample(str(premise), 1, "60", "50"), "measured_at": "2026-11-01T08:00:00"}]},
    ]
    for body in bad:
        response = await client.post("/v1/telemetry/samples", json=body, headers=auth("technician"))
        assert (response.status_code, response.json()["code"]) == (422, "validation_failed"), body
    wrong = await client.put(
        "/v1/telemetry/sites/substation/S-1", json={"substation_id": "S-2"}, headers=auth("technician")
    )
    assert (wrong.status_code, wrong.json()["code"]) == (422, "validation_failed")
