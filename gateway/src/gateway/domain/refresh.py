"""Refresh-token families: rotation on every use, and reuse detection.

A sign-in starts a *family*; each refresh token in it is used once: using it marks it ``rotated`` and
issues its successor. If a ``rotated`` token comes back, two parties hold the family (the legitimate
client and whoever copied a token): the whole family is revoked, so the newest token stops working too
(OAuth 2.0 Security BCP, RFC 9700 §4.14.2).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


class TokenStatus(StrEnum):
    ACTIVE = "active"
    ROTATED = "rotated"
    REVOKED = "revoked"


class RefreshOutcome(StrEnum):
    ROTATE = "rotate"  # issue the successor, mark this one rotated
    REUSE_DETECTED = "reuse_detected"  # revoke the whole family, refuse
    REVOKED = "revoked"  # refuse
    EXPIRED = "expired"  # refuse
    WRONG_CLIENT = "wrong_client"  # refuse: a refresh token is bound to the client it was issued to


def decide_refresh(
    *,
    status: TokenStatus,
    expires_at: datetime,
    family_revoked: bool,
    family_expires_at: datetime,
    issued_to: str,
    presented_by: str,
    now: datetime,
) -> RefreshOutcome:
    if issued_to != presented_by:
        return RefreshOutcome.WRONG_CLIENT
    if family_revoked or status is TokenStatus.REVOKED:
        return RefreshOutcome.REVOKED
    if status is TokenStatus.ROTATED:
        return RefreshOutcome.REUSE_DETECTED
    if now >= expires_at or now >= family_expires_at:
        return RefreshOutcome.EXPIRED
    return RefreshOutcome.ROTATE
