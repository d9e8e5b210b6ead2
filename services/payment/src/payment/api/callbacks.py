"""Providers' asynchronous notifications: ``POST /callbacks/{provider}`` (``/callbacks/bank/{code}`` for
bank direct-connect). No OAuth2: the gateway passes them through behind an IP allow-list and a rate limit;
this service authenticates each one by its provider's signature.

For every callback, in order:
1. the provider's adapter verifies the signature over the **raw body** and the signed timestamp (older or
   newer than ``callback_window_seconds``: refused as stale), and decrypts / parses the notice;
2. a notice whose nonce (or the provider's notification id) was already processed is refused as a
   **replay** (``payment:nonce:<provider>:<nonce>`` in Redis, kept for the window);
3. the notice is applied in one transaction under a lock on its order (``orders.apply_notice``): amount and
   order cross-checked, concurrent duplicates applied once, a success for a closed order opens a refund
   case; the callback is recorded with its outcome;
4. after the commit the nonce is remembered, and the provider gets the answer in its own format.

The nonce is remembered *after* the commit: concurrent deliveries of one notice may all pass step 2, and
step 3 applies exactly one of them; a crash between the commit and step 4 lets a later replay through to
step 3, which finds the order already paid (``duplicate``). A refused callback is logged with its reason
(never its body) and answered with the provider's failure format.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from prometheus_client import Counter

from payment import metrics as payment_metrics
from payment.adapters.channels import Channels
from payment.adapters.providers.base import CallbackRejected
from payment.service_layer import orders
from payment.settings import Settings
from utilis_shared.db import UnitOfWork
from utilis_shared.timeutil import utcnow

log = logging.getLogger(__name__)
router = APIRouter()

CALLBACKS = Counter(
    "utilis_payment_callbacks_total",
    "Provider callbacks by provider and outcome (applied, duplicate, refund_case, amount_mismatch, "
    "conflict, or the refusal code).",
    ["provider", "outcome"],
)


def channels_from_settings(settings: Settings) -> Channels:
    """The adapters configured for this deployment (keys from settings). Until a provider's keys are
    configured it is not offered: its callbacks answer 404 ``unknown_provider``."""
    from payment.adapters.channels import configured_adapters

    return Channels(configured_adapters(settings), notify_base_url=settings.callback_base_url)


class NonceStore:
    """Processed notices' nonces in Redis, for the callback window (replay protection across replicas)."""

    def __init__(self, redis, prefix: str, ttl_seconds: int) -> None:
        self.redis, self.prefix, self.ttl = redis, prefix, ttl_seconds

    def _key(self, provider: str, nonce: str) -> str:
        return f"{self.prefix}nonce:{provider}:{nonce}"

    async def seen(self, provider: str, nonce: str) -> bool:
        return bool(await self.redis.exists(self._key(provider, nonce)))

    async def remember(self, provider: str, nonce: str) -> None:
        await self.redis.set(self._key(provider, nonce), b"1", ex=self.ttl)


def _answer(adapter: Any, ok: bool, message: str = "") -> Response:
    status, content_type, body = adapter.ack(ok, message)
    return Response(body, status_code=status, media_type=content_type)


async def handle_callback(request: Request, provider: str) -> Response:
    state = request.app.state
    channels: Channels = state.channels
    adapter = channels.adapter(provider)
    body = await request.body()
    headers: Mapping[str, str] = request.headers
    try:
        notice = adapter.verify_callback(headers=headers, body=body, now=utcnow())
    except CallbackRejected as exc:
        CALLBACKS.labels(provider, exc.code).inc()
        if exc.acknowledge:  # e.g. a notice that is not final yet: "received", nothing to apply
            return _answer(adapter, True)
        log.warning("provider callback refused", extra={"provider": provider, "reason": exc.code})
        return _answer(adapter, False, exc.code)
    nonces = NonceStore(state.redis, state.settings.redis_prefix, state.settings.callback_window_seconds)
    if notice.nonce and await nonces.seen(provider, notice.nonce):
        CALLBACKS.labels(provider, "replayed").inc()
        log.warning("provider callback refused", extra={"provider": provider, "reason": "replayed"})
        return _answer(adapter, False, "replayed")
    uow = UnitOfWork(state.session_factory, state.settings)
    async with uow:
        try:
            outcome = await orders.apply_notice(uow, orders.Notice.of(notice))
        except orders.OrderNotFound:
            # A correctly signed notice about an order we never created: never applied (nothing was
            # written before the order was looked up); the provider is told "failed" in its own format
            # (it retries, and reconciliation shows it as missing here).
            CALLBACKS.labels(provider, "unknown_order").inc()
            log.warning("provider callback for an unknown order", extra={"provider": provider})
            return _answer(adapter, False, "unknown_order")
        await uow.commit()
    payment_metrics.observe_committed(uow.committed_events)
    if notice.nonce:
        await nonces.remember(provider, notice.nonce)
    CALLBACKS.labels(provider, outcome.value).inc()
    # The provider is told "received" for every outcome we recorded: asking it to retry would not change
    # a duplicate, a refund case or a mismatch (those are for people, through the recorded callback).
    return _answer(adapter, True)


@router.post(
    "/callbacks/{provider}",
    summary="A payment provider's asynchronous notification (signature checked here)",
    tags=["callbacks"],
    responses={200: {"description": "the provider's own acknowledgement format"}},
)
async def provider_callback(request: Request, provider: str = Path(pattern=r"^(wechat|alipay)$")) -> Response:
    with payment_metrics.CALLBACK_DURATION.labels(provider).time():
        return await handle_callback(request, provider)


@router.post(
    "/callbacks/bank/{bank}",
    summary="A bank's direct-connect (银企直连) payment notification (RSA or SM2 signature checked here)",
    tags=["callbacks"],
    responses={200: {"description": "the bank's own acknowledgement format"}},
)
async def bank_callback(request: Request, bank: str = Path(pattern=r"^[a-z0-9]{2,20}$")) -> Response:
    with payment_metrics.CALLBACK_DURATION.labels("bank").time():  # one label: bank codes come from the path
        return await handle_callback(request, f"bank:{bank}")
