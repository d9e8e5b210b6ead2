"""Client authentication (RFC 6749 §2.3): confidential clients by secret, public clients by id only."""

from __future__ import annotations

from gateway.adapters.orm import OAuthClient
from gateway.domain.oauth import invalid_client
from gateway.domain.requests import ClientCredentials
from gateway.service_layer.context import OAuthContext


async def authenticate_client(
    ctx: OAuthContext, credentials: ClientCredentials, *, confidential_only: bool = False
) -> OAuthClient:
    client = await ctx.uow.session.get(OAuthClient, credentials.client_id[:100])
    if client is None or client.status != "active":
        if credentials.secret is not None:
            await ctx.verify_secret(None, credentials.secret)  # same time as a wrong secret
        raise invalid_client()
    if client.client_type == "confidential":
        if credentials.secret is None or not await ctx.verify_secret(client.secret_hash, credentials.secret):
            raise invalid_client()
    else:
        if credentials.secret is not None:
            raise invalid_client("A public client has no secret.")
        if confidential_only:
            raise invalid_client("This endpoint needs an authenticated (confidential) client.")
    return client
