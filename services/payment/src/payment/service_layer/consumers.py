"""The consumer's one handler table (``payment consumer``): what billing reports owed (``dues``) and what
it reports settled (``settlements``, for reconciliation)."""

from __future__ import annotations

from payment.service_layer import dues, settlements
from utilis_shared.inbox import HandlerRegistry

registry = HandlerRegistry(
    handlers={**dues.registry.handlers, **settlements.registry.handlers},
    after_commit={**dues.registry.after_commit, **settlements.registry.after_commit},
)
