"""The gateway's own metrics (RED per route comes from ``utilis_shared.web``). Labels are bounded: the
grant type (``other`` for anything unknown) and the OAuth error code or ``issued``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TOKEN_REQUESTS = Counter(
    "utilis_gateway_token_requests_total",
    "Token endpoint requests by grant type and outcome (issued or the OAuth error code)",
    ["grant_type", "outcome"],
)

# The front door (proxied routes). ``route`` is the policy table's template, never the concrete path.
UPSTREAM_REQUESTS = Counter(
    "utilis_gateway_upstream_requests_total",
    "Proxied requests by upstream service, route template, method and status (RED: rate and errors)",
    ["upstream", "route", "method", "status"],
)
UPSTREAM_DURATION = Histogram(
    "utilis_gateway_upstream_request_duration_seconds",
    "Time from the gateway sending a proxied request to having the service's full answer (RED: duration)",
    ["upstream", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.8, 1.0, 2.5, 5.0, 10.0),
)
UPSTREAM_RETRIES = Counter(
    "utilis_gateway_upstream_retries_total", "Proxied requests repeated after a failed attempt", ["upstream"]
)
CIRCUIT_OPEN = Gauge(
    "utilis_gateway_circuit_open", "1 while the circuit breaker of an upstream is open", ["upstream"]
)
AUTH_FAILURES = Counter(
    "utilis_gateway_auth_failures_total",
    "Proxied requests refused before reaching a service, by reason "
    "(missing_token, invalid_token, token_expired, revoked, forbidden, no_policy, ip_not_allowed)",
    ["reason"],
)
RATE_LIMITED = Counter(
    "utilis_gateway_rate_limited_total", "Requests answered 429 by the gateway, by limit", ["limit"]
)
CHANNEL_REQUESTS = Counter(
    "utilis_gateway_channel_requests_total",
    "Proxied requests by the channel of the client that obtained the token (self-service reporting)",
    ["channel"],
)
