"""Per-request / per-message context that travels through logs, HTTP headers and Kafka headers."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_ID_HEADER = "X-Correlation-ID"
# Kafka header carrying the correlation id from the HTTP request that caused an event to its consumers.
KAFKA_CORRELATION_HEADER = "correlation_id"


def current_request_id() -> str | None:
    return request_id_var.get()


def current_correlation_id() -> str | None:
    return correlation_id_var.get()
