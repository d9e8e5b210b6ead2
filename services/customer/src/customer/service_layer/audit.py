"""The audit trail: every change (who, when, what, before/after) and every staff read of personal data."""

from __future__ import annotations

from typing import Any

from customer.adapters.orm import AuditEntry
from utilis_shared.auth import Principal
from utilis_shared.context import current_request_id
from utilis_shared.db import UnitOfWork


def record(
    uow: UnitOfWork,
    actor: Principal | str,
    action: str,
    entity_type: str,
    entity_id: object,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    **details: Any,
) -> None:
    """Stage an audit row in the current transaction. Values must already be masked."""
    changes: dict[str, Any] = {}
    if before is not None:
        changes["before"] = before
    if after is not None:
        changes["after"] = after
    changes.update(details)
    if isinstance(actor, Principal):
        who = actor.actor.subject if actor.actor else actor.subject
        kind = "staff" if actor.actor else actor.kind
        on_behalf = actor.subject if actor.actor else None
        channel = actor.channel
    else:
        who, kind, on_behalf, channel = actor, "system", None, None
    uow.session.add(
        AuditEntry(
            actor=who,
            actor_kind=kind,
            on_behalf_of=on_behalf,
            channel=channel,
            action=action,
            entity_type=entity_type,
            entity_id=str(entity_id),
            changes=_jsonable(changes),
            request_id=current_request_id(),
        )
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
