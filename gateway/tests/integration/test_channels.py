"""Channels against the real database: the demo set registers the residents' apps and the assisted
staff tools in their channels, every client row is in the closed list (the database refuses others), and
registering a client checks its channel and the grants that channel may use."""

from __future__ import annotations

import secrets
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from gateway.adapters.orm import OAuthClient
from gateway.domain.channels import CHANNEL_VALUES
from gateway.entrypoints import cli
from gateway.service_layer import admin
from utilis_shared.auth import TokenVerifier

SMS_OTP = "urn:utilis:params:oauth:grant-type:sms-otp"
INSERT_FAX = (
    "INSERT INTO oauth_clients (client_id, name, client_type, grant_types, scopes, channel, status)"
    " VALUES (:id, '', 'public', ARRAY['password'], ARRAY[]::varchar[], 'fax', 'active')"
)


async def clients_by_channel(session_factory) -> dict[str, set[str]]:
    async with session_factory() as s:
        rows = await s.execute(select(OAuthClient.channel, OAuthClient.client_id))
    found: dict[str, set[str]] = {}
    for channel, client_id in rows:
        found.setdefault(channel, set()).add(client_id)
    return found


async def test_seed_demo_registers_a_client_per_main_channel(in_db, hasher, session_factory):
    await in_db(lambda uow: admin.seed_demo(uow, hasher))
    assert await in_db(lambda uow: admin.seed_demo(uow, hasher)) == []  # idempotent
    found = await clients_by_channel(session_factory)
    for channel, client_id in [
        ("mobile_app", "mobile-app"),
        ("wechat_mini_program", "wechat-mini-program"),
        ("alipay_mini_program", "alipay-mini-program"),
        ("web", "web-portal"),
        ("service_counter", "service-counter"),
        ("hotline", "hotline-desk"),
        ("staff_console", "staff-console"),
        ("bank", "icbc-harbin"),
        ("regulator", "hlj-regulator"),
    ]:
        assert client_id in found.get(channel, set()), (channel, found)
    assert set(found) <= set(CHANNEL_VALUES)
    async with session_factory() as s:
        counter = await s.get(OAuthClient, "service-counter")
        web = await s.get(OAuthClient, "web-portal")
    assert counter is not None and counter.client_type == "public"
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in counter.grant_types
    assert web is not None and web.client_type == "public" and SMS_OTP in web.grant_types


async def test_a_resident_signing_in_on_the_mini_program_gets_its_channel(
    app, client, in_db, hasher, verifier: TokenVerifier
):
    await in_db(lambda uow: admin.seed_demo(uow, hasher))
    phone = f"139{secrets.randbelow(10**8):08d}"
    sent = await client.post("/oauth/sms-codes", data={"phone": phone, "client_id": "wechat-mini-program"})
    assert sent.status_code == 202, sent.text
    code = app.state.sms_sender.last_code(phone)
    form = {"grant_type": SMS_OTP, "phone": phone, "code": code, "client_id": "wechat-mini-program"}
    response = await client.post("/oauth/token", data=form)
    assert response.status_code == 200, response.text
    principal = await verifier.verify(response.json()["access_token"])
    assert principal.is_resident and principal.channel == "wechat_mini_program"


async def test_the_database_refuses_a_client_in_an_unknown_channel(session_factory):
    async with session_factory() as s:
        with pytest.raises(IntegrityError, match="ck_oauth_clients_known_channel"):
            await s.execute(
                text(INSERT_FAX),
                {"id": f"fax-{uuid.uuid4().hex[:8]}"},
            )


@pytest.mark.parametrize(
    ("channel", "grants", "public", "message"),
    [
        ("wechat", None, False, "unknown channel"),
        ("", None, False, "unknown channel"),
        ("web", ["client_credentials"], False, "may not use client_credentials"),
        ("bank", [SMS_OTP], True, "may not use"),
        ("mobile_app", ["password"], True, "may not use password"),
        ("regulator", ["password", "refresh_token"], True, "may not use password"),
    ],
)
async def test_add_client_checks_the_channel_and_its_grants(in_db, hasher, channel, grants, public, message):
    with pytest.raises(admin.AdminError, match=message):
        await in_db(
            lambda uow: admin.add_client(
                uow,
                hasher,
                client_id=f"c-{uuid.uuid4().hex[:8]}",
                scopes=[],
                channel=channel,
                grant_types=grants,
                public=public,
            )
        )


async def test_add_client_stores_the_channel_normalised(in_db, hasher, session_factory):
    client_id = f"pay-{uuid.uuid4().hex[:8]}"
    await in_db(
        lambda uow: admin.add_client(
            uow, hasher, client_id=client_id, scopes=["payments:write"], channel=" Payment_Provider "
        )
    )
    async with session_factory() as s:
        row = await s.get(OAuthClient, client_id)
    assert row is not None and row.channel == "payment_provider"


def test_the_cli_refuses_an_unknown_channel_before_touching_the_database():
    result = CliRunner().invoke(cli.app, ["add-client", "x-bank", "--channel", "wechat"])
    assert result.exit_code == 2 and "wechat" in result.output
