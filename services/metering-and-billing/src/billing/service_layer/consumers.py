"""The consumer's one handler table: every ``service_layer`` module that reacts to events keeps its own
``registry``; this module merges them (an event type handled twice is a programming error) for
``metering-and-billing consumer``, and binds the cache invalidations that follow the commits."""

from __future__ import annotations

from billing.adapters.cache import LookupCache
from billing.service_layer import accounts, readings, receivables
from utilis_shared.events import Event
from utilis_shared.inbox import HandlerRegistry

# Events after whose commit an account's cached statement must go (the consumer also runs the hook on a
# duplicate delivery, before it commits the offset: see utilis_shared.inbox).
INVALIDATING = (
    "payment.payment.succeeded",
    "payment.payment.refunded",
    "customer.account.opened",  # clears a cached "unknown account"
)


def merge(*registries: HandlerRegistry) -> HandlerRegistry:
    merged = HandlerRegistry()
    for part in registries:
        for event_type in part.handlers.keys() & merged.handlers.keys():
            raise RuntimeError(f"{event_type} has two handlers")
        merged.handlers.update(part.handlers)
        merged.after_commit.update(part.after_commit)
    return merged


registry = merge(accounts.registry, readings.registry, receivables.registry)


def build_registry(cache: LookupCache) -> HandlerRegistry:
    """The consumer's handlers with the cache invalidations bound to ``cache``."""
    bound = merge(registry)

    async def invalidate(event: Event) -> None:
        await cache.invalidate([str(event.data.get("account_no") or event.subject)])

    for event_type in INVALIDATING:
        bound.after_commit[event_type] = invalidate
    return bound
