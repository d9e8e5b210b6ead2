"""Response documents of the OAuth endpoints (RFC 6749 §5, RFC 7662 §2.2, RFC 7517, RFC 8414)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TokenResponse(BaseModel):
    access_token: str = Field(description="A JWT (ES256, `kid` header) for `Authorization: Bearer`.")
    token_type: str = Field("Bearer", examples=["Bearer"])
    expires_in: int = Field(examples=[900])
    scope: str = Field(
        description="Granted scopes, space-separated (empty for staff).", examples=["bills:read"]
    )
    refresh_token: str | None = Field(
        None,
        description="Opaque; single use (rotated). Only for the password, sms-otp and refresh_token grants.",
    )
    issued_token_type: str | None = Field(
        None,
        description="Token exchange only (RFC 8693 §2.2.1): always "
        "`urn:ietf:params:oauth:token-type:access_token`.",
        examples=["urn:ietf:params:oauth:token-type:access_token"],
    )


class OAuthErrorResponse(BaseModel):
    error: str = Field(
        examples=["invalid_grant"],
        description="invalid_request, invalid_client, invalid_grant, unauthorized_client, "
        "unsupported_grant_type or invalid_scope",
    )
    error_description: str = Field(examples=["The username or password is wrong."])


class IntrospectionResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    active: bool
    token_type: str | None = None
    sub: str | None = None
    kind: str | None = None
    roles: list[str] | None = None
    scope: str | None = None
    exp: int | None = None


class Jwks(BaseModel):
    keys: list[dict[str, Any]] = Field(
        examples=[
            [
                {
                    "kty": "EC",
                    "crv": "P-256",
                    "x": "…",
                    "y": "…",
                    "kid": "20261201-3f9a1c2e",
                    "alg": "ES256",
                    "use": "sig",
                }
            ]
        ]
    )


TOKEN_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {
            "type": "string",
            "enum": [
                "password",
                "client_credentials",
                "refresh_token",
                "urn:utilis:params:oauth:grant-type:sms-otp",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ],
        },
        "phone": {"type": "string", "description": "sms-otp grant (residents): mainland mobile number"},
        "code": {"type": "string", "description": "sms-otp grant: the code from POST /oauth/sms-codes"},
        "username": {"type": "string", "description": "password grant (staff)"},
        "password": {"type": "string", "format": "password", "description": "password grant (staff)"},
        "refresh_token": {"type": "string", "description": "refresh_token grant"},
        "actor_token": {
            "type": "string",
            "description": "token-exchange grant (assisted service): the staff member's access token "
            "(role agent or admin)",
        },
        "actor_token_type": {
            "type": "string",
            "enum": ["urn:ietf:params:oauth:token-type:access_token"],
            "description": "token-exchange grant",
        },
        "subject_token": {
            "type": "string",
            "description": "token-exchange grant: the resident's account number (6-20 digits and capitals)",
        },
        "subject_token_type": {
            "type": "string",
            "enum": ["urn:utilis:params:oauth:token-type:account-no"],
            "description": "token-exchange grant",
        },
        "reason": {
            "type": "string",
            "maxLength": 200,
            "description": "token-exchange grant, required: why (hotline ticket, counter visit); audited",
        },
        "requested_token_type": {
            "type": "string",
            "enum": ["urn:ietf:params:oauth:token-type:access_token"],
            "description": "token-exchange grant, optional",
        },
        "scope": {"type": "string", "description": "space-separated; a subset of what the client may have"},
        "client_id": {"type": "string", "description": "public clients; or client_secret_post"},
        "client_secret": {"type": "string", "format": "password", "description": "client_secret_post"},
    },
}

TOKEN_PARAM_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["token"],
    "properties": {
        "token": {"type": "string"},
        "token_type_hint": {"type": "string", "enum": ["access_token", "refresh_token"]},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string", "format": "password"},
    },
}


SMS_CODE_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["phone", "client_id"],
    "properties": {
        "phone": {"type": "string", "description": "mainland China mobile number (+86 optional)"},
        "client_id": {"type": "string", "description": "a public client registered for the sms-otp grant"},
    },
}


class SmsCodeSent(BaseModel):
    expires_in: int = Field(description="seconds the code is valid (whether or not the phone is known)")


def form_or_json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": schema},
                "application/json": {"schema": schema},
            },
        }
    }


def form_body(schema: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its form body itself (strict OAuth parsing)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }
