"""The legacy-archive import against the real PostgreSQL: load, re-run without duplicating anything,
rejects, duplicate flags, outbox events, PII at rest, and the refusals that only the database can tell."""

from __future__ import annotations

import csv
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from customer import events as ev
from customer.domain.demo import DemoGenerator, write_csv, write_xlsx
from customer.domain.identity import resident_id_check_char
from customer.domain.legacy import CHINESE_HEADERS, premise_address, premise_address_key, validate_records
from customer.service_layer import importer
from customer.service_layer.importer import import_archive
from utilis_shared.events import Event
from utilis_shared.pii import PiiCipher, mask_id_number, mask_phone

H = CHINESE_HEADERS
N = 2000


def _renumber(rows: list[dict[str, str]], prefix: str, community_suffix: str) -> list[dict[str, str]]:
    """Give a test's rows their own account numbers and dwellings, apart from the other tests' rows."""
    for r in rows:
        r[H["account_no"]] = prefix + r[H["account_no"]][len(prefix) :]
        r[H["community"]] += community_suffix
    return rows


async def _scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as c:
        return (await c.execute(text(sql), params)).scalar_one()


async def _all(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as c:
        return list((await c.execute(text(sql), params)).all())


async def _snapshot(engine: AsyncEngine, account_nos: list[str]) -> dict[str, int]:
    """Everything the import writes, restricted to what belongs to this archive's accounts."""
    scope = "SELECT customer_id FROM accounts WHERE account_no = ANY(:nos)"
    queries = {
        "accounts": "SELECT count(*) FROM accounts WHERE account_no = ANY(:nos)",
        "customers": f"SELECT count(*) FROM customers WHERE id IN ({scope})",
        "contacts": f"SELECT count(*) FROM customer_contacts WHERE customer_id IN ({scope})",
        "tags": f"SELECT count(*) FROM customer_tags WHERE customer_id IN ({scope})",
        "premises": "SELECT count(DISTINCT premise_id) FROM accounts WHERE account_no = ANY(:nos)",
        "meters": "SELECT count(*) FROM meters m JOIN accounts a ON a.id = m.account_id "
        "WHERE a.account_no = ANY(:nos)",
        "opened_events": "SELECT count(*) FROM outbox_messages "
        "WHERE event_type = 'customer.account.opened' AND key = ANY(:nos)",
        "registered_events": "SELECT count(*) FROM outbox_messages "
        "WHERE event_type = 'customer.customer.registered' "
        f"AND key IN (SELECT customer_id::text FROM ({scope}) s)",
        "duplicate_flags": f"SELECT count(*) FROM duplicate_flags WHERE customer_id IN ({scope})",
    }
    return {name: await _scalar(engine, sql, nos=account_nos) for name, sql in queries.items()}


async def _insert_customer(
    engine: AsyncEngine, cipher: PiiCipher, id_number: str, name: str, phone: str
) -> uuid.UUID:
    customer_id = uuid.uuid4()
    async with engine.begin() as c:
        await c.execute(
            text(
                "INSERT INTO customers (id, customer_no, kind, name, id_type, id_number_enc, id_number_bidx, "
                "id_number_masked, status, source, version) "
                "VALUES (:id, :no, 'person', :name, 'resident_id', :enc, :bidx, :masked, 'active', 'api', 1)"
            ),
            {
                "id": customer_id,
                "no": f"T{customer_id.int % 10**9:09d}",
                "name": name,
                "enc": cipher.encrypt(id_number, field="id_number"),
                "bidx": cipher.blind_index(id_number, field="id_number"),
                "masked": mask_id_number(id_number),
            },
        )
        await c.execute(
            text(
                "INSERT INTO customer_contacts (id, customer_id, kind, phone_enc, phone_bidx, phone_masked, "
                "is_primary) VALUES (:id, :customer_id, 'mobile', :enc, :bidx, :masked, true)"
            ),
            {
                "id": uuid.uuid4(),
                "customer_id": customer_id,
                "enc": cipher.encrypt(phone, field="phone"),
                "bidx": cipher.blind_index(phone, field="phone"),
                "masked": mask_phone(phone),
            },
        )
    return customer_id


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoGenerator, list[dict[str, str]]]:
    generator = DemoGenerator(4242, dirty_share=0.03, duplicate_share=0.02)
    rows = _renumber(list(generator.rows(N)), "80", "")
    path = tmp_path_factory.mktemp("archive") / "archive.csv"
    write_csv(rows, path)
    return path, generator, rows


async def test_import_then_reimport_duplicates_nothing(
    engine: AsyncEngine, settings: Any, cipher: PiiCipher, archive, tmp_path: Path
) -> None:
    path, generator, rows = archive
    expected = validate_records(rows)
    valid_nos = [r.account_no for r in expected.valid]
    in_pairs = {i for pair in generator.duplicate_pairs for i in pair}

    # A holder already registered through the API (other phone): the import must reuse, not duplicate, them.
    known_index = next(
        i for i, r in enumerate(rows)
        if i not in generator.defects and i not in in_pairs and r[H["id_type"]] != "统一社会信用代码"
    )  # fmt: skip
    known = rows[known_index]
    known_id = await _insert_customer(engine, cipher, known[H["id_number"]], known[H["name"]], "13000000000")

    report_path = tmp_path / "rejects.csv"
    first = await import_archive(
        engine, settings, cipher, path, actor="test:import", reject_report_path=report_path, batch_size=300,
        progress=False,
    )  # fmt: skip

    assert (first.rows_read, first.rows_valid, first.rows_rejected) == (
        N,
        len(valid_nos),
        len(generator.defects),
    )
    assert first.accounts_created == len(valid_nos)
    assert (first.accounts_already_present, first.accounts_conflicting) == (0, 0)
    assert first.customers_reused == 1
    assert first.duplicates_flagged == len(generator.duplicate_pairs) > 0
    assert first.completeness is not None and first.completeness.rows == N

    before = await _snapshot(engine, valid_nos)
    assert before["accounts"] == len(valid_nos)
    assert before["customers"] == first.customers_created + 1
    assert before["opened_events"] == len(valid_nos)  # one per account
    assert before["registered_events"] == first.customers_created  # none for the customer that existed
    assert before["duplicate_flags"] >= 1

    # The known holder got the account, kept their contact and gained the archive's phone.
    holder = await _scalar(
        engine, "SELECT customer_id FROM accounts WHERE account_no = :no", no=known[H["account_no"]]
    )
    assert holder == known_id
    phones = await _all(
        engine, "SELECT phone_enc FROM customer_contacts WHERE customer_id = :id", id=known_id
    )
    decrypted = {cipher.decrypt(p[0], field="phone") for p in phones}
    assert decrypted >= {"13000000000", re.split(r"[;；，、]", known[H["phone"]])[0]}

    # Every holder has exactly one primary contact.
    primaries = await _all(
        engine,
        "SELECT a.customer_id FROM accounts a JOIN customer_contacts ct ON ct.customer_id = a.customer_id "
        "WHERE a.account_no = ANY(:nos) GROUP BY a.customer_id "
        "HAVING count(DISTINCT ct.id) FILTER (WHERE ct.is_primary) <> 1",
        nos=valid_nos,
    )
    assert primaries == []

    # Exactly one account.opened per account, decodable, with the premise and holder of the database rows.
    per_key = await _all(
        engine,
        "SELECT key, count(*) FROM outbox_messages WHERE event_type = 'customer.account.opened' "
        "AND key = ANY(:nos) GROUP BY key HAVING count(*) > 1",
        nos=valid_nos,
    )
    assert per_key == []
    sample = expected.valid[5]
    payload, topic, headers = (
        await _all(
            engine,
            "SELECT payload, topic, headers FROM outbox_messages WHERE key = :no",
            no=sample.account_no,
        )
    )[0]
    event = Event.from_bytes(payload)
    opened = ev.AccountOpened.model_validate(event.data)
    assert (event.type, event.subject, topic) == (
        "customer.account.opened",
        sample.account_no,
        settings.topic("customer.events"),
    )
    assert headers["event_type"] == "customer.account.opened" and headers["event_id"] == str(event.id)
    db_account = (
        await _all(
            engine,
            "SELECT c.id, c.customer_no, p.id, p.address, p.address_key FROM accounts a "
            "JOIN customers c ON c.id = a.customer_id JOIN premises p ON p.id = a.premise_id "
            "WHERE a.account_no = :no",
            no=sample.account_no,
        )
    )[0]
    assert (opened.customer_id, opened.customer_no, opened.premise.premise_id) == tuple(db_account[:3])
    assert (
        opened.premise.address
        == db_account[3]
        == premise_address(sample.district, sample.community, sample.building, sample.unit, sample.room)
    )
    assert db_account[4] == premise_address_key(
        sample.district, sample.community, sample.building, sample.unit, sample.room
    )
    assert re.fullmatch(r"C\d{9}", opened.customer_no)

    # Personal data at rest: encrypted, blind-indexed, masked.
    enc, bidx, masked = (
        await _all(
            engine,
            "SELECT id_number_enc, id_number_bidx, id_number_masked FROM customers WHERE id = :id",
            id=opened.customer_id,
        )
    )[0]
    assert cipher.decrypt(enc, field="id_number") == sample.id_number != enc
    assert bidx == cipher.blind_index(sample.id_number, field="id_number")
    assert masked == mask_id_number(sample.id_number)

    # Rejects: one report line per problem, never a whole ID number or phone.
    report_text = report_path.read_text(encoding="utf-8-sig")
    report = list(csv.DictReader(report_text.splitlines()))
    assert {int(r["row_no"]) for r in report if r["severity"] == "error"} == {
        i + 2 for i in generator.defects
    }
    for r in rows:
        assert r[H["id_number"]] not in report_text or not r[H["id_number"]]
        for phone in re.split(r"[;；，、]", r[H["phone"]]):
            assert not phone or phone not in report_text

    # Probable duplicates planted in the archive are flagged, newer record against the older one.
    for original, duplicate in generator.duplicate_pairs:
        a = await _scalar(
            engine,
            "SELECT customer_id FROM accounts WHERE account_no = :no",
            no=rows[original][H["account_no"]],
        )
        b = await _scalar(
            engine,
            "SELECT customer_id FROM accounts WHERE account_no = :no",
            no=rows[duplicate][H["account_no"]],
        )
        flagged = await _all(
            engine,
            "SELECT reason, status FROM duplicate_flags "
            "WHERE customer_id = :newer AND duplicate_of_id = :older",
            newer=max(a, b),
            older=min(a, b),
        )
        assert flagged == [("same_phone_and_property_cert", "open")]

    audit = await _all(
        engine,
        "SELECT actor, changes FROM audit_log "
        "WHERE action = 'customer.archive.imported' AND entity_id = :run",
        run=str(first.run_id),
    )
    assert len(audit) == 1 and audit[0][0] == "test:import"
    assert audit[0][1]["accounts_created"] == first.accounts_created and audit[0][1]["file"] == path.name

    # The same file again: nothing new anywhere.
    second = await import_archive(
        engine, settings, cipher, path, actor="test:import", reject_report_path=tmp_path / "rejects2.csv",
        batch_size=300, progress=False,
    )  # fmt: skip
    assert (second.accounts_created, second.customers_created, second.contacts_created) == (0, 0, 0)
    assert (second.premises_created, second.meters_created, second.events_written) == (0, 0, 0)
    assert second.accounts_already_present == len(valid_nos)
    assert second.duplicates_flagged == 0
    assert second.rows_rejected == first.rows_rejected
    assert await _snapshot(engine, valid_nos) == before


async def test_xlsx_archive(engine: AsyncEngine, settings: Any, cipher: PiiCipher, tmp_path: Path) -> None:
    generator = DemoGenerator(77, dirty_share=0.1, duplicate_share=0.0)
    rows = _renumber(list(generator.rows(60)), "81", "（测试）")
    path = tmp_path / "archive.xlsx"
    write_xlsx(rows, path)
    summary = await import_archive(engine, settings, cipher, path, actor="test:import", progress=False)
    assert summary.rows_read == 60 and summary.rows_rejected == len(generator.defects)
    assert summary.accounts_created == 60 - len(generator.defects)
    assert (tmp_path / "archive.rejects.csv").exists()  # the default report path, beside the archive


async def test_what_only_the_database_can_refuse(
    engine: AsyncEngine, settings: Any, cipher: PiiCipher, tmp_path: Path
) -> None:
    rows = _renumber(list(DemoGenerator(99, dirty_share=0.0, duplicate_share=0.0).rows(3)), "82", "（边界）")
    heating, gas, other = rows
    # The second row: a gas account of the first row's holder at the first row's dwelling.
    for f in (
        "district",
        "community",
        "building",
        "unit",
        "room",
        "name",
        "id_type",
        "id_number",
        "customer_class",
    ):
        gas[H[f]] = heating[H[f]]
    gas.update({H["utility"]: "燃气", H["heated_area_m2"]: "", H["meter_serial"]: "GMTAKEN0001",
                H["meter_kind"]: "燃气表"})  # fmt: skip
    parts = [heating[H[f]] for f in ("district", "community", "building", "unit", "room")]

    # Already in the database: a live heating account at the first dwelling under another number, the gas
    # meter's serial installed on it, and the third row's account number.
    body = f"2301031960{uuid.uuid4().int % 10**7:07d}"
    owner = await _insert_customer(engine, cipher, body + resident_id_check_char(body), "张三", "13100000000")
    premise_id, account_id = uuid.uuid4(), uuid.uuid4()
    async with engine.begin() as c:
        await c.execute(
            text(
                "INSERT INTO premises (id, district, community, building, unit, room, address, address_key, "
                "version) VALUES (:id, 'd', 'c', 'b', 'u', 'r', :address, :key, 1)"
            ),
            {"id": premise_id, "address": premise_address(*parts), "key": premise_address_key(*parts)},
        )
        for no, aid, utility in ((f"82{uuid.uuid4().int % 10**8:08d}", account_id, "heating"),
                                 (other[H["account_no"]], uuid.uuid4(), "electricity")):  # fmt: skip
            await c.execute(
                text(
                    "INSERT INTO accounts (id, account_no, customer_id, premise_id, utility, customer_class, "
                    "household_size, status, opened_on, version) "
                    "VALUES (:id, :no, :owner, :premise, :utility, 'residential', 3, 'active', "
                    "'2001-01-01', 1)"
                ),
                {"id": aid, "no": no, "owner": owner, "premise": premise_id, "utility": utility},
            )
        await c.execute(
            text(
                "INSERT INTO meters (id, account_id, serial_no, kind, multiplier, reading_mode, "
                "installed_on, initial_reading, status) "
                "VALUES (:id, :account, 'GMTAKEN0001', 'heat', 1, 'manual', '2001-01-01', 0, 'installed')"
            ),
            {"id": uuid.uuid4(), "account": account_id},
        )

    path = tmp_path / "edge.csv"
    write_csv(rows, path)
    summary = await import_archive(engine, settings, cipher, path, actor="test:import", progress=False)

    assert summary.accounts_conflicting == 1  # heating at a dwelling that has live heating
    assert summary.accounts_already_present == 1  # the third row's number exists
    assert summary.accounts_created == 1 and summary.premises_reused == 1
    assert (summary.meters_skipped, summary.meters_created) == (1, 0)
    report = (tmp_path / "edge.rejects.csv").read_text(encoding="utf-8-sig").splitlines()
    codes = {(r["account_no"], r["code"], r["severity"]) for r in csv.DictReader(report)}
    assert codes == {
        (heating[H["account_no"]], "premise_has_account", "error"),
        (gas[H["account_no"]], "meter_serial_taken", "warning"),
    }
    refused_events = "SELECT count(*) FROM outbox_messages WHERE key = :no"
    assert await _scalar(engine, refused_events, no=heating[H["account_no"]]) == 0
    payload = await _scalar(
        engine,
        "SELECT payload FROM outbox_messages WHERE event_type = 'customer.account.opened' AND key = :no",
        no=gas[H["account_no"]],
    )
    opened = ev.AccountOpened.model_validate(Event.from_bytes(payload).data)
    assert opened.meters == [] and opened.premise.premise_id == premise_id


async def test_forgotten_customers_and_premises_are_found_again_not_recreated(
    engine: AsyncEngine, settings: Any, cipher: PiiCipher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny caches: the holder and dwelling of the first row are long forgotten when the last row comes.
    monkeypatch.setattr(importer, "CACHE_ENTRIES", 30)  # (only the incremental path trims its caches)
    adopted: list[Any] = []
    adopt = importer._Loader._adopt_existing

    async def spy(self, records, number_by_bidx):
        adopted.extend(records)
        await adopt(self, records, number_by_bidx)

    monkeypatch.setattr(importer._Loader, "_adopt_existing", spy)
    rows = _renumber(
        list(DemoGenerator(123, dirty_share=0.0, duplicate_share=0.0).rows(200)), "83", "（缓存）"
    )
    first = rows[0]
    late = dict(first)
    late.update(
        {H["account_no"]: "8399999999", H["utility"]: "电力", H["heated_area_m2"]: "", H["meter_serial"]: ""}
    )
    path = tmp_path / "late.csv"
    write_csv([*rows, late], path)

    summary = await import_archive(
        engine, settings, cipher, path, actor="test:import", batch_size=10, progress=False,
        initial_load=False,
    )  # fmt: skip

    assert summary.accounts_created == 201
    assert len(adopted) == 1  # the first row's holder, forgotten, was found in the database
    assert (summary.customers_reused, summary.premises_reused) == (0, 0)  # nothing existed before the run
    holders = await _all(
        engine,
        "SELECT customer_id, premise_id FROM accounts WHERE account_no = ANY(:nos) ORDER BY account_no",
        nos=[first[H["account_no"]], "8399999999"],
    )
    assert holders[0] == holders[1]  # the same customer and premise, not new ones
    payload = await _scalar(engine, "SELECT payload FROM outbox_messages WHERE key = '8399999999'")
    opened = ev.AccountOpened.model_validate(Event.from_bytes(payload).data)
    assert opened.customer_id == holders[0][0] and opened.contacts  # contacts reloaded from the database
