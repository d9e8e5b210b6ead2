"""A deterministic demo customer base for a northern city (Harbin), shaped like a legacy archive export.

``generate_rows(n, seed=...)`` yields ``n`` rows (one account each) as dicts keyed by the Chinese headers
of :data:`customer.domain.legacy.CHINESE_HEADERS`, ready for :func:`write_csv` / :func:`write_xlsx` and
for the archive import. The same seed gives the same rows, byte for byte.

What the base looks like:

- Premises in the eight urban districts (道里 南岗 道外 香坊 平房 松北 呼兰 阿城), in communities of
  three eras: 1980s-90s walk-ups (6 floors, 4-6 units, 45-85 m²), 2000s mid-rises, and 2010s towers
  (up to 33 floors, 1-2 units, 80-180 m²). Property certificates like ``黑(2019)哈尔滨市不动产权第0123456号``.
- People with common surnames and era-typical given names, resident ID numbers with Harbin area codes
  (2301xx), birth dates 1940-2000 and a correct check character; mobile numbers, some with a second
  number or a 0451 landline. About 1% organisations (ground-floor shops) with a unified social credit
  code, billed as non-residential.
- Every premise has a heating account (legacy numbers: 10 digits starting with 8, which the platform's
  own 11-digit numbers never use); some also a gas account under the same customer; a few customers hold
  a second flat.
- Legacy-style noise that the import normalises: ``12`` / ``12栋`` / ``12号楼``, full-width brackets,
  three date formats.
- ``dirty_share`` of rows carry one defect the import must reject (missing heated area, wrong ID check
  character, malformed phone, missing ID number), and ``duplicate_share`` of rows are probable
  duplicates (another person with the same phone and the same property certificate). The
  :class:`DemoGenerator` records which rows are which.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from customer.domain.identity import resident_id_check_char, uscc_check_char
from customer.domain.legacy import CHINESE_HEADERS, FIELDS

HEADERS: tuple[str, ...] = tuple(CHINESE_HEADERS[f] for f in FIELDS)

DEFECTS = ("missing_area", "bad_checksum", "bad_phone", "missing_id_number")

_H = CHINESE_HEADERS


@dataclass(frozen=True, slots=True)
class _Community:
    district: str
    name: str
    built: int
    floors: int
    units: int
    buildings: int
    doors: int  # flats per floor per unit


# (name, year built, floors, units per building, buildings, flats per landing)
_COMMUNITIES: dict[str, list[tuple[str, int, int, int, int, int]]] = {
    "道里区": [
        ("群力家园", 2008, 18, 2, 30, 2),
        ("爱建新城", 2003, 11, 3, 25, 2),
        ("安发小区", 1994, 6, 6, 16, 2),
        ("工程小区", 1989, 6, 5, 12, 2),
        ("河松小区", 1998, 7, 6, 20, 2),
        ("中央华城", 2012, 26, 2, 18, 3),
        ("建国公园小区", 2001, 9, 4, 14, 2),
    ],
    "南岗区": [
        ("学府四道街小区", 1996, 6, 6, 20, 2),
        ("保利清华颐园", 2011, 18, 2, 22, 2),
        ("和兴小区", 1993, 6, 6, 24, 2),
        ("复华小区", 1997, 7, 5, 30, 2),
        ("哈西万达华府", 2013, 30, 2, 16, 4),
        ("宣化街小区", 1988, 6, 4, 10, 2),
        ("联合小区", 2004, 11, 3, 18, 2),
    ],
    "道外区": [
        ("太古新天地", 2010, 24, 2, 14, 3),
        ("南马路小区", 1992, 6, 5, 15, 2),
        ("天福苑", 2002, 11, 3, 12, 2),
        ("承德小区", 1994, 6, 6, 18, 2),
        ("北十八道街小区", 1987, 5, 4, 10, 2),
        ("红星家园", 2007, 17, 2, 16, 2),
    ],
    "香坊区": [
        ("中海锦城", 2009, 18, 2, 26, 2),
        ("安埠小区", 1996, 6, 6, 20, 2),
        ("红旗新区", 1999, 7, 5, 28, 2),
        ("中海龙湾", 2015, 26, 2, 20, 2),
        ("文政小区", 1991, 6, 5, 14, 2),
        ("幸福家园", 2006, 11, 3, 16, 2),
    ],
    "平房区": [
        ("联盟小区", 1990, 6, 6, 24, 2),
        ("友协小区", 1985, 5, 5, 16, 2),
        ("新疆小区", 1993, 6, 4, 12, 2),
        ("平新家园", 2010, 17, 2, 14, 2),
    ],
    "松北区": [
        ("利民小区", 2005, 7, 4, 12, 2),
        ("保利上城", 2012, 18, 2, 30, 2),
        ("万科城", 2014, 26, 2, 20, 3),
        ("世茂滨江新城", 2008, 28, 2, 18, 3),
        ("润和城", 2013, 18, 2, 16, 2),
    ],
    "呼兰区": [
        ("福源小区", 2000, 6, 5, 14, 2),
        ("兰河小区", 1997, 6, 4, 10, 2),
        ("呼兰新城", 2012, 18, 2, 12, 2),
    ],
    "阿城区": [
        ("金都小区", 2003, 7, 4, 12, 2),
        ("上京小区", 1995, 6, 4, 10, 2),
        ("阿城名苑", 2011, 17, 2, 10, 2),
    ],
}
_DISTRICT_WEIGHTS = {
    "道里区": 18,
    "南岗区": 22,
    "道外区": 14,
    "香坊区": 17,
    "平房区": 6,
    "松北区": 8,
    "呼兰区": 8,
    "阿城区": 7,
}
_PHASES = ("", "二期", "三期", "四期", "五期", "六期", "七期", "八期")

# Birthplace area codes: Harbin's districts and counties (2301xx), including retired codes people still carry.
_ID_AREAS = (
    "230102",
    "230103",
    "230104",
    "230106",
    "230107",
    "230108",
    "230109",
    "230110",
    "230111",
    "230112",
    "230113",
    "230123",
    "230124",
    "230125",
    "230126",
    "230127",
    "230128",
    "230129",
    "230182",
    "230183",
    "230184",
)
_ID_AREA_WEIGHTS = (14, 16, 12, 3, 2, 5, 4, 12, 6, 5, 4, 2, 1, 2, 2, 1, 1, 1, 2, 3, 2)

_SURNAMES = (
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜"
    "戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文关隋"
)
_RARE_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方")
_GIVEN = {
    # (era, sex) -> two-character and one-character given names
    ("old", "f"): (
        "秀英",
        "桂兰",
        "淑珍",
        "玉兰",
        "凤琴",
        "桂芝",
        "秀兰",
        "玉珍",
        "淑华",
        "凤英",
        "丽华",
        "素芬",
        "兰",
        "珍",
        "英",
        "芳",
    ),
    ("old", "m"): (
        "建国",
        "建华",
        "国庆",
        "德福",
        "志强",
        "振华",
        "国栋",
        "长青",
        "福山",
        "永贵",
        "树林",
        "文斌",
        "军",
        "明",
        "林",
        "海",
    ),
    ("mid", "f"): (
        "海燕",
        "晓燕",
        "丽娜",
        "春梅",
        "艳华",
        "雪梅",
        "红霞",
        "晓丽",
        "冬梅",
        "秀梅",
        "丽",
        "红",
        "艳",
        "静",
        "敏",
        "娟",
    ),
    ("mid", "m"): (
        "志刚",
        "海涛",
        "宏伟",
        "晓东",
        "立军",
        "春雷",
        "建军",
        "东升",
        "永刚",
        "晓峰",
        "伟",
        "军",
        "勇",
        "磊",
        "斌",
        "鹏",
    ),
    ("new", "f"): (
        "欣怡",
        "子涵",
        "雨婷",
        "思琪",
        "梦瑶",
        "佳琪",
        "诗涵",
        "晓彤",
        "雅静",
        "婉婷",
        "悦",
        "婷",
        "琳",
        "萌",
        "璐",
        "瑶",
    ),
    ("new", "m"): (
        "浩然",
        "子轩",
        "俊杰",
        "宇航",
        "博文",
        "天宇",
        "皓轩",
        "明哲",
        "嘉豪",
        "思远",
        "浩",
        "宇",
        "博",
        "昊",
        "哲",
        "涛",
    ),
}
_SHOPS = (
    "鑫源超市",
    "福满园饭店",
    "康宁大药房",
    "恒信五金",
    "金桥便利店",
    "老街坊饺子馆",
    "明月理发店",
    "顺达汽配",
    "百味烧烤",
    "天天鲜水果店",
    "惠民粮油",
    "博雅文具",
)
_BRANDS = ("鑫盛", "华联", "金鼎", "宏达", "瑞祥", "永和", "德隆", "益民", "兴旺", "福源")
_ORG_SUFFIXES = ("有限公司", "有限责任公司", "经营部", "店")
_MOBILE_PREFIXES = (
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "176",
    "177",
    "180",
    "181",
    "182",
    "185",
    "186",
    "187",
    "188",
    "189",
    "198",
    "199",
)
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


@dataclass(slots=True)
class _Person:
    name: str
    id_type: str  # 证件类型 cell
    id_number: str
    phones: list[str]
    born: int
    household_size: int
    organisation: bool


@dataclass(slots=True)
class _Premise:
    district: str
    community: str
    building: int
    unit: int
    room: str
    area: str
    cert: str
    built: int
    has_gas: bool = False


class DemoGenerator:
    """Seeded generator of legacy archive rows; see the module docstring for what it produces.

    After (or while) iterating :meth:`rows`, ``defects`` maps the 0-based index of each dirty row to its
    defect (one of :data:`DEFECTS`), and ``duplicate_pairs`` lists ``(original index, duplicate index)``
    for each probable duplicate planted.
    """

    def __init__(
        self,
        seed: int = 2026,
        *,
        dirty_share: float = 0.02,
        duplicate_share: float = 0.01,
        gas_share: float = 0.15,
        second_premise_share: float = 0.03,
        organisation_share: float = 0.01,
        latest_opening: date = date(2025, 10, 31),
    ) -> None:
        if not (0 <= dirty_share < 1 and 0 <= duplicate_share < 1 and dirty_share + duplicate_share < 1):
            raise ValueError("dirty_share and duplicate_share are fractions that sum below 1")
        self.seed = seed
        self.dirty_share = dirty_share
        self.duplicate_share = duplicate_share
        self.gas_share = gas_share
        self.second_premise_share = second_premise_share
        self.organisation_share = organisation_share
        self.latest_opening = latest_opening
        self.defects: dict[int, str] = {}
        self.duplicate_pairs: list[tuple[int, int]] = []

    # -- the stream ---------------------------------------------------------------------------------

    def rows(self, n_accounts: int) -> Iterator[dict[str, str]]:
        if n_accounts < 0:
            raise ValueError("n_accounts must not be negative")
        self.defects = {}
        self.duplicate_pairs = []
        self._rng = random.Random(self.seed)  # noqa: S311 - demo data, not secrets
        self._ids: set[str] = set()
        self._phones: set[str] = set()
        self._addresses: set[tuple[str, str, int, int, str]] = set()
        self._certs: set[str] = set()
        self._account_seq = 0
        self._meter_seq = 0
        self._communities = self._community_pool(n_accounts)
        self._district_names = list(self._communities)
        self._district_weights = [_DISTRICT_WEIGHTS[d] for d in self._district_names]
        # Clean heating rows that a planted duplicate may copy: (row index, person, premise)
        candidates: list[tuple[int, _Person, _Premise]] = []
        rng = self._rng
        index = 0
        while index < n_accounts:
            if candidates and rng.random() < self.duplicate_share:
                pick = rng.randrange(len(candidates))
                original_index, original, premise = candidates[pick]
                candidates[pick] = candidates[-1]
                candidates.pop()
                row = self._duplicate_row(original, premise)
                if row is None:
                    continue
                self.duplicate_pairs.append((original_index, index))
                yield row
                index += 1
                continue

            person = self._person()
            premise = self._premise(commercial=person.organisation)
            opened = self._opened_on(premise.built)
            row = self._row(person, premise, "供热", opened)
            clean = self._maybe_dirty(row, index, utility="heating")
            if clean and premise.cert and not person.organisation:
                candidates.append((index, person, premise))
            yield row
            index += 1

            if index < n_accounts and not person.organisation and rng.random() < self.gas_share:
                premise.has_gas = True
                gas_opened = min(opened + timedelta(days=rng.randint(30, 3000)), self.latest_opening)
                row = self._row(person, premise, "燃气", gas_opened)
                self._maybe_dirty(row, index, utility="gas")
                yield row
                index += 1

            if index < n_accounts and rng.random() < self.second_premise_share:
                second = self._premise(commercial=person.organisation)
                row = self._row(person, second, "供热", self._opened_on(second.built))
                self._maybe_dirty(row, index, utility="heating")
                yield row
                index += 1

    # -- people -------------------------------------------------------------------------------------

    def _person(self) -> _Person:
        rng = self._rng
        if rng.random() < self.organisation_share:
            return self._organisation()
        born = self._birth_date()
        male = rng.random() < 0.5
        id_number = self._resident_id(born, male)
        era = "old" if born.year < 1962 else "mid" if born.year < 1985 else "new"
        name = self._name(era, "m" if male else "f")
        phones = [self._mobile()]
        r = rng.random()
        if r < 0.07:
            phones.append(self._mobile())
        elif r < 0.10:
            phones.append(f"0451-{rng.randint(5, 8)}{rng.randint(0, 9_999_999):07d}")
        if born.year < 1955:
            size = rng.choices((1, 2, 3), (35, 55, 10))[0]
        else:
            size = rng.choices((1, 2, 3, 4, 5, 6), (8, 28, 38, 16, 7, 3))[0]
        return _Person(name, self._id_type_cell(), id_number, phones, born.year, size, organisation=False)

    def _organisation(self) -> _Person:
        rng = self._rng
        name = f"哈尔滨{rng.choice(_BRANDS)}{rng.choice(_SHOPS)}{rng.choice(_ORG_SUFFIXES)}"
        while True:
            # Registration authority 9 (market regulation), type 1 (company) or 2 (sole trader), area code,
            # organisation code, check character.
            kind = "91" if rng.random() < 0.4 else "92"
            body = kind + rng.choice(_ID_AREAS[:11]) + "".join(rng.choice(_USCC_ALPHABET) for _ in range(9))
            code = body + uscc_check_char(body)
            if code not in self._ids:
                self._ids.add(code)
                break
        return _Person(name, "统一社会信用代码", code, [self._mobile()], 0, 1, organisation=True)

    def _id_type_cell(self) -> str:
        r = self._rng.random()
        return "身份证" if r < 0.75 else "" if r < 0.95 else "居民身份证"

    def _birth_date(self) -> date:
        rng = self._rng
        # Account holders skew older: the flat is usually in a parent's name.
        year = int(rng.triangular(1940, 2000, 1962))
        return date(year, 1, 1) + timedelta(days=rng.randrange(365))

    def _resident_id(self, born: date, male: bool) -> str:
        rng = self._rng
        while True:
            area = rng.choices(_ID_AREAS, _ID_AREA_WEIGHTS)[0]
            seq = rng.randrange(0, 500) * 2 + (1 if male else 0)
            first17 = f"{area}{born:%Y%m%d}{seq:03d}"
            number = first17 + resident_id_check_char(first17)
            if number not in self._ids:
                self._ids.add(number)
                return number

    def _name(self, era: str, sex: str) -> str:
        rng = self._rng
        surname = (
            rng.choice(_RARE_SURNAMES)
            if rng.random() < 0.005
            else _SURNAMES[min(int(rng.expovariate(1 / 18)), len(_SURNAMES) - 1)]
        )
        return surname + rng.choice(_GIVEN[(era, sex)])

    def _mobile(self) -> str:
        rng = self._rng
        while True:
            phone = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(100_000_000):08d}"
            if phone not in self._phones:
                self._phones.add(phone)
                return phone

    # -- premises -----------------------------------------------------------------------------------

    def _community_pool(self, n_accounts: int) -> dict[str, list[_Community]]:
        """Enough dwellings for the base (at least three times the accounts), adding later phases of the
        communities (二期, 三期, ...) when a large base needs more."""
        pool: dict[str, list[_Community]] = {d: [] for d in _COMMUNITIES}
        capacity = 0
        for phase_no, phase in enumerate(_PHASES):
            for district, communities in _COMMUNITIES.items():
                for name, built, floors, units, buildings, doors in communities:
                    c = _Community(
                        district,
                        name + phase,
                        min(built + 2 * phase_no, 2020),
                        floors,
                        units,
                        buildings,
                        doors,
                    )
                    pool[district].append(c)
                    capacity += floors * units * buildings * doors
            if capacity >= 3 * n_accounts:
                break
        return pool

    def _premise(self, *, commercial: bool) -> _Premise:
        rng = self._rng
        for _ in range(1000):
            district = rng.choices(self._district_names, self._district_weights)[0]
            c = rng.choice(self._communities[district])
            building = rng.randint(1, c.buildings)
            unit = rng.randint(1, c.units)
            floor = 1 if commercial else rng.randint(1, c.floors)
            room = f"{floor}{rng.randint(1, c.doors):02d}"
            key = (district, c.name, building, unit, room)
            if key not in self._addresses:
                self._addresses.add(key)
                break
        else:  # pragma: no cover - the pool holds three times the dwellings needed
            raise RuntimeError("ran out of dwellings")
        return _Premise(
            district, c.name, building, unit, room, self._area(c.built, commercial), self._cert(), c.built
        )

    def _area(self, built: int, commercial: bool) -> str:
        rng = self._rng
        if commercial:
            area = rng.uniform(60, 400)
        elif built < 2000:
            area = rng.gauss(62, 10)
        elif built < 2010:
            area = rng.gauss(92, 16)
        else:
            area = rng.gauss(108, 24)
        if not commercial:
            area = min(max(area, 40.0), 180.0)
        return f"{area:.2f}"

    def _cert(self) -> str:
        rng = self._rng
        if rng.random() < 0.03:
            return ""  # older archives lack some certificates; not an error
        while True:
            cert = f"黑({rng.randint(2016, 2024)})哈尔滨市不动产权第{rng.randrange(10_000_000):07d}号"
            if cert not in self._certs:
                self._certs.add(cert)
                break
        if rng.random() < 0.1:
            cert = cert.replace("(", "（").replace(")", "）")  # typed with a Chinese input method
        return cert

    def _opened_on(self, built: int) -> date:
        start = date(max(built + 1, 1998), 1, 1)
        span = (self.latest_opening - start).days
        return start + timedelta(days=self._rng.randrange(max(span, 1)))

    # -- rows ---------------------------------------------------------------------------------------

    def _row(self, person: _Person, premise: _Premise, utility: str, opened: date) -> dict[str, str]:
        rng = self._rng
        self._account_seq += rng.randint(1, 3)
        heating = utility == "供热"
        building = str(premise.building) + rng.choice(("", "", "栋", "号楼"))
        unit = str(premise.unit) + rng.choice(("", "", "单元"))
        room = premise.room + rng.choice(("", "", "", "室"))
        sep = rng.choice((";", "；", "，", "、"))
        meter_serial = meter_kind = ""
        if heating and rng.random() < 0.25:
            self._meter_seq += 1
            meter_serial = f"HM{opened.year}{self._meter_seq:07d}"
            meter_kind = rng.choice(("热量表", "远传热量表"))
        elif not heating and rng.random() < 0.95:
            self._meter_seq += 1
            meter_serial = f"GM{opened.year}{self._meter_seq:07d}"
            meter_kind = rng.choice(("IC卡燃气表", "远传燃气表", "燃气表"))
        return {
            _H["account_no"]: f"8{self._account_seq:09d}",
            _H["name"]: person.name,
            _H["id_type"]: person.id_type,
            _H["id_number"]: person.id_number,
            _H["phone"]: sep.join(person.phones),
            _H["district"]: premise.district,
            _H["community"]: premise.community,
            _H["building"]: building,
            _H["unit"]: unit,
            _H["room"]: room,
            _H["heated_area_m2"]: premise.area if heating else "",
            _H["property_cert_no"]: premise.cert,
            _H["utility"]: utility,
            _H["opened_on"]: self._date_cell(opened),
            _H["meter_serial"]: meter_serial,
            _H["meter_kind"]: meter_kind,
            _H["customer_class"]: "非居民" if person.organisation else rng.choice(("居民", "居民", "")),
            _H["household_size"]: ""
            if person.organisation or rng.random() < 0.05
            else str(person.household_size),
            _H["tags"]: self._tags(person),
        }

    def _date_cell(self, d: date) -> str:
        r = self._rng.random()
        return d.isoformat() if r < 0.8 else f"{d:%Y/%m/%d}" if r < 0.95 else f"{d:%Y%m%d}"

    def _tags(self, person: _Person) -> str:
        if person.organisation:
            return ""
        rng = self._rng
        tags = []
        if person.born < 1955 and person.household_size == 1 and rng.random() < 0.5:
            tags.append("独居老人")
        if rng.random() < 0.02:
            tags.append("低保困难户")
        if person.born >= 1985 and person.household_size >= 3 and rng.random() < 0.1:
            tags.append("有婴幼儿")
        if rng.random() < 0.005:
            tags.append("家用医疗设备")
        return "、".join(tags)

    def _duplicate_row(self, original: _Person, premise: _Premise) -> dict[str, str] | None:
        """Another person (spouse, child, a second counter's typing) with the original's phone and
        property certificate: on a gas account at the same dwelling, or on a second heating account at
        a near-identical address (the door number typed differently)."""
        rng = self._rng
        born = self._birth_date()
        male = rng.random() < 0.5
        era = "old" if born.year < 1962 else "mid" if born.year < 1985 else "new"
        person = _Person(
            self._name(era, "m" if male else "f"),
            self._id_type_cell(),
            self._resident_id(born, male),
            [original.phones[0]],
            born.year,
            original.household_size,
            organisation=False,
        )
        if not premise.has_gas:
            premise.has_gas = True
            opened = self._opened_on(premise.built)
            return self._row(person, premise, "燃气", opened)
        floor = premise.room[:-2]
        for door in range(1, 10):
            room = f"{floor}{door:02d}"
            key = (premise.district, premise.community, premise.building, premise.unit, room)
            if key not in self._addresses:
                self._addresses.add(key)
                twin = _Premise(
                    premise.district,
                    premise.community,
                    premise.building,
                    premise.unit,
                    room,
                    premise.area,
                    premise.cert,
                    premise.built,
                    has_gas=True,
                )
                return self._row(person, twin, "供热", self._opened_on(premise.built))
        return None

    def _maybe_dirty(self, row: dict[str, str], index: int, *, utility: str) -> bool:
        """Plant a defect with probability ``dirty_share``; True when the row stays clean."""
        rng = self._rng
        if rng.random() >= self.dirty_share:
            return True
        choices = [d for d in DEFECTS if d != "missing_area" or utility == "heating"]
        if row[_H["id_type"]] == "统一社会信用代码":
            choices = [d for d in choices if d != "bad_checksum"]
        defect = rng.choice(choices)
        if defect == "missing_area":
            row[_H["heated_area_m2"]] = ""
        elif defect == "bad_checksum":
            number = row[_H["id_number"]]
            wrong = rng.choice([c for c in "0123456789X" if c != number[-1]])
            row[_H["id_number"]] = number[:-1] + wrong
        elif defect == "bad_phone":
            row[_H["phone"]] = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10_000_000):07d}"  # 10 digits
        else:
            row[_H["id_number"]] = ""
        self.defects[index] = defect
        return False


def generate_rows(
    n_accounts: int,
    *,
    seed: int = 2026,
    dirty_share: float = 0.02,
    duplicate_share: float = 0.01,
) -> Iterator[dict[str, str]]:
    """``n_accounts`` legacy archive rows (dicts keyed by the Chinese headers), deterministic per seed."""
    return DemoGenerator(seed, dirty_share=dirty_share, duplicate_share=duplicate_share).rows(n_accounts)


def write_csv(rows: Iterable[Mapping[str, object]], path: str | Path) -> int:
    """Write rows as UTF-8 CSV with a BOM (what Excel on a Chinese Windows opens correctly); returns the
    number of rows written."""
    count = 0
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADERS)
        for row in rows:
            writer.writerow([row.get(h, "") for h in HEADERS])
            count += 1
    return count


def write_xlsx(rows: Iterable[Mapping[str, object]], path: str | Path, *, sheet: str = "客户档案") -> int:
    """Write rows to an XLSX workbook (every cell as text, so 户号 and 证件号码 keep their digits)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet)
    ws.append(list(HEADERS))
    count = 0
    for row in rows:
        ws.append([str(row.get(h, "")) for h in HEADERS])
        count += 1
    wb.save(path)
    return count
