"""The archive import's initial load (an empty archive loaded in one transaction, indexes and foreign keys
built at the end) against the real PostgreSQL, each test on its own freshly migrated database: it writes
what the incremental path writes, leaves every index and constraint as the migrations made them, the rows
are searchable afterwards, a re-run duplicates nothing, a failure leaves nothing behind; and the
incremental path's :class:`ConcurrentChange` when someone else registers the same customer mid-import."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from customer import events as ev
from customer.domain.demo import DemoGenerator, write_csv
from customer.domain.legacy import CHINESE_HEADERS, ArchiveValidator, validate_records
from customer.service_layer import importer
from customer.service_layer.importer import ArchiveNotEmpty, ConcurrentChange, import_archive
from customer.settings import Settings
from utilis_shared import devstack
from utilis_shared.db import create_engine
from utilis_shared.events import Event
from utilis_shared.pii import PiiCipher, mask_id_number

H = CHINESE_HEADERS
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

# Every index and constraint of the database, as the catalog prints them.
_SCHEMA = """
SELECT 'index ' || indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || '.' || conname || ': ' || pg_get_constraintdef(oid)
       || CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
ORDER BY 1
"""

_COUNTS = {
    "customers": "SELECT count(*) FROM customers",
    "contacts": "SELECT count(*) FROM customer_contacts",
    "tags": "SELECT count(*) FROM customer_tags",
    "premises": "SELECT count(*) FROM premises",
    "accounts": "SELECT count(*) FROM accounts",
    "meters": "SELECT count(*) FROM meters",
    "outbox": "SELECT count(*) FROM outbox_messages",
    "registered": "SELECT count(*) FROM outbox_messages WHERE event_type = 'customer.customer.registered'",
    "opened": "SELECT count(*) FROM outbox_messages WHERE event_type = 'customer.account.opened'",
    "duplicate_flags": "SELECT count(*) FROM duplicate_flags",
}

_SUMMARY_COUNTS = (
    "rows_read", "rows_valid", "rows_rejected", "customers_created", "customers_reused", "contacts_created",
    "premises_created", "premises_reused", "accounts_created", "accounts_already_present",
    "accounts_conflicting", "meters_created", "meters_skipped", "events_written", "duplicates_flagged",
)  # fmt: skip


@pytest.fixture
async def fresh(settings: Settings) -> AsyncIterator[tuple[AsyncEngine, Settings]]:
    """An engine on a database of its own, freshly migrated (the archive tables empty)."""
    name = f"customer_il_{uuid.uuid4().hex[:10]}"
    async with devstack.throwaway_database(name, MIGRATIONS) as url:
        own = settings.model_copy(update={"database_url": url})
        engine = create_engine(own, pool_size=3, max_overflow=0)
        try:
            yield engine, own
        finally:
            await engine.dispose()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    # Dirty rows (rejected), probable duplicates (flags), several accounts per holder and per dwelling.
    rows = list(DemoGenerator(5151, dirty_share=0.03, duplicate_share=0.03).rows(700))
    path = tmp_path_factory.mktemp("initial") / "archive.csv"
    write_csv(rows, path)
    return path, rows


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as c:
        return {name: (await c.execute(text(sql))).scalar_one() for name, sql in _COUNTS.items()}


async def _flagged(engine: AsyncEngine) -> set[frozenset[str]]:
    """The probable-duplicate pairs, by customer number (the same in two imports of one archive)."""
    sql = (
        "SELECT a.customer_no, b.customer_no FROM duplicate_flags f "
        "JOIN customers a ON a.id = f.customer_id JOIN customers b ON b.id = f.duplicate_of_id"
    )
    async with engine.connect() as c:
        return {frozenset(pair) for pair in (await c.execute(text(sql))).all()}


async def _schema(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as c:
        return list((await c.execute(text(_SCHEMA))).scalars())


async def _import(engine: AsyncEngine, settings: Settings, cipher: PiiCipher, path: Path, **kw: Any):
    return await import_archive(
        engine, settings, cipher, path, actor="test:import", reject_report_path=path.with_suffix(".rej.csv"),
        batch_size=100, progress=False, **kw,
    )  # fmt: skip


async def test_initial_load_writes_what_the_incremental_path_writes(
    fresh, settings: Settings, cipher: PiiCipher, archive
) -> None:
    engine, own = fresh
    path, rows = archive
    schema = await _schema(engine)
    expected = validate_records(rows)

    bulk = await _import(engine, own, cipher, path)  # the archive is empty: an initial load

    assert bulk.initial_load
    assert await _schema(engine) == schema  # every index and constraint is back, validated
    assert bulk.accounts_created == len(expected.valid) and bulk.duplicates_flagged > 0
    loaded = await _counts(engine)
    flagged = await _flagged(engine)  # found in memory (an initial load), not by the query

    # The same archive through the incremental path, into another empty database: the same rows.
    async with devstack.throwaway_database(f"customer_il_{uuid.uuid4().hex[:10]}", MIGRATIONS) as url:
        other_settings = settings.model_copy(update={"database_url": url})
        other = create_engine(other_settings, pool_size=3, max_overflow=0)
        try:
            incremental = await _import(other, other_settings, cipher, path, initial_load=False)
            assert not incremental.initial_load
            assert await _counts(other) == loaded
            assert await _flagged(other) == flagged and len(flagged) == bulk.duplicates_flagged
        finally:
            await other.dispose()
    assert {k: getattr(bulk, k) for k in _SUMMARY_COUNTS} == {
        k: getattr(incremental, k) for k in _SUMMARY_COUNTS
    }

    # Searchable by the trigram indexes and the blind indexes, PII encrypted at rest, events in place.
    row = expected.valid[0]
    async with engine.connect() as c:
        await c.execute(text("SET enable_seqscan = off"))  # answer from the indexes
        by_name = await c.execute(
            text("SELECT count(*) FROM customers WHERE name LIKE :q"), {"q": f"%{row.name}%"}
        )
        assert by_name.scalar_one() >= 1
        by_address = await c.execute(
            text("SELECT count(*) FROM premises WHERE address LIKE :q"), {"q": f"%{row.community}%"}
        )
        assert by_address.scalar_one() >= 1
        customer = (
            await c.execute(
                text("SELECT id, id_number_enc, id_number_masked FROM customers WHERE id_number_bidx = :b"),
                {"b": cipher.blind_index(row.id_number, field="id_number")},
            )
        ).one()
        payload = (
            await c.execute(text("SELECT payload FROM outbox_messages WHERE key = :k"), {"k": row.account_no})
        ).scalar_one()
    assert cipher.decrypt(customer.id_number_enc, field="id_number") == row.id_number
    assert customer.id_number_masked == mask_id_number(row.id_number)
    opened = ev.AccountOpened.model_validate(Event.from_bytes(payload).data)
    assert opened.customer_id == customer.id and opened.account_no == row.account_no
    if row.phones:
        assert opened.contacts and opened.contacts[0].phone_enc
        assert cipher.decrypt(opened.contacts[0].phone_enc, field="phone") == row.phones[0]


async def test_a_rerun_after_an_initial_load_duplicates_nothing(fresh, cipher: PiiCipher, archive) -> None:
    engine, own = fresh
    path, _ = archive
    first = await _import(engine, own, cipher, path)
    before = await _counts(engine)

    again = await _import(engine, own, cipher, path)

    assert first.initial_load and not again.initial_load  # the archive is no longer empty
    assert again.accounts_created == again.customers_created == again.events_written == 0
    assert again.accounts_already_present == first.accounts_created
    assert await _counts(engine) == before
    with pytest.raises(ArchiveNotEmpty):
        await _import(engine, own, cipher, path, initial_load=True)
    assert await _counts(engine) == before


async def test_a_failed_initial_load_leaves_nothing_and_the_schema_intact(
    fresh, cipher: PiiCipher, archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, own = fresh
    path, _ = archive
    schema = await _schema(engine)
    copy = importer._Loader._copy_batch
    written: list[int] = []

    async def fail_on_third(self, batch):
        if len(written) == 2:
            raise RuntimeError("the disk is full")
        written.append(len(batch.accounts))
        await copy(self, batch)

    monkeypatch.setattr(importer._Loader, "_copy_batch", fail_on_third)
    with pytest.raises(RuntimeError, match="the disk is full"):
        await _import(engine, own, cipher, path)
    assert written == [100, 100]  # two batches had been written, in the transaction
    assert set((await _counts(engine)).values()) == {0}
    assert await _schema(engine) == schema

    monkeypatch.setattr(importer._Loader, "_copy_batch", copy)
    again = await _import(engine, own, cipher, path)  # still empty: an initial load again
    assert again.initial_load and again.accounts_created == again.rows_valid


async def test_a_customer_registered_mid_import_stops_the_import_and_a_rerun_resumes(
    fresh, cipher: PiiCipher, archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The incremental path's race: the batch staged a new customer, someone else registered the same
    person (same ID number) before the batch's insert. Nothing of that batch is written, the import stops
    with ConcurrentChange, and a re-run adopts the other customer instead of creating a second one."""
    engine, own = fresh
    path, _ = archive
    write_batch = importer._Loader.write_batch
    raced: list[str] = []

    async def race(self, batch):
        if self.summary.accounts_created >= 200 and not raced:
            staged = batch.customers[0]  # (id, customer_no, kind, name, id_type, enc, bidx, masked)
            async with engine.begin() as c:
                await c.execute(
                    text(
                        "INSERT INTO customers (id, customer_no, kind, name, id_type, id_number_enc, "
                        "id_number_bidx, id_number_masked, status, source, version) VALUES (:id, "
                        "'X000000001', :kind, :name, :id_type, :enc, :bidx, :masked, 'active', 'api', 1)"
                    ),
                    {"id": uuid.uuid4(), "kind": staged[2], "name": staged[3], "id_type": staged[4],
                     "enc": staged[5], "bidx": staged[6], "masked": staged[7]},
                )  # fmt: skip
            raced.append(staged[6])
        await write_batch(self, batch)

    monkeypatch.setattr(importer._Loader, "write_batch", race)
    with pytest.raises(ConcurrentChange):
        await _import(engine, own, cipher, path, initial_load=False)
    stopped = await _counts(engine)
    assert stopped["accounts"] >= 200 and stopped["accounts"] % 100 == 0  # whole batches only

    monkeypatch.setattr(importer._Loader, "write_batch", write_batch)
    again = await _import(engine, own, cipher, path)
    assert not again.initial_load
    assert again.accounts_already_present == stopped["accounts"]
    assert again.accounts_created + stopped["accounts"] == again.rows_valid
    async with engine.connect() as c:
        holders = (
            await c.execute(
                text("SELECT count(*), min(customer_no) FROM customers WHERE id_number_bidx = :b"),
                {"b": raced[0]},
            )
        ).one()
        registered_once = (
            await c.execute(
                text(
                    "SELECT count(*) FROM outbox_messages o JOIN customers c ON o.key = c.id::text "
                    "WHERE o.event_type = 'customer.customer.registered' AND c.id_number_bidx = :b"
                ),
                {"b": raced[0]},
            )
        ).scalar_one()
    assert tuple(holders) == (1, "X000000001")  # the other writer's customer, adopted, not duplicated
    assert registered_once == 0  # registered by the other writer (its own event is its business)
    final = await _counts(engine)
    assert final["accounts"] == again.rows_valid
    assert final["opened"] == final["accounts"]


async def test_a_failure_in_the_validating_process_fails_the_import(
    fresh, cipher: PiiCipher, archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation runs in a child process (forked: it sees this patch); its error is the import's."""
    engine, own = fresh
    path, _ = archive
    validate = ArchiveValidator.validate

    def broken(self, values, row_no):
        if row_no == 450:
            raise ValueError("cell 7 is unreadable")
        return validate(self, values, row_no)

    monkeypatch.setattr(ArchiveValidator, "validate", broken)
    with pytest.raises(ValueError, match="cell 7 is unreadable"):
        await _import(engine, own, cipher, path)
    assert set((await _counts(engine)).values()) == {0}  # the initial load rolled back
