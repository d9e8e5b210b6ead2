"""One module per grant type; the token endpoint looks the handler up here.

A handler checks the grant's own parameters, decides who the token speaks for (a ``Grant``) and issues
through ``ctx.tokens``. The next grant (authorization code with PKCE) is a new module in this package and
one line in ``GRANTS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from gateway.adapters.orm import OAuthClient
from gateway.service_layer.context import OAuthContext
from gateway.service_layer.tokens import IssuedTokens

Handler = Callable[[OAuthContext, OAuthClient, Mapping[str, str]], Awaitable[IssuedTokens]]


@dataclass(frozen=True)
class GrantType:
    name: str
    handle: Handler
    confidential_only: bool = False


def _registry() -> dict[str, GrantType]:
    from gateway.service_layer.grants import (
        client_credentials,
        password,
        refresh_token,
        sms_otp,
        token_exchange,
    )

    grants = (
        password.GRANT,
        client_credentials.GRANT,
        refresh_token.GRANT,
        sms_otp.GRANT,
        token_exchange.GRANT,
    )
    return {g.name: g for g in grants}


GRANTS: dict[str, GrantType] = _registry()
