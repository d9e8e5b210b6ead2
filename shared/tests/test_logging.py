"""JSON-lines logging and the last-line-of-defence redaction of phones and ID numbers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from utilis_shared.context import correlation_id_var, request_id_var
from utilis_shared.logging import configure_logging, redact

PHONE = "13845671234"
ID_NUMBER = "11010119900307123X"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (PHONE, "138****1234"),
        (f"user phone {PHONE} called", "user phone 138****1234 called"),
        (f"手机号{PHONE}，请回电", "手机号138****1234，请回电"),
        (f"phone={PHONE}&x=1", "phone=138****1234&x=1"),
        (f"+86 {PHONE}", "+86 138****1234"),
        (f"+86{PHONE}", "+86138****1234"),
        (f"0086{PHONE}", "0086138****1234"),
        ("138 4567 1234", "138****1234"),
        ("tel:+86-138-4567-1234", "tel:+86-138****1234"),
        (ID_NUMBER, "110***********123X"),
        ("11010119900307123x", "110***********123x"),
        ("110101199003071234", "110***********1234"),
        (f"身份证{ID_NUMBER}已登记", "身份证110***********123X已登记"),
        (f"{PHONE} and {ID_NUMBER}", "138****1234 and 110***********123X"),
    ],
)
def test_redact_masks_phones_and_id_numbers(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order ORD20261121000123 paid",
        "payment PAY202611210001234567 settled",
        "account 1234567890 opened",  # 10 digits
        "bill 12845671234",  # 11 digits, not a mobile prefix (12x)
        "at 2026-11-21T16:30:00+08:00",
        "epoch 1763742600 ms 1763742600123",
        "amount_fen=207600 currency=CNY",
        "request 9f1c2e7a-3b4d-4c5e-8f90-123456789abc",
        "1384567123",  # 10 digits
        "138456712345",  # 12 digits
        "1101011990030712345",  # 19 digits
        "A11010119900307123X",  # glued to a letter: part of some other code
    ],
)
def test_redact_leaves_other_numbers_alone(text: str) -> None:
    assert redact(text) == text


@pytest.fixture
def json_logging() -> Iterator[None]:
    """Restores the root logger afterwards; tests call ``configure_logging`` themselves, inside the test
    body, so the handler binds to the stdout that capsys has installed for the call phase."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def test_record_is_one_json_line_with_context(json_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("billing", "DEBUG")
    rid = request_id_var.set("req-123")
    cid = correlation_id_var.set("corr-456")
    try:
        logging.getLogger("billing.bills").info("bill issued for %s", "A-1001")
    finally:
        request_id_var.reset(rid)
        correlation_id_var.reset(cid)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    record = json.loads(out)
    assert record["event"] == "bill issued for A-1001"
    assert record["level"] == "info"
    assert record["service"] == "billing"
    assert record["request_id"] == "req-123"
    assert record["correlation_id"] == "corr-456"
    assert record["logger"] == "billing.bills"
    assert record["ts"].endswith("+00:00")
    assert "message" not in record


def test_ids_are_null_outside_a_request(json_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("billing", "DEBUG")
    logging.getLogger("x").warning("no request")
    (record,) = _lines(capsys)
    assert record["request_id"] is None
    assert record["correlation_id"] is None
    assert record["level"] == "warning"


def test_level_is_respected(json_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("billing", "DEBUG")
    configure_logging("billing", "warning")
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").error("shown")
    records = _lines(capsys)
    assert [r["event"] for r in records] == ["shown"]


def test_chinese_text_is_not_escaped(json_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("billing", "DEBUG")
    logging.getLogger("x").info("欠费提醒已发送")
    assert "欠费提醒已发送" in capsys.readouterr().out


def _assert_no_pii(out: str) -> None:
    assert PHONE not in out
    assert ID_NUMBER not in out
    assert ID_NUMBER.lower() not in out


def test_pii_in_message_is_masked(json_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("billing", "DEBUG")
    logging.getLogger("x").info(f"resident {PHONE} with id {ID_NUMBER}")
    out = capsys.readouterr().out
    _assert_no_pii(out)
    assert json.loads(out)["event"] == "resident 138****1234 with id 110***********123X"


def test_pii_in_percent_args_is_masked(json_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("billing", "DEBUG")
    log = logging.getLogger("x")
    log.info("resident %s with id %s", PHONE, ID_NUMBER)
    log.info("phone as int %d", int(PHONE))
    log.info("mapping %(phone)s", {"phone": PHONE})
    out = capsys.readouterr().out
    _assert_no_pii(out)
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events == [
        "resident 138****1234 with id 110***********123X",
        "phone as int 138****1234",
        "mapping 138****1234",
    ]


def test_pii_in_extra_is_masked(json_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("billing", "DEBUG")
    logging.getLogger("x").info(
        "resident updated",
        extra={
            "phone": PHONE,
            "id_number": ID_NUMBER,
            "note": f"called back on {PHONE}",
            "changes": {"phone": PHONE, "history": [ID_NUMBER]},
            "phone_int": int(PHONE),
        },
    )
    out = capsys.readouterr().out
    _assert_no_pii(out)
    record = json.loads(out)
    assert record["phone"] == "138****1234"
    assert record["id_number"] == "110***********123X"
    assert record["note"] == "called back on 138****1234"
    assert record["changes"] == {"phone": "138****1234", "history": ["110***********123X"]}


def test_non_pii_extra_survives(json_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("billing", "DEBUG")
    logging.getLogger("x").info(
        "paid", extra={"amount_fen": 207600, "order_no": "ORD20261121000123", "ok": True}
    )
    record = json.loads(capsys.readouterr().out)
    assert record["amount_fen"] == 207600
    assert record["order_no"] == "ORD20261121000123"
    assert record["ok"] is True


def test_pii_in_exception_is_masked(json_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("billing", "DEBUG")
    try:
        raise ValueError(f"no account for {PHONE}")
    except ValueError:
        logging.getLogger("x").exception("lookup failed")
    out = capsys.readouterr().out
    _assert_no_pii(out)
    record = json.loads(out)
    assert "ValueError: no account for 138****1234" in record["exc_info"]


def test_uuid_ids_with_a_phone_shaped_run_stay_whole_but_a_phone_as_an_id_is_masked(
    json_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("gateway", "INFO")
    uuid_id = "5f0c2e1d-a182-8074-4185-9b3c7d2e6f10"  # "182-8074-4185" looks like a mobile number
    assert redact(uuid_id) != uuid_id
    rid = request_id_var.set(uuid_id)
    cid = correlation_id_var.set("13812345678")  # a client chose a phone number as its correlation id
    try:
        logging.getLogger("gateway.proxy").info("forwarded")
    finally:
        request_id_var.reset(rid)
        correlation_id_var.reset(cid)
    record = json.loads(capsys.readouterr().out)
    assert record["request_id"] == uuid_id
    assert record["correlation_id"] == "138****5678"


def test_services_keep_idle_connections_longer_than_the_gateway_pool() -> None:
    import httpx

    from utilis_shared.runner import KEEP_ALIVE_SECONDS

    assert httpx.Limits().keepalive_expiry < KEEP_ALIVE_SECONDS
