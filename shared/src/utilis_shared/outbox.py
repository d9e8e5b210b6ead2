"""The outbox relay: publishes committed outbox rows to Kafka, at least once, in commit order.

Each round, in one transaction: claim up to ``batch_size`` unsent rows with ``FOR UPDATE SKIP LOCKED``
(ordered by ``seq``), publish them keyed by aggregate id with ``acks=all``, wait for every ack, mark the
acknowledged rows sent, and back off the failed ones (exponential, capped). A relay killed at any point
leaves its claimed rows unsent (the transaction dies with the connection), so the next relay publishes
them again: consumers may see a duplicate, which their inbox absorbs; no event is ever lost.

Sent rows are kept for ``outbox_retention_hours`` (for audits and replays) and then purged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from aiokafka import AIOKafkaProducer
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from utilis_shared.db import OUTBOX_CHANNEL, outbox_messages
from utilis_shared.kafka import encode_headers, make_producer
from utilis_shared.metrics import OUTBOX_BACKLOG, OUTBOX_FAILED, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED
from utilis_shared.settings import ServiceSettings

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 60.0


@dataclass
class RelayRound:
    claimed: int = 0
    published: int = 0
    failed: int = 0


class OutboxRelay:
    def __init__(
        self, settings: ServiceSettings, engine: AsyncEngine, producer: AIOKafkaProducer | None = None
    ):
        self.settings = settings
        self.engine = engine
        self.producer = producer or make_producer(settings)
        self._own_producer = producer is None
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._last_purge = 0.0

    async def start(self) -> None:
        await self.producer.start()
        await self._listen()

    async def _listen(self) -> None:
        """Wake up as soon as a transaction that wrote the outbox commits (``NOTIFY``), instead of
        waiting for the next poll; the poll stays as the backstop for a lost notification."""
        dsn = self.settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        try:
            self._listener = await asyncpg.connect(dsn)
            await self._listener.add_listener(OUTBOX_CHANNEL, lambda *_: self._wakeup.set())
        except (OSError, asyncpg.PostgresError):
            log.warning("outbox LISTEN unavailable; polling only")
            self._listener = None

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        if self._own_producer:
            await self.producer.stop()

    def stop(self) -> None:
        """Ask the relay to finish the batch at hand and return (SIGTERM handler)."""
        self._stopping.set()

    async def run_once(self) -> RelayRound:
        t = outbox_messages
        result = RelayRound()
        async with self.engine.connect() as conn, conn.begin():
            rows = (
                await conn.execute(
                    select(t.c.id, t.c.topic, t.c.key, t.c.payload, t.c.headers, t.c.attempts)
                    .where(and_(t.c.sent_at.is_(None), t.c.available_at <= func.now()))
                    .order_by(t.c.seq)
                    .limit(self.settings.outbox_batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            result.claimed = len(rows)
            if not rows:
                return result
            futures = []
            for row in rows:
                futures.append(
                    await self.producer.send(
                        row.topic,
                        value=row.payload,
                        key=row.key.encode(),
                        headers=encode_headers(row.headers),
                    )
                )
            outcomes = await asyncio.gather(*futures, return_exceptions=True)
            sent_ids = [
                row.id for row, out in zip(rows, outcomes, strict=True) if not isinstance(out, BaseException)
            ]
            failed = [
                (row, out) for row, out in zip(rows, outcomes, strict=True) if isinstance(out, BaseException)
            ]
            if sent_ids:
                await conn.execute(
                    update(t).where(t.c.id.in_(sent_ids)).values(sent_at=func.now(), last_error=None)
                )
            for row, error in failed:
                backoff = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** min(row.attempts, 10))
                await conn.execute(
                    update(t)
                    .where(t.c.id == row.id)
                    .values(
                        attempts=t.c.attempts + 1,
                        last_error=repr(error)[:2000],
                        available_at=func.now() + timedelta(seconds=backoff),
                    )
                )
            result.published, result.failed = len(sent_ids), len(failed)
        OUTBOX_PUBLISHED.labels(self.settings.service_name).inc(result.published)
        if result.failed:
            OUTBOX_FAILED.labels(self.settings.service_name).inc(result.failed)
            log.warning(
                "outbox publish failures", extra={"failed": result.failed, "published": result.published}
            )
        return result

    async def observe_backlog(self) -> tuple[int, float]:
        t = outbox_messages
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        func.count(),
                        func.coalesce(func.extract("epoch", func.now() - func.min(t.c.created_at)), 0),
                    ).where(t.c.sent_at.is_(None))
                )
            ).one()
        backlog, age = int(row[0]), float(row[1])
        OUTBOX_BACKLOG.labels(self.settings.service_name).set(backlog)
        OUTBOX_OLDEST_AGE.labels(self.settings.service_name).set(age)
        return backlog, age

    async def purge_sent(self) -> int:
        t = outbox_messages
        async with self.engine.begin() as conn:
            res = await conn.execute(
                delete(t).where(
                    and_(
                        t.c.sent_at.is_not(None),
                        t.c.sent_at < func.now() - timedelta(hours=self.settings.outbox_retention_hours),
                    )
                )
            )
        return res.rowcount or 0

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        idle_backoff = self.settings.outbox_poll_interval_seconds
        error_backoff = 0.5
        next_observe = 0.0
        while not self._stopping.is_set():
            try:
                round_ = await self.run_once()
                error_backoff = 0.5
            except Exception:
                log.exception("outbox relay round failed")
                round_ = RelayRound(failed=1)
                await self._sleep(error_backoff)
                error_backoff = min(MAX_BACKOFF_SECONDS, error_backoff * 2)
                continue
            now = loop.time()
            if now >= next_observe:
                next_observe = now + 5.0
                try:
                    await self.observe_backlog()
                    if now - self._last_purge > 3600:
                        self._last_purge = now
                        await self.purge_sent()
                except Exception:
                    log.exception("outbox backlog/purge query failed")
            if round_.failed:
                await self._sleep(error_backoff)
                error_backoff = min(MAX_BACKOFF_SECONDS, error_backoff * 2)
            elif round_.claimed < self.settings.outbox_batch_size:
                await self._sleep(idle_backoff, wake_on_notify=True)

    async def _sleep(self, seconds: float, *, wake_on_notify: bool = False) -> None:
        waits = [asyncio.ensure_future(self._stopping.wait())]
        if wake_on_notify:
            waits.append(asyncio.ensure_future(self._wakeup.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if self._wakeup.is_set() and not self._stopping.is_set():
            # Woken by a commit: linger a moment so the commits right behind it share the round (under
            # load a round of one row costs as much as a round of hundreds).
            await asyncio.sleep(self.settings.outbox_linger_seconds)
        self._wakeup.clear()
