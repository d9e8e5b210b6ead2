"""The consumer keeps billing_accounts from customer.events, against real Kafka and PostgreSQL: an account
opened appears with its utility, class, household size and area; a duplicate delivery counts once (inbox);
a later closure closes it; a late, older event does not roll it back. Events are built with the customer
service's own payload models and catalog, as its outbox would publish them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from billing.adapters.orm import BillingAccount
from billing.service_layer.consumers import registry
from customer.events import AccountClosed, AccountOpened, PremiseRef
from customer.events import catalog as customer_catalog
from utilis_shared import devstack
from utilis_shared.db import create_session_factory, inbox_messages
from utilis_shared.events import Event
from utilis_shared.inbox import EventConsumer


def opened(account_no: str, **overrides) -> Event:
    payload = AccountOpened(
        account_no=account_no,
        customer_id=uuid.uuid4(),
        customer_no="C000000123",
        utility="heating",
        customer_class="residential",
        household_size=5,
        opened_on=date(2026, 11, 1),
        premise=PremiseRef(
            premise_id=uuid.uuid4(),
            district="南岗区",
            community="学府四道街小区",
            building="12",
            unit="3",
            room="502",
            address="南岗区学府四道街小区12栋3单元502室",
            heated_area_m2=Decimal("89.50"),
            latitude=None,
            longitude=None,
        ),
        meters=[],
        contacts=[],
    )
    event = customer_catalog.build(payload, subject=account_no)
    return event.model_copy(update=overrides)


def closed(account_no: str) -> Event:
    payload = AccountClosed(
        account_no=account_no,
        utility="heating",
        closed_on=date(2026, 11, 20),
        final_reading=None,
        reason="拆迁",
    )
    return customer_catalog.build(payload, subject=account_no)


async def account(session_factory, account_no: str) -> BillingAccount | None:
    async with session_factory() as s:
        return await s.get(BillingAccount, account_no)


async def inbox_count(session_factory, *event_ids: uuid.UUID) -> int:
    async with session_factory() as s:
        return await s.scalar(
            select(func.count()).select_from(inbox_messages).where(inbox_messages.c.event_id.in_(event_ids))
        )


async def test_account_opened_then_closed_is_kept_once_and_never_rolled_back(settings, engine) -> None:
    session_factory = create_session_factory(engine)
    account_no = f"1{uuid.uuid4().int % 10**10:010d}"
    first = opened(account_no)
    # The same event delivered twice (a relay retry), then the closure, then a late replay of an older
    # "opened" with another id and an earlier time: the account must end closed.
    stale = opened(account_no, id=uuid.uuid4(), time=datetime.now(UTC) - timedelta(days=1), data=first.data)
    done = closed(account_no)
    await devstack.publish(
        settings.kafka_bootstrap, settings.topic("customer.events"), first, first, done, stale
    )

    consumer = EventConsumer(settings, session_factory, registry, settings.consumes)

    async def all_seen() -> bool:
        return await inbox_count(session_factory, first.id, done.id, stale.id) == 3

    await devstack.run_until(consumer, all_seen)

    row = await account(session_factory, account_no)
    assert row is not None
    assert (row.utility, row.customer_class, row.household_size) == ("heating", "residential", 5)
    assert row.heated_area_m2 == Decimal("89.50")
    assert row.status == "closed"
    assert row.last_event_at == done.time
    async with session_factory() as s:
        consumers = await s.scalar(
            select(func.count()).select_from(inbox_messages).where(inbox_messages.c.event_id == first.id)
        )
    assert consumers == 1


async def test_the_handlers_are_registered_for_the_customer_events_they_read() -> None:
    assert {"customer.account.opened", "customer.account.closed"} <= set(registry.handlers)
    customer_handled = {t for t in registry.handlers if t.startswith("customer.")}
    assert customer_handled <= set(customer_catalog.types)
