"""What billing reported settling, kept from ``billing.events`` for reconciliation (对账): the payments ↔
billing leg compares the payments that succeeded here with these rows.

``billing.settlement.recorded`` adds one row per *event* (keyed by the event id, so a redelivery is a no-op
even without the inbox): a payment billing settled twice has two rows, which is what reconciliation reports
as ``settled_twice``. ``billing.settlement.reversed`` (a refund undid the settlement; billing re-applies the
part not refunded without a new settlement event) marks the payment's rows reversed; the settlement still
happened, so reconciliation still counts it (the refund itself is reconciled against the statement).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert

from payment.adapters.orm import BillingSettlement
from utilis_shared.db import UnitOfWork
from utilis_shared.events import Event
from utilis_shared.inbox import HandlerRegistry

log = logging.getLogger(__name__)

registry = HandlerRegistry()


def _instant(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


# Built once: building and caching the statement per event was most of the consumer's CPU at the peak (its
# columns: the parameters' keys).
_RECORD = insert(BillingSettlement.__table__).on_conflict_do_nothing(index_elements=["event_id"])


@registry.on("billing.settlement.recorded")
async def settlement_recorded(uow: UnitOfWork, event: Event) -> None:
    d = event.data
    await uow.session.execute(
        _RECORD,
        {
            "event_id": event.id,
            "payment_id": d["payment_id"],
            "account_no": d["account_no"],
            "amount_fen": int(d["amount_fen"]),
            "paid_at": _instant(d["paid_at"]),
            "applied_at": _instant(d.get("applied_at") or d["paid_at"]),
            "event_time": event.time,
        },
    )


@registry.on("billing.settlement.reversed")
async def settlement_reversed(uow: UnitOfWork, event: Event) -> None:
    d = event.data
    result = await uow.session.execute(
        update(BillingSettlement)
        .where(BillingSettlement.payment_id == d["payment_id"], BillingSettlement.reversed_at.is_(None))
        .values(reversed_at=_instant(d["reversed_at"]), reapplied_fen=d.get("reapplied_fen"))
    )
    if result.rowcount == 0:
        # Billing keys both events by account, so the recorded one precedes this; nothing to mark means it
        # was reversed already (a replay) or billing settled it before this projection existed.
        log.info("settlement reversal with nothing to mark", extra={"event_type": event.type})
