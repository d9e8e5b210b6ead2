"""Providers' daily statement files: each format as documented in ``payment.domain.statements``. The files
are written here by hand (not by the simulator), so the parser is checked against the format text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payment.domain.statements import (
    ALIPAY_HEADER,
    WECHAT_HEADER,
    StatementError,
    StatementKind,
    StatementRejected,
    UnknownStatementFormat,
    fen_to_yuan,
    parse_statement,
    yuan_to_fen,
)

WECHAT_HEAD = ",".join(WECHAT_HEADER)
WECHAT_SUMMARY = "总交易单数,应结订单总金额,退款总金额,手续费总金额"


def wechat_row(when, txn, order, status, amount, refund="0.00", fee="0.07"):
    cells = [when, "wx8888", "1900000109", txn, order, "JSAPI", status, amount, refund, fee]
    return ",".join("`" + c for c in cells)


def wechat_file(rows, summary, *, bom=True, head=WECHAT_HEAD) -> bytes:
    text = "\n".join([head, *rows, "", WECHAT_SUMMARY, ",".join("`" + c for c in summary)]) + "\n"
    return (("\ufeff" if bom else "") + text).encode("utf-8")


ALIPAY_HEAD = ",".join(ALIPAY_HEADER)
ALIPAY_PREAMBLE = [
    "#支付宝业务明细查询",
    "#账号：[20880000000000000156]",
    "#起始日期：[2026年11月23日 00:00:00]   终止日期：[2026年11月24日 00:00:00]",
    "#-----------------------------------------业务明细列表----------------------------------------",
]


def alipay_row(txn, order, business, completed, amount, received, fee, refund_no=""):
    return ",".join(
        [txn, order, business, "燃气费", "2026-11-23 09:00:00", completed, amount, received, fee, refund_no]
    )


def alipay_file(rows, trailers, *, encoding="utf-8") -> bytes:
    lines = [
        *ALIPAY_PREAMBLE,
        ALIPAY_HEAD,
        *rows,
        "#-----------------------------------------业务明细列表结束------------------------------------",
        *trailers,
        "#导出时间：[2026年11月24日 08:00:00]",
    ]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


BANK_HEAD = "bank_serial_no,order_no,amount_fen,status,paid_at"


def bank_file(rows, footer) -> bytes:
    return ("\n".join([BANK_HEAD, *rows, footer]) + "\n").encode()


def reasons(parsed) -> list[tuple[int, str]]:
    return [(e.line_no, e.reason) for e in parsed.errors]


# ------------------------------------------------------------------------------------------ amounts
@pytest.mark.parametrize(
    ("text", "fen"),
    [("12.34", 1234), ("12.3", 1230), ("12", 1200), ("0.01", 1), ("-2.00", -200), ("0", 0), ("007.10", 710)],
)
def test_yuan_strings_become_fen_exactly(text, fen):
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize(
    "text", ["12.345", "1e3", "1,234.00", "NaN", "Infinity", "", " ", "12.", ".5", "+1", "¥1"]
)
def test_malformed_or_over_precise_yuan_are_refused(text):
    with pytest.raises(ValueError, match="at most 2 decimals"):
        yuan_to_fen(text)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_fen_to_yuan_round_trips(fen):
    assert yuan_to_fen(fen_to_yuan(fen)) == fen


def test_an_unknown_provider_has_no_format():
    with pytest.raises(UnknownStatementFormat):
        parse_statement("paypal", b"")
    with pytest.raises(UnknownStatementFormat):
        parse_statement("bank:", b"")


# ------------------------------------------------------------------------------------------ wechat
def test_wechat_bill_with_bom_backticks_payment_and_refund():
    data = wechat_file(
        [
            wechat_row("2026-11-23 10:00:00", "4200000001", "P001", "SUCCESS", "12.34", fee="0.07"),
            wechat_row("2026-11-23 00:00:05", "4200000002", "P002", "SUCCESS", "100", fee=""),
            wechat_row(
                "2026-11-23 11:00:00", "4200000001", "P001", "REFUND", "12.34", refund="2.00", fee="-0.01"
            ),
        ],
        ["3", "112.34", "2.00", "0.06"],
    )
    parsed = parse_statement("wechat", data)
    assert parsed.ok, parsed.errors
    pay, pay2, refund = parsed.require()
    assert (pay.provider, pay.provider_txn_id, pay.order_no, pay.amount_fen, pay.kind) == (
        "wechat",
        "4200000001",
        "P001",
        1234,
        StatementKind.PAYMENT,
    )
    assert pay.occurred_at == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 Asia/Shanghai
    assert pay.fee_fen == 7 and pay.raw_line_no == 2 and pay.refund_no is None
    assert pay2.occurred_at == datetime(2026, 11, 22, 16, 0, 5, tzinfo=UTC)  # just after local midnight
    assert pay2.fee_fen is None and pay2.amount_fen == 10000
    assert (refund.kind, refund.amount_fen, refund.fee_fen, refund.order_no) == (
        StatementKind.REFUND,
        200,
        -1,
        "P001",
    )


def test_wechat_header_cells_may_carry_backticks_and_bom_is_optional():
    head = ",".join("`" + h for h in WECHAT_HEADER)
    data = wechat_file(
        [wechat_row("2026-11-23 10:00:00", "4200000001", "P001", "SUCCESS", "1.00", fee="0.01")],
        ["1", "1.00", "0.00", "0.01"],
        bom=False,
        head=head,
    )
    assert parse_statement("wechat", data).ok


def test_wechat_empty_day():
    parsed = parse_statement("wechat", wechat_file([], ["0", "0.00", "0.00", "0.00"]))
    assert parsed.ok and parsed.lines == ()


@pytest.mark.parametrize(
    ("summary", "reason"),
    [
        (["2", "12.34", "0.00", "0.07"], "总交易单数 is 2 but the rows add up to 1"),
        (["1", "12.35", "0.00", "0.07"], "应结订单总金额 is 12.35 but the rows add up to 12.34"),
        (["1", "12.34", "1.00", "0.07"], "退款总金额 is 1.00 but the rows add up to 0.00"),
        (["1", "12.34", "0.00", "0.00"], "手续费总金额 is 0.00 but the rows add up to 0.07"),
    ],
)
def test_wechat_summary_must_match_the_rows(summary, reason):
    data = wechat_file([wechat_row("2026-11-23 10:00:00", "4200000001", "P001", "SUCCESS", "12.34")], summary)
    parsed = parse_statement("wechat", data)
    assert reasons(parsed) == [(5, reason)]
    with pytest.raises(StatementRejected) as info:
        parsed.require()
    assert info.value.errors == (StatementError(5, reason),)


def test_wechat_reports_every_bad_row_not_only_the_first():
    data = wechat_file(
        [
            wechat_row("2026-11-23 10:00:00", "4200000001", "P001", "SUCCESS", "12.345"),
            wechat_row("2026-11-23 10:00:01", "4200000002", "P002", "SUCCESS", "1.00"),
            wechat_row("2026-11-23 25:00:00", "4200000003", "P003", "CLOSED", "1.00"),
            wechat_row("2026-11-23 10:00:03", "4200000004", "P004", "SUCCESS", "1.00", refund="1.00"),
            "`2026-11-23 10:00:04,`too,`few",
            wechat_row("2026-11-23 10:00:05", "4200000002", "P005", "SUCCESS", "1.00"),
        ],
        ["6", "0.00", "0.00", "0.00"],
    )
    got = reasons(parse_statement("wechat", data))
    assert got == [
        (2, "not an amount in yuan with at most 2 decimals: '12.345'"),
        (4, "not a valid time: '2026-11-23 25:00:00'"),
        (4, "交易状态 must be SUCCESS or REFUND, not 'CLOSED'"),
        (5, "a SUCCESS row with 退款金额 1.00"),
        (6, "3 cells, expected 10"),
        (7, "duplicate payment txn id 4200000002 (first on line 3)"),
    ]  # the summary is not checked against a file whose rows are wrong: the rows' errors refuse it


def test_wechat_without_summary_or_with_a_wrong_header():
    no_summary = (
        WECHAT_HEAD + "\n" + wechat_row("2026-11-23 10:00:00", "4200000001", "P001", "SUCCESS", "1.00")
    ).encode()
    assert reasons(parse_statement("wechat", no_summary)) == [
        (3, "the summary (a blank line, 总交易单数,… and one row) is missing")
    ]
    wrong = ("交易时间,商户订单号\n").encode()
    assert reasons(parse_statement("wechat", wrong))[0][0] == 1
    refund_zero = wechat_file(
        [wechat_row("2026-11-23 10:00:00", "4200000001", "P001", "REFUND", "1.00", refund="0.00")],
        ["1", "0.00", "0.00", "0.07"],
    )
    assert reasons(parse_statement("wechat", refund_zero)) == [(2, "the 退款金额 must be positive")]


def test_wechat_file_that_is_not_utf8_is_refused_as_a_whole():
    data = wechat_file([], ["0", "0.00", "0.00", "0.00"], bom=False).decode().encode("gbk")
    parsed = parse_statement("wechat", data)
    assert [e.line_no for e in parsed.errors] == [0]
    assert "not UTF-8" in parsed.errors[0].reason


# ------------------------------------------------------------------------------------------ alipay
ALIPAY_ROWS = [
    alipay_row("2026112322001400001", "P001", "交易", "2026-11-23 10:00:00", "12.34", "12.27", "0.07"),
    alipay_row("2026112322001400002", "P002", "交易", "2026-11-23 23:59:59", "100.00", "99.40", "0.60"),
    alipay_row(
        "2026112322001400001", "P001", "退款", "2026-11-23 11:00:00", "-2.00", "-2.00", "0.00", "R001"
    ),
]


@pytest.mark.parametrize("encoding", ["gbk", "utf-8", "utf-8-sig", "gb18030"])
def test_alipay_in_gbk_or_utf8_with_comments_and_trailer(encoding):
    parsed = parse_statement(
        "alipay", alipay_file(ALIPAY_ROWS, ["#合计：3笔，共110.34元"], encoding=encoding)
    )
    assert parsed.ok, parsed.errors
    pay, late, refund = parsed.lines
    assert (pay.provider_txn_id, pay.order_no, pay.amount_fen, pay.fee_fen, pay.raw_line_no) == (
        "2026112322001400001",
        "P001",
        1234,
        7,
        6,  # four comment lines and the header come first
    )
    assert late.occurred_at == datetime(2026, 11, 23, 15, 59, 59, tzinfo=UTC)
    assert (refund.kind, refund.amount_fen, refund.refund_no) == (StatementKind.REFUND, 200, "R001")
    assert pay.refund_no is None


def test_alipay_trailer_by_kind_and_cells_padded_with_tabs():
    rows = [r.replace(",", "\t,") for r in ALIPAY_ROWS]
    parsed = parse_statement(
        "alipay", alipay_file(rows, ["#交易合计：2笔，共112.34元", "#退款合计：1笔，共-2.00元"])
    )
    assert parsed.ok, parsed.errors


def test_alipay_trailer_may_sum_the_merchant_received_column_as_alipay_writes_it():
    ok = ["#交易合计：2笔，商家实收共：111.67元", "#退款合计：1笔，商家实收共：-2.00元"]
    assert parse_statement("alipay", alipay_file(ALIPAY_ROWS, ok)).ok
    wrong = ["#交易合计：2笔，商家实收共：112.34元"]
    assert [r for _, r in reasons(parse_statement("alipay", alipay_file(ALIPAY_ROWS, wrong)))] == [
        "交易合计 商家实收 is 112.34 but the rows add up to 111.67"
    ]
    no_received = [alipay_row("T1", "P001", "交易", "2026-11-23 10:00:00", "1.00", "", "")]
    assert [
        r
        for _, r in reasons(
            parse_statement("alipay", alipay_file(no_received, ["#合计：1笔，商家实收共：1.00元"]))
        )
    ] == ["合计 states 商家实收 but a row has no 商家实收（元）"]


@pytest.mark.parametrize(
    ("trailers", "reason"),
    [
        (["#合计：4笔，共110.34元"], "合计 count is 4 but the rows add up to 3"),
        (["#合计：3笔，共112.34元"], "合计 total is 112.34 but the rows add up to 110.34"),
        (["#交易合计：2笔，共112.33元"], "交易合计 total is 112.33 but the rows add up to 112.34"),
        (["#退款合计：2笔，共-2.00元"], "退款合计 count is 2 but the rows add up to 1"),
    ],
)
def test_alipay_trailer_must_match_the_rows(trailers, reason):
    parsed = parse_statement("alipay", alipay_file(ALIPAY_ROWS, trailers))
    assert [r for _, r in reasons(parsed)] == [reason]


def test_alipay_without_trailer_or_with_bad_rows():
    assert [r for _, r in reasons(parse_statement("alipay", alipay_file(ALIPAY_ROWS, [])))] == [
        "the trailing #…合计 line (count and total) is missing"
    ]
    rows = [
        alipay_row("T1", "P001", "交易", "2026-11-23 10:00:00", "-12.34", "", "0.07"),
        alipay_row("T2", "P002", "退款", "2026-11-23 10:00:00", "2.00", "", ""),
        alipay_row("T3", "P003", "转账", "2026/11/23 10:00", "1.001", "x", ""),
        alipay_row("T4", "P004", "交易", "2026-11-23 10:00:00", "1.00", "1.00", "", "R9"),
    ]
    got = reasons(parse_statement("alipay", alipay_file(rows, ["#合计：4笔"])))
    assert got == [
        (6, "a 交易 row needs a positive 订单金额"),
        (7, "a 退款 row needs a negative 订单金额"),
        (8, "not a time YYYY-MM-DD HH:MM:SS: '2026/11/23 10:00'"),
        (8, "not an amount in yuan with at most 2 decimals: '1.001'"),
        (8, "not an amount in yuan with at most 2 decimals: 'x'"),
        (8, "业务类型 must be 交易 or 退款, not '转账'"),
        (9, "a 交易 row with a 退款批次号/请求号"),
    ]


def test_alipay_duplicate_refund_number_and_row_after_the_closing_comments():
    rows = [ALIPAY_ROWS[2], ALIPAY_ROWS[2]]
    got = reasons(parse_statement("alipay", alipay_file(rows, ["#合计：2笔，共-4.00元", ALIPAY_ROWS[0]])))
    assert got == [(7, "duplicate refund R001 (first on line 6)"), (10, "a row after the closing comments")]


# ------------------------------------------------------------------------------------------ bank
def test_bank_file_with_rfc3339_offsets_and_footer():
    data = bank_file(
        [
            "B0001,P001,1234,SUCCESS,2026-11-23T10:00:00+08:00",
            "B0002,P002,1,SUCCESS,2026-11-23T15:59:59Z",
            "B0003,P003,500,SUCCESS,2026-11-23T10:00:00.250+08:00",
        ],
        "TOTAL,3,1735",
    )
    parsed = parse_statement("bank:icbc", data)
    assert parsed.ok, parsed.errors
    first, second, _third = parsed.lines
    assert (first.provider, first.provider_txn_id, first.order_no, first.amount_fen, first.fee_fen) == (
        "bank:icbc",
        "B0001",
        "P001",
        1234,
        None,
    )
    assert first.occurred_at == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert second.occurred_at == datetime(2026, 11, 23, 15, 59, 59, tzinfo=UTC)
    assert all(x.kind is StatementKind.PAYMENT for x in parsed.lines)


def test_bank_file_errors_are_all_listed():
    data = bank_file(
        [
            "B0001,P001,12.34,SUCCESS,2026-11-23T10:00:00+08:00",
            "B0002,P002,100,FAILED,2026-11-23T10:00:00+08:00",
            "B0003,P003,100,SUCCESS,2026-11-23T10:00:00",
            "B0004,P004,0,SUCCESS,2026-11-23T10:00:00Z",
        ],
        "TOTAL,4,300",
    )
    assert reasons(parse_statement("bank:abc", data)) == [
        (2, "amount_fen is not a non-negative integer: '12.34'"),
        (3, "status must be SUCCESS, not 'FAILED'"),
        (4, "not an RFC 3339 time with an offset: '2026-11-23T10:00:00'"),
        (5, "amount_fen must be positive"),
    ]


def test_bank_footer_is_required_and_validated():
    row = "B0001,P001,1234,SUCCESS,2026-11-23T10:00:00+08:00"
    assert reasons(parse_statement("bank:icbc", bank_file([row], "TOTAL,2,1234"))) == [
        (3, "TOTAL count is 2 but the rows add up to 1")
    ]
    assert reasons(parse_statement("bank:icbc", bank_file([row], "TOTAL,1,1000"))) == [
        (3, "TOTAL sum_fen is 1000 but the rows add up to 1234")
    ]
    no_footer = ("\n".join([BANK_HEAD, row]) + "\n").encode()
    assert reasons(parse_statement("bank:icbc", no_footer)) == [
        (3, "the footer TOTAL,<count>,<sum_fen> is missing")
    ]
    assert parse_statement("bank:icbc", bank_file([], "TOTAL,0,0")).ok
