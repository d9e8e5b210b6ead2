"""OAuth scopes: the catalogue partners may be granted, and the rule that a request never widens a grant.

Staff reach services by role (``roles`` claim) and partners by scope (``scope`` claim); the services'
``require(roles=..., scopes=...)`` checks them. A scope is ``<resource>:<action>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gateway.domain.oauth import invalid_request, invalid_scope

SCOPES: dict[str, str] = {
    "accounts:read": "Read account status and holder (masked) by account number.",
    "bills:read": "Look up bills and balances by account number.",
    "payments:write": "Report payments collected for an account (bank counters, payment providers).",
    "payments:read": "Read payment status.",
    "reconciliation:read": "Download daily reconciliation files.",
    "reports:read": "Read aggregate regulatory reports (self-service usage per channel, complaints).",
    "readings:write": "Upload meter readings in bulk (remote-meter head ends, IoT gateways).",
    "telemetry:write": "Upload heating telemetry samples (substation and premise sensors, SCADA).",
}

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


def parse_scope(raw: str | None) -> frozenset[str] | None:
    """The requested scopes; None when the request names none (the client's default applies)."""
    if raw is None:
        return None
    tokens = raw.split(" ")
    if any(not t or not _SCOPE_TOKEN.match(t) for t in tokens):
        raise invalid_request("scope must be space-separated scope tokens.")
    return frozenset(tokens)


def unknown_scopes(scopes: Iterable[str]) -> list[str]:
    return sorted(s for s in scopes if s not in SCOPES)


def grant_scopes(requested: frozenset[str] | None, allowed: Iterable[str]) -> frozenset[str]:
    """What to grant: everything allowed when nothing is asked; the request when it is a subset of what
    is allowed; otherwise ``invalid_scope`` (never a silent narrowing that a client would not notice)."""
    allowed_set = frozenset(allowed)
    if requested is None:
        return allowed_set
    extra = requested - allowed_set
    if extra:
        raise invalid_scope(f"Scope not allowed for this client: {' '.join(sorted(extra))[:200]}.")
    return requested


def format_scope(scopes: Iterable[str]) -> str:
    return " ".join(sorted(scopes))
