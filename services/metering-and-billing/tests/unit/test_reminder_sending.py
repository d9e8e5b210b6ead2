"""Reminder sending, the pure parts: period labels, template parameters, configured steps, the sweep's due
window and retry delays; the notification senders (development; SMS and WeChat template adapters against
httpx's mock transport and against a local stub HTTP server on a real socket)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, date, datetime, time, timedelta

import httpx
import pytest

from billing.adapters.notifications import (
    DevelopmentSender,
    NotificationError,
    SmsSender,
    WeChatTemplateSender,
    idempotency_key,
    sender_from_settings,
)
from billing.domain.receivables import due_instant
from billing.domain.reminders import DEFAULT_REMINDER_STEPS, BillNotice, ReminderKind, ReminderStep, Utility
from billing.service_layer.reminders import (
    due_window,
    period_label,
    reminder_steps,
    retry_delay,
    send_time_of,
    template_params,
)
from billing.settings import Settings


def label(**kw) -> str:
    base = {"utility": "gas", "kind": "bill", "cycle": None, "issue_date": date(2026, 12, 5)}
    return period_label(**{**base, **kw})


# ------------------------------------------------------------------------------------ period labels
@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        (
            {"cycle": "202611", "period_start": date(2026, 11, 1), "period_end": date(2026, 12, 1)},
            "2026年11月",
        ),
        (
            {"cycle": "202612", "period_start": date(2026, 12, 1), "period_end": date(2027, 1, 1)},
            "2026年12月",
        ),
        (
            {"cycle": "2026B06", "period_start": date(2026, 5, 1), "period_end": date(2026, 7, 1)},
            "2026年5—6月",
        ),
        (
            {"cycle": "2026B12", "period_start": date(2026, 12, 1), "period_end": date(2027, 2, 1)},
            "2026年12月—2027年1月",
        ),
        (
            {
                "utility": "heating",
                "cycle": "2026S",
                "period_start": date(2026, 11, 15),
                "period_end": date(2027, 3, 16),
            },
            "2026—2027供暖季",
        ),
        # A heating period longer than two months is a season even with another cycle code.
        (
            {
                "utility": "heating",
                "cycle": "2026H",
                "period_start": date(2026, 10, 15),
                "period_end": date(2027, 4, 26),
            },
            "2026—2027供暖季",
        ),
        # A heating bill of one month is a month.
        (
            {
                "utility": "heating",
                "cycle": "202611",
                "period_start": date(2026, 11, 1),
                "period_end": date(2026, 12, 1),
            },
            "2026年11月",
        ),
        # A debit note: its period (copied from the bill it corrects) or its issue month, then 补收.
        (
            {"kind": "debit_note", "period_start": date(2026, 11, 1), "period_end": date(2026, 12, 1)},
            "2026年11月补收",
        ),
        ({"kind": "debit_note", "period_start": None, "period_end": None}, "2026年12月补收"),
    ],
)
def test_period_label(kw, expected: str) -> None:
    assert label(**kw) == expected


def test_a_season_cycle_counts_even_for_a_short_period() -> None:
    assert (
        label(
            utility="heating", cycle="2026S", period_start=date(2026, 11, 15), period_end=date(2026, 12, 31)
        )
        == "2026供暖季"
    )


# ---------------------------------------------------------------------------------- template params
def test_template_params_are_the_pieces_of_the_text() -> None:
    notice = BillNotice(
        account_no="800000000017",
        bill_no="202611-800000000017",
        utility=Utility.GAS,
        period_label="2026年11月",
        amount_due_fen=207_650,
        due_at=due_instant(date(2026, 12, 20)),
    )
    before = template_params(notice, DEFAULT_REMINDER_STEPS[0])
    collection = template_params(notice, DEFAULT_REMINDER_STEPS[-1])

    assert before == {
        "account_no": "800000000017",
        "period": "2026年11月",
        "fee_name": "燃气费",
        "amount_yuan": "2,076.50",
        "due_date": "12月20日",
    }
    assert collection == {**before, "overdue_days": "30"}


# ------------------------------------------------------------------------------------- configuration
def test_no_configured_steps_means_the_domain_defaults() -> None:
    assert reminder_steps(Settings()) == DEFAULT_REMINDER_STEPS


def test_configured_steps() -> None:
    settings = Settings(
        reminder_steps=[
            {"code": "due_minus_3d", "offset_days": -3, "kind": "before_due"},
            {"code": "overdue_7d", "offset_days": "7", "kind": "overdue"},
            {"code": "collection_60d", "offset_days": 60, "kind": "collection"},
        ]
    )
    assert reminder_steps(settings) == (
        ReminderStep("due_minus_3d", -3, ReminderKind.BEFORE_DUE),
        ReminderStep("overdue_7d", 7, ReminderKind.OVERDUE),
        ReminderStep("collection_60d", 60, ReminderKind.COLLECTION),
    )


@pytest.mark.parametrize(
    "steps",
    [
        [{"code": "a", "offset_days": 3, "kind": "before_due"}],  # before due needs a negative offset
        [{"code": "a", "offset_days": 3, "kind": "reminder"}],  # unknown kind
        [{"code": "a", "kind": "overdue"}],  # no offset
        [
            {"code": "a", "offset_days": 1, "kind": "overdue"},
            {"code": "a", "offset_days": 2, "kind": "overdue"},
        ],
    ],
)
def test_invalid_configured_steps_are_refused(steps) -> None:
    with pytest.raises(ValueError):
        reminder_steps(Settings(reminder_steps=steps))


def test_send_time_setting() -> None:
    assert send_time_of(Settings()) == time(9, 0)
    assert send_time_of(Settings(reminder_send_time="18:30")) == time(18, 30)
    with pytest.raises(ValueError):
        Settings(reminder_send_time="9:00")
    with pytest.raises(ValueError):
        Settings(notification_channel="email")


def test_the_due_window_covers_every_step_and_the_margin() -> None:
    now = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    low, high = due_window(DEFAULT_REMINDER_STEPS, now, margin_days=10)
    assert low == now - timedelta(days=41)  # collection at 30 days, 10 days of margin, a day of slack
    assert high == now + timedelta(days=6)  # the first notice is 5 days before the due date


def test_retry_delay_doubles_with_each_attempt() -> None:
    settings = Settings(reminder_retry_minutes=5)
    assert [retry_delay(settings, n) for n in (1, 2, 3, 4)] == [timedelta(minutes=m) for m in (5, 10, 20, 40)]


# ------------------------------------------------------------------------------------------ senders
def test_idempotency_key_is_stable_per_bill_and_step() -> None:
    key = idempotency_key("202611-800000000017", "due_minus_5d")
    assert key == idempotency_key("202611-800000000017", "due_minus_5d")
    assert key != idempotency_key("202611-800000000017", "due_minus_1d")
    assert key != idempotency_key("202612-800000000017", "due_minus_5d")


async def test_the_development_sender_records_and_logs_by_account_number(caplog) -> None:
    sender = DevelopmentSender()
    with caplog.at_level(logging.INFO, logger="billing.adapters.notifications"):
        sent = await sender.send(
            account_no="800000000017",
            text="您的户号 800000000017 的 2026年11月 燃气费 10.00 元将于 12月20日 到期，请及时缴纳。",
            template_code="billing_due_soon",
            params={"amount_yuan": "10.00"},
            idempotency_key="k",
        )
    assert sent.channel == "development" and sent.provider_message_id.startswith("dev-")
    assert [(m.account_no, m.template_code, m.provider_message_id) for m in sender.messages] == [
        ("800000000017", "billing_due_soon", sent.provider_message_id)
    ]
    assert [r.account_no for r in caplog.records] == ["800000000017"]


def _mock(handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_the_sms_adapter_posts_the_template_and_its_params() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"message_id": "sms-123"})

    sender = SmsSender("http://gateway.test/v1/sms-messages", timeout_seconds=2.5, client=_mock(handler))
    sent = await sender.send(
        account_no="800000000017",
        text="您的户号 800000000017 …",
        template_code="billing_due_soon",
        params={"amount_yuan": "10.00", "due_date": "12月20日"},
        idempotency_key="0b7c3f1e-0000-5000-8000-000000000001",
    )

    assert (sent.channel, sent.provider_message_id) == ("sms", "sms-123")
    (request,) = seen
    assert request.method == "POST" and str(request.url) == "http://gateway.test/v1/sms-messages"
    assert request.headers["Idempotency-Key"] == "0b7c3f1e-0000-5000-8000-000000000001"
    assert request.extensions["timeout"] == {"connect": 2.5, "read": 2.5, "write": 2.5, "pool": 2.5}
    assert json.loads(request.content) == {
        "account_no": "800000000017",
        "template_code": "billing_due_soon",
        "template_params": {"amount_yuan": "10.00", "due_date": "12月20日"},
        "text": "您的户号 800000000017 …",
    }


async def test_the_wechat_adapter_posts_a_template_message() -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"message_id": 987654})

    sender = WeChatTemplateSender("http://gateway.test/v1/wechat", timeout_seconds=1, client=_mock(handler))
    sent = await sender.send(
        account_no="800000000017", text="…", template_code="TPL-1", params={"period": "2026年11月"}
    )

    assert (sent.channel, sent.provider_message_id) == ("wechat", "987654")
    assert seen == [
        {
            "account_no": "800000000017",
            "template_id": "TPL-1",
            "data": {"period": {"value": "2026年11月"}},
            "text": "…",
        }
    ]


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (lambda request: httpx.Response(503, text="busy"), "sms gateway answered 503: busy"),
        (lambda request: httpx.Response(400, json={"code": "unknown_template"}), "sms gateway answered 400"),
        (
            lambda request: (_ for _ in ()).throw(httpx.ConnectError("refused", request=request)),
            "sms gateway unreachable: ConnectError",
        ),
        (
            lambda request: (_ for _ in ()).throw(httpx.ReadTimeout("slow", request=request)),
            "sms gateway timed out: ReadTimeout",
        ),
    ],
)
async def test_gateway_failures_raise_notification_error(handler, message: str) -> None:
    sender = SmsSender("http://gateway.test/v1/sms-messages", timeout_seconds=1, client=_mock(handler))
    with pytest.raises(NotificationError, match=message):
        await sender.send(account_no="800000000017", text="…", template_code="t", params={})


class StubGateway:
    """A local HTTP/1.1 server on a real socket: records each request's headers and JSON body and answers
    ``{"message_id": ...}`` after ``delay`` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.requests: list[tuple[dict[str, str], dict]] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> StubGateway:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/v1/sms-messages"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {
                    k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((headers, json.loads(body)))
                await asyncio.sleep(self.delay)
                answer = json.dumps({"message_id": f"stub-{len(self.requests)}"}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_the_sms_adapter_against_a_local_stub_gateway() -> None:
    async with StubGateway() as gateway:
        sender = SmsSender(gateway.url, timeout_seconds=2)
        try:
            first = await sender.send(
                account_no="800000000017", text="一", template_code="t", params={"a": "1"}
            )
            second = await sender.send(
                account_no="800000000018", text="二", template_code="t", params={}, idempotency_key="k-2"
            )
        finally:
            await sender.aclose()
    assert (first.provider_message_id, second.provider_message_id) == ("stub-1", "stub-2")
    assert [body["account_no"] for _, body in gateway.requests] == ["800000000017", "800000000018"]
    assert "idempotency-key" not in gateway.requests[0][0]
    assert gateway.requests[1][0]["idempotency-key"] == "k-2"


async def test_a_slow_stub_gateway_times_out() -> None:
    async with StubGateway(delay=1.0) as gateway:
        sender = SmsSender(gateway.url, timeout_seconds=0.2)
        try:
            with pytest.raises(NotificationError, match="timed out"):
                await sender.send(account_no="800000000017", text="一", template_code="t", params={})
        finally:
            await sender.aclose()


def test_sender_from_settings() -> None:
    assert isinstance(sender_from_settings(Settings()), DevelopmentSender)
    sms = sender_from_settings(
        Settings(notification_channel="sms", notification_sms_url="http://gw.test/sms")
    )
    wechat = sender_from_settings(Settings(notification_channel="wechat"))
    assert isinstance(sms, SmsSender) and sms.url == "http://gw.test/sms"
    assert isinstance(wechat, WeChatTemplateSender)
    # A gateway sender is kept, so its connection pool lives from one sweep to the next.
    assert (
        sender_from_settings(Settings(notification_channel="sms", notification_sms_url="http://gw.test/sms"))
        is sms
    )
