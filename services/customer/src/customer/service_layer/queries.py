"""Read side: search, single records and the 360° view. Reads never call another service: what other
services know about an account is already here, in ``account_projections``."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from customer.adapters.orm import Account, AccountProjection, Contact, Customer, DuplicateFlag, Premise
from utilis_shared.pii import PiiCipher
from utilis_shared.timeutil import utcnow

MAX_PAGE = 100
RECENT_BILLS = 6
RECENT_PAYMENTS = 5


@dataclass(frozen=True)
class SearchFilters:
    account_no: str | None = None
    phone: str | None = None
    id_number: str | None = None
    name: str | None = None
    address: str | None = None

    @property
    def used(self) -> list[str]:
        return [k for k, v in self.__dict__.items() if v]


def encode_cursor(value: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    padded = cursor + "=" * (-len(cursor) % 4)
    raw = base64.urlsafe_b64decode(padded.encode())
    return uuid.UUID(bytes=raw)


def _escape_like(fragment: str) -> str:
    return fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_statement(
    filters: SearchFilters, cipher: PiiCipher, *, after: uuid.UUID | None, limit: int
) -> Select:
    stmt = select(Customer).where(Customer.status == "active")
    if filters.account_no:
        stmt = stmt.where(
            Customer.id.in_(select(Account.customer_id).where(Account.account_no == filters.account_no))
        )
    if filters.phone:
        bidx = cipher.blind_index(filters.phone, field="phone")
        stmt = stmt.where(Customer.id.in_(select(Contact.customer_id).where(Contact.phone_bidx == bidx)))
    if filters.id_number:
        stmt = stmt.where(Customer.id_number_bidx == cipher.blind_index(filters.id_number, field="id_number"))
    if filters.name:
        stmt = stmt.where(Customer.name.ilike(f"%{_escape_like(filters.name)}%", escape="\\"))
    if filters.address:
        stmt = stmt.where(
            Customer.id.in_(
                select(Account.customer_id)
                .join(Premise, Premise.id == Account.premise_id)
                .where(Premise.address.ilike(f"%{_escape_like(filters.address)}%", escape="\\"))
            )
        )
    if after is not None:
        stmt = stmt.where(Customer.id > after)
    return stmt.order_by(Customer.id).limit(limit + 1)


async def search_customers(
    session: AsyncSession, cipher: PiiCipher, filters: SearchFilters, *, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    after = decode_cursor(cursor) if cursor else None
    rows = list(
        (await session.execute(search_statement(filters, cipher, after=after, limit=limit))).scalars()
    )
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    rows = rows[:limit]
    if not rows:
        return [], None
    ids = [c.id for c in rows]
    phones = dict(
        (
            await session.execute(
                select(Contact.customer_id, Contact.phone_masked).where(
                    Contact.customer_id.in_(ids), Contact.is_primary
                )
            )
        ).all()
    )
    accounts: dict[uuid.UUID, list[tuple[str, str]]] = {}
    for customer_id, account_no, address in await session.execute(
        select(Account.customer_id, Account.account_no, Premise.address)
        .join(Premise, Premise.id == Account.premise_id)
        .where(Account.customer_id.in_(ids))
        .order_by(Account.account_no)
    ):
        accounts.setdefault(customer_id, []).append((account_no, address))
    items = [
        {
            "id": c.id,
            "customer_no": c.customer_no,
            "kind": c.kind,
            "name": c.name,
            "id_number": c.id_number_masked,
            "phone": phones.get(c.id),
            "status": c.status,
            "account_nos": [a for a, _ in accounts.get(c.id, [])],
            "addresses": sorted({addr for _, addr in accounts.get(c.id, [])}),
        }
        for c in rows
    ]
    return items, next_cursor


async def projections_for(session: AsyncSession, account_nos: list[str]) -> dict[str, dict[str, Any]]:
    """The other services' view of each account, from local projections: one query for all accounts."""
    out: dict[str, dict[str, Any]] = {
        no: {
            "balance": None,
            "latest_bills": [],
            "recent_payments": [],
            "open_work_orders": [],
            "last_inspection": None,
            "as_of": None,
        }
        for no in account_nos
    }
    if not account_nos:
        return out
    rows = (
        await session.execute(
            select(AccountProjection)
            .where(AccountProjection.account_no.in_(account_nos))
            .order_by(AccountProjection.event_time.desc())
        )
    ).scalars()
    for row in rows:
        view = out[row.account_no]
        if view["as_of"] is None or row.event_time > view["as_of"]:
            view["as_of"] = row.event_time
        data = {**row.data, "event_time": row.event_time.isoformat()}
        if row.view == "balance":
            view["balance"] = data
        elif row.view == "bill" and len(view["latest_bills"]) < RECENT_BILLS:
            view["latest_bills"].append(data)
        elif row.view == "payment" and len(view["recent_payments"]) < RECENT_PAYMENTS:
            view["recent_payments"].append(data)
        elif row.view == "work_order" and data.get("status") not in ("closed", "cancelled", "completed"):
            view["open_work_orders"].append(data)
        elif row.view == "inspection" and view["last_inspection"] is None:
            view["last_inspection"] = data
    return out


async def open_duplicate_count(session: AsyncSession, customer_id: uuid.UUID) -> int:
    stmt = (
        select(func.count())
        .select_from(DuplicateFlag)
        .where(
            and_(
                DuplicateFlag.status == "open",
                (DuplicateFlag.customer_id == customer_id) | (DuplicateFlag.duplicate_of_id == customer_id),
            )
        )
    )
    return int((await session.execute(stmt)).scalar_one())


def generated_at() -> datetime:
    return utcnow()


# The customer with accounts, premises and meters as one JSON document, built by PostgreSQL in one
# statement: the 360° view is the most frequent staff read, and loading it through the ORM costs several
# round trips and ~10 ms of Python per view. Only masked columns are selected. The document has the shape
# of ``api.schemas.CustomerRead`` / ``AccountRead``; a test pins it to the ORM presenters.
_CUSTOMER_DOCUMENT = text(
    """
    SELECT json_build_object(
      'id', c.id, 'customer_no', c.customer_no, 'kind', c.kind, 'name', c.name, 'id_type', c.id_type,
      'id_number', c.id_number_masked, 'status', c.status, 'merged_into_id', c.merged_into_id,
      'contacts', COALESCE((
          SELECT json_agg(json_build_object('id', ct.id, 'kind', ct.kind, 'label', ct.label,
                                            'phone', ct.phone_masked, 'is_primary', ct.is_primary)
                          ORDER BY ct.created_at, ct.id)
          FROM customer_contacts ct WHERE ct.customer_id = c.id), '[]'::json),
      'tags', COALESCE((
          SELECT json_agg(t.tag ORDER BY t.tag) FROM customer_tags t WHERE t.customer_id = c.id), '[]'::json),
      'version', c.version, 'created_at', c.created_at, 'updated_at', c.updated_at
    ) AS customer,
    COALESCE((
      SELECT json_agg(json_build_object(
        'account_no', a.account_no, 'utility', a.utility, 'status', a.status,
        'status_reason', a.status_reason,
        'customer_id', a.customer_id, 'customer_class', a.customer_class, 'household_size', a.household_size,
        'opened_on', a.opened_on, 'suspended_since', a.suspended_since, 'closed_on', a.closed_on,
        'version', a.version,
        'premise', json_build_object(
          'id', p.id, 'district', p.district, 'community', p.community, 'building', p.building,
          'unit', p.unit, 'room', p.room, 'address', p.address, 'heated_area_m2', p.heated_area_m2::text,
          'property_cert_no', p.property_cert_no,
          'latitude', p.latitude::text, 'longitude', p.longitude::text),
        'meters', COALESCE((
          SELECT json_agg(json_build_object(
            'id', m.id, 'serial_no', m.serial_no, 'kind', m.kind, 'multiplier', m.multiplier::text,
            'reading_mode', m.reading_mode, 'installed_on', m.installed_on,
            'initial_reading', m.initial_reading::text, 'removed_on', m.removed_on,
            'final_reading', m.final_reading::text, 'replaced_by_id', m.replaced_by_id, 'status', m.status)
            ORDER BY m.installed_on, m.id)
          FROM meters m WHERE m.account_id = a.id), '[]'::json)
      ) ORDER BY a.account_no)
      FROM accounts a JOIN premises p ON p.id = a.premise_id
      WHERE a.customer_id = c.id), '[]'::json) AS accounts
    FROM customers c
    WHERE c.id = :customer_id
    """
)


async def customer_document(session: AsyncSession, customer_id: uuid.UUID) -> tuple[dict, list[dict]] | None:
    """(customer, accounts) as plain dicts, masked, from one statement; None if there is no such customer."""
    row = (await session.execute(_CUSTOMER_DOCUMENT, {"customer_id": customer_id})).first()
    if row is None:
        return None
    return row.customer, row.accounts
