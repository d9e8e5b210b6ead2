"""The ``scheduler`` process: processes billing runs (oldest waiting first, and any run whose processor
died: runs resume after their cursor) and sends due payment reminders once a minute. One replica is
enough; two are safe (a run's chunks lock the run row; a reminder step is recorded once per bill)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from billing import metrics
from billing.adapters.cache import LookupCache
from billing.adapters.notifications import sender_from_settings
from billing.service_layer import billing_runs, reminders
from billing.settings import Settings
from utilis_shared.db import create_session_factory
from utilis_shared.timeutil import utcnow

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, settings: Settings, engine: AsyncEngine, *, poll_seconds: float = 2.0) -> None:
        self.settings = settings
        self.session_factory = create_session_factory(engine)
        self.cache = LookupCache.from_settings(settings)
        self.sender = sender_from_settings(settings)
        self.poll_seconds = poll_seconds
        self._stopping = asyncio.Event()
        self._last_sweep = 0.0  # set when run_forever starts: the first sweep is one interval later

    async def start(self) -> None:
        pass

    def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        await self.cache.close()
        if hasattr(self.sender, "aclose"):
            await self.sender.aclose()

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        # Counted from the start, not from the clock's zero (the event loop's clock is the machine's
        # uptime, so whether a fresh scheduler swept at once depended on how long the machine had run).
        self._last_sweep = loop.time()
        while not self._stopping.is_set():
            try:
                run_id = await billing_runs.next_pending_run(self.session_factory)
                if run_id is not None:
                    await self._process(run_id)
                    continue
                if loop.time() - self._last_sweep >= self.settings.reminder_sweep_seconds:
                    self._last_sweep = loop.time()
                    await self._sweep_reminders()
            except Exception:  # keep the process alive; the run resumes after its cursor next time
                log.exception("scheduler round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.poll_seconds)

    async def _process(self, run_id) -> None:
        """Process a run; one that fails twice in a row is marked failed (with the error) so it does not
        block the runs behind it. A run whose processor died (a crash, a deploy) is simply resumed."""
        metrics.RUN_IN_PROGRESS.set(1)
        metrics.RUN_LAST_PROGRESS.set_to_current_time()
        try:
            for attempt in (1, 2):
                try:
                    await billing_runs.process_run(
                        self.session_factory, self.settings, run_id, invalidate=self.cache.invalidate
                    )
                    return
                except Exception as exc:
                    log.exception("billing run failed", extra={"run_id": str(run_id), "attempt": attempt})
                    error = f"{type(exc).__name__}: {exc}"
            await billing_runs.mark_failed(self.session_factory, run_id, error)
        finally:
            metrics.RUN_IN_PROGRESS.set(0)

    async def _sweep_reminders(self) -> None:
        summary = await reminders.sweep(self.session_factory, self.settings, self.sender, now=utcnow())
        log.info("reminder sweep", extra={"summary": str(summary)})
