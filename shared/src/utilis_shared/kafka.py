"""Kafka clients configured the same way everywhere (aiokafka)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from utilis_shared.settings import ServiceSettings


def make_producer(settings: ServiceSettings, **overrides) -> AIOKafkaProducer:
    """acks=all + idempotent producer: a retried send cannot duplicate or reorder within a partition."""
    options = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": f"{settings.service_name}-producer",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "request_timeout_ms": 15_000,
        "compression_type": None,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(
    settings: ServiceSettings, *topics: str, group_id: str | None = None, **overrides
) -> AIOKafkaConsumer:
    """Manual commits only: offsets are committed after the database transaction that used them."""
    options = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "group_id": group_id or settings.service_name,
        "client_id": f"{settings.service_name}-consumer",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_records": max(1, settings.consumer_batch_size),
        # Let the broker gather a little (settings: 64 KiB or 250 ms) so that under load a fetch, and so a
        # transaction and an offset commit, carries many events instead of one.
        "fetch_min_bytes": settings.consumer_fetch_min_bytes,
        "fetch_max_wait_ms": settings.consumer_fetch_max_wait_ms,
        "session_timeout_ms": 30_000,
        "heartbeat_interval_ms": 3_000,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*(settings.topic(t) for t in topics), **options)


def encode_headers(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in headers.items()]


def decode_headers(headers) -> dict[str, str]:
    return {
        k: (v.decode(errors="replace") if isinstance(v, bytes | bytearray) else str(v))
        for k, v in headers or ()
    }
