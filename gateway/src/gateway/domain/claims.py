"""The access token's claims: exactly what ``utilis_shared.auth.principal_from_claims`` reads, so every
service builds the same ``Principal`` from a gateway token as from a development one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.domain.scopes import format_scope

KINDS = ("staff", "partner", "resident")


@dataclass(frozen=True)
class Grant:
    """Who a token speaks for, decided by a grant: the same shape for every grant type."""

    subject: str
    kind: str  # staff | partner | resident
    client_id: str
    channel: str | None
    roles: tuple[str, ...] = ()
    scopes: frozenset[str] = frozenset()
    account_nos: tuple[str, ...] = ()
    issue_refresh_token: bool = False
    # Carried over on refresh (a resident's bound accounts, an assisting staff member's identity...).
    context: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown subject kind {self.kind!r}")


def access_token_claims(
    grant: Grant, *, issuer: str, audience: str, jti: str, now: int, ttl_seconds: int
) -> dict[str, Any]:
    return {
        "iss": issuer,
        "aud": audience,
        "sub": grant.subject,
        "kind": grant.kind,
        "roles": sorted(grant.roles),
        "scope": format_scope(grant.scopes),
        "account_nos": list(grant.account_nos),
        "channel": grant.channel,
        "jti": jti,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
    }


def sorted_unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values)))
