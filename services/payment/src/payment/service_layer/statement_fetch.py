"""Providers' daily statements fetched from the providers (对账单下载) and reconciled, without anyone
uploading a file.

:func:`download_statement` asks a provider's API (``provider_query_urls[provider]``, the simulator's in
development and tests) for a business day's statement through its adapter: WeChat Pay answers with a
signed download address and the file's SHA1, Alipay with a one-time address of a zip, a bank with the file
itself and its SHA-256 in a signed answer. Every answer is verified like a callback, every file checked
against the digest its provider signed, then imported exactly as an uploaded file is
(``reconciliation.import_statement``, ``imported_by`` ``system:fetch`` or the CLI's): the same file twice
is one run, a different file for the same day supersedes the earlier run.

:class:`StatementFetcher` is the scheduler's daily job. Once the business day in Asia/Shanghai has passed
``statement_fetch_after`` (the providers make the previous day's files in the morning), each provider with
an API address and a statement format gets its days from yesterday back ``statement_lookback_days`` that
have no current run asked for; a day the provider has not made yet ("not ready"), or that failed, is asked
again ``statement_retry_seconds`` later. Two scheduler replicas may both fetch a day: the import locks the
day and a second import of the same file is the same run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker

from payment import metrics as payment_metrics
from payment.adapters.channels import Channels, send
from payment.adapters.providers.base import CallbackRejected
from payment.domain.statements import is_statement_provider
from payment.service_layer import reconciliation as rec
from payment.settings import Settings
from utilis_shared.db import UnitOfWork
from utilis_shared.errors import NotFound, Problem
from utilis_shared.timeutil import BUSINESS_TZ

log = logging.getLogger(__name__)
FETCHED_BY = "system:fetch"


class NoStatementSource(NotFound):
    code = "no_statement_source"


@dataclass
class FetchSummary:
    imported: int = 0
    unchanged: int = 0
    not_ready: int = 0
    errors: int = 0

    @property
    def asked(self) -> int:
        return self.imported + self.unchanged + self.not_ready + self.errors


async def download_statement(
    channels: Channels, http: httpx.AsyncClient, settings: Settings, provider: str, day: date, now: datetime
) -> bytes | None:
    """The provider's statement of ``day`` (its digest checked, unpacked), or None when the provider has
    not made it yet. Raises :class:`CallbackRejected` for an answer or a file that does not verify,
    ``httpx.HTTPError`` when the provider cannot be reached."""
    base_url = settings.provider_query_urls.get(provider)
    if base_url is None or provider not in channels.adapters or not is_statement_provider(provider):
        raise NoStatementSource(
            f"Statements of {provider!r} cannot be fetched here: no provider API address is configured "
            "(provider_query_urls) or the provider is not offered.",
        )
    adapter = channels.adapter(provider)
    request = adapter.build_statement_request(day=day, now=now)
    timeout = settings.statement_download_timeout_seconds
    response = await send(http, request, base_url, timeout=timeout)  # a bank's answer carries the file
    answer = adapter.parse_statement_response(
        status_code=response.status_code, headers=response.headers, body=response.content, day=day, now=now
    )
    if answer.status == "not_ready":
        return None
    data = answer.content
    if data is None:
        download = answer.download
        got = await send(http, download, base_url, timeout=timeout)
        if got.status_code != 200:
            raise CallbackRejected("malformed", f"the statement download answered HTTP {got.status_code}")
        data = got.content
    return adapter.statement_file(answer, data)


async def fetch_and_import(
    session_factory: async_sessionmaker,
    settings: Settings,
    channels: Channels,
    http: httpx.AsyncClient,
    provider: str,
    day: date,
    *,
    now: datetime,
    by: str = FETCHED_BY,
) -> rec.ImportResult | None:
    """Download ``provider``'s statement of ``day`` and import it (one committed transaction); None when
    the provider has not made it yet. Counted in ``utilis_payment_statement_fetches_total``."""
    label = payment_metrics.provider_label(provider)
    try:
        data = await download_statement(channels, http, settings, provider, day, now)
        if data is None:
            payment_metrics.STATEMENT_FETCHES.labels(label, "not_ready").inc()
            return None
        uow = UnitOfWork(session_factory, settings)
        async with uow:
            result = await rec.import_statement(uow, provider, day, data, by, now=now)
            await uow.commit()
    except Exception:
        payment_metrics.STATEMENT_FETCHES.labels(label, "error").inc()
        raise
    payment_metrics.observe_committed(uow.committed_events)
    payment_metrics.STATEMENT_FETCHES.labels(label, "imported" if result.created else "unchanged").inc()
    return result


class StatementFetcher:
    """The scheduler's daily statement job (module docstring); remembers, in memory, when it last asked
    for each (provider, day) and which days are reconciled (so a round asks the database only about the
    days it does not know to be done)."""

    def __init__(self) -> None:
        self._asked: dict[tuple[str, date], datetime] = {}
        self._done: set[tuple[str, date]] = set()

    def due_days(self, settings: Settings, now: datetime) -> list[date]:
        local = now.astimezone(BUSINESS_TZ)
        if local.time() < settings.statement_fetch_after:
            return []
        return [
            local.date() - timedelta(days=back) for back in range(1, settings.statement_lookback_days + 1)
        ]

    async def run(
        self,
        session_factory: async_sessionmaker,
        settings: Settings,
        channels: Channels,
        http: httpx.AsyncClient,
        *,
        now: datetime,
    ) -> FetchSummary:
        summary = FetchSummary()
        days = self.due_days(settings, now)
        providers = sorted(
            p for p in channels.adapters if p in settings.provider_query_urls and is_statement_provider(p)
        )
        retry = timedelta(seconds=settings.statement_retry_seconds)
        for provider in providers:
            for day in days:
                key = (provider, day)
                asked = self._asked.get(key)
                if key in self._done or (asked is not None and now - asked < retry):
                    continue
                async with session_factory() as session:
                    if await rec.current_run(session, provider, day) is not None:
                        self._done.add(key)
                        continue
                self._asked[key] = now
                try:
                    result = await fetch_and_import(
                        session_factory, settings, channels, http, provider, day, now=now
                    )
                except (httpx.HTTPError, CallbackRejected, Problem) as exc:
                    summary.errors += 1  # asked again after statement_retry_seconds
                    log.warning(
                        "statement fetch failed",
                        extra={"provider": provider, "day": day.isoformat(), "error": str(exc)[:200]},
                    )
                    continue
                if result is None:
                    summary.not_ready += 1
                    continue
                if result.created:
                    summary.imported += 1
                else:
                    summary.unchanged += 1
                self._done.add(key)
                del self._asked[key]
        oldest = min(days, default=None)
        for key in [k for k in self._asked if oldest is None or k[1] < oldest]:
            del self._asked[key]  # days out of the look-back window are never asked again
        self._done = {k for k in self._done if oldest is not None and k[1] >= oldest}
        return summary
