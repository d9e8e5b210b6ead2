"""``grant_type=urn:utilis:params:oauth:grant-type:sms-otp`` for residents: phone + the one-time code sent
by ``POST /oauth/sms-codes`` (``service_layer/sms_codes.py``).

The token speaks for the resident (``kind: resident``, ``sub`` = ``resident:`` + the phone's blind-index
prefix: stable, no phone in it) and carries the accounts bound to the phone now (``resident_accounts``,
closed accounts left out: ``residents.bound_accounts``). A
phone with no bound account still signs in, with ``account_nos: []``: a new resident binds accounts later,
and refusing would tell a caller which phones are customers. Wrong, expired, used and burned codes all get
the same ``invalid_grant``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from gateway.adapters.orm import OAuthClient
from gateway.domain.claims import Grant
from gateway.domain.oauth import invalid_grant, invalid_request
from gateway.domain.requests import require_params
from gateway.domain.scopes import grant_scopes, parse_scope
from gateway.service_layer.context import OAuthContext
from gateway.service_layer.grants import GrantType
from gateway.service_layer.residents import bound_accounts, remember_resident
from gateway.service_layer.sms_codes import normalise_phone, resident_subject
from gateway.service_layer.tokens import IssuedTokens

log = logging.getLogger(__name__)
NAME = "urn:utilis:params:oauth:grant-type:sms-otp"
WRONG_CODE = "The code is wrong, expired or already used."


async def handle(ctx: OAuthContext, client: OAuthClient, params: Mapping[str, str]) -> IssuedTokens:
    phone, code = require_params(params, "phone", "code")
    scopes = grant_scopes(parse_scope(params.get("scope")), client.scopes)
    number = normalise_phone(phone)
    if number is None:
        raise invalid_request("The phone number is not a mainland China mobile number.")
    if ctx.sms_codes is None:  # pragma: no cover - wired by the app factory
        raise RuntimeError("SMS codes are not configured")
    bidx = ctx.sms_codes.phone_index(number)
    subject = resident_subject(bidx)
    if not await ctx.sms_codes.verify(bidx, code.strip()):
        log.info("resident sign-in refused", extra={"reason": "wrong_code", "subject": subject})
        raise invalid_grant(WRONG_CODE)
    # The resident API (``/api/gateway/me/accounts``) finds the phone's bindings from the token's ``sub``.
    await remember_resident(ctx.uow, subject, bidx)
    account_nos = await bound_accounts(ctx.uow, bidx)
    grant = Grant(
        subject=subject,
        kind="resident",
        client_id=client.client_id,
        channel=client.channel,
        scopes=scopes,
        account_nos=account_nos,
        issue_refresh_token="refresh_token" in client.grant_types,
        context={"phone_bidx": bidx, "account_nos": list(account_nos)},
    )
    return await ctx.tokens.issue(ctx.uow, grant)


GRANT = GrantType(NAME, handle)
