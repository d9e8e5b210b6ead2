"""The authorization server's endpoints: token, revocation, introspection, JWKS, metadata."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response

from gateway.api.deps import Context, Form, FormOrJson
from gateway.api.schemas import (
    SMS_CODE_REQUEST_SCHEMA,
    TOKEN_FORM_SCHEMA,
    TOKEN_PARAM_FORM_SCHEMA,
    IntrospectionResponse,
    Jwks,
    OAuthErrorResponse,
    SmsCodeSent,
    TokenResponse,
    form_body,
    form_or_json_body,
)
from gateway.domain.scopes import SCOPES
from gateway.service_layer import endpoints
from gateway.service_layer.grants import GRANTS
from utilis_shared.errors import problem_responses

router = APIRouter()
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
OAUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthErrorResponse, "description": "RFC 6749 §5.2 error"},
    401: {"model": OAuthErrorResponse, "description": "invalid_client"},
}


@router.post(
    "/oauth/token",
    tags=["oauth"],
    summary="Issue tokens (password for staff, client_credentials for partners, sms-otp for residents, "
    "refresh_token)",
    response_model=TokenResponse,
    responses=OAUTH_ERRORS,
    openapi_extra=form_body(TOKEN_FORM_SCHEMA),
)
async def token(
    ctx: Context, form: Form, authorization: str | None = Header(None, include_in_schema=False)
) -> JSONResponse:
    issued = await endpoints.token(ctx, form, authorization)
    return JSONResponse(issued.to_response(), headers=NO_STORE)


@router.post(
    "/oauth/sms-codes",
    tags=["oauth"],
    summary="Send a resident a 6-digit sign-in code by SMS (same answer for unknown phones)",
    status_code=202,
    response_model=SmsCodeSent,
    responses={**OAUTH_ERRORS, **problem_responses(429)},
    openapi_extra=form_or_json_body(SMS_CODE_REQUEST_SCHEMA),
)
async def sms_codes(ctx: Context, form: FormOrJson, request: Request) -> JSONResponse:
    client_ip = request.client.host if request.client else "unknown"
    expires_in = await endpoints.send_sms_code(ctx, form, client_ip)
    return JSONResponse({"expires_in": expires_in}, status_code=202, headers=NO_STORE)


@router.post(
    "/oauth/revoke",
    tags=["oauth"],
    summary="Revoke a refresh token (its whole family) or an access token (RFC 7009)",
    responses={
        200: {"description": "Revoked, or nothing to revoke (the answer is the same)"},
        **OAUTH_ERRORS,
    },
    openapi_extra=form_body(TOKEN_PARAM_FORM_SCHEMA),
)
async def revoke(
    ctx: Context, form: Form, authorization: str | None = Header(None, include_in_schema=False)
) -> Response:
    await endpoints.revoke(ctx, form, authorization)
    return Response(status_code=200, headers=NO_STORE)


@router.post(
    "/oauth/introspect",
    tags=["oauth"],
    summary="Is this token active, and for whom (RFC 7662; confidential clients only)",
    response_model=IntrospectionResponse,
    responses=OAUTH_ERRORS,
    openapi_extra=form_body(TOKEN_PARAM_FORM_SCHEMA),
)
async def introspect(
    ctx: Context, form: Form, authorization: str | None = Header(None, include_in_schema=False)
) -> JSONResponse:
    return JSONResponse(await endpoints.introspect(ctx, form, authorization), headers=NO_STORE)


@router.get(
    "/.well-known/jwks.json",
    tags=["discovery"],
    summary="The public keys that verify access tokens (active and recently retired)",
    response_model=Jwks,
)
async def jwks(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    document = await request.app.state.keys.jwks()
    return JSONResponse(
        document, headers={"Cache-Control": f"public, max-age={settings.jwks_max_age_seconds}"}
    )


@router.get(
    "/.well-known/oauth-authorization-server",
    tags=["discovery"],
    summary="Authorization server metadata (RFC 8414)",
)
async def metadata(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    base = settings.public_url.rstrip("/")
    auth_methods = ["client_secret_basic", "client_secret_post", "none"]
    document = {
        "issuer": settings.jwt_issuer,
        "token_endpoint": f"{base}/oauth/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "grant_types_supported": sorted(GRANTS),
        "response_types_supported": [],  # no authorization endpoint yet (authorization code + PKCE later)
        "scopes_supported": sorted(SCOPES),
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=3600"})
