"""Running a write use case: one transaction, optional ``Idempotency-Key``, stored response.

Use cases are ``async def use_case(uow, ...) -> result`` functions that change rows and stage events but do
not commit; :func:`execute` owns the transaction boundary. With an :class:`IdempotencyClaim`, the key is
claimed *inside* that transaction (``INSERT .. ON CONFLICT DO NOTHING``: a concurrent request with the same
key waits for the first to finish), the response is stored beside the effect, and everything commits
together. So a key is never marked used unless its effect committed, and a retry gets the stored response.
Same key with a different body: 422 ``idempotency_key_reused``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import JSONB, insert

from utilis_shared.db import UnitOfWork, idempotency_keys
from utilis_shared.errors import Problem

T = TypeVar("T")


@dataclass(frozen=True)
class IdempotencyClaim:
    scope: str
    key: str
    request_hash: str

    @classmethod
    def for_request(cls, *, subject: str, method: str, path: str, key: str, body: Any) -> IdempotencyClaim:
        try:
            uuid.UUID(key)
        except ValueError as exc:
            raise Problem(
                "Idempotency-Key must be a UUID.", status=400, code="invalid_idempotency_key"
            ) from exc
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
        digest = hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()
        return cls(scope=f"{subject}:{method} {path}"[:200], key=key, request_hash=digest)

    async def acquire(self, uow: UnitOfWork) -> tuple[int, dict[str, Any]] | None:
        """Claim the key; return the stored (status, body) if it was already used with this body."""
        params = {"b_scope": self.scope, "b_key": self.key}
        claimed = await uow.session.execute(_CLAIM, {**params, "b_request_hash": self.request_hash})
        if claimed.first() is not None:
            return None
        stored = (await uow.session.execute(_STORED, params)).one()
        if stored.request_hash != self.request_hash:
            raise Problem(
                "This Idempotency-Key was already used with a different request.",
                status=422,
                code="idempotency_key_reused",
            )
        return stored.status_code, stored.response_body

    async def store(self, uow: UnitOfWork, status: int, body: dict[str, Any]) -> None:
        await uow.session.execute(
            _STORE, {"b_scope": self.scope, "b_key": self.key, "b_status": status, "b_body": body}
        )


# Built once: on the hot path of every retried write, building and hashing the statement per request cost
# more than running it.
_t = idempotency_keys
_CLAIM = (
    insert(_t)
    .values(
        scope=bindparam("b_scope"),
        key=bindparam("b_key"),
        request_hash=bindparam("b_request_hash"),
        status_code=0,
        response_body={},
    )
    .on_conflict_do_nothing()
    .returning(_t.c.key)
)
_STORED = select(_t.c.request_hash, _t.c.status_code, _t.c.response_body).where(
    _t.c.scope == bindparam("b_scope"), _t.c.key == bindparam("b_key")
)
_STORE = (
    _t.update()
    .where(_t.c.scope == bindparam("b_scope"), _t.c.key == bindparam("b_key"))
    .values(status_code=bindparam("b_status"), response_body=bindparam("b_body", type_=JSONB))
)


@dataclass(frozen=True)
class CommandResult:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def respond(result: CommandResult) -> JSONResponse:
    """The HTTP answer of a command: its stored status and body; ``Idempotent-Replayed: true`` on a replay."""
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return JSONResponse(result.body, status_code=result.status, headers=headers)


async def execute(
    uow: UnitOfWork,
    command: Callable[[UnitOfWork], Awaitable[T]],
    present: Callable[[T], dict[str, Any]],
    *,
    status: int | Callable[[T], int] = 200,
    claim: IdempotencyClaim | None = None,
) -> CommandResult:
    """Run ``command`` in one transaction and return the presented response (stored for replays).
    ``status``: the answer's status, or a function of the command's result (201 for a new resource, 200 for
    the one that already existed)."""
    async with uow:
        if claim is not None:
            replay = await claim.acquire(uow)
            if replay is not None:
                return CommandResult(status=replay[0], body=replay[1], replayed=True)
        result = await command(uow)
        body = present(result)
        code = status(result) if callable(status) else status
        if claim is not None:
            await claim.store(uow, code, body)
        await uow.commit()
        return CommandResult(status=code, body=body)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=100,
        description="A UUID chosen by the client; a retry with the same key and body gets the first answer.",
    ),
]


def claim_for(request: Request, subject: str, key: str | None, body: Any) -> IdempotencyClaim | None:
    if key is None:
        return None
    return IdempotencyClaim.for_request(
        subject=subject, method=request.method, path=request.url.path, key=key, body=body
    )
