"""Statement downloads (对账单下载) through each provider's adapter, against the simulator's HTTP side: the
file that arrives is the provider's statement of the day (Alipay's unpacked from its GBK zip); a day not
made yet is "not ready"; an answer that does not verify, a file that does not match its signed digest and
a zip without the detail file are refused."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest

from payment.adapters.channels import Channels
from payment.adapters.providers.base import CallbackRejected, StatementAnswer
from payment.adapters.providers.simulator import ProviderSimulator
from payment.domain.statements import parse_statement
from payment.service_layer.statement_fetch import NoStatementSource, download_statement
from payment.settings import Settings

from .conftest import NOW

DAY = date(2026, 11, 22)  # NOW is 2026-11-23 10:15 in Beijing
PROVIDERS = ["wechat", "alipay", "bank:icbc", "bank:boc"]
BASE = "http://sim.test"


def _settings() -> Settings:
    urls = {"wechat": BASE, "alipay": BASE, "bank:icbc": f"{BASE}/bank/icbc", "bank:boc": f"{BASE}/bank/boc"}
    return Settings(environment="development", provider_query_urls=urls)


def _paid(sim: ProviderSimulator, provider: str, n: int) -> None:
    for i in range(n):
        order_no = f"P-DL-{provider[-4:]}-{i}"
        sim.register_order(provider, order_no, 1_000 + i)
        sim.callback(provider, order_no, 1_000 + i, paid_at=NOW - timedelta(days=1, hours=i))


async def _download(sim: ProviderSimulator, provider: str, day: date = DAY) -> bytes | None:
    channels = Channels(sim.adapters(), notify_base_url=BASE)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.asgi_app()), base_url=BASE) as http:
        return await download_statement(channels, http, _settings(), provider, day, NOW)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_downloaded_file_is_the_providers_statement_of_the_day(
    sim: ProviderSimulator, provider: str
) -> None:
    _paid(sim, provider, 3)
    data = await _download(sim, provider)
    assert data is not None
    lines = parse_statement(provider, data).require()
    assert lines == parse_statement(provider, sim.statement_csv(provider, DAY)).require()
    assert len(lines) >= 3 and {f"P-DL-{provider[-4:]}-{i}" for i in range(3)} <= {x.order_no for x in lines}
    if provider == "alipay":
        assert "业务明细".encode("gbk") in data  # the GBK detail file from the zip, as Alipay serves it


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_day_the_provider_has_not_made_yet_is_not_ready(
    sim: ProviderSimulator, provider: str
) -> None:
    day = DAY - timedelta(days=5)
    sim.statements_not_ready.add((provider, day))
    try:
        assert await _download(sim, provider, day) is None
    finally:
        sim.statements_not_ready.discard((provider, day))
    assert (provider, day) in sim.statement_requests


async def test_a_provider_without_an_api_address_is_a_problem(sim: ProviderSimulator) -> None:
    channels = Channels(sim.adapters(), notify_base_url=BASE)
    async with httpx.AsyncClient(base_url=BASE) as http:
        with pytest.raises(NoStatementSource):
            await download_statement(channels, http, Settings(environment="development"), "wechat", DAY, NOW)


async def _answer(sim: ProviderSimulator, provider: str) -> httpx.Response:
    adapter = sim.adapters()[provider]
    request = adapter.build_statement_request(day=DAY, now=NOW)
    base = _settings().provider_query_urls[provider]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.asgi_app())) as http:
        return await http.request(
            request.method, request.url(base), headers=request.headers, content=request.body
        )


@pytest.mark.parametrize(
    ("provider", "old", "new"),
    [
        ("wechat", b'"hash_value":"', b'"hash_value":"0'),  # a forged digest
        ("alipay", b"/alipay/bill/download", b"/evil/bill/download"),  # a forged address
        ("bank:icbc", b'"return_code":"0000"', b'"return_code":"0000","x":"1"'),
        ("bank:boc", b'"file_sha256":"', b'"file_sha256":"0'),
    ],
)
async def test_an_answer_that_does_not_verify_is_refused(
    sim: ProviderSimulator, provider: str, old: bytes, new: bytes
) -> None:
    response = await _answer(sim, provider)
    assert old in response.content
    adapter = sim.adapters()[provider]
    good = adapter.parse_statement_response(
        status_code=response.status_code, headers=response.headers, body=response.content, day=DAY, now=NOW
    )
    assert good.status == "ready"
    with pytest.raises(CallbackRejected):
        adapter.parse_statement_response(
            status_code=response.status_code,
            headers=response.headers,
            body=response.content.replace(old, new, 1),
            day=DAY,
            now=NOW,
        )


@pytest.mark.parametrize("provider", ["wechat", "bank:icbc"])
async def test_a_file_that_does_not_match_its_signed_digest_is_refused(
    sim: ProviderSimulator, provider: str
) -> None:
    _paid(sim, provider, 1)
    response = await _answer(sim, provider)
    adapter = sim.adapters()[provider]
    answer = adapter.parse_statement_response(
        status_code=200, headers=response.headers, body=response.content, day=DAY, now=NOW
    )
    file = answer.content if answer.content is not None else sim.statement_csv(provider, DAY)
    assert adapter.statement_file(answer, file) == file
    with pytest.raises(CallbackRejected, match="digest"):
        adapter.statement_file(answer, file.replace(b"1", b"2", 1))


def test_an_alipay_zip_without_its_detail_file_is_refused(sim: ProviderSimulator) -> None:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("2088_20261122_业务明细(汇总).csv", "#汇总".encode("gbk"))
    answer = StatementAnswer("alipay", DAY, "ready")
    with pytest.raises(CallbackRejected, match="no 业务明细"):
        sim.adapters()["alipay"].statement_file(answer, out.getvalue())
    with pytest.raises(CallbackRejected, match="cannot be read"):
        sim.adapters()["alipay"].statement_file(answer, b"PK\x03\x04 broken")
