"""Assisted service as the customer service sees it: a token the gateway issues by RFC 8693 token exchange
speaks for one resident's account (``kind: resident``, ``account_nos`` = that account) and names the staff
member behind it in ``act``. What is done with it is audited with the staff member as the actor and the
resident as ``on_behalf_of``; it opens no more than the resident's own token would."""

from __future__ import annotations

from sqlalchemy import select

from customer.adapters.orm import AuditEntry


def assisted(issuer, account_no: str, *, staff: str = "agent-counter-7", channel: str = "service_counter"):
    """Headers with a token shaped as the gateway's token exchange shapes it (gateway/README.md)."""
    token = issuer.mint(
        f"resident:account:{account_no}",
        kind="resident",
        account_nos=[account_no],
        channel=channel,
        act={"sub": staff, "roles": ["agent"]},
        ttl_seconds=600,
    )
    return {"Authorization": f"Bearer {token}"}


async def test_what_staff_do_for_a_resident_is_audited_as_staff_on_behalf_of_the_resident(
    client, auth, issuer, open_account, session_factory
):
    account = await open_account()
    no, holder = account["account_no"], account["customer_id"]
    headers = assisted(issuer, no, channel="hotline")

    view = await client.get(f"/v1/accounts/{no}/view", headers=headers)
    assert view.status_code == 200, view.text

    async with session_factory() as s:
        rows = (
            await s.scalars(
                select(AuditEntry).where(
                    AuditEntry.entity_id == holder, AuditEntry.on_behalf_of == f"resident:account:{no}"
                )
            )
        ).all()
    assert len(rows) == 1
    (row,) = rows
    assert (row.actor, row.actor_kind, row.channel) == ("agent-counter-7", "staff", "hotline")
    assert row.action == "customer.viewed" and row.changes["account_no"] == no

    # The admin's audit trail of the customer shows both identities.
    trail = await client.get(f"/v1/customers/{holder}/audit", headers=auth("admin"))
    assert trail.status_code == 200, trail.text
    entries = [e for e in trail.json()["items"] if e["on_behalf_of"] == f"resident:account:{no}"]
    assert [(e["actor"], e["actor_kind"], e["channel"]) for e in entries] == [
        ("agent-counter-7", "staff", "hotline")
    ]


async def test_an_assisted_token_opens_only_the_residents_account_and_no_staff_operation(
    client, issuer, open_account
):
    mine, theirs = await open_account(), await open_account()
    headers = assisted(issuer, mine["account_no"])
    other = await client.get(f"/v1/accounts/{theirs['account_no']}/view", headers=headers)
    assert other.status_code == 404 and other.json()["code"] == "account_not_found"
    # The agent's own role does not travel in the assisted token: staff-only changes stay refused.
    suspend = await client.post(
        f"/v1/accounts/{mine['account_no']}/suspension", headers=headers, json={"reason": "报停"}
    )
    assert suspend.status_code == 403 and suspend.json()["code"] == "forbidden"
    search = await client.get("/v1/customers", headers=headers)
    assert search.status_code == 403
