"""The configured payment channels: the provider adapters (``adapters/providers``) by provider name, and
what the service asks of them: the request that starts a payment at the provider, and the verification
of a provider's callback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from payment.adapters.orm import PaymentOrder
from payment.adapters.providers.base import QueryRequest
from utilis_shared.errors import NotFound


async def send(http, request: QueryRequest, base_url: str, **options: Any):
    """Send a signed request the adapters built (a query, a refund, a statement or its download) to the
    provider whose API is at ``base_url``; the ``httpx`` response. ``options``: e.g. ``timeout``."""
    return await http.request(
        request.method, request.url(base_url), headers=request.headers, content=request.body, **options
    )


class UnknownProvider(NotFound):
    code = "unknown_provider"


class Channels:
    def __init__(self, adapters: dict[str, Any], *, notify_base_url: str) -> None:
        self.adapters = dict(adapters)
        self.notify_base_url = notify_base_url.rstrip("/")

    def adapter(self, provider: str) -> Any:
        adapter = self.adapters.get(provider)
        if adapter is None:
            raise UnknownProvider(f"No payment provider {provider!r} is configured.")
        return adapter

    def notify_url(self, provider: str) -> str:
        return f"{self.notify_base_url}/callbacks/{provider.replace(':', '/')}"

    def pay_request(self, order: PaymentOrder, *, now: datetime) -> dict[str, Any] | None:
        """What the app (or the bank) needs to start paying ``order``; None for the counter."""
        if order.provider == "counter":
            return None
        return self.adapter(order.provider).build_order_request(
            order_no=order.order_no,
            amount_fen=order.amount_fen,
            description=f"户号 {order.account_no} 缴费",
            notify_url=self.notify_url(order.provider),
            now=now,
        )


def configured_adapters(settings) -> dict[str, Any]:
    """The provider adapters this deployment is configured for.

    - ``providers_file`` (every environment): our merchant ids and keys and the providers' public keys
      (``adapters/providers/config.py``); a file that cannot be used stops the service at start-up with the
      provider and field named (:class:`ProvidersConfigError`), never a key's text.
    - otherwise, in development and test only, the provider simulator's key bundle (``provider_keys_file``,
      ``payment dev-keys`` writes one): its merchant side goes through the same configuration, so the
      simulator signs and answers queries exactly as the providers would.
    - neither: no provider is offered (their callbacks answer 404 ``unknown_provider``)."""
    from datetime import timedelta
    from pathlib import Path

    from payment.adapters.providers import config

    window = timedelta(seconds=settings.callback_window_seconds)
    if settings.providers_file:
        return config.load(settings.providers_file, window=window)[1]
    path = settings.provider_keys_file
    if not settings.is_development or not path or not Path(path).is_file():
        return {}
    from payment.adapters.providers.simulator import ProviderSimulator

    simulator = ProviderSimulator.from_keys(Path(path).read_text(encoding="utf-8"))
    return simulator.merchant_config().adapters(window=window)
