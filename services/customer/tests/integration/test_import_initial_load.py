"""The archive import's initial load (an empty archive loaded in one transaction, indexes and foreign keys
built at the end) against the real PostgreSQL, each test on its own freshly migrated database: it writes
what the incremental path writes, leaves every index and constraint as the migrations made them, the rows
are searchable afterwards, a re-run duplicates nothing, a failure leaves nothing behind; and the
incremental path's :class:`ConcurrentChange` when someone else registers the same customer mid-import."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_core import to_json
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from customer import events as ev
from customer.domain.demo import DemoGenerator, write_csv, write_xlsx
from customer.domain.legacy import CHINESE_HEADERS, ArchiveValidator, validate_records
from customer.service_layer import importer, initial_load
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
    # Dwellings whose first row (gas) gives neither the heated area nor the certificate: the premise takes
    # them from its later heating row.
    address = [H[f] for f in ("district", "community", "building", "unit", "room")]
    with_gas = {tuple(r[h] for h in address) for r in rows if r[H["utility"]] == "燃气"}
    heating = [
        i for i, r in enumerate(rows)
        if r[H["utility"]] == "供热" and r[H["heated_area_m2"]]
        and tuple(r[h] for h in address) not in with_gas
    ]  # fmt: skip
    for n, i in enumerate(reversed(heating[10:40:3])):
        gas = {**rows[i], H["account_no"]: f"99{n:08d}", H["utility"]: "燃气", H["heated_area_m2"]: "",
               H["property_cert_no"]: "", H["meter_serial"]: "", H["meter_kind"]: ""}  # fmt: skip
        rows.insert(i, gas)
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


# Every row of the archive tables by its natural keys (ids differ between two imports; ciphertexts too,
# so they are decrypted).
_CONTENT = {
    "customers": "SELECT customer_no, kind, name, id_type, id_number_enc, id_number_bidx, id_number_masked, "
    "status, source, version FROM customers",
    "contacts": "SELECT c.customer_no, ct.kind, ct.label, ct.phone_enc, ct.phone_bidx, ct.phone_masked, "
    "ct.is_primary FROM customer_contacts ct JOIN customers c ON c.id = ct.customer_id",
    "tags": "SELECT c.customer_no, t.tag, t.created_by FROM customer_tags t "
    "JOIN customers c ON c.id = t.customer_id",
    "premises": "SELECT address_key, district, community, building, unit, room, address, heated_area_m2, "
    "property_cert_no, latitude, longitude, version FROM premises",
    "accounts": "SELECT a.account_no, c.customer_no, p.address_key, a.utility, a.customer_class, "
    "a.household_size, a.status, a.opened_on, a.version FROM accounts a JOIN customers c ON c.id = "
    "a.customer_id JOIN premises p ON p.id = a.premise_id",
    "meters": "SELECT a.account_no, m.serial_no, m.kind, m.multiplier, m.reading_mode, m.installed_on, "
    "m.initial_reading, m.status FROM meters m JOIN accounts a ON a.id = m.account_id",
}


async def _content(engine: AsyncEngine, cipher: PiiCipher) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as c:
        for name, sql in _CONTENT.items():
            rows = [tuple(r) for r in (await c.execute(text(sql))).all()]
            if name == "customers":
                rows = [(*r[:4], cipher.decrypt(r[4], field="id_number"), *r[5:]) for r in rows]
            if name == "contacts":
                rows = [(*r[:3], cipher.decrypt(r[3], field="phone"), *r[4:]) for r in rows]
            out[name] = sorted(rows, key=repr)
        numbers = dict((await c.execute(text("SELECT id::text, customer_no FROM customers"))).all())
        keys = dict((await c.execute(text("SELECT id::text, address_key FROM premises"))).all())
        messages = (
            await c.execute(text("SELECT key, event_type, payload, headers FROM outbox_messages"))
        ).all()
    events = []
    for key, event_type, payload, headers in messages:
        event = Event.from_bytes(payload)
        model = ev.catalog.types[event.type]
        data = model.model_validate(event.data).model_dump(mode="json")
        # The payload is exactly what pydantic writes for this event (but for the id and the time).
        same = ev.catalog.outbox_record(model, event.subject, data, "t", to_json(event.time))
        assert Event.from_bytes(same[4]).model_copy(update={"id": event.id}).to_bytes() == payload
        assert headers == event.kafka_headers_dict()
        data.pop("customer_id", None)
        for contact in data.get("contacts", []):
            contact["phone_enc"] = cipher.decrypt(contact["phone_enc"], field="phone")
        if "premise" in data:
            data["premise"]["premise_id"] = keys[data["premise"]["premise_id"]]
        for meter in data.get("meters", []):
            meter.pop("meter_id")
        subject = numbers.get(key, key)
        events.append((event_type, subject, event.subject == key, json.dumps(data, sort_keys=True)))
    out["events"] = sorted(events)
    return out


async def _schema(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as c:
        return list((await c.execute(text(_SCHEMA))).scalars())


async def _import(engine: AsyncEngine, settings: Settings, cipher: PiiCipher, path: Path, **kw: Any):
    kw.setdefault("batch_size", 100)
    return await import_archive(
        engine, settings, cipher, path, actor="test:import", reject_report_path=path.with_suffix(".rej.csv"),
        progress=False, **kw,
    )  # fmt: skip


async def test_initial_load_writes_what_the_incremental_path_writes(
    fresh, settings: Settings, cipher: PiiCipher, archive
) -> None:
    """The initial load (column by column) and the incremental path (row by row, one batch: so each event
    carries every contact of its holder, as the initial load's do) write the same rows and events, report
    the same lines and count the same."""
    engine, own = fresh
    path, rows = archive
    schema = await _schema(engine)
    expected = validate_records(rows)

    bulk = await _import(engine, own, cipher, path)  # the archive is empty: an initial load

    assert bulk.initial_load
    assert await _schema(engine) == schema  # every index and constraint is back, validated
    assert bulk.accounts_created == len(expected.valid) and bulk.duplicates_flagged > 0
    loaded = await _counts(engine)
    content = await _content(engine, cipher)
    flagged = await _flagged(engine)  # found in memory (an initial load), not by the query
    report = path.with_suffix(".rej.csv").read_text(encoding="utf-8-sig")

    # The same archive through the incremental path, into another empty database: the same rows.
    async with devstack.throwaway_database(f"customer_il_{uuid.uuid4().hex[:10]}", MIGRATIONS) as url:
        other_settings = settings.model_copy(update={"database_url": url})
        other = create_engine(other_settings, pool_size=3, max_overflow=0)
        try:
            incremental = await _import(
                other, other_settings, cipher, path, initial_load=False, batch_size=5000
            )
            assert not incremental.initial_load
            assert await _counts(other) == loaded
            assert await _content(other, cipher) == content
            assert await _flagged(other) == flagged and len(flagged) == bulk.duplicates_flagged
        finally:
            await other.dispose()
    assert path.with_suffix(".rej.csv").read_text(encoding="utf-8-sig") == report
    assert {k: getattr(bulk, k) for k in _SUMMARY_COUNTS} == {
        k: getattr(incremental, k) for k in _SUMMARY_COUNTS
    }
    assert bulk.completeness == incremental.completeness
    assert bulk.probable_duplicates_in_file == incremental.probable_duplicates_in_file > 0

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
    rebuild_table = importer._InitialLoad.rebuild_table
    written: list[str] = []

    async def record(self, table):
        written.append(table)
        await rebuild_table(self, table)

    def full_disk(frame):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(importer._InitialLoad, "rebuild_table", record)
    monkeypatch.setattr(initial_load, "_outbox_binary", full_disk)  # the events go last
    with pytest.raises(RuntimeError, match="the disk is full"):
        await _import(engine, own, cipher, path)
    # Every archive table had been written and its indexes built, in the transaction.
    assert set(written) == set(importer._INITIAL_LOAD_TABLES)
    assert set((await _counts(engine)).values()) == {0}
    assert await _schema(engine) == schema

    monkeypatch.undo()
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
    """The incremental path validates in a child process (forked: it sees this patch); its error is the
    import's. The initial load validates in a thread; its error is the import's too."""
    engine, own = fresh
    path, _ = archive
    validate = ArchiveValidator.validate

    def broken(self, values, row_no):
        if row_no == 450:
            raise ValueError("cell 7 is unreadable")
        return validate(self, values, row_no)

    monkeypatch.setattr(ArchiveValidator, "validate", broken)
    with pytest.raises(ValueError, match="cell 7 is unreadable"):
        await _import(engine, own, cipher, path, initial_load=False)
    assert (await _counts(engine))["accounts"] < 450  # stopped at the failing row's batch
    monkeypatch.undo()

    async with devstack.throwaway_database(f"customer_il_{uuid.uuid4().hex[:10]}", MIGRATIONS) as url:
        other_settings = own.model_copy(update={"database_url": url})
        other = create_engine(other_settings, pool_size=3, max_overflow=0)
        try:

            def unreadable(cells, validator):
                raise ValueError("column 7 is unreadable")

            monkeypatch.setattr(initial_load, "validate_frame", unreadable)
            with pytest.raises(ValueError, match="column 7 is unreadable"):
                await _import(other, other_settings, cipher, path)
            assert set((await _counts(other)).values()) == {0}  # the initial load rolled back
        finally:
            await other.dispose()


async def test_an_xlsx_archive_loads_as_its_csv_does(
    fresh, settings: Settings, cipher: PiiCipher, archive
) -> None:
    """XLSX cells arrive typed (numbers, dates) and are read row by row, then validated column by column
    like a CSV's."""
    engine, own = fresh
    path, rows = archive
    xlsx = path.with_name("archive.xlsx")
    write_xlsx(rows, xlsx)

    from_xlsx = await _import(engine, own, cipher, xlsx)

    assert from_xlsx.initial_load and from_xlsx.accounts_created == len(validate_records(rows).valid)
    async with devstack.throwaway_database(f"customer_il_{uuid.uuid4().hex[:10]}", MIGRATIONS) as url:
        other_settings = settings.model_copy(update={"database_url": url})
        other = create_engine(other_settings, pool_size=3, max_overflow=0)
        try:
            from_csv = await _import(other, other_settings, cipher, path)
            assert await _content(other, cipher) == await _content(engine, cipher)
        finally:
            await other.dispose()
    assert {k: getattr(from_xlsx, k) for k in _SUMMARY_COUNTS} == {
        k: getattr(from_csv, k) for k in _SUMMARY_COUNTS
    }
