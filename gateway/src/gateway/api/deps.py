"""Request-scoped dependencies: the OAuth context (unit of work, hashing, tokens) and the form body.

The OAuth endpoints authenticate *clients* (RFC 6749 §2.3), not bearer tokens, so they have no
``require(...)`` policy: who may call them is decided by client authentication in the use cases.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.domain.requests import parse_form, parse_form_or_json
from gateway.service_layer.context import OAuthContext
from utilis_shared.db import UnitOfWork


async def get_context(request: Request) -> OAuthContext:
    state = request.app.state
    return OAuthContext(
        uow=UnitOfWork(state.session_factory, state.settings),
        settings=state.settings,
        hasher=state.hasher,
        tokens=state.tokens,
        sms_codes=state.sms_codes,
        limiter=state.limiter,
    )


async def get_form(request: Request) -> dict[str, str]:
    return parse_form(await request.body(), request.headers.get("content-type"))


async def get_form_or_json(request: Request) -> dict[str, str]:
    """For the non-OAuth endpoints the apps call directly (``/oauth/sms-codes``): a form or a JSON object."""
    return parse_form_or_json(await request.body(), request.headers.get("content-type"))


Context = Annotated[OAuthContext, Depends(get_context)]
Form = Annotated[dict[str, str], Depends(get_form)]
FormOrJson = Annotated[dict[str, str], Depends(get_form_or_json)]
