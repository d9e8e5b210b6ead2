"""Parsing OAuth endpoint requests: ``application/x-www-form-urlencoded`` bodies and client credentials.

RFC 6749 §3.2 / §2.3.1: parameters sent without a value are treated as omitted, a parameter must not
appear twice, and a client authenticates with HTTP Basic (``client_secret_basic``, id and secret
form-urlencoded before base64) or with ``client_id`` / ``client_secret`` in the body
(``client_secret_post``), never both.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_plus

from gateway.domain.oauth import OAuthError, invalid_client, invalid_request

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_PARAMETER_LENGTH = 4096


def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    """The form parameters, each at most once; empty values dropped."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != FORM_CONTENT_TYPE:
        raise invalid_request(f"The request body must be {FORM_CONTENT_TYPE}.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid_request("The request body is not a valid form.") from exc
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise invalid_request(f"The parameter {name[:40]!r} appears more than once.")
        if len(value) > MAX_PARAMETER_LENGTH:
            raise invalid_request(f"The parameter {name[:40]!r} is too long.")
        if value != "":
            params[name] = value
    return params


def parse_form_or_json(body: bytes, content_type: str | None) -> dict[str, str]:
    """A form (as ``parse_form``) or a JSON object of strings (empty values dropped)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        return parse_form(body, content_type)
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid_request("The request body is not valid JSON.") from exc
    if not isinstance(document, dict) or not all(
        isinstance(v, str) and len(v) <= MAX_PARAMETER_LENGTH for v in document.values()
    ):
        raise invalid_request("The request body must be a JSON object of strings.")
    return {k: v for k, v in document.items() if v != ""}


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    secret: str | None
    method: str  # client_secret_basic | client_secret_post | none


def client_credentials(params: Mapping[str, str], authorization: str | None) -> ClientCredentials:
    """Who the client says it is, from the Authorization header or the body (not both)."""
    if authorization:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise invalid_client("Only HTTP Basic client authentication is accepted in the header.")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise invalid_client("The Basic credentials are malformed.") from exc
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep or not raw_id:
            raise invalid_client("The Basic credentials are malformed.")
        if "client_secret" in params:
            raise invalid_request("Use one client authentication method, not two.")
        client_id = unquote_plus(raw_id)
        if "client_id" in params and params["client_id"] != client_id:
            raise invalid_request("client_id differs from the authenticated client.")
        return ClientCredentials(client_id, unquote_plus(raw_secret), "client_secret_basic")
    client_id = params.get("client_id")
    if not client_id:
        raise invalid_client("The client is not identified (client_id or HTTP Basic).")
    secret = params.get("client_secret")
    return ClientCredentials(client_id, secret, "client_secret_post" if secret else "none")


def require_params(params: Mapping[str, str], *names: str) -> list[str]:
    missing = [n for n in names if not params.get(n)]
    if missing:
        raise invalid_request(f"Missing parameter: {', '.join(missing)}.")
    return [params[n] for n in names]


__all__ = [
    "ClientCredentials",
    "OAuthError",
    "client_credentials",
    "parse_form",
    "parse_form_or_json",
    "require_params",
]
