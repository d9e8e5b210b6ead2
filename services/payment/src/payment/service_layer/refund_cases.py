"""Refund cases: list them, and resolve one (``payment.domain.refund_cases``): refund the money through the
refund flow (four eyes), or apply it as a prepaid top-up (a succeeded ``prepaid`` order whose
``payment.payment.succeeded`` billing settles; this service never writes billing's tables).

Concurrency: the case's order row is locked, then the case (``FOR UPDATE``) before its status is read:
two resolutions of one case queue on the locks and the second finds it no longer open (409
``refund_case_not_open``). The refund's later steps (the approval, the provider's notice) lock the refund
and the order, then the case (:func:`refund_ended`): the order before the case, on every path.
"""

from __future__ import annotations

import base64
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from payment.adapters.orm import PaymentOrder, Refund, RefundCase
from payment.domain.orders import OrderStatus, Purpose
from payment.domain.refund_cases import CaseStatus, Resolution, can_move, target_of
from payment.events import (
    PaymentSucceeded,
    RefundCaseRefundRequested,
    RefundCaseReopened,
    RefundCaseResolved,
    catalog,
)
from payment.service_layer.orders import _order_payload, _problem, get_order, next_order_no
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import NotFound, UnprocessableEntity

log = logging.getLogger(__name__)

MAX_LIMIT = 200


class RefundCaseNotFound(NotFound):
    code = "refund_case_not_found"


def _base(case: RefundCase, account_no: str) -> dict:
    return {
        "case_id": str(case.id),
        "payment_id": case.order_no,
        "account_no": account_no,
        "provider": case.provider,
        "provider_txn_id": case.provider_txn_id,
        "amount_fen": case.amount_fen,
        "status": case.status,
    }


async def get_case(session, case_id: uuid.UUID, *, lock: bool = False) -> RefundCase:
    stmt = select(RefundCase).where(RefundCase.id == case_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    case = (await session.execute(stmt)).scalar_one_or_none()
    if case is None:
        raise RefundCaseNotFound(f"No refund case {case_id}.")
    return case


def _move(case: RefundCase, target: CaseStatus) -> None:
    if not can_move(CaseStatus(case.status), target):
        raise _problem(409, "refund_case_not_open", f"Refund case {case.id} is {case.status}.")
    case.status = target.value
    case.version += 1


async def resolve(
    uow: UnitOfWork, *, case_id: uuid.UUID, resolution: Resolution, note: str, by: str, now: datetime
) -> RefundCase:
    """Resolve an open case: ``refund`` (a refund request of the case's amount, ``refunding`` until the
    provider confirms it), ``top_up`` (``applied`` at once) or ``dismiss`` (``dismissed``: the money is
    neither refunded nor applied here; the caller admits only a billing supervisor, with the reason in
    ``note``)."""
    # Locks in the order every refund path takes them: the order, then the case.
    order = await get_order(uow.session, (await get_case(uow.session, case_id)).order_no, lock=True)
    case = await get_case(uow.session, case_id, lock=True)
    if case.status != CaseStatus.OPEN.value:
        raise _problem(409, "refund_case_not_open", f"Refund case {case_id} is {case.status}.")
    _move(case, target_of(resolution))
    case.resolution = note
    if resolution is Resolution.REFUND:
        count = (
            await uow.session.execute(
                select(func.count()).select_from(Refund).where(Refund.order_no == order.order_no)
            )
        ).scalar_one()
        refund = Refund(
            refund_no=f"R{order.order_no[1:]}{count + 1:02d}",
            order_no=order.order_no,
            account_no=order.account_no,
            amount_fen=case.amount_fen,
            reason=note or "退款案件：退还无法入账的款项",
            status="requested",
            requested_by=by,
            refund_case_id=case.id,
        )
        uow.session.add(refund)
        case.refund_no = refund.refund_no
        await uow.session.flush()
        from payment.service_layer.refunds import emit_refund  # refunds imports this module

        emit_refund(uow, refund)
        uow.emit(
            catalog.build(
                RefundCaseRefundRequested(**_base(case, order.account_no), refund_no=refund.refund_no),
                subject=order.account_no,
            )
        )
    elif resolution is Resolution.DISMISS:
        case.resolved_by, case.resolved_at = by, now
        _emit_resolved(uow, case, order.account_no, Resolution.DISMISS, now)
    else:
        taken = (
            await uow.session.execute(
                select(PaymentOrder.order_no).where(
                    PaymentOrder.provider == case.provider,
                    PaymentOrder.provider_txn_id == case.provider_txn_id,
                )
            )
        ).scalar_one_or_none()
        if taken is not None:
            raise _problem(
                409, "provider_txn_reused", f"This provider transaction already paid order {taken}."
            )
        paid_at = case.paid_at or case.created_at
        top_up = PaymentOrder(
            order_no=await next_order_no(uow.session, now),
            account_no=order.account_no,
            purpose=Purpose.PREPAID.value,
            bill_no=None,
            amount_fen=case.amount_fen,
            channel=order.channel,
            provider=case.provider,
            status=OrderStatus.SUCCEEDED.value,
            provider_txn_id=case.provider_txn_id,
            refunded_fen=0,
            client_channel=None,
            created_by=by,
            expires_at=now,
            paid_at=paid_at,
            version=1,
            refund_case_id=case.id,
        )
        uow.session.add(top_up)
        case.applied_order_no = top_up.order_no
        case.resolved_by, case.resolved_at = by, now
        await uow.session.flush()
        uow.emit(
            catalog.build(
                PaymentSucceeded(
                    **_order_payload(top_up),
                    status=top_up.status,
                    paid_at=paid_at,
                    provider=case.provider,
                    provider_txn_id=case.provider_txn_id,
                ),
                subject=top_up.account_no,
            )
        )
        _emit_resolved(uow, case, order.account_no, Resolution.TOP_UP, now)
    log.info(
        "refund case resolved",
        extra={"case_id": str(case.id), "resolution": resolution.value, "status": case.status, "by": by},
    )
    return case


def _emit_resolved(
    uow: UnitOfWork, case: RefundCase, account_no: str, resolution: Resolution, at: datetime
) -> None:
    uow.emit(
        catalog.build(
            RefundCaseResolved(
                **_base(case, account_no),
                resolution=resolution.value,
                refund_no=case.refund_no if resolution is Resolution.REFUND else None,
                applied_payment_id=case.applied_order_no,
                resolved_at=at,
            ),
            subject=account_no,
        )
    )


async def refund_ended(
    uow: UnitOfWork, refund: Refund, *, succeeded: bool, reason: str, at: datetime
) -> None:
    """The case's refund succeeded (the case is ``refunded``) or ended without money leaving (rejected by
    the approver, refused by the provider: the case is ``open`` again). Called under the refund's lock."""
    case = await get_case(uow.session, refund.refund_case_id, lock=True)
    if succeeded:
        _move(case, CaseStatus.REFUNDED)
        case.resolved_by, case.resolved_at = refund.approved_by, at
        _emit_resolved(uow, case, refund.account_no, Resolution.REFUND, at)
        return
    _move(case, CaseStatus.OPEN)
    refund_no, case.refund_no = case.refund_no, None
    uow.emit(
        catalog.build(
            RefundCaseReopened(**_base(case, refund.account_no), refund_no=refund_no or "", reason=reason),
            subject=refund.account_no,
        )
    )


# --------------------------------------------------------------------------------------------- queries
def encode_cursor(row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(row_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
    except (ValueError, TypeError) as exc:
        raise UnprocessableEntity("The cursor is not one this API returned.", code="invalid_cursor") from exc


@dataclass(frozen=True)
class CasePage:
    items: list[tuple[RefundCase, str]]  # the case and its account number
    next_cursor: str | None


async def list_cases(session, *, status: str | None, limit: int, cursor: str | None) -> CasePage:
    """Cases oldest first (ids are time-ordered), with their order's account number."""
    stmt = (
        select(RefundCase, PaymentOrder.account_no)
        .join(PaymentOrder, PaymentOrder.order_no == RefundCase.order_no)
        .order_by(RefundCase.id)
        .limit(limit + 1)
    )
    if status is not None:
        stmt = stmt.where(RefundCase.status == status)
    if cursor is not None:
        stmt = stmt.where(RefundCase.id > decode_cursor(cursor))
    rows = [(c, a) for c, a in (await session.execute(stmt)).all()]
    more = len(rows) > limit
    rows = rows[:limit]
    return CasePage(rows, encode_cursor(rows[-1][0].id) if more and rows else None)
