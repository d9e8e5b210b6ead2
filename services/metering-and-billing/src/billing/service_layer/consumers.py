"""The consumer's one handler table: every ``service_layer`` module that reacts to events keeps its own
``registry``; this module merges them (an event type handled twice is a programming error) for
``metering-and-billing consumer``."""

from __future__ import annotations

from billing.service_layer import accounts, readings, receivables
from utilis_shared.inbox import HandlerRegistry


def merge(*registries: HandlerRegistry) -> HandlerRegistry:
    merged = HandlerRegistry()
    for part in registries:
        for event_type in part.handlers.keys() & merged.handlers.keys():
            raise RuntimeError(f"{event_type} has two handlers")
        merged.handlers.update(part.handlers)
        merged.after_commit.update(part.after_commit)
    return merged


registry = merge(accounts.registry, readings.registry, receivables.registry)
