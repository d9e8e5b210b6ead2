"""The idempotent consumer: inbox row and effect in one transaction, offset committed after it.

For every message: parse the envelope; in one transaction insert ``(consumer, event_id)`` into the inbox
(``ON CONFLICT DO NOTHING``) and, only if that row is new, run the handler; commit. A duplicate delivery
finds its inbox row and does nothing. A failing handler rolls back (so its inbox row is not claimed
either) and is retried with backoff up to ``consumer_max_attempts``; then the message goes to
``<topic>.dlq`` with the failure in its headers and, once the DLQ write is acknowledged, its offset is
committed so later messages keep flowing. A message that is not a valid envelope goes to the DLQ at once.
Offsets are committed only after the database commit (or the DLQ ack) of every message before them.

Batches: the records of one fetch (up to ``consumer_batch_size``, each partition's in order) are applied
in *one* transaction: one multi-row inbox insert, each new event's handler in order (the session flushed
after each, so a later handler sees an earlier one's rows), one commit, the hooks, one offset commit. That
turns a commit (a WAL flush) and an offset commit per event into one per batch, which is what lets the
consumers keep up with the payment peak. If anything in the batch fails, the transaction rolls back (so
nothing of it counted) and the batch is applied again one event per transaction, with the retries and the
DLQ above: a poison event costs its batch one redo, never a lost or doubled effect. Events no handler and
no hook cares about are skipped without touching the database (there is nothing to make idempotent).

Effects outside the database that must follow a commit (a cache invalidation) are ``after_commit`` hooks:
they run after the commit of a processed event *and* on a duplicate delivery (the first delivery may have
committed, then died before its hook ran), always before the offset is committed; so a crash anywhere
before the offset commit replays the hook. Hooks must therefore be idempotent. A failing hook is retried
like a failing handler (the replay finds the inbox row and runs only the hook).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from utilis_shared.context import correlation_id_var
from utilis_shared.db import UnitOfWork, inbox_messages
from utilis_shared.events import Event
from utilis_shared.kafka import decode_headers, encode_headers, make_consumer, make_producer
from utilis_shared.metrics import CONSUMER_LAG, CONSUMER_LATENCY, CONSUMER_PROCESSED
from utilis_shared.settings import ServiceSettings

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, Event], Awaitable[None]]
AfterCommit = Callable[[Event], Awaitable[None]]


@dataclass
class HandlerRegistry:
    """Event type -> handler. Events of other types (with no handler and no hook) are skipped."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    after_commit: dict[str, AfterCommit] = field(default_factory=dict)

    def on(self, *event_types: str) -> Callable[[Handler], Handler]:
        def decorate(fn: Handler) -> Handler:
            for event_type in event_types:
                self.handlers[event_type] = fn
            return fn

        return decorate

    def after(self, *event_types: str) -> Callable[[AfterCommit], AfterCommit]:
        """Register an idempotent effect to run after the commit (and on every duplicate delivery)."""

        def decorate(fn: AfterCommit) -> AfterCommit:
            for event_type in event_types:
                self.after_commit[event_type] = fn
            return fn

        return decorate


# A fetch's inbox rows in one statement whatever its size (a multi-row VALUES is compiled and cached
# once per row count).
_CLAIM_BATCH = text(
    'INSERT INTO inbox_messages (consumer, event_id, event_type, topic, "partition", "offset") '
    "SELECT :consumer, e.* FROM unnest(CAST(:event_ids AS uuid[]), CAST(:event_types AS text[]), "
    "CAST(:topics AS text[]), CAST(:partitions AS integer[]), CAST(:offsets AS bigint[])) AS e "
    "ON CONFLICT DO NOTHING RETURNING event_id"
).columns(inbox_messages.c.event_id)


class EventConsumer:
    def __init__(
        self,
        settings: ServiceSettings,
        session_factory: async_sessionmaker[AsyncSession],
        registry: HandlerRegistry,
        topics: list[str],
        *,
        consumer: AIOKafkaConsumer | None = None,
        dlq_producer: AIOKafkaProducer | None = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.registry = registry
        self.topics = topics
        self.name = settings.service_name
        self.consumer = consumer or make_consumer(settings, *topics)
        self.producer = dlq_producer or make_producer(settings)
        self._stopping = asyncio.Event()
        self._lag_observed_at = 0.0
        self._lag_reported: set[TopicPartition] = set()

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()

    async def close(self) -> None:
        try:
            await self.consumer.stop()
        finally:
            await self.producer.stop()

    def stop(self) -> None:
        """Stop fetching; the batch at hand is finished and its offset committed."""
        self._stopping.set()

    async def run_forever(self) -> None:
        while not self._stopping.is_set():
            batches = await self.consumer.getmany(
                timeout_ms=500, max_records=max(1, self.settings.consumer_batch_size)
            )
            records = [record for batch in batches.values() for record in batch]  # each partition in order
            if records and not self._stopping.is_set():
                await self.handle_batch(records)
                # Every record of the fetch is committed in the database (or dead-lettered); a crash before
                # this line replays them, and the inbox absorbs the replays.
                await self.consumer.commit({tp: b[-1].offset + 1 for tp, b in batches.items() if b})
            await self._observe_lag()

    def _wanted(self, event: Event) -> bool:
        return event.type in self.registry.handlers or event.type in self.registry.after_commit

    async def handle_batch(self, records: list[ConsumerRecord]) -> list[str]:
        """Process records (each partition's in offset order), to a final outcome each (see the module
        docstring); returns the outcomes."""
        outcomes: list[str] = []
        pending: list[tuple[ConsumerRecord, Event]] = []
        for record in records:
            try:
                event = Event.from_bytes(record.value)
            except (ValidationError, ValueError, TypeError) as exc:
                outcomes += await self._apply_batch(pending)
                pending = []
                await self._dead_letter(record, f"invalid envelope: {exc}"[:1000], attempts=0)
                outcomes.append("dead_lettered")
                continue
            pending.append((record, event))
        outcomes += await self._apply_batch(pending)
        return outcomes

    async def _apply_batch(self, items: list[tuple[ConsumerRecord, Event]]) -> list[str]:
        wanted = [(record, event) for record, event in items if self._wanted(event)]
        if len(wanted) > 1:
            started = time.perf_counter()
            try:
                new_ids = await self._apply_together(wanted)
            except Exception as exc:  # redo one event per transaction: retries, then the DLQ
                log.warning(
                    "batch failed; applying its events one by one",
                    extra={"events": len(wanted), "error": f"{type(exc).__name__}: {exc}"[:1000]},
                )
            else:
                elapsed = time.perf_counter() - started
                outcomes = []
                for index, (record, event) in enumerate(wanted):
                    try:
                        await self._after_commit(event)
                    except Exception:  # the replay finds the inbox rows and retries only the hooks
                        done = [self._outcome(e, new_ids) for _, e in wanted[:index]]
                        return await self._with_ignored(items, done + await self._each(wanted[index:]))
                    outcomes.append(self._outcome(event, new_ids))
                    CONSUMER_PROCESSED.labels(self.name, record.topic, outcomes[-1]).inc()
                    CONSUMER_LATENCY.labels(self.name, record.topic).observe(elapsed)
                return await self._with_ignored(items, outcomes)
        return await self._with_ignored(items, await self._each(wanted))

    async def _each(self, items: list[tuple[ConsumerRecord, Event]]) -> list[str]:
        return [await self._handle_event(record, event) for record, event in items]

    async def _with_ignored(
        self, items: list[tuple[ConsumerRecord, Event]], outcomes: list[str]
    ) -> list[str]:
        """Merge the outcomes of the wanted events with ``ignored`` for the others, in record order."""
        merged, it = [], iter(outcomes)
        for record, event in items:
            if self._wanted(event):
                merged.append(next(it))
            else:
                CONSUMER_PROCESSED.labels(self.name, record.topic, "ignored").inc()
                merged.append("ignored")
        return merged

    def _outcome(self, event: Event, new_ids: dict) -> str:
        if new_ids.get(event.id) is not event:
            return "duplicate"
        return "processed" if event.type in self.registry.handlers else "ignored"

    async def _apply_together(self, items: list[tuple[ConsumerRecord, Event]]) -> dict:
        """One transaction for the batch; returns ``event id -> the event`` whose handler ran (its first
        delivery in this batch, if its inbox row was new)."""
        uow = UnitOfWork(self.session_factory, self.settings)
        async with uow:
            inserted = await uow.session.execute(
                _CLAIM_BATCH,
                {
                    "consumer": self.name,
                    "event_ids": [event.id for _, event in items],
                    "event_types": [event.type for _, event in items],
                    "topics": [record.topic for record, _ in items],
                    "partitions": [record.partition for record, _ in items],
                    "offsets": [record.offset for record, _ in items],
                },
            )
            claimed = set(inserted.scalars().all())
            first: dict = {}
            for _, event in items:
                if event.id in claimed and event.id not in first:
                    first[event.id] = event
                    handler = self.registry.handlers.get(event.type)
                    if handler is not None:
                        token = correlation_id_var.set(event.correlation_id)
                        try:
                            await handler(uow, event)
                            await uow.session.flush()
                        finally:
                            correlation_id_var.reset(token)
            await uow.commit()
        return first

    async def _observe_lag(self) -> None:
        """The lag gauge per partition, at most once a second (a busy loop fetches far more often)."""
        now = time.monotonic()
        if now - self._lag_observed_at < 1.0:
            return
        self._lag_observed_at = now
        assigned = self.consumer.assignment()
        for tp in self._lag_reported - assigned:  # moved to another replica by a rebalance: not ours
            with contextlib.suppress(KeyError):  # never had a figure (no highwater yet)
                CONSUMER_LAG.remove(self.name, tp.topic, str(tp.partition))
        self._lag_reported = set(assigned)
        for tp in assigned:
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            position = await self.consumer.position(tp)
            CONSUMER_LAG.labels(self.name, tp.topic, str(tp.partition)).set(max(0, highwater - position))

    async def handle_record(self, record: ConsumerRecord) -> str:
        """Process one record to a final outcome; returns it (for tests and metrics)."""
        return (await self.handle_batch([record]))[0]

    async def _handle_event(self, record: ConsumerRecord, event: Event) -> str:
        """One event in a transaction of its own, retried with backoff, then dead-lettered."""
        topic = record.topic
        token = correlation_id_var.set(event.correlation_id)
        try:
            handler = self.registry.handlers.get(event.type)
            last_error = ""
            for attempt in range(1, self.settings.consumer_max_attempts + 1):
                started = time.perf_counter()
                try:
                    outcome = await self._apply(record, event, handler)
                    CONSUMER_PROCESSED.labels(self.name, topic, outcome).inc()
                    CONSUMER_LATENCY.labels(self.name, topic).observe(time.perf_counter() - started)
                    return outcome
                except Exception as exc:  # any handler failure is retried, then dead-lettered
                    last_error = f"{type(exc).__name__}: {exc}"[:1000]
                    CONSUMER_PROCESSED.labels(self.name, topic, "retried").inc()
                    log.warning(
                        "event handling failed",
                        extra={
                            "event_type": event.type,
                            "event_id": str(event.id),
                            "attempt": attempt,
                            "error": last_error,
                        },
                    )
                    if attempt < self.settings.consumer_max_attempts:
                        await asyncio.sleep(self.settings.consumer_retry_backoff_seconds * 2 ** (attempt - 1))
            await self._dead_letter(record, last_error, attempts=self.settings.consumer_max_attempts)
            return "dead_lettered"
        finally:
            correlation_id_var.reset(token)

    async def _apply(self, record: ConsumerRecord, event: Event, handler: Handler | None) -> str:
        uow = UnitOfWork(self.session_factory, self.settings)
        async with uow:
            inserted = await uow.session.execute(
                insert(inbox_messages)
                .values(
                    consumer=self.name,
                    event_id=event.id,
                    event_type=event.type,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                )
                .on_conflict_do_nothing()
                .returning(inbox_messages.c.event_id)
            )
            if inserted.first() is None:
                outcome = "duplicate"
            else:
                if handler is not None:
                    await handler(uow, event)
                await uow.commit()
                outcome = "processed" if handler is not None else "ignored"
        await self._after_commit(event)
        return outcome

    async def _after_commit(self, event: Event) -> None:
        hook = self.registry.after_commit.get(event.type)
        if hook is not None:
            token = correlation_id_var.set(event.correlation_id)
            try:
                await hook(event)
            finally:
                correlation_id_var.reset(token)

    async def _dead_letter(self, record: ConsumerRecord, reason: str, *, attempts: int) -> None:
        headers = decode_headers(record.headers)
        headers.update(
            {
                "dlq_reason": reason,
                "dlq_consumer": self.name,
                "dlq_attempts": str(attempts),
                "dlq_original_topic": record.topic,
                "dlq_original_partition": str(record.partition),
                "dlq_original_offset": str(record.offset),
            }
        )
        await self.producer.send_and_wait(
            f"{record.topic}.dlq", value=record.value, key=record.key, headers=encode_headers(headers)
        )
        CONSUMER_PROCESSED.labels(self.name, record.topic, "dead_lettered").inc()
        log.error(
            "event dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason,
            },
        )


__all__ = ["EventConsumer", "Handler", "HandlerRegistry", "TopicPartition"]
