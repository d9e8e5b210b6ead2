"""Sending SMS one-time codes: the ``SmsSender`` port and its development adapter.

A real gateway (an SMS provider's API) is another class with the same ``send``. The development adapter
sends nothing: it logs that a code went to the *masked* phone (and, in development and test only, the code
itself) and keeps the last code per phone in memory so tests and a local walk-through can sign in.
"""

from __future__ import annotations

import logging
from typing import Protocol

from utilis_shared.pii import mask_phone, normalise

log = logging.getLogger(__name__)


class SmsSender(Protocol):
    async def send_code(self, phone: str, code: str, *, ttl_seconds: int) -> None: ...


class DevelopmentSmsSender:
    def __init__(self, *, development: bool) -> None:
        self.development = development
        self._last: dict[str, str] = {}

    async def send_code(self, phone: str, code: str, *, ttl_seconds: int) -> None:
        masked = mask_phone(phone)
        if self.development:
            self._last[normalise(phone)] = code
            log.info("sms code sent (development: not really)", extra={"phone": masked, "code": code})
        else:
            log.info("sms code sent (development adapter: not really)", extra={"phone": masked})

    def last_code(self, phone: str) -> str | None:
        """The last code "sent" to ``phone`` (development and test only)."""
        return self._last.get(normalise(phone))
