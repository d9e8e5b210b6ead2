"""Self-service usage per channel: every proxied request counted by the channel of the client that
obtained the token (the ``channel`` claim), per business day (Asia/Shanghai) and service.

Each API process counts in memory and adds its counts to ``channel_usage`` every ``flush_seconds`` (and
on shutdown) with one upsert, so requests never wait on the database and replicas add up. A failed flush
keeps its counts for the next one; a crash loses at most the last interval's counts (the Prometheus
counter ``utilis_gateway_channel_requests_total`` is the live view).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.adapters.orm import ChannelUsage
from gateway.domain.channels import CHANNELS
from utilis_shared.timeutil import business_today

log = logging.getLogger(__name__)

_UPSERT = text(
    """
    INSERT INTO channel_usage (day, channel, upstream, requests)
    SELECT * FROM unnest(
        CAST(:days AS date[]), CAST(:channels AS text[]),
        CAST(:upstreams AS text[]), CAST(:requests AS bigint[])
    )
    ON CONFLICT (day, channel, upstream)
    DO UPDATE SET requests = channel_usage.requests + excluded.requests, updated_at = now()
    """
).bindparams(bindparam("days"), bindparam("channels"), bindparam("upstreams"), bindparam("requests"))


class ChannelUsageRecorder:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession], *, flush_seconds: float) -> None:
        self._session_factory = session_factory
        self.flush_seconds = flush_seconds
        self._counts: Counter[tuple[date, str, str]] = Counter()
        self._task: asyncio.Task[None] | None = None

    def count(self, channel: str | None, upstream: str) -> None:
        self._counts[(business_today(), channel or "unknown", upstream)] += 1

    async def flush(self) -> int:
        """Add the counts so far to the table; the number of requests written."""
        counts, self._counts = self._counts, Counter()
        if not counts:
            return 0
        keys = list(counts)
        try:
            async with self._session_factory() as session:
                await session.execute(
                    _UPSERT,
                    {
                        "days": [k[0] for k in keys],
                        "channels": [k[1] for k in keys],
                        "upstreams": [k[2] for k in keys],
                        "requests": [counts[k] for k in keys],
                    },
                )
                await session.commit()
        except (SQLAlchemyError, OSError):
            self._counts.update(counts)  # kept for the next flush
            log.warning("channel usage not written; kept for the next flush", exc_info=True)
            return 0
        return sum(counts.values())

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="channel-usage-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            await self.flush()


@dataclass(frozen=True)
class ChannelRow:
    channel: str
    label: str
    kind: str
    self_service: bool
    requests: int


async def usage_report(session: AsyncSession, start: date, end: date) -> dict[str, Any]:
    """Requests per channel between ``start`` and ``end`` (business dates, inclusive), every registered
    channel listed (zero when unused), with the self-service share and a per-day breakdown."""
    total_by_channel: dict[str, int] = {}
    rows = await session.execute(
        select(ChannelUsage.channel, func.sum(ChannelUsage.requests))
        .where(ChannelUsage.day.between(start, end))
        .group_by(ChannelUsage.channel)
    )
    for channel, requests in rows:
        total_by_channel[channel] = int(requests)
    by_day = await session.execute(
        select(ChannelUsage.day, ChannelUsage.channel, func.sum(ChannelUsage.requests))
        .where(ChannelUsage.day.between(start, end))
        .group_by(ChannelUsage.day, ChannelUsage.channel)
        .order_by(ChannelUsage.day, ChannelUsage.channel)
    )
    channels = [
        ChannelRow(
            channel=c.value,
            label=info.label,
            kind=info.kind.value,
            self_service=info.self_service,
            requests=total_by_channel.pop(c.value, 0),
        )
        for c, info in CHANNELS.items()
    ]
    # Requests whose token named no registered channel (none today; kept visible rather than dropped).
    channels += [ChannelRow(c, c, "unregistered", False, n) for c, n in sorted(total_by_channel.items())]
    total = sum(r.requests for r in channels)
    self_service = sum(r.requests for r in channels if r.self_service)
    resident_facing = self_service + sum(r.requests for r in channels if r.kind == "assisted")
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "total_requests": total,
        "self_service_requests": self_service,
        # Share of the residents' own requests (self-service + assisted) that they made on their own.
        "self_service_share": round(self_service / resident_facing, 4) if resident_facing else None,
        "channels": [r.__dict__ for r in channels],
        "by_day": [{"day": d.isoformat(), "channel": c, "requests": int(n)} for d, c, n in by_day],
    }
