"""The residents' bill lookups in Redis: cache-aside per account, invalidated by billing's own changes.

One key per account holds its **statement** (open receivables with their postings, the prepaid balance,
the latest bills and the usage history; ``service_layer/lookups.py`` builds it), as JSON. The amount due is
computed from it at read time, so the late fee shown is accrued to the second without the cache going
stale every second.

Consistency (the promise in the README: once a settlement is committed, no lookup shows the bill unpaid):

- Every change of an account's receivables **invalidates after its commit**: ``INCR`` the account's
  generation key and ``DEL`` its statement. The consumer runs this as an ``after_commit`` hook before it
  commits the Kafka offset, and again on a duplicate delivery, so a crash between the database commit and
  the invalidation replays the invalidation.
- A **fill** reads the generation *before* reading the database and stores the statement only if the
  generation is unchanged (one Lua script, atomic). A fill that read the database before a settlement
  committed but tries to store after its invalidation is refused, so it cannot put the old state back.
- The TTL (``lookup_cache_ttl_seconds``) is only a backstop (e.g. a change made by hand in the database).

Stampede protection: concurrent misses for one account in one process share one database read
(single flight); across processes a short ``SET NX PX`` fill lock lets one process read while the others
poll the cache briefly and fall back to their own read if it does not appear. Unknown accounts are cached
as such for ``lookup_negative_ttl_seconds`` (negative caching); opening the account invalidates it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import Counter
from pydantic_core import to_json
from redis.asyncio import Redis

log = logging.getLogger(__name__)

LOOKUPS = Counter(
    "utilis_billing_lookup_cache_total",
    "Residents' statement lookups by cache outcome (hit, miss, negative_hit, fill_refused).",
    ["outcome"],
)

_SET_IF_GENERATION = """
local g = redis.call('GET', KEYS[2]) or '0'
if g == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""

NEGATIVE = b'{"known":false}'

Loader = Callable[[str], Awaitable[dict[str, Any] | None]]


class LookupCache:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "billing:",
        ttl_seconds: int = 600,
        negative_ttl_seconds: int = 60,
        fill_lock_ms: int = 2000,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.negative_ttl = negative_ttl_seconds
        self.fill_lock_ms = fill_lock_ms
        self._set_if_generation = redis.register_script(_SET_IF_GENERATION)
        self._inflight: dict[str, asyncio.Future[bytes]] = {}

    @classmethod
    def from_settings(cls, settings) -> LookupCache:
        return cls(
            Redis.from_url(settings.redis_url),
            prefix=settings.redis_prefix,
            ttl_seconds=settings.lookup_cache_ttl_seconds,
            negative_ttl_seconds=settings.lookup_negative_ttl_seconds,
            fill_lock_ms=settings.lookup_fill_lock_ms,
        )

    async def close(self) -> None:
        await self.redis.aclose()

    def _key(self, account_no: str) -> str:
        return f"{self.prefix}stmt:{account_no}"

    def _gen(self, account_no: str) -> str:
        return f"{self.prefix}stmt-gen:{account_no}"

    def _lock(self, account_no: str) -> str:
        return f"{self.prefix}stmt-fill:{account_no}"

    async def statement(self, account_no: str, load: Loader) -> bytes:
        """The account's statement as JSON bytes (``NEGATIVE`` for an unknown account)."""
        raw = await self.redis.get(self._key(account_no))
        if raw is not None:
            LOOKUPS.labels("negative_hit" if raw == NEGATIVE else "hit").inc()
            return raw
        LOOKUPS.labels("miss").inc()
        pending = self._inflight.get(account_no)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[account_no] = future
        try:
            raw = await self._fill(account_no, load)
            future.set_result(raw)
            return raw
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody logs "never retrieved"
            raise
        finally:
            del self._inflight[account_no]

    async def _fill(self, account_no: str, load: Loader) -> bytes:
        locked = await self.redis.set(self._lock(account_no), b"1", nx=True, px=self.fill_lock_ms)
        if not locked:
            # Another process is filling it: wait for its result a little, then read for ourselves.
            for _ in range(max(1, self.fill_lock_ms // 20)):
                await asyncio.sleep(0.01)
                raw = await self.redis.get(self._key(account_no))
                if raw is not None:
                    return raw
        try:
            generation = await self.redis.get(self._gen(account_no)) or b"0"
            document = await load(account_no)
            raw = NEGATIVE if document is None else to_json(document)
            ttl = self.negative_ttl if document is None else self.ttl
            stored = await self._set_if_generation(
                keys=[self._key(account_no), self._gen(account_no)], args=[generation, raw, ttl]
            )
            if not stored:
                LOOKUPS.labels("fill_refused").inc()
            return raw
        finally:
            if locked:
                await self.redis.delete(self._lock(account_no))

    async def invalidate(self, account_nos: Iterable[str]) -> None:
        """After a commit that changed these accounts: no fill that started before it may be stored."""
        nos = list(dict.fromkeys(account_nos))
        if not nos:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for no in nos:
                pipe.incr(self._gen(no))
                pipe.expire(self._gen(no), self.ttl * 2)
                pipe.delete(self._key(no))
            await pipe.execute()
