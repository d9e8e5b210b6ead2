"""The columnar validation of an initial load gives what the row-by-row validator gives: the same valid
rows (every value), the same report lines in the same order, the same counts and probable duplicates,
on archives made dirty in every way the rules know (and some they must not be fooled by)."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

import polars as pl
import pytest

from customer.domain.demo import DemoGenerator
from customer.domain.legacy import CHINESE_HEADERS, ArchiveValidator, ValidRow, _parse_date
from customer.domain.legacy_columnar import (
    PY_WHITESPACE,
    VALID_SCHEMA,
    cells_frame,
    cells_from_table,
    note_households,
    validate_frame,
)
from customer.service_layer import initial_load
from customer.service_layer.importer import read_rows

H = CHINESE_HEADERS
TODAY = date(2026, 11, 24)


def _mutations(rng: random.Random, rows: list[dict[str, Any]]) -> None:
    """Edit about a third of the rows, each in one of many ways."""

    def other() -> dict[str, Any]:
        return rng.choice(rows)

    edits = [
        lambda r: r.update({H["account_no"]: other()[H["account_no"]]}),  # in-file duplicate account
        lambda r: r.update({H["account_no"]: r[H["account_no"]].lower() + "ab"}),  # lower case: upper-cased
        lambda r: r.update(
            {H["account_no"]: other()[H["account_no"]].lower()}
        ),  # a duplicate once upper-cased
        lambda r: r.update({H["account_no"]: "12-34"}),
        lambda r: r.update({H["name"]: " " + r[H["name"]] + "  "}),  # trimmed
        lambda r: r.update({H["name"]: r[H["name"]][:1] + "  " + r[H["name"]][1:]}),  # a whitespace run
        lambda r: r.update({H["name"]: "x" * 101}),
        lambda r: r.update({H["name"]: ""}),
        lambda r: r.update({H["id_number"]: other()[H["id_number"]]}),  # same person, maybe another name
        lambda r: r.update({H["id_number"]: r[H["id_number"]].lower()}),  # x for X
        lambda r: r.update(
            {H["id_number"]: r[H["id_number"]].translate(str.maketrans("0123456789", "０１２３４５６７８９"))}
        ),
        lambda r: r.update({H["id_number"]: r[H["id_number"]][:6] + "-" + r[H["id_number"]][6:]}),
        lambda r: r.update({H["id_number"]: "0086" + r[H["id_number"]][4:]}),
        lambda r: r.update({H["id_number"]: r[H["id_number"]][:6] + "20991231" + r[H["id_number"]][14:]}),
        lambda r: r.update({H["id_type"]: "护照", H["id_number"]: "E" + r[H["id_number"]][-8:]}),
        lambda r: r.update({H["id_type"]: "身份证"}),
        lambda r: r.update({H["id_type"]: "驾驶证"}),
        lambda r: r.update({H["phone"]: ""}),
        lambda r: r.update({H["phone"]: r[H["phone"]] + "；0451-86661234"}),
        lambda r: r.update({H["phone"]: "0451-8666123"}),
        lambda r: r.update({H["phone"]: "+86 " + r[H["phone"]]}),
        lambda r: r.update({H["phone"]: r[H["phone"]][:-1]}),
        lambda r: r.update({H["phone"]: other()[H["phone"]]}),  # probable duplicates
        lambda r: r.update({H["community"]: r[H["community"]] + "｜"}),  # a "|" after NFKC
        lambda r: r.update({H["building"]: r[H["building"]].replace("栋", "号楼")}),
        lambda r: r.update({H["room"]: ""}),
        lambda r: r.update({H["unit"]: "１２"}),
        lambda r: r.update(
            {k: other()[k] for k in (H["district"], H["community"], H["building"], H["unit"], H["room"])}
        ),
        lambda r: r.update({H["heated_area_m2"]: "350"}),  # unusually large: a warning
        lambda r: r.update({H["heated_area_m2"]: "0.5"}),
        lambda r: r.update({H["heated_area_m2"]: "88.555平米"}),
        lambda r: r.update({H["heated_area_m2"]: "abc"}),
        lambda r: r.update({H["heated_area_m2"]: ""}),
        lambda r: r.update({H["customer_class"]: "商业", H["heated_area_m2"]: "3500"}),
        lambda r: r.update({H["customer_class"]: "别墅"}),
        lambda r: r.update({H["property_cert_no"]: " 黑（2023） 哈尔滨 " + str(rng.randrange(99999))}),
        lambda r: r.update({H["property_cert_no"]: "证" * 61}),
        lambda r: r.update({H["property_cert_no"]: other()[H["property_cert_no"]]}),
        lambda r: r.update({H["utility"]: "暖气"}),
        lambda r: r.update({H["utility"]: "自来水"}),
        lambda r: r.update({H["utility"]: "燃气", H["meter_kind"]: "热量表"}),
        lambda r: r.update({H["opened_on"]: "2015年3月8日"}),
        lambda r: r.update({H["opened_on"]: "1949-12-31"}),
        lambda r: r.update({H["opened_on"]: "2015-02-30"}),
        lambda r: r.update({H["opened_on"]: "20150308"}),
        lambda r: r.update({H["meter_serial"]: other()[H["meter_serial"]]}),  # a duplicate serial: warning
        lambda r: r.update({H["meter_serial"]: "hm" + str(rng.randrange(10**8))}),  # upper-cased
        lambda r: r.update({H["meter_serial"]: "ab"}),
        lambda r: r.update({H["meter_serial"]: "HM" + str(rng.randrange(10**8)), H["meter_kind"]: "水表"}),
        lambda r: r.update({H["meter_serial"]: "", H["meter_kind"]: "水表"}),  # a kind without a serial
        lambda r: r.update({H["meter_kind"]: "NB远传"}),
        lambda r: r.update({H["household_size"]: "5人"}),
        lambda r: r.update({H["household_size"]: "0"}),
        lambda r: r.update({H["tags"]: "独居老人/低保"}),
        lambda r: r.update({H["tags"]: "独居老人、未知标签"}),
        lambda r: r.update(dict.fromkeys(r, "")),  # a blank row
        lambda r: r.update(dict.fromkeys(r, "  ")),
    ]
    for r in rows:
        if rng.random() < 0.35:
            rng.choice(edits)(r)


def _row_by_row(rows: list[dict[str, Any]], headers: list[str]) -> tuple[list[ValidRow], list[Any], Any]:
    validator = ArchiveValidator(headers, today=TODAY)
    valid, notes = [], []
    for i, r in enumerate(rows):
        outcome = validator.validate([r.get(h) for h in headers], i + 2)
        if type(outcome) is ValidRow:
            valid.append(outcome)
            if outcome.warnings:
                notes.append((outcome.row_no, outcome.account_no, outcome.warnings))
        elif outcome is not None:
            notes.append((outcome.row_no, outcome.account_no, outcome.problems))
    return valid, notes, validator


def _as_records(valid: list[ValidRow]) -> list[dict[str, Any]]:
    out = []
    for r in valid:
        d = r._asdict()
        d.pop("warnings")
        d["phones"] = list(d["phones"])
        d["tags"] = list(d["tags"])
        d["heated_area_m2"] = None if r.heated_area_m2 is None else str(r.heated_area_m2)
        out.append(d)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_columns_and_rows_agree_on_a_dirty_archive(seed: int) -> None:
    rng = random.Random(seed)
    rows = list(
        DemoGenerator(seed, dirty_share=0.05, duplicate_share=0.05, organisation_share=0.05).rows(3000)
    )
    _mutations(rng, rows)
    headers = list(rows[0].keys())
    if seed == 4:  # a file without the tags column, its columns in another order
        headers = [h for h in reversed(headers) if h != H["tags"]]

    expected_valid, expected_notes, by_rows = _row_by_row(rows, headers)

    columns = ArchiveValidator(headers, today=TODAY, probable_duplicates=False)
    table = [(i + 2, [r.get(h, "") for h in headers]) for i, r in enumerate(rows)]
    result = validate_frame(cells_frame(iter(table), columns, chunk_rows=700), columns)
    note_households(result)

    assert result.valid.schema == pl.Schema(VALID_SCHEMA)
    assert result.valid.to_dicts() == _as_records(expected_valid)
    assert result.notes == expected_notes
    assert columns.completeness() == by_rows.completeness()
    assert (columns.rows_seen, columns.valid, columns.rejected, columns.with_warnings) == (
        by_rows.rows_seen, by_rows.valid, by_rows.rejected, by_rows.with_warnings,
    )  # fmt: skip
    assert columns.probable_duplicates == by_rows.probable_duplicates
    # Most rows are decided by the columns, and the edits sent many through the validator.
    assert len(rows) * 0.5 < result.clean_rows < len(expected_valid) - 100
    assert len(expected_notes) > 200 and by_rows.probable_duplicates


def test_short_rows_and_typed_cells() -> None:
    """Trailing cells left out, and XLSX cells that arrive as numbers and dates."""
    rows = list(DemoGenerator(7, dirty_share=0, duplicate_share=0).rows(50))
    headers = list(rows[0].keys())
    table: list[tuple[int, list[Any]]] = []
    for i, r in enumerate(rows):
        cells: list[Any] = [r[h] for h in headers]
        if i % 3 == 0:
            cells[headers.index(H["opened_on"])] = _parse_date(r[H["opened_on"]])
            cells[headers.index(H["household_size"])] = int(r[H["household_size"]] or 3)
        if i % 4 == 0:
            while cells and cells[-1] == "":
                cells.pop()
            cells = cells[: len(cells) - 1]  # the last, non-empty cell too
        table.append((i + 2, cells))
    by_rows = ArchiveValidator(headers, today=TODAY)
    expected = [v for n, cells in table if type(v := by_rows.validate(cells, n)) is ValidRow]
    columns = ArchiveValidator(headers, today=TODAY, probable_duplicates=False)
    result = validate_frame(cells_frame(iter(table), columns), columns)
    assert result.valid.to_dicts() == _as_records(expected)
    assert columns.completeness() == by_rows.completeness()
    with pytest.raises(ValueError, match="probable-duplicate"):  # the rule would run twice
        validate_frame(cells_frame(iter(table), by_rows), by_rows)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_a_csv_read_by_polars_gives_the_cells_the_row_reader_gives(tmp_path, encoding: str) -> None:
    """Short rows, long rows, blank lines, CRLF, cells padded with every kind of whitespace."""
    rows = list(DemoGenerator(11, dirty_share=0.05).rows(400))
    headers = list(rows[0].keys())
    lines = [",".join(headers)]
    spaces = ["", " ", "\t", "\u3000", "\x1c", "\xa0"]
    for i, r in enumerate(rows):
        cells = [random.Random(i).choice(spaces) + r[h] + spaces[i % len(spaces)] for h in headers]
        if i % 17 == 0:
            cells = cells[:10]
        if i % 19 == 0:
            cells += ["extra", "cells"]
        lines.append(",".join(cells))
        if i % 23 == 0:
            lines.append("")
    path = tmp_path / "archive.csv"
    path.write_bytes("\r\n".join(lines).encode(encoding))

    validator = ArchiveValidator(headers, today=TODAY, probable_duplicates=False)
    read = initial_load.read_table(path)
    assert read is not None
    from_table = cells_from_table(read[1], validator)
    rows_read = read_rows(path)
    next(rows_read)
    assert from_table.to_dicts() == cells_frame(rows_read, validator).to_dicts()
    assert from_table.height == len(rows)

    path.write_bytes(path.read_bytes().replace(b"\r\n", b"\r"))  # lone carriage returns: row by row
    assert initial_load.read_table(path) is None
    path.write_text('户号,"姓名"\n1,2\n', encoding="utf-8")  # quotes: row by row
    assert initial_load.read_table(path) is None


def test_the_whitespace_stripped_is_pythons() -> None:
    assert "".join(chr(i) for i in range(0x110000) if chr(i).isspace()) == PY_WHITESPACE
