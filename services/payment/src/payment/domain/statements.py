"""Providers' daily statement files (对账单): parse each provider's CSV into :class:`StatementLine` values.
Pure rules: bytes in, values out; no I/O, no clock.

Conventions (decisions, documented here once):

* **Lines.** Every detail row becomes one :class:`StatementLine`. ``amount_fen`` is the *magnitude* of the
  money moved (always positive); ``kind`` (``payment`` | ``refund``) says which way. ``occurred_at`` is an
  aware UTC instant. ``fee_fen`` is the provider's fee on the row as the file states it (a refund row may
  carry a negative fee: the fee given back), ``None`` when the format has no fee or the cell is empty.
  ``raw_line_no`` is the 1-based physical line of the row in the file. A refund row carries the original
  payment's transaction id and order number (that is how the providers write them) and, when the format
  has one, the refund's own request number in ``refund_no``.
* **Money.** Yuan strings become fen exactly through ``Decimal``: ``-?digits(.d{1,2})?`` only, so
  ``"12"``, ``"12.3"`` and ``"12.34"`` are accepted; more than two decimals, exponents, thousands
  separators, ``NaN`` and anything else are refused. Bank files carry integer fen (digits only).
* **Errors.** A malformed file is refused with every problem listed, never only the first:
  :func:`parse_statement` returns a :class:`ParsedStatement` holding the lines that parsed and one
  :class:`StatementError` ``(line_no, reason)`` per problem (``line_no`` 0 for the file as a whole, e.g. an
  undecodable file); :meth:`ParsedStatement.require` returns the lines or raises :class:`StatementRejected`
  carrying all errors. A file whose totals do not match its rows is refused (the file is incomplete or
  was altered); the totals are checked only when every row parsed (a row in error is missing from the
  sums, and its own error already refuses the file). A payment transaction id twice in one file is
  refused (a refund row shares its payment's id, so refunds are only checked for a repeated refund
  number).
* **Cells** are stripped of surrounding whitespace (including tabs, which Alipay pads with). Blank lines
  are ignored except where the format gives them meaning (WeChat's separator). Cells are read with the
  ``csv`` module, so a quoted cell may contain a comma.

Formats (the simulator ``payment.adapters.providers.simulator.statement_csv`` produces exactly these):

**wechat** (微信支付 交易账单) — UTF-8, a BOM allowed::

    交易时间,公众账号ID,商户号,微信订单号,商户订单号,交易类型,交易状态,订单金额,退款金额,手续费
    `2026-11-23 10:00:00,`wx0001,`1900000001,`4200000001,`P20261123001,`JSAPI,`SUCCESS,`12.34,`0.00,`0.07
    `2026-11-23 11:00:00,`wx0001,`1900000001,`4200000001,`P20261123001,`JSAPI,`REFUND,`12.34,`2.00,`-0.01

    总交易单数,应结订单总金额,退款总金额,手续费总金额
    `2,`12.34,`2.00,`0.06

  Every cell may be prefixed with one backtick, as WeChat's bill download writes them (stripped; the header
  cells may carry one too). ``交易时间`` is Asia/Shanghai ``YYYY-MM-DD HH:MM:SS``. ``交易状态`` is ``SUCCESS``
  (a payment of ``订单金额``; ``退款金额`` must be zero or empty) or ``REFUND`` (a refund of ``退款金额``,
  which must be positive; ``订单金额`` is the original order's amount and only checked to be well formed).
  ``微信订单号`` is the provider txn id, ``商户订单号`` our order number. After the rows: one blank line,
  the summary header ``总交易单数,应结订单总金额,退款总金额,手续费总金额`` and one summary row:
  ``总交易单数`` = number of rows (payments and refunds), ``应结订单总金额`` = sum of payment amounts,
  ``退款总金额`` = sum of refund amounts, ``手续费总金额`` = sum of the fee cells (signed; empty counts 0).
  A missing summary is an error.

**alipay** (支付宝 业务明细) — UTF-8 (a BOM allowed) or GBK; decoded as UTF-8 first, falling back to
GB18030 (a superset of GBK)::

    #支付宝业务明细查询
    #账号：[20880000000000000156]
    #起始日期：[2026年11月23日 00:00:00]   终止日期：[2026年11月24日 00:00:00]
    #-----------------------------------------业务明细列表----------------------------------------
    支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,订单金额（元）,商家实收（元）,服务费（元）,退款批次号/请求号
    2026112322001400001,P20261123001,交易,燃气费,2026-11-23 09:59:00,2026-11-23 10:00:00,12.34,12.27,0.07,
    2026112322001400001,P20261123001,退款,燃气费,2026-11-23 10:59:00,2026-11-23 11:00:00,-2.00,-2.00,0.00,R1
    #-----------------------------------------业务明细列表结束------------------------------------
    #合计：2笔，共10.34元
    #导出时间：[2026年11月24日 08:00:00]

  Lines starting with ``#`` before and after the table are comments. ``业务类型`` is ``交易`` (a payment:
  ``订单金额`` positive) or ``退款`` (a refund: ``订单金额`` negative, the line's amount is its magnitude).
  ``完成时间`` (Asia/Shanghai ``YYYY-MM-DD HH:MM:SS``) is ``occurred_at``; ``创建时间`` must be well formed
  (or empty). ``商家实收（元）`` must be a well-formed amount (or empty); ``服务费（元）`` is the fee.
  ``退款批次号/请求号`` is the refund's request number (empty on payments). The trailer: at least one ``#``
  comment line after the table containing ``合计``, with a count (an integer followed by ``笔``) and a total
  (the first amount followed by ``元``, or none): a ``#交易合计`` line counts and sums the payment rows, a
  ``#退款合计`` line the refund rows (its total compared by magnitude), any other ``合计`` line all rows.
  The total is the signed sum of ``订单金额`` (payments less refunds), or of ``商家实收（元）`` when the
  words before the amount name it (``#交易合计：2笔，商家实收共：112.27元``, as Alipay writes it). Every such
  line is validated.

**bank:<code>** (银企直连 对账文件; ``<code>`` = ``[A-Za-z0-9_-]+``) — UTF-8, a BOM allowed::

    bank_serial_no,order_no,amount_fen,status,paid_at
    B000001,P20261123001,1234,SUCCESS,2026-11-23T10:00:00+08:00
    TOTAL,1,1234

  ``amount_fen`` positive integer fen; ``status`` must be ``SUCCESS`` (a bank statement lists only the
  payments that went through: any other status is an error, not a skipped row); ``paid_at`` RFC 3339 with
  an offset (``Z`` or ``±HH:MM``; a naive time is refused). The last line is the footer
  ``TOTAL,<count>,<sum_fen>``, validated. Bank files carry payments only (no refunds, no fees).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from utilis_shared.timeutil import BUSINESS_TZ


class StatementKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


@dataclass(frozen=True)
class StatementLine:
    """One detail row of a provider's statement (see the module docstring for the conventions)."""

    provider: str
    provider_txn_id: str
    order_no: str
    amount_fen: int  # magnitude, > 0
    kind: StatementKind
    occurred_at: datetime  # aware, UTC
    fee_fen: int | None
    raw_line_no: int
    refund_no: str | None = None  # the refund's request number, when the format carries one

    def __post_init__(self) -> None:
        if isinstance(self.amount_fen, bool) or not isinstance(self.amount_fen, int) or self.amount_fen <= 0:
            raise ValueError(f"amount_fen must be a positive integer (a magnitude), got {self.amount_fen!r}")
        if self.occurred_at.tzinfo is None or self.occurred_at.utcoffset() is None:
            raise ValueError("occurred_at must be timezone-aware")
        object.__setattr__(self, "kind", StatementKind(self.kind))
        object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))


@dataclass(frozen=True)
class StatementError:
    """One problem in a statement file: the 1-based line (0 = the file as a whole) and why."""

    line_no: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.reason}" if self.line_no else self.reason


class StatementRejected(ValueError):
    """A statement file with problems; ``errors`` lists every one of them."""

    def __init__(self, provider: str, errors: Sequence[StatementError]) -> None:
        self.provider = provider
        self.errors = tuple(errors)
        listed = "; ".join(str(e) for e in self.errors)
        super().__init__(f"{provider} statement refused ({len(self.errors)} errors): {listed}")


class UnknownStatementFormat(ValueError):
    """No statement format for this provider."""


@dataclass(frozen=True)
class ParsedStatement:
    provider: str
    lines: tuple[StatementLine, ...]
    errors: tuple[StatementError, ...]

    @property
    def ok(self) -> bool:
        return not self.errors

    def require(self) -> tuple[StatementLine, ...]:
        """The lines, or :class:`StatementRejected` listing every error."""
        if self.errors:
            raise StatementRejected(self.provider, self.errors)
        return self.lines


# ------------------------------------------------------------------------------------------ headers
WECHAT_HEADER = (
    "交易时间",
    "公众账号ID",
    "商户号",
    "微信订单号",
    "商户订单号",
    "交易类型",
    "交易状态",
    "订单金额",
    "退款金额",
    "手续费",
)
WECHAT_SUMMARY_HEADER = ("总交易单数", "应结订单总金额", "退款总金额", "手续费总金额")
ALIPAY_HEADER = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "订单金额（元）",
    "商家实收（元）",
    "服务费（元）",
    "退款批次号/请求号",
)
BANK_HEADER = ("bank_serial_no", "order_no", "amount_fen", "status", "paid_at")

_YUAN = re.compile(r"-?\d+(?:\.\d{1,2})?")
_FEN = re.compile(r"\d+")
_LOCAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
_BANK_PROVIDER = re.compile(r"bank:[A-Za-z0-9_-]+")
_TRAILER_COUNT = re.compile(r"(\d+)\s*笔")
_TRAILER_TOTAL = re.compile(r"(-?\d+(?:\.\d+)?)\s*元")


class _Bad(ValueError):
    """A cell that does not parse; the message is the reason reported."""


# ------------------------------------------------------------------------------------------ cells
def yuan_to_fen(text: str) -> int:
    """``"12.34"`` → 1234, exactly (Decimal); refuses more than two decimals and anything not a plain
    decimal number."""
    if not _YUAN.fullmatch(text):
        raise _Bad(f"not an amount in yuan with at most 2 decimals: {text!r}")
    return int(Decimal(text) * 100)


def fen_to_yuan(fen: int) -> str:
    """1234 → ``"12.34"``; -5 → ``"-0.05"`` (what the files write)."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _local_time(text: str) -> datetime:
    if not _LOCAL_TIME.fullmatch(text):
        raise _Bad(f"not a time YYYY-MM-DD HH:MM:SS: {text!r}")
    try:
        naive = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")  # noqa: DTZ007 - Asia/Shanghai, attached next
    except ValueError as exc:
        raise _Bad(f"not a valid time: {text!r}") from exc
    return naive.replace(tzinfo=BUSINESS_TZ).astimezone(UTC)


def _rfc3339(text: str) -> datetime:
    if not _RFC3339.fullmatch(text):
        raise _Bad(f"not an RFC 3339 time with an offset: {text!r}")
    try:
        value = datetime.fromisoformat(text.upper())
    except ValueError as exc:
        raise _Bad(f"not a valid time: {text!r}") from exc
    return value.astimezone(UTC)


def _int(text: str, what: str) -> int:
    if not _FEN.fullmatch(text):
        raise _Bad(f"{what} is not a non-negative integer: {text!r}")
    return int(text)


def _decode(data: bytes, *, gbk_fallback: bool) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if not gbk_fallback:
            raise
        return data.decode("gb18030")


def _cells(line: str, *, backtick: bool = False) -> list[str]:
    cells = next(csv.reader([line]))
    out = []
    for cell in cells:
        value = cell.strip()
        if backtick and value.startswith("`"):
            value = value[1:].strip()
        out.append(value)
    return out


def _try(problems: list[str], parse: Callable[[str], Any], text: str) -> Any:
    """``parse(text)``, or None with the reason appended to ``problems``."""
    try:
        return parse(text)
    except _Bad as exc:
        problems.append(str(exc))
        return None


class _Collector:
    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.lines: list[StatementLine] = []
        self.errors: list[StatementError] = []
        self._payment_txns: dict[str, int] = {}
        self._refund_nos: dict[tuple[str, str], int] = {}
        self.received: dict[int, int | None] = {}  # Alipay's 商家实收 (signed fen) by line

    def error(self, line_no: int, reason: str) -> None:
        self.errors.append(StatementError(line_no, reason))

    def add(self, line: StatementLine) -> None:
        if line.kind is StatementKind.PAYMENT:
            first = self._payment_txns.setdefault(line.provider_txn_id, line.raw_line_no)
            if first != line.raw_line_no:
                self.error(
                    line.raw_line_no,
                    f"duplicate payment txn id {line.provider_txn_id} (first on line {first})",
                )
                return
        elif line.refund_no:
            key = (line.provider_txn_id, line.refund_no)
            first = self._refund_nos.setdefault(key, line.raw_line_no)
            if first != line.raw_line_no:
                self.error(line.raw_line_no, f"duplicate refund {line.refund_no} (first on line {first})")
                return
        self.lines.append(line)

    def result(self) -> ParsedStatement:
        errors = sorted(self.errors, key=lambda e: e.line_no)
        return ParsedStatement(self.provider, tuple(self.lines), tuple(errors))


def _check_total(c: _Collector, line_no: int, what: str, stated: int, actual: int, *, money: bool) -> None:
    if stated != actual:
        show = fen_to_yuan if money else str
        c.error(line_no, f"{what} is {show(stated)} but the rows add up to {show(actual)}")


# ------------------------------------------------------------------------------------------ wechat
def _parse_wechat(text: str, c: _Collector) -> None:
    rows = text.splitlines()
    if not rows or _cells(rows[0], backtick=True) != list(WECHAT_HEADER):
        c.error(1, f"the header must be {','.join(WECHAT_HEADER)}")
        return
    no = 1
    summary_at: int | None = None
    for no, raw in enumerate(rows[1:], start=2):
        if not raw.strip():
            summary_at = no + 1
            break
        _wechat_row(c, no, _cells(raw, backtick=True))
    if summary_at is None:
        c.error(len(rows) + 1, "the summary (a blank line, 总交易单数,… and one row) is missing")
        return
    rest = [(n, r) for n, r in enumerate(rows[summary_at - 1 :], start=summary_at) if r.strip()]
    if not rest or _cells(rest[0][1], backtick=True) != list(WECHAT_SUMMARY_HEADER):
        c.error(
            rest[0][0] if rest else summary_at,
            f"the summary header must be {','.join(WECHAT_SUMMARY_HEADER)}",
        )
        return
    if len(rest) != 2:
        c.error(
            rest[-1][0] if len(rest) > 2 else rest[0][0], "exactly one summary row must follow its header"
        )
        if len(rest) < 2:
            return
    n, raw = rest[1]
    cells = _cells(raw, backtick=True)
    if len(cells) != len(WECHAT_SUMMARY_HEADER):
        c.error(n, f"the summary row has {len(cells)} cells, expected {len(WECHAT_SUMMARY_HEADER)}")
        return
    problems: list[str] = []
    count = _try(problems, lambda s: _int(s, "总交易单数"), cells[0])
    totals = [_try(problems, yuan_to_fen, s) for s in cells[1:]]
    for p in problems:
        c.error(n, f"summary: {p}")
    if problems:
        return
    # Rows with errors are not in c.lines: compare with rows counted as written only if all parsed.
    if c.errors:
        return
    pays = [x for x in c.lines if x.kind is StatementKind.PAYMENT]
    refunds = [x for x in c.lines if x.kind is StatementKind.REFUND]
    _check_total(c, n, "总交易单数", count, len(c.lines), money=False)
    _check_total(c, n, "应结订单总金额", totals[0], sum(x.amount_fen for x in pays), money=True)
    _check_total(c, n, "退款总金额", totals[1], sum(x.amount_fen for x in refunds), money=True)
    _check_total(c, n, "手续费总金额", totals[2], sum(x.fee_fen or 0 for x in c.lines), money=True)


def _wechat_row(c: _Collector, no: int, cells: list[str]) -> None:
    if len(cells) != len(WECHAT_HEADER):
        c.error(no, f"{len(cells)} cells, expected {len(WECHAT_HEADER)}")
        return
    when, _appid, _mch, txn, order_no, _type, status, order_amount, refund_amount, fee = cells
    problems: list[str] = []
    occurred = _try(problems, _local_time, when)
    order_fen = _try(problems, yuan_to_fen, order_amount or "0")
    refund_fen = _try(problems, yuan_to_fen, refund_amount or "0")
    fee_fen = _try(problems, yuan_to_fen, fee) if fee else None
    if not txn:
        problems.append("微信订单号 is empty")
    if not order_no:
        problems.append("商户订单号 is empty")
    kind: StatementKind | None = None
    amount = None
    if status == "SUCCESS":
        kind, amount = StatementKind.PAYMENT, order_fen
        if refund_fen:
            problems.append(f"a SUCCESS row with 退款金额 {refund_amount}")
    elif status == "REFUND":
        kind, amount = StatementKind.REFUND, refund_fen
    else:
        problems.append(f"交易状态 must be SUCCESS or REFUND, not {status!r}")
    if amount is not None and amount <= 0:
        problems.append(f"the {'订单金额' if kind is StatementKind.PAYMENT else '退款金额'} must be positive")
    for p in problems:
        c.error(no, p)
    if problems:
        return
    c.add(StatementLine("wechat", txn, order_no, amount, kind, occurred, fee_fen, no))


# ------------------------------------------------------------------------------------------ alipay
def _parse_alipay(text: str, c: _Collector) -> None:
    rows = list(enumerate(text.splitlines(), start=1))
    header_at = None
    for no, raw in rows:
        if raw.strip() and not raw.lstrip().startswith("#"):
            header_at = no
            break
    if header_at is None or _cells(rows[header_at - 1][1]) != list(ALIPAY_HEADER):
        c.error(header_at or 1, f"the header must be {','.join(ALIPAY_HEADER)}")
        return
    trailers: list[tuple[int, str]] = []
    table_over = False
    for no, raw in rows[header_at:]:
        stripped = raw.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            table_over = True
            if "合计" in stripped:
                trailers.append((no, stripped))
            continue
        if table_over:
            c.error(no, "a row after the closing comments")
            continue
        _alipay_row(c, no, _cells(raw))
    if not trailers:
        c.error(len(rows) + 1, "the trailing #…合计 line (count and total) is missing")
        return
    for no, line in trailers:
        _alipay_trailer(c, no, line)


def _alipay_row(c: _Collector, no: int, cells: list[str]) -> None:
    if len(cells) != len(ALIPAY_HEADER):
        c.error(no, f"{len(cells)} cells, expected {len(ALIPAY_HEADER)}")
        return
    txn, order_no, business, _goods, created, completed, amount, received, fee, refund_no = cells
    problems: list[str] = []
    if created:
        _try(problems, _local_time, created)
    occurred = _try(problems, _local_time, completed)
    signed = _try(problems, yuan_to_fen, amount)
    received_fen = _try(problems, yuan_to_fen, received) if received else None
    fee_fen = _try(problems, yuan_to_fen, fee) if fee else None
    if not txn:
        problems.append("支付宝交易号 is empty")
    if not order_no:
        problems.append("商户订单号 is empty")
    kind = None
    if business == "交易":
        kind = StatementKind.PAYMENT
        if signed is not None and signed <= 0:
            problems.append("a 交易 row needs a positive 订单金额")
        if refund_no:
            problems.append("a 交易 row with a 退款批次号/请求号")
    elif business == "退款":
        kind = StatementKind.REFUND
        if signed is not None and signed >= 0:
            problems.append("a 退款 row needs a negative 订单金额")
    else:
        problems.append(f"业务类型 must be 交易 or 退款, not {business!r}")
    for p in problems:
        c.error(no, p)
    if problems:
        return
    c.received[no] = received_fen
    c.add(StatementLine("alipay", txn, order_no, abs(signed), kind, occurred, fee_fen, no, refund_no or None))


def _alipay_trailer(c: _Collector, no: int, line: str) -> None:
    count_m = _TRAILER_COUNT.search(line)
    if count_m is None:
        c.error(no, f"the 合计 line has no count (…笔): {line!r}")
        return
    total_m = _TRAILER_TOTAL.search(line, count_m.end())
    total = None
    if total_m is not None:
        try:
            total = yuan_to_fen(total_m.group(1))
        except _Bad as exc:
            c.error(no, f"the 合计 line's total: {exc}")
            return
    if c.errors:  # rows that did not parse are missing from the sums: the row errors say enough
        return
    body = line.lstrip("#").lstrip()
    by_received = total_m is not None and "实收" in line[count_m.end() : total_m.start()]

    def signed(x: StatementLine) -> int | None:
        if by_received:
            return c.received.get(x.raw_line_no)
        return x.amount_fen if x.kind is StatementKind.PAYMENT else -x.amount_fen

    if body.startswith("交易合计"):
        what, rows = "交易合计", [x for x in c.lines if x.kind is StatementKind.PAYMENT]
    elif body.startswith("退款合计"):
        what, rows = "退款合计", [x for x in c.lines if x.kind is StatementKind.REFUND]
    else:
        what, rows = "合计", list(c.lines)
    _check_total(c, no, f"{what} count", int(count_m.group(1)), len(rows), money=False)
    if total is None:
        return
    values = [signed(x) for x in rows]
    if any(v is None for v in values):
        c.error(no, f"{what} states 商家实收 but a row has no 商家实收（元）")
        return
    actual = sum(v for v in values if v is not None)
    if what == "退款合计":  # refunds: compared by magnitude, whatever sign the line writes
        total, actual = abs(total), abs(actual)
    label = f"{what} 商家实收" if by_received else f"{what} total"
    _check_total(c, no, label, total, actual, money=True)


# ------------------------------------------------------------------------------------------ bank
def _parse_bank(provider: str, text: str, c: _Collector) -> None:
    rows = [(no, raw) for no, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
    if not rows or _cells(rows[0][1]) != list(BANK_HEADER):
        c.error(rows[0][0] if rows else 1, f"the header must be {','.join(BANK_HEADER)}")
        return
    body = rows[1:]
    footer: tuple[int, list[str]] | None = None
    if body and _cells(body[-1][1])[:1] == ["TOTAL"]:
        footer = (body[-1][0], _cells(body[-1][1]))
        body = body[:-1]
    else:
        c.error(rows[-1][0] + 1, "the footer TOTAL,<count>,<sum_fen> is missing")
    for no, raw in body:
        _bank_row(provider, c, no, _cells(raw))
    if footer is None:
        return
    footer_no, cells = footer
    if len(cells) != 3:
        c.error(footer_no, "the footer must be TOTAL,<count>,<sum_fen>")
        return
    problems: list[str] = []
    count = _try(problems, lambda s: _int(s, "the footer's count"), cells[1])
    total = _try(problems, lambda s: _int(s, "the footer's sum"), cells[2])
    for p in problems:
        c.error(footer_no, p)
    if problems or c.errors:
        return
    _check_total(c, footer_no, "TOTAL count", count, len(c.lines), money=False)
    _check_total(c, footer_no, "TOTAL sum_fen", total, sum(x.amount_fen for x in c.lines), money=False)


def _bank_row(provider: str, c: _Collector, no: int, cells: list[str]) -> None:
    if len(cells) != len(BANK_HEADER):
        c.error(no, f"{len(cells)} cells, expected {len(BANK_HEADER)}")
        return
    serial, order_no, amount, status, paid_at = cells
    problems: list[str] = []
    fen = _try(problems, lambda s: _int(s, "amount_fen"), amount)
    occurred = _try(problems, _rfc3339, paid_at)
    if fen == 0:
        problems.append("amount_fen must be positive")
    if status != "SUCCESS":
        problems.append(f"status must be SUCCESS, not {status!r}")
    if not serial:
        problems.append("bank_serial_no is empty")
    if not order_no:
        problems.append("order_no is empty")
    for p in problems:
        c.error(no, p)
    if problems:
        return
    c.add(StatementLine(provider, serial, order_no, fen, StatementKind.PAYMENT, occurred, None, no))


# ------------------------------------------------------------------------------------------ entry
def is_statement_provider(provider: str) -> bool:
    return provider in ("wechat", "alipay") or bool(_BANK_PROVIDER.fullmatch(provider))


def parse_statement(provider: str, data: bytes) -> ParsedStatement:
    """Parse ``provider``'s daily statement file (``wechat``, ``alipay`` or ``bank:<code>``). Never raises for
    the file's content: every problem is in ``errors`` (use :meth:`ParsedStatement.require`)."""
    if not is_statement_provider(provider):
        raise UnknownStatementFormat(f"no statement format for provider {provider!r}")
    c = _Collector(provider)
    try:
        text = _decode(data, gbk_fallback=provider == "alipay")
    except UnicodeDecodeError as exc:
        c.error(0, f"the file is not UTF-8 ({exc.reason} at byte {exc.start})")
        return c.result()
    try:
        if provider == "wechat":
            _parse_wechat(text, c)
        elif provider == "alipay":
            _parse_alipay(text, c)
        else:
            _parse_bank(provider, text, c)
    except csv.Error as exc:  # e.g. a NUL byte
        c.error(0, f"not a CSV file: {exc}")
    return c.result()
