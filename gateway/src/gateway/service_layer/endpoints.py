"""The OAuth endpoints as use cases: token (RFC 6749), revocation (RFC 7009), introspection
(RFC 7662), and sending a resident's SMS code. Each runs in one transaction; a refusal that must leave a
trace (a counted failure, a revoked family) commits it before the error goes out."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert

from gateway.adapters.metrics import TOKEN_REQUESTS
from gateway.adapters.orm import RevokedAccessToken
from gateway.domain.oauth import OAuthError, invalid_request, unauthorized_client, unsupported_grant_type
from gateway.domain.refresh import TokenStatus
from gateway.domain.requests import client_credentials, require_params
from gateway.service_layer.clients import authenticate_client
from gateway.service_layer.context import OAuthContext
from gateway.service_layer.grants import GRANTS, sms_otp
from gateway.service_layer.grants.refresh_token import revoke_family
from gateway.service_layer.tokens import IssuedTokens
from utilis_shared.timeutil import utcnow

log = logging.getLogger(__name__)
INACTIVE: dict[str, Any] = {"active": False}


async def token(ctx: OAuthContext, params: Mapping[str, str], authorization: str | None) -> IssuedTokens:
    grant_type = params.get("grant_type")
    label = grant_type if grant_type in GRANTS else "other"
    async with ctx.uow:
        try:
            issued = await _token(ctx, params, authorization)
        except OAuthError as exc:
            TOKEN_REQUESTS.labels(label, exc.error).inc()
            if exc.keep_changes:
                await ctx.uow.commit()
            raise
        await ctx.uow.commit()
    TOKEN_REQUESTS.labels(label, "issued").inc()
    return issued


async def _token(ctx: OAuthContext, params: Mapping[str, str], authorization: str | None) -> IssuedTokens:
    (grant_type,) = require_params(params, "grant_type")
    client = await authenticate_client(ctx, client_credentials(params, authorization))
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise unsupported_grant_type(grant_type)
    if grant_type not in client.grant_types or (
        grant.confidential_only and client.client_type != "confidential"
    ):
        raise unauthorized_client(f"This client may not use the {grant_type} grant.")
    return await grant.handle(ctx, client, params)


async def send_sms_code(ctx: OAuthContext, params: Mapping[str, str], client_ip: str) -> int:
    """Send a sign-in code to a resident's phone; the code's lifetime. The answer is the same whether or
    not the phone is bound to any account (no enumeration); the limits answer 429 (``RateLimited``)."""
    async with ctx.uow:
        client = await authenticate_client(ctx, client_credentials(params, None))
        if sms_otp.NAME not in client.grant_types:
            raise unauthorized_client("This client may not use the SMS-code sign-in.")
    (phone,) = require_params(params, "phone")
    if ctx.sms_codes is None:  # pragma: no cover - wired by the app factory
        raise RuntimeError("SMS codes are not configured")
    return await ctx.sms_codes.send(phone, client_ip)


async def revoke(ctx: OAuthContext, params: Mapping[str, str], authorization: str | None) -> None:
    """RFC 7009: revoke a refresh token (its whole family) or an access token (its ``jti``). Unknown,
    expired or foreign tokens are answered the same way (200), so the endpoint reveals nothing."""
    denied: tuple[str, int] | None = None
    async with ctx.uow:
        client = await authenticate_client(ctx, client_credentials(params, authorization))
        (raw,) = require_params(params, "token")
        found = await ctx.tokens.find_refresh_token(ctx.uow, raw, for_update=True)
        if found is not None:
            _, family = found
            if family.client_id == client.client_id:
                await revoke_family(ctx.uow, family, "revoked")
                log.info("refresh token family revoked", extra={"subject": family.subject})
        else:
            claims = await ctx.tokens.verified_claims(ctx.uow, raw)
            if claims is not None:
                await ctx.uow.session.execute(
                    insert(RevokedAccessToken)
                    .values(
                        jti=str(claims["jti"]),
                        subject=str(claims["sub"]),
                        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
                    )
                    .on_conflict_do_nothing()
                )
                log.info("access token revoked", extra={"subject": str(claims["sub"])})
                denied = (str(claims["jti"]), int(claims["exp"]) - int(utcnow().timestamp()) + 60)
        # Keep the deny list small: a revoked token that has expired needs no entry.
        await ctx.uow.session.execute(
            delete(RevokedAccessToken).where(RevokedAccessToken.expires_at < utcnow())
        )
        await ctx.uow.commit()
    if denied is not None and ctx.limiter is not None:
        # The gateway's front door refuses it from now on (services cannot see revocations).
        await ctx.limiter.deny_token(*denied)


async def introspect(
    ctx: OAuthContext, params: Mapping[str, str], authorization: str | None
) -> dict[str, Any]:
    """RFC 7662, for authenticated (confidential) clients: ``{"active": false}`` for anything expired,
    revoked, tampered with, signed by an unknown key or never issued."""
    async with ctx.uow:
        client = await authenticate_client(
            ctx, client_credentials(params, authorization), confidential_only=True
        )
        raw = params.get("token")
        if not raw:
            raise invalid_request("Missing parameter: token.")
        claims = await ctx.tokens.verified_claims(ctx.uow, raw)
        if claims is not None:
            return {"active": True, "token_type": "Bearer", **claims}
        found = await ctx.tokens.find_refresh_token(ctx.uow, raw)
        if found is None:
            return INACTIVE
        token_row, family = found
        now = utcnow()
        if (
            family.client_id != client.client_id  # a refresh token is only the business of its client
            or token_row.status != TokenStatus.ACTIVE.value
            or family.revoked_at is not None
            or now >= token_row.expires_at
            or now >= family.expires_at
        ):
            return INACTIVE
        return {
            "active": True,
            "token_type": "refresh_token",
            "client_id": family.client_id,
            "sub": family.subject,
            "kind": family.subject_kind,
            "scope": family.scope,
            "exp": int(token_row.expires_at.timestamp()),
        }
