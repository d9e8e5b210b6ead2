"""An initial load, column by column: an empty archive validated, resolved and written in bulk.

When :func:`customer.service_layer.importer.import_archive` finds the archive empty, it locks and
strips the archive tables (:class:`~customer.service_layer.importer._InitialLoad`) and hands the file to
:func:`load`, which

1. reads the whole archive into a frame and validates it column by column
   (:mod:`customer.domain.legacy_columnar`; the rows the columns cannot decide go through the
   row-by-row validator, which writes their report lines);
2. resolves what the incremental loader resolves row by row, as a handful of frame operations: one
   customer per ID number (the first row's name, kind and tags), one premise per address key (the
   first row's address; the area and property certificate of the first row that has them), contacts per
   customer and phone (the first one primary), an account per row, a meter per row with a serial;
3. computes per distinct value what needs Python: blind indexes, masked forms, AES-GCM ciphertexts
   (a nonce each), UUIDv7 ids;
4. builds the events' JSON column-wise (``customer.customer.registered`` per customer, then
   ``customer.account.opened`` per account, each carrying every contact of its holder), the very bytes
   :meth:`utilis_shared.events.EventCatalog.outbox_record` builds one at a time (a test compares);
5. COPYs each table as soon as it is built (CSV; the outbox in the binary format, its payloads being
   bytea), then lets the caller build that table's indexes, while the next table is being built in a
   worker thread; returns the counts and the probable-duplicate pairs.

The caller re-creates the foreign keys, raises the duplicate flags, audits and commits: all or nothing.

The price is memory: the frames hold the whole archive, and the built tables wait for their COPY. In the
benchmark, 100,000 rows (19 MB of CSV) peak at about 1.1 GB resident, and that grows with the archive:
a million-row archive wants a machine with some 12 GB free, or an initial load of a first part and
incremental imports of the rest (they stream, in bounded memory).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import struct
import uuid
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import polars as pl
from pydantic_core import to_json
from uuid_utils import uuid7

from customer import events as ev
from customer.domain.legacy import ArchiveValidator
from customer.domain.legacy_columnar import FrameValidation, cells_frame, cells_from_table, validate_frame
from utilis_shared.pii import PiiCipher, mask_id_number, mask_phone

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

CUSTOMER_NUMBERS = "SELECT nextval('customer_no_seq') FROM generate_series(1, $1)"

col = pl.col


@dataclass(slots=True)
class LoadedCounts:
    customers: int
    contacts: int
    premises: int
    accounts: int
    meters: int
    events: int


def _ids(n: int) -> pl.Series:
    """``n`` new UUIDv7s (as text: the frames and the CSV carry text)."""
    return pl.Series([str(uuid7()) for _ in range(n)], dtype=pl.String)


def _per_distinct(series: pl.Series, fn: Callable[[str], str]) -> pl.Series:
    """``fn`` of every value, computed once per distinct value."""
    distinct = series.unique().drop_nulls().to_list()
    return series.replace_strict(dict(zip(distinct, map(fn, distinct), strict=True)), return_dtype=pl.String)


def read_table(path: Path) -> tuple[list[Any], pl.DataFrame] | None:
    """The archive's header cells and its rows after the header as polars reads them (string columns,
    ``row_no``), when that is exactly what the row-by-row reader
    (:func:`~customer.service_layer.importer.read_rows`) reads: a CSV file without quote characters and
    without lone carriage returns, in UTF-8 or GB18030 (made UTF-8 first). Otherwise ``None``: such a
    file is read row by row (a few µs more per row)."""
    if path.suffix.lower() not in (".csv", ".txt", ""):
        return None
    data = path.read_bytes()
    if b'"' in data or data.count(b"\r") != data.count(b"\r\n"):
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        data = data.decode("gb18030").encode("utf-8")
    table = pl.read_csv(data, has_header=False, infer_schema=False, truncate_ragged_lines=True)
    headers = list(table.row(0)) if table.height else []
    return headers, table.with_row_index("row_no", offset=1).slice(1)  # the header is row 1


def validate(
    path: Path, today: date, read_rows: Callable[[], Iterator[tuple[int, Sequence[Any]]]]
) -> FrameValidation:
    """Step 1: the file read by polars where that reads what the row-by-row reader ``read_rows()`` (the
    header row first) reads, else by it; the validator made here leaves the probable-duplicate rule to
    :func:`~customer.domain.legacy_columnar.note_households`."""
    read = read_table(path)
    if read is None:
        rows = read_rows()
        validator = ArchiveValidator(next(rows)[1], today=today, probable_duplicates=False)
        cells = cells_frame(rows, validator)
    else:
        headers, table = read
        validator = ArchiveValidator(headers, today=today, probable_duplicates=False)
        cells = cells_from_table(table, validator)
    return validate_frame(cells, validator)


async def load(
    pg: Any,
    cipher: PiiCipher,
    validation: FrameValidation,
    *,
    topic: str,
    source: str,
    actor: str,
    written: Callable[[str], Awaitable[None]] | None = None,
    stage: Callable[[str], None] = lambda _: None,
) -> tuple[LoadedCounts, list[tuple[uuid.UUID, uuid.UUID]]]:
    """Steps 2 to 5 on ``pg`` (the initial load's connection, inside its transaction): what was written,
    and the probable-duplicate pairs as ``(newer, older)`` customer ids.

    The tables are built in a worker thread (polars and the hashing release the interpreter often
    enough) and each is COPYed as soon as it is ready, then ``written(table)`` is awaited (the initial
    load builds the table's indexes there), so PostgreSQL works on one table while the next one is being
    built."""
    valid = validation.valid
    n = valid["id_number"].n_unique()
    loop = asyncio.get_running_loop()
    numbers: concurrent.futures.Future[list[int]] = concurrent.futures.Future()  # drawn while premises build
    ready: asyncio.Queue[tuple[str, list[str], bytes, str] | None] = asyncio.Queue()
    outcome: list[tuple[LoadedCounts, list[tuple[uuid.UUID, uuid.UUID]]]] = []

    def build() -> None:
        try:
            tables = _tables(valid, cipher, numbers, topic=topic, source=source, actor=actor, stage=stage)
            while True:
                try:
                    table, frame = next(tables)
                except StopIteration as done:
                    outcome.append(done.value)
                    break
                if table == "outbox_messages":  # binary: PostgreSQL takes the payloads' bytes as they are
                    data, copy_format = _outbox_binary(frame), "binary"
                else:  # CSV: cheap to write, and PostgreSQL parses it fast enough
                    data, copy_format = frame.write_csv(include_header=False).encode(), "csv"
                loop.call_soon_threadsafe(ready.put_nowait, (table, frame.columns, data, copy_format))
        finally:
            loop.call_soon_threadsafe(ready.put_nowait, None)

    building = loop.run_in_executor(None, build)
    try:
        try:
            numbers.set_result(sorted(r[0] for r in await pg.fetch(CUSTOMER_NUMBERS, n)) if n else [])
        except BaseException as exc:
            numbers.set_exception(exc)
            raise
        while (item := await ready.get()) is not None:
            table, columns, data, copy_format = item
            if data:
                await pg.copy_to_table(table, source=io.BytesIO(data), columns=columns, format=copy_format)
            if written is not None:
                await written(table)
    finally:
        await building  # raises what the build raised
    return outcome[0]


def _tables(
    valid: pl.DataFrame,
    cipher: PiiCipher,
    numbers: concurrent.futures.Future[list[int]],
    *,
    topic: str,
    source: str,
    actor: str,
    stage: Callable[[str], None],
) -> Generator[tuple[str, pl.DataFrame], None, tuple[LoadedCounts, list[tuple[uuid.UUID, uuid.UUID]]]]:
    """The rows of each table, in writing order (``numbers``: the customer numbers, drawn meanwhile);
    returns the counts and the probable-duplicate pairs."""
    stage("resolving")
    # Premises: per address key, the first row's address; the first area and certificate given.
    premises = valid.group_by("address_key", maintain_order=True).agg(
        col("district", "community", "building", "unit", "room", "address").first(),
        col("heated_area_m2").drop_nulls().first(),
        col("property_cert_no").filter(col("property_cert_no") != "").first(),
    )
    premises = premises.with_columns(id=_ids(premises.height))
    yield (
        "premises",
        premises.select(
            "id", "district", "community", "building", "unit", "room", "address", "address_key",
            "heated_area_m2", "property_cert_no", version=pl.lit(1),
        ),
    )  # fmt: skip

    # Holders: one customer per ID number, from its first row (ids first: the tables without personal
    # data go to PostgreSQL while the ciphertexts are being computed).
    first = valid.unique("id_number", keep="first", maintain_order=True)
    first = first.with_columns(
        id=_ids(first.height),
        customer_no=pl.Series([f"C{n:09d}" for n in numbers.result()], dtype=pl.String),
    )
    holders = first.select("id_number", customer_id="id", customer_no="customer_no")

    # Accounts and meters: one per row.
    accounts = (
        valid.join(holders, on="id_number", maintain_order="left")
        .join(premises.select("address_key", premise_id="id"), on="address_key", maintain_order="left")
        .with_columns(id=_ids(valid.height), household_size=col("household_size").fill_null(3))
    )
    yield (
        "accounts",
        accounts.select(
            "id", "account_no", "customer_id", "premise_id", "utility", "customer_class", "household_size",
            "opened_on", status=pl.lit("active"), version=pl.lit(1),
        ),
    )  # fmt: skip
    with_meter = accounts["meter_serial"].is_not_null()
    accounts = accounts.with_columns(meter_id=pl.when(with_meter).then(_ids(accounts.height)))
    meters = accounts.filter(with_meter).select(
        id="meter_id", account_id="id", serial_no="meter_serial", kind="meter_kind",
        reading_mode="meter_reading_mode", installed_on="opened_on", multiplier=pl.lit(1),
        initial_reading=pl.lit(0), status=pl.lit("installed"),
    )  # fmt: skip
    yield ("meters", meters)

    # Customers, their tags (the first row's) and their ID numbers: encrypted, blind-indexed, masked.
    id_numbers = first["id_number"].to_list()
    customers = first.with_columns(
        id_number_enc=pl.Series(cipher.encrypt_many(id_numbers, field="id_number"), dtype=pl.String),
        id_number_bidx=pl.Series(
            [cipher.blind_index(n, field="id_number") for n in id_numbers], dtype=pl.String
        ),
        id_number_masked=pl.Series([mask_id_number(n) for n in id_numbers], dtype=pl.String),
    )
    yield (
        "customers",
        customers.select(
            "id", "customer_no", "kind", "name", "id_type", "id_number_enc", "id_number_bidx",
            "id_number_masked", status=pl.lit("active"), source=pl.lit(source), version=pl.lit(1),
        ),
    )  # fmt: skip
    tags = customers.select(customer_id="id", tag="tags").explode("tag").drop_nulls("tag")
    yield ("customer_tags", tags.with_columns(created_by=pl.lit(actor)))

    # Contacts: per holder and phone, in file order, the first one primary.
    phones = (
        valid.select("id_number", phone="phones")
        .explode("phone")
        .drop_nulls("phone")
        .join(holders, on="id_number", maintain_order="left")
        .unique(["customer_id", "phone"], keep="first", maintain_order=True)
    )
    contacts = phones.with_columns(
        id=_ids(phones.height),
        kind=pl.when(col("phone").str.starts_with("1")).then(pl.lit("mobile")).otherwise(pl.lit("landline")),
        phone_enc=pl.Series(cipher.encrypt_many(phones["phone"].to_list(), field="phone"), dtype=pl.String),
        phone_bidx=_per_distinct(phones["phone"], lambda p: cipher.blind_index(p, field="phone")),
        phone_masked=_per_distinct(phones["phone"], mask_phone),
        is_primary=pl.int_range(pl.len()).over("customer_id") == 0,
    )
    yield (
        "customer_contacts",
        contacts.select("id", "customer_id", "kind", "phone_enc", "phone_bidx", "phone_masked", "is_primary"),
    )

    # Events.
    stage("events")
    stamp = to_json(datetime.now(UTC))  # the run's events happen together
    contact_refs = contacts.group_by("customer_id", maintain_order=True).agg(
        contacts=pl.struct(
            "kind", label=pl.lit(None, pl.String), phone_masked="phone_masked", phone_enc="phone_enc",
            is_primary="is_primary",
        )
    )  # fmt: skip
    no_contacts = pl.lit([], dtype=contact_refs.schema["contacts"])
    registered = customers.join(
        contact_refs, left_on="id", right_on="customer_id", how="left", maintain_order="left"
    ).select(
        event_id=_ids(customers.height),
        key="id",
        data=pl.struct(
            customer_id="id", customer_no="customer_no", kind="kind", name="name", id_type="id_type",
            id_number_masked="id_number_masked", contacts=col("contacts").fill_null(no_contacts), tags="tags",
        ).struct.json_encode(),
    )  # fmt: skip
    yield ("outbox_messages", _outbox(registered, ev.CustomerRegistered, topic, stamp))

    premise_refs = premises.select(
        "address_key",
        premise=pl.struct(
            premise_id="id", district="district", community="community", building="building", unit="unit",
            room="room", address="address", heated_area_m2="heated_area_m2",
            latitude=pl.lit(None, pl.String), longitude=pl.lit(None, pl.String),
        ),
    )  # fmt: skip
    meter_ref = pl.struct(
        meter_id="meter_id", serial_no="meter_serial", kind="meter_kind", multiplier=pl.lit("1"),
        reading_mode="meter_reading_mode", installed_on=col("opened_on").dt.to_string("%Y-%m-%d"),
        initial_reading=pl.lit("0"),
    )  # fmt: skip
    opened = (
        accounts.join(premise_refs, on="address_key", maintain_order="left")
        .join(contact_refs, on="customer_id", how="left", maintain_order="left")
        .select(
            event_id=_ids(accounts.height),
            key="account_no",
            data=pl.struct(
                account_no="account_no", customer_id="customer_id", customer_no="customer_no",
                utility="utility", customer_class="customer_class", household_size="household_size",
                opened_on=col("opened_on").dt.to_string("%Y-%m-%d"), premise="premise",
                meters=pl.concat_list(meter_ref).list.filter(pl.element().struct.field("meter_id").is_not_null()),
                contacts=col("contacts").fill_null(no_contacts),
            ).struct.json_encode(),
        )
    )  # fmt: skip
    yield ("outbox_messages", _outbox(opened, ev.AccountOpened, topic, stamp))

    counts = LoadedCounts(
        customers.height, contacts.height, premises.height, accounts.height, meters.height,
        registered.height + opened.height,
    )  # fmt: skip
    return counts, _duplicate_pairs(accounts, premises, contacts)


_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length


def _outbox_binary(frame: pl.DataFrame) -> bytes:
    """The outbox rows (:data:`utilis_shared.events.OUTBOX_RECORD_COLUMNS`, one event type and topic) in
    PostgreSQL's binary COPY format: each field its length and its bytes (a uuid's 16, a jsonb's version
    byte and its text). Several times cheaper for PostgreSQL than text, for this process than encoding
    records one field at a time."""
    if not frame.height:
        return b""
    length = struct.Struct(">I").pack
    topic, event_type = frame["topic"][0].encode(), frame["event_type"][0].encode()
    constant_topic = length(len(topic)) + topic
    constant_type = length(len(event_type)) + event_type
    fields = frame.select(
        col("id").str.replace_all("-", "", literal=True).str.decode("hex"),
        col("key", "payload", "headers").cast(pl.Binary),
    )
    head = b"\x00\x06\x00\x00\x00\x10"  # six fields; the first, a uuid, 16 bytes
    rows = [_BINARY_HEADER]
    for event_id, k, p, h in zip(*(fields[c].to_list() for c in fields.columns), strict=True):
        rows.append(
            b"".join((
                head, event_id, constant_topic, length(len(k)), k, constant_type, length(len(p)), p,
                length(len(h) + 1), b"\x01", h,
            ))
        )  # fmt: skip
    rows.append(b"\xff\xff")
    return b"".join(rows)


def _outbox(events: pl.DataFrame, model: Any, topic: str, stamp: bytes) -> pl.DataFrame:
    """The outbox rows of ``events`` (``event_id``, ``key`` the subject, ``data`` the payload's JSON), the
    payload as text (it is written as its UTF-8 bytes)."""
    parts = ev.catalog.outbox_parts(model, stamp)
    # The subject goes in quotes as it is: account numbers ([0-9A-Z]) and uuids need no JSON escaping.
    payload = pl.concat_str(
        pl.lit('{"id":"'), col("event_id"), pl.lit(parts.middle.decode()), pl.lit('"'), col("key"),
        pl.lit('"'), pl.lit(parts.tail.decode()), col("data"), pl.lit("}"),
    )  # fmt: skip
    return events.select(
        id="event_id",
        topic=pl.lit(topic),
        key="key",
        event_type=pl.lit(parts.event_type),
        payload=payload,
        headers=pl.concat_str(pl.lit(parts.headers_head), col("event_id"), pl.lit(parts.headers_tail)),
    )


def _duplicate_pairs(
    accounts: pl.DataFrame, premises: pl.DataFrame, contacts: pl.DataFrame
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """The probable-duplicate rule of the incremental path's query, over what this load writes: pairs of
    customers sharing a contact phone (blind index) and the property certificate of a premise where either
    has an account, as (newer, older) by id (PostgreSQL orders uuids as their text does)."""
    holdings = (
        accounts.select("customer_id", "premise_id")
        .unique()
        .join(
            premises.filter(col("property_cert_no").is_not_null()).select(
                premise_id="id", cert="property_cert_no"
            ),
            on="premise_id",
        )
        .join(contacts.select("customer_id", "phone_bidx"), on="customer_id")
    )
    groups = (
        holdings.group_by("phone_bidx", "cert")
        .agg(col("customer_id").unique().sort())
        .filter(col("customer_id").list.len() > 1)
    )
    pairs: set[tuple[str, str]] = set()
    for members in groups["customer_id"].to_list():
        for i, older in enumerate(members):
            pairs.update((newer, older) for newer in members[i + 1 :])
    return [(uuid.UUID(a), uuid.UUID(b)) for a, b in sorted(pairs)]
