"""Keeping residents' account bindings current from the customer service's events (``customer.events``).

The gateway never reads the customer database. The consumer (``gateway consumer``, group ``gateway``)
keeps two local copies and derives the ``customer``-sourced rows of ``resident_accounts`` from them:

- ``binding_customers``: per holder, the blind index of the normalised name (the verification factor of
  binding by account number, field ``holder_name``) and the blind indexes of the contact phones (field
  ``phone``, exactly as ``residents.phone_index``: ``phone_enc`` is decrypted with the shared key ring,
  normalised, indexed; the phone itself is never stored), each stamped with its event's time;
- ``binding_accounts``: per account, its holder and whether it is closed.

Effects, by event type:

- ``customer.customer.registered`` / ``.updated``: the holder's name and phones (if newer than what is
  stored); its accounts re-synced when the phones changed.
- ``customer.account.opened``: the holder's phones (if newer) and the account's holder; its phones bound.
- ``customer.account.transferred``: the new holder; the old holder's ``customer`` bindings and every
  ``verified`` one (they proved the old holder's name) removed; the new holder's phones bound.
- ``customer.account.closed``: the account marked closed and every binding of it removed, ``manual``
  ones too (closure is final and a closed account must not be actable; ``bound_accounts`` also leaves
  out a closed account whatever rows an operator adds later).
- ``customer.customer.merged``: the duplicate's phones join the survivor's (as the customer service merges
  contacts) and the moved accounts follow the survivor.

Idempotent twice over: the inbox drops a redelivered event id, and every effect is a set operation
(binding a bound phone does nothing). Order: account events are keyed by account number (one partition,
in order); customer events by customer id, so an account's and its holder's events may interleave.
Each snapshot therefore keeps its event time and an older event never overwrites a newer one; and the
rows are locked holder first, account second, so two consumers (two partitions) serialise cleanly.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from gateway.adapters.orm import BindingAccount, BindingCustomer, ResidentAccount
from gateway.service_layer.residents import SOURCE_CUSTOMER, SOURCE_VERIFIED, holder_name_index
from gateway.service_layer.sms_codes import normalise_phone
from utilis_shared.db import UnitOfWork
from utilis_shared.events import Event
from utilis_shared.inbox import HandlerRegistry
from utilis_shared.pii import PiiCipher

log = logging.getLogger(__name__)

PHONE_FIELD = "phone"
MAX_MERGE_HOPS = 8

registry = HandlerRegistry()


class BindingEventError(ValueError):
    """An event the consumer cannot apply (it goes to the DLQ after the retries)."""


def _cipher(uow: UnitOfWork) -> PiiCipher:
    return PiiCipher.from_settings(uow.settings)


def contact_phone_indexes(cipher: PiiCipher, contacts: Iterable[dict]) -> list[str]:
    """Blind indexes of the contacts' phones: decrypted, normalised, indexed as ``residents.phone_index``.
    Numbers that are not mainland mobiles (landlines) cannot receive an SMS code: skipped."""
    out: set[str] = set()
    for contact in contacts:
        enc = contact.get("phone_enc")
        if not enc:
            continue
        number = normalise_phone(cipher.decrypt(enc, field=PHONE_FIELD))
        if number is None:
            log.info("contact phone is not a mobile number", extra={"phone": contact.get("phone_masked")})
            continue
        out.add(cipher.blind_index(number, field=PHONE_FIELD))
    return sorted(out)


def _uuid(data: dict, key: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(data[key]))
    except (KeyError, ValueError) as exc:
        raise BindingEventError(f"event without a valid {key}") from exc


def _account_no(data: dict) -> str:
    account_no = str(data.get("account_no") or "").strip()
    if not account_no:
        raise BindingEventError("event without account_no")
    return account_no


async def _lock_customer(uow: UnitOfWork, customer_id: uuid.UUID) -> BindingCustomer:
    """The holder's row, created if new, locked for this transaction."""
    await uow.session.execute(
        insert(BindingCustomer).values(customer_id=customer_id).on_conflict_do_nothing()
    )
    row = await uow.session.scalar(
        select(BindingCustomer)
        .where(BindingCustomer.customer_id == customer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


def _newer(stored: datetime | None, incoming: datetime) -> bool:
    return stored is None or stored <= incoming


async def _update_customer(
    uow: UnitOfWork,
    customer_id: uuid.UUID,
    at: datetime,
    *,
    phones: list[str] | None = None,
    name: str | None = None,
) -> BindingCustomer:
    row = await _lock_customer(uow, customer_id)
    if phones is not None and _newer(row.phones_at, at):
        row.phone_bidxs, row.phones_at = phones, at
    if name is not None and _newer(row.name_at, at):
        row.name_bidx, row.name_at = holder_name_index(_cipher(uow), name), at
    await uow.session.flush()
    return row


async def _resolve(uow: UnitOfWork, customer_id: uuid.UUID | None) -> BindingCustomer | None:
    """The holder, following merges to the surviving record."""
    seen = 0
    while customer_id is not None and seen < MAX_MERGE_HOPS:
        row = await uow.session.get(BindingCustomer, customer_id, populate_existing=True)
        if row is None or row.merged_into is None:
            return row
        customer_id, seen = row.merged_into, seen + 1
    return None


async def _lock_account(uow: UnitOfWork, account_no: str) -> BindingAccount | None:
    return await uow.session.scalar(
        select(BindingAccount)
        .where(BindingAccount.account_no == account_no)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def _assign_holder(
    uow: UnitOfWork, account_no: str, customer_id: uuid.UUID, at: datetime
) -> tuple[BindingAccount, bool]:
    """Make ``customer_id`` the account's holder unless a newer assignment or the closure is recorded;
    the account row and whether the holder changed."""
    account = await _lock_account(uow, account_no)
    if account is None:
        account = BindingAccount(
            account_no=account_no, customer_id=customer_id, status="open", holder_since=at
        )
        uow.session.add(account)
        await uow.session.flush()
        return account, True
    if account.status == "closed" or account.holder_since > at or account.customer_id == customer_id:
        return account, False
    account.customer_id, account.holder_since = customer_id, at
    await uow.session.flush()
    return account, True


async def resync_account(uow: UnitOfWork, account_no: str) -> None:
    """Make the account's ``customer`` bindings exactly its holder's current phones (none when closed or
    the holder is unknown). Other sources are left alone; a phone already bound keeps its source."""
    account = await _lock_account(uow, account_no)
    wanted: list[str] = []
    if account is not None and account.status == "open":
        holder = await _resolve(uow, account.customer_id)
        wanted = list(holder.phone_bidxs) if holder is not None else []
    stale = delete(ResidentAccount).where(
        ResidentAccount.account_no == account_no, ResidentAccount.source == SOURCE_CUSTOMER
    )
    if wanted:
        stale = stale.where(ResidentAccount.phone_bidx.not_in(wanted))
    await uow.session.execute(stale)
    if wanted:
        await uow.session.execute(
            insert(ResidentAccount)
            .values([{"phone_bidx": p, "account_no": account_no, "source": SOURCE_CUSTOMER} for p in wanted])
            .on_conflict_do_nothing()
        )


async def _accounts_of(uow: UnitOfWork, customer_ids: Iterable[uuid.UUID]) -> list[str]:
    rows = await uow.session.scalars(
        select(BindingAccount.account_no)
        .where(BindingAccount.customer_id.in_(list(customer_ids)))
        .order_by(BindingAccount.account_no)
        .with_for_update()
    )
    return list(rows)


async def _customers_merged_into(uow: UnitOfWork, survivor: uuid.UUID) -> list[uuid.UUID]:
    """The survivor and every record merged into it (directly or through another merge)."""
    found, frontier = [survivor], [survivor]
    for _ in range(MAX_MERGE_HOPS):
        rows = list(
            await uow.session.scalars(
                select(BindingCustomer.customer_id).where(BindingCustomer.merged_into.in_(frontier))
            )
        )
        rows = [r for r in rows if r not in found]
        if not rows:
            break
        found.extend(rows)
        frontier = rows
    return found


@registry.on("customer.customer.registered", "customer.customer.updated")
async def customer_changed(uow: UnitOfWork, event: Event) -> None:
    data = event.data
    customer_id = _uuid(data, "customer_id")
    before = await _lock_customer(uow, customer_id)
    old_phones = list(before.phone_bidxs)
    phones = contact_phone_indexes(_cipher(uow), data.get("contacts") or [])
    row = await _update_customer(uow, customer_id, event.time, phones=phones, name=data.get("name"))
    if sorted(row.phone_bidxs) == sorted(old_phones):
        return
    for account_no in await _accounts_of(uow, await _customers_merged_into(uow, customer_id)):
        await resync_account(uow, account_no)


@registry.on("customer.account.opened")
async def account_opened(uow: UnitOfWork, event: Event) -> None:
    data = event.data
    account_no, customer_id = _account_no(data), _uuid(data, "customer_id")
    phones = contact_phone_indexes(_cipher(uow), data.get("contacts") or [])
    await _update_customer(uow, customer_id, event.time, phones=phones)
    await _assign_holder(uow, account_no, customer_id, event.time)
    await resync_account(uow, account_no)


@registry.on("customer.account.transferred")
async def account_transferred(uow: UnitOfWork, event: Event) -> None:
    data = event.data
    account_no, to_customer = _account_no(data), _uuid(data, "to_customer_id")
    phones = contact_phone_indexes(_cipher(uow), data.get("contacts") or [])
    await _update_customer(uow, to_customer, event.time, phones=phones)
    _, changed = await _assign_holder(uow, account_no, to_customer, event.time)
    if changed:
        # Residents who bound it by the previous holder's name no longer know the holder.
        await uow.session.execute(
            delete(ResidentAccount).where(
                ResidentAccount.account_no == account_no, ResidentAccount.source == SOURCE_VERIFIED
            )
        )
    await resync_account(uow, account_no)


@registry.on("customer.account.closed")
async def account_closed(uow: UnitOfWork, event: Event) -> None:
    account_no = _account_no(event.data)
    account = await _lock_account(uow, account_no)
    if account is None:
        uow.session.add(
            BindingAccount(
                account_no=account_no,
                customer_id=None,
                status="closed",
                holder_since=event.time,
                closed_at=event.time,
            )
        )
    elif account.status != "closed":
        account.status, account.closed_at = "closed", event.time
    await uow.session.flush()
    await uow.session.execute(delete(ResidentAccount).where(ResidentAccount.account_no == account_no))


@registry.on("customer.customer.merged")
async def customers_merged(uow: UnitOfWork, event: Event) -> None:
    data = event.data
    survivor_id, merged_id = _uuid(data, "customer_id"), _uuid(data, "merged_customer_id")
    if survivor_id == merged_id:
        raise BindingEventError("a customer merged into itself")
    # Holder rows locked in id order (as the customer service does): no deadlock with the opposite merge.
    first, second = sorted([survivor_id, merged_id])
    rows = {first: await _lock_customer(uow, first), second: await _lock_customer(uow, second)}
    survivor, merged = rows[survivor_id], rows[merged_id]
    if merged.merged_into is None:
        merged.merged_into = survivor_id
        # The customer service appends the duplicate's contacts to the survivor's; a survivor snapshot newer
        # than the merge already shows the result.
        if survivor.phones_at is None or survivor.phones_at <= event.time:
            survivor.phone_bidxs = sorted(set(survivor.phone_bidxs) | set(merged.phone_bidxs))
            survivor.phones_at = max(filter(None, [survivor.phones_at, merged.phones_at, event.time]))
        if survivor.name_bidx is None:
            survivor.name_bidx, survivor.name_at = merged.name_bidx, merged.name_at
    await uow.session.flush()
    moved = {str(a) for a in data.get("moved_account_nos") or []}
    moved.update(await _accounts_of(uow, [merged_id]))
    for account_no in sorted(moved):
        await _assign_holder(uow, account_no, survivor_id, event.time)
    for account_no in sorted(set(await _accounts_of(uow, [survivor_id])) | moved):
        await resync_account(uow, account_no)


__all__ = ["contact_phone_indexes", "registry", "resync_account"]
