"""The payment background processes: the outbox relay and the consumer."""

from __future__ import annotations

from payment.service_layer.consumers import registry
from payment.settings import Settings
from utilis_shared.db import create_session_factory
from utilis_shared.inbox import EventConsumer
from utilis_shared.outbox import OutboxRelay
from utilis_shared.runner import run_worker


async def run_relay(settings: Settings) -> None:
    await run_worker(settings, "relay", lambda engine: OutboxRelay(settings, engine))


async def run_consumer(settings: Settings) -> None:
    await run_worker(
        settings,
        "consumer",
        lambda engine: EventConsumer(settings, create_session_factory(engine), registry, settings.consumes),
    )


async def run_scheduler(settings: Settings) -> None:
    from payment.entrypoints.scheduler import Scheduler

    await run_worker(settings, "scheduler", lambda engine: Scheduler(settings, engine))
