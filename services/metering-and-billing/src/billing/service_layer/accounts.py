"""What billing keeps of the customer service's accounts (``billing_accounts``), from ``customer.events``.

The customer service owns accounts; billing keeps the few fields that price a bill: utility, customer class
(tariff class), household size (wider tiers), status (suspended premises pay a share of area charges),
heated area and district (billing runs select by district). Handlers are idempotent by construction: the
consumer's inbox records each event id in the same transaction (an event delivered twice counts once),
and a row only moves forward in event time (``last_event_at``), so a replayed or late event cannot roll
it back. Events about an account billing has never seen opened are ignored (they are keyed by account
number, so its ``opened`` comes first).
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert

from billing.adapters.orm import BillingAccount
from billing.service_layer import readings, telemetry
from utilis_shared.db import UnitOfWork
from utilis_shared.events import Event
from utilis_shared.inbox import HandlerRegistry

log = logging.getLogger(__name__)

registry = HandlerRegistry()

_table = BillingAccount.__table__


def _area(premise: dict[str, Any] | None) -> Decimal | None:
    value = (premise or {}).get("heated_area_m2")
    return None if value is None else Decimal(str(value))


@registry.on("customer.account.opened")
async def account_opened(uow: UnitOfWork, event: Event) -> None:
    data = event.data
    values = {
        "account_no": data["account_no"],
        "utility": data["utility"],
        "customer_class": data["customer_class"],
        "household_size": data["household_size"],
        "status": "active",
        "heated_area_m2": _area(data.get("premise")),
        "district": (data.get("premise") or {}).get("district"),
        "last_event_at": event.time,
    }
    stmt = insert(BillingAccount).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["account_no"],
        set_={k: stmt.excluded[k] for k in values if k != "account_no"} | {"updated_at": func.now()},
        where=_table.c.last_event_at <= stmt.excluded.last_event_at,
    )
    await uow.session.execute(stmt)
    # readings and telemetry: the account's meters (with their installation readings) and its premise
    for meter in data.get("meters") or []:
        await readings.keep_meter(uow, data["account_no"], meter, event.time)
    premise_id = (data.get("premise") or {}).get("premise_id")
    if premise_id:
        await telemetry.keep_premise(uow, data["account_no"], str(premise_id), event.time)


async def _change(uow: UnitOfWork, account_no: str, event_time: datetime, **values: Any) -> None:
    result = await uow.session.execute(
        update(BillingAccount)
        .where(BillingAccount.account_no == account_no, BillingAccount.last_event_at <= event_time)
        .values(**values, last_event_at=event_time, updated_at=func.now())
    )
    if result.rowcount == 0:
        log.info("account event ignored (unknown account or older than the stored state)")


@registry.on("customer.account.closed")
async def account_closed(uow: UnitOfWork, event: Event) -> None:
    await _change(uow, event.data["account_no"], event.time, status="closed")


@registry.on("customer.account.suspended")
async def account_suspended(uow: UnitOfWork, event: Event) -> None:
    await _change(uow, event.data["account_no"], event.time, status="suspended")


@registry.on("customer.account.resumed")
async def account_resumed(uow: UnitOfWork, event: Event) -> None:
    await _change(uow, event.data["account_no"], event.time, status="active")


@registry.on("customer.account.updated")
async def account_updated(uow: UnitOfWork, event: Event) -> None:
    data = event.data
    await _change(
        uow,
        data["account_no"],
        event.time,
        customer_class=data["customer_class"],
        household_size=data["household_size"],
    )


@registry.on("customer.premise.updated")
async def premise_updated(uow: UnitOfWork, event: Event) -> None:
    premise = event.data.get("premise") or {}
    for account_no in event.data.get("account_nos", []):
        await _change(
            uow, account_no, event.time, heated_area_m2=_area(premise), district=premise.get("district")
        )
        if premise.get("premise_id"):
            await telemetry.keep_premise(uow, account_no, str(premise["premise_id"]), event.time)


@registry.on("customer.meter.installed")
async def meter_installed(uow: UnitOfWork, event: Event) -> None:
    await readings.keep_meter(uow, event.data["account_no"], event.data["meter"], event.time)


@registry.on("customer.meter.replaced")
async def meter_replaced(uow: UnitOfWork, event: Event) -> None:
    await readings.keep_replacement(uow, event.data, event.time)
