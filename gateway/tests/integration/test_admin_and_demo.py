"""Staff and client administration (the CLI's use cases) and the development demo set."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gateway.entrypoints import cli
from gateway.service_layer import admin
from gateway.settings import get_settings


async def test_seed_demo_adds_staff_per_role_and_partner_clients_once(
    in_db, hasher, sign_in, client, verifier
):
    added = await in_db(lambda uow: admin.seed_demo(uow, hasher))
    assert any(line.startswith("client icbc-harbin") for line in added)
    assert await in_db(lambda uow: admin.seed_demo(uow, hasher)) == []  # idempotent

    for username, _, roles in admin.DEMO_STAFF:
        response = await sign_in(username, admin.DEMO_PASSWORD)
        assert response.status_code == 200, (username, response.text)
        assert (await verifier.verify(response.json()["access_token"])).roles == set(roles)

    regulator = next(c for c in admin.DEMO_CLIENTS if c["client_id"] == "hlj-regulator")
    response = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": regulator["client_id"],
            "client_secret": regulator["secret"],
            "scope": "payments:write",
        },
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


async def test_add_staff_and_add_client_validate_their_input(in_db, hasher):
    with pytest.raises(admin.AdminError, match="roles"):
        await in_db(lambda uow: admin.add_staff(uow, hasher, username="x1", roles=["cashier"]))
    with pytest.raises(admin.AdminError, match="10 characters"):
        await in_db(
            lambda uow: admin.add_staff(uow, hasher, username="x2", roles=["agent"], password="short")
        )
    created = await in_db(lambda uow: admin.add_staff(uow, hasher, username="X3-Staff", roles=["agent"]))
    assert created.name == "x3-staff" and created.secret and len(created.secret) >= 20
    with pytest.raises(admin.AdminError, match="already exists"):
        await in_db(lambda uow: admin.add_staff(uow, hasher, username="x3-staff", roles=["agent"]))
    with pytest.raises(admin.AdminError, match="unknown scopes"):
        await in_db(lambda uow: admin.add_client(uow, hasher, client_id="b1", scopes=["bills:write"]))
    with pytest.raises(admin.AdminError, match="public"):
        await in_db(
            lambda uow: admin.add_client(
                uow, hasher, client_id="b2", scopes=[], public=True, grant_types=["client_credentials"]
            )
        )
    partner = await in_db(lambda uow: admin.add_client(uow, hasher, client_id="b3", scopes=["bills:read"]))
    assert partner.secret  # generated, shown once


def test_seed_demo_refuses_to_run_outside_development(monkeypatch):
    monkeypatch.setenv("UTILIS_ENVIRONMENT", "test")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.app, ["seed-demo"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code != 0 and "refused" in result.output
