"""The gateway's own metrics (RED per route comes from ``utilis_shared.web``). Labels are bounded: the
grant type (``other`` for anything unknown) and the OAuth error code or ``issued``."""

from __future__ import annotations

from prometheus_client import Counter

TOKEN_REQUESTS = Counter(
    "utilis_gateway_token_requests_total",
    "Token endpoint requests by grant type and outcome (issued or the OAuth error code)",
    ["grant_type", "outcome"],
)
