"""Payment order use cases: create, apply a provider's verified notice (exactly once), counter payment,
cancel, close the expired ones. Use cases stage rows and events; the caller commits
(``utilis_shared.commands.execute`` for HTTP writes, the unit of work for callbacks and sweeps).

Exactly once: a notice is applied under a lock on its order row (``SELECT … FOR UPDATE``), so concurrent
duplicate callbacks queue on the row and the first one decides; the later ones find the order already
succeeded and are recorded as ``duplicate``. The provider's transaction id is unique per provider on the
orders (``uq_payment_orders_provider_txn``): one provider payment can never succeed two orders. Every
verified callback is recorded in ``provider_callbacks`` with what it did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import insert

from payment.adapters.orm import AccountDues, BillDue, PaymentOrder, ProviderCallback, RefundCase
from payment.domain import orders as rules
from payment.domain.orders import Dues, OrderStatus, Outcome, Purpose
from payment.domain.withholding import api_provider
from payment.events import (
    PaymentClosed,
    PaymentCreated,
    PaymentFailed,
    PaymentSucceeded,
    RefundCaseOpened,
    catalog,
)
from utilis_shared.auth import Principal
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import Conflict, NotFound, Problem, UnprocessableEntity
from utilis_shared.events import Event
from utilis_shared.ids import new_id
from utilis_shared.timeutil import BUSINESS_TZ

#: The channels an order can be paid through; ``bank:<code>`` adds a bank direct-connect channel.
ONLINE_CHANNELS = frozenset({"wechat", "alipay"})
COUNTER = "counter"


class OrderNotFound(NotFound):
    code = "payment_order_not_found"


class AccountNotFound(NotFound):
    code = "account_not_found"


def _problem(status: int, code: str, message: str, **extra: Any) -> Problem:
    if status == 409:
        return Conflict(message, code=code, **extra)
    return UnprocessableEntity(message, code=code, **extra)


def provider_of(channel: str) -> str:
    if channel in ONLINE_CHANNELS or channel == COUNTER:
        return channel
    if channel.startswith("bank:") and len(channel) > 5:
        return channel
    raise _problem(422, "unknown_channel", f"No payment channel {channel!r}.")


_NEXT_ORDER_SEQ = text("SELECT nextval('payment_order_seq')")


def order_no_of(seq: int, now: datetime) -> str:
    """``P`` + the business date + a 10-digit sequence: ``P202611230000001234`` (19 characters)."""
    return f"P{now.astimezone(BUSINESS_TZ):%Y%m%d}{seq:010d}"


async def next_order_no(session, now: datetime) -> str:
    return order_no_of((await session.execute(_NEXT_ORDER_SEQ)).scalar_one(), now)


@dataclass(frozen=True)
class NewOrder:
    account_no: str
    purpose: Purpose
    amount_fen: int
    channel: str
    bill_no: str | None = None


def _order_payload(order: PaymentOrder) -> dict[str, Any]:
    return {
        "payment_id": order.order_no,
        "account_no": order.account_no,
        "amount_fen": order.amount_fen,
        "channel": order.channel,
        "purpose": order.purpose,
        "bill_no": order.bill_no,
    }


async def create_order(
    uow: UnitOfWork, *, principal: Principal, data: NewOrder, now: datetime, ttl: timedelta
) -> PaymentOrder:
    """A pending order, checked against what billing last reported the account owes."""
    provider = provider_of(data.channel)
    if data.channel == COUNTER and not principal.is_staff:
        raise _problem(422, "unknown_channel", "Counter payments are taken by a cashier.")
    if data.purpose is not Purpose.PREPAID:
        dues_row = await uow.session.get(AccountDues, data.account_no)
        if dues_row is None:
            raise AccountNotFound(f"Billing has reported nothing owed on account {data.account_no}.")
        if data.purpose is Purpose.BILL:
            bill = await uow.session.get(BillDue, data.bill_no)
            if bill is None or bill.account_no != data.account_no:
                raise NotFound(f"No bill {data.bill_no} on account {data.account_no}.", code="bill_not_found")
            if bill.status == "paid":
                raise _problem(409, "bill_already_paid", f"Bill {data.bill_no} is already paid.")
        limit = rules.max_payable(
            Dues(owed_fen=dues_row.owed_fen, late_fee_fen=dues_row.late_fee_fen, as_of=dues_row.as_of), now
        )
        if data.amount_fen > limit:
            raise _problem(
                422,
                "amount_exceeds_dues",
                f"The account owes at most {limit} fen; pay more only as a declared prepaid top-up.",
                max_payable_fen=limit,
            )
    order = PaymentOrder(
        id=new_id(),
        order_no=await next_order_no(uow.session, now),
        account_no=data.account_no,
        purpose=data.purpose.value,
        bill_no=data.bill_no if data.purpose is Purpose.BILL else None,
        amount_fen=data.amount_fen,
        channel=data.channel,
        provider=provider,
        status=OrderStatus.PENDING.value,
        refunded_fen=0,
        client_channel=principal.channel,
        created_by=principal.audit_actor,
        expires_at=now + ttl,
        version=1,
    )
    # One Core statement built once: the ORM's unit of work for this row cost about as much CPU as the
    # rest of the order's SQL. The order is not added to the session: it is only presented.
    await uow.session.execute(_INSERT_ORDER, {c: getattr(order, c) for c in _NEW_ORDER_COLUMNS})
    uow.emit(created_event(order))
    return order


_NEW_ORDER_COLUMNS = (
    "id",
    "order_no",
    "account_no",
    "purpose",
    "bill_no",
    "amount_fen",
    "channel",
    "provider",
    "status",
    "refunded_fen",
    "client_channel",
    "created_by",
    "expires_at",
    "version",
)  # the others start empty (NULL) or from the database (created_at, updated_at)
_INSERT_ORDER = PaymentOrder.__table__.insert()  # its columns: the parameters' keys


def created_event(order: PaymentOrder) -> Event:
    """``payment.payment.created`` of a new (pending) order."""
    return catalog.build(
        PaymentCreated(**_order_payload(order), status=order.status, expires_at=order.expires_at),
        subject=order.account_no,
    )


# Built once: every callback and most routes look an order up (statement construction and its cache key
# cost more CPU than the round trip).
_ORDER = select(PaymentOrder).where(PaymentOrder.order_no == bindparam("b_order_no"))
_ORDER_LOCKED = _ORDER.with_for_update()


async def get_order(session, order_no: str, *, lock: bool = False) -> PaymentOrder:
    found = await session.execute(_ORDER_LOCKED if lock else _ORDER, {"b_order_no": order_no})
    order = found.scalar_one_or_none()
    if order is None:
        raise OrderNotFound(f"No payment order {order_no}.")
    return order


@dataclass(frozen=True)
class Notice:
    """A provider's verified word on an order (what a channel adapter returns from a callback or query)."""

    provider: str
    provider_txn_id: str
    order_no: str
    amount_fen: int
    status: str  # succeeded | failed | closed
    paid_at: datetime | None
    raw: dict[str, Any]
    failure_reason: str | None = None

    @classmethod
    def of(cls, verified: Any, *, paid_at: datetime | None = None) -> Notice:
        """From an adapter's verified notice (a callback's, a query's, a result file line's);
        ``paid_at`` when the notice carries no time of its own."""
        return cls(
            provider=verified.provider,
            provider_txn_id=verified.provider_txn_id,
            order_no=verified.order_no,
            amount_fen=verified.amount_fen,
            status=verified.status,
            paid_at=verified.paid_at or paid_at,
            raw=verified.raw,
            failure_reason=verified.failure_reason,
        )


async def apply_notice(uow: UnitOfWork, notice: Notice) -> Outcome:
    """Apply a verified notice exactly once (see the module docstring). A refund notice completes the
    submitted refund it names (``service_layer/refunds.py``)."""
    order = await get_order(uow.session, notice.order_no, lock=True)
    if notice.status == "refunded" and notice.provider in (order.provider, api_provider(order.provider)):
        from payment.service_layer.refunds import apply_refund_notice

        outcome = Outcome(await apply_refund_notice(uow, notice))
    elif order.provider != notice.provider:
        outcome = Outcome.CONFLICT
    else:
        outcome, status = rules.apply_outcome(
            OrderStatus(order.status),
            order.amount_fen,
            notice_status=notice.status,
            notice_amount_fen=notice.amount_fen,
        )
    if outcome is Outcome.APPLIED and notice.status != "refunded":
        _move(uow, order, status, notice)
    elif outcome in (Outcome.REFUND_CASE, Outcome.AMOUNT_MISMATCH) and notice.status == "succeeded":
        await _open_refund_case(uow, order, notice, outcome)
    await uow.session.flush()  # the order's change (a refund notice's rows too)
    # Every verified callback recorded with what it did, by a Core insert (the ORM's unit of work for this
    # one row cost about as much CPU as the rest of the callback's SQL).
    await uow.session.execute(
        _RECORD_CALLBACK,
        {
            "id": new_id(),
            "provider": notice.provider,
            "provider_txn_id": notice.provider_txn_id,
            "order_no": notice.order_no,
            "status": notice.status,
            "amount_fen": notice.amount_fen,
            "outcome": outcome.value,
            "raw": notice.raw,
        },
    )
    return outcome


_RECORD_CALLBACK = ProviderCallback.__table__.insert()  # its columns: the parameters' keys


def _move(uow: UnitOfWork, order: PaymentOrder, status: OrderStatus, notice: Notice) -> None:
    order.status = status.value
    order.version += 1
    if status is OrderStatus.SUCCEEDED:
        order.provider_txn_id = notice.provider_txn_id
        order.paid_at = notice.paid_at
        event = PaymentSucceeded(
            **_order_payload(order),
            status=order.status,
            paid_at=notice.paid_at,
            provider=notice.provider,
            provider_txn_id=notice.provider_txn_id,
        )
    elif status is OrderStatus.FAILED:
        order.closed_at = notice.paid_at
        event = PaymentFailed(**_order_payload(order), status=order.status, reason=notice.failure_reason)
    else:
        order.closed_at = notice.paid_at
        event = PaymentClosed(**_order_payload(order), status=order.status, reason="provider_closed")
    uow.emit(catalog.build(event, subject=order.account_no))


async def _open_refund_case(uow: UnitOfWork, order: PaymentOrder, notice: Notice, outcome: Outcome) -> None:
    reason = "amount_mismatch" if outcome is Outcome.AMOUNT_MISMATCH else f"order_{order.status}"
    inserted = await uow.session.execute(
        insert(RefundCase)
        .values(
            order_no=order.order_no,
            provider=notice.provider,
            provider_txn_id=notice.provider_txn_id,
            amount_fen=notice.amount_fen,
            reason=reason,
            status="open",
            paid_at=notice.paid_at,
        )
        .on_conflict_do_nothing(constraint="uq_refund_cases_provider_txn")
        .returning(RefundCase.id)
    )
    case_id = inserted.scalar_one_or_none()
    if case_id is not None:  # a repeat of the same notice opens nothing new
        uow.emit(
            catalog.build(
                RefundCaseOpened(
                    case_id=str(case_id),
                    payment_id=order.order_no,
                    account_no=order.account_no,
                    provider=notice.provider,
                    provider_txn_id=notice.provider_txn_id,
                    amount_fen=notice.amount_fen,
                    reason=reason,
                ),
                subject=order.account_no,
            )
        )


async def pay_at_counter(
    uow: UnitOfWork, *, order_no: str, cashier: str, shift_id: str, now: datetime
) -> PaymentOrder:
    """Cash or POS at the service counter: the cashier confirms the money; the order succeeds at once."""
    order = await get_order(uow.session, order_no, lock=True)
    if order.channel != COUNTER:
        raise _problem(409, "not_a_counter_order", f"Order {order_no} is paid through {order.channel}.")
    if order.status != OrderStatus.PENDING.value:
        raise _problem(409, "order_not_pending", f"Order {order_no} is {order.status}.")
    order.cashier = {"cashier": cashier, "shift_id": shift_id}
    _move(
        uow,
        order,
        OrderStatus.SUCCEEDED,
        Notice(COUNTER, f"counter:{order_no}", order_no, order.amount_fen, "succeeded", now, {}),
    )
    await uow.session.flush()
    return order


async def close_order(uow: UnitOfWork, *, order_no: str, reason: str, now: datetime) -> PaymentOrder:
    """The payer cancels, or the expiry sweep closes, a pending order (a later success opens a refund
    case)."""
    order = await get_order(uow.session, order_no, lock=True)
    if order.status == OrderStatus.CLOSED.value:
        return order
    try:
        rules.check_transition(OrderStatus(order.status), OrderStatus.CLOSED)
    except rules.InvalidTransition as exc:
        raise _problem(409, "order_not_pending", str(exc)) from exc
    order.status, order.closed_at = OrderStatus.CLOSED.value, now
    order.version += 1
    uow.emit(
        catalog.build(
            PaymentClosed(**_order_payload(order), status=order.status, reason=reason),
            subject=order.account_no,
        )
    )
    await uow.session.flush()
    return order
