"""Loading aggregates with exactly the relations a use case needs (relations are ``lazy="raise"``)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from customer.adapters.orm import Account, Customer, Meter

CUSTOMER_FULL = (
    selectinload(Customer.contacts),
    selectinload(Customer.tags),
)
ACCOUNT_FULL = (
    selectinload(Account.premise),
    selectinload(Account.meters),
)


async def get_customer(
    session: AsyncSession, customer_id: uuid.UUID, *, for_update: bool = False
) -> Customer | None:
    stmt = select(Customer).where(Customer.id == customer_id).options(*CUSTOMER_FULL)
    if for_update:
        stmt = stmt.with_for_update(of=Customer)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_customer_with_accounts(session: AsyncSession, customer_id: uuid.UUID) -> Customer | None:
    stmt = (
        select(Customer)
        .where(Customer.id == customer_id)
        .options(
            *CUSTOMER_FULL,
            selectinload(Customer.accounts).joinedload(Account.premise),
            selectinload(Customer.accounts).selectinload(Account.meters),
        )
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_account(session: AsyncSession, account_no: str, *, for_update: bool = False) -> Account | None:
    stmt = select(Account).where(Account.account_no == account_no).options(*ACCOUNT_FULL)
    if for_update:
        stmt = stmt.with_for_update(of=Account)
    return (await session.execute(stmt)).scalar_one_or_none()


async def installed_meter(session: AsyncSession, account_id: uuid.UUID, serial_no: str) -> Meter | None:
    stmt = (
        select(Meter)
        .where(Meter.account_id == account_id, Meter.serial_no == serial_no, Meter.status == "installed")
        .with_for_update()
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def holder_of(session: AsyncSession, account_no: str) -> uuid.UUID | None:
    stmt = select(Account.customer_id).where(Account.account_no == account_no)
    return (await session.execute(stmt)).scalar_one_or_none()
