"""The gateway's background process: ``gateway consumer``, which keeps residents' account bindings current
from the customer service's events (``service_layer/bindings.py``). Same shape as the customer service's
workers: its own small pool, the inbox-deduplicating ``EventConsumer`` (retries, then ``<topic>.dlq``),
``/livez`` ``/readyz`` ``/metrics`` on ``management_port``, graceful stop on SIGTERM."""

from __future__ import annotations

from gateway.service_layer.bindings import registry
from gateway.settings import Settings
from utilis_shared import kafka
from utilis_shared.db import create_session_factory
from utilis_shared.inbox import EventConsumer
from utilis_shared.runner import run_worker


def make_consumer(settings: Settings, session_factory, *, group_id: str | None = None) -> EventConsumer:
    """The consumer of ``settings.consumes`` (group ``settings.service_name`` unless ``group_id``)."""
    topics = list(settings.consumes)
    return EventConsumer(
        settings,
        session_factory,
        registry,
        topics,
        consumer=kafka.make_consumer(settings, *topics, group_id=group_id),
    )


async def run_consumer(settings: Settings) -> None:
    await run_worker(
        settings, "consumer", lambda engine: make_consumer(settings, create_session_factory(engine))
    )
