"""The metering-and-billing background processes: the outbox relay, the consumer and the scheduler."""

from __future__ import annotations

from billing.adapters.cache import LookupCache
from billing.service_layer.consumers import build_registry
from billing.settings import Settings
from utilis_shared.db import create_session_factory
from utilis_shared.inbox import EventConsumer
from utilis_shared.outbox import OutboxRelay
from utilis_shared.runner import run_worker


async def run_relay(settings: Settings) -> None:
    await run_worker(settings, "relay", lambda engine: OutboxRelay(settings, engine))


async def run_consumer(settings: Settings) -> None:
    cache = LookupCache.from_settings(settings)
    try:
        await run_worker(
            settings,
            "consumer",
            lambda engine: EventConsumer(
                settings, create_session_factory(engine), build_registry(cache), settings.consumes
            ),
        )
    finally:
        await cache.close()


async def run_scheduler(settings: Settings) -> None:
    from billing.entrypoints.scheduler import Scheduler

    await run_worker(settings, "scheduler", lambda engine: Scheduler(settings, engine))
