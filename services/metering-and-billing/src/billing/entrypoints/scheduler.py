"""The ``scheduler`` process: processes billing runs (oldest waiting first, and any run whose processor
died: runs resume after their cursor) and sends due payment reminders once a minute. One replica is
enough; two are safe (a run's chunks lock the run row; a reminder step is recorded once per bill)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from billing.adapters.cache import LookupCache
from billing.service_layer import billing_runs
from billing.settings import Settings
from utilis_shared.db import create_session_factory
from utilis_shared.timeutil import utcnow

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, settings: Settings, engine: AsyncEngine, *, poll_seconds: float = 2.0) -> None:
        self.settings = settings
        self.session_factory = create_session_factory(engine)
        self.cache = LookupCache.from_settings(settings)
        self.poll_seconds = poll_seconds
        self._stopping = asyncio.Event()
        self._last_sweep = 0.0

    async def start(self) -> None:
        pass

    def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        await self.cache.close()

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                run_id = await billing_runs.next_pending_run(self.session_factory)
                if run_id is not None:
                    await billing_runs.process_run(
                        self.session_factory, self.settings, run_id, invalidate=self.cache.invalidate
                    )
                    continue
                if loop.time() - self._last_sweep >= self.settings.reminder_sweep_seconds:
                    self._last_sweep = loop.time()
                    await self._sweep_reminders()
            except Exception:  # keep the process alive; the run resumes after its cursor next time
                log.exception("scheduler round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.poll_seconds)

    async def _sweep_reminders(self) -> None:
        from billing.adapters.notifications import sender_from_settings
        from billing.service_layer import reminders

        summary = await reminders.sweep(
            self.session_factory, self.settings, sender_from_settings(self.settings), now=utcnow()
        )
        log.info("reminder sweep", extra={"summary": str(summary)})
