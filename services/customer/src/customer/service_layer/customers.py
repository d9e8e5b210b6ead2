"""Use cases on customers: register, change details, tags. They stage rows, audit and events; the
caller (``utilis_shared.commands.execute``) commits."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, text

from customer import events as ev
from customer.adapters import repository
from customer.adapters.orm import Contact, Customer, CustomerTagRow
from customer.api.schemas import ContactIn, CustomerCreate, CustomerUpdate
from customer.domain.identity import (
    IdType,
    InvalidIdentity,
    InvalidPhone,
    is_mobile,
    validate_id_number,
    validate_phone,
)
from customer.service_layer import audit, duplicates
from customer.service_layer.errors import CustomerNotFound, conflict, invalid_field
from utilis_shared.auth import Principal
from utilis_shared.db import UnitOfWork
from utilis_shared.ids import new_id
from utilis_shared.pii import PiiCipher, mask_id_number, mask_phone
from utilis_shared.timeutil import utcnow


def masked_snapshot(customer: Customer) -> dict[str, Any]:
    """What the audit trail keeps of a customer: personal data masked."""
    return {
        "name": customer.name,
        "id_number": customer.id_number_masked,
        "contacts": sorted(c.phone_masked for c in customer.contacts),
        "tags": sorted(t.tag for t in customer.tags),
        "status": customer.status,
    }


def contact_refs(customer: Customer) -> list[ev.ContactRef]:
    return [
        ev.ContactRef(
            kind=c.kind,
            label=c.label,
            phone_masked=c.phone_masked,
            phone_enc=c.phone_enc,
            is_primary=c.is_primary,
        )
        for c in customer.contacts
    ]


def _build_contacts(cipher: PiiCipher, contacts: list[ContactIn]) -> list[Contact]:
    rows: dict[str, Contact] = {}
    for i, item in enumerate(contacts):
        try:
            phone = validate_phone(item.phone)
        except InvalidPhone as exc:
            raise invalid_field(f"contacts.{i}.phone", "invalid_phone", str(exc)) from exc
        bidx = cipher.blind_index(phone, field="phone")
        if bidx in rows:
            continue  # the same number twice is one contact
        rows[bidx] = Contact(
            kind="mobile" if is_mobile(phone) else "landline",
            label=item.label,
            phone_enc=cipher.encrypt(phone, field="phone"),
            phone_bidx=bidx,
            phone_masked=mask_phone(phone),
            is_primary=item.is_primary,
        )
    result = list(rows.values())
    if not any(c.is_primary for c in result):
        result[0].is_primary = True
    elif sum(c.is_primary for c in result) > 1:
        raise invalid_field("contacts", "multiple_primary_contacts", "Only one contact can be primary.")
    return result


async def find_by_id_number(
    uow: UnitOfWork, cipher: PiiCipher, id_type: IdType, id_number: str
) -> Customer | None:
    bidx = cipher.blind_index(id_number, field="id_number")
    stmt = select(Customer).where(Customer.id_number_bidx == bidx, Customer.status == "active")
    customer = (await uow.session.execute(stmt)).scalar_one_or_none()
    if customer is None:
        return None
    return await repository.get_customer(uow.session, customer.id)


def validated_id_number(data: CustomerCreate, field_prefix: str = "") -> str:
    try:
        return validate_id_number(data.id_type, data.id_number)
    except InvalidIdentity as exc:
        raise invalid_field(f"{field_prefix}id_number", exc.code, str(exc)) from exc


async def register_customer(
    uow: UnitOfWork, *, actor: Principal, cipher: PiiCipher, data: CustomerCreate, field_prefix: str = ""
) -> Customer:
    id_number = validated_id_number(data, field_prefix)
    if data.kind == "organisation" and data.id_type is IdType.RESIDENT_ID:
        raise invalid_field(
            f"{field_prefix}id_type", "invalid_id_type", "An organisation registers with its USCC."
        )
    existing = await find_by_id_number(uow, cipher, data.id_type, id_number)
    if existing is not None:
        raise conflict(
            "customer_already_exists",
            "A customer with this identity document is already registered.",
            customer_id=str(existing.id),
            customer_no=existing.customer_no,
        )
    seq = (await uow.session.execute(text("SELECT nextval('customer_no_seq')"))).scalar_one()
    customer = Customer(
        id=new_id(),
        customer_no=f"C{seq:09d}",
        kind=data.kind,
        name=data.name,
        id_type=data.id_type.value,
        id_number_enc=cipher.encrypt(id_number, field="id_number"),
        id_number_bidx=cipher.blind_index(id_number, field="id_number"),
        id_number_masked=mask_id_number(id_number),
        status="active",
        source="api",
    )
    customer.contacts = _build_contacts(cipher, data.contacts)
    customer.tags = [
        CustomerTagRow(tag=t.value, created_by=actor.audit_actor) for t in dict.fromkeys(data.tags)
    ]
    uow.session.add(customer)
    await uow.session.flush()
    audit.record(uow, actor, "customer.registered", "customer", customer.id, after=masked_snapshot(customer))
    uow.emit(
        ev.catalog.build(
            ev.CustomerRegistered(
                customer_id=customer.id,
                customer_no=customer.customer_no,
                kind=customer.kind,
                name=customer.name,
                id_type=customer.id_type,
                id_number_masked=customer.id_number_masked,
                contacts=contact_refs(customer),
                tags=[t.tag for t in customer.tags],
            ),
            subject=str(customer.id),
        )
    )
    return customer


async def holder_for(
    uow: UnitOfWork,
    *,
    actor: Principal,
    cipher: PiiCipher,
    customer_id: uuid.UUID | None,
    new_customer: CustomerCreate | None,
    field_prefix: str,
) -> Customer:
    """The holder of an account being opened or transferred: an existing active customer, the already
    registered owner of the same identity document (when the names agree), or a new registration."""
    if customer_id is not None:
        customer = await repository.get_customer(uow.session, customer_id)
        if customer is None or customer.status != "active":
            raise CustomerNotFound("No active customer with this id.")
        return customer
    assert new_customer is not None
    id_number = validated_id_number(new_customer, field_prefix)
    existing = await find_by_id_number(uow, cipher, new_customer.id_type, id_number)
    if existing is not None:
        if existing.name != new_customer.name:
            raise conflict(
                "customer_identity_mismatch",
                "This identity document is registered under another name; check the documents.",
                customer_id=str(existing.id),
            )
        return existing
    return await register_customer(
        uow, actor=actor, cipher=cipher, data=new_customer, field_prefix=field_prefix
    )


async def load_active(uow: UnitOfWork, customer_id: uuid.UUID) -> Customer:
    customer = await repository.get_customer(uow.session, customer_id, for_update=True)
    if customer is None:
        raise CustomerNotFound("No customer with this id.")
    if customer.status != "active":
        raise conflict(
            "customer_merged",
            "This customer was merged into another one.",
            merged_into_id=str(customer.merged_into_id),
        )
    return customer


async def update_customer(
    uow: UnitOfWork, *, actor: Principal, cipher: PiiCipher, customer_id: uuid.UUID, data: CustomerUpdate
) -> Customer:
    customer = await load_active(uow, customer_id)
    before = masked_snapshot(customer)
    changed: list[str] = []
    if data.name is not None and data.name != customer.name:
        customer.name = data.name
        changed.append("name")
    if data.contacts is not None:
        wanted = _build_contacts(cipher, data.contacts)
        current = {c.phone_bidx: c for c in customer.contacts}
        merged: list[Contact] = []
        for new in wanted:
            old = current.get(new.phone_bidx)
            if old is not None:
                old.label, old.is_primary = new.label, new.is_primary
                merged.append(old)
            else:
                merged.append(new)
        if {c.phone_bidx for c in merged} != set(current) or any(c in uow.session.dirty for c in merged):
            changed.append("contacts")
        customer.contacts = merged
    if data.tags is not None:
        wanted_tags = list(dict.fromkeys(t.value for t in data.tags))
        if set(wanted_tags) != {t.tag for t in customer.tags}:
            keep = {t.tag: t for t in customer.tags}
            customer.tags = [
                keep.get(t) or CustomerTagRow(tag=t, created_by=actor.audit_actor) for t in wanted_tags
            ]
            changed.append("tags")
    if not changed:
        return customer
    customer.updated_at = utcnow()  # the aggregate changed: bumps its version for optimistic concurrency
    await uow.session.flush()
    audit.record(
        uow,
        actor,
        "customer.updated",
        "customer",
        customer.id,
        before=before,
        after=masked_snapshot(customer),
    )
    uow.emit(
        ev.catalog.build(
            ev.CustomerUpdated(
                customer_id=customer.id,
                customer_no=customer.customer_no,
                changed_fields=changed,
                name=customer.name,
                contacts=contact_refs(customer),
                tags=[t.tag for t in customer.tags],
            ),
            subject=str(customer.id),
        )
    )
    if "contacts" in changed:
        await duplicates.flag_for_customer(uow, customer.id)
    return customer
