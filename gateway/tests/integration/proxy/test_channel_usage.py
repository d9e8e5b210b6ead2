"""Self-service usage per channel: proxied requests counted by the token's channel, added to the
database by the API process, and reported to analysts and the regulator's system."""

from __future__ import annotations

import uuid

from sqlalchemy import delete

from gateway.adapters.orm import ChannelUsage
from utilis_shared.timeutil import business_today

VIEW = "/api/customer/v1/accounts/2301000001/view"


async def test_requests_are_counted_per_channel_and_reported(gateway, token, in_db, app):
    await in_db(lambda uow: uow.session.execute(delete(ChannelUsage)))
    grants = {
        "mobile_app": 3,
        "wechat_mini_program": 2,
        "web": 1,
        "service_counter": 1,
        "staff_console": 1,
    }
    async with gateway(channel_usage_flush_seconds=3600) as (_, client):
        for channel, n in grants.items():
            kind = "staff" if channel in ("service_counter", "staff_console") else "resident"
            t = await app.state.tokens.sign(_grant(kind, channel))
            for _ in range(n):
                r = await client.get(VIEW, headers={"Authorization": f"Bearer {t}"})
                assert r.status_code == 200, r.text
        refused = await client.get("/api/customer/v1/nothing", headers={"Authorization": f"Bearer {t}"})
        assert refused.status_code == 403  # refused requests are not usage
        analyst = await token(roles=("analyst",))
        report = await client.get(
            "/api/gateway/reports/channel-usage", headers={"Authorization": f"Bearer {analyst}"}
        )
    assert report.status_code == 200, report.text
    body = report.json()
    today = business_today().isoformat()
    assert body["to"] == today
    by_channel = {row["channel"]: row for row in body["channels"]}
    for channel, n in grants.items():
        assert by_channel[channel]["requests"] == n, channel
    assert by_channel["ivr"]["requests"] == 0  # every registered channel is listed
    assert by_channel["mobile_app"]["self_service"] and by_channel["mobile_app"]["label"] == "手机App"
    assert not by_channel["service_counter"]["self_service"]
    assert body["self_service_requests"] == 6 and body["total_requests"] == 8
    assert body["self_service_share"] == round(6 / 7, 4)  # self-service / (self-service + assisted)
    assert {"day": today, "channel": "web", "requests": 1} in body["by_day"]


async def test_counts_from_several_flushes_and_processes_add_up(gateway, app, in_db, settings):
    await in_db(lambda uow: uow.session.execute(delete(ChannelUsage)))
    t = await app.state.tokens.sign(_grant("resident", "ivr"))
    for _ in range(2):  # two gateway processes, one after the other, both write into the same row
        async with gateway(channel_usage_flush_seconds=3600) as (gw, client):
            for _ in range(2):
                assert (await client.get(VIEW, headers={"Authorization": f"Bearer {t}"})).status_code == 200
            assert await gw.state.channel_usage.flush() == 2
            assert await gw.state.channel_usage.flush() == 0  # nothing counted twice
    rows = await in_db(lambda uow: uow.session.get(ChannelUsage, (business_today(), "ivr", "customer")))
    assert rows.requests == 4


async def test_the_report_is_for_analysts_and_the_regulator_only(gateway, token):
    async with gateway() as (_, client):
        for kind, roles, scopes, status in [
            ("staff", ("analyst",), frozenset(), 200),
            ("staff", ("admin",), frozenset(), 200),
            ("partner", (), frozenset({"reports:read"}), 200),
            ("staff", ("agent",), frozenset(), 403),
            ("partner", (), frozenset({"bills:read"}), 403),
            ("resident", (), frozenset(), 403),
        ]:
            t = await token(kind, roles=roles, scopes=scopes)
            r = await client.get(
                "/api/gateway/reports/channel-usage", headers={"Authorization": f"Bearer {t}"}
            )
            assert r.status_code == status, (kind, roles, scopes, r.text)
        analyst = {"Authorization": f"Bearer {await token(roles=('analyst',))}"}
        r = await client.get(
            "/api/gateway/reports/channel-usage?from=2026-11-20&to=2026-11-01", headers=analyst
        )
        assert r.status_code == 422 and r.json()["code"] == "invalid_period"
        r = await client.get(
            "/api/gateway/reports/channel-usage?from=2024-01-01&to=2026-11-01", headers=analyst
        )
        assert r.status_code == 422 and r.json()["code"] == "invalid_period"
        r = await client.get("/api/gateway/reports/channel-usage?from=yesterday", headers=analyst)
        assert r.status_code == 422
        assert (await client.get("/api/gateway/reports/channel-usage")).status_code == 401


def _grant(kind: str, channel: str):
    from gateway.domain.claims import Grant

    return Grant(
        subject=f"{kind}-{uuid.uuid4().hex[:6]}",
        kind=kind,
        client_id="test",
        channel=channel,
        roles=("agent",) if kind == "staff" else (),
        account_nos=("2301000001",) if kind == "resident" else (),
    )
