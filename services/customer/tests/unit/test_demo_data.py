"""The demo archive generator: deterministic, realistic, clean rows valid, planted defects and duplicates
found by the import's rules; CSV and XLSX files read back identically."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from customer.domain.accounts import is_valid_issued_account_no
from customer.domain.demo import DEFECTS, HEADERS, DemoGenerator, generate_rows, write_csv, write_xlsx
from customer.domain.legacy import CHINESE_HEADERS, premise_address_key, validate_records
from customer.service_layer.importer import read_rows

TODAY = date(2026, 11, 22)
H = CHINESE_HEADERS
ADDRESS = ("district", "community", "building", "unit", "room")
DISTRICTS = {"道里区", "南岗区", "道外区", "香坊区", "平房区", "松北区", "呼兰区", "阿城区"}
EXPECTED_REJECT = {
    "missing_area": ("heated_area_m2", "required"),
    "bad_checksum": ("id_number", "invalid_id_number"),
    "bad_phone": ("phone", "invalid_phone"),
    "missing_id_number": ("id_number", "required"),
}


@pytest.fixture(scope="module")
def demo() -> tuple[DemoGenerator, list[dict[str, str]]]:
    generator = DemoGenerator(11, dirty_share=0.05, duplicate_share=0.03)
    return generator, list(generator.rows(3000))


def test_the_same_seed_gives_the_same_rows() -> None:
    assert list(generate_rows(300, seed=5)) == list(generate_rows(300, seed=5))
    assert list(generate_rows(300, seed=5)) != list(generate_rows(300, seed=6))


def test_exactly_n_rows_with_the_chinese_headers(demo) -> None:
    _, rows = demo
    assert len(rows) == 3000
    assert all(tuple(r) == HEADERS for r in rows)
    assert list(generate_rows(0)) == []


def test_clean_rows_validate_and_each_planted_defect_is_rejected_for_its_reason(demo) -> None:
    generator, rows = demo
    result = validate_records(rows, today=TODAY)
    rejected = {r.row_no - 2: r for r in result.rejected}
    assert set(rejected) == set(generator.defects)  # nothing else is rejected
    for index, defect in generator.defects.items():
        problems = {(p.field, p.code) for p in rejected[index].problems if p.severity == "error"}
        assert problems == {EXPECTED_REJECT[defect]}, (index, defect)
    assert set(generator.defects.values()) == set(DEFECTS)
    assert 0.03 < len(generator.defects) / len(rows) < 0.07  # dirty_share 0.05


def test_planted_duplicates_are_the_probable_duplicates_found(demo) -> None:
    generator, rows = demo
    result = validate_records(rows, today=TODAY)
    found = {(d.other_row_no - 2, d.row_no - 2) for d in result.probable_duplicates}
    assert found == set(generator.duplicate_pairs)
    assert len(found) >= 40  # duplicate_share 0.03 of 3000
    for original, duplicate in generator.duplicate_pairs:
        a, b = rows[original], rows[duplicate]
        assert a[H["property_cert_no"]] == b[H["property_cert_no"]] or (
            a[H["property_cert_no"]].replace("（", "(").replace("）", ")")
            == b[H["property_cert_no"]].replace("（", "(").replace("）", ")")
        )
        assert b[H["phone"]] in a[H["phone"]]
        assert a[H["id_number"]] != b[H["id_number"]] and a[H["name"]] != b[H["name"]]


def test_no_defects_and_no_duplicates_when_asked() -> None:
    generator = DemoGenerator(3, dirty_share=0.0, duplicate_share=0.0)
    result = validate_records(generator.rows(1500), today=TODAY)
    assert result.rejected == [] and result.probable_duplicates == []
    assert generator.defects == {} and generator.duplicate_pairs == []


def test_legacy_account_numbers(demo) -> None:
    _, rows = demo
    numbers = [r[H["account_no"]] for r in rows]
    assert len(set(numbers)) == len(numbers)
    assert all(re.fullmatch(r"8\d{9}", n) for n in numbers)
    assert not any(is_valid_issued_account_no(n) for n in numbers)


def test_people_and_premises_look_like_harbin(demo) -> None:
    generator, rows = demo
    clean = [r for i, r in enumerate(rows) if i not in generator.defects]
    people = [r for r in clean if r[H["id_type"]] != "统一社会信用代码"]
    assert {r[H["district"]] for r in rows} == DISTRICTS
    assert all(r[H["id_number"]].startswith("2301") for r in people)
    assert all(1940 <= int(r[H["id_number"]][6:10]) <= 2000 for r in people)
    assert all(re.fullmatch(r"1[3-9]\d{9}", r[H["phone"]][:11]) for r in clean)
    assert all(re.fullmatch(r"黑[(（]20\d\d[)）]哈尔滨市不动产权第\d{7}号", r[H["property_cert_no"]])
               for r in rows if r[H["property_cert_no"]])  # fmt: skip
    residential = [Decimal(r[H["heated_area_m2"]]) for r in people if r[H["heated_area_m2"]]]
    assert min(residential) >= 40 and max(residential) <= 180
    assert 75 < sum(residential) / len(residential) < 110  # most flats are mid-sized
    surnames = Counter(r[H["name"]][0] for r in people)
    assert surnames.most_common(1)[0][0] in "王李张刘陈"
    utilities = Counter(r[H["utility"]] for r in rows)
    assert utilities["供热"] > 4 * utilities["燃气"] > 0


def test_gas_accounts_sit_at_a_heated_premise_of_the_same_customer(demo) -> None:
    generator, rows = demo
    duplicates = {d for _, d in generator.duplicate_pairs}
    gas = [i for i, r in enumerate(rows) if r[H["utility"]] == "燃气" and i not in duplicates]
    assert len(gas) > 200
    for i in gas:
        heating, row = rows[i - 1], rows[i]  # the gas account follows its premise's heating account
        assert heating[H["utility"]] == "供热"
        assert premise_address_key(*(heating[H[f]] for f in ADDRESS)) == premise_address_key(
            *(row[H[f]] for f in ADDRESS)
        )
        assert heating[H["id_number"]] == row[H["id_number"]] or {i - 1, i} & set(generator.defects)


def test_csv_and_xlsx_round_trip_through_the_reader(tmp_path: Path) -> None:
    rows = list(generate_rows(50, seed=9))
    csv_path, xlsx_path = tmp_path / "a.csv", tmp_path / "a.xlsx"
    assert write_csv(rows, csv_path) == 50
    assert write_xlsx(rows, xlsx_path) == 50
    assert csv_path.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM, so Excel opens it as UTF-8
    for path in (csv_path, xlsx_path):
        read = list(read_rows(path))
        assert (read[0][0], tuple(read[0][1])) == (1, HEADERS)
        assert [(n, [c or "" for c in cells]) for n, cells in read[1:]] == [
            (i + 2, [r[h] for h in HEADERS]) for i, r in enumerate(rows)
        ]


def test_the_reader_falls_back_to_gb18030(tmp_path: Path) -> None:
    path = tmp_path / "legacy.csv"
    path.write_bytes("户号,姓名\n8000000001,王秀英\n".encode("gb18030"))
    assert [list(cells) for _, cells in read_rows(path)] == [["户号", "姓名"], ["8000000001", "王秀英"]]


def test_dirty_share_controls_how_many_rows_are_rejected() -> None:
    generator = DemoGenerator(21, dirty_share=0.5, duplicate_share=0.0)
    result = validate_records(generator.rows(400), today=TODAY)
    assert {r.row_no - 2 for r in result.rejected} == set(generator.defects)
    assert 150 < len(result.rejected) < 250
