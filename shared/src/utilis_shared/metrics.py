"""Prometheus metrics shared by every service: RED per route template, outbox, consumers.

Names follow ``utilis_<subsystem>_<name>_<unit>``; labels never carry ids, phones or amounts. Each
process kind (api, relay, consumer) exposes its own ``/metrics``.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.8, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "utilis_http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "utilis_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge("utilis_http_requests_in_flight", "HTTP requests being handled", ["service"])

OUTBOX_PUBLISHED = Counter("utilis_outbox_published_total", "Outbox events published", ["service"])
OUTBOX_FAILED = Counter("utilis_outbox_publish_failures_total", "Outbox publish failures", ["service"])
OUTBOX_BACKLOG = Gauge("utilis_outbox_backlog_events", "Outbox events not yet published", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "utilis_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox event", ["service"]
)

CONSUMER_PROCESSED = Counter(
    "utilis_consumer_events_total",
    "Events taken by a consumer, by outcome (processed, duplicate, ignored, retried, dead_lettered)",
    ["service", "topic", "outcome"],
)
CONSUMER_LATENCY = Histogram(
    "utilis_consumer_handle_duration_seconds",
    "Time to handle one event",
    ["service", "topic"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "utilis_consumer_lag_events", "Consumer lag per partition", ["service", "topic", "partition"]
)

# Set by every readiness check (``/readyz``: Kubernetes probes it every few seconds), so Prometheus sees a
# dependency that a process cannot reach even while the pod stays in service (a non-critical check).
DEPENDENCY_UP = Gauge(
    "utilis_dependency_up",
    "1 if the last readiness check of a dependency (database, redis, cache, broker) passed, else 0",
    ["dependency"],
)


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/v1/accounts/{account_no}``), never the raw path.

    Starlette's router records the matched route in the scope; a request that matched none (404) is
    ``unmatched``, so random paths cannot blow up the label set. A catch-all route that knows better (the
    gateway's proxy, from its policy table) sets ``scope["utilis.route"]``."""
    named = scope.get("utilis.route")
    if named:
        return named
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class MetricsMiddleware:
    """RED metrics per route template. Pure ASGI: no per-request task or body copy."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        start = time.perf_counter()
        HTTP_IN_FLIGHT.labels(self.service).inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            HTTP_IN_FLIGHT.labels(self.service).dec()
            route = route_template(scope)
            if route not in ("/metrics",):
                method = scope["method"]
                HTTP_REQUESTS.labels(self.service, method, route, str(status["code"])).inc()
                HTTP_LATENCY.labels(self.service, method, route).observe(time.perf_counter() - start)


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
