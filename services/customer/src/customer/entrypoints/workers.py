"""The customer service's background processes: the outbox relay and the projection consumer."""

from __future__ import annotations

from customer.service_layer.projections import CONSUMED_TOPICS, registry
from customer.settings import Settings
from utilis_shared.db import create_engine, create_session_factory
from utilis_shared.health import HealthCheck, KafkaProbe, database_check
from utilis_shared.inbox import EventConsumer
from utilis_shared.logging import configure_logging
from utilis_shared.outbox import OutboxRelay
from utilis_shared.runner import serve_worker


async def run_relay(settings: Settings) -> None:
    configure_logging(f"{settings.service_name}-relay", settings.log_level)
    engine = create_engine(settings, pool_size=2, max_overflow=2)
    probe = KafkaProbe(settings.kafka_bootstrap)
    relay = OutboxRelay(settings, engine)
    await relay.start()
    try:
        await serve_worker(
            relay,
            checks=[HealthCheck("database", database_check(engine)), HealthCheck("broker", probe.check)],
            host=settings.http_host,
            port=settings.management_port,
        )
    finally:
        await relay.close()
        await probe.close()
        await engine.dispose()


async def run_consumer(settings: Settings) -> None:
    configure_logging(f"{settings.service_name}-consumer", settings.log_level)
    engine = create_engine(settings, pool_size=2, max_overflow=2)
    probe = KafkaProbe(settings.kafka_bootstrap)
    consumer = EventConsumer(settings, create_session_factory(engine), registry, CONSUMED_TOPICS)
    await consumer.start()
    try:
        await serve_worker(
            consumer,
            checks=[HealthCheck("database", database_check(engine)), HealthCheck("broker", probe.check)],
            host=settings.http_host,
            port=settings.management_port,
        )
    finally:
        await consumer.close()
        await probe.close()
        await engine.dispose()
