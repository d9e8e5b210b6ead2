"""Rows of a legacy customer archive (CSV or XLSX export of the old billing system): pure rules, no I/O.

A legacy row describes one account (户号) of one customer at one premise. The importer reads cells, hands
them to :class:`ArchiveValidator` row by row and gets either a normalised :class:`ValidRow` or a
:class:`RejectedRow` carrying every problem found as ``(field, code, message)``. Problems of severity
``warning`` do not reject the row; they are reported with it.

Columns are recognised by Chinese or English header (:data:`HEADER_ALIASES`, matched after NFKC, case
folding and dropping units in brackets, so ``供热面积（㎡）`` and ``heated_area_m2`` both name the heated
area). What is checked, with the code reported:

- ``required``: account number, name, ID number, district, community, building, unit, room, utility,
  opening date; the heated area for heating accounts (a heating bill is priced by area).
- ``invalid_account_no`` (6 to 20 digits and capitals), ``invalid_id_type``, ``invalid_id_number``
  (format, birth date and check character of the resident ID card / the unified social credit code),
  ``invalid_phone`` (every number in the cell, separated by ``;`` ``，`` ``、`` ...), ``invalid_date`` /
  ``date_out_of_range``, ``invalid_utility``, ``invalid_number`` / ``area_out_of_range`` (residential
  1 to 2,000 m²; a warning ``area_unusual`` above 300 m²), ``invalid_customer_class``,
  ``invalid_household_size`` (1 to 20), ``invalid_meter_serial``, ``invalid_meter_kind``,
  ``meter_kind_mismatch``, ``too_long``.
- In-file duplicates: ``duplicate_account_no`` (the second row with an account number is rejected) and
  ``duplicate_premise_utility`` (two account numbers for one utility at one dwelling). Warnings:
  ``duplicate_meter_serial`` (the meter is dropped), ``name_differs`` (one ID number, two names),
  ``unknown_tag``, ``missing`` (no phone).
- Probable duplicate customers, reported and never rejected: the same phone and the same property
  certificate under different ID numbers (:class:`ProbableDuplicate`).

:class:`CompletenessReport` counts, per field, how many rows carry a value; ID numbers and heated areas
have a target of under 0.5% missing (the area only over heating rows).

The per-row path is written for throughput (incremental imports validate every row with it; an initial
load only the rows :mod:`customer.domain.legacy_columnar` cannot decide): precompiled patterns,
positional cells, no model objects per row.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from operator import add, itemgetter
from typing import Any, NamedTuple

from customer.domain.accounts import ACCOUNT_NO_RE
from customer.domain.identity import (
    IdType,
    InvalidIdentity,
    InvalidPhone,
    validate_phone,
    validate_resident_id,
    validate_uscc,
)
from customer.domain.premises import address_key, format_address
from customer.domain.tags import TAG_LABELS_ZH, CustomerTag
from utilis_shared.pii import mask_name, mask_phone

# ---------------------------------------------------------------------------------------------------
# Premise addresses: one rule for the import and the API.


def premise_address_key(district: str, community: str, building: str, unit: str, room: str) -> str:
    """``南岗区|学府四道街小区|12|3|502``, the unique key of a premise (``premises.address_key``).

    Delegates to :func:`customer.domain.premises.address_key` so that a dwelling imported from a legacy
    archive and the same dwelling opened through the API are one premise.
    """
    return address_key(district, community, building, unit, room)


def premise_address(district: str, community: str, building: str, unit: str, room: str) -> str:
    """``南岗区学府四道街小区12栋3单元502室``, the one-line form people read (``premises.address``)."""
    return format_address(district, community, building, unit, room)


# ---------------------------------------------------------------------------------------------------
# Columns

FIELDS: tuple[str, ...] = (
    "account_no",
    "name",
    "id_type",
    "id_number",
    "phone",
    "district",
    "community",
    "building",
    "unit",
    "room",
    "heated_area_m2",
    "property_cert_no",
    "utility",
    "opened_on",
    "meter_serial",
    "meter_kind",
    "customer_class",
    "household_size",
    "tags",
)

# The headers the demo generator writes and a legacy export most often uses.
CHINESE_HEADERS: dict[str, str] = {
    "account_no": "户号",
    "name": "姓名",
    "id_type": "证件类型",
    "id_number": "证件号码",
    "phone": "联系电话",
    "district": "区",
    "community": "小区",
    "building": "楼号",
    "unit": "单元",
    "room": "房号",
    "heated_area_m2": "供热面积",
    "property_cert_no": "不动产权证号",
    "utility": "业务类型",
    "opened_on": "开户日期",
    "meter_serial": "表号",
    "meter_kind": "表类型",
    "customer_class": "户类型",
    "household_size": "人口数",
    "tags": "标签",
}

HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "account_no": ("户号", "用户号", "用户编号", "账户号", "account_no", "accountno", "account"),
    "name": ("姓名", "户名", "用户名称", "客户名称", "户主姓名", "name"),
    "id_type": ("证件类型", "id_type", "idtype"),
    "id_number": ("证件号码", "证件号", "身份证号", "身份证号码", "id_number", "idnumber", "id_no"),
    "phone": ("联系电话", "电话", "手机", "手机号", "手机号码", "联系方式", "phone", "phones", "mobile"),
    "district": ("区", "区县", "所属区", "行政区", "district"),
    "community": ("小区", "小区名称", "community"),
    "building": ("楼号", "楼栋", "栋号", "building"),
    "unit": ("单元", "单元号", "unit"),
    "room": ("房号", "门牌号", "室号", "room"),
    "heated_area_m2": ("供热面积", "采暖面积", "建筑面积", "面积", "heated_area_m2", "heated_area", "area"),
    "property_cert_no": ("不动产权证号", "产权证号", "房产证号", "不动产权证书号", "property_cert_no"),
    "utility": ("业务类型", "服务类型", "utility"),
    "opened_on": ("开户日期", "开户时间", "opened_on", "opened"),
    "meter_serial": ("表号", "表具编号", "meter_serial", "meter_no"),
    "meter_kind": ("表类型", "表具类型", "meter_kind", "meter_type"),
    "customer_class": ("户类型", "用户性质", "用户类别", "customer_class"),
    "household_size": ("人口数", "家庭人口", "人口", "household_size"),
    "tags": ("标签", "特殊标记", "tags"),
}

REQUIRED_COLUMNS: tuple[str, ...] = (
    "account_no",
    "name",
    "id_number",
    "district",
    "community",
    "building",
    "unit",
    "room",
    "utility",
    "opened_on",
)

_UNIT_IN_BRACKETS = re.compile(r"\(.*?\)|\[.*?\]")


def _header_key(header: str) -> str:
    h = unicodedata.normalize("NFKC", str(header)).replace("\ufeff", "")
    h = _UNIT_IN_BRACKETS.sub("", h)
    return "".join(h.split()).strip("*").lower()


_ALIAS_TO_FIELD: dict[str, str] = {
    _header_key(alias): name for name, aliases in HEADER_ALIASES.items() for alias in aliases
}


class HeaderError(ValueError):
    """The header row cannot be used: a required column is missing or a column is given twice."""


@dataclass(frozen=True, slots=True)
class HeaderMap:
    """Which cell position holds which field (``-1``: the file has no such column)."""

    positions: dict[str, int]
    unknown: tuple[str, ...]  # headers that are not recognised; their cells are ignored


def map_headers(headers: Sequence[Any]) -> HeaderMap:
    positions = dict.fromkeys(FIELDS, -1)
    unknown: list[str] = []
    for i, header in enumerate(headers):
        if header is None or not str(header).strip():
            continue
        name = _ALIAS_TO_FIELD.get(_header_key(header))
        if name is None:
            unknown.append(str(header))
            continue
        if positions[name] >= 0:
            raise HeaderError(f"columns {i + 1} and {positions[name] + 1} both give {name!r}")
        positions[name] = i
    missing = [name for name in REQUIRED_COLUMNS if positions[name] < 0]
    if missing:
        raise HeaderError(
            "required columns missing: " + ", ".join(f"{name} ({CHINESE_HEADERS[name]})" for name in missing)
        )
    return HeaderMap(positions, tuple(unknown))


# ---------------------------------------------------------------------------------------------------
# Results


class Problem(NamedTuple):
    field: str
    code: str
    message: str
    severity: str = "error"  # error (the row is rejected) | warning (imported, reported)


class ValidRow(NamedTuple):
    """A row ready to load: every value normalised (ID numbers and phones in their canonical form).

    A named tuple rather than a dataclass: one is built per row and a frozen dataclass costs five times
    as much to construct."""

    row_no: int
    account_no: str
    name: str
    kind: str  # person | organisation
    id_type: str
    id_number: str
    phones: tuple[str, ...]
    district: str
    community: str
    building: str
    unit: str
    room: str
    address_key: str
    address: str
    heated_area_m2: Decimal | None
    property_cert_no: str | None
    utility: str
    opened_on: date
    meter_serial: str | None
    meter_kind: str | None  # heat | gas | electricity
    meter_reading_mode: str | None  # remote | manual
    customer_class: str
    household_size: int | None  # None: the account's default
    tags: tuple[str, ...]
    warnings: tuple[Problem, ...] = ()


class RejectedRow(NamedTuple):
    row_no: int
    account_no: str  # as read (may be blank or malformed)
    problems: tuple[Problem, ...]  # errors first, then warnings


@dataclass(frozen=True, slots=True)
class ProbableDuplicate:
    """Two rows that look like one household registered twice: same phone, same property certificate,
    different ID numbers. Reported for a person to check; both rows are imported."""

    row_no: int
    account_no: str
    other_row_no: int  # the earlier row
    other_account_no: str
    phone: str  # normalised; mask it before showing it anywhere
    property_cert_no: str


@dataclass(frozen=True, slots=True)
class FieldCompleteness:
    field: str
    header: str
    applicable: int  # rows where the field is expected (all rows; heating rows for the heated area)
    present: int
    invalid: int  # rows rejected with an error on this field
    target_missing_pct: float | None

    @property
    def missing(self) -> int:
        return self.applicable - self.present

    @property
    def missing_pct(self) -> float:
        return 100.0 * self.missing / self.applicable if self.applicable else 0.0

    @property
    def over_target(self) -> bool:
        return self.target_missing_pct is not None and self.missing_pct >= self.target_missing_pct


@dataclass(frozen=True, slots=True)
class CompletenessReport:
    rows: int
    fields: tuple[FieldCompleteness, ...]

    def field(self, name: str) -> FieldCompleteness:
        for f in self.fields:
            if f.field == name:
                return f
        raise KeyError(name)

    @property
    def over_target(self) -> tuple[str, ...]:
        return tuple(f.field for f in self.fields if f.over_target)

    def to_lines(self) -> list[str]:
        lines = [f"{'field':<18} {'present':>9} {'missing':>9} {'missing %':>10} {'invalid':>8}  target"]
        for f in self.fields:
            target = "" if f.target_missing_pct is None else f"< {f.target_missing_pct:g}%"
            flag = "  OVER TARGET" if f.over_target else ""
            lines.append(
                f"{f.field:<18} {f.present:>9} {f.missing:>9} {f.missing_pct:>9.2f}% "
                f"{f.invalid:>8}  {target}{flag}"
            )
        return lines


@dataclass(frozen=True, slots=True)
class ValidationRules:
    area_min_m2: Decimal = Decimal("1")
    area_max_residential_m2: Decimal = Decimal("2000")
    area_warn_residential_m2: Decimal = Decimal("300")
    area_max_non_residential_m2: Decimal = Decimal("99999.99")  # premises.area_range
    earliest_opening: date = date(1950, 1, 1)
    missing_targets_pct: tuple[tuple[str, float], ...] = (("id_number", 0.5), ("heated_area_m2", 0.5))


DEFAULT_RULES = ValidationRules()

# ---------------------------------------------------------------------------------------------------
# Value vocabularies

_ID_TYPES: dict[str, str] = {
    "身份证": IdType.RESIDENT_ID,
    "居民身份证": IdType.RESIDENT_ID,
    "二代身份证": IdType.RESIDENT_ID,
    "resident_id": IdType.RESIDENT_ID,
    "统一社会信用代码": IdType.USCC,
    "营业执照": IdType.USCC,
    "uscc": IdType.USCC,
    "护照": IdType.PASSPORT,
    "passport": IdType.PASSPORT,
    "港澳台居民居住证": IdType.HK_MACAO_TAIWAN_PERMIT,
    "港澳居民来往内地通行证": IdType.HK_MACAO_TAIWAN_PERMIT,
    "台湾居民来往大陆通行证": IdType.HK_MACAO_TAIWAN_PERMIT,
    "hmt_permit": IdType.HK_MACAO_TAIWAN_PERMIT,
    "其他": IdType.OTHER,
    "other": IdType.OTHER,
}
_UTILITIES: dict[str, str] = {
    "供热": "heating",
    "采暖": "heating",
    "热力": "heating",
    "暖气": "heating",
    "集中供热": "heating",
    "heating": "heating",
    "燃气": "gas",
    "天然气": "gas",
    "管道燃气": "gas",
    "gas": "gas",
    "电力": "electricity",
    "供电": "electricity",
    "电": "electricity",
    "用电": "electricity",
    "electricity": "electricity",
}
_UTILITY_METER_KIND = {"heating": "heat", "gas": "gas", "electricity": "electricity"}
_METER_KIND_WORDS: tuple[tuple[str, str], ...] = (
    ("热量表", "heat"),
    ("热表", "heat"),
    ("heat", "heat"),
    ("燃气表", "gas"),
    ("气表", "gas"),
    ("gas", "gas"),
    ("电能表", "electricity"),
    ("电表", "electricity"),
    ("electricity", "electricity"),
)
_REMOTE_WORDS = ("远传", "物联网", "智能", "nb", "remote")
_PLAIN_WORDS = ("ic卡", "机械", "普通", "manual")
_CUSTOMER_CLASSES: dict[str, str] = {
    "居民": "residential",
    "民用": "residential",
    "住宅": "residential",
    "residential": "residential",
    "非居民": "non_residential",
    "商业": "non_residential",
    "工业": "non_residential",
    "公建": "non_residential",
    "单位": "non_residential",
    "non_residential": "non_residential",
    "commercial": "non_residential",
}
_TAGS: dict[str, str] = {label: tag.value for tag, label in TAG_LABELS_ZH.items()}
_TAGS.update({tag.value: tag.value for tag in CustomerTag})
_TAGS.update(
    {
        "独居": CustomerTag.ELDERLY_ALONE.value,
        "空巢老人": CustomerTag.ELDERLY_ALONE.value,
        "低保": CustomerTag.LOW_INCOME_SUBSIDY.value,
        "困难户": CustomerTag.LOW_INCOME_SUBSIDY.value,
        "婴幼儿": CustomerTag.WITH_CHILDREN.value,
        "残疾": CustomerTag.DISABILITY.value,
        "残障": CustomerTag.DISABILITY.value,
        "医疗设备": CustomerTag.MEDICAL_EQUIPMENT.value,
        "重点": CustomerTag.VIP.value,
        "vip": CustomerTag.VIP.value,
        "敏感": CustomerTag.SENSITIVE.value,
    }
)

_LIST_SPLIT = re.compile(r"[;；,，、/|]")
_TAG_SPLIT = re.compile(r"[;；,，、/|\s]+")
_DATE_RE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?$")
_DATE_COMPACT_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_AREA_RE = re.compile(r"^(\d{1,7}(?:\.\d+)?)(?:m2|平方米|平米|平)?$")
_INT_RE = re.compile(r"^(\d{1,3})人?$")
_METER_SERIAL_RE = re.compile(r"^[0-9A-Za-z\-]{4,40}$")
_GENERIC_ID_RE = re.compile(r"^[0-9A-Z]{5,30}$")
_CENT = Decimal("0.01")

_MAX_LEN = {
    "name": 100,
    "district": 50,
    "community": 100,
    "building": 20,
    "unit": 20,
    "room": 20,
    "property_cert_no": 60,
}


def cell_text(value: Any) -> str:
    """A cell as trimmed text (XLSX cells arrive as numbers and datetimes)."""
    if value is None:
        return ""
    if type(value) is str:
        return value.strip()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _nfkc(value: str) -> str:
    return value if value.isascii() else unicodedata.normalize("NFKC", value)


def _parse_date(value: str) -> date | None:
    m = _DATE_RE.match(value) or _DATE_COMPACT_RE.match(value)
    if m is None:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------------
# The validator


class ArchiveValidator:
    """Validates the rows of one archive, in order, and keeps what is needed across rows (duplicates,
    completeness). Not thread-safe; one instance per file."""

    def __init__(
        self,
        headers: Sequence[Any],
        *,
        rules: ValidationRules = DEFAULT_RULES,
        today: date | None = None,
        probable_duplicates: bool = True,
    ) -> None:
        """``probable_duplicates=False``: :meth:`validate` leaves the probable-duplicate rule to the caller,
        who then calls :meth:`note_household` for every valid row in file order (the columnar path does)."""
        self.header_map = map_headers(headers)
        self.checks_probable_duplicates = probable_duplicates
        self.rules = rules
        self.today = today or date.today()  # noqa: DTZ011 - a calendar date; callers pass business_today()
        self._positions = tuple(self.header_map.positions[f] for f in FIELDS)
        # Cells are picked by one itemgetter; a column the file lacks reads a blank cell appended to the row.
        self._pad = any(p < 0 for p in self._positions)
        self._pick = itemgetter(*(p if p >= 0 else len(headers) for p in self._positions))
        self._present = [0] * len(FIELDS)
        self._invalid = dict.fromkeys(FIELDS, 0)
        self._area_applicable = 0  # rows that are not gas or electricity
        self._area_present = 0  # ... of which carry an area
        self.rows_seen = 0
        self.valid = 0
        self.rejected = 0
        self.with_warnings = 0
        # In-file state
        self._accounts: dict[str, int] = {}  # account_no -> row
        self._premise_utility: dict[tuple[str, str], tuple[int, str]] = {}
        self._meters: dict[str, int] = {}
        self._names: dict[str, str] = {}  # id_number -> first name seen
        self._phone_cert: dict[tuple[str, str], tuple[int, str, str]] = {}  # -> (row, account, id_number)
        self._dup_pairs: set[tuple[str, str, str]] = set()
        self._part_cache: dict[tuple[int, str], str] = {}
        self.probable_duplicates: list[ProbableDuplicate] = []

    # -- per row ----------------------------------------------------------------------------------

    def _address_key(self, district: str, community: str, building: str, unit: str, room: str) -> str:
        """:func:`premise_address_key` with each part's normal form remembered: districts, communities,
        building and room numbers repeat thousands of times in an archive. Each part is normalised by
        :func:`customer.domain.premises.address_key` itself (its parts are independent; a test pins the
        equality), so the rule stays in one place."""
        cache = self._part_cache
        parts = []
        for slot, value in enumerate((district, community, building, unit, room)):
            normal = cache.get((slot, value))
            if normal is None:
                if len(cache) > 200_000:
                    cache.clear()
                normal = cache[(slot, value)] = address_part(slot, value)
            parts.append(normal)
        return "|".join(parts)

    def note_household(
        self, row_no: int, account_no: str, id_number: str, phones: Sequence[str], cert: str | None
    ) -> None:
        """The probable-duplicate rule for one valid row: the same phone and the same property certificate
        as an earlier valid row under another ID number."""
        if cert is None:
            return
        for phone in phones:
            seen = self._phone_cert.setdefault((phone, cert), (row_no, account_no, id_number))
            if seen[2] != id_number:
                pair = (cert, *sorted((seen[2], id_number)))
                if pair not in self._dup_pairs:
                    self._dup_pairs.add(pair)  # type: ignore[arg-type]
                    self.probable_duplicates.append(
                        ProbableDuplicate(row_no, account_no, seen[0], seen[1], phone, cert)
                    )

    def count_clean(self, rows: int, present: Sequence[int], area_applicable: int, area_present: int) -> None:
        """Count rows found valid, without warnings, elsewhere (the columnar path): ``present`` per field of
        :data:`FIELDS`, the heated area's applicable and present rows."""
        self.rows_seen += rows
        self.valid += rows
        self._present = list(map(add, self._present, present))
        self._area_applicable += area_applicable
        self._area_present += area_present

    def picked(self, values: Sequence[Any]) -> tuple[Any, ...]:
        """A row's cells (in file order) as the cells of :data:`FIELDS`, blank where the file has none."""
        try:
            return self._pick([*values, ""] if self._pad else values)
        except IndexError:  # a short row (trailing cells left out)
            n = len(values)
            return tuple(values[p] if 0 <= p < n else "" for p in self._positions)

    def validate(self, values: Sequence[Any], row_no: int) -> ValidRow | RejectedRow | None:
        """Check one row (cells in file order); ``None`` for a blank row, which is skipped."""
        return self.validate_cells(self.picked(values), row_no)

    def validate_cells(self, picked: Sequence[Any], row_no: int) -> ValidRow | RejectedRow | None:
        """:meth:`validate` of a row's cells already in :data:`FIELDS` order."""
        cells = [c.strip() if type(c) is str else cell_text(c) for c in picked]
        if not any(cells):
            return None
        (
            account_no,
            name,
            id_type_s,
            id_number_s,
            phone_s,
            district,
            community,
            building,
            unit,
            room,
            area_s,
            cert_s,
            utility_s,
            opened_s,
            meter_serial_s,
            meter_kind_s,
            class_s,
            size_s,
            tags_s,
        ) = cells

        self.rows_seen += 1
        self._present = list(map(add, self._present, map(bool, cells)))

        errors: list[Problem] = []
        warnings: list[Problem] = []
        err = errors.append

        # Account number
        account_no = account_no.upper()
        if not account_no:
            err(Problem("account_no", "required", "The account number (户号) is missing."))
        elif not ACCOUNT_NO_RE.match(account_no):
            err(
                Problem(
                    "account_no",
                    "invalid_account_no",
                    "An account number has 6 to 20 digits or capital letters.",
                )
            )

        # Holder
        if not name:
            err(Problem("name", "required", "The holder's name (姓名) is missing."))
        else:
            name = " ".join(name.split())
            if len(name) > 100:
                err(Problem("name", "too_long", "A name has at most 100 characters."))

        id_type: IdType | None = IdType.RESIDENT_ID
        if id_type_s:
            found = _ID_TYPES.get(id_type_s) or _ID_TYPES.get(id_type_s.lower())
            if found is None:
                err(
                    Problem(
                        "id_type",
                        "invalid_id_type",
                        f"Unknown document type {id_type_s!r} (身份证, 统一社会信用代码, 护照, ...).",
                    )
                )
                id_type = None
            else:
                id_type = IdType(found)
        id_number = ""
        if not id_number_s:
            err(Problem("id_number", "required", "The ID number (证件号码) is missing."))
        elif id_type is not None:
            try:
                if id_type is IdType.RESIDENT_ID:
                    id_number = validate_resident_id(id_number_s, today=self.today)
                elif id_type is IdType.USCC:
                    id_number = validate_uscc(id_number_s)
                else:
                    id_number = "".join(_nfkc(id_number_s).split()).replace("-", "").upper()
                    if not _GENERIC_ID_RE.match(id_number):
                        raise InvalidIdentity("The document number has 5 to 30 letters and digits.")
            except InvalidIdentity as exc:
                err(Problem("id_number", exc.code, str(exc)))
        kind = "organisation" if id_type is IdType.USCC else "person"

        phones: list[str] = []
        if phone_s:
            phones, wrong = phone_list(phone_s)
            for part in wrong:
                err(
                    Problem(
                        "phone",
                        "invalid_phone",
                        f"{mask_phone(part)} is neither an 11-digit mobile number nor a "
                        "landline with area code.",
                    )
                )
        else:
            warnings.append(
                Problem("phone", "missing", "No phone number: the customer cannot be reached.", "warning")
            )

        # Premise
        if not (district and community and building and unit and room) or (
            len(district) > 50
            or len(community) > 100
            or len(building) > 20
            or len(unit) > 20
            or len(room) > 20
        ):
            for fname, val in (
                ("district", district),
                ("community", community),
                ("building", building),
                ("unit", unit),
                ("room", room),
            ):
                if not val:
                    err(Problem(fname, "required", f"The {fname} ({CHINESE_HEADERS[fname]}) is missing."))
                elif len(val) > _MAX_LEN[fname]:
                    err(Problem(fname, "too_long", f"The {fname} has at most {_MAX_LEN[fname]} characters."))

        cert: str | None = None
        if cert_s:
            cert = "".join(_nfkc(cert_s).split())
            if len(cert) > 60:
                err(
                    Problem(
                        "property_cert_no",
                        "too_long",
                        "A property certificate number has at most 60 characters.",
                    )
                )

        # Account
        utility = ""
        if not utility_s:
            err(Problem("utility", "required", "The utility (业务类型) is missing."))
        else:
            utility = _UTILITIES.get(utility_s) or _UTILITIES.get(utility_s.lower(), "")
            if not utility:
                err(
                    Problem(
                        "utility", "invalid_utility", f"Unknown utility {utility_s!r} (供热, 燃气 or 电力)."
                    )
                )

        customer_class = "non_residential" if kind == "organisation" else "residential"
        if class_s:
            found_class = _CUSTOMER_CLASSES.get(class_s) or _CUSTOMER_CLASSES.get(class_s.lower())
            if found_class is None:
                err(
                    Problem(
                        "customer_class",
                        "invalid_customer_class",
                        f"Unknown customer class {class_s!r} (居民 or 非居民).",
                    )
                )
            else:
                customer_class = found_class

        area: Decimal | None = None
        if utility != "gas" and utility != "electricity":
            self._area_applicable += 1
            if area_s:
                self._area_present += 1
        if area_s:
            m = _AREA_RE.match("".join(_nfkc(area_s).split()).lower())
            if m is None:
                err(
                    Problem(
                        "heated_area_m2",
                        "invalid_number",
                        f"The heated area {area_s!r} is not a number of square metres.",
                    )
                )
            else:
                try:
                    area = Decimal(m[1]).quantize(_CENT, ROUND_HALF_UP)
                except InvalidOperation:  # pragma: no cover - the pattern admits only plain decimals
                    area = None
                rules = self.rules
                if area is not None:
                    if customer_class == "residential":
                        if area < rules.area_min_m2 or area > rules.area_max_residential_m2:
                            err(
                                Problem(
                                    "heated_area_m2",
                                    "area_out_of_range",
                                    f"A residential heated area is between {rules.area_min_m2} and "
                                    f"{rules.area_max_residential_m2} m² (got {area}).",
                                )
                            )
                        elif area > rules.area_warn_residential_m2:
                            warnings.append(
                                Problem(
                                    "heated_area_m2",
                                    "area_unusual",
                                    f"A residential heated area of {area} m² is unusually large.",
                                    "warning",
                                )
                            )
                    elif area < rules.area_min_m2 or area > rules.area_max_non_residential_m2:
                        err(
                            Problem(
                                "heated_area_m2",
                                "area_out_of_range",
                                f"A heated area is between {rules.area_min_m2} and "
                                f"{rules.area_max_non_residential_m2} m² (got {area}).",
                            )
                        )
        elif utility == "heating":
            err(
                Problem(
                    "heated_area_m2",
                    "required",
                    "A heating account needs the heated area (供热面积): its bill is priced by area.",
                )
            )

        opened_on: date | None = None
        if not opened_s:
            err(Problem("opened_on", "required", "The opening date (开户日期) is missing."))
        else:
            opened_on = _parse_date(opened_s)
            if opened_on is None:
                err(
                    Problem(
                        "opened_on",
                        "invalid_date",
                        f"The opening date {opened_s!r} is not a date (YYYY-MM-DD).",
                    )
                )
            elif opened_on < self.rules.earliest_opening or opened_on > self.today:
                err(
                    Problem(
                        "opened_on",
                        "date_out_of_range",
                        f"The opening date {opened_on} is before {self.rules.earliest_opening} "
                        "or in the future.",
                    )
                )
                opened_on = None

        meter_serial: str | None = None
        meter_kind: str | None = None
        reading_mode: str | None = None
        if meter_serial_s:
            serial = _nfkc(meter_serial_s).upper()
            if not _METER_SERIAL_RE.match(serial):
                err(
                    Problem(
                        "meter_serial",
                        "invalid_meter_serial",
                        "A meter serial has 4 to 40 letters, digits or dashes.",
                    )
                )
            else:
                meter_serial = serial
                kind_text = meter_kind_s.lower()
                remote = False
                if kind_text:
                    meter_kind, remote, understood = meter_words(kind_text)
                    if not understood:
                        err(
                            Problem(
                                "meter_kind",
                                "invalid_meter_kind",
                                f"Unknown meter type {meter_kind_s!r} (热量表, 燃气表, 电能表, ...).",
                            )
                        )
                reading_mode = "remote" if remote else "manual"
                if utility:
                    expected = _UTILITY_METER_KIND[utility]
                    if meter_kind is None:
                        meter_kind = expected
                    elif meter_kind != expected:
                        err(
                            Problem(
                                "meter_kind",
                                "meter_kind_mismatch",
                                f"A {meter_kind} meter cannot measure a {utility} account.",
                            )
                        )

        household_size: int | None = None
        if size_s:
            m = _INT_RE.match(size_s)
            household_size = int(m[1]) if m else None
            if household_size is None or not 1 <= household_size <= 20:
                err(
                    Problem(
                        "household_size",
                        "invalid_household_size",
                        f"The household size {size_s!r} is not a whole number from 1 to 20.",
                    )
                )

        tags: list[str] = []
        if tags_s:
            for t in _TAG_SPLIT.split(tags_s):
                if not t:
                    continue
                tag = _TAGS.get(t) or _TAGS.get(t.lower())
                if tag is None:
                    warnings.append(Problem("tags", "unknown_tag", f"Unknown tag {t!r} ignored.", "warning"))
                elif tag not in tags:
                    tags.append(tag)

        key = address = ""
        if not errors:
            key = self._address_key(district, community, building, unit, room)
            address = _address_from_key(key)
            if len(key) > 300 or len(address) > 300:
                err(Problem("community", "too_long", "The address is longer than 300 characters."))

        # In-file duplicates (only among rows that are otherwise valid, so a broken row does not claim
        # an account number or a dwelling that a later, correct row needs).
        if not errors:
            first = self._accounts.get(account_no)
            if first is not None:
                err(
                    Problem(
                        "account_no",
                        "duplicate_account_no",
                        f"Account {account_no} already appears on row {first}.",
                    )
                )
            else:
                taken = self._premise_utility.get((key, utility))
                if taken is not None:
                    err(
                        Problem(
                            "utility",
                            "duplicate_premise_utility",
                            f"{address} already has a {utility} account ({taken[1]}, row {taken[0]}).",
                        )
                    )

        if errors:
            self.rejected += 1
            invalid = self._invalid
            for f in {p.field for p in errors}:
                invalid[f] += 1
            return RejectedRow(row_no, account_no, tuple(errors) + tuple(warnings))

        self._accounts[account_no] = row_no
        self._premise_utility[(key, utility)] = (row_no, account_no)
        if meter_serial is not None:
            first = self._meters.get(meter_serial)
            if first is not None:
                warnings.append(
                    Problem(
                        "meter_serial",
                        "duplicate_meter_serial",
                        f"Meter {meter_serial} already appears on row {first}; "
                        "the account is imported without it.",
                        "warning",
                    )
                )
                meter_serial = meter_kind = reading_mode = None
            else:
                self._meters[meter_serial] = row_no
        known_name = self._names.setdefault(id_number, name)
        if known_name != name:
            warnings.append(
                Problem(
                    "name",
                    "name_differs",
                    f"This ID number was given as {mask_name(known_name)} on an earlier row; "
                    "the first name is kept.",
                    "warning",
                )
            )
            name = known_name
        if self.checks_probable_duplicates and cert is not None:
            self.note_household(row_no, account_no, id_number, phones, cert)

        self.valid += 1
        if warnings:
            self.with_warnings += 1
        d, c, b, u, r = key.split("|")
        return ValidRow(
            row_no=row_no,
            account_no=account_no,
            name=name,
            kind=kind,
            id_type=str(id_type),
            id_number=id_number,
            phones=tuple(phones),
            district=d,
            community=c,
            building=b,
            unit=u,
            room=r,
            address_key=key,
            address=address,
            heated_area_m2=area,
            property_cert_no=cert,
            utility=utility,
            opened_on=opened_on,  # type: ignore[arg-type]  # not None when there are no errors
            meter_serial=meter_serial,
            meter_kind=meter_kind if meter_serial else None,
            meter_reading_mode=reading_mode if meter_serial else None,
            customer_class=customer_class,
            household_size=household_size,
            tags=tuple(tags),
            warnings=tuple(warnings),
        )

    # -- across rows ------------------------------------------------------------------------------

    def completeness(self) -> CompletenessReport:
        targets = dict(self.rules.missing_targets_pct)
        out = []
        for i, f in enumerate(FIELDS):
            if f == "heated_area_m2":
                applicable, present = self._area_applicable, self._area_present
            else:
                applicable, present = self.rows_seen, self._present[i]
            out.append(
                FieldCompleteness(
                    field=f,
                    header=CHINESE_HEADERS[f],
                    applicable=applicable,
                    present=present,
                    invalid=self._invalid[f],
                    target_missing_pct=targets.get(f),
                )
            )
        return CompletenessReport(self.rows_seen, tuple(out))


def phone_list(cell: str) -> tuple[list[str], list[str]]:
    """The phones of a cell (``;`` ``，`` ``、`` ... between them), normalised and each once, and the parts
    that are not phone numbers."""
    phones: list[str] = []
    wrong: list[str] = []
    for part in _LIST_SPLIT.split(_nfkc(cell)):
        part = part.strip()
        if not part:
            continue
        try:
            p = validate_phone(part)
        except InvalidPhone:
            wrong.append(part)
            continue
        if p not in phones:
            phones.append(p)
    return phones, wrong


def meter_words(kind_text: str) -> tuple[str | None, bool, bool]:
    """What a (lower-cased) meter type cell says: the meter kind it names, whether it is read remotely,
    and whether any of it was understood."""
    meter_kind = next((k for word, k in _METER_KIND_WORDS if word in kind_text), None)
    remote = any(w in kind_text for w in _REMOTE_WORDS)
    return meter_kind, remote, meter_kind is not None or remote or any(w in kind_text for w in _PLAIN_WORDS)


def address_part(slot: int, value: str) -> str:
    """Part ``slot`` (0 district ... 4 room) of :func:`premise_address_key`: each part is normalised on its
    own (a test pins the equality), so an import computes each distinct value's normal form once."""
    args = ["", "", "", "", ""]
    args[slot] = value
    return address_key(*args).split("|")[slot]


def _address_from_key(key: str) -> str:
    """:func:`premise_address` from an already computed key (one normalisation per row, not two); a test
    pins it to :func:`customer.domain.premises.format_address`."""
    d, c, b, u, r = key.split("|")
    return f"{d}{c}{b}栋{u}单元{r}室"


# ---------------------------------------------------------------------------------------------------
# Whole-file convenience (tests, dry runs)


@dataclass(slots=True)
class ValidationResult:
    valid: list[ValidRow] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    probable_duplicates: list[ProbableDuplicate] = field(default_factory=list)
    completeness: CompletenessReport | None = None
    unknown_columns: tuple[str, ...] = ()


def validate_records(
    records: Iterable[Mapping[str, Any]],
    *,
    rules: ValidationRules = DEFAULT_RULES,
    today: date | None = None,
    first_row_no: int = 2,
) -> ValidationResult:
    """Validate dict rows (header -> cell), e.g. those of :func:`customer.domain.demo.generate_rows`.

    Row numbers count as a spreadsheet does: the header is row 1, so the first record is row 2. The
    headers are taken from the first record.
    """
    result = ValidationResult()
    validator: ArchiveValidator | None = None
    headers: list[str] = []
    for i, record in enumerate(records):
        if validator is None:
            headers = list(record.keys())
            validator = ArchiveValidator(headers, rules=rules, today=today)
            result.unknown_columns = validator.header_map.unknown
        outcome = validator.validate([record.get(h) for h in headers], first_row_no + i)
        if isinstance(outcome, ValidRow):
            result.valid.append(outcome)
        elif outcome is not None:
            result.rejected.append(outcome)
    if validator is not None:
        result.probable_duplicates = validator.probable_duplicates
        result.completeness = validator.completeness()
    else:
        result.completeness = CompletenessReport(0, ())
    return result
