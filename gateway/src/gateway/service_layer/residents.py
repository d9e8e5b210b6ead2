"""Residents: the accounts they may act on, bound to their phone number (looked up by its blind index, the
same key ring as the customer service, so the customer service's ``phone_bidx`` and ours agree).

A binding (``resident_accounts``) has a source:

- ``customer``: the phone is a contact of the account's holder in the customer archive; kept current by
  the consumer of ``customer.events`` (``service_layer/bindings.py``), removed when the contacts change,
  the account is transferred away or closed. A resident cannot remove it (the service desk changes the
  contacts).
- ``verified``: the resident gave the account number and the holder's name (户号 + 户主姓名) through
  ``POST /api/gateway/me/accounts``; removed by the resident, or when the account changes holder or closes.
- ``manual``: bound by an operator (``gateway bind-phone``); removed by the resident or when the account
  closes.

A closed account is never in a token, whatever rows remain (``bound_accounts`` filters it).
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert

from gateway.adapters.orm import BindingAccount, BindingCustomer, ResidentAccount, ResidentIdentity
from gateway.service_layer.sms_codes import InvalidPhone, RateLimited, normalise_phone
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import Conflict, NotFound
from utilis_shared.pii import PiiCipher

SOURCE_CUSTOMER = "customer"
SOURCE_VERIFIED = "verified"
SOURCE_MANUAL = "manual"
REMOVABLE_SOURCES = (SOURCE_VERIFIED, SOURCE_MANUAL)
HOLDER_NAME_FIELD = "holder_name"
_NAME_DOTS = re.compile(r"[·•・‧∙⋅．.]")
_ACCOUNT_NO = re.compile(r"^[0-9A-Z]{6,20}$")
NO_MATCH = "No account matches this account number and holder name."


class AccountNotMatched(NotFound):
    """The same answer for an unknown account, a closed one and a wrong holder name (no enumeration)."""

    code = "account_not_found"


def phone_index(uow: UnitOfWork, phone: str) -> str:
    number = normalise_phone(phone)
    if number is None:
        raise InvalidPhone("The phone number is not a mainland China mobile number.")
    return PiiCipher.from_settings(uow.settings).blind_index(number, field="phone")


def normalise_holder_name(name: str) -> str:
    """The form a holder's name is compared in: NFKC (full-width letters and digits folded), no
    whitespace, one kind of middle dot (买买提·艾力 / 买买提•艾力), case folded (organisations)."""
    folded = unicodedata.normalize("NFKC", name)
    folded = "".join(ch for ch in folded if not ch.isspace())
    return _NAME_DOTS.sub("·", folded).casefold()


def holder_name_index(cipher: PiiCipher, name: str) -> str | None:
    normalised = normalise_holder_name(name)
    return cipher.blind_index(normalised, field=HOLDER_NAME_FIELD) if normalised else None


def normalise_account_no(account_no: str) -> str:
    return "".join(account_no.split()).upper()


async def bind_accounts(
    uow: UnitOfWork, phone: str, account_nos: Iterable[str], *, source: str = SOURCE_MANUAL
) -> list[str]:
    """Bind ``account_nos`` to ``phone`` (idempotent); the accounts newly bound. The caller commits."""
    return await bind_index(uow, phone_index(uow, phone), account_nos, source=source)


async def bind_index(
    uow: UnitOfWork, phone_bidx: str, account_nos: Iterable[str], *, source: str
) -> list[str]:
    """Bind ``account_nos`` to a phone blind index; an existing binding keeps its source."""
    wanted = sorted({a.strip() for a in account_nos if a.strip()})
    if not wanted:
        return []
    result = await uow.session.execute(
        insert(ResidentAccount)
        .values([{"phone_bidx": phone_bidx, "account_no": a, "source": source} for a in wanted])
        .on_conflict_do_nothing()
        .returning(ResidentAccount.account_no)
    )
    return sorted(result.scalars())


def _actable():
    """Bindings whose account is not known to be closed (accounts the gateway has not heard of count)."""
    return or_(BindingAccount.account_no.is_(None), BindingAccount.status != "closed")


async def bound_accounts(uow: UnitOfWork, phone_bidx: str) -> tuple[str, ...]:
    """The accounts a resident may act on now: what the token's ``account_nos`` carries."""
    rows = await uow.session.scalars(
        select(ResidentAccount.account_no)
        .outerjoin(BindingAccount, BindingAccount.account_no == ResidentAccount.account_no)
        .where(ResidentAccount.phone_bidx == phone_bidx, _actable())
        .order_by(ResidentAccount.account_no)
    )
    return tuple(rows)


@dataclass(frozen=True)
class Binding:
    account_no: str
    source: str
    bound_at: datetime

    @property
    def removable(self) -> bool:
        return self.source in REMOVABLE_SOURCES


async def list_bindings(uow: UnitOfWork, phone_bidx: str) -> list[Binding]:
    rows = await uow.session.execute(
        select(ResidentAccount.account_no, ResidentAccount.source, ResidentAccount.bound_at)
        .outerjoin(BindingAccount, BindingAccount.account_no == ResidentAccount.account_no)
        .where(ResidentAccount.phone_bidx == phone_bidx, _actable())
        .order_by(ResidentAccount.account_no)
    )
    return [Binding(a, s, t) for a, s, t in rows]


async def remember_resident(uow: UnitOfWork, subject: str, phone_bidx: str) -> None:
    """Record the phone blind index behind a resident ``sub`` (at sign-in and refresh; idempotent)."""
    await uow.session.execute(
        insert(ResidentIdentity)
        .values(subject=subject, phone_bidx=phone_bidx)
        .on_conflict_do_update(index_elements=[ResidentIdentity.subject], set_={"last_seen_at": func.now()})
    )


async def resident_phone_index(uow: UnitOfWork, subject: str) -> str | None:
    return await uow.session.scalar(
        select(ResidentIdentity.phone_bidx).where(ResidentIdentity.subject == subject)
    )


async def holder_matches(uow: UnitOfWork, account_no: str, holder_name: str) -> bool:
    """True when ``account_no`` is an open account whose holder's name is ``holder_name`` (normalised,
    compared by blind index). Unknown account, closed account, unknown holder, wrong name: all False."""
    cipher = PiiCipher.from_settings(uow.settings)
    given = holder_name_index(cipher, holder_name) or ""  # computed whatever the account: same work
    row = (
        await uow.session.execute(
            select(BindingCustomer.name_bidx, BindingCustomer.merged_into)
            .join(BindingAccount, BindingAccount.customer_id == BindingCustomer.customer_id)
            .where(BindingAccount.account_no == account_no, BindingAccount.status == "open")
        )
    ).first()
    stored = row.name_bidx if row is not None else None
    if row is not None and row.merged_into is not None:
        stored = await uow.session.scalar(
            select(BindingCustomer.name_bidx).where(BindingCustomer.customer_id == row.merged_into)
        )
    return hmac.compare_digest(given, stored or "x" * 64) and bool(given)


async def bind_verified(uow: UnitOfWork, phone_bidx: str, account_no: str, holder_name: str) -> None:
    """Bind ``account_no`` to the resident if ``holder_name`` is its holder's; else ``AccountNotMatched``."""
    number = normalise_account_no(account_no)
    if not _ACCOUNT_NO.match(number) or not await holder_matches(uow, number, holder_name):
        raise AccountNotMatched(NO_MATCH)
    await bind_index(uow, phone_bidx, [number], source=SOURCE_VERIFIED)


async def unbind(uow: UnitOfWork, phone_bidx: str, account_no: str) -> None:
    """Remove a binding the resident made (``verified``) or an operator made (``manual``); a binding from
    the customer record (the phone is the holder's contact) is refused with 409."""
    number = normalise_account_no(account_no)
    row = await uow.session.get(ResidentAccount, (phone_bidx, number), with_for_update=True)
    if row is None:
        raise NotFound("This account is not bound to you.", code="account_not_found")
    if row.source not in REMOVABLE_SOURCES:
        raise Conflict(
            "This account is bound because your phone is a contact on the customer record; ask the service"
            " desk to change the record's contacts.",
            code="binding_from_customer_record",
        )
    await uow.session.execute(
        delete(ResidentAccount).where(
            and_(ResidentAccount.phone_bidx == phone_bidx, ResidentAccount.account_no == number)
        )
    )


class BindingAttempts:
    """Wrong account-number/holder-name pairs per resident per UTC day, in Redis. An attempt is reserved
    before it is checked (so concurrent guesses cannot pass the limit) and given back when it succeeds."""

    def __init__(self, redis: Redis, *, prefix: str, daily_limit: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.daily_limit = daily_limit

    def _key(self, subject: str, now: datetime) -> str:
        return f"{self.prefix}bind:fail:{subject}:{now.strftime('%Y%m%d')}"

    async def reserve(self, subject: str) -> str:
        now = datetime.now(UTC)
        key = self._key(subject, now)
        day_end = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        retry_after = int((day_end - now).total_seconds()) + 1
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, retry_after, nx=True)
            count, _ = await pipe.execute()
        if count > self.daily_limit:
            await self.redis.decr(key)
            raise RateLimited(
                "Too many wrong account numbers or holder names today; try again tomorrow.", retry_after
            )
        return key

    async def give_back(self, key: str) -> None:
        await self.redis.decr(key)
