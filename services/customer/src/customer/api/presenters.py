"""ORM rows -> response bodies, masking personal data unless the caller may and asked to see it."""

from __future__ import annotations

from typing import Any

from customer.adapters.orm import Account, Customer
from customer.api.schemas import AccountRead, ContactRead, CustomerRead, MeterRead, PremiseRead
from utilis_shared.pii import PiiCipher


def customer_read(customer: Customer, *, reveal_with: PiiCipher | None = None) -> CustomerRead:
    """Masked by default; with ``reveal_with`` (a cipher handed over only to allowed roles) in full."""
    contacts = [
        ContactRead(
            id=c.id,
            kind=c.kind,
            label=c.label,
            is_primary=c.is_primary,
            phone=reveal_with.decrypt(c.phone_enc, field="phone") if reveal_with else c.phone_masked,
        )
        for c in customer.contacts
    ]
    id_number = customer.id_number_masked
    if reveal_with and customer.id_number_enc:
        id_number = reveal_with.decrypt(customer.id_number_enc, field="id_number")
    return CustomerRead(
        id=customer.id,
        customer_no=customer.customer_no,
        kind=customer.kind,
        name=customer.name,
        id_type=customer.id_type,
        id_number=id_number,
        status=customer.status,
        merged_into_id=customer.merged_into_id,
        contacts=contacts,
        tags=[t.tag for t in customer.tags],
        version=customer.version,
        created_at=customer.created_at,
        updated_at=customer.updated_at,
    )


def account_read(account: Account) -> AccountRead:
    return AccountRead(
        account_no=account.account_no,
        utility=account.utility,
        status=account.status,
        status_reason=account.status_reason,
        customer_id=account.customer_id,
        customer_class=account.customer_class,
        household_size=account.household_size,
        opened_on=account.opened_on,
        suspended_since=account.suspended_since,
        closed_on=account.closed_on,
        premise=PremiseRead.model_validate(account.premise),
        meters=[MeterRead.model_validate(m) for m in account.meters],
        version=account.version,
    )


def dump(model: Any) -> dict[str, Any]:
    return model.model_dump(mode="json")
