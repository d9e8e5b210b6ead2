"""The archive rules column by column: how an initial load validates a whole archive at once.

:class:`~customer.domain.legacy.ArchiveValidator` checks one row at a time and stays the one definition
of a valid row. Row by row, the interpreter's overhead is most of an import's CPU, so a whole archive is
first sorted column by column (polars) into two kinds of rows:

- *clean* rows: every cell already in the form the row-by-row rules accept as it is (or one they map to
  a value, worked out once per distinct cell), nothing that would raise a warning, and no key shared
  with any other row of the file (account number, dwelling and utility, meter serial; the holder's name
  is the same on every row of one ID number);
- every other row, a few percent of a real archive, goes through the ArchiveValidator in file order,
  which writes its messages and its counts.

Why the result is the row-by-row result: a clean row is one the validator would accept unchanged, and
since none of its keys appears on another row, the order-dependent rules (the first row with an account
number wins, one name per ID number, ...) decide the other rows exactly as they would with the clean rows
in between. The probable-duplicate rule runs afterwards over all valid rows in file order
(:meth:`ArchiveValidator.note_household`). A test validates dirty archives both ways and requires the
same valid rows, report lines and counts.

Pure: the rows come in as ``(row number, cells)``; nothing here reads a file or a database.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from itertools import islice
from typing import Any

import polars as pl

from customer.domain.identity import (
    _ID_CHECK,
    _ID_WEIGHTS,
    IdType,
)
from customer.domain.legacy import (
    _AREA_RE,
    _CENT,
    _CUSTOMER_CLASSES,
    _ID_TYPES,
    _INT_RE,
    _MAX_LEN,
    _METER_SERIAL_RE,
    _TAG_SPLIT,
    _TAGS,
    _UTILITIES,
    _UTILITY_METER_KIND,
    FIELDS,
    ArchiveValidator,
    Problem,
    ValidRow,
    _nfkc,
    _parse_date,
    address_part,
    cell_text,
    meter_words,
    phone_list,
)
from utilis_shared.pii import normalise

CHUNK_ROWS = 50_000  # rows turned into a frame at a time while reading (bounds the Python objects alive)

# The valid rows' columns: ValidRow's fields (without the warnings, which are reported already). The area
# is its decimal text (two places), phones and tags are lists.
VALID_SCHEMA: dict[str, Any] = {
    "row_no": pl.Int64,
    "account_no": pl.String,
    "name": pl.String,
    "kind": pl.String,
    "id_type": pl.String,
    "id_number": pl.String,
    "phones": pl.List(pl.String),
    "district": pl.String,
    "community": pl.String,
    "building": pl.String,
    "unit": pl.String,
    "room": pl.String,
    "address_key": pl.String,
    "address": pl.String,
    "heated_area_m2": pl.String,
    "property_cert_no": pl.String,
    "utility": pl.String,
    "opened_on": pl.Date,
    "meter_serial": pl.String,
    "meter_kind": pl.String,
    "meter_reading_mode": pl.String,
    "customer_class": pl.String,
    "household_size": pl.Int64,
    "tags": pl.List(pl.String),
}

# What str.strip() strips (the characters str.isspace() accepts; a test pins the list): polars' own
# whitespace lacks \x1c-\x1f.
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

_MOBILE = r"^1[3-9][0-9]{9}$"
_RESIDENT_ID = r"^[0-9]{17}[0-9X]$"
_NAME = r"^[^\s\x00-\x1f]+(?: [^\s\x00-\x1f]+)*$"  # no whitespace runs, no control characters
_ACCOUNT_NO = r"^[0-9A-Z]{6,20}$"
_ASCII_SERIAL = r"^[0-9A-Z\-]{4,40}$"  # its own normal form (NFKC and upper case change nothing)
# Text NFKC leaves as it is: printable ASCII and the CJK unified ideographs (no decompositions).
_NFKC_STABLE = r"^[!-~\u4e00-\u9fff]*$"


class _Slow:
    """A cell the columns cannot decide: its row goes through the row-by-row validator."""


SLOW = _Slow()


@dataclass(slots=True)
class FrameValidation:
    """An archive validated: the valid rows (:data:`VALID_SCHEMA`, file order), the report's lines (file
    order: a rejected row's problems, a valid row's warnings), and the validator holding the counts."""

    valid: pl.DataFrame
    notes: list[tuple[int, str, tuple[Problem, ...]]]
    validator: ArchiveValidator
    clean_rows: int  # valid rows decided by the columns alone


# ---------------------------------------------------------------------------------------------------
# Reading


def cells_frame(
    rows: Iterable[tuple[int, Sequence[Any]]], validator: ArchiveValidator, *, chunk_rows: int = CHUNK_ROWS
) -> pl.DataFrame:
    """The cells of every non-blank row as text (trimmed, as the validator sees them), one column per
    field of :data:`FIELDS` (blank where the file lacks the column), with ``row_no``."""
    pick = validator.picked
    frames = []
    rows = iter(rows)
    while chunk := list(islice(rows, chunk_rows)):
        picked = [pick(values) for _, values in chunk]
        columns = {
            f: [c.strip() if type(c) is str else cell_text(c) for c in column]
            for f, column in zip(FIELDS, zip(*picked, strict=True), strict=True)
        }
        columns["row_no"] = [r for r, _ in chunk]  # type: ignore[misc]
        frames.append(pl.DataFrame(columns, schema={**dict.fromkeys(FIELDS, pl.String), "row_no": pl.Int64}))
    if not frames:
        return pl.DataFrame(schema={**dict.fromkeys(FIELDS, pl.String), "row_no": pl.Int64})
    cells = pl.concat(frames, rechunk=True)
    return cells.filter(pl.any_horizontal(pl.col(f) != "" for f in FIELDS))  # blank rows are skipped


def cells_from_table(table: pl.DataFrame, validator: ArchiveValidator) -> pl.DataFrame:
    """:func:`cells_frame` of a table read by polars: string columns in file order (a short row's missing
    cells null), the header row left out, and ``row_no``."""
    positions = [validator.header_map.positions[f] for f in FIELDS]
    names = [n for n in table.columns if n != "row_no"]

    def cell(p: int) -> pl.Expr:
        if 0 <= p < len(names):
            return pl.col(names[p]).fill_null("").str.strip_chars(PY_WHITESPACE)
        return pl.lit("")

    cells = table.select(
        *(cell(p).alias(f) for f, p in zip(FIELDS, positions, strict=True)),
        pl.col("row_no").cast(pl.Int64),
    )
    return cells.filter(pl.any_horizontal(pl.col(f) != "" for f in FIELDS))


# ---------------------------------------------------------------------------------------------------
# Rules per distinct cell: the value the row-by-row validator gives, or SLOW where it would report
# anything (an error or a warning). The vocabularies and patterns are the validator's own.


def _id_type(s: str) -> Any:
    if not s:
        return str(IdType.RESIDENT_ID)
    found = _ID_TYPES.get(s) or _ID_TYPES.get(s.lower())
    return str(IdType.RESIDENT_ID) if found == IdType.RESIDENT_ID else SLOW  # other documents: row by row


def _phones(s: str | None) -> Any:
    if not s:
        return SLOW  # the "missing" warning
    phones, wrong = phone_list(s)
    return SLOW if wrong else phones


def _cert(s: str) -> Any:
    if not s:
        return None
    cert = "".join(_nfkc(s).split())
    return SLOW if len(cert) > _MAX_LEN["property_cert_no"] else cert


def _utility(s: str) -> Any:
    return (_UTILITIES.get(s) or _UTILITIES.get(s.lower(), "") or SLOW) if s else SLOW


def _customer_class(s: str) -> Any:
    if not s:
        return "residential"  # clean rows are people (resident ID cards)
    return _CUSTOMER_CLASSES.get(s) or _CUSTOMER_CLASSES.get(s.lower()) or SLOW


def _area(validator: ArchiveValidator) -> Callable[[str, str | None, str | None], Any]:
    rules = validator.rules

    def rule(s: str, customer_class: str | None, utility: str | None) -> Any:
        if customer_class is None or utility is None:
            return SLOW
        if not s:
            return SLOW if utility == "heating" else None
        m = _AREA_RE.match("".join(_nfkc(s).split()).lower())
        if m is None:
            return SLOW
        area = Decimal(m[1]).quantize(_CENT, ROUND_HALF_UP)
        if customer_class == "residential":
            if area < rules.area_min_m2 or area > rules.area_warn_residential_m2:
                return SLOW  # out of range, or the "unusually large" warning
        elif area < rules.area_min_m2 or area > rules.area_max_non_residential_m2:
            return SLOW
        return str(area)

    return rule


def _opened_on(validator: ArchiveValidator) -> Callable[[str], Any]:
    earliest, today = validator.rules.earliest_opening, validator.today

    def rule(s: str) -> Any:
        day = _parse_date(s) if s else None
        return day if day is not None and earliest <= day <= today else SLOW

    return rule


def _serial(s: str | None) -> Any:
    return _nfkc(s).upper() if s else None


def _meter_kind(s: str, utility: str | None) -> Any:
    """``kind|reading mode`` of a meter on a ``utility`` account."""
    if utility is None:
        return SLOW
    kind_text = s.lower()
    meter_kind, remote, understood = meter_words(kind_text) if kind_text else (None, False, True)
    if not understood:
        return SLOW
    expected = _UTILITY_METER_KIND[utility]
    if meter_kind is not None and meter_kind != expected:
        return SLOW
    return f"{expected}|{'remote' if remote else 'manual'}"


def _household_size(s: str) -> Any:
    if not s:
        return None
    m = _INT_RE.match(s)
    size = int(m[1]) if m else 0
    return size if 1 <= size <= 20 else SLOW


def _tags(s: str) -> Any:
    tags: list[str] = []
    for t in _TAG_SPLIT.split(s) if s else ():
        if not t:
            continue
        tag = _TAGS.get(t) or _TAGS.get(t.lower())
        if tag is None:
            return SLOW  # the "unknown tag" warning
        if tag not in tags:
            tags.append(tag)
    return tags


def _loose_id(s: str | None) -> str | None:
    """An ID cell as every document type's rule would normalise it at most (NFKC, no separators, upper
    case, no +86): two cells the validator would take for one ID number get one loose key."""
    return normalise(unicodedata.normalize("NFKC", s)) if s else s


def _per_value(frame: pl.DataFrame, columns: list[str], rule: Callable[..., Any], dtype: Any) -> pl.DataFrame:
    """``ok`` (not SLOW) and ``value`` for every row of ``frame``, ``rule`` applied once per distinct
    combination of ``columns``."""
    keys = frame.select(columns).unique()
    if len(columns) == 1:  # a hash lookup, cheaper than a join (lists of text travel joined by \x1f)
        distinct = keys.to_series().to_list()
        outcomes = list(map(rule, distinct))
        is_list = isinstance(dtype, pl.List)
        values = [None if o is SLOW else "\x1f".join(o) if is_list and o is not None else o for o in outcomes]
        series = frame[columns[0]]
        looked_up = series.replace_strict(distinct, values, return_dtype=pl.String if is_list else dtype)
        if is_list:
            looked_up = pl.select(
                pl.when(looked_up == "").then(pl.lit([], dtype)).otherwise(looked_up.str.split("\x1f"))
            ).to_series()
        return pl.DataFrame(
            {
                "ok": series.replace_strict(
                    distinct, [o is not SLOW for o in outcomes], return_dtype=pl.Boolean
                ),
                "value": looked_up,
            }
        )
    else:
        outcomes = [rule(*k) for k in keys.iter_rows()]
    table = keys.with_columns(
        pl.Series("ok", [o is not SLOW for o in outcomes], dtype=pl.Boolean),
        pl.Series("value", [None if o is SLOW else o for o in outcomes], dtype=dtype),
    )
    return frame.select(columns).join(table, on=columns, how="left", nulls_equal=True, maintain_order="left")


# ---------------------------------------------------------------------------------------------------
# The whole archive


def validate_frame(cells: pl.DataFrame, validator: ArchiveValidator) -> FrameValidation:
    """Validate the archive's cells (:func:`cells_frame`): clean rows by columns, the others by
    ``validator`` (made with ``probable_duplicates=False``), which ends up holding every count."""
    if validator.checks_probable_duplicates:
        raise ValueError("the validator must leave the probable-duplicate rule to validate_frame")
    today = validator.today
    col = pl.col
    c = cells

    # Cells decided by patterns (most distinct values: one per row).
    idn = col("id_number")
    weighted = pl.sum_horizontal(
        idn.str.slice(i, 1).cast(pl.Int64, strict=False) * w for i, w in enumerate(_ID_WEIGHTS)
    )
    born = idn.str.slice(6, 8).str.to_date("%Y%m%d", strict=False)
    c = c.with_columns(
        ok_id=(
            idn.str.contains(_RESIDENT_ID)
            & ~idn.str.starts_with("0086")  # normalise() would take it for a +86 prefix
            & (pl.lit(_ID_CHECK).str.slice(weighted % 11, 1) == idn.str.slice(17, 1))
            & born.is_between(date(1880, 1, 1), today)
        ).fill_null(False),
        ok_name=col("name").str.contains(_NAME) & (col("name").str.len_chars() <= _MAX_LEN["name"]),
        ok_account=col("account_no").str.contains(_ACCOUNT_NO),
        mobile=col("phone").str.contains(_MOBILE),
    )
    parts = ("district", "community", "building", "unit", "room")
    ok_parts = pl.all_horizontal(
        (col(p) != "")
        & (col(p).str.len_chars() <= _MAX_LEN[p])
        & ~col(f"v_{p}").str.contains("|", literal=True)
        for p in parts
    )  # a part with a "|" (after NFKC too) would not survive the key's split

    # Cells decided once per distinct value.
    def lookup(columns: list[str], rule: Callable[..., Any], dtype: Any, name: str) -> None:
        nonlocal c
        r = _per_value(c, columns, rule, dtype)
        c = c.with_columns(r["ok"].alias(f"ok_{name}"), r["value"].alias(f"v_{name}"))

    lookup(["id_type"], _id_type, pl.String, "id_type")
    c = c.with_columns(other_phone=pl.when(col("mobile")).then(None).otherwise(col("phone")))
    lookup(["other_phone"], _phones, pl.List(pl.String), "phones")
    cert = col("property_cert_no")
    stable_cert = cert.str.contains(_NFKC_STABLE) & (cert.str.len_chars() <= _MAX_LEN["property_cert_no"])
    c = c.with_columns(other_cert=pl.when(stable_cert).then(None).otherwise(cert))
    lookup(["other_cert"], _cert, pl.String, "cert")
    c = c.with_columns(
        ok_cert=stable_cert | col("ok_cert"),
        v_cert=pl.when(stable_cert).then(pl.when(cert != "").then(cert)).otherwise(col("v_cert")),
    )
    lookup(["utility"], _utility, pl.String, "utility")
    lookup(["customer_class"], _customer_class, pl.String, "class")
    lookup(["heated_area_m2", "v_class", "v_utility"], _area(validator), pl.String, "area")
    iso_date = col("opened_on").str.contains(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
    c = c.with_columns(other_opened=pl.when(iso_date).then(None).otherwise(col("opened_on")))
    lookup(["other_opened"], _opened_on(validator), pl.Date, "opened")
    iso_day = col("opened_on").str.to_date("%Y-%m-%d", strict=False)
    iso_ok = iso_day.is_between(validator.rules.earliest_opening, today).fill_null(False)
    c = c.with_columns(
        ok_opened=pl.when(iso_date).then(iso_ok).otherwise(col("ok_opened")),
        v_opened=pl.when(iso_date).then(pl.when(iso_ok).then(iso_day)).otherwise(col("v_opened")),
    )
    lookup(["household_size"], _household_size, pl.Int64, "size")
    lookup(["tags"], _tags, pl.List(pl.String), "tags")
    lookup(["meter_kind", "v_utility"], _meter_kind, pl.String, "meter_kind")
    for slot, p in enumerate(parts):
        lookup([p], lambda s, slot=slot: address_part(slot, s), pl.String, p)
    # Keys every row is compared by (also rows that are not clean: a clean row's key must be its own).
    ascii_serial = col("meter_serial").str.contains(_ASCII_SERIAL)
    c = c.with_columns(other_serial=pl.when(ascii_serial).then(None).otherwise(col("meter_serial")))
    lookup(["other_serial"], _serial, pl.String, "serial")
    c = c.with_columns(v_serial=pl.when(ascii_serial).then(col("meter_serial")).otherwise(col("v_serial")))
    canonical_id = idn.str.contains(_RESIDENT_ID) & ~idn.str.starts_with("0086")
    c = c.with_columns(other_id=pl.when(canonical_id).then(None).otherwise(idn))
    lookup(["other_id"], _loose_id, pl.String, "loose_id")
    c = c.with_columns(v_loose_id=pl.when(canonical_id).then(idn).otherwise(col("v_loose_id")))
    key = pl.concat_str([col(f"v_{p}") for p in parts], separator="|")
    c = c.with_columns(
        v_key=key,
        v_address=pl.concat_str(
            [
                col("v_district"),
                col("v_community"),
                col("v_building"),
                pl.lit("栋"),
                col("v_unit"),
                pl.lit("单元"),
                col("v_room"),
                pl.lit("室"),
            ]
        ),
    )
    c = c.with_columns(
        ok_phones=col("mobile") | col("ok_phones"),
        v_phones=pl.when(col("mobile")).then(pl.concat_list(col("phone"))).otherwise(col("v_phones")),
        ok_meter=(col("meter_serial") == "")
        | (
            col("v_serial").str.contains(_METER_SERIAL_RE.pattern)
            & col("ok_meter_kind")
            & (col("v_serial").is_unique() | col("v_serial").is_null())
        ),
        unique_keys=(
            col("account_no").str.to_uppercase().is_unique()
            & pl.struct(col("v_key"), col("v_utility").fill_null(col("utility"))).is_unique()
            & (col("name").n_unique().over("v_loose_id") == 1)
        ),
    )
    clean_mask = (
        col("ok_account") & col("ok_name") & col("ok_id_type") & col("ok_id") & col("ok_phones") & ok_parts
        & col("ok_district") & col("ok_community") & col("ok_building") & col("ok_unit") & col("ok_room")
        & (col("v_key").str.len_chars() <= 300) & (col("v_address").str.len_chars() <= 300)
        & col("ok_cert") & col("ok_utility") & col("ok_class") & col("ok_area") & col("ok_opened")
        & col("ok_meter") & col("ok_size") & col("ok_tags") & col("unique_keys")
    ).fill_null(False)  # fmt: skip
    c = c.with_columns(clean=clean_mask)

    clean = c.filter(col("clean"))
    valid_clean = clean.select(
        "row_no",
        "account_no",
        "name",
        kind=pl.lit("person"),
        id_type=col("v_id_type"),
        id_number="id_number",
        phones=col("v_phones"),
        district=col("v_district"),
        community=col("v_community"),
        building=col("v_building"),
        unit=col("v_unit"),
        room=col("v_room"),
        address_key=col("v_key"),
        address=col("v_address"),
        heated_area_m2=col("v_area"),
        property_cert_no=col("v_cert"),
        utility=col("v_utility"),
        opened_on=col("v_opened"),
        meter_serial=col("v_serial"),
        meter_kind=col("v_meter_kind").str.split_exact("|", 1).struct.field("field_0"),
        meter_reading_mode=col("v_meter_kind").str.split_exact("|", 1).struct.field("field_1"),
        customer_class=col("v_class"),
        household_size=col("v_size"),
        tags=col("v_tags"),
    ).with_columns(
        meter_kind=pl.when(col("meter_serial").is_not_null()).then(col("meter_kind")),
        meter_reading_mode=pl.when(col("meter_serial").is_not_null()).then(col("meter_reading_mode")),
    )

    # The clean rows' counts, then the other rows one by one, in file order.
    applicable = clean.filter(col("v_utility") == "heating")
    validator.count_clean(
        clean.height,
        [int((clean[f] != "").sum()) for f in FIELDS],
        applicable.height,
        int((applicable["heated_area_m2"] != "").sum()),
    )
    notes: list[tuple[int, str, tuple[Problem, ...]]] = []
    slow_valid: list[ValidRow] = []
    for row in c.filter(~col("clean")).select(*FIELDS, "row_no").iter_rows():
        outcome = validator.validate_cells(row[:-1], row[-1])
        if type(outcome) is ValidRow:
            slow_valid.append(outcome)
            if outcome.warnings:
                notes.append((outcome.row_no, outcome.account_no, outcome.warnings))
        elif outcome is not None:
            notes.append((outcome.row_no, outcome.account_no, outcome.problems))
    valid = pl.concat([valid_clean, _rows_frame(slow_valid)], how="vertical").sort("row_no")
    return FrameValidation(valid, notes, validator, clean.height)


def note_households(validation: FrameValidation) -> None:
    """The probable-duplicate rule, over every valid row in file order (it only counts and reports, so an
    initial load runs it while PostgreSQL builds the indexes)."""
    note = validation.validator.note_household
    col = pl.col
    valid = validation.valid
    households = valid.filter(col("property_cert_no").is_not_null() & (col("phones").list.len() > 0))
    for row_no, account_no, id_number, phones, cert in households.select(
        "row_no", "account_no", "id_number", "phones", "property_cert_no"
    ).iter_rows():
        note(row_no, account_no, id_number, phones, cert)


def _rows_frame(rows: list[ValidRow]) -> pl.DataFrame:
    fields = list(VALID_SCHEMA)
    return pl.DataFrame(
        [
            (
                *r[:6],
                list(r.phones),
                *r[7:14],
                None if r.heated_area_m2 is None else str(r.heated_area_m2),
                *r[15:23],
                list(r.tags),
            )
            for r in rows
        ],
        schema=VALID_SCHEMA,
        orient="row",
    ).select(fields)
