"""Refunds and e-invoice requests.

Refunds: ``requested`` (by staff: agent or billing clerk, with a reason) → ``submitted`` (approved by a
``billing_supervisor`` who is not the requester) → ``succeeded`` when the provider's refund notice arrives
(verified like any callback; dedupe by the provider's refund id), or at once for a counter payment (the
cashier pays the cash back) → ``payment.payment.refunded``, from which billing reverses the payment's
settlement (re-applying what was not refunded). A request may be ``rejected`` instead of approved. The
refunds of an order never exceed its amount: requested, submitted and succeeded refunds count (checked
under the order's row lock). When they add up to the amount, the order becomes ``refunded``.

Once approved, the refund request is sent to the provider (WeChat ``/v3/refund/domestic/refunds``, Alipay
``alipay.trade.refund``, the bank's ``REFUND_REQUEST``: ``service_layer/refund_requests.py``); the refund
stays ``submitted`` until the provider's verified refund notice, or ``failed`` when the provider refuses.

A refund of a **refund case**'s money (``refund_case_id``; ``service_layer/refund_cases.py``) goes through the
same approval and notice, but billing never settled that money: it does not count against the order's
amount, its success moves no ``refunded_fen`` and emits no ``payment.payment.refunded`` (the case is
``refunded`` instead), and its rejection reopens the case.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from payment.adapters.orm import InvoiceRequest, PaymentOrder, Refund, RefundCase
from payment.domain.orders import OrderStatus
from payment.domain.withholding import api_provider
from payment.events import PaymentRefunded, RefundApproved, RefundRejected, RefundRequested, catalog
from payment.service_layer import refund_cases
from payment.service_layer.orders import COUNTER, Notice, _order_payload, _problem, get_order
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import NotFound
from utilis_shared.timeutil import utcnow

OPEN_OR_DONE = ("requested", "submitted", "succeeded")


class RefundNotFound(NotFound):
    code = "refund_not_found"


async def _committed_fen(session, order_no: str) -> int:
    return int(
        (
            await session.execute(
                select(func.coalesce(func.sum(Refund.amount_fen), 0)).where(
                    Refund.order_no == order_no,
                    Refund.status.in_(OPEN_OR_DONE),
                    Refund.refund_case_id.is_(None),  # a refund case's money is not the order's
                )
            )
        ).scalar_one()
    )


async def request_refund(
    uow: UnitOfWork, *, order_no: str, amount_fen: int, reason: str, requested_by: str
) -> Refund:
    order = await get_order(uow.session, order_no, lock=True)
    if order.status != OrderStatus.SUCCEEDED.value:
        raise _problem(409, "order_not_refundable", f"Order {order_no} is {order.status}.")
    left = order.amount_fen - await _committed_fen(uow.session, order_no)
    if amount_fen > left:
        raise _problem(
            422,
            "refund_exceeds_payment",
            f"At most {left} fen of {order_no} can still be refunded.",
            left_fen=left,
        )
    count = (
        await uow.session.execute(select(func.count()).select_from(Refund).where(Refund.order_no == order_no))
    ).scalar_one()
    refund = Refund(
        refund_no=f"R{order_no[1:]}{count + 1:02d}",
        order_no=order_no,
        account_no=order.account_no,
        amount_fen=amount_fen,
        reason=reason,
        status="requested",
        requested_by=requested_by,
    )
    uow.session.add(refund)
    await uow.session.flush()
    emit_refund(uow, refund)
    return refund


#: A refund's status -> its event (a counter refund is ``succeeded`` when approved).
_REFUND_EVENTS = {
    "requested": RefundRequested,
    "submitted": RefundApproved,
    "succeeded": RefundApproved,
    "rejected": RefundRejected,
}


def refund_facts(refund: Refund) -> dict[str, Any]:
    """The fields every ``payment.refund.*`` event carries."""
    return {
        "refund_no": refund.refund_no,
        "payment_id": refund.order_no,
        "account_no": refund.account_no,
        "amount_fen": refund.amount_fen,
        "refund_case_id": str(refund.refund_case_id) if refund.refund_case_id else None,
    }


def emit_refund(uow: UnitOfWork, refund: Refund) -> None:
    """The refund's new status as its event: requested, approved (submitted), rejected. A counter refund
    succeeds when approved: ``payment.refund.approved`` (``succeeded``), then ``payment.payment.refunded``."""
    event = _REFUND_EVENTS[refund.status](**refund_facts(refund), status=refund.status)
    uow.emit(catalog.build(event, subject=refund.account_no))


async def get_refund(session, refund_no: str) -> Refund:
    refund = (
        await session.execute(
            select(Refund).where(Refund.refund_no == refund_no).execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if refund is None:
        raise RefundNotFound(f"No refund {refund_no}.")
    return refund


async def _refund(session, refund_no: str) -> Refund:
    refund = (
        await session.execute(select(Refund).where(Refund.refund_no == refund_no).with_for_update())
    ).scalar_one_or_none()
    if refund is None:
        raise RefundNotFound(f"No refund {refund_no}.")
    return refund


async def decide_refund(
    uow: UnitOfWork, *, refund_no: str, approve: bool, decided_by: str, note: str, now: datetime
) -> Refund:
    """A supervisor approves (submitted; a counter refund succeeds at once) or rejects a request."""
    refund = await _refund(uow.session, refund_no)
    order = await get_order(uow.session, refund.order_no, lock=True)
    if refund.status != "requested":
        raise _problem(409, "refund_not_pending", f"Refund {refund_no} is {refund.status}.")
    if decided_by == refund.requested_by:
        raise _problem(
            409, "refund_not_authorized", "A refund is approved by someone other than its requester."
        )
    refund.approved_by, refund.decision_note = decided_by, note
    if not approve:
        refund.status = "rejected"
        emit_refund(uow, refund)
        if refund.refund_case_id is not None:
            await refund_cases.refund_ended(uow, refund, succeeded=False, reason="refund_rejected", at=now)
    else:  # a counter refund is paid back at once; any other is sent to the provider
        refund.status = "succeeded" if order.provider == COUNTER else "submitted"
        emit_refund(uow, refund)
        if order.provider == COUNTER:
            _succeed(uow, order, refund, provider_refund_id=f"counter:{refund_no}", at=now)
    await uow.session.flush()
    return refund


def _succeed(uow: UnitOfWork, order: PaymentOrder, refund: Refund, *, provider_refund_id: str, at: datetime):
    refund.status, refund.provider_refund_id, refund.completed_at = "succeeded", provider_refund_id, at
    order.refunded_fen += refund.amount_fen
    if order.refunded_fen == order.amount_fen:
        order.status = OrderStatus.REFUNDED.value
    order.version += 1
    uow.emit(
        catalog.build(
            PaymentRefunded(
                **_order_payload(order),
                status=order.status,
                refund_no=refund.refund_no,
                refund_fen=refund.amount_fen,
                refunded_fen=order.refunded_fen,
                refunded_at=at,
            ),
            subject=order.account_no,
        )
    )


#: Where each provider's refund notice names our refund number (WeChat, Alipay's ``out_biz_no``, the bank).
_REFUND_NO_FIELDS = ("out_refund_no", "out_request_no", "out_biz_no", "refund_no")


async def apply_refund_notice(uow: UnitOfWork, notice: Notice) -> str:
    """The provider confirms a refund: the submitted refund it names succeeds (once). The notice names the
    trade as the provider knows it: the refund's own order, or, for a prepaid order made from a refund
    case, the case's order (``service_layer/refund_cases.py``)."""
    order = await get_order(uow.session, notice.order_no, lock=True)
    refund_no = next((str(notice.raw[k]) for k in _REFUND_NO_FIELDS if notice.raw.get(k)), "")
    refund = (
        await uow.session.execute(select(Refund).where(Refund.refund_no == refund_no).with_for_update())
    ).scalar_one_or_none()
    if refund is None:
        return "conflict"  # a refund we never asked for: recorded with the callback, for a person
    if refund.order_no != order.order_no:
        own = await get_order(uow.session, refund.order_no, lock=True)
        case = await uow.session.get(RefundCase, own.refund_case_id) if own.refund_case_id else None
        if (
            case is None
            or case.order_no != order.order_no
            or api_provider(own.provider) != api_provider(notice.provider)
        ):
            return "conflict"
        order = own
    if refund.status == "succeeded":
        return "duplicate"
    if refund.status != "submitted" or refund.amount_fen != notice.amount_fen:
        return "conflict"
    at = notice.paid_at or utcnow()
    if refund.refund_case_id is not None:  # a refund case's money: billing has nothing to reverse
        refund.status, refund.completed_at = "succeeded", at
        refund.provider_refund_id = notice.provider_txn_id
        await refund_cases.refund_ended(uow, refund, succeeded=True, reason="", at=at)
        return "applied"
    _succeed(uow, order, refund, provider_refund_id=notice.provider_txn_id, at=at)
    return "applied"


async def request_invoice(
    uow: UnitOfWork,
    *,
    order_no: str,
    title_kind: str,
    title: str,
    tax_no: str | None,
    email: str,
    requested_by: str,
) -> InvoiceRequest:
    order = await get_order(uow.session, order_no)
    if order.status not in (OrderStatus.SUCCEEDED.value,):
        raise _problem(409, "order_not_invoiceable", f"Order {order_no} is {order.status}.")
    existing = (
        await uow.session.execute(select(InvoiceRequest).where(InvoiceRequest.order_no == order_no))
    ).scalar_one_or_none()
    if existing is not None:
        raise _problem(409, "invoice_already_requested", f"An invoice for {order_no} was already requested.")
    row = InvoiceRequest(
        order_no=order_no,
        account_no=order.account_no,
        amount_fen=order.amount_fen - order.refunded_fen,
        title_kind=title_kind,
        title=title,
        tax_no=tax_no,
        email=email,
        status="requested",
        requested_by=requested_by,
    )
    uow.session.add(row)
    await uow.session.flush()
    return row
