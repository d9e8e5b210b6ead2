"""Import a legacy customer archive (CSV or XLSX) into the customer database: validate, load, report.

``import_archive`` streams the file, validates every row (:mod:`customer.domain.legacy`), writes each
rejected row's problems (and each warning) to a reject report, and loads the valid rows in batches, one
transaction per batch, on asyncpg connections taken from the SQLAlchemy engine. Running the same file
twice, or again after a crash half-way, creates nothing twice:

- a row whose account number exists is skipped (a re-run costs one lookup per batch);
- customers are found by the blind index of their ID number (one active customer per identity), else
  created with a ``customer_no`` from ``customer_no_seq``; premises are found by ``address_key``;
  contacts by ``(customer, phone blind index)``; meters by serial among installed meters;
- a batch is written by one statement (``INSERT ... SELECT ... FROM unnest(<arrays>) ON CONFLICT DO
  NOTHING`` for every table) and a binary COPY into the outbox, and the unique indexes have the last word;
- for every customer and account a batch actually creates, a ``customer.customer.registered`` /
  ``customer.account.opened`` event goes into the outbox in the same transaction;
- afterwards the probable-duplicate rule (same phone blind index and same property certificate under
  two active customers) raises ``duplicate_flags`` for the customers this run gave accounts to, and one
  ``customer.archive.imported`` audit row records the run with its counts.

Three stages overlap, so that two cores and PostgreSQL work at the same time: a child process reads and
validates the file and computes each row's blind indexes and masked forms, sending batches through a
pipe; the loader *prepares* a batch (read-only lookups on one connection, then the CPU work: ids,
encryption, the events, built on the assumption that the inserts succeed) while the previous batch is
still being *written* on a second connection. Writes run strictly in batch order, so a batch may refer
to customers and premises an earlier batch is still inserting. When an insert is skipped after all
(someone else wrote the same account or meter in between), the batch's events are corrected before they
are written; when a customer or premise is skipped, the import stops with :class:`ConcurrentChange` and a
re-run resumes where it stopped.

An archive that is empty when the import starts (no customers, no premises) is loaded as an *initial
load* instead (:class:`_InitialLoad`): one transaction that locks the archive tables, drops their indexes
and foreign keys, has :mod:`customer.service_layer.initial_load` validate and build the whole archive
column by column and COPY each table, and re-creates the indexes and foreign keys before committing;
several times cheaper, all or nothing, and the next run is incremental again.

ID numbers and phones are stored encrypted (``PiiCipher``) with blind indexes and masked forms; the reject
report and the summary never show them in full.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import gc
import json
import marshal
import multiprocessing
import pickle
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import asyncpg
from asyncpg.pgproto.pgproto import UUID as _PgUUID
from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncEngine
from uuid_utils import uuid7

from customer import events as ev
from customer.domain.legacy import (
    ArchiveValidator,
    CompletenessReport,
    Problem,
    ValidRow,
)
from customer.domain.legacy_columnar import note_households
from customer.service_layer import initial_load
from utilis_shared.context import current_request_id
from utilis_shared.events import OUTBOX_RECORD_COLUMNS
from utilis_shared.pii import PiiCipher, mask_id_number, mask_phone
from utilis_shared.settings import ServiceSettings
from utilis_shared.timeutil import business_today

DEFAULT_BATCH_SIZE = 2000
CACHE_ENTRIES = 20_000  # customers and premises remembered across batches (memory stays bounded)
DUPLICATE_REASON = "same_phone_and_property_cert"
AUDIT_ACTION = "customer.archive.imported"
REPORT_COLUMNS = ("row_no", "account_no", "severity", "field", "code", "message")


class ArchiveNotEmpty(RuntimeError):
    """An initial load was required (``initial_load=True``) but the archive already holds customers or
    premises (or another session holds them locked)."""


class ConcurrentChange(RuntimeError):
    """A customer or premise this import was creating was created by someone else at the same moment.
    Nothing of the failing batch was written; run the import again to resume."""


def _new_id() -> uuid.UUID:
    """A UUIDv7, like :func:`utilis_shared.ids.new_id`, as asyncpg's ``uuid.UUID`` subclass: three times
    cheaper to make and to print, and an import makes about six per row."""
    return _PgUUID(uuid7().bytes)


# ---------------------------------------------------------------------------------------------------
# Reading


def read_rows(path: str | Path) -> Iterator[tuple[int, Sequence[Any]]]:
    """Yield ``(row number, cells)`` for every row of a CSV or XLSX file, the header row first.

    Row numbers are what a spreadsheet shows (the header is row 1). CSV is read as UTF-8 (with or
    without BOM), falling back to GB18030 (exports from Chinese Windows); XLSX is read from the first
    sheet in openpyxl's streaming mode, cells as values (numbers and dates stay typed).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(p)
    if suffix in (".csv", ".txt", ""):
        return _read_csv(p)
    raise ValueError(f"unsupported archive format {p.suffix!r}: use .csv or .xlsx")


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` if the whole file decodes as UTF-8, else ``gb18030`` (a superset of GBK/GB2312)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as f:
        try:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "gb18030"
    return "utf-8-sig"


def _read_csv(path: Path) -> Iterator[tuple[int, Sequence[Any]]]:
    with path.open(encoding=detect_encoding(path), newline="") as f:
        yield from enumerate(csv.reader(f), start=1)


def _read_xlsx(path: Path) -> Iterator[tuple[int, Sequence[Any]]]:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        yield from enumerate(wb.worksheets[0].iter_rows(values_only=True), start=1)
    finally:
        wb.close()


def _estimate_rows(path: Path) -> int | None:
    """Data rows, for the progress bar (CSV: newlines; XLSX: the sheet's stated dimension)."""
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            from openpyxl import load_workbook

            wb = load_workbook(path, read_only=True)
            try:
                rows = wb.worksheets[0].max_row
            finally:
                wb.close()
            return rows - 1 if rows else None
        count = 0
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                count += chunk.count(b"\n")
        return max(count - 1, 0)
    except Exception:
        return None  # only a progress bar depends on it


# ---------------------------------------------------------------------------------------------------
# Summary


@dataclass
class ImportSummary:
    path: str
    run_id: uuid.UUID = field(default_factory=_new_id)
    dry_run: bool = False
    initial_load: bool = False  # loaded into an empty archive in one transaction (see _InitialLoad)
    rows_read: int = 0
    rows_valid: int = 0
    rows_rejected: int = 0
    rows_with_warnings: int = 0
    unknown_columns: tuple[str, ...] = ()
    probable_duplicates_in_file: int = 0
    customers_created: int = 0
    customers_reused: int = 0
    contacts_created: int = 0
    premises_created: int = 0
    premises_reused: int = 0
    accounts_created: int = 0
    accounts_already_present: int = 0
    accounts_conflicting: int = 0  # the premise already has a live account of that utility
    meters_created: int = 0
    meters_skipped: int = 0  # serial already installed elsewhere
    events_written: int = 0
    duplicates_flagged: int = 0
    completeness: CompletenessReport | None = None
    reject_report_path: str | None = None
    report_lines: int = 0
    elapsed_seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def counts(self) -> dict[str, Any]:
        """The numbers of the run (what the audit row records)."""
        keys = (
            "rows_read", "rows_valid", "rows_rejected", "rows_with_warnings", "probable_duplicates_in_file",
            "customers_created", "customers_reused", "contacts_created", "premises_created",
            "premises_reused", "accounts_created", "accounts_already_present", "accounts_conflicting",
            "meters_created", "meters_skipped", "events_written", "duplicates_flagged",
        )  # fmt: skip
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        out["elapsed_seconds"] = round(self.elapsed_seconds, 3)
        if self.completeness is not None:
            out["fields_over_missing_target"] = list(self.completeness.over_target)
        return out

    def to_lines(self) -> list[str]:
        dry = "  (dry run: validated, nothing loaded)" if self.dry_run else ""
        lines = [
            f"archive:                 {self.path}{dry}",
            f"rows read:               {self.rows_read}",
            f"valid:                   {self.rows_valid}  (with warnings: {self.rows_with_warnings})",
            f"rejected:                {self.rows_rejected}",
            f"probable duplicates:     {self.probable_duplicates_in_file} in the file "
            "(same phone and property certificate, different ID number)",
        ]
        if self.unknown_columns:
            lines.append(f"ignored columns:         {', '.join(self.unknown_columns)}")
        if self.initial_load:
            lines.append("loaded as:               initial load (empty archive; indexes built at the end)")
        if not self.dry_run:
            lines += [
                f"customers:               {self.customers_created} created, {self.customers_reused} reused",
                f"premises:                {self.premises_created} created, {self.premises_reused} reused",
                f"accounts:                {self.accounts_created} created, {self.accounts_already_present} "
                f"already present, {self.accounts_conflicting} refused (premise already has that utility)",
                f"contacts:                {self.contacts_created} created",
                f"meters:                  {self.meters_created} created, {self.meters_skipped} skipped "
                "(serial already installed)",
                f"events (outbox):         {self.events_written}",
                f"duplicate flags raised:  {self.duplicates_flagged}",
            ]
        if self.reject_report_path:
            lines.append(f"reject report:           {self.reject_report_path} ({self.report_lines} lines)")
        lines.append(
            f"elapsed:                 {self.elapsed_seconds:.2f} s ({self.rows_per_second:,.0f} rows/s)"
        )
        if self.completeness is not None:
            lines.append("completeness:")
            lines += ["  " + line for line in self.completeness.to_lines()]
        return lines


# ---------------------------------------------------------------------------------------------------
# Reject report


class _Report:
    """The reject report: one line per problem (errors of rejected rows, warnings of imported rows)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lines = 0
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("w", encoding="utf-8-sig", newline="")
            self._writer = csv.writer(self._file)
            self._writer.writerow(REPORT_COLUMNS)

    def write(self, row_no: int, account_no: str, problems: Sequence[Problem]) -> None:
        self.lines += len(problems)
        if self._file is not None:
            self._writer.writerows(
                (row_no, account_no, p.severity, p.field, p.code, p.message) for p in problems
            )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


# ---------------------------------------------------------------------------------------------------
# SQL

_EXISTING_ACCOUNTS = "SELECT account_no FROM accounts WHERE account_no = ANY($1::text[])"

_FIND_CUSTOMERS = """
SELECT id, customer_no, id_number_bidx FROM customers
WHERE status = 'active' AND id_number_bidx = ANY($1::text[])
"""

_CUSTOMER_NUMBERS = "SELECT nextval('customer_no_seq') FROM generate_series(1, $1)"

_CUSTOMER_CONTACTS = """
SELECT customer_id, kind, label, phone_enc, phone_bidx, phone_masked, is_primary FROM customer_contacts
WHERE customer_id = ANY($1::uuid[]) ORDER BY created_at, id
"""

_FIND_PREMISES = """
SELECT id, district, community, building, unit, room, address, address_key, heated_area_m2,
       latitude, longitude
FROM premises WHERE address_key = ANY($1::text[])
"""

_LIVE_ACCOUNTS_AT = """
SELECT premise_id, utility FROM accounts WHERE premise_id = ANY($1::uuid[]) AND status <> 'closed'
"""

_INSTALLED_SERIALS = "SELECT serial_no FROM meters WHERE status = 'installed' AND serial_no = ANY($1::text[])"

# A batch's rows of every table in one statement (one round trip), each table's columns as arrays. The
# unique indexes have the last word (ON CONFLICT DO NOTHING); a customer or premise skipped that way is
# still referenced by the batch's other rows, so the foreign keys (checked at the end of the statement)
# refuse the whole statement, or the counts tell. Meters go only to the accounts actually inserted.
# ``set_config(..., true)`` is SET LOCAL synchronous_commit = off: the batch's commit does not wait for
# its WAL to reach the disk. A crash may then lose the last batches committed, which is harmless: the
# import is re-runnable and a re-run writes what is missing (and nothing twice).
_WRITE_BATCH = """
WITH customers_in AS (
    INSERT INTO customers (id, customer_no, kind, name, id_type, id_number_enc, id_number_bidx,
                           id_number_masked, status, source, version)
    SELECT u.id, u.customer_no, u.kind, u.name, u.id_type, u.enc, u.bidx, u.masked, 'active', $1, 1
    FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                $10::text[]) AS u(id, customer_no, kind, name, id_type, enc, bidx, masked)
    ON CONFLICT (id_number_bidx) WHERE status = 'active' AND id_number_bidx IS NOT NULL DO NOTHING
    RETURNING 1
), contacts_in AS (
    INSERT INTO customer_contacts (id, customer_id, kind, label, phone_enc, phone_bidx, phone_masked,
                                   is_primary)
    SELECT u.id, u.customer_id, u.kind, NULL, u.enc, u.bidx, u.masked, u.is_primary
    FROM unnest($11::uuid[], $12::uuid[], $13::text[], $14::text[], $15::text[], $16::text[],
                $17::bool[]) AS u(id, customer_id, kind, enc, bidx, masked, is_primary)
    ON CONFLICT (customer_id, phone_bidx) DO NOTHING
    RETURNING 1
), premises_in AS (
    INSERT INTO premises (id, district, community, building, unit, room, address, address_key,
                          heated_area_m2, property_cert_no, version)
    SELECT u.id, u.district, u.community, u.building, u.unit, u.room, u.address, u.address_key, u.area,
           u.cert, 1
    FROM unnest($18::uuid[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[],
                $25::text[], $26::numeric[], $27::text[])
         AS u(id, district, community, building, unit, room, address, address_key, area, cert)
    ON CONFLICT (address_key) DO NOTHING
    RETURNING 1
), tags_in AS (
    INSERT INTO customer_tags (customer_id, tag, created_by)
    SELECT u.customer_id, u.tag, $2 FROM unnest($28::uuid[], $29::text[]) AS u(customer_id, tag)
    ON CONFLICT DO NOTHING
), accounts_in AS (
    -- No conflict target: a taken account number and a second live account of one utility at one
    -- premise (the partial unique index) are both skipped; the loader tells them apart.
    INSERT INTO accounts (id, account_no, customer_id, premise_id, utility, customer_class,
                          household_size, status, opened_on, version)
    SELECT u.id, u.account_no, u.customer_id, u.premise_id, u.utility, u.customer_class,
           u.household_size, 'active', u.opened_on, 1
    FROM unnest($30::uuid[], $31::text[], $32::uuid[], $33::uuid[], $34::text[], $35::text[], $36::int[],
                $37::date[])
         AS u(id, account_no, customer_id, premise_id, utility, customer_class, household_size, opened_on)
    ON CONFLICT DO NOTHING
    RETURNING id
), meters_in AS (
    INSERT INTO meters (id, account_id, serial_no, kind, multiplier, reading_mode, installed_on,
                        initial_reading, status)
    SELECT u.id, u.account_id, u.serial_no, u.kind, 1, u.reading_mode, u.installed_on, 0, 'installed'
    FROM unnest($38::uuid[], $39::uuid[], $40::text[], $41::text[], $42::text[], $43::date[])
         AS u(id, account_id, serial_no, kind, reading_mode, installed_on)
    WHERE u.account_id IN (SELECT id FROM accounts_in)
    ON CONFLICT DO NOTHING
    RETURNING id
)
SELECT (SELECT count(*) FROM customers_in), (SELECT count(*) FROM contacts_in),
       (SELECT count(*) FROM premises_in), ARRAY(SELECT id FROM accounts_in), ARRAY(SELECT id FROM meters_in),
       set_config('synchronous_commit', 'off', true)
"""

# Columns per table, in the order of the batch's records and of the statement's arrays.
_WIDTHS = {"customers": 8, "contacts": 7, "premises": 10, "tags": 2, "accounts": 8, "meters": 6}


def _columns(records: list[tuple[Any, ...]], width: int) -> list[Any]:
    """Records (rows) as columns, for ``unnest``."""
    return list(zip(*records, strict=True)) if records else [()] * width


_OUTBOX_COLUMNS = OUTBOX_RECORD_COLUMNS


# Pairs of active customers sharing a phone (blind index) and a property certificate on the premise of one
# of their accounts, at least one of them given an account by this run, not flagged before in either
# direction. The newer record (UUIDv7 sorts by creation time) is the suspected duplicate of the older one.
_DUPLICATE_CANDIDATES = """
WITH holder AS (
    SELECT DISTINCT ct.customer_id, ct.phone_bidx, p.property_cert_no
    FROM customer_contacts ct
    JOIN customers c ON c.id = ct.customer_id AND c.status = 'active'
    JOIN accounts a ON a.customer_id = ct.customer_id
    JOIN premises p ON p.id = a.premise_id
    WHERE p.property_cert_no IS NOT NULL
), pairs AS (
    SELECT DISTINCT GREATEST(x.customer_id, y.customer_id) AS newer,
                    LEAST(x.customer_id, y.customer_id) AS older
    FROM holder x
    JOIN holder y ON y.phone_bidx = x.phone_bidx AND y.property_cert_no = x.property_cert_no
                 AND y.customer_id <> x.customer_id
    WHERE x.customer_id = ANY($1::uuid[])
)
SELECT newer, older FROM pairs
WHERE NOT EXISTS (
    SELECT 1 FROM duplicate_flags f
    WHERE f.reason = $2
      AND ((f.customer_id = pairs.newer AND f.duplicate_of_id = pairs.older)
        OR (f.customer_id = pairs.older AND f.duplicate_of_id = pairs.newer))
)
"""

_INSERT_FLAGS = """
INSERT INTO duplicate_flags (id, customer_id, duplicate_of_id, reason, status)
SELECT u.id, u.customer_id, u.duplicate_of_id, $4, 'open'
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS u(id, customer_id, duplicate_of_id)
ON CONFLICT DO NOTHING
RETURNING id
"""

_INSERT_AUDIT = """
INSERT INTO audit_log (id, actor, actor_kind, channel, action, entity_type, entity_id, changes, request_id)
VALUES ($1, $2, $3, NULL, $4, 'customer_archive_import', $5, $6::text::jsonb, $7)
"""


# ---------------------------------------------------------------------------------------------------
# Initial load
#
# Loading a whole archive into an empty database costs PostgreSQL several times more when every row
# updates twenty index entries (two of them trigram GIN entries) and checks its foreign keys one by one
# than when the indexes are built once, in bulk, at the end. So an import that finds the archive tables
# empty runs as one transaction that locks them, drops their indexes and foreign keys (their definitions
# read from the catalog first, so the migrations stay the one source of truth), COPYs each table
# straight in (customer.service_layer.initial_load), and creates the very same indexes and constraints
# again before it commits: each table's once it is written, the foreign keys at the end. The unique
# indexes and the foreign keys are validated when they are re-created: a violation fails the run and rolls
# everything back (the resolution of customers, premises and contacts in frames is what keeps them unique,
# as the ON CONFLICT inserts do otherwise).
#
# The price: while it runs, the archive tables are locked (the API's reads of them wait; run it before
# opening the service), and the load is all or nothing: a crash half-way leaves the archive empty, and
# the next run is an initial load again. Once anything is in the archive, imports take the incremental
# path, which is what makes re-runs create nothing twice.

_INITIAL_LOAD_TABLES = ("customers", "customer_contacts", "customer_tags", "premises", "accounts", "meters")

_ARCHIVE_EMPTY = "SELECT NOT EXISTS (SELECT 1 FROM customers) AND NOT EXISTS (SELECT 1 FROM premises)"

_LOCK_ARCHIVE = (
    "LOCK TABLE customers, customer_contacts, customer_tags, premises, accounts, meters, duplicate_flags "
    "IN ACCESS EXCLUSIVE MODE"
)

# What to drop and how to create it again, in dropping order: foreign keys from or to the tables, then
# primary-key and unique constraints, then the other indexes (trigram, partial unique, plain).
_INDEX_DEFINITIONS = """
WITH t AS (SELECT unnest($1::regclass[]) AS rel)
SELECT 1 AS phase, format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname) AS drop_sql,
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
              pg_get_constraintdef(c.oid)) AS create_sql, NULL AS table_name
FROM pg_constraint c
WHERE c.contype = 'f' AND (c.conrelid IN (SELECT rel FROM t) OR c.confrelid IN (SELECT rel FROM t))
UNION ALL
SELECT 2, format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname),
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
              pg_get_constraintdef(c.oid)), c.conrelid::regclass::text
FROM pg_constraint c
WHERE c.contype IN ('p', 'u', 'x') AND c.conrelid IN (SELECT rel FROM t)
UNION ALL
SELECT 3, format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid),
       i.indrelid::regclass::text
FROM pg_index i
WHERE i.indrelid IN (SELECT rel FROM t)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                  WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                    AND c.contype IN ('p', 'u', 'x'))
ORDER BY 1, 2
"""


class _InitialLoad:
    """The one transaction of an initial load, on the write connection, with what it dropped."""

    def __init__(self, pg: Any, transaction: Any, recreate: list[tuple[str | None, str]]) -> None:
        self.pg = pg
        self.transaction = transaction
        self.recreate = recreate  # (table, statement); the table None for the foreign keys

    @classmethod
    async def begin(cls, pg: Any, *, required: bool) -> _InitialLoad | None:
        """Start an initial load if the archive is empty; ``None`` (nothing started) if it is not, or if
        another session holds the tables for more than a few seconds, unless ``required``."""
        if not await pg.fetchval(_ARCHIVE_EMPTY):
            if required:
                raise ArchiveNotEmpty("an initial load needs an empty archive (no customers, no premises)")
            return None
        transaction = pg.transaction()
        await transaction.start()
        try:
            outcome = await cls._lock_and_drop(pg)
        except BaseException:
            await transaction.rollback()
            raise
        if isinstance(outcome, str):
            await transaction.rollback()
            if required:
                raise ArchiveNotEmpty(outcome)
            return None
        return cls(pg, transaction, outcome)

    @staticmethod
    async def _lock_and_drop(pg: Any) -> list[tuple[str | None, str]] | str:
        """The statements that re-create what was dropped, or why nothing was."""
        await pg.execute(
            "SET LOCAL lock_timeout = '5s'; SET LOCAL synchronous_commit = off; "
            "SET LOCAL maintenance_work_mem = '256MB'"
        )
        try:
            await pg.execute(_LOCK_ARCHIVE)
        except asyncpg.LockNotAvailableError:
            return "the archive tables are in use by another session"
        if not await pg.fetchval(_ARCHIVE_EMPTY):  # written between the first look and the lock
            return "an initial load needs an empty archive (no customers, no premises)"
        await pg.execute("SET LOCAL lock_timeout = 0")
        definitions = await pg.fetch(_INDEX_DEFINITIONS, list(_INITIAL_LOAD_TABLES))
        for d in definitions:
            await pg.execute(d["drop_sql"])
        return [(d["table_name"], d["create_sql"]) for d in reversed(definitions)]

    async def rebuild_table(self, table: str) -> None:
        """Create the indexes and unique constraints of ``table`` again, once it holds all its rows (while
        the next table is still being prepared)."""
        mine = [sql for t, sql in self.recreate if t == table]
        self.recreate = [(t, sql) for t, sql in self.recreate if t != table]
        if mine:
            await self.pg.execute(";\n".join(mine))

    async def rebuild(self) -> None:
        """Create what is still dropped again (indexes and unique constraints, then the foreign keys, which
        are validated here in one pass each): one message."""
        if self.recreate:
            await self.pg.execute(";\n".join(sql for _, sql in self.recreate))
            self.recreate = []

    async def commit(self) -> None:
        await self.transaction.commit()

    async def rollback(self) -> None:
        await self.transaction.rollback()


# ---------------------------------------------------------------------------------------------------
# Loading


@dataclass(slots=True)
class _Customer:
    id: uuid.UUID
    customer_no: str
    contacts: list[dict[str, Any]]  # ContactRef, as event JSON
    phone_bidx: set[str]


@dataclass(slots=True)
class _Premise:
    premise_id: uuid.UUID
    data: dict[str, Any]  # PremiseRef, as event JSON


@dataclass(slots=True)
class _Batch:
    """One batch, prepared: the records of each table and the events, built as if every insert will
    succeed."""

    customers: list[tuple[Any, ...]] = field(default_factory=list)
    contacts: list[tuple[Any, ...]] = field(default_factory=list)
    premises: list[tuple[Any, ...]] = field(default_factory=list)
    tags: list[tuple[Any, ...]] = field(default_factory=list)
    accounts: list[tuple[Any, ...]] = field(default_factory=list)
    meters: list[tuple[Any, ...]] = field(default_factory=list)
    registrations: list[tuple[Any, ...]] = field(default_factory=list)  # outbox records
    openings: dict[uuid.UUID, tuple[Any, ...]] = field(default_factory=dict)  # account id -> outbox record
    opening_payloads: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)  # AccountOpened data
    rows: dict[uuid.UUID, tuple[ValidRow, uuid.UUID]] = field(
        default_factory=dict
    )  # account id -> row, holder
    meter_accounts: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # meter id -> account id


class _Loader:
    """Prepares batches on a read connection and writes them, in order, on a write connection. Remembers
    across batches what it resolved (customers by ID number, premises by address key), so each is looked
    up once per run."""

    def __init__(
        self,
        read: Any,
        write: Any,
        settings: ServiceSettings,
        cipher: PiiCipher,
        summary: ImportSummary,
        report: _Report,
        *,
        actor: str,
        source: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        # The caches are trimmed to their newest half, never below what the batches in flight use.
        self.cache_limit = max(CACHE_ENTRIES, 8 * batch_size)
        self.read = read
        self.write = write
        self.cipher = cipher
        self.summary = summary
        self.report = report
        self.actor = actor
        self.source = source
        self.topic = settings.topic("customer.events")
        self.customers: dict[str, _Customer] = {}  # normalised ID number -> customer
        self.premises: dict[str, _Premise] = {}  # address key -> premise
        self.premises_in_db: set[uuid.UUID] = set()  # premises that existed before this run
        self.created: set[uuid.UUID] = set()  # customers and premises created by this run
        self.touched: set[uuid.UUID] = set()  # customers given an account by this run
        self.id_keys: dict[str, tuple[str, str]] = {}  # the batch's ID numbers -> (blind index, masked)
        self.phone_keys: dict[str, tuple[str, str]] = {}  # the batch's phones -> (blind index, masked)

    # -- the pipeline -------------------------------------------------------------------------------

    async def run(self, queue: asyncio.Queue[_Rows | list[ValidRow] | None]) -> None:
        writing: asyncio.Task[None] | None = None
        try:
            while (rows := await queue.get()) is not None:
                batch = await self.prepare(rows)
                if writing is not None:
                    await writing  # batches are written in order
                writing = asyncio.create_task(self.write_batch(batch))
                await asyncio.sleep(0)  # let it send its first statement before preparing the next batch
            if writing is not None:
                await writing
        finally:
            if writing is not None and not writing.done():
                writing.cancel()
                with contextlib.suppress(BaseException):  # its error, if any, is not this one's
                    await writing  # the connection is quiet before anyone else uses it

    # -- prepare (read connection + CPU) ------------------------------------------------------------

    async def prepare(self, given: _Rows | list[ValidRow]) -> _Batch:
        """A batch's records and events. The rows come with their blind indexes and masked forms (from the
        validating process), or without, and then they are computed here."""
        if isinstance(given, _Rows):
            rows = given.rows
            self.id_keys, self.phone_keys = given.id_numbers, given.phones
        else:
            rows = given
            self.id_keys, self.phone_keys = {}, {}
        read = self.read
        s = self.summary
        batch = _Batch()
        present = {r[0] for r in await read.fetch(_EXISTING_ACCOUNTS, [r.account_no for r in rows])}
        if present:
            s.accounts_already_present += sum(1 for r in rows if r.account_no in present)
            rows = [r for r in rows if r.account_no not in present]
        if not rows:
            return batch
        await self._prepare_premises(rows, batch)
        rows = await self._refuse_taken_utilities(rows)
        if not rows:
            return batch
        new_customers = await self._prepare_customers(rows, batch)
        await self._prepare_contacts(rows, batch)
        taken_serials = await self._installed_serials(rows)

        topic = self.topic
        customers = self.customers
        premises = self.premises
        stamp = to_json(datetime.now(UTC))  # the batch's events happen together
        for i, (n, r, masked) in enumerate(new_customers):
            if i & 127 == 127:
                await asyncio.sleep(0)  # let the write task send its next statement
            c = customers[n]
            data = _registered_data(
                c.id, c.customer_no, r.kind, r.name, r.id_type, masked, c.contacts, r.tags
            )
            batch.registrations.append(_event_record(ev.CustomerRegistered, str(c.id), data, topic, stamp))
        for i, r in enumerate(rows):
            if i & 127 == 127:
                await asyncio.sleep(0)
            c = customers[r.id_number]
            p = premises[r.address_key]
            aid = _new_id()
            household_size = r.household_size or 3
            batch.accounts.append(
                (
                    aid,
                    r.account_no,
                    c.id,
                    p.premise_id,
                    r.utility,
                    r.customer_class,
                    household_size,
                    r.opened_on,
                )
            )
            meters: list[dict[str, Any]] = []
            if r.meter_serial:
                if r.meter_serial in taken_serials:
                    self._meter_taken(r)
                else:
                    mid = _new_id()
                    batch.meters.append(
                        (mid, aid, r.meter_serial, r.meter_kind, r.meter_reading_mode, r.opened_on)
                    )
                    batch.meter_accounts[mid] = aid
                    meters.append(
                        _meter_data(mid, r.meter_serial, r.meter_kind, r.meter_reading_mode, r.opened_on)  # type: ignore[arg-type]
                    )
            data = _opened_data(
                r.account_no,
                c.id,
                c.customer_no,
                r.utility,
                r.customer_class,
                household_size,
                r.opened_on,
                p.data,
                meters,
                c.contacts,
            )
            batch.openings[aid] = _event_record(ev.AccountOpened, r.account_no, data, topic, stamp)
            batch.opening_payloads[aid] = data
            batch.rows[aid] = (r, c.id)
        self._trim_caches()
        return batch

    def _trim_caches(self) -> None:
        """Forget the oldest customers and premises once the caches are full: a later row for one of them
        finds it in the database instead. The newest entries (the batches in flight) always stay."""
        keep = self.cache_limit // 2
        if len(self.customers) > self.cache_limit:
            self.customers = dict(islice(self.customers.items(), len(self.customers) - keep, None))
        if len(self.premises) > self.cache_limit:
            self.premises = dict(islice(self.premises.items(), len(self.premises) - keep, None))

    async def _prepare_customers(
        self, rows: list[ValidRow], batch: _Batch
    ) -> list[tuple[str, ValidRow, str]]:
        """Resolve every row's holder: known this run, found in the database, or new (staged). Returns the
        new ones: (ID number, first row, masked ID number)."""
        known = self.customers
        todo: dict[str, ValidRow] = {}
        for r in rows:
            if r.id_number not in known and r.id_number not in todo:
                todo[r.id_number] = r
        if not todo:
            return []
        blind = self.cipher.blind_index
        keys = self.id_keys
        bidx = {n: keys[n][0] if n in keys else blind(n, field="id_number") for n in todo}
        found = await self.read.fetch(_FIND_CUSTOMERS, list(bidx.values()))
        if found:
            await self._adopt_existing(found, {bidx[n]: n for n in todo})
        new = [(n, r) for n, r in todo.items() if n not in known]
        if not new:
            return []
        numbers = sorted(rec[0] for rec in await self.read.fetch(_CUSTOMER_NUMBERS, len(new)))
        encrypt = self.cipher.encrypt
        out = []
        for i, ((n, r), seq) in enumerate(zip(new, numbers, strict=True)):
            if i & 127 == 127:
                await asyncio.sleep(0)  # let the write task send its next statement
            cid = _new_id()
            customer_no = f"C{seq:09d}"
            masked = keys[n][1] if n in keys else mask_id_number(n)
            known[n] = _Customer(cid, customer_no, [], set())
            self.created.add(cid)
            batch.customers.append(
                (cid, customer_no, r.kind, r.name, r.id_type, encrypt(n, field="id_number"), bidx[n], masked)
            )
            batch.tags.extend((cid, tag) for tag in r.tags)
            out.append((n, r, masked))
        return out

    async def _adopt_existing(self, records: Sequence[Any], number_by_bidx: dict[str, str]) -> None:
        contacts: dict[uuid.UUID, list[Any]] = {}
        for rec in await self.read.fetch(_CUSTOMER_CONTACTS, [rec[0] for rec in records]):
            contacts.setdefault(rec[0], []).append(rec)
        for rec in records:
            existing = contacts.get(rec[0], [])
            self.customers[number_by_bidx[rec[2]]] = _Customer(
                rec[0],
                rec[1],
                [_contact_data(c[1], c[2], c[5], c[3], c[6]) for c in existing],
                {c[4] for c in existing},
            )
        self.summary.customers_reused += sum(1 for rec in records if rec[0] not in self.created)

    async def _prepare_contacts(self, rows: list[ValidRow], batch: _Batch) -> None:
        blind = self.cipher.blind_index
        encrypt = self.cipher.encrypt
        customers = self.customers
        keys = self.phone_keys
        for i, r in enumerate(rows):
            if i & 127 == 127:
                await asyncio.sleep(0)  # let the write task send its next statement
            customer = customers[r.id_number]
            for phone in r.phones:
                known = keys.get(phone)
                h = known[0] if known else blind(phone, field="phone")
                if h in customer.phone_bidx:
                    continue
                is_primary = not customer.contacts
                enc = encrypt(phone, field="phone")
                masked = known[1] if known else mask_phone(phone)
                # Validated phones are mobiles (1...) or landlines with an area code (0...).
                kind = "mobile" if phone[0] == "1" else "landline"
                customer.phone_bidx.add(h)
                customer.contacts.append(_contact_data(kind, None, masked, enc, is_primary))
                batch.contacts.append((_new_id(), customer.id, kind, enc, h, masked, is_primary))

    async def _prepare_premises(self, rows: list[ValidRow], batch: _Batch) -> None:
        known = self.premises
        todo: dict[str, list[ValidRow]] = {}
        for r in rows:
            if r.address_key not in known:
                todo.setdefault(r.address_key, []).append(r)
        if not todo:
            return
        for rec in await self.read.fetch(_FIND_PREMISES, list(todo)):
            known[rec[7]] = _premise_ref(rec)
            del todo[rec[7]]
            if rec[0] not in self.created:
                self.premises_in_db.add(rec[0])
                self.summary.premises_reused += 1
        for key, group in todo.items():
            f = group[0]
            # Rows of one dwelling may each carry part of its data (the gas row often lacks the area).
            area = f.heated_area_m2
            if area is None:
                area = next((g.heated_area_m2 for g in group if g.heated_area_m2 is not None), None)
            cert = f.property_cert_no or next((g.property_cert_no for g in group if g.property_cert_no), None)
            pid = _new_id()
            self.created.add(pid)
            batch.premises.append(
                (pid, f.district, f.community, f.building, f.unit, f.room, f.address, key, area, cert)
            )
            known[key] = _Premise(
                pid, _premise_data(pid, f.district, f.community, f.building, f.unit, f.room, f.address, area)
            )

    async def _refuse_taken_utilities(self, rows: list[ValidRow]) -> list[ValidRow]:
        """Rows for a utility that an existing premise already has under another account number."""
        at_existing = {self.premises[r.address_key].premise_id for r in rows} & self.premises_in_db
        if not at_existing:
            return rows
        taken = {(rec[0], rec[1]) for rec in await self.read.fetch(_LIVE_ACCOUNTS_AT, list(at_existing))}
        if not taken:
            return rows
        kept = []
        for r in rows:
            if (self.premises[r.address_key].premise_id, r.utility) in taken:
                self._refused(r)
            else:
                kept.append(r)
        return kept

    async def _installed_serials(self, rows: list[ValidRow]) -> set[str]:
        serials = [r.meter_serial for r in rows if r.meter_serial]
        if not serials:
            return set()
        return {rec[0] for rec in await self.read.fetch(_INSTALLED_SERIALS, serials)}

    def _refused(self, r: ValidRow) -> None:
        self.summary.accounts_conflicting += 1
        message = (
            f"{r.address} already has a live {r.utility} account under another number in the database; "
            "the row was not imported."
        )
        self.report.write(r.row_no, r.account_no, [Problem("utility", "premise_has_account", message)])

    def _meter_taken(self, r: ValidRow) -> None:
        self.summary.meters_skipped += 1
        message = (
            f"Meter {r.meter_serial} is installed on another account; the account is imported without it."
        )
        self.report.write(
            r.row_no, r.account_no, [Problem("meter_serial", "meter_serial_taken", message, "warning")]
        )

    # -- write (write connection, one transaction) --------------------------------------------------

    async def write_batch(self, batch: _Batch) -> None:
        if not batch.accounts:
            return
        pg = self.write
        s = self.summary
        arrays: list[Any] = []
        for name, width in _WIDTHS.items():
            arrays += _columns(getattr(batch, name), width)
        async with pg.transaction():
            try:
                customers, contacts, premises, opened_ids, installed_ids, _ = await pg.fetchrow(
                    _WRITE_BATCH, self.source, self.actor, *arrays
                )
            except asyncpg.ForeignKeyViolationError as exc:  # a customer or premise was skipped
                raise ConcurrentChange(
                    "a customer or premise being imported was created at the same time"
                ) from exc
            if customers != len(batch.customers):
                raise ConcurrentChange("a customer being imported was registered at the same time")
            if premises != len(batch.premises):
                raise ConcurrentChange("a premise being imported was created at the same time")
            opened = set(opened_ids)
            installed = set(installed_ids)
            meters = [m for m in batch.meters if m[1] in opened]
            outbox = list(batch.registrations)
            for aid, record in batch.openings.items():
                if aid in opened:
                    outbox.append(record)
            if len(installed) < len(meters):  # a serial was installed elsewhere in the meantime
                outbox = self._without_missing_meters(batch, meters, installed, outbox)
            await pg.copy_records_to_table("outbox_messages", records=outbox, columns=_OUTBOX_COLUMNS)
        # Committed: count what this batch did.
        s.customers_created += len(batch.customers)
        s.contacts_created += contacts
        s.premises_created += len(batch.premises)
        s.accounts_created += len(opened)
        s.meters_created += len(installed)
        s.events_written += len(outbox)
        for aid in opened:
            self.touched.add(batch.rows[aid][1])
        if len(opened) < len(batch.accounts):
            await self._account_skipped_late(batch, opened)

    def _without_missing_meters(
        self,
        batch: _Batch,
        meters: list[tuple[Any, ...]],
        installed: set[uuid.UUID],
        outbox: list[tuple[Any, ...]],
    ) -> list[tuple[Any, ...]]:
        redo: dict[uuid.UUID, tuple[Any, ...]] = {}
        for m in meters:
            if m[0] in installed:
                continue
            aid = m[1]
            self._meter_taken(batch.rows[aid][0])
            data = {**batch.opening_payloads[aid], "meters": []}
            record = _event_record(ev.AccountOpened, data["account_no"], data, self.topic)
            redo[batch.openings[aid][0]] = record
        return [redo.get(record[0], record) for record in outbox]

    async def _account_skipped_late(self, batch: _Batch, opened: set[uuid.UUID]) -> None:
        """Accounts the insert skipped although the batch's lookups had not seen them: written by someone
        else in between, under this number or for this utility at this premise."""
        skipped = [batch.rows[a[0]][0] for a in batch.accounts if a[0] not in opened]
        present = {
            rec[0] for rec in await self.read.fetch(_EXISTING_ACCOUNTS, [r.account_no for r in skipped])
        }
        for r in skipped:
            if r.account_no in present:
                self.summary.accounts_already_present += 1
            else:
                self._refused(r)

    # -- after the last batch -----------------------------------------------------------------------

    async def flag_duplicates(self) -> int:
        """Raise the probable-duplicate flags for the customers this run gave accounts to, found by
        :data:`_DUPLICATE_CANDIDATES` over the whole archive."""
        if not self.touched:
            return 0
        pg = self.write
        async with pg.transaction():
            pairs = await pg.fetch(_DUPLICATE_CANDIDATES, list(self.touched), DUPLICATE_REASON)
            return await _insert_flags(pg, pairs)


async def _insert_flags(pg: Any, pairs: Sequence[Any]) -> int:
    """The flags of ``pairs`` of (suspected duplicate, original) customer ids; how many were new."""
    if not pairs:
        return 0
    inserted = await pg.fetch(
        _INSERT_FLAGS,
        [_new_id() for _ in pairs],
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        DUPLICATE_REASON,
    )
    return len(inserted)


def _premise_ref(rec: Any) -> _Premise:
    return _Premise(rec[0], _premise_data(*rec[:7], rec[8], rec[9], rec[10]))


# ---------------------------------------------------------------------------------------------------
# Events, the fast way
#
# An import emits about two events per row. Building each through its pydantic model and the catalog
# (``catalog.build(...).to_bytes()``) cost more CPU than everything else the loader does, so the import
# builds the very same JSON from plain dicts, here and nowhere else: keys in the models' field order,
# uuids, dates and decimals as the strings pydantic's JSON mode gives (``str()``, ISO 8601). The dicts are
# serialised by pydantic-core's own ``to_json`` (the serialiser behind ``model_dump_json``: same
# escaping, same datetime format, and three times as fast as the standard library's ``json``).
# ``test_import_events`` builds each event both ways and requires identical bytes, so this cannot drift
# from the schemas.


def _dec(value: Any) -> str | None:
    return None if value is None else str(value)


def _contact_data(kind: str, label: str | None, masked: str, enc: str, is_primary: bool) -> dict[str, Any]:
    """A :class:`customer.events.ContactRef`."""
    return {"kind": kind, "label": label, "phone_masked": masked, "phone_enc": enc, "is_primary": is_primary}


def _premise_data(
    premise_id: uuid.UUID,
    district: str,
    community: str,
    building: str,
    unit: str,
    room: str,
    address: str,
    heated_area_m2: Any,
    latitude: Any = None,
    longitude: Any = None,
) -> dict[str, Any]:
    """A :class:`customer.events.PremiseRef` (the decimals as ``Decimal`` or ``None``)."""
    return {
        "premise_id": str(premise_id),
        "district": district,
        "community": community,
        "building": building,
        "unit": unit,
        "room": room,
        "address": address,
        "heated_area_m2": _dec(heated_area_m2),
        "latitude": _dec(latitude),
        "longitude": _dec(longitude),
    }


def _meter_data(
    meter_id: uuid.UUID, serial_no: str, kind: str, reading_mode: str, installed_on: date
) -> dict[str, Any]:
    """A :class:`customer.events.MeterRef` of a meter the import installs (multiplier 1, reading 0)."""
    return {
        "meter_id": str(meter_id),
        "serial_no": serial_no,
        "kind": kind,
        "multiplier": "1",
        "reading_mode": reading_mode,
        "installed_on": installed_on.isoformat(),
        "initial_reading": "0",
    }


def _registered_data(
    customer_id: uuid.UUID,
    customer_no: str,
    kind: str,
    name: str,
    id_type: str | None,
    id_number_masked: str | None,
    contacts: list[dict[str, Any]],
    tags: Sequence[str],
) -> dict[str, Any]:
    """A :class:`customer.events.CustomerRegistered`."""
    return {
        "customer_id": str(customer_id),
        "customer_no": customer_no,
        "kind": kind,
        "name": name,
        "id_type": id_type,
        "id_number_masked": id_number_masked,
        "contacts": list(contacts),
        "tags": list(tags),
    }


def _opened_data(
    account_no: str,
    customer_id: uuid.UUID,
    customer_no: str,
    utility: str,
    customer_class: str,
    household_size: int,
    opened_on: date,
    premise: dict[str, Any],
    meters: list[dict[str, Any]],
    contacts: list[dict[str, Any]],
) -> dict[str, Any]:
    """A :class:`customer.events.AccountOpened`."""
    return {
        "account_no": account_no,
        "customer_id": str(customer_id),
        "customer_no": customer_no,
        "utility": utility,
        "customer_class": customer_class,
        "household_size": household_size,
        "opened_on": opened_on.isoformat(),
        "premise": premise,
        "meters": meters,
        "contacts": list(contacts),
    }


def _event_record(
    model: Any, subject: str, data: dict[str, Any], topic: str, time_json: bytes | None = None
) -> tuple[Any, ...]:
    """The outbox record of the event ``model`` with payload ``data`` (the catalog's bulk path)."""
    return ev.catalog.outbox_record(model, subject, data, topic, time_json)


# ---------------------------------------------------------------------------------------------------
# The use case


def _progress(enabled: bool) -> Any:
    """A progress bar on stderr; a no-op when disabled or when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8} rows/s"),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and console.is_terminal),
    )


@contextlib.contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """An import allocates millions of short-lived containers while holding large caches; the default
    collector thresholds spend a quarter of the CPU re-scanning the caches. Collect less often, for the
    duration of the import only."""
    old = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _open(
    path: Path, today: date | None, *, probable_duplicates: bool = True
) -> tuple[Iterator[tuple[int, Sequence[Any]]], ArchiveValidator]:
    rows = read_rows(path)
    try:
        _, headers = next(rows)
    except StopIteration:
        raise ValueError(f"{path} is empty") from None
    return rows, ArchiveValidator(
        headers, today=today or business_today(), probable_duplicates=probable_duplicates
    )


@dataclass(frozen=True, slots=True)
class _Validated:
    """What a finished validator tells the summary (sent back by the validating process)."""

    unknown_columns: tuple[str, ...]
    rows_seen: int
    valid: int
    rejected: int
    with_warnings: int
    probable_duplicates: int
    completeness: CompletenessReport

    @classmethod
    def of(cls, validator: ArchiveValidator) -> _Validated:
        return cls(
            validator.header_map.unknown,
            validator.rows_seen,
            validator.valid,
            validator.rejected,
            validator.with_warnings,
            len(validator.probable_duplicates),
            validator.completeness(),
        )


def _finish(summary: ImportSummary, validated: _Validated, report: _Report, started: float) -> None:
    summary.unknown_columns = validated.unknown_columns
    summary.rows_read = validated.rows_seen
    summary.rows_valid = validated.valid
    summary.rows_rejected = validated.rejected
    summary.rows_with_warnings = validated.with_warnings
    summary.probable_duplicates_in_file = validated.probable_duplicates
    summary.completeness = validated.completeness
    summary.report_lines = report.lines
    summary.elapsed_seconds = time.perf_counter() - started


# ---------------------------------------------------------------------------------------------------
# The validating process
#
# Reading and validating the file is a third of the import's Python work and needs nothing from the
# database, so it runs in a process of its own, one batch ahead of the loader: on two cores the
# validation, the loader's preparation and PostgreSQL's work overlap instead of taking turns. The child
# validates exactly as a dry run does (one ArchiveValidator, rows in file order) and sends each batch of
# valid rows, with the report lines of the rows it covers (errors of rejected rows, warnings), through a
# pipe, as ``marshal`` data (plain tuples: a third of what pickling the named tuples costs); the area as
# text and the opening date as an ordinal. At the end it sends the validator's counts.

_BATCH, _DONE, _FAILED = b"B", b"D", b"F"


def _validate_in_child(path: str, today: date, batch_size: int, cipher: PiiCipher, conn: Any) -> None:
    """The validating process: reads and validates the archive, sends batches (see above). Each row also
    carries the blind indexes and masked forms of its ID number and phones (the child computes them: one
    HMAC each, and the loader needs them for every row)."""
    send = conn.send_bytes
    blind = cipher.blind_index

    def _row_out(r: ValidRow) -> tuple[Any, ...]:
        area = r[14]
        n = r.id_number
        phones = tuple((p, blind(p, field="phone"), mask_phone(p)) for p in r.phones)
        return (
            *r[:14], None if area is None else str(area), r[15], r[16], r[17].toordinal(), *r[18:24],
            blind(n, field="id_number"), mask_id_number(n), phones,
        )  # fmt: skip

    try:
        gc.set_threshold(100_000, 50, 100)
        rows, validator = _open(Path(path), today)
        validate = validator.validate
        batch: list[tuple[Any, ...]] = []
        notes: list[tuple[int, str, list[tuple[str, ...]]]] = []
        for row_no, values in rows:
            outcome = validate(values, row_no)
            if outcome is None:
                continue
            if type(outcome) is ValidRow:
                batch.append(_row_out(outcome))
                if outcome.warnings:
                    notes.append((row_no, outcome.account_no, [tuple(p) for p in outcome.warnings]))
                if len(batch) >= batch_size:
                    send(_BATCH + marshal.dumps((validator.rows_seen, batch, notes)))
                    batch, notes = [], []
            else:
                notes.append((row_no, outcome.account_no, [tuple(p) for p in outcome.problems]))
        send(_BATCH + marshal.dumps((validator.rows_seen, batch, notes)))
        send(_DONE + pickle.dumps(_Validated.of(validator)))
    except BaseException as exc:  # reported to the parent, which raises it
        try:
            message = _FAILED + pickle.dumps(exc)
        except Exception:
            message = _FAILED + pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
        with contextlib.suppress(OSError):
            send(message)
    finally:
        conn.close()


@dataclass(slots=True)
class _Rows:
    """A batch of valid rows, with the blind index and masked form of each ID number and phone."""

    rows: list[ValidRow]
    id_numbers: dict[str, tuple[str, str]]  # ID number -> (blind index, masked)
    phones: dict[str, tuple[str, str]]  # phone -> (blind index, masked)


def _rows_in(flat: list[tuple[Any, ...]], dates: dict[int, date], areas: dict[str, Decimal]) -> _Rows:
    """The child's tuples as :class:`ValidRow` again (without the warnings: they are reported already)."""
    make = ValidRow._make
    out = []
    id_numbers: dict[str, tuple[str, str]] = {}
    phones: dict[str, tuple[str, str]] = {}
    for x in flat:
        id_numbers[x[5]] = (x[24], x[25])
        for phone, h, masked in x[26]:
            phones[phone] = (h, masked)
        area = x[14]
        if area is not None:
            amount = areas.get(area)
            if amount is None:
                amount = areas[area] = Decimal(area)
        else:
            amount = None
        day = dates.get(x[17])
        if day is None:
            day = dates[x[17]] = date.fromordinal(x[17])
        out.append(make((*x[:14], amount, x[15], x[16], day, *x[18:24], ())))
    return _Rows(out, id_numbers, phones)


def _start_validating(path: Path, today: date, batch_size: int, cipher: PiiCipher) -> tuple[Any, Any]:
    """The validating process and the receiving end of its pipe."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(
        target=_validate_in_child,
        args=(str(path), today, batch_size, cipher, sender),
        name="archive-validator",
        daemon=True,
    )
    child.start()
    sender.close()
    return child, receiver


async def import_archive(
    engine: AsyncEngine,
    settings: ServiceSettings,
    cipher: PiiCipher,
    path: str | Path,
    *,
    actor: str,
    actor_kind: str = "system",
    reject_report_path: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    source: str = "import",
    today: date | None = None,
    initial_load: bool | None = None,
) -> ImportSummary:
    """Validate and load a legacy archive; safe to run again on the same file (nothing is duplicated).

    ``reject_report_path`` defaults to ``<file>.rejects.csv`` beside the archive. ``source`` goes into
    ``customers.source`` (``import`` or ``demo``). Raises :class:`customer.domain.legacy.HeaderError`
    before loading anything if the header row lacks a required column. Uses two connections of the
    engine's pool.

    ``initial_load``: ``None`` (the default) loads an empty archive as an initial load (one transaction,
    indexes built at the end; see :class:`_InitialLoad`) and anything else incrementally; ``True``
    requires an initial load (:class:`ArchiveNotEmpty` otherwise); ``False`` never makes one.
    """
    path = Path(path)
    report_path = Path(reject_report_path) if reject_report_path else path.with_suffix(".rejects.csv")
    summary = ImportSummary(path=str(path), reject_report_path=str(report_path))
    started = time.perf_counter()
    today_value = today or business_today()
    rows, _ = _open(path, today_value)  # the header row is checked here, before anything is loaded
    rows.close()  # type: ignore[attr-defined]
    report = _Report(report_path)
    queue: asyncio.Queue[_Rows | list[ValidRow] | None] = asyncio.Queue(maxsize=2)

    outcome: list[_Validated] = []

    async def validate_rows() -> None:
        loop = asyncio.get_running_loop()
        child, receiver = _start_validating(path, today_value, batch_size, cipher)
        dates: dict[int, date] = {}
        areas: dict[str, Decimal] = {}
        try:
            with _progress(progress) as bar:
                task = bar.add_task("import", total=None if bar.disable else _estimate_rows(path), rate="")
                while True:
                    try:
                        data = await loop.run_in_executor(None, receiver.recv_bytes)
                    except EOFError:
                        raise RuntimeError("the validating process ended without a result") from None
                    tag, body = data[:1], memoryview(data)[1:]
                    if tag == _BATCH:
                        rows_seen, flat, notes = marshal.loads(body)  # noqa: S302 - our own child's data
                        for row_no, account_no, problems in notes:
                            report.write(row_no, account_no, [Problem(*p) for p in problems])
                        if flat:
                            await queue.put(_rows_in(flat, dates, areas))
                        rate = rows_seen / (time.perf_counter() - started)
                        bar.update(task, completed=rows_seen, rate=f"{rate:,.0f}")
                    elif tag == _DONE:
                        outcome.append(pickle.loads(body))  # noqa: S301 - our own child's data
                        break
                    else:
                        raise pickle.loads(body)  # noqa: S301 - our own child's data
            await queue.put(None)
        finally:
            if child.is_alive() and not outcome:
                child.kill()  # the loader failed: stop validating (a pending read then ends with EOF)
            await loop.run_in_executor(None, child.join)
            receiver.close()

    try:
        async with engine.connect() as read_conn, engine.connect() as write_conn:
            read = (await read_conn.get_raw_connection()).driver_connection
            write = (await write_conn.get_raw_connection()).driver_connection
            bulk = None
            if initial_load is not False:
                bulk = await _InitialLoad.begin(write, required=initial_load is True)
            summary.initial_load = bulk is not None
            if bulk is not None:
                try:
                    await _load_initial(
                        bulk, write, settings, cipher, path, today_value, report, summary, started,
                        actor=actor, actor_kind=actor_kind, source=source, progress=progress,
                    )  # fmt: skip
                    await bulk.commit()
                except BaseException:
                    await bulk.rollback()
                    raise
                summary.elapsed_seconds = time.perf_counter() - started  # the commit's time counts
                return summary
            loader = _Loader(
                read, write, settings, cipher, summary, report,
                actor=actor, source=source, batch_size=batch_size,
            )  # fmt: skip
            with _fewer_gc_passes():
                try:
                    async with asyncio.TaskGroup() as group:
                        group.create_task(validate_rows())
                        group.create_task(loader.run(queue))
                except BaseExceptionGroup as group_error:  # one stage failed, the other was cancelled
                    # A batch cut short may leave its transaction, or a cancelled statement, on the write
                    # connection: it is discarded, not handed back to the pool.
                    await write_conn.invalidate()
                    if len(group_error.exceptions) == 1:
                        raise group_error.exceptions[0]  # noqa: B904 - its own cause is kept
                    raise
            summary.duplicates_flagged = await loader.flag_duplicates()
            _finish(summary, outcome[0], report, started)
            await _audit(write, summary, path, actor=actor, actor_kind=actor_kind)
    finally:
        report.close()
    return summary


async def _audit(pg: Any, summary: ImportSummary, path: Path, *, actor: str, actor_kind: str) -> None:
    changes = json.dumps({"file": path.name, **summary.counts()}, ensure_ascii=False)
    await pg.execute(
        _INSERT_AUDIT, _new_id(), actor, actor_kind, AUDIT_ACTION, str(summary.run_id), changes,
        current_request_id(),
    )  # fmt: skip


async def _load_initial(
    bulk: _InitialLoad,
    pg: Any,
    settings: ServiceSettings,
    cipher: PiiCipher,
    path: Path,
    today: date,
    report: _Report,
    summary: ImportSummary,
    started: float,
    *,
    actor: str,
    actor_kind: str,
    source: str,
    progress: bool,
) -> None:
    """An initial load (:mod:`customer.service_layer.initial_load`) inside ``bulk``'s transaction, up to
    the commit: validate, write, re-create the indexes, raise the flags, audit."""
    with _progress(progress) as bar:
        task = bar.add_task("initial load: validating", total=None, rate="")
        validation = await asyncio.to_thread(initial_load.validate, path, today, partial(read_rows, path))
        validator = validation.validator
        for row_no, account_no, problems in validation.notes:
            report.write(row_no, account_no, problems)
        counts, pairs = await initial_load.load(
            pg, cipher, validation, topic=settings.topic("customer.events"), source=source, actor=actor,
            written=bulk.rebuild_table,
            stage=lambda name: bar.update(task, description=f"initial load: {name}"),
        )  # fmt: skip
        bar.update(task, description="initial load: building the indexes")
        await asyncio.gather(bulk.rebuild(), asyncio.to_thread(note_households, validation))
    summary.customers_created = counts.customers
    summary.contacts_created = counts.contacts
    summary.premises_created = counts.premises
    summary.accounts_created = counts.accounts
    summary.meters_created = counts.meters
    summary.events_written = counts.events
    summary.duplicates_flagged = await _insert_flags(pg, pairs)
    _finish(summary, _Validated.of(validator), report, started)
    await _audit(pg, summary, path, actor=actor, actor_kind=actor_kind)


def validate_archive(
    path: str | Path,
    *,
    reject_report_path: str | Path | None = None,
    today: date | None = None,
) -> ImportSummary:
    """Read and validate an archive without a database: a dry run (and the benchmark's "validation
    alone"). Writes the reject report when a path is given."""
    path = Path(path)
    summary = ImportSummary(
        path=str(path),
        dry_run=True,
        reject_report_path=str(reject_report_path) if reject_report_path else None,
    )
    started = time.perf_counter()
    rows, validator = _open(path, today)
    report = _Report(Path(reject_report_path) if reject_report_path else None)
    try:
        validate = validator.validate
        for row_no, values in rows:
            outcome = validate(values, row_no)
            if outcome is None:
                continue
            if type(outcome) is ValidRow:
                if outcome.warnings:
                    report.write(row_no, outcome.account_no, outcome.warnings)
            else:
                report.write(row_no, outcome.account_no, outcome.problems)
    finally:
        report.close()
        rows.close()  # type: ignore[attr-defined]
    _finish(summary, _Validated.of(validator), report, started)
    return summary


def print_summary(summary: ImportSummary, stream: TextIO = sys.stdout) -> None:
    for line in summary.to_lines():
        print(line, file=stream)
