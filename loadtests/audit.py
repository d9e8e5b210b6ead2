"""The consistency audit after a load test (and the checks the payment e2e test shares).

Given what the providers confirmed (the provider simulator's ledger: order number, provider, transaction
id, amount), it checks, to the fen:

- **payment records**: every confirmed order is ``succeeded`` in the payment service with that amount and
  transaction id, its success applied by exactly one callback (``provider_callbacks.outcome = 'applied'``)
  and no refund case; no order of the audited accounts succeeded without a provider confirmation;
- **billing settlements**: exactly one settlement per confirmed payment, with its amount; its allocations
  plus what it added to the prepaid balance equal the amount; the bills' postings that reference the
  payment add up to the allocations (a payment applied twice would post twice); no settlement of the
  audited accounts without a confirmed payment;
- **the payment service's projection** of billing's settlements (what reconciliation reads): one row per
  payment, same amount;
- **no lost events**: every service's outbox drained, every platform consumer group's lag zero, nothing
  new on a dead-letter topic since the run started.

It first waits (bounded) for the pipeline to drain, then judges. ``python -m loadtests.audit LEDGER`` runs
it on its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from utilis_shared import devstack

PAYMENT, BILLING = "payment", "metering-and-billing"


@dataclass(frozen=True)
class Confirmed:
    """A payment its provider confirmed (and notified us of)."""

    order_no: str
    provider: str
    txn_id: str
    amount_fen: int
    account_no: str


@dataclass
class Drain:
    """The pipeline's state at one instant: unsent outbox rows per service database, lag per consumer
    group (events not yet consumed), messages on dead-letter topics per topic."""

    outbox_pending: dict[str, int] = field(default_factory=dict)
    lag: dict[str, int] = field(default_factory=dict)
    dlq: dict[str, int] = field(default_factory=dict)

    @property
    def drained(self) -> bool:
        return not any(self.outbox_pending.values()) and not any(self.lag.values())


@dataclass
class AuditResult:
    confirmed_payments: int = 0
    confirmed_fen: int = 0
    payment_succeeded_fen: int = 0
    billing_settled_fen: int = 0
    billing_allocated_fen: int = 0
    billing_prepaid_added_fen: int = 0
    settled_twice: int = 0
    drain: Drain = field(default_factory=Drain)
    drain_seconds: float = 0.0
    dead_letters: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def lines(self) -> list[str]:
        out = [
            f"audit: {'OK' if self.ok else 'MISMATCH'}: {self.confirmed_payments} provider-confirmed "
            f"payments, "
            f"{self.confirmed_fen} fen; payment records {self.payment_succeeded_fen} fen; billing settled "
            f"{self.billing_settled_fen} fen = allocated {self.billing_allocated_fen} + prepaid added "
            f"{self.billing_prepaid_added_fen}; settled twice: {self.settled_twice}; dead letters: "
            f"{self.dead_letters}; drained after {self.drain_seconds:.1f} s "
            f"(outbox pending {sum(self.drain.outbox_pending.values())}, lag {sum(self.drain.lag.values())})"
        ]
        out += [f"  mismatch: {m}" for m in self.mismatches[:50]]
        if len(self.mismatches) > 50:
            out.append(f"  ... and {len(self.mismatches) - 50} more")
        return out


def _dsn(platform: devstack.Platform, service: str) -> str:
    return devstack.database_url(platform.services[service].database).replace(
        "postgresql+asyncpg", "postgresql"
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# ------------------------------------------------------------------------------------------ the pipeline
def consumer_groups(platform: devstack.Platform) -> list[str]:
    """The platform's consumer groups: one per service with a consumer process, named after the service."""
    return [name for name, spec in platform.services.items() if "consumer" in spec.processes]


async def dead_letter_counts(platform: devstack.Platform, bootstrap: str | None = None) -> dict[str, int]:
    """Messages ever written to each declared dead-letter topic (its end offsets)."""
    topics = [t for t in platform.topics if t.name.endswith(".dlq")]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap or devstack.kafka_bootstrap())
    await consumer.start()
    try:
        tps = [TopicPartition(t.name, p) for t in topics for p in range(t.partitions)]
        ends = await consumer.end_offsets(tps)
        return {t.name: sum(ends[tp] for tp in tps if tp.topic == t.name) for t in topics}
    finally:
        await consumer.stop()


async def pipeline_state(platform: devstack.Platform, bootstrap: str | None = None) -> Drain:
    state = Drain()
    for name in platform.services:
        conn = await asyncpg.connect(_dsn(platform, name))
        try:
            state.outbox_pending[name] = await conn.fetchval(
                "SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL"
            )
        finally:
            await conn.close()
    bootstrap = bootstrap or devstack.kafka_bootstrap()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        for group in consumer_groups(platform):
            committed = await admin.list_consumer_group_offsets(group)
            tps = [tp for tp in committed if not tp.topic.endswith(".dlq")]
            ends = await consumer.end_offsets(tps) if tps else {}
            state.lag[group] = sum(max(0, ends[tp] - committed[tp].offset) for tp in tps)
        state.dlq = await dead_letter_counts(platform, bootstrap)
    finally:
        await consumer.stop()
        await admin.close()
    return state


async def wait_drained(platform: devstack.Platform, *, within: float = 120.0, settle: float = 1.0) -> Drain:
    """Wait until every outbox is drained and every consumer group's lag is zero (seen twice, ``settle``
    seconds apart: a relay may be between publishing and marking); the last state seen, drained or not."""
    deadline = time.monotonic() + within
    state = await pipeline_state(platform)
    while True:
        if state.drained:
            await asyncio.sleep(settle)
            again = await pipeline_state(platform)
            if again.drained:
                return again
            state = again
        if time.monotonic() >= deadline:
            return state
        await asyncio.sleep(0.5)
        state = await pipeline_state(platform)


# ------------------------------------------------------------------------------------------ the money
async def billing_settlements(platform: devstack.Platform, payment_ids: list[str]) -> list[asyncpg.Record]:
    """Billing's settlements of these payments (test_payment's query)."""
    conn = await asyncpg.connect(_dsn(platform, BILLING))
    try:
        return await conn.fetch(
            "SELECT payment_id, account_no, amount_fen, allocations, prepaid_added_fen, status "
            "FROM settlements WHERE payment_id = ANY($1::varchar[])",
            payment_ids,
        )
    finally:
        await conn.close()


def settlement_totals(rows: Iterable[asyncpg.Record]) -> tuple[int, int]:
    """(allocated to bills, added to prepaid balances) over billing's settlement rows, in fen."""
    rows = list(rows)
    allocated = sum(a["late_fee_fen"] + a["principal_fen"] for r in rows for a in _json(r["allocations"]))
    return allocated, sum(r["prepaid_added_fen"] for r in rows)


async def audit(
    platform: devstack.Platform,
    confirmed: list[Confirmed],
    *,
    accounts: list[str],
    since: datetime,
    dead_letters_before: dict[str, int] | None = None,
    drain_within: float = 120.0,
) -> AuditResult:
    """Judge a run (see the module docstring). ``accounts``: the accounts the run paid for (orders or
    settlements of theirs since ``since`` without a provider confirmation are mismatches)."""
    result = AuditResult(
        confirmed_payments=len(confirmed), confirmed_fen=sum(c.amount_fen for c in confirmed)
    )
    bad = result.mismatches
    by_no = {c.order_no: c for c in confirmed}
    if len(by_no) != len(confirmed):
        bad.append("the provider confirmed one order number twice")
    ids = list(by_no)
    started = time.monotonic()
    result.drain = await wait_drained(platform, within=drain_within)
    result.drain_seconds = time.monotonic() - started
    for name, pending in result.drain.outbox_pending.items():
        if pending:
            bad.append(f"{name}: {pending} outbox events never published")
    for group, lag in result.drain.lag.items():
        if lag:
            bad.append(f"consumer group {group}: lag {lag} events")
    if dead_letters_before is not None:
        for topic, count in result.drain.dlq.items():
            new = count - dead_letters_before.get(topic, 0)
            result.dead_letters += new
            if new:
                bad.append(f"{topic}: {new} events dead-lettered during the run")

    # The payment service's records.
    conn = await asyncpg.connect(_dsn(platform, PAYMENT))
    try:
        orders = {
            r["order_no"]: r
            for r in await conn.fetch(
                "SELECT order_no, account_no, status, amount_fen, provider, provider_txn_id "
                "FROM payment_orders WHERE order_no = ANY($1::varchar[])",
                ids,
            )
        }
        applied = dict(
            await conn.fetch(
                "SELECT order_no, count(*) FROM provider_callbacks WHERE order_no = ANY($1::varchar[]) "
                "AND outcome = 'applied' GROUP BY order_no",
                ids,
            )
        )
        refund_cases = await conn.fetchval(
            "SELECT count(*) FROM refund_cases WHERE order_no = ANY($1::varchar[])", ids
        )
        unconfirmed = await conn.fetch(
            "SELECT order_no FROM payment_orders WHERE account_no = ANY($1::varchar[]) AND created_at >= $2 "
            "AND status IN ('succeeded', 'refunded') AND NOT order_no = ANY($3::varchar[])",
            accounts,
            since,
            ids,
        )
        projected = await conn.fetch(
            "SELECT payment_id, amount_fen FROM billing_settlements WHERE payment_id = ANY($1::varchar[]) "
            "AND reversed_at IS NULL",
            ids,
        )
    finally:
        await conn.close()
    for c in confirmed:
        o = orders.get(c.order_no)
        if o is None:
            bad.append(f"{c.order_no}: confirmed by {c.provider}, unknown to the payment service")
            continue
        if (o["status"], o["amount_fen"], o["provider_txn_id"]) != ("succeeded", c.amount_fen, c.txn_id):
            bad.append(
                f"{c.order_no}: provider {c.amount_fen} fen txn {c.txn_id}; payment service {o['status']} "
                f"{o['amount_fen']} fen txn {o['provider_txn_id']}"
            )
        else:
            result.payment_succeeded_fen += o["amount_fen"]
        if applied.get(c.order_no, 0) != 1:
            bad.append(f"{c.order_no}: success applied by {applied.get(c.order_no, 0)} callbacks (want 1)")
    if refund_cases:
        bad.append(f"{refund_cases} refund cases opened for confirmed payments")
    for r in unconfirmed:
        bad.append(f"{r['order_no']}: succeeded at the payment service without a provider confirmation")
    seen_projection: dict[str, list[int]] = {}
    for r in projected:
        seen_projection.setdefault(r["payment_id"], []).append(r["amount_fen"])
    for c in confirmed:
        if seen_projection.get(c.order_no) != [c.amount_fen]:
            bad.append(
                f"{c.order_no}: payment's projection of billing's settlement: "
                f"{seen_projection.get(c.order_no)}"
            )

    # Billing's settlements and the postings behind them.
    rows = await billing_settlements(platform, ids)
    conn = await asyncpg.connect(_dsn(platform, BILLING))
    try:
        postings = dict(
            await conn.fetch(
                "SELECT ref, sum(late_fee_fen + principal_fen) FROM postings WHERE ref = ANY($1::varchar[]) "
                "AND kind = 'payment' GROUP BY ref",
                ids,
            )
        )
        stray = await conn.fetch(
            "SELECT payment_id FROM settlements WHERE account_no = ANY($1::varchar[]) AND paid_at >= $2 "
            "AND NOT payment_id = ANY($3::varchar[])",
            accounts,
            since,
            ids,
        )
    finally:
        await conn.close()
    settled = {r["payment_id"]: r for r in rows}
    for c in confirmed:
        r = settled.get(c.order_no)
        if r is None:
            bad.append(f"{c.order_no}: confirmed ({c.amount_fen} fen), never settled by billing")
            continue
        allocated, prepaid = settlement_totals([r])
        if r["amount_fen"] != c.amount_fen or allocated + prepaid != c.amount_fen or r["status"] != "settled":
            bad.append(
                f"{c.order_no}: confirmed {c.amount_fen} fen; billing {r['status']} {r['amount_fen']} = "
                f"{allocated} allocated + {prepaid} prepaid"
            )
        posted = postings.get(c.order_no, 0)
        if posted != allocated:
            result.settled_twice += posted > allocated
            bad.append(f"{c.order_no}: postings {posted} fen against allocations {allocated} fen")
    for r in stray:
        bad.append(f"{r['payment_id']}: settled by billing without a provider confirmation")
    result.billing_settled_fen = sum(r["amount_fen"] for r in rows)
    result.billing_allocated_fen, result.billing_prepaid_added_fen = settlement_totals(rows)
    if not (
        result.confirmed_fen
        == result.payment_succeeded_fen
        == result.billing_settled_fen
        == result.billing_allocated_fen + result.billing_prepaid_added_fen
    ):
        bad.append(
            f"totals differ: confirmed {result.confirmed_fen}, payment records "
            f"{result.payment_succeeded_fen}, "
            f"billing {result.billing_settled_fen} = {result.billing_allocated_fen} + "
            f"{result.billing_prepaid_added_fen}"
        )
    return result


def read_ledger(path: Path) -> list[Confirmed]:
    """The provider simulator's ledger (JSON lines written by the Locust process)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            out.append(Confirmed(d["order_no"], d["provider"], d["txn_id"], d["amount_fen"], d["account_no"]))
    return out


def main() -> None:
    import argparse
    from datetime import UTC

    parser = argparse.ArgumentParser(description="audit a load test's payments (its provider ledger)")
    parser.add_argument("ledger", type=Path)
    parser.add_argument("--since", help="ISO instant the run started (default: the ledger's oldest entry)")
    parser.add_argument("--drain-within", type=float, default=120.0)
    args = parser.parse_args()
    confirmed = read_ledger(args.ledger)
    since = datetime.fromisoformat(args.since) if args.since else datetime.fromtimestamp(0, UTC)
    result = asyncio.run(
        audit(
            devstack.load_platform(),
            confirmed,
            accounts=sorted({c.account_no for c in confirmed}),
            since=since,
            drain_within=args.drain_within,
        )
    )
    print("\n".join(result.lines()))
    raise SystemExit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
