"""The customer service's background processes: the outbox relay and the projection consumer."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from customer.service_layer.projections import CONSUMED_TOPICS, registry
from customer.settings import Settings
from utilis_shared.db import create_engine, create_session_factory
from utilis_shared.health import HealthCheck, KafkaProbe, database_check
from utilis_shared.inbox import EventConsumer
from utilis_shared.logging import configure_logging
from utilis_shared.outbox import OutboxRelay
from utilis_shared.runner import serve_worker


async def _serve(
    settings: Settings, kind: str, make_worker: Callable[[AsyncEngine], OutboxRelay | EventConsumer]
):
    """Run one worker process: its own small pool, readiness on database and broker, graceful stop."""
    configure_logging(f"{settings.service_name}-{kind}", settings.log_level)
    engine = create_engine(settings, pool_size=2, max_overflow=2)
    probe = KafkaProbe(settings.kafka_bootstrap)
    worker = make_worker(engine)
    await worker.start()
    try:
        await serve_worker(
            worker,
            checks=[HealthCheck("database", database_check(engine)), HealthCheck("broker", probe.check)],
            host=settings.http_host,
            port=settings.management_port,
        )
    finally:
        await worker.close()
        await probe.close()
        await engine.dispose()


async def run_relay(settings: Settings) -> None:
    await _serve(settings, "relay", lambda engine: OutboxRelay(settings, engine))


async def run_consumer(settings: Settings) -> None:
    await _serve(
        settings,
        "consumer",
        lambda engine: EventConsumer(settings, create_session_factory(engine), registry, CONSUMED_TOPICS),
    )
