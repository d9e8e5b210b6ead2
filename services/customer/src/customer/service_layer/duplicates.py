"""Probable duplicates: the same phone and the same property certificate under two customer records.

Legacy archives hold the same household twice (typed twice at two counters, 张三 and 张 三). The rule
flags, never merges: a person checks the flag and merges (audited) or dismisses it.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert

from customer.adapters.orm import DuplicateFlag
from utilis_shared.db import UnitOfWork
from utilis_shared.ids import new_id

REASON = "same_phone_and_property_cert"

# For one customer: other active customers sharing a phone AND a property certificate with it.
_CANDIDATES = text(
    """
    WITH mine AS (
        SELECT DISTINCT ct.phone_bidx, p.property_cert_no
        FROM customer_contacts ct
        JOIN accounts a ON a.customer_id = ct.customer_id
        JOIN premises p ON p.id = a.premise_id
        WHERE ct.customer_id = :customer_id AND p.property_cert_no IS NOT NULL
    )
    SELECT DISTINCT ct.customer_id
    FROM mine
    JOIN customer_contacts ct ON ct.phone_bidx = mine.phone_bidx
    JOIN accounts a ON a.customer_id = ct.customer_id
    JOIN premises p ON p.id = a.premise_id AND p.property_cert_no = mine.property_cert_no
    JOIN customers c ON c.id = ct.customer_id AND c.status = 'active'
    WHERE ct.customer_id <> :customer_id
    """
)


async def flag_for_customer(uow: UnitOfWork, customer_id: uuid.UUID) -> int:
    """Flag every probable duplicate of ``customer_id``; returns how many new flags were raised."""
    others = (await uow.session.execute(_CANDIDATES, {"customer_id": customer_id})).scalars().all()
    raised = 0
    for other in others:
        # The newer record (UUIDv7 sorts by creation) is the suspected duplicate of the older one.
        newer, older = (customer_id, other) if customer_id > other else (other, customer_id)
        result = await uow.session.execute(
            insert(DuplicateFlag)
            .values(id=new_id(), customer_id=newer, duplicate_of_id=older, reason=REASON, status="open")
            .on_conflict_do_nothing()
            .returning(DuplicateFlag.id)
        )
        raised += result.first() is not None
    return raised
