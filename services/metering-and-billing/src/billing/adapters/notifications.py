"""Notification senders for payment reminders (缴费提醒): a development sender and the SMS / WeChat
template-message adapters.

Billing knows accounts, never people: a message is addressed to an **account number**, and the notification
gateway (outside this service) resolves it to the holder's phone number (SMS) or WeChat openid (template
message). So no phone number or openid ever passes through billing, its logs or its tables.

Every send carries the provider template code and its parameters (what SMS and WeChat templates need) and
the full Simplified Chinese text (what the domain wrote; the gateway may use it for channels without
templates and for its own records), plus an ``Idempotency-Key`` stable per bill and reminder step, so a
gateway that honours it turns the service's at-least-once sending into exactly-once delivery.

* :class:`DevelopmentSender` keeps the messages in memory and logs them (account number, template, text).
* :class:`SmsSender` / :class:`WeChatTemplateSender` POST JSON to the configured gateway URL with a timeout;
  any transport error, timeout or non-2xx answer raises :class:`NotificationError` (the sweep records the
  step ``failed`` and retries it later).
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from billing.settings import Settings

log = logging.getLogger(__name__)

# Namespace of the idempotency keys derived from (bill no, step code).
_IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1d7a52-3c3e-4c8e-9a57-0b8f1c2d7e10")


def idempotency_key(bill_no: str, step_code: str) -> str:
    """A UUID stable for one bill's reminder step: a resend after a crash carries the same key."""
    return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"reminder:{bill_no}:{step_code}"))


class NotificationError(Exception):
    """The channel did not accept the message (transport error, timeout, refusal)."""


@dataclass(frozen=True)
class SentMessage:
    channel: str  # development | sms | wechat
    provider_message_id: str | None


class NotificationSender(Protocol):
    channel: str

    async def send(
        self,
        *,
        account_no: str,
        text: str,
        template_code: str,
        params: dict[str, str],
        idempotency_key: str | None = None,
    ) -> SentMessage: ...


# ------------------------------------------------------------------------------------------ development
@dataclass(frozen=True)
class RecordedMessage:
    account_no: str
    text: str
    template_code: str
    params: dict[str, str]
    idempotency_key: str | None
    provider_message_id: str


@dataclass
class DevelopmentSender:
    """Records messages in memory and logs them; nothing leaves the process."""

    channel: str = "development"
    messages: list[RecordedMessage] = field(default_factory=list)

    async def send(
        self,
        *,
        account_no: str,
        text: str,
        template_code: str,
        params: dict[str, str],
        idempotency_key: str | None = None,
    ) -> SentMessage:
        message_id = f"dev-{uuid.uuid4().hex[:16]}"
        self.messages.append(
            RecordedMessage(account_no, text, template_code, dict(params), idempotency_key, message_id)
        )
        log.info(
            "reminder message (development channel, not sent)",
            extra={"account_no": account_no, "template_code": template_code, "text": text},
        )
        return SentMessage(self.channel, message_id)


# ------------------------------------------------------------------------------------------- gateways
class _GatewaySender(ABC):
    """POSTs one JSON message to the notification gateway. The client is created on first use (or given,
    e.g. in tests) and kept for the sender's life; :meth:`aclose` releases it."""

    channel = "unknown"

    def __init__(self, url: str, *, timeout_seconds: float, client: httpx.AsyncClient | None = None) -> None:
        self.url = url
        self.timeout = httpx.Timeout(timeout_seconds)
        self._client = client
        self._owns_client = client is None

    @abstractmethod
    def _body(
        self, *, account_no: str, text: str, template_code: str, params: dict[str, str]
    ) -> dict[str, Any]:
        """The gateway's JSON for one message (each channel's own shape)."""

    async def send(
        self,
        *,
        account_no: str,
        text: str,
        template_code: str,
        params: dict[str, str],
        idempotency_key: str | None = None,
    ) -> SentMessage:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = self._body(account_no=account_no, text=text, template_code=template_code, params=params)
        try:
            response = await self._client.post(self.url, json=body, headers=headers, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise NotificationError(f"{self.channel} gateway timed out: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise NotificationError(
                f"{self.channel} gateway unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if not response.is_success:
            raise NotificationError(
                f"{self.channel} gateway answered {response.status_code}: {response.text[:200]}"
            )
        try:
            document = response.json()
        except ValueError:
            document = {}
        message_id = document.get("message_id") if isinstance(document, dict) else None
        log.info(
            "reminder message accepted by the gateway",
            extra={"account_no": account_no, "channel": self.channel, "template_code": template_code},
        )
        return SentMessage(self.channel, str(message_id) if message_id is not None else None)

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
        self._client = None


class SmsSender(_GatewaySender):
    """SMS template message (短信模板): template code and its parameters; the gateway holds the signature
    (签名) and looks up the account holder's phone number."""

    channel = "sms"

    def _body(
        self, *, account_no: str, text: str, template_code: str, params: dict[str, str]
    ) -> dict[str, Any]:
        return {
            "account_no": account_no,
            "template_code": template_code,
            "template_params": params,
            "text": text,
        }


class WeChatTemplateSender(_GatewaySender):
    """WeChat official-account template message (微信模板消息): the gateway resolves the account's openid;
    ``data`` follows WeChat's ``{"key": {"value": ...}}`` shape."""

    channel = "wechat"

    def _body(
        self, *, account_no: str, text: str, template_code: str, params: dict[str, str]
    ) -> dict[str, Any]:
        return {
            "account_no": account_no,
            "template_id": template_code,
            "data": {key: {"value": value} for key, value in params.items()},
            "text": text,
        }


_SENDERS: dict[tuple[str, str, float], NotificationSender] = {}


def sender_from_settings(settings: Settings) -> NotificationSender:
    """The configured sender. Gateway senders are kept per (channel, URL, timeout) so their HTTP connection
    pool is reused from one sweep to the next; a development sender is new each time (its memory is only a
    debugging aid; the log is what a developer reads)."""
    channel = settings.notification_channel
    if channel == "development":
        return DevelopmentSender()
    if channel == "sms":
        url, cls = settings.notification_sms_url, SmsSender
    elif channel == "wechat":
        url, cls = settings.notification_wechat_url, WeChatTemplateSender
    else:  # the settings pattern refuses anything else
        raise ValueError(f"unknown notification channel {channel!r}")
    key = (channel, url, settings.notification_timeout_seconds)
    sender = _SENDERS.get(key)
    if sender is None:
        sender = cls(url, timeout_seconds=settings.notification_timeout_seconds)
        _SENDERS[key] = sender
    return sender
