"""``grant_type=password`` for staff (RFC 6749 §4.3): username + password, argon2id, lockout.

Only first-party clients registered for it (the staff console) may use it. The staff row is locked
(``FOR UPDATE``) while the attempt is decided, so concurrent guesses are counted one by one and no more
than ``lockout_max_failures`` are ever checked before the lock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import select

from gateway.adapters.orm import OAuthClient, StaffUser
from gateway.domain.claims import Grant, sorted_unique
from gateway.domain.lockout import LockoutState
from gateway.domain.oauth import invalid_grant
from gateway.domain.requests import require_params
from gateway.domain.scopes import grant_scopes, parse_scope
from gateway.service_layer.context import OAuthContext
from gateway.service_layer.grants import GrantType
from gateway.service_layer.tokens import IssuedTokens
from utilis_shared.timeutil import utcnow

log = logging.getLogger(__name__)
WRONG_CREDENTIALS = "The username or password is wrong."
LOCKED = "The account is locked after repeated failed sign-ins; try again later."


async def handle(ctx: OAuthContext, client: OAuthClient, params: Mapping[str, str]) -> IssuedTokens:
    username, password = require_params(params, "username", "password")
    scopes = grant_scopes(parse_scope(params.get("scope")), client.scopes)
    session = ctx.uow.session
    staff = await session.scalar(
        select(StaffUser).where(StaffUser.username == username.strip().lower()[:64]).with_for_update()
    )
    now = utcnow()
    if staff is None or staff.status != "active":
        await ctx.verify_secret(None, password)  # same time as a wrong password
        log.info("staff sign-in refused", extra={"reason": "unknown_or_disabled"})
        raise invalid_grant(WRONG_CREDENTIALS)
    policy = ctx.lockout
    state = LockoutState(staff.failed_attempts, staff.locked_until)
    if policy.is_locked(state, now):
        log.info("staff sign-in refused", extra={"reason": "locked", "subject": staff.username})
        raise invalid_grant(LOCKED)
    if not await ctx.verify_secret(staff.password_hash, password):
        state = policy.after_failure(state, now)
        staff.failed_attempts, staff.locked_until = state.failed_attempts, state.locked_until
        log.info(
            "staff sign-in refused",
            extra={
                "reason": "locked_now" if state.locked_until else "wrong_password",
                "subject": staff.username,
            },
        )
        raise invalid_grant(LOCKED if state.locked_until else WRONG_CREDENTIALS, keep_changes=True)
    state = policy.after_success(state)
    staff.failed_attempts, staff.locked_until = state.failed_attempts, state.locked_until
    staff.last_login_at = now
    if ctx.hasher.needs_rehash(staff.password_hash):
        staff.password_hash = ctx.hasher.hash(password)
    grant = Grant(
        subject=staff.username,
        kind="staff",
        client_id=client.client_id,
        channel=client.channel,
        roles=sorted_unique(staff.roles),
        scopes=scopes,
        issue_refresh_token="refresh_token" in client.grant_types,
    )
    return await ctx.tokens.issue(ctx.uow, grant)


GRANT = GrantType("password", handle)
