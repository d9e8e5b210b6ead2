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
    # ``context["act"]``, when present, becomes the RFC 8693 ``act`` claim (the staff member behind an
    # assisted-service token: ``{"sub": username, "roles": [...]}``).
    context: dict[str, Any] = field(default_factory=dict)
    # At most this long (seconds); None = the configured access-token lifetime. Assisted service: shorter.
    max_ttl_seconds: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown subject kind {self.kind!r}")


def token_lifetime(grant: Grant, ttl_seconds: int) -> int:
    """The access token's lifetime: the configured one, or the grant's maximum if shorter."""
    return ttl_seconds if grant.max_ttl_seconds is None else min(ttl_seconds, grant.max_ttl_seconds)


def actor_claim(act: Any) -> dict[str, Any] | None:
    """The RFC 8693 §4.1 ``act`` claim from ``Grant.context["act"]``: the acting party's ``sub`` (and
    roles, which ``utilis_shared.auth`` reads into ``Principal.actor``); None when nobody acts for the
    subject."""
    if not isinstance(act, dict) or not act.get("sub"):
        return None
    return {"sub": str(act["sub"]), "roles": sorted(set(act.get("roles") or ()))}


def access_token_claims(
    grant: Grant, *, issuer: str, audience: str, jti: str, now: int, ttl_seconds: int
) -> dict[str, Any]:
    claims: dict[str, Any] = {
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
        "exp": now + token_lifetime(grant, ttl_seconds),
    }
    act = actor_claim(grant.context.get("act"))
    if act is not None:
        claims["act"] = act
    return claims


def sorted_unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values)))
