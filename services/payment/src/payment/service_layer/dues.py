"""What billing reports an account owes, kept from ``billing.events`` (billing owns it; the payment
service keeps only what bounds a bill or dues order). Rows move forward in event time only, so a late or
replayed event cannot roll them back; the consumer's inbox makes each event count once."""

from __future__ import annotations

from datetime import date

from sqlalchemy.dialects.postgresql import insert

from payment.adapters.orm import AccountDues, BillDue
from utilis_shared.db import UnitOfWork
from utilis_shared.events import Event
from utilis_shared.inbox import HandlerRegistry

registry = HandlerRegistry()


def _dues_upsert():
    """Built once (see ``settlements._RECORD``; its columns: the parameters' keys): a row moves forward in
    event time only."""
    table = AccountDues.__table__
    stmt = insert(table)
    updated = ("owed_fen", "late_fee_fen", "prepaid_fen", "open_bills", "as_of")
    return stmt.on_conflict_do_update(
        index_elements=["account_no"],
        set_={c: stmt.excluded[c] for c in updated},
        where=table.c.as_of <= stmt.excluded.as_of,
    )


_DUES_UPSERT = _dues_upsert()


@registry.on("billing.balance.changed")
async def balance_changed(uow: UnitOfWork, event: Event) -> None:
    d = event.data
    await uow.session.execute(
        _DUES_UPSERT,
        {
            "account_no": d["account_no"],
            "owed_fen": d["owed_fen"],
            "late_fee_fen": d.get("late_fee_fen", 0),
            "prepaid_fen": d.get("prepaid_fen", 0),
            "open_bills": d.get("open_bills", 0),
            "as_of": event.time,
        },
    )


@registry.on("billing.bill.issued", "billing.bill.settled", "billing.bill.credited")
async def bill_changed(uow: UnitOfWork, event: Event) -> None:
    d = event.data
    values = {"bill_no": d["bill_no"], "account_no": d["account_no"], "event_time": event.time}
    if "status" in d:
        values["status"] = "paid" if d["status"] == "paid" else "issued"
    if event.type == "billing.bill.issued":
        values["total_fen"] = d["total_fen"]
        values["due_date"] = date.fromisoformat(d["due_date"])
    stmt = insert(BillDue).values({"total_fen": 0, "status": "issued", **values})
    update = {k: stmt.excluded[k] for k in values if k != "bill_no"}
    stmt = stmt.on_conflict_do_update(
        index_elements=["bill_no"],
        set_=update,
        where=BillDue.__table__.c.event_time <= stmt.excluded.event_time,
    )
    await uow.session.execute(stmt)
