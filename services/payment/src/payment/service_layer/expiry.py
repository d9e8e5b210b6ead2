"""Pending orders past their expiry: ask the provider, then settle or close (the ``scheduler`` process).

A payer may pay at the provider and the callback never arrive (lost, or our endpoint was down). So an
order still ``pending`` at ``expires_at`` is not closed blindly: its provider is asked (the adapter's signed
order query, sent to ``provider_query_urls[provider]``) and the verified answer is applied like a callback
(``succeeded`` settles it, exactly once; ``failed`` / ``closed`` close it). ``pending`` at the provider is
asked again on the next round until ``expiry_grace_seconds`` after expiry; then, or when the provider never
saw the order (``not_found``), the order is closed (a payment that still arrives opens a refund case).
Counter orders and providers without a query URL are closed at expiry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payment import metrics as payment_metrics
from payment.adapters.channels import Channels, send
from payment.adapters.orm import PaymentOrder
from payment.adapters.providers.base import CallbackRejected
from payment.service_layer import orders
from payment.settings import Settings
from utilis_shared.db import UnitOfWork

log = logging.getLogger(__name__)


@dataclass
class ExpirySummary:
    looked_at: int = 0
    settled: int = 0
    closed: int = 0
    still_pending: int = 0
    errors: int = 0


async def sweep_expired(
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    channels: Channels,
    http: httpx.AsyncClient,
    *,
    now: datetime,
    limit: int = 200,
) -> ExpirySummary:
    summary = ExpirySummary()
    async with session_factory() as session:
        due = list(
            (
                await session.execute(
                    select(PaymentOrder.order_no, PaymentOrder.provider, PaymentOrder.expires_at)
                    .where(PaymentOrder.status == "pending", PaymentOrder.expires_at <= now)
                    .order_by(PaymentOrder.expires_at)
                    .limit(limit)
                )
            ).all()
        )
    grace = timedelta(seconds=settings.expiry_grace_seconds)
    for order_no, provider, expires_at in due:
        summary.looked_at += 1
        try:
            answer = await _ask(channels, http, settings, provider, order_no, now)
            uow = UnitOfWork(session_factory, settings)
            async with uow:
                if answer is not None and answer.final:
                    notice = answer.to_notice()
                    await orders.apply_notice(uow, orders.Notice.of(notice))
                    summary.settled += answer.status == "succeeded"
                    summary.closed += answer.status != "succeeded"
                elif answer is not None and answer.status == "pending" and now < expires_at + grace:
                    summary.still_pending += 1
                    continue
                else:
                    await orders.close_order(uow, order_no=order_no, reason="expired", now=now)
                    summary.closed += 1
                await uow.commit()
            payment_metrics.observe_committed(uow.committed_events)
        except (httpx.HTTPError, CallbackRejected) as exc:
            summary.errors += 1  # asked again on the next round
            log.warning("order query failed", extra={"order_no": order_no, "error": str(exc)[:200]})
    return summary


async def _ask(channels: Channels, http, settings: Settings, provider: str, order_no: str, now: datetime):
    base_url = settings.provider_query_urls.get(provider)
    if provider == "counter" or base_url is None or provider not in channels.adapters:
        return None
    adapter = channels.adapter(provider)
    request = adapter.build_query_request(order_no=order_no, now=now)
    response = await send(http, request, base_url)
    return adapter.parse_query_response(
        status_code=response.status_code,
        headers=response.headers,
        body=response.content,
        order_no=order_no,
        now=now,
    )
