"""``grant_type=urn:ietf:params:oauth:grant-type:token-exchange`` (RFC 8693): assisted service.

Staff at a service counter or on the hotline act for a resident (often an elderly one) with a token that
carries both identities. The staff tool (a client registered in an assisted channel: ``service_counter``
or ``hotline``) sends:

* ``actor_token``: the staff member's access token from this gateway (``actor_token_type`` =
  ``urn:ietf:params:oauth:token-type:access_token``), verified with the gateway's own keys, not expired,
  not revoked, ``kind: staff``, and not itself an assisted token; the staff member must still be active
  and have the role ``agent`` (or ``admin``) *now*;
* ``subject_token``: the account the resident is served on, ``subject_token_type`` =
  ``urn:utilis:params:oauth:token-type:account-no``; refused if the gateway's copy of the account (from
  ``customer.events``, ``binding_accounts``) says it is closed, or, for an account it has not heard of
  yet, if it is in the platform's format (11 digits) with a wrong Luhn check digit (a misheard digit);
* ``reason``: why (a hotline ticket, a counter visit), required, kept in the audit row.

The token speaks for the account's holder: ``kind: resident``, ``sub`` = ``resident:account:<account_no>``,
``account_nos`` = that account only, ``act`` = ``{"sub": <staff username>, "roles": [...]}``, ``channel`` =
the staff tool's channel, at most ``ASSISTED_TOKEN_TTL_SECONDS`` long, no refresh token. Every exchange
leaves a row in ``assisted_service_log`` in the same transaction as the token (no row, no token).

Why the subject is the account and not the phone-based ``resident:<blind index>`` of the SMS sign-in: the
staff verify the person against the *account* (ID card at the counter, the holder's details on the
phone), and a phone bound to the account may be a family member's, so naming a phone's owner would put
the wrong person in every service's audit trail. Residents are served per account anyway.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from sqlalchemy import select

from gateway.adapters.orm import AssistedServiceLog, BindingAccount, OAuthClient, StaffUser
from gateway.domain.channels import ChannelKind, channel_info
from gateway.domain.claims import Grant, sorted_unique, token_lifetime
from gateway.domain.oauth import OAuthError, invalid_grant, invalid_request, unauthorized_client
from gateway.domain.requests import require_params
from gateway.domain.scopes import grant_scopes, parse_scope
from gateway.service_layer.context import OAuthContext
from gateway.service_layer.grants import GrantType
from gateway.service_layer.tokens import IssuedTokens
from utilis_shared.auth import Role, principal_from_claims
from utilis_shared.errors import Unauthorized

log = logging.getLogger(__name__)

NAME = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105  # a URN, not a secret
ACCOUNT_NO_TOKEN_TYPE = "urn:utilis:params:oauth:token-type:account-no"  # noqa: S105
ASSISTING_ROLES = frozenset({Role.AGENT.value, Role.ADMIN.value})
ASSISTED_TOKEN_TTL_SECONDS = 600
ASSISTED_SUBJECT_PREFIX = "resident:account:"
MAX_REASON_LENGTH = 200
INVALID_TARGET = "invalid_target"
_ACCOUNT_NO = re.compile(r"[0-9A-Z]{6,20}")
_ISSUED_ACCOUNT_NO = re.compile(r"[123]\d{10}")
BAD_ACTOR = "The actor token is not a valid, unexpired access token of an active staff member."


def luhn_valid(number: str) -> bool:
    """The Luhn check (the account numbers the platform issues end with a Luhn check digit)."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def normalise_account_no(raw: str) -> str | None:
    """An account number as the customer service stores it (6 to 20 digits and capitals; spaces dropped,
    letters upper-cased); None if it cannot be one."""
    value = "".join(raw.split()).upper()
    return value if _ACCOUNT_NO.fullmatch(value) else None


def misheard(account_no: str) -> bool:
    """A number in the platform's own format (utility digit, 9 digits, Luhn digit) whose check digit is
    wrong: a digit misheard on the phone. Legacy numbers have no check digit."""
    return bool(_ISSUED_ACCOUNT_NO.fullmatch(account_no)) and not luhn_valid(account_no)


def assisted_subject(account_no: str) -> str:
    return ASSISTED_SUBJECT_PREFIX + account_no


def clean_reason(raw: str | None) -> str:
    """The reason, trimmed; refused when missing, too long or with control characters."""
    reason = (raw or "").strip()
    if not reason:
        raise invalid_request("Missing parameter: reason (the hotline ticket or counter visit).")
    if len(reason) > MAX_REASON_LENGTH:
        raise invalid_request(f"reason is at most {MAX_REASON_LENGTH} characters.")
    if any(unicodedata.category(c).startswith("C") for c in reason):
        raise invalid_request("reason must be plain text.")
    return reason


@dataclass(frozen=True)
class ExchangedTokens(IssuedTokens):
    """RFC 8693 §2.2.1: the response says which kind of token was issued."""

    issued_token_type: str = ACCESS_TOKEN_TYPE

    def to_response(self) -> dict[str, Any]:
        return {**super().to_response(), "issued_token_type": self.issued_token_type}


async def handle(ctx: OAuthContext, client: OAuthClient, params: Mapping[str, str]) -> IssuedTokens:
    info = channel_info(client.channel)
    if info is None or info.kind is not ChannelKind.ASSISTED:  # add_client refuses this too
        raise unauthorized_client("Only staff tools of an assisted channel (counter, hotline) may exchange.")
    subject_token, subject_type, actor_token, actor_type = require_params(
        params, "subject_token", "subject_token_type", "actor_token", "actor_token_type"
    )
    reason = clean_reason(params.get("reason"))
    if subject_type != ACCOUNT_NO_TOKEN_TYPE:
        raise invalid_request(f"subject_token_type must be {ACCOUNT_NO_TOKEN_TYPE}.")
    if actor_type != ACCESS_TOKEN_TYPE:
        raise invalid_request(f"actor_token_type must be {ACCESS_TOKEN_TYPE}.")
    requested = params.get("requested_token_type")
    if requested is not None and requested != ACCESS_TOKEN_TYPE:
        raise invalid_request(f"requested_token_type can only be {ACCESS_TOKEN_TYPE}.")
    for target in ("audience", "resource"):
        if params.get(target) not in (None, ctx.settings.jwt_audience):
            raise OAuthError(INVALID_TARGET, f"Tokens are only issued for {ctx.settings.jwt_audience}.")
    account_no = normalise_account_no(subject_token)
    if account_no is None:
        raise invalid_grant("The subject token is not an account number.")
    scopes = grant_scopes(parse_scope(params.get("scope")), client.scopes)

    claims = await ctx.tokens.verified_claims(ctx.uow, actor_token)
    if claims is None:
        raise invalid_grant(BAD_ACTOR)
    try:
        actor = principal_from_claims(claims)
    except Unauthorized:
        raise invalid_grant(BAD_ACTOR) from None
    if not actor.is_staff or actor.actor is not None:
        log.warning("assisted service refused", extra={"reason": "actor_not_staff", "subject": actor.subject})
        raise invalid_grant("The actor token must be a staff member's own token.")
    staff = await ctx.uow.session.scalar(select(StaffUser).where(StaffUser.username == actor.subject))
    if staff is None or staff.status != "active":
        log.warning("assisted service refused", extra={"reason": "staff_inactive", "subject": actor.subject})
        raise invalid_grant(BAD_ACTOR)
    roles = sorted_unique(staff.roles)  # the roles now, not when the actor token was issued
    if not ASSISTING_ROLES & set(roles):
        log.warning("assisted service refused", extra={"reason": "role", "subject": staff.username})
        raise invalid_grant("Only agents (or admins) may act on behalf of a resident.")

    # The gateway's copy of the account (from customer.events): a closed account is never actable; one
    # it has not heard of yet (just opened, events lagging) is, unless its check digit is wrong.
    known = await ctx.uow.session.get(BindingAccount, account_no)
    if known is not None and known.status == "closed":
        raise invalid_grant("The account is closed.")
    if known is None and misheard(account_no):
        raise invalid_grant("The account number's check digit is wrong.")
    subject = assisted_subject(account_no)
    grant = Grant(
        subject=subject,
        kind="resident",
        client_id=client.client_id,
        channel=client.channel,
        scopes=scopes,
        account_nos=(account_no,),
        issue_refresh_token=False,
        context={"act": {"sub": staff.username, "roles": list(roles)}, "reason": reason},
        max_ttl_seconds=ASSISTED_TOKEN_TTL_SECONDS,
    )
    issued = await ctx.tokens.issue(ctx.uow, grant)
    ttl = token_lifetime(grant, ctx.settings.access_token_ttl_seconds)
    issued_claims = jwt.decode(issued.access_token, options={"verify_signature": False})  # we just signed it
    ctx.uow.session.add(
        AssistedServiceLog(
            token_id=str(issued_claims["jti"]),
            staff_username=staff.username,
            staff_roles=list(roles),
            actor_token_id=str(claims["jti"]),
            account_no=account_no,
            subject=subject,
            reason=reason,
            client_id=client.client_id,
            channel=client.channel,
            expires_at=datetime.fromtimestamp(int(issued_claims["exp"]), UTC),
        )
    )
    log.info(
        "assisted service token issued",
        extra={"subject": subject, "actor": staff.username, "channel": client.channel},
    )
    return ExchangedTokens(
        access_token=issued.access_token, expires_in=ttl, scope=issued.scope, refresh_token=None
    )


GRANT = GrantType(NAME, handle)
