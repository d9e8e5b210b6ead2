"""OAuth 2.0 error responses (RFC 6749 §5.2, RFC 7009 §2.2.1): a stable ``error`` code and a description.

The token, revocation and introspection endpoints answer these as ``{"error", "error_description"}``
JSON (not problem+json: OAuth clients parse this shape). ``keep_changes`` marks a refusal whose database
changes must still commit: a failed password attempt counted towards the lockout, a refresh-token family
revoked because a rotated token came back.
"""

from __future__ import annotations

INVALID_REQUEST = "invalid_request"
INVALID_CLIENT = "invalid_client"
INVALID_GRANT = "invalid_grant"
UNAUTHORIZED_CLIENT = "unauthorized_client"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
INVALID_SCOPE = "invalid_scope"


class OAuthError(Exception):
    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        headers: dict[str, str] | None = None,
        keep_changes: bool = False,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}
        self.keep_changes = keep_changes

    def to_dict(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def invalid_request(description: str) -> OAuthError:
    return OAuthError(INVALID_REQUEST, description)


def invalid_client(description: str = "Client authentication failed.") -> OAuthError:
    # RFC 6749 §5.2: 401 with a challenge for the authentication scheme the client may use.
    return OAuthError(
        INVALID_CLIENT, description, status=401, headers={"WWW-Authenticate": 'Basic realm="utilis"'}
    )


def invalid_grant(description: str, *, keep_changes: bool = False) -> OAuthError:
    return OAuthError(INVALID_GRANT, description, keep_changes=keep_changes)


def unauthorized_client(description: str) -> OAuthError:
    return OAuthError(UNAUTHORIZED_CLIENT, description)


def unsupported_grant_type(grant_type: str) -> OAuthError:
    return OAuthError(UNSUPPORTED_GRANT_TYPE, f"The grant type {grant_type[:40]!r} is not supported.")


def invalid_scope(description: str) -> OAuthError:
    return OAuthError(INVALID_SCOPE, description)
