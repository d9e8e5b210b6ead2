"""Local projections of other services' events for the 360° view (no fan-out calls at read time).

Each projected event type maps to a view and the data field that identifies one item in it. An update
merges into the stored item (``data || new``) only if it is not older than what is stored (by event
time), so replays and late arrivals cannot roll the view back. The consumer's inbox makes each event
count once. Producers own the payload schemas; the fields read here are listed in the README.
"""

from __future__ import annotations

from sqlalchemy import bindparam, literal_column
from sqlalchemy.dialects.postgresql import JSONB, Insert, insert

from customer.adapters.orm import AccountProjection
from utilis_shared.db import UnitOfWork
from utilis_shared.events import Event
from utilis_shared.inbox import HandlerRegistry

# event type -> (view, item key field in data, or None for one item per account)
PROJECTED: dict[str, tuple[str, str | None]] = {
    "billing.bill.issued": ("bill", "bill_no"),
    "billing.bill.settled": ("bill", "bill_no"),
    "billing.bill.credited": ("bill", "bill_no"),
    "billing.balance.changed": ("balance", None),
    "payment.payment.succeeded": ("payment", "payment_id"),
    "payment.payment.refunded": ("payment", "payment_id"),
    "work_order.order.opened": ("work_order", "order_no"),
    "work_order.order.updated": ("work_order", "order_no"),
    "work_order.order.closed": ("work_order", "order_no"),
    "inspection.visit.completed": ("inspection", None),
}

# The topics whose events feed projections (each producer's own topic); add one as its service lands.
CONSUMED_TOPICS = ["billing.events", "payment.events"]

registry = HandlerRegistry()


class ProjectionError(ValueError):
    pass


async def project(uow: UnitOfWork, event: Event) -> None:
    view, key_field = PROJECTED[event.type]
    data = dict(event.data)
    account_no = str(data.get("account_no") or event.subject)
    if key_field is None:
        item_key = ""
    else:
        if not data.get(key_field):
            raise ProjectionError(f"{event.type} without {key_field}")
        item_key = str(data[key_field])
    data["last_event_type"] = event.type
    await uow.session.execute(
        _UPSERT,
        {
            "b_account_no": account_no,
            "b_view": view,
            "b_item_key": item_key,
            "b_data": data,
            "b_event_id": event.id,
            "b_event_time": event.time,
        },
    )


def _upsert() -> Insert:
    """The projection's upsert, built once (a consumer applies thousands of events a minute at the
    payment peak; building and caching the statement per event was most of its CPU)."""
    table = AccountProjection.__table__
    stmt = insert(table).values(
        account_no=bindparam("b_account_no"),
        view=bindparam("b_view"),
        item_key=bindparam("b_item_key"),
        data=bindparam("b_data", type_=JSONB),
        event_id=bindparam("b_event_id"),
        event_time=bindparam("b_event_time"),
    )
    return stmt.on_conflict_do_update(
        index_elements=["account_no", "view", "item_key"],
        set_={
            "data": table.c.data.op("||")(stmt.excluded.data),
            "event_id": stmt.excluded.event_id,
            "event_time": stmt.excluded.event_time,
            "updated_at": literal_column("now()"),
        },
        where=table.c.event_time <= stmt.excluded.event_time,
    )


_UPSERT = _upsert()

registry.on(*PROJECTED)(project)
