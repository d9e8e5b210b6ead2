"""Legacy archive rows: header aliases, reject reasons, normalisation, in-file duplicates, completeness."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from customer.domain.identity import resident_id_check_char
from customer.domain.legacy import (
    CHINESE_HEADERS,
    FIELDS,
    ArchiveValidator,
    HeaderError,
    RejectedRow,
    ValidRow,
    _address_from_key,
    map_headers,
    premise_address,
    premise_address_key,
    validate_records,
)
from customer.domain.premises import address_key, format_address

TODAY = date(2026, 11, 22)
HEADERS = [CHINESE_HEADERS[f] for f in FIELDS]


def resident_id(body17: str) -> str:
    return body17 + resident_id_check_char(body17)


ID_A = resident_id("23010319580315002")
ID_B = resident_id("23010219760701123")
ID_C = resident_id("23011019880212456")


def record(**overrides: Any) -> dict[str, Any]:
    """One valid heating row in Chinese headers; keyword arguments use the field names."""
    values: dict[str, Any] = {
        "account_no": "8000000001",
        "name": "王秀英",
        "id_type": "身份证",
        "id_number": ID_A,
        "phone": "13845671234",
        "district": "南岗区",
        "community": "学府四道街小区",
        "building": "12栋",
        "unit": "3单元",
        "room": "502室",
        "heated_area_m2": "89.50",
        "property_cert_no": "黑(2019)哈尔滨市不动产权第0123456号",
        "utility": "供热",
        "opened_on": "2009-10-15",
        "meter_serial": "",
        "meter_kind": "",
        "customer_class": "居民",
        "household_size": "3",
        "tags": "",
    }
    values.update(overrides)
    return {CHINESE_HEADERS[k]: v for k, v in values.items()}


def check(**overrides: Any) -> ValidRow | RejectedRow:
    validator = ArchiveValidator(HEADERS, today=TODAY)
    outcome = validator.validate([record(**overrides)[h] for h in HEADERS], 2)
    assert outcome is not None
    return outcome


def errors(outcome: ValidRow | RejectedRow) -> set[tuple[str, str]]:
    assert isinstance(outcome, RejectedRow), outcome
    return {(p.field, p.code) for p in outcome.problems if p.severity == "error"}


def run(*records: dict[str, Any]):
    return validate_records(records, today=TODAY)


# ---------------------------------------------------------------------------------------------------
# A clean row


def test_a_clean_row_is_normalised() -> None:
    row = check(phone="138 4567 1234；0451-86412345", household_size="4人")
    assert isinstance(row, ValidRow)
    assert row.row_no == 2
    assert row.account_no == "8000000001"
    assert (row.kind, row.id_type, row.id_number) == ("person", "resident_id", ID_A)
    assert row.phones == ("13845671234", "045186412345")
    assert (row.building, row.unit, row.room) == ("12", "3", "502")
    assert row.address_key == "南岗区|学府四道街小区|12|3|502"
    assert row.address == "南岗区学府四道街小区12栋3单元502室"
    assert row.heated_area_m2 == Decimal("89.50")
    assert (row.utility, row.opened_on, row.customer_class, row.household_size) == (
        "heating",
        date(2009, 10, 15),
        "residential",
        4,
    )
    assert row.meter_serial is None and row.warnings == ()


def test_defaults_when_optional_cells_are_blank() -> None:
    row = check(id_type="", customer_class="", household_size="", property_cert_no="")
    assert isinstance(row, ValidRow)
    assert (row.id_type, row.customer_class, row.household_size, row.property_cert_no) == (
        "resident_id",
        "residential",
        None,
        None,
    )


def test_an_organisation_with_a_credit_code() -> None:
    row = check(
        id_type="统一社会信用代码", id_number="91350100M000100Y43", customer_class="", heated_area_m2="350"
    )
    assert isinstance(row, ValidRow)
    assert (row.kind, row.id_type, row.customer_class) == ("organisation", "uscc", "non_residential")
    assert row.warnings == ()  # 350 m² is unremarkable for a shop


def test_xlsx_cells_arrive_typed() -> None:
    row = check(account_no=8000000123, heated_area_m2=75.5, opened_on=datetime(2012, 5, 6), household_size=2)
    assert isinstance(row, ValidRow)
    assert (row.account_no, row.heated_area_m2, row.opened_on, row.household_size) == (
        "8000000123",
        Decimal("75.50"),
        date(2012, 5, 6),
        2,
    )


@pytest.mark.parametrize("text", ["2020-03-05", "2020/3/5", "20200305", "2020年3月5日", "2020.03.05 08:30"])
def test_date_formats(text: str) -> None:
    row = check(opened_on=text)
    assert isinstance(row, ValidRow) and row.opened_on == date(2020, 3, 5)


@pytest.mark.parametrize(("text", "area"), [("89.456", "89.46"), ("90㎡", "90.00"), ("88 平方米", "88.00")])
def test_area_forms(text: str, area: str) -> None:
    row = check(heated_area_m2=text)
    assert isinstance(row, ValidRow) and row.heated_area_m2 == Decimal(area)


def test_meter_kind_and_reading_mode() -> None:
    row = check(utility="燃气", heated_area_m2="", meter_serial="gm2019-001", meter_kind="远传燃气表")
    assert isinstance(row, ValidRow)
    assert (row.meter_serial, row.meter_kind, row.meter_reading_mode) == ("GM2019-001", "gas", "remote")
    row = check(meter_serial="HM0001", meter_kind="")
    assert isinstance(row, ValidRow) and (row.meter_kind, row.meter_reading_mode) == ("heat", "manual")


def test_tags_by_label_or_value_and_unknown_ones_are_warned() -> None:
    row = check(tags="独居老人、low_income_subsidy 爱唱歌")
    assert isinstance(row, ValidRow)
    assert row.tags == ("elderly_alone", "low_income_subsidy")
    assert [(w.field, w.code) for w in row.warnings] == [("tags", "unknown_tag")]


def test_a_missing_phone_is_a_warning_not_a_reject() -> None:
    row = check(phone="")
    assert isinstance(row, ValidRow) and row.phones == ()
    assert [(w.field, w.code, w.severity) for w in row.warnings] == [("phone", "missing", "warning")]


def test_a_large_flat_is_imported_with_a_warning() -> None:
    row = check(heated_area_m2="350")
    assert isinstance(row, ValidRow)
    assert [(w.field, w.code) for w in row.warnings] == [("heated_area_m2", "area_unusual")]


def test_gas_and_electricity_rows_need_no_area() -> None:
    assert isinstance(check(utility="燃气", heated_area_m2=""), ValidRow)
    assert isinstance(check(utility="electricity", heated_area_m2=""), ValidRow)


# ---------------------------------------------------------------------------------------------------
# Reject reasons, one by one


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"account_no": ""}, ("account_no", "required")),
        ({"account_no": "80-0001"}, ("account_no", "invalid_account_no")),
        ({"account_no": "80001"}, ("account_no", "invalid_account_no")),
        ({"account_no": "8" * 21}, ("account_no", "invalid_account_no")),
        ({"name": ""}, ("name", "required")),
        ({"name": "王" * 101}, ("name", "too_long")),
        ({"id_type": "驾驶证"}, ("id_type", "invalid_id_type")),
        ({"id_number": ""}, ("id_number", "required")),
        ({"id_number": ID_A[:-1] + ("0" if ID_A[-1] != "0" else "1")}, ("id_number", "invalid_id_number")),
        ({"id_number": "23010319581315002X"}, ("id_number", "invalid_id_number")),  # month 13
        ({"id_number": "2301031958031500"}, ("id_number", "invalid_id_number")),
        (
            {"id_type": "统一社会信用代码", "id_number": "91350100M000100Y44"},
            ("id_number", "invalid_id_number"),
        ),
        ({"phone": "1384567123"}, ("phone", "invalid_phone")),
        ({"phone": "13845671234;12345"}, ("phone", "invalid_phone")),
        ({"phone": "23845671234"}, ("phone", "invalid_phone")),
        ({"district": ""}, ("district", "required")),
        ({"community": ""}, ("community", "required")),
        ({"building": ""}, ("building", "required")),
        ({"unit": ""}, ("unit", "required")),
        ({"room": ""}, ("room", "required")),
        ({"room": "5" * 21}, ("room", "too_long")),
        ({"heated_area_m2": ""}, ("heated_area_m2", "required")),
        ({"heated_area_m2": "约90"}, ("heated_area_m2", "invalid_number")),
        ({"heated_area_m2": "-5"}, ("heated_area_m2", "invalid_number")),
        ({"heated_area_m2": "0.99"}, ("heated_area_m2", "area_out_of_range")),
        ({"heated_area_m2": "2000.01"}, ("heated_area_m2", "area_out_of_range")),
        ({"property_cert_no": "黑" * 61}, ("property_cert_no", "too_long")),
        ({"utility": ""}, ("utility", "required")),
        ({"utility": "自来水"}, ("utility", "invalid_utility")),
        ({"opened_on": ""}, ("opened_on", "required")),
        ({"opened_on": "2020-13-01"}, ("opened_on", "invalid_date")),
        ({"opened_on": "15/10/2009"}, ("opened_on", "invalid_date")),
        ({"opened_on": "2026-11-23"}, ("opened_on", "date_out_of_range")),
        ({"opened_on": "1949-12-31"}, ("opened_on", "date_out_of_range")),
        ({"meter_serial": "HM#0001"}, ("meter_serial", "invalid_meter_serial")),
        ({"meter_serial": "HM0001", "meter_kind": "水表"}, ("meter_kind", "invalid_meter_kind")),
        ({"meter_serial": "GM0001", "meter_kind": "燃气表"}, ("meter_kind", "meter_kind_mismatch")),
        ({"customer_class": "别墅"}, ("customer_class", "invalid_customer_class")),
        ({"household_size": "0"}, ("household_size", "invalid_household_size")),
        ({"household_size": "21"}, ("household_size", "invalid_household_size")),
        ({"household_size": "三"}, ("household_size", "invalid_household_size")),
    ],
)
def test_reject_reasons(overrides: dict[str, Any], expected: tuple[str, str]) -> None:
    assert errors(check(**overrides)) == {expected}


def test_the_area_limit_applies_to_residential_rows_only() -> None:
    assert isinstance(check(customer_class="非居民", heated_area_m2="2500"), ValidRow)
    assert errors(check(customer_class="居民", heated_area_m2="2500")) == {
        ("heated_area_m2", "area_out_of_range")
    }


def test_every_problem_of_a_row_is_reported_at_once() -> None:
    outcome = check(account_no="", phone="12345", heated_area_m2="", opened_on="yesterday", tags="爱唱歌")
    assert errors(outcome) == {
        ("account_no", "required"),
        ("phone", "invalid_phone"),
        ("heated_area_m2", "required"),
        ("opened_on", "invalid_date"),
    }
    assert isinstance(outcome, RejectedRow)
    assert [p.code for p in outcome.problems if p.severity == "warning"] == ["unknown_tag"]


def test_the_checksum_message_comes_from_the_identity_rules() -> None:
    outcome = check(id_number=ID_A[:-1] + ("0" if ID_A[-1] != "0" else "1"))
    assert isinstance(outcome, RejectedRow)
    assert "check digit" in outcome.problems[0].message


def test_messages_never_carry_a_whole_phone_or_id_number() -> None:
    bad_id = ID_A[:-1] + ("0" if ID_A[-1] != "0" else "1")
    outcome = check(phone="1384567123;13912345678", id_number=bad_id)
    text = " ".join(p.message for p in outcome.problems)  # type: ignore[union-attr]
    assert "1384567123" not in text and bad_id not in text
    assert "138***7123" in text


# ---------------------------------------------------------------------------------------------------
# Headers


def test_english_headers_and_units_in_brackets() -> None:
    english = {f: record()[CHINESE_HEADERS[f]] for f in FIELDS}
    english["heated_area_m2（㎡）"] = english.pop("heated_area_m2")
    result = run(english)
    assert len(result.valid) == 1 and result.valid[0].heated_area_m2 == Decimal("89.50")


def test_header_aliases_and_unknown_columns() -> None:
    headers = ["户号", "户名", "身份证号", "手机号码", "区县", "小区名称", "楼栋", "单元号", "门牌号",
               "采暖面积(m²)", "房产证号", "业务类型", "开户时间", "备注"]  # fmt: skip
    mapping = map_headers(headers)
    assert mapping.positions["name"] == 1 and mapping.positions["heated_area_m2"] == 9
    assert mapping.positions["meter_serial"] == -1
    assert mapping.unknown == ("备注",)
    validator = ArchiveValidator(headers, today=TODAY)
    row = validator.validate(
        ["8000000002", "李建国", ID_B, "13945678901", "道里区", "群力家园", "3", "2", "1101", "120",
         "", "供热", "2015-01-01", "无"],
        2,
    )  # fmt: skip
    assert isinstance(row, ValidRow) and row.name == "李建国" and row.tags == ()


def test_a_missing_required_column_is_refused_up_front() -> None:
    with pytest.raises(HeaderError, match=r"id_number \(证件号码\)"):
        map_headers([h for h in HEADERS if h != "证件号码"])


def test_a_column_given_twice_is_refused() -> None:
    with pytest.raises(HeaderError, match="both give 'phone'"):
        map_headers([*HEADERS, "手机"])


def test_short_and_blank_rows() -> None:
    validator = ArchiveValidator(HEADERS, today=TODAY)
    full = [record()[h] for h in HEADERS]
    assert validator.validate(["", " ", None], 2) is None  # blank: skipped, not counted
    row = validator.validate(full[:14], 3)  # trailing optional cells left out
    assert isinstance(row, ValidRow) and row.meter_serial is None
    assert validator.rows_seen == 1


# ---------------------------------------------------------------------------------------------------
# Addresses


@pytest.mark.parametrize(
    "parts",
    [
        ("南岗区", "学府四道街小区", "12栋", "3单元", "502室"),
        (" 南岗区 ", "学府四道街 小区", "１２号楼", "３", "５０２"),
        ("南岗区", "学府四道街小区", "12号", "3", "502号"),
    ],
)
def test_one_dwelling_one_key(parts: tuple[str, ...]) -> None:
    assert premise_address_key(*parts) == "南岗区|学府四道街小区|12|3|502"
    assert premise_address(*parts) == "南岗区学府四道街小区12栋3单元502室"
    row = check(district=parts[0], community=parts[1], building=parts[2], unit=parts[3], room=parts[4])
    assert isinstance(row, ValidRow) and row.address_key == "南岗区|学府四道街小区|12|3|502"


_part = st.text(alphabet="南岗区小号楼栋幢单元室户门1２3ＡaB -　", min_size=1, max_size=8)


@given(st.tuples(_part, _part, _part, _part, _part))
def test_the_fast_address_path_agrees_with_the_premise_rules(parts: tuple[str, ...]) -> None:
    validator = ArchiveValidator(HEADERS, today=TODAY)
    key = validator._address_key(*parts)
    assert key == address_key(*parts)
    assert _address_from_key(key) == format_address(*parts)


# ---------------------------------------------------------------------------------------------------
# In-file duplicates


def test_the_second_row_with_an_account_number_is_rejected() -> None:
    result = run(record(), record(id_number=ID_B, name="李建国", room="602"))
    assert [r.row_no for r in result.valid] == [2]
    assert errors(result.rejected[0]) == {("account_no", "duplicate_account_no")}
    assert "row 2" in result.rejected[0].problems[0].message


def test_a_broken_row_does_not_claim_its_account_number() -> None:
    result = run(record(heated_area_m2=""), record())
    assert [r.row_no for r in result.valid] == [3]


def test_two_account_numbers_for_one_utility_at_one_dwelling() -> None:
    result = run(
        record(),
        record(account_no="8000000002", building="12号楼"),
        record(account_no="8000000003", utility="燃气"),
    )
    assert [r.row_no for r in result.valid] == [2, 4]
    assert errors(result.rejected[0]) == {("utility", "duplicate_premise_utility")}


def test_a_meter_serial_seen_twice_is_dropped_with_a_warning() -> None:
    result = run(
        record(meter_serial="HM0001"),
        record(account_no="8000000002", room="602", meter_serial="hm0001", id_number=ID_B, name="李建国"),
    )
    first, second = result.valid
    assert first.meter_serial == "HM0001" and second.meter_serial is None and second.meter_kind is None
    assert [(w.field, w.code) for w in second.warnings] == [("meter_serial", "duplicate_meter_serial")]


def test_one_id_number_under_two_names_keeps_the_first() -> None:
    result = run(record(), record(account_no="8000000002", utility="燃气", name="王秀云"))
    assert [r.name for r in result.valid] == ["王秀英", "王秀英"]
    assert [(w.code, w.message) for w in result.valid[1].warnings] == [
        ("name_differs", "This ID number was given as 王*英 on an earlier row; the first name is kept.")
    ]


def test_probable_duplicates_same_phone_and_certificate_different_ids() -> None:
    result = run(
        record(),
        record(account_no="8000000002", utility="燃气", id_number=ID_B, name="李建国"),  # same phone and cert
        record(account_no="8000000003", room="602", id_number=ID_C, name="赵敏",
               property_cert_no="黑(2019)哈尔滨市不动产权第0999999号"),  # same phone, other cert
        record(account_no="8000000004", room="702", name="王秀英"),  # same person again: not a duplicate
    )  # fmt: skip
    assert len(result.valid) == 4
    assert [
        (d.row_no, d.other_row_no, d.account_no, d.other_account_no) for d in result.probable_duplicates
    ] == [(3, 2, "8000000002", "8000000001")]


def test_a_duplicate_pair_is_reported_once() -> None:
    result = run(
        record(phone="13845671234;13945678901"),
        record(account_no="8000000002", utility="燃气", id_number=ID_B, name="李建国",
               phone="13945678901、13845671234"),
        record(account_no="8000000003", utility="电力", heated_area_m2="", id_number=ID_B, name="李建国"),
    )  # fmt: skip
    assert len(result.probable_duplicates) == 1


def test_full_width_brackets_in_certificates_are_the_same_certificate() -> None:
    result = run(
        record(),
        record(account_no="8000000002", utility="燃气", id_number=ID_B, name="李建国",
               property_cert_no="黑（2019）哈尔滨市不动产权第0123456号"),
    )  # fmt: skip
    assert result.valid[1].property_cert_no == "黑(2019)哈尔滨市不动产权第0123456号"
    assert len(result.probable_duplicates) == 1


# ---------------------------------------------------------------------------------------------------
# Completeness


def _rows(n: int, **overrides_for_first: Any) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        body = f"230103{1950 + i % 50}0101{i % 1000:03d}"
        values = {"account_no": f"8{i:09d}", "id_number": resident_id(body), "room": f"{i + 100}"}
        if i == 0:
            values.update(overrides_for_first)
        out.append(record(**values))
    return out


def test_completeness_counts_present_cells_and_flags_fields_over_target() -> None:
    result = run(*_rows(200, id_number=""))  # 1 of 200 missing = 0.5 %: not under the target
    report = result.completeness
    assert report is not None and report.rows == 200
    id_number = report.field("id_number")
    assert (id_number.present, id_number.missing, id_number.invalid) == (199, 1, 1)
    assert id_number.missing_pct == pytest.approx(0.5)
    assert report.over_target == ("id_number",)
    assert report.field("meter_serial").missing_pct == 100.0 and not report.field("meter_serial").over_target
    assert any("OVER TARGET" in line and line.startswith("id_number") for line in report.to_lines())


def test_completeness_just_under_the_target() -> None:
    report = run(*_rows(201, id_number="")).completeness
    assert report is not None
    assert report.field("id_number").missing_pct == pytest.approx(100 / 201)
    assert report.over_target == ()


def test_heated_area_completeness_counts_heating_rows_only() -> None:
    rows = _rows(3)
    rows.append(record(account_no="8100000001", utility="燃气", heated_area_m2="", id_number=ID_B, room="9"))
    rows.append(record(account_no="8100000002", heated_area_m2="", id_number=ID_C, room="10"))
    report = run(*rows).completeness
    assert report is not None
    area = report.field("heated_area_m2")
    assert (area.applicable, area.present, area.missing) == (4, 3, 1)
    assert area.missing_pct == pytest.approx(25.0)
