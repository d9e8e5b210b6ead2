"""The ``scheduler`` process, every ``expiry_sweep_seconds``: pending orders past their expiry are asked
about at their provider, then settled or closed (``service_layer/expiry.py``); approved refunds the
provider has not accepted yet are sent (again) to it (``service_layer/refund_requests.py``); the providers'
daily statements not reconciled yet are fetched and imported (``service_layer/statement_fetch.py``); on
withholding days each bank's batch is made and its request file handed to the banks' transfer, and the
result files it brings back are applied (``service_layer/withholding_exchange.py``). Two replicas are
safe: each order is settled or closed under its row lock, exactly once; a refund request sent twice is one
refund at the provider (its refund number is the provider's idempotency key); a statement imported twice
is one run; a bank's batch of a day is one batch, and a result file applied twice changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from payment.api.callbacks import channels_from_settings
from payment.service_layer.expiry import sweep_expired
from payment.service_layer.refund_requests import send_due_refunds
from payment.service_layer.statement_fetch import StatementFetcher
from payment.service_layer.withholding_exchange import exchange
from payment.settings import Settings
from utilis_shared.db import create_session_factory
from utilis_shared.timeutil import utcnow

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.session_factory = create_session_factory(engine)
        self.channels = channels_from_settings(settings)
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=2.0))
        self.statements = StatementFetcher()
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        pass

    def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        await self.http.aclose()

    async def run_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                summary = await sweep_expired(
                    self.session_factory, self.settings, self.channels, self.http, now=utcnow()
                )
                if summary.looked_at:
                    log.info("expired orders swept", extra={"summary": str(summary)})
            except Exception:  # keep the process alive; the next round tries again
                log.exception("expiry sweep failed")
            try:
                sent = await send_due_refunds(
                    self.session_factory, self.settings, self.channels, self.http, now=utcnow()
                )
                if sent.sent:
                    log.info("refund requests sent", extra={"summary": str(sent)})
            except Exception:
                log.exception("refund requests failed")
            try:
                fetched = await self.statements.run(
                    self.session_factory, self.settings, self.channels, self.http, now=utcnow()
                )
                if fetched.asked:
                    log.info("statements fetched", extra={"summary": str(fetched)})
            except Exception:
                log.exception("statement fetch failed")
            try:
                exchanged = await exchange(self.session_factory, self.settings, now=utcnow())
                if exchanged.files:
                    log.info("withholding files exchanged", extra={"summary": str(exchanged)})
            except Exception:
                log.exception("withholding exchange failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.settings.expiry_sweep_seconds)
