"""Residents: the accounts bound to a phone number (looked up by its blind index, the same key ring as the
customer service, so the customer service's ``phone_bidx`` and ours agree in a deployment)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from gateway.adapters.orm import ResidentAccount
from gateway.service_layer.sms_codes import InvalidPhone, normalise_phone
from utilis_shared.db import UnitOfWork
from utilis_shared.pii import PiiCipher


def phone_index(uow: UnitOfWork, phone: str) -> str:
    number = normalise_phone(phone)
    if number is None:
        raise InvalidPhone("The phone number is not a mainland China mobile number.")
    return PiiCipher.from_settings(uow.settings).blind_index(number, field="phone")


async def bind_accounts(
    uow: UnitOfWork, phone: str, account_nos: Iterable[str], *, source: str = "manual"
) -> list[str]:
    """Bind ``account_nos`` to ``phone`` (idempotent); the accounts newly bound. The caller commits."""
    bidx = phone_index(uow, phone)
    wanted = sorted({a.strip() for a in account_nos if a.strip()})
    if not wanted:
        return []
    result = await uow.session.execute(
        insert(ResidentAccount)
        .values([{"phone_bidx": bidx, "account_no": a, "source": source} for a in wanted])
        .on_conflict_do_nothing()
        .returning(ResidentAccount.account_no)
    )
    return sorted(result.scalars())


async def bound_accounts(uow: UnitOfWork, phone_bidx: str) -> tuple[str, ...]:
    rows = await uow.session.scalars(
        select(ResidentAccount.account_no)
        .where(ResidentAccount.phone_bidx == phone_bidx)
        .order_by(ResidentAccount.account_no)
    )
    return tuple(rows)
