"""``grant_type=client_credentials`` for partner systems (RFC 6749 §4.4): banks, payment providers,
regulators. The token speaks for the client itself (``kind: partner``, ``sub`` = client id) with the
requested scopes, which must be a subset of the client's allowed scopes. No refresh token (§4.4.3)."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.adapters.orm import OAuthClient
from gateway.domain.claims import Grant
from gateway.domain.scopes import grant_scopes, parse_scope
from gateway.service_layer.context import OAuthContext
from gateway.service_layer.grants import GrantType
from gateway.service_layer.tokens import IssuedTokens


async def handle(ctx: OAuthContext, client: OAuthClient, params: Mapping[str, str]) -> IssuedTokens:
    scopes = grant_scopes(parse_scope(params.get("scope")), client.scopes)
    grant = Grant(
        subject=client.client_id,
        kind="partner",
        client_id=client.client_id,
        channel=client.channel,
        scopes=scopes,
    )
    return await ctx.tokens.issue(ctx.uow, grant)


GRANT = GrantType("client_credentials", handle, confidential_only=True)
