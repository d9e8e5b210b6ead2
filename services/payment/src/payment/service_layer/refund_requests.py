"""Refund requests sent to the providers (WeChat ``/v3/refund/domestic/refunds``, Alipay
``alipay.trade.refund``, the bank's ``REFUND_REQUEST``) once a refund is approved (``submitted``).

The approved row is the durable intent: the approval commits first, then the request is sent (right after
the approval by the decision route, and by the ``scheduler`` for any approved refund the provider has not
accepted yet, every ``refund_retry_seconds``). No HTTP call runs inside a database transaction.

Retries only where safe: every request carries the refund's own number (``out_refund_no`` /
``out_request_no`` / ``refund_no``), the provider's idempotency key, so a request sent twice (a timeout
whose request did arrive, the route and the scheduler at once) is one refund at the provider. Within one
round a request is tried ``refund_request_attempts`` times on transport errors, timeouts, the provider's
system errors and answers that do not verify; then it waits for the next round (``last_error``).

The provider's verified answer decides (``RefundAnswer``): ``accepted`` records ``sent_at`` (the refund
stays ``submitted``; the provider's verified refund notice completes it, exactly once, in
``refunds.apply_refund_notice``); ``refused`` fails the refund (``failed``, ``failure_code``,
``payment.refund.failed``): its amount is free again, and a refund case's refund reopens the case.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payment.adapters.channels import Channels, send
from payment.adapters.orm import PaymentOrder, Refund, RefundCase
from payment.adapters.providers.base import CallbackRejected, RefundAnswer, RefundTarget
from payment.domain.withholding import api_provider, provider_for
from payment.events import RefundFailed, catalog
from payment.service_layer import refund_cases
from payment.service_layer.refunds import refund_facts
from payment.settings import Settings
from utilis_shared.db import UnitOfWork

log = logging.getLogger(__name__)

BACKOFF_SECONDS = (0.2, 0.5, 1.0)


@dataclass
class SendSummary:
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    retry_later: int = 0


def _served(urls: dict[str, str]) -> list[str]:
    """The orders' providers whose refunds have an API to go to: those with one, and the withholding
    debits of every bank with one."""
    return [*urls, *(provider_for(p.removeprefix("bank:")) for p in urls if p.startswith("bank:"))]


async def _target(
    session: AsyncSession, channels: Channels, refund: Refund, order: PaymentOrder
) -> RefundTarget:
    """The paid trade as the provider knows it: a refund case's money is the case's transaction (for the
    case's order number); a top-up made from a case is that transaction too; any other refund, the order's."""
    case_id = refund.refund_case_id or order.refund_case_id
    if case_id is not None:
        case = (await session.execute(select(RefundCase).where(RefundCase.id == case_id))).scalar_one()
        order_no, txn, total = case.order_no, case.provider_txn_id, case.amount_fen
    else:
        order_no, txn, total = order.order_no, order.provider_txn_id or "", order.amount_fen
    return RefundTarget(
        refund_no=refund.refund_no,
        order_no=order_no,
        provider_txn_id=txn,
        refund_fen=refund.amount_fen,
        total_fen=total,
        reason=refund.reason,
        notify_url=channels.notify_url(api_provider(order.provider)),
    )


async def send_refund(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    channels: Channels,
    http: httpx.AsyncClient,
    *,
    refund_no: str,
    now: datetime,
) -> str:
    """Send one approved refund's request; returns ``accepted``, ``refused``, ``retry`` or ``skipped`` (not
    submitted any more, already accepted, a counter refund, or no gateway configured for its provider)."""
    async with session_factory() as session:
        row = (
            await session.execute(
                select(Refund, PaymentOrder)
                .join(PaymentOrder, PaymentOrder.order_no == Refund.order_no)
                .where(Refund.refund_no == refund_no)
            )
        ).one_or_none()
        if row is None:
            return "skipped"
        refund, order = row
        provider = api_provider(order.provider)  # a withholding debit's refund goes to its bank's API
        base_url = settings.provider_query_urls.get(provider)
        if (
            refund.status != "submitted"
            or refund.sent_at is not None
            or base_url is None
            or provider not in channels.adapters
        ):
            return "skipped"
        target = await _target(session, channels, refund, order)
    adapter = channels.adapter(provider)
    answer: RefundAnswer | None = None
    error = ""
    attempts = 0
    for attempt in range(max(1, settings.refund_request_attempts)):
        if attempt:
            await asyncio.sleep(BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)])
        attempts += 1
        request = adapter.build_refund_request(target, now=now)
        try:
            response = await send(http, request, base_url, timeout=settings.provider_request_timeout_seconds)
            answer = adapter.parse_refund_response(
                status_code=response.status_code,
                headers=response.headers,
                body=response.content,
                refund_no=refund_no,
                now=now,
            )
        except httpx.HTTPError as exc:
            answer, error = None, f"transport: {type(exc).__name__}"
            continue
        except CallbackRejected as exc:  # an answer that does not verify: nothing concluded from it
            answer, error = None, f"answer refused: {exc.code}"
            continue
        if answer.status != "retry":
            break
        error = f"provider: {answer.code} {answer.message or ''}".strip()
    outcome = answer.status if answer is not None else "retry"
    await _record(session_factory, settings, refund_no, answer, attempts, error, now)
    log.info(
        "refund request sent",
        extra={"refund_no": refund_no, "provider": order.provider, "outcome": outcome, "attempts": attempts},
    )
    return outcome


async def _record(
    session_factory, settings, refund_no: str, answer: RefundAnswer | None, attempts: int, error: str, now
) -> None:
    uow = UnitOfWork(session_factory, settings)
    async with uow:
        refund = (
            await uow.session.execute(select(Refund).where(Refund.refund_no == refund_no).with_for_update())
        ).scalar_one()
        refund.send_attempts += attempts
        refund.last_attempt_at = now
        if refund.status != "submitted":  # the provider's notice came first, or a person decided
            await uow.commit()
            return
        if answer is None or answer.status == "retry":
            refund.last_error = error[:200]
        elif answer.status == "accepted":
            refund.sent_at, refund.last_error = now, None
            refund.provider_refund_id = refund.provider_refund_id or answer.provider_refund_id
        else:
            refund.status = "failed"
            refund.failure_code = (answer.code or "refused")[:64]
            refund.last_error = (answer.message or "")[:200] or None
            order = (
                await uow.session.execute(
                    select(PaymentOrder).where(PaymentOrder.order_no == refund.order_no)
                )
            ).scalar_one()
            uow.emit(
                catalog.build(
                    RefundFailed(**refund_facts(refund), provider=order.provider, code=refund.failure_code),
                    subject=refund.account_no,
                )
            )
            if refund.refund_case_id is not None:
                await refund_cases.refund_ended(uow, refund, succeeded=False, reason="refund_failed", at=now)
        await uow.commit()


async def send_due_refunds(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    channels: Channels,
    http: httpx.AsyncClient,
    *,
    now: datetime,
    limit: int = 100,
) -> SendSummary:
    """The scheduler's round: every approved refund the provider has not accepted, not tried in the last
    ``refund_retry_seconds``."""
    summary = SendSummary()
    due_before = now - timedelta(seconds=settings.refund_retry_seconds)
    async with session_factory() as session:
        due = list(
            (
                await session.execute(
                    select(Refund.refund_no)
                    .join(PaymentOrder, PaymentOrder.order_no == Refund.order_no)
                    .where(
                        PaymentOrder.provider.in_(_served(settings.provider_query_urls)),
                        Refund.status == "submitted",
                        Refund.sent_at.is_(None),
                        or_(Refund.last_attempt_at.is_(None), Refund.last_attempt_at <= due_before),
                    )
                    .order_by(Refund.last_attempt_at.nulls_first(), Refund.created_at)
                    .limit(limit)
                )
            ).scalars()
        )
    for refund_no in due:
        outcome = await send_refund(session_factory, settings, channels, http, refund_no=refund_no, now=now)
        summary.sent += outcome != "skipped"
        summary.accepted += outcome == "accepted"
        summary.refused += outcome == "refused"
        summary.retry_later += outcome == "retry"
    return summary
