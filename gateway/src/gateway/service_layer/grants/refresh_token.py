"""``grant_type=refresh_token`` (RFC 6749 §6) with rotation and reuse detection (``domain/refresh.py``).

The subject is looked up again: a staff member disabled since sign-in gets nothing more (and the family
is revoked), one whose roles changed gets the current roles, a resident the accounts bound now.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import select, update

from gateway.adapters.orm import OAuthClient, RefreshToken, RefreshTokenFamily, StaffUser
from gateway.domain.claims import Grant, sorted_unique
from gateway.domain.oauth import invalid_grant
from gateway.domain.refresh import RefreshOutcome, TokenStatus, decide_refresh
from gateway.domain.requests import require_params
from gateway.domain.scopes import grant_scopes, parse_scope
from gateway.service_layer.context import OAuthContext
from gateway.service_layer.grants import GrantType
from gateway.service_layer.residents import bound_accounts, remember_resident
from gateway.service_layer.tokens import IssuedTokens
from utilis_shared.db import UnitOfWork
from utilis_shared.timeutil import utcnow

log = logging.getLogger(__name__)


async def revoke_family(uow: UnitOfWork, family: RefreshTokenFamily, reason: str) -> None:
    if family.revoked_at is None:
        family.revoked_at = utcnow()
        family.revoked_reason = reason
    await uow.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family.id, RefreshToken.status == TokenStatus.ACTIVE.value)
        .values(status=TokenStatus.REVOKED.value)
    )


async def handle(ctx: OAuthContext, client: OAuthClient, params: Mapping[str, str]) -> IssuedTokens:
    (raw,) = require_params(params, "refresh_token")
    found = await ctx.tokens.find_refresh_token(ctx.uow, raw, for_update=True)
    if found is None:
        raise invalid_grant("The refresh token is not valid.")
    token, family = found
    now = utcnow()
    outcome = decide_refresh(
        status=TokenStatus(token.status),
        expires_at=token.expires_at,
        family_revoked=family.revoked_at is not None,
        family_expires_at=family.expires_at,
        issued_to=family.client_id,
        presented_by=client.client_id,
        now=now,
    )
    if outcome is RefreshOutcome.REUSE_DETECTED:
        await revoke_family(ctx.uow, family, "reuse_detected")
        log.warning(
            "refresh token reused: family revoked",
            extra={"subject": family.subject, "client_id": family.client_id},
        )
        raise invalid_grant("The refresh token was already used; the session is revoked.", keep_changes=True)
    if outcome is not RefreshOutcome.ROTATE:
        raise invalid_grant(f"The refresh token is not valid ({outcome.value}).")
    scopes = grant_scopes(parse_scope(params.get("scope")), family.scope.split())

    roles: tuple[str, ...] = ()
    if family.subject_kind == "staff":
        staff = await ctx.uow.session.scalar(select(StaffUser).where(StaffUser.username == family.subject))
        if staff is None or staff.status != "active":
            await revoke_family(ctx.uow, family, "subject_disabled")
            raise invalid_grant("The account is no longer active.", keep_changes=True)
        roles = sorted_unique(staff.roles)
    context = family.context
    if family.subject_kind == "resident" and "phone_bidx" in context:
        # Accounts bound or unbound since sign-in (by the customer events, by the resident, by an operator;
        # closed accounts left out) count from the next refresh on.
        phone_bidx = str(context["phone_bidx"])
        account_nos = await bound_accounts(ctx.uow, phone_bidx)
        await remember_resident(ctx.uow, family.subject, phone_bidx)
        context = {**context, "account_nos": list(account_nos)}
        family.context = context

    token.status = TokenStatus.ROTATED.value
    token.used_at = now
    grant = Grant(
        subject=family.subject,
        kind=family.subject_kind,
        client_id=family.client_id,
        channel=family.channel,
        roles=roles,
        scopes=scopes,
        account_nos=tuple(context.get("account_nos", ())),
        context=context,
    )
    return await ctx.tokens.issue(ctx.uow, grant, family=family)


GRANT = GrantType("refresh_token", handle)
